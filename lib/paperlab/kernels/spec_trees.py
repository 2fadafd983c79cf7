"""Kernels of tree-based speculative decoding on a second-order Markov language model.

These are the loops behind the Yggdrasil chapter (Guan et al., arXiv 2512.23858).
Building a draft tree is a top-k selection over a frontier that changes at every depth,
and verifying it walks the tree one accepted token at a time; a sweep over tree shapes
runs them hundreds of thousands of times, so they are compiled with Numba.

- :func:`build_equal_growth_tree`: the equal-growth tree, ``width`` new nodes per depth,
  the best children of the previous depth by cumulative draft log-probability.
- :func:`build_best_first_tree`: the dynamic baseline, ``n_nodes`` nodes added one at a
  time wherever the cumulative draft log-probability is highest, at any depth.
- :func:`verify_tree_greedy`: greedy verification, the longest root path whose tokens
  are the target's argmax choices, plus the target's next token.
- :func:`acceptance_at_contexts`: one draft-verify step at each of many contexts.
- :func:`speculative_decode`: the whole draft-verify loop over many prompts.

Conventions shared by all kernels
---------------------------------
The vocabulary has ``V`` tokens. ``draft_logp[a, b, t]`` is the draft model's
log-probability of token ``t`` after the two tokens ``a, b``; ``target_argmax[a, b]``
is the target model's greedy next token. A tree of ``n`` nodes is two arrays:
``tokens[i]`` is node ``i``'s token and ``parent[i]`` the index of its parent, ``-1``
for a child of the root (the root is the last token already decoded). Parents always
come before their children. Ties between equal scores go to the candidate met first:
lower frontier index, then lower token id. Inputs must be finite; the chapter module
validates them before calling a kernel.
"""

from __future__ import annotations

import numba
import numpy as np

from paperlab.kernels import BenchCase

__all__ = [
    "build_equal_growth_tree",
    "build_equal_growth_tree_reference",
    "build_best_first_tree",
    "build_best_first_tree_reference",
    "verify_tree_greedy",
    "verify_tree_greedy_reference",
    "acceptance_at_contexts",
    "acceptance_at_contexts_reference",
    "speculative_decode",
    "speculative_decode_reference",
    "benchmarks",
]


# ------------------------------------------------------------ equal-growth tree


@numba.njit(cache=True)
def build_equal_growth_tree(draft_logp, prefix, width, depth):
    """Equal-growth draft tree: ``width`` nodes at each of ``depth`` levels.

    Level 1 holds the ``width`` most likely children of the root. Level ``d + 1``
    holds the ``width`` best of all ``width * V`` children of level ``d``, scored by
    cumulative draft log-probability (the log-probability of the whole path).

    Parameters
    ----------
    draft_logp : float32 array, shape (V, V, V)
    prefix : int32 array, shape (2,)
        The last two decoded tokens.
    width, depth : int
        ``1 <= width <= V``, ``depth >= 0``.

    Returns
    -------
    tokens, parent : int32 arrays, shape (width * depth,)
        Level ``d`` (from 0) occupies indices ``d * width`` to ``(d + 1) * width - 1``,
        best score first.
    """
    vocab = draft_logp.shape[0]
    n_nodes = width * depth
    tokens = np.empty(n_nodes, dtype=np.int32)
    parent = np.empty(n_nodes, dtype=np.int32)
    score = np.empty(n_nodes, dtype=np.float64)
    best_score = np.empty(width, dtype=np.float64)
    best_parent = np.empty(width, dtype=np.int32)
    best_token = np.empty(width, dtype=np.int32)
    for level in range(depth):
        n_front = 1 if level == 0 else width
        count = 0
        for f in range(n_front):
            if level == 0:
                node, a, b, base = -1, prefix[0], prefix[1], 0.0
            else:
                node = (level - 1) * width + f
                p = parent[node]
                a = prefix[1] if p < 0 else tokens[p]
                b = tokens[node]
                base = score[node]
            for t in range(vocab):
                s = base + np.float64(draft_logp[a, b, t])
                if count < width:
                    pos = count
                    count += 1
                elif s > best_score[width - 1]:
                    pos = width - 1
                else:
                    continue
                while pos > 0 and best_score[pos - 1] < s:
                    best_score[pos] = best_score[pos - 1]
                    best_parent[pos] = best_parent[pos - 1]
                    best_token[pos] = best_token[pos - 1]
                    pos -= 1
                best_score[pos] = s
                best_parent[pos] = node
                best_token[pos] = t
        for k in range(width):
            i = level * width + k
            tokens[i] = best_token[k]
            parent[i] = best_parent[k]
            score[i] = best_score[k]
    return tokens, parent


def build_equal_growth_tree_reference(draft_logp, prefix, width, depth):
    """Plain-Python :func:`build_equal_growth_tree`: score every candidate, sort."""
    tokens: list[int] = []
    parent: list[int] = []
    score: list[float] = []
    for level in range(depth):
        if level == 0:
            frontier = [(-1, int(prefix[0]), int(prefix[1]), 0.0)]
        else:
            frontier = []
            for node in range((level - 1) * width, level * width):
                a = int(prefix[1]) if parent[node] < 0 else tokens[parent[node]]
                frontier.append((node, a, tokens[node], score[node]))
        candidates = [
            (base + float(draft_logp[a, b, t]), node, t)
            for node, a, b, base in frontier
            for t in range(draft_logp.shape[0])
        ]
        candidates.sort(key=lambda c: -c[0])  # stable: ties keep scan order
        for s, node, t in candidates[:width]:
            tokens.append(t)
            parent.append(node)
            score.append(s)
    return np.array(tokens, dtype=np.int32), np.array(parent, dtype=np.int32)


# ------------------------------------------------------------- best-first tree


@numba.njit(cache=True)
def _best_unused_child(row, used):
    """Index of the largest entry of ``row`` not marked ``used`` (lowest on ties)."""
    best = -1
    for t in range(row.shape[0]):
        if not used[t] and (best < 0 or row[t] > row[best]):
            best = t
    return best


@numba.njit(cache=True)
def build_best_first_tree(draft_logp, prefix, n_nodes):
    """Dynamic best-first draft tree of ``n_nodes`` nodes.

    Starting from the root, repeatedly add the not-yet-drafted child with the highest
    cumulative draft log-probability, whatever its depth. Every tree node caches its
    best unused child, so one addition costs a scan of the nodes plus one scan of
    the vocabulary: ``O(n_nodes * (n_nodes + V))`` per tree.

    Parameters
    ----------
    draft_logp : float32 array, shape (V, V, V)
    prefix : int32 array, shape (2,)
    n_nodes : int
        ``0 <= n_nodes <= V * (number of nodes that can still grow)``; at most
        ``V`` children per node.

    Returns
    -------
    tokens, parent : int32 arrays, shape (n_nodes,)
        In the order the nodes were added.
    """
    vocab = draft_logp.shape[0]
    tokens = np.empty(n_nodes, dtype=np.int32)
    parent = np.empty(n_nodes, dtype=np.int32)
    # Slot 0 is the root, slot i + 1 is node i.
    ctx_a = np.empty(n_nodes + 1, dtype=np.int64)
    ctx_b = np.empty(n_nodes + 1, dtype=np.int64)
    cum = np.empty(n_nodes + 1, dtype=np.float64)
    used = np.zeros((n_nodes + 1, vocab), dtype=np.bool_)
    next_child = np.empty(n_nodes + 1, dtype=np.int64)
    ctx_a[0], ctx_b[0], cum[0] = prefix[0], prefix[1], 0.0
    next_child[0] = _best_unused_child(draft_logp[prefix[0], prefix[1]], used[0])
    for k in range(n_nodes):
        best_slot = -1
        best = 0.0
        for slot in range(k + 1):
            t = next_child[slot]
            if t >= 0:
                s = cum[slot] + np.float64(draft_logp[ctx_a[slot], ctx_b[slot], t])
                if best_slot < 0 or s > best:
                    best_slot, best = slot, s
        t = next_child[best_slot]
        used[best_slot, t] = True
        next_child[best_slot] = _best_unused_child(
            draft_logp[ctx_a[best_slot], ctx_b[best_slot]], used[best_slot]
        )
        tokens[k] = t
        parent[k] = best_slot - 1
        ctx_a[k + 1], ctx_b[k + 1], cum[k + 1] = ctx_b[best_slot], t, best
        next_child[k + 1] = _best_unused_child(
            draft_logp[ctx_b[best_slot], t], used[k + 1]
        )
    return tokens, parent


def build_best_first_tree_reference(draft_logp, prefix, n_nodes):
    """Plain-Python :func:`build_best_first_tree`: rescan every open candidate."""
    vocab = draft_logp.shape[0]
    slots = [(int(prefix[0]), int(prefix[1]), 0.0)]  # (a, b, cumulative) per slot
    used: list[set[int]] = [set()]
    tokens: list[int] = []
    parent: list[int] = []
    for _ in range(n_nodes):
        best = None
        for slot, (a, b, base) in enumerate(slots):
            free = [t for t in range(vocab) if t not in used[slot]]
            if not free:
                continue
            # Highest log-probability child not yet used; ties to the lower token.
            t = min(free, key=lambda t, a=a, b=b: (-float(draft_logp[a, b, t]), t))
            s = base + float(draft_logp[a, b, t])
            if best is None or s > best[0]:
                best = (s, slot, t)
        s, slot, t = best
        used[slot].add(t)
        tokens.append(t)
        parent.append(slot - 1)
        slots.append((slots[slot][1], t, s))
        used.append(set())
    return np.array(tokens, dtype=np.int32), np.array(parent, dtype=np.int32)


# ----------------------------------------------------------------- verification


@numba.njit(cache=True)
def verify_tree_greedy(tokens, parent, target_argmax, prefix):
    """Greedy verification of a draft tree against the target's argmax choices.

    From the root, move to the child whose token is the target's greedy next token,
    as long as one exists; every move accepts one draft token. The target's greedy
    token after the last accepted one comes free with the same verification pass.

    Parameters
    ----------
    tokens, parent : int32 arrays, shape (n,)
    target_argmax : int32 array, shape (V, V)
    prefix : int32 array, shape (2,)

    Returns
    -------
    path : int32 array, shape (n_accepted,)
        Indices of the accepted nodes, root side first.
    bonus : int
        The target's greedy token after the accepted path.
    """
    n = tokens.shape[0]
    path = np.empty(n, dtype=np.int32)
    a, b = prefix[0], prefix[1]
    node = -1
    n_accepted = 0
    while True:
        want = target_argmax[a, b]
        found = -1
        for j in range(n):
            if parent[j] == node and tokens[j] == want:
                found = j
                break
        if found < 0:
            break
        path[n_accepted] = found
        n_accepted += 1
        node = found
        a, b = b, want
    return path[:n_accepted].copy(), int(target_argmax[a, b])


def verify_tree_greedy_reference(tokens, parent, target_argmax, prefix):
    """Plain-Python :func:`verify_tree_greedy`, walking a child dictionary."""
    children: dict[tuple[int, int], int] = {}
    for j in range(len(tokens)):
        children.setdefault((int(parent[j]), int(tokens[j])), j)
    a, b = int(prefix[0]), int(prefix[1])
    node, path = -1, []
    while (node, int(target_argmax[a, b])) in children:
        want = int(target_argmax[a, b])
        node = children[(node, want)]
        path.append(node)
        a, b = b, want
    return np.array(path, dtype=np.int32), int(target_argmax[a, b])


# ------------------------------------------------------------- decoding loop


@numba.njit(cache=True)
def _build(draft_logp, prefix, width, depth, best_first):
    if best_first:
        return build_best_first_tree(draft_logp, prefix, width * depth)
    return build_equal_growth_tree(draft_logp, prefix, width, depth)


def _build_reference(draft_logp, prefix, width, depth, best_first):
    if best_first:
        return build_best_first_tree_reference(draft_logp, prefix, width * depth)
    return build_equal_growth_tree_reference(draft_logp, prefix, width, depth)


@numba.njit(cache=True)
def acceptance_at_contexts(
    draft_logp, target_argmax, contexts, width, depth, best_first
):
    """Draft tokens accepted by one draft-verify step started at each context.

    Parameters
    ----------
    draft_logp : float32 array, shape (V, V, V)
    target_argmax : int32 array, shape (V, V)
    contexts : int32 array, shape (n, 2)
        Pairs of last two tokens.
    width, depth : int
        Tree shape; a best-first tree gets ``width * depth`` nodes.
    best_first : bool

    Returns
    -------
    int64 array, shape (n,)
    """
    n = contexts.shape[0]
    accepted = np.empty(n, dtype=np.int64)
    for i in range(n):
        tokens, parent = _build(draft_logp, contexts[i], width, depth, best_first)
        path, _ = verify_tree_greedy(tokens, parent, target_argmax, contexts[i])
        accepted[i] = path.shape[0]
    return accepted


def acceptance_at_contexts_reference(
    draft_logp, target_argmax, contexts, width, depth, best_first
):
    """Plain-Python :func:`acceptance_at_contexts`."""
    accepted = np.empty(len(contexts), dtype=np.int64)
    for i, ctx in enumerate(contexts):
        tokens, parent = _build_reference(draft_logp, ctx, width, depth, best_first)
        path, _ = verify_tree_greedy_reference(tokens, parent, target_argmax, ctx)
        accepted[i] = len(path)
    return accepted


@numba.njit(cache=True)
def speculative_decode(
    draft_logp, target_argmax, prompts, n_new, width, depth, best_first
):
    """Decode ``n_new`` tokens after each prompt by drafting trees and verifying them.

    Each step builds a tree of ``width * depth`` nodes from the last two tokens
    (equal-growth, or best-first when ``best_first``), verifies it greedily and emits
    the accepted tokens and the bonus token.

    Parameters
    ----------
    draft_logp : float32 array, shape (V, V, V)
    target_argmax : int32 array, shape (V, V)
    prompts : int32 array, shape (n_prompts, 2)
    n_new, width, depth : int
    best_first : bool

    Returns
    -------
    out : int32 array, shape (n_prompts, n_new)
        The decoded tokens.
    n_steps, n_accepted : int64 arrays, shape (n_prompts,)
        Draft-verify steps taken, and draft tokens accepted, per prompt.
    """
    n_prompts = prompts.shape[0]
    out = np.empty((n_prompts, n_new), dtype=np.int32)
    n_steps = np.zeros(n_prompts, dtype=np.int64)
    n_accepted = np.zeros(n_prompts, dtype=np.int64)
    prefix = np.empty(2, dtype=np.int32)
    for p in range(n_prompts):
        prefix[0], prefix[1] = prompts[p, 0], prompts[p, 1]
        filled = 0
        while filled < n_new:
            tokens, parent = _build(draft_logp, prefix, width, depth, best_first)
            path, bonus = verify_tree_greedy(tokens, parent, target_argmax, prefix)
            n_steps[p] += 1
            n_accepted[p] += path.shape[0]
            for k in range(path.shape[0] + 1):
                t = tokens[path[k]] if k < path.shape[0] else bonus
                if filled < n_new:
                    out[p, filled] = t
                    filled += 1
                prefix[0], prefix[1] = prefix[1], t
    return out, n_steps, n_accepted


def speculative_decode_reference(
    draft_logp, target_argmax, prompts, n_new, width, depth, best_first
):
    """Plain-Python :func:`speculative_decode`, built on the reference kernels."""
    n_prompts = len(prompts)
    out = np.empty((n_prompts, n_new), dtype=np.int32)
    n_steps = np.zeros(n_prompts, dtype=np.int64)
    n_accepted = np.zeros(n_prompts, dtype=np.int64)
    for p in range(n_prompts):
        prefix = [int(prompts[p][0]), int(prompts[p][1])]
        emitted: list[int] = []
        while len(emitted) < n_new:
            tokens, parent = _build_reference(
                draft_logp, prefix, width, depth, best_first
            )
            path, bonus = verify_tree_greedy_reference(
                tokens, parent, target_argmax, prefix
            )
            n_steps[p] += 1
            n_accepted[p] += len(path)
            for t in [int(tokens[j]) for j in path] + [bonus]:
                emitted.append(t)
                prefix = [prefix[1], t]
        out[p] = emitted[:n_new]
    return out, n_steps, n_accepted


# ------------------------------------------------------------------ benchmarks


def _bench_inputs(vocab: int, n_prompts: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((vocab, vocab, vocab))
    logp = logits - np.log(np.exp(logits).sum(axis=2, keepdims=True))
    draft_logp = logp.astype(np.float32)
    target_argmax = np.argmax(
        logits + 0.7 * rng.standard_normal(logits.shape), axis=2
    ).astype(np.int32)
    prompts = rng.integers(0, vocab, size=(n_prompts, 2)).astype(np.int32)
    return draft_logp, target_argmax, prompts


def _numpy_equal_growth(draft_logp, prefix, width, depth):
    """The best NumPy formulation: per level, score all candidates and argsort."""
    vocab = draft_logp.shape[0]
    tokens = np.empty(width * depth, dtype=np.int32)
    parent = np.empty(width * depth, dtype=np.int32)
    a = np.array([prefix[0]])
    b = np.array([prefix[1]])
    base = np.zeros(1)
    nodes = np.array([-1])
    for level in range(depth):
        scores = (base[:, None] + draft_logp[a, b].astype(np.float64)).ravel()
        keep = np.argsort(-scores, kind="stable")[:width]
        front, tok = np.divmod(keep, vocab)
        sl = slice(level * width, (level + 1) * width)
        tokens[sl], parent[sl] = tok, nodes[front]
        a, b, base = b[front], tok, scores[keep]
        nodes = np.arange(sl.start, sl.stop)
    return tokens, parent


def benchmarks() -> list[BenchCase]:
    """Benchmark cases: tree building (with its NumPy form) and the decoding loop."""
    draft_logp, target_argmax, prompts = _bench_inputs(64, 8)
    prefix = prompts[0]
    contexts = np.repeat(prompts, 50, axis=0)
    n_trees = 200

    def many(build, *args):
        return lambda: [
            build(draft_logp, prompts[i % 8], *args) for i in range(n_trees)
        ]

    return [
        BenchCase(
            name="build_equal_growth_tree",
            size=f"{n_trees} trees, V=64, width=8, depth=8",
            kernel=many(build_equal_growth_tree, 8, 8),
            reference=many(build_equal_growth_tree_reference, 8, 8),
            numpy=many(_numpy_equal_growth, 8, 8),
        ),
        BenchCase(
            name="build_best_first_tree",
            size="20 trees, V=64, 64 nodes",
            kernel=lambda: [
                build_best_first_tree(draft_logp, prefix, 64) for _ in range(20)
            ],
            reference=lambda: [
                build_best_first_tree_reference(draft_logp, prefix, 64)
                for _ in range(20)
            ],
        ),
        BenchCase(
            name="acceptance_at_contexts",
            size="400 contexts, V=64, width=4, depth=4",
            kernel=lambda: acceptance_at_contexts(
                draft_logp, target_argmax, contexts, 4, 4, False
            ),
            reference=lambda: acceptance_at_contexts_reference(
                draft_logp, target_argmax, contexts, 4, 4, False
            ),
        ),
        BenchCase(
            name="speculative_decode",
            size="8 prompts x 100 tokens, V=64, width=4, depth=4",
            kernel=lambda: speculative_decode(
                draft_logp, target_argmax, prompts, 100, 4, 4, False
            ),
            reference=lambda: speculative_decode_reference(
                draft_logp, target_argmax, prompts, 100, 4, 4, False
            ),
        ),
    ]

"""Spec-tree kernels against their plain-Python references."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.kernels import spec_trees as k


def _inputs(vocab, seed, ties=False):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((vocab, vocab, vocab))
    if ties:  # few distinct values, so equal scores are common
        logits = np.round(logits)
    logp = logits - np.log(np.exp(logits).sum(axis=2, keepdims=True))
    target = rng.integers(0, vocab, size=(vocab, vocab)).astype(np.int32)
    prefix = rng.integers(0, vocab, size=2).astype(np.int32)
    return logp.astype(np.float32), target, prefix


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@settings(max_examples=40, deadline=None)
@given(
    vocab=st.integers(1, 12),
    width=st.integers(1, 12),
    depth=st.integers(0, 5),
    seed=st.integers(0, 10_000),
    ties=st.booleans(),
)
def test_equal_growth_matches_reference_and_numpy(vocab, width, depth, seed, ties):
    width = min(width, vocab)
    logp, _, prefix = _inputs(vocab, seed, ties)
    got = k.build_equal_growth_tree(logp, prefix, width, depth)
    assert _same(got, k.build_equal_growth_tree_reference(logp, prefix, width, depth))
    assert _same(got, k._numpy_equal_growth(logp, prefix, width, depth))
    tokens, parent = got
    assert tokens.shape == (width * depth,)
    # Every level has exactly `width` nodes whose parents lie on the previous level.
    for level in range(depth):
        p = parent[level * width : (level + 1) * width]
        if level == 0:
            assert np.all(p == -1)
        else:
            assert np.all((p >= (level - 1) * width) & (p < level * width))


@settings(max_examples=40, deadline=None)
@given(
    vocab=st.integers(1, 10),
    n_nodes=st.integers(0, 25),
    seed=st.integers(0, 10_000),
    ties=st.booleans(),
)
def test_best_first_matches_reference(vocab, n_nodes, seed, ties):
    logp, _, prefix = _inputs(vocab, seed, ties)
    got = k.build_best_first_tree(logp, prefix, n_nodes)
    assert _same(got, k.build_best_first_tree_reference(logp, prefix, n_nodes))
    tokens, parent = got
    assert np.all(parent < np.arange(n_nodes))  # parents come first
    pairs = set(zip(parent.tolist(), tokens.tolist(), strict=True))
    assert len(pairs) == n_nodes  # no child drafted twice


def test_best_first_tree_is_the_top_scoring_subtree_brute_force():
    # With 3 tokens and 4 nodes, enumerate every path up to depth 4 and check the
    # tree holds the 4 highest-scoring paths (scores decrease along a path).
    logp, _, prefix = _inputs(3, 7)
    tokens, parent = k.build_best_first_tree(logp, prefix, 4)
    scores = {}

    def walk(a, b, path, score):
        if len(path) == 4:
            return
        for t in range(3):
            s = score + float(logp[a, b, t])
            scores[tuple(path + [t])] = s
            walk(b, t, path + [t], s)

    walk(int(prefix[0]), int(prefix[1]), [], 0.0)
    best = sorted(scores.values(), reverse=True)[:4]
    paths = []
    for j in range(4):
        paths.append((paths[parent[j]] if parent[j] >= 0 else ()) + (int(tokens[j]),))
    assert sorted((scores[p] for p in paths), reverse=True) == best


@settings(max_examples=40, deadline=None)
@given(
    vocab=st.integers(1, 8),
    n_nodes=st.integers(0, 20),
    seed=st.integers(0, 10_000),
)
def test_verify_matches_reference(vocab, n_nodes, seed):
    logp, target, prefix = _inputs(vocab, seed)
    tokens, parent = k.build_best_first_tree(logp, prefix, n_nodes)
    got = k.verify_tree_greedy(tokens, parent, target, prefix)
    want = k.verify_tree_greedy_reference(tokens, parent, target, prefix)
    assert np.array_equal(got[0], want[0]) and got[1] == want[1]


def test_verify_edge_cases():
    target = np.array([[1, 0], [1, 1]], dtype=np.int32)
    prefix = np.array([0, 0], dtype=np.int32)
    empty = np.empty(0, dtype=np.int32)
    path, bonus = k.verify_tree_greedy(empty, empty, target, prefix)
    assert path.size == 0 and bonus == 1  # empty tree: plain greedy step
    one = np.array([1], dtype=np.int32)
    path, bonus = k.verify_tree_greedy(one, np.array([-1], np.int32), target, prefix)
    assert path.tolist() == [0] and bonus == target[0, 1]


@settings(max_examples=20, deadline=None)
@given(
    vocab=st.integers(2, 8),
    width=st.integers(1, 4),
    depth=st.integers(1, 4),
    best_first=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_decoding_matches_reference_and_is_lossless(
    vocab, width, depth, best_first, seed
):
    width = min(width, vocab)
    logp, target, _ = _inputs(vocab, seed)
    prompts = np.random.default_rng(seed).integers(0, vocab, (3, 2)).astype(np.int32)
    got = k.speculative_decode(logp, target, prompts, 15, width, depth, best_first)
    want = k.speculative_decode_reference(
        logp, target, prompts, 15, width, depth, best_first
    )
    assert _same(got, want)
    for p in range(3):  # greedy decoding by hand
        a, b = prompts[p]
        for j in range(15):
            a, b = b, target[a, b]
            assert got[0][p, j] == b
    acc = k.acceptance_at_contexts(logp, target, prompts, width, depth, best_first)
    ref = k.acceptance_at_contexts_reference(
        logp, target, prompts, width, depth, best_first
    )
    assert np.array_equal(acc, ref)


def test_acceptance_with_no_contexts():
    logp, target, _ = _inputs(4, 0)
    empty = np.empty((0, 2), dtype=np.int32)
    assert k.acceptance_at_contexts(logp, target, empty, 2, 2, False).size == 0


def test_benchmarks_listed():
    cases = k.benchmarks()
    assert {c.name for c in cases} >= {"build_equal_growth_tree", "speculative_decode"}

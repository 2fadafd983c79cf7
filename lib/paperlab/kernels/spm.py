"""Stagewise pairwise mixing (SPM): forward and closed-form backward kernels.

An SPM operator is a product of ``L`` sparse stages. Stage ``l`` splits the ``n``
coordinates into ``n/2`` disjoint pairs ``(i, j) = pairs[l, k]`` and applies an
independent 2x2 block ``[[a, b], [c, d]] = blocks[l, k]`` to each pair::

    y_i = a * x_i + b * x_j
    y_j = c * x_i + d * x_j

(Farag, arXiv:2512.23905, the general 2x2 parameterization; the rotation variant is the
special case ``a = d = cos(theta)``, ``c = -b = sin(theta)``.) A forward pass costs
``6 * n/2`` floating-point operations per stage and sample instead of ``2 * n**2`` for a
dense matrix.

The backward pass is closed-form per stage: the input gradient is the transposed block
applied to the output gradient, and the block's gradient is the outer product of the
output gradient pair with the stage's input pair, summed over the batch.

Each kernel takes ``x`` of shape ``(batch, n)``, ``blocks`` of shape ``(L, n/2, 4)``
(same float dtype as ``x``) and ``pairs`` of shape ``(L, n/2, 2)`` (integers). Inside a
stage the pairs are processed in order and in place, so a stage whose pairs share an
index gives the same (sequential) result in the kernel and in its reference; the
chapter module builds only disjoint pairings.

The kernels are serial. With ``parallel=True`` and ``prange`` over the batch they were
4 to 20 times slower on the book's shared two-core machine (threads competing with
other processes), so parallelism did not measurably help.
"""

from __future__ import annotations

import numba
import numpy as np

from paperlab.kernels import BenchCase
from paperlab.validation import check_array

__all__ = [
    "spm_forward",
    "spm_forward_reference",
    "spm_backward",
    "spm_backward_reference",
    "benchmarks",
]


def _check_inputs(
    x: np.ndarray, blocks: np.ndarray, pairs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and convert kernel inputs; return C-contiguous arrays."""
    x = check_array("x", x, ndim=2)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"x must have dtype float32 or float64, got {x.dtype}")
    n = x.shape[1]
    if n % 2:
        raise ValueError(f"x must have an even number of columns, got {n}")
    pairs = check_array("pairs", pairs, ndim=3, shape=(None, n // 2, 2))
    if not np.issubdtype(pairs.dtype, np.integer):
        raise TypeError(f"pairs must hold integers, got dtype {pairs.dtype}")
    if pairs.size and (pairs.min() < 0 or pairs.max() >= n):
        raise ValueError(f"pairs must index columns 0..{n - 1} of x")
    blocks = check_array(
        "blocks", blocks, ndim=3, shape=(pairs.shape[0], n // 2, 4), dtype=x.dtype
    )
    return (
        np.ascontiguousarray(x),
        np.ascontiguousarray(blocks),
        np.ascontiguousarray(pairs, dtype=np.int32),
    )


@numba.njit(cache=True)
def _mix_columns(z, blocks, pairs, stage):
    """Apply stage ``stage`` in place to ``z`` of shape (n, batch)."""
    for k in range(pairs.shape[1]):
        a, b = blocks[stage, k, 0], blocks[stage, k, 1]
        c, d = blocks[stage, k, 2], blocks[stage, k, 3]
        zi = z[pairs[stage, k, 0]]
        zj = z[pairs[stage, k, 1]]
        for row in range(z.shape[1]):
            u = zi[row]
            v = zj[row]
            zi[row] = a * u + b * v
            zj[row] = c * u + d * v


@numba.njit(cache=True)
def _forward_kernel(x, blocks, pairs):
    # Work on x transposed, (n, batch): the inner loop over the batch is contiguous
    # and vectorises, which is 2-3x faster than looping pairs inside each row.
    z = x.T.copy()
    for stage in range(pairs.shape[0]):
        _mix_columns(z, blocks, pairs, stage)
    return z.T.copy()


@numba.njit(cache=True, fastmath={"reassoc"})
def _backward_kernel(grad_y, x, blocks, pairs):
    n_stages, n_pairs = pairs.shape[0], pairs.shape[1]
    acts = np.empty((n_stages + 1, x.shape[1], x.shape[0]), dtype=x.dtype)
    acts[0] = x.T
    for stage in range(n_stages):
        acts[stage + 1] = acts[stage]
        _mix_columns(acts[stage + 1], blocks, pairs, stage)
    g = grad_y.T.copy()
    grad_blocks = np.empty_like(blocks)
    for stage in range(n_stages - 1, -1, -1):
        for k in range(n_pairs - 1, -1, -1):
            a, b = blocks[stage, k, 0], blocks[stage, k, 1]
            c, d = blocks[stage, k, 2], blocks[stage, k, 3]
            i, j = pairs[stage, k, 0], pairs[stage, k, 1]
            xi, xj, gi, gj = acts[stage, i], acts[stage, j], g[i], g[j]
            s0 = s1 = s2 = s3 = x.dtype.type(0)
            for row in range(g.shape[1]):
                u = gi[row]
                v = gj[row]
                s0 += u * xi[row]
                s1 += u * xj[row]
                s2 += v * xi[row]
                s3 += v * xj[row]
                gi[row] = a * u + c * v
                gj[row] = b * u + d * v
            grad_blocks[stage, k, 0] = s0
            grad_blocks[stage, k, 1] = s1
            grad_blocks[stage, k, 2] = s2
            grad_blocks[stage, k, 3] = s3
    return g.T.copy(), grad_blocks


def spm_forward(x: np.ndarray, blocks: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Apply the SPM stages to every row of ``x`` (Numba).

    Parameters
    ----------
    x : ndarray of shape (batch, n), float32 or float64
        Input rows.
    blocks : ndarray of shape (L, n/2, 4)
        The 2x2 block ``[a, b, c, d]`` of every pair of every stage.
    pairs : ndarray of shape (L, n/2, 2), integer
        The coordinate pair ``(i, j)`` each block mixes.

    Returns
    -------
    ndarray of shape (batch, n)
        ``x`` after the ``L`` stages, same dtype as ``x``.

    Raises
    ------
    TypeError, ValueError
        If the shapes, dtypes or indices are inconsistent.
    """
    x, blocks, pairs = _check_inputs(x, blocks, pairs)
    return _forward_kernel(x, blocks, pairs)


def spm_backward(
    grad_y: np.ndarray, x: np.ndarray, blocks: np.ndarray, pairs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form gradients of an SPM forward pass (Numba).

    The stage inputs are recomputed from ``x``; then, stage by stage from the last,
    ``(g_i, g_j) <- B^T (g_i, g_j)`` and ``dB += (g_i, g_j)^T (x_i, x_j)``.

    Parameters
    ----------
    grad_y : ndarray of shape (batch, n)
        Gradient of the loss with respect to the forward output.
    x, blocks, pairs
        The forward pass's inputs, as in :func:`spm_forward`.

    Returns
    -------
    grad_x : ndarray of shape (batch, n)
        Gradient with respect to ``x``.
    grad_blocks : ndarray of shape (L, n/2, 4)
        Gradient with respect to ``blocks``, summed over the batch in the dtype of
        ``x``.

    Raises
    ------
    TypeError, ValueError
        If the shapes, dtypes or indices are inconsistent.
    """
    x, blocks, pairs = _check_inputs(x, blocks, pairs)
    grad_y = check_array("grad_y", grad_y, shape=x.shape, dtype=x.dtype)
    return _backward_kernel(np.ascontiguousarray(grad_y), x, blocks, pairs)


def spm_forward_reference(
    x: np.ndarray, blocks: np.ndarray, pairs: np.ndarray
) -> np.ndarray:
    """Plain-Python loops computing exactly what :func:`spm_forward` computes."""
    x, blocks, pairs = _check_inputs(x, blocks, pairs)
    out = x.copy()
    for row in range(out.shape[0]):
        z = out[row]
        for stage in range(pairs.shape[0]):
            for k in range(pairs.shape[1]):
                i, j = pairs[stage, k]
                a, b, c, d = blocks[stage, k]
                z[i], z[j] = a * z[i] + b * z[j], c * z[i] + d * z[j]
    return out


def spm_backward_reference(
    grad_y: np.ndarray, x: np.ndarray, blocks: np.ndarray, pairs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Plain-Python loops computing exactly what :func:`spm_backward` computes."""
    x, blocks, pairs = _check_inputs(x, blocks, pairs)
    grad_y = check_array("grad_y", grad_y, shape=x.shape, dtype=x.dtype)
    n_stages, n_pairs = pairs.shape[:2]
    grad_x = np.empty_like(x)
    grad_blocks = np.zeros((n_stages, n_pairs, 4), dtype=x.dtype)
    for row in range(x.shape[0]):
        acts = [x[row].copy()]
        for stage in range(n_stages):
            z = acts[-1].copy()
            for k in range(n_pairs):
                i, j = pairs[stage, k]
                a, b, c, d = blocks[stage, k]
                z[i], z[j] = a * z[i] + b * z[j], c * z[i] + d * z[j]
            acts.append(z)
        g = grad_y[row].copy()
        for stage in reversed(range(n_stages)):
            for k in reversed(range(n_pairs)):
                i, j = pairs[stage, k]
                a, b, c, d = blocks[stage, k]
                xi, xj, gi, gj = acts[stage][i], acts[stage][j], g[i], g[j]
                grad_blocks[stage, k] += (gi * xi, gi * xj, gj * xi, gj * xj)
                g[i], g[j] = a * gi + c * gj, b * gi + d * gj
        grad_x[row] = g
    return grad_x, grad_blocks


def _numpy_forward(x: np.ndarray, blocks: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Stage-by-stage NumPy formulation: gather each pair's columns, mix, scatter."""
    out = x.copy()
    for stage in range(pairs.shape[0]):
        i, j = pairs[stage, :, 0], pairs[stage, :, 1]
        a, b, c, d = blocks[stage].T
        xi, xj = out[:, i], out[:, j]
        out[:, i] = a * xi + b * xj
        out[:, j] = c * xi + d * xj
    return out


def _numpy_backward(
    grad_y: np.ndarray, x: np.ndarray, blocks: np.ndarray, pairs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Stage-by-stage NumPy formulation of the closed-form backward pass."""
    acts = [x]
    for stage in range(pairs.shape[0]):
        acts.append(
            _numpy_forward(
                acts[-1], blocks[stage : stage + 1], pairs[stage : stage + 1]
            )
        )
    g = grad_y.copy()
    grad_blocks = np.empty_like(blocks)
    for stage in reversed(range(pairs.shape[0])):
        i, j = pairs[stage, :, 0], pairs[stage, :, 1]
        a, b, c, d = blocks[stage].T
        xi, xj, gi, gj = acts[stage][:, i], acts[stage][:, j], g[:, i], g[:, j]
        grad_blocks[stage] = np.stack(
            [(gi * xi).sum(0), (gi * xj).sum(0), (gj * xi).sum(0), (gj * xj).sum(0)],
            axis=1,
        )
        g[:, i] = a * gi + c * gj
        g[:, j] = b * gi + d * gj
    return g, grad_blocks


def _butterfly(n: int, n_stages: int) -> np.ndarray:
    """Butterfly pairing ``j = i XOR 2**l`` for the benchmark inputs."""
    index = np.arange(n)
    stages = []
    for stage in range(n_stages):
        stride = 1 << (stage % max(1, n.bit_length() - 1))
        first = index[(index & stride) == 0]
        stages.append(np.stack([first, first ^ stride], axis=1))
    return np.asarray(stages, dtype=np.int32)


def benchmarks() -> list[BenchCase]:
    """Forward and backward at batch 64, n = 512, L = 9 (float32, random rotations)."""
    n_batch, n, n_stages = 64, 512, 9
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n_batch, n)).astype(np.float32)
    grad_y = rng.standard_normal((n_batch, n)).astype(np.float32)
    theta = rng.uniform(-np.pi, np.pi, (n_stages, n // 2))
    cos, sin = np.cos(theta), np.sin(theta)
    blocks = np.stack([cos, -sin, sin, cos], axis=-1).astype(np.float32)
    pairs = _butterfly(n, n_stages)
    size = f"batch={n_batch}, n={n}, L={n_stages}"
    streamed = 2 * x.nbytes + blocks.nbytes + pairs.nbytes
    return [
        BenchCase(
            name="spm_forward",
            size=size,
            kernel=lambda: spm_forward(x, blocks, pairs),
            reference=lambda: spm_forward_reference(x, blocks, pairs),
            numpy=lambda: _numpy_forward(x, blocks, pairs),
            bytes_moved=streamed,
        ),
        BenchCase(
            name="spm_backward",
            size=size,
            kernel=lambda: spm_backward(grad_y, x, blocks, pairs),
            reference=lambda: spm_backward_reference(grad_y, x, blocks, pairs),
            numpy=lambda: _numpy_backward(grad_y, x, blocks, pairs),
            bytes_moved=streamed + 2 * x.nbytes,
        ),
    ]

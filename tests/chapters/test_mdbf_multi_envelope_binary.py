"""MDBF: storage accounting, exact sub-steps, the kernel path, and the claim pair."""

from __future__ import annotations

import numpy as np
import pytest

from paperlab.claims import ClaimFailed
from paperlab.efficient_transformers import mdbf_multi_envelope_binary as ch
from paperlab.kernels.binary_factor import binary_factor_matvec

SMALL = dict(n_rows=96, n_cols=96, ranks=(24, 48), n_matrices=3, n_iter=3,
             budgets=(2.0,))  # fmt: skip


@pytest.fixture(scope="module")
def matrix():
    return ch.make_test_matrix(48, 40, np.random.default_rng(0))


def test_storage_bits_counts_packed_signs_and_envelopes(matrix):
    f, _ = ch.factorize(matrix, 13, 2, n_iter=1)
    expected = 8 * (-(-48 * 13 // 8) + -(-40 * 13 // 8)) + 16 * 2 * (48 + 40 + 26)
    assert f.storage_bits() == expected == ch.storage_bits(48, 40, 13, 2)
    assert f.signs_a.dtype == np.uint8 and f.A.dtype == np.float16


def test_rank_for_budget_is_the_largest_rank_that_fits():
    for n_env in (1, 3):
        R = ch.rank_for_budget(256, 256, 1.5, n_env)
        assert ch.storage_bits(256, 256, R, n_env) <= 1.5 * 256 * 256
        assert ch.storage_bits(256, 256, R + 1, n_env) > 1.5 * 256 * 256
    assert ch.rank_for_budget(256, 256, 1.5, 3) < ch.rank_for_budget(256, 256, 1.5, 1)


def test_envelope_rank_is_really_used(matrix):
    f, _ = ch.factorize(matrix, 16, 3, n_iter=2)
    envelope = f.A.astype(float) @ f.Q.astype(float).T
    s = np.linalg.svd(envelope, compute_uv=False)
    assert s[2] > 1e-3 * s[0]  # rank 3, not collapsed to DBF's rank one


def test_factorize_never_worse_than_start_and_matches_reconstruction(matrix):
    f, trace = ch.factorize(matrix, 16, 2, n_iter=4)
    assert np.all(np.diff(trace) <= 1e-10)  # every step is an exact minimization
    err = ch.relative_error(matrix, f.reconstruct())
    assert err == pytest.approx(trace[-1], abs=5e-3)  # float16 envelopes


def test_row_envelope_solves_least_squares_brute_force(matrix):
    rng = np.random.default_rng(1)
    R, n_env = 6, 2
    V = rng.standard_normal((40, R))
    S = np.where(rng.random((48, R)) < 0.5, -1.0, 1.0)
    Q = rng.standard_normal((R, n_env))
    A = ch.fit_row_envelope(matrix, V, S, Q)
    i = 5  # row i of U V^T is A_i (V diag(S_i) Q)^T: an ordinary lstsq
    D = V @ (S[i][:, None] * Q)
    expected = np.linalg.lstsq(D, matrix[i], rcond=None)[0]
    np.testing.assert_allclose(A[i], expected, rtol=1e-6, atol=1e-8)


def test_mixing_envelope_solves_least_squares_brute_force(matrix):
    rng = np.random.default_rng(2)
    R, n_env = 5, 2
    V = rng.standard_normal((40, R))
    S = np.where(rng.random((48, R)) < 0.5, -1.0, 1.0)
    A = rng.standard_normal((48, n_env))
    Q = ch.fit_mixing_envelope(matrix, V, S, A)
    design = np.stack([np.outer(S[:, r] * A[:, k], V[:, r]).ravel()
                       for r in range(R) for k in range(n_env)], axis=1)  # fmt: skip
    expected = np.linalg.lstsq(design, matrix.ravel(), rcond=None)[0].reshape(R, n_env)
    np.testing.assert_allclose(Q, expected, rtol=1e-6, atol=1e-8)


def test_sign_sweep_is_optimal_per_coordinate(matrix):
    rng = np.random.default_rng(3)
    V = rng.standard_normal((40, 4))
    E = rng.random((48, 4))
    S = ch.update_signs(matrix, V, np.ones((48, 4)), E)
    best = np.linalg.norm(matrix - (S * E) @ V.T)
    for r in range(4):  # flipping any one sign of row 0 cannot help
        T = S.copy()
        T[0, r] *= -1
        assert np.linalg.norm(matrix - (T * E) @ V.T) >= best - 1e-12


def test_kernel_matvec_matches_dense_reconstruction(matrix):
    f, _ = ch.factorize(matrix, 70, 2, n_iter=1)
    Sa_bits, Sb_bits = f.sign_words()
    x = np.random.default_rng(4).standard_normal(40).astype(np.float32)
    y = binary_factor_matvec(Sa_bits, Sb_bits, f.A.astype(np.float32),
                             f.Q.astype(np.float32), f.B.astype(np.float32),
                             f.G.astype(np.float32), x, f.rank)  # fmt: skip
    np.testing.assert_allclose(y, f.reconstruct() @ x, rtol=1e-4, atol=1e-4)


def test_bad_inputs():
    with pytest.raises(ValueError, match="too small"):
        ch.rank_for_budget(64, 64, 0.2, 4)
    with pytest.raises(ValueError, match="all zero"):
        ch.factorize(np.zeros((4, 4)), 2, 1)
    with pytest.raises(TypeError, match="rank must be an integer"):
        ch.factorize(np.ones((4, 4)), 2.5, 1)
    with pytest.raises(ValueError, match="variant"):
        ch.run_experiment(ch.Config(variant="mdbf"))
    with pytest.raises(ValueError, match="envelope_rank must be >= 2"):
        ch.run_experiment(ch.Config(envelope_rank=1))
    with pytest.raises(TypeError, match="config must be a Config"):
        ch.run_experiment({"variant": "mechanism"})


@pytest.fixture(scope="module")
def results():
    return {v: ch.run_experiment(ch.Config(variant=v, **SMALL))
            for v in ("mechanism", "baseline")}  # fmt: skip


def test_claim_holds_for_mdbf(results):
    result = results["mechanism"]
    ch.check_claim(result)
    assert np.all(result.budget_bits <= np.array(SMALL["budgets"]) + 1e-12)


def test_claim_fails_for_dbf_baseline(results):
    with pytest.raises(ClaimFailed):
        ch.check_claim(results["baseline"])

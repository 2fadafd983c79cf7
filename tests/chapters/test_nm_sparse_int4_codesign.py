"""N:M sparse INT4 co-design: format, kernel, storage, cycle model and the claim."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from paperlab.claims import ClaimFailed
from paperlab.efficient_transformers import nm_sparse_int4_codesign as ch

SMALL = dict(layer_rows=64, layer_cols=256, seeds=(0, 1, 2), timing_repeats=1)


@pytest.fixture(scope="module")
def mechanism():
    return ch.run_experiment(ch.Config(**SMALL))


@pytest.fixture(scope="module")
def baseline():
    return ch.run_experiment(ch.Config(variant="random", **SMALL))


def _weights(rows=8, cols=128, seed=0):
    return np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32)


# ------------------------------------------------------------------ the claim


def test_claim_holds_for_magnitude_pruning(mechanism):
    ch.check_claim(mechanism)
    assert mechanism.compression > 4.9


def test_claim_fails_for_a_random_mask(baseline):
    with pytest.raises(ClaimFailed, match="compressed accuracy drops"):
        ch.check_claim(baseline)


def test_claim_fails_on_a_wrong_kernel_or_a_storage_mismatch(mechanism):
    with pytest.raises(ClaimFailed, match="relative error"):
        ch.check_claim(dataclasses.replace(mechanism, kernel_rel_error=1e-3))
    row = mechanism.storage[-1]
    bloated = dataclasses.replace(
        row, measured_bytes={**row.measured_bytes, "indices": 10**6}
    )
    with pytest.raises(ClaimFailed, match="formula"):
        ch.check_claim(
            dataclasses.replace(mechanism, storage=(*mechanism.storage[:-1], bloated))
        )


def test_claim_fails_when_int4_is_not_sparse_enough(mechanism):
    # 4:8 at 8 bits stores 5.75 bits per weight: under 4x smaller than float16
    result = ch.run_experiment(
        dataclasses.replace(mechanism.config, n=4, m=8, bits=8, seeds=(0,))
    )
    with pytest.raises(ClaimFailed, match="smaller than float16"):
        ch.check_claim(result)


# ----------------------------------------------------------------- the format


def test_magnitude_rule_keeps_the_largest_of_every_group():
    W = _weights()
    values, positions = ch.select_kept(W, 2, 4)
    groups = np.abs(W.reshape(8, -1, 4))
    brute = np.sort(np.argsort(-groups, axis=2, kind="stable")[:, :, :2], axis=2)
    np.testing.assert_array_equal(positions.reshape(8, -1, 2), brute)
    np.testing.assert_array_equal(
        values, np.take_along_axis(W.reshape(8, -1, 4), brute, 2).reshape(8, -1)
    )


def test_random_rule_keeps_n_distinct_positions_per_group():
    _, positions = ch.select_kept(_weights(), 2, 4, "random", np.random.default_rng(0))
    pos = positions.reshape(8, -1, 2)
    assert np.all(pos[:, :, 0] < pos[:, :, 1]) and pos.max() <= 3


@pytest.mark.parametrize(
    ("n", "m", "bits"), [(2, 4, 4), (1, 4, 4), (4, 8, 8), (2, 4, 3)]
)
def test_packed_matrix_dequantizes_to_the_quantized_pruned_weights(n, m, bits):
    W = _weights()
    packed = ch.pack_nm(W, n, m, bits, group_size=32)
    W_hat = packed.dequantize()
    kept = np.zeros_like(W, dtype=bool)
    values, positions = ch.select_kept(W, n, m)
    cols = (np.arange(values.shape[1]) // n) * m + positions
    np.put_along_axis(kept, cols.astype(np.int64), True, axis=1)
    assert np.all(W_hat[~kept] == 0)
    # each kept weight is within half a grid step (float16 scale, symmetric grid)
    step = np.repeat(packed.scales.astype(np.float32), 32, axis=1)
    assert np.all(np.abs(W_hat - W)[kept] <= 0.5 * step[kept] * 1.01 + 1e-6)


def test_packed_kernel_matches_dequantize_then_dense():
    W = _weights(16, 256)
    x = np.random.default_rng(1).standard_normal(256).astype(np.float32)
    for n, m, bits in [(2, 4, 4), (4, 8, 8), (1, 4, 4)]:
        packed = ch.pack_nm(W, n, m, bits)
        np.testing.assert_allclose(
            packed.matvec(x), packed.dequantize() @ x, rtol=1e-4, atol=1e-4
        )


@pytest.mark.parametrize(
    ("n", "m", "bits"), [(2, 4, 4), (1, 4, 8), (4, 8, 4), (3, 8, 3)]
)
def test_measured_bytes_equal_the_formula(n, m, bits):
    W = _weights(5, 192)
    for row in ch.storage_table(W, n, m, bits, group_size=64):
        for part, bits_needed in row.formula_bits.items():
            assert 8 * row.measured_bytes.get(part, 0) == bits_needed, (row.label, part)


def test_2_4_int4_costs_3_25_bits_per_weight():
    bits = ch.closed_form_bits("nm_int", 4096, 4096, 2, 4, 4, 64)
    assert bits == {
        "values": 2 * 4096 * 4096,  # 2 codes of 4 bits per 4 weights
        "indices": 4096 * 4096,  # 2 positions of 2 bits per 4 weights
        "scales": 4096 * 64 * 16,
    }
    assert sum(bits.values()) / 4096**2 == 3.25


def test_compress_mlp_leaves_the_output_layer_alone():
    rng = np.random.default_rng(0)
    layers = [(rng.standard_normal((8, 64)), np.zeros(8)),
              (rng.standard_normal((3, 8)), np.zeros(3))]  # fmt: skip
    out = ch.compress_mlp(layers, 2, 4, 4, group_size=8)
    assert np.count_nonzero(out[0][0]) <= 8 * 32
    np.testing.assert_array_equal(out[1][0], layers[1][0].astype(np.float32))


# ------------------------------------------------------------ the cycle model


def test_systolic_cycles_by_hand():
    # 2 x 2 tiles of a 4 x 4 array, K = 64: 4 * (64 + 6) dense
    assert ch.systolic_cycles(8, 64, 8, 4) == 4 * 70
    # 2:4 with 25% decode overhead: ceil(32 * 1.25) = 40 steps
    assert ch.systolic_cycles(8, 64, 8, 4, 2, 4, 0.25) == 4 * 46
    # without overhead the speed-up tends to m / n as K grows
    ratio = ch.systolic_cycles(1, 10**6, 1, 8) / ch.systolic_cycles(
        1, 10**6, 1, 8, 1, 4
    )
    assert 3.99 < ratio < 4.0


# ---------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_clear_errors():
    W = _weights()
    with pytest.raises(ValueError, match="multiple of m=4"):
        ch.pack_nm(W[:, :126])
    with pytest.raises(ValueError, match="n must be <= 3"):
        ch.pack_nm(W, 4, 4)
    with pytest.raises(ValueError, match="bits must be <= 8"):
        ch.pack_nm(W, bits=9)
    with pytest.raises(ValueError, match="group_size must be a multiple"):
        ch.pack_nm(W, group_size=6)
    with pytest.raises(ValueError, match="rule must be one of"):
        ch.select_kept(W, 2, 4, "smallest")
    with pytest.raises(TypeError, match="rng must be a numpy Generator"):
        ch.select_kept(W, 2, 4, "random")
    with pytest.raises(ValueError, match="finite"):
        ch.pack_nm(np.full((2, 8), np.nan))
    with pytest.raises(ValueError, match="variant must be one of"):
        ch.Config(variant="dense")
    with pytest.raises(TypeError, match="seeds must be a non-empty tuple"):
        ch.Config(seeds=[0])
    with pytest.raises(ValueError, match="decode_overhead must be >= 0"):
        ch.systolic_cycles(1, 8, 1, 4, 2, 4, -0.5)
    with pytest.raises(ValueError, match="sparsity_n must be <= 4"):
        ch.systolic_cycles(1, 8, 1, 4, 5, 4)
    with pytest.raises(TypeError, match="config must be a Config"):
        ch.run_experiment({"n": 2})
    with pytest.raises(ValueError, match="fmt must be one of"):
        ch.closed_form_bits("csr", 4, 4, 2, 4, 4, 4)

"""The checkpoint-I/O kernels against their plain-Python references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperlab.kernels import checkpoint_io as k

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def pieces(draw, max_pieces=12):
    """A source buffer and sorted, non-overlapping pieces to pack into a
    destination buffer with gaps (and slack at the end)."""
    n = draw(st.integers(min_value=0, max_value=max_pieces))
    sizes = draw(st.lists(st.integers(0, 40), min_size=n, max_size=n))
    gaps = draw(st.lists(st.integers(0, 9), min_size=n, max_size=n))
    src = np.frombuffer(draw(st.binary(min_size=64, max_size=256)), dtype=np.uint8)
    src_offsets = [
        draw(st.integers(0, src.shape[0] - size)) if size <= src.shape[0] else 0
        for size in sizes
    ]
    sizes = [min(size, src.shape[0]) for size in sizes]
    dst_offsets, pos = [], 0
    for size, gap in zip(sizes, gaps, strict=True):
        dst_offsets.append(pos + gap)
        pos += gap + size
    slack = draw(st.integers(0, 16))
    as_int = lambda xs: np.array(xs, dtype=np.int64)  # noqa: E731
    return src, as_int(src_offsets), as_int(sizes), pos + slack, as_int(dst_offsets)


@SETTINGS
@given(case=pieces(), fill=st.integers(0, 255))
def test_pack_aligned_matches_reference_and_numpy(case, fill):
    src, so, sz, n_dst, do = case
    outs = []
    for fn in (k.pack_aligned, k.pack_aligned_reference, k.pack_aligned_numpy):
        dst = np.full(n_dst, fill, dtype=np.uint8)  # stale bytes must be zeroed
        end = fn(src, so, sz, dst, do)
        outs.append((end, dst))
    for end, dst in outs[1:]:
        assert end == outs[0][0]
        np.testing.assert_array_equal(dst, outs[0][1])
    # independent check: an image built by slicing, zeros everywhere else
    expected = np.zeros(n_dst, dtype=np.uint8)
    for s, n, d in zip(so, sz, do, strict=True):
        expected[d : d + n] = src[s : s + n]
    np.testing.assert_array_equal(outs[0][1], expected)


def test_pack_aligned_edge_cases():
    src = np.arange(10, dtype=np.uint8)
    none = np.zeros(0, dtype=np.int64)
    dst = np.full(5, 7, dtype=np.uint8)
    assert k.pack_aligned(src, none, none, dst, none) == 0
    assert not dst.any()  # no pieces: the whole buffer is zeroed
    dst = np.full(6, 7, dtype=np.uint8)
    one = np.array([3], dtype=np.int64)
    end = k.pack_aligned(src, one, np.array([2], dtype=np.int64), dst, one - 2)
    assert end == 3 and dst.tolist() == [0, 3, 4, 0, 0, 0]
    empty_piece = k.pack_aligned(src, one, np.zeros(1, np.int64), dst, one)
    assert empty_piece == 3 and not dst.any()


@SETTINGS
@given(
    data=st.binary(min_size=0, max_size=300),
    cuts=st.lists(st.tuples(st.integers(0, 300), st.integers(0, 80)), max_size=8),
)
def test_fletcher64_matches_reference_and_numpy(data, cuts):
    buf = np.frombuffer(data, dtype=np.uint8)
    offsets = np.array([min(o, len(data)) for o, _ in cuts], dtype=np.int64)
    sizes = np.array(
        [min(n, len(data) - o) for o, (_, n) in zip(offsets, cuts, strict=True)],
        dtype=np.int64,
    )
    got = k.fletcher64(buf, offsets, sizes)
    np.testing.assert_array_equal(got, k.fletcher64_reference(buf, offsets, sizes))
    np.testing.assert_array_equal(got, k.fletcher64_numpy(buf, offsets, sizes))


@pytest.mark.parametrize(
    ("text", "expected"),
    [  # published Fletcher-64 test vectors (32-bit little-endian words)
        (b"abcde", 0xC8C6C527646362C6),
        (b"abcdef", 0xC8C72B276463C8C6),
        (b"abcdefgh", 0x312E2B28CCCAC8C6),
    ],
)
def test_fletcher64_known_values(text, expected):
    buf = np.frombuffer(text, dtype=np.uint8)
    ranges = (np.array([0]), np.array([len(text)]))
    for fn in (k.fletcher64, k.fletcher64_reference, k.fletcher64_numpy):
        assert int(fn(buf, *ranges)[0]) == expected


def test_fletcher64_edge_cases_and_order_sensitivity():
    none = np.zeros(0, dtype=np.int64)
    buf = np.frombuffer(b"abcdefgh", dtype=np.uint8)
    for fn in (k.fletcher64, k.fletcher64_reference, k.fletcher64_numpy):
        assert fn(buf, none, none).shape == (0,)
        assert int(fn(buf, np.array([3]), np.array([0]))[0]) == 0  # empty range
        assert int(fn(buf, np.array([1]), np.array([1]))[0]) == (98 << 32) | 98
    swapped = np.frombuffer(b"efghabcd", dtype=np.uint8)
    whole = (np.array([0]), np.array([8]))
    a, b = k.fletcher64(buf, *whole)[0], k.fletcher64(swapped, *whole)[0]
    assert a & 0xFFFFFFFF == b & 0xFFFFFFFF  # the plain sum cannot tell them apart
    assert a != b  # the second sum can
    # long ranges cross the kernel's deferred reductions
    big = np.full(4 * 5000 + 3, 255, dtype=np.uint8)
    args = (np.array([0, 1]), np.array([big.size, big.size - 1]))
    np.testing.assert_array_equal(
        k.fletcher64(big, *args), k.fletcher64_reference(big, *args)
    )


def test_benchmarks_are_well_formed():
    cases = k.benchmarks()
    assert {c.name for c in cases} == {"pack_aligned", "fletcher64"}
    for case in cases:
        assert callable(case.kernel) and callable(case.reference)
        assert case.numpy is not None and case.bytes_moved > 0

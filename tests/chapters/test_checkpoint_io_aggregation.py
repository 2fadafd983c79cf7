"""Tests of the checkpoint I/O chapter: layouts, writers, restore, claim."""

import math
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from paperlab.claims import ClaimFailed
from paperlab.kernels.checkpoint_io import fletcher64_reference, pack_aligned_reference
from paperlab.systems_data import checkpoint_io_aggregation as ch

KiB, MiB = ch.KiB, ch.MiB
SMALL = {
    "n_tensors": 1000,
    "n_repeats": 3,
    "sweep_chunks": (64 * KiB, 4 * MiB),
    "run_layouts": True,
}


@pytest.fixture
def scratch():
    with tempfile.TemporaryDirectory(prefix="test-ckpt-") as tmp:
        yield tmp


@pytest.fixture(scope="module")
def ckpt():
    return ch.make_checkpoint(
        300, np.random.default_rng(5), large_fraction=0.01, max_bytes=300 * KiB
    )


@pytest.fixture(scope="module")
def mechanism():
    return ch.run_experiment(ch.Config(**SMALL))


@pytest.fixture(scope="module")
def baseline():
    strategies = ("file_per_tensor", "write_per_tensor", "pwritev", "aggregated")
    config = ch.Config(
        variant="baseline",
        n_tensors=1000,
        strategies=strategies,
        run_sweep=False,
        run_layouts=False,
    )
    return ch.run_experiment(config)


def file_image(ckpt):
    """The shard file's bytes, built directly: tensors at their offsets, zeros
    between them."""
    image = np.zeros(ckpt.shard_bytes, dtype=np.uint8)
    for i in range(ckpt.n_tensors):
        start = ckpt.file_offsets[i]
        image[start : start + ckpt.nbytes[i]] = ckpt.view(i)
    return image


def read(path):
    with open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8)


def rank_dir(scratch):
    path = os.path.join(scratch, "rank0")
    os.makedirs(path, exist_ok=True)
    return path


# ------------------------------------------------------------------ the data


def test_checkpoint_layout(ckpt):
    assert ckpt.n_tensors == 300 and len(set(ckpt.names)) == 300
    itemsize = np.array([np.dtype(d).itemsize for d in ckpt.dtypes])
    assert np.all(ckpt.nbytes % itemsize == 0) and np.all(ckpt.nbytes > 0)
    assert np.all(ckpt.arena_offsets % 256 == 0)
    assert np.all(ckpt.file_offsets % ch.TENSOR_ALIGN == 0)
    ends = ckpt.file_offsets + ckpt.nbytes
    assert np.all(ckpt.file_offsets[1:] >= ends[:-1])  # no overlap
    assert ckpt.data_bytes == ckpt.nbytes.sum() <= ckpt.shard_bytes
    assert ckpt.tensor(7).shape == ckpt.shapes[7]
    assert ckpt.tensor(7).dtype == np.dtype(ckpt.dtypes[7])
    # checksums against the plain-Python reference, tensor by tensor
    ref = fletcher64_reference(ckpt.arena, ckpt.arena_offsets[:20], ckpt.nbytes[:20])
    np.testing.assert_array_equal(ckpt.checksums[:20], ref)


def test_checkpoint_sizes_follow_the_recipe():
    ckpt = ch.make_checkpoint(4000, np.random.default_rng(0))
    median = np.median(ckpt.nbytes)
    assert 1.5 * KiB < median < 2.6 * KiB  # median 2 KiB (rounded to shapes)
    assert ckpt.nbytes.max() <= 4 * MiB
    assert np.sum(ckpt.nbytes >= 200 * KiB) == 4  # 0.1% large tensors
    again = ch.make_checkpoint(4000, np.random.default_rng(0))
    np.testing.assert_array_equal(ckpt.arena, again.arena)


@pytest.mark.parametrize("chunk", [4096, 64 * KiB, 4 * MiB])
def test_chunk_plan_rebuilds_the_file(ckpt, chunk):
    plan = ch.plan_chunks(ckpt, chunk)
    assert plan.n_chunks == math.ceil(ckpt.shard_bytes / chunk)
    assert plan.lengths.sum() == ckpt.shard_bytes
    parts = []
    for c in range(plan.n_chunks):
        a, b = plan.bounds[c], plan.bounds[c + 1]
        assert np.all(np.diff(plan.dst_offsets[a:b]) > 0)
        assert np.all(plan.dst_offsets[a:b] + plan.sizes[a:b] <= plan.lengths[c])
        buf = np.full(int(plan.lengths[c]), 9, dtype=np.uint8)
        args = (plan.src_offsets[a:b], plan.sizes[a:b], buf, plan.dst_offsets[a:b])
        pack_aligned_reference(ckpt.arena, *args)
        parts.append(buf)
    np.testing.assert_array_equal(np.concatenate(parts), file_image(ckpt))


# ------------------------------------------------------------------- writing


def test_single_file_strategies_write_the_same_image(ckpt, scratch):
    image = file_image(ckpt)
    directory = rank_dir(scratch)
    path = os.path.join(directory, "shard.bin")
    plan = ch.plan_chunks(ckpt, 64 * KiB)
    buffers = ch.staging_buffers(64 * KiB, 4)
    with ThreadPoolExecutor(2) as pool:
        writers = {
            "per tensor": lambda: ch.write_per_tensor(ckpt, directory, path),
            "pwritev": lambda: ch.write_pwritev(ckpt, directory, path),
            "pwritev, 3 buffers per call": lambda: ch.write_pwritev(
                ckpt, directory, path, iov_max=3
            ),
            "aggregated": lambda: ch.write_aggregated(
                ckpt, directory, path, plan, buffers[:1]
            ),
            "aggregated, threads": lambda: ch.write_aggregated(
                ckpt, directory, path, plan, buffers, executor=pool
            ),
            "aggregated, O_DIRECT": lambda: ch.write_aggregated(
                ckpt,
                directory,
                path,
                plan,
                buffers,
                executor=pool,
                direct=True,
                final_size=ckpt.shard_bytes,
            ),
        }
        for name, write in writers.items():
            if "O_DIRECT" in name and not ch.probe_direct_io(scratch).supported:
                continue
            counts = write()
            np.testing.assert_array_equal(read(path), image, err_msg=name)
            assert ch.verify_restore(ckpt, directory).ok, name
            assert counts.opens == counts.closes == 2  # shard and index
            os.remove(path)
    assert counts.writes == plan.n_chunks + 1  # one per chunk, one for the index


def test_file_per_tensor_and_direct_per_tensor(ckpt, scratch):
    directory = rank_dir(scratch)
    counts = ch.write_file_per_tensor(ckpt, directory)
    assert len(os.listdir(directory)) == ckpt.n_tensors + 1
    assert counts.opens == counts.writes == ckpt.n_tensors + 1
    assert ch.verify_restore(ckpt, directory).ok
    if not ch.probe_direct_io(scratch).supported:
        pytest.skip("no O_DIRECT here")
    other = os.path.join(scratch, "direct")
    os.makedirs(other)
    path = os.path.join(other, "shard.bin")
    buffer = ch.staging_buffers(512 * KiB, 1)[0]
    counts = ch.write_direct_per_tensor(ckpt, other, path, buffer)
    assert counts.writes == ckpt.n_tensors + 1
    offsets = ch.direct_offsets(ckpt)
    assert np.all(offsets % ch.ALIGNMENT == 0)
    index = os.path.getsize(os.path.join(other, "index.json"))
    assert counts.bytes_written == np.sum(-(-ckpt.nbytes // 4096) * 4096) + index
    assert ch.verify_restore(ckpt, other).ok


def test_kernel_counts_match_the_code(ckpt, scratch):
    if ch._syscw() < 0:
        pytest.skip("no /proc/self/io")
    directory = rank_dir(scratch)
    path = os.path.join(directory, "shard.bin")
    for write in (
        lambda: ch.write_per_tensor(ckpt, directory, path),
        lambda: ch.write_pwritev(ckpt, directory, path, iov_max=64),
    ):
        before = ch._syscw()
        counts = write()
        assert ch._syscw() - before == counts.writes
        os.remove(path)


def test_verify_detects_a_flipped_byte(ckpt, scratch):
    directory = rank_dir(scratch)
    path = os.path.join(directory, "shard.bin")
    ch.write_per_tensor(ckpt, directory, path)
    victim = 11
    with open(path, "r+b") as f:
        f.seek(int(ckpt.file_offsets[victim]) + 1)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x40]))
    v = ch.verify_restore(ckpt, directory)
    assert not v.ok
    assert v.n_exact == v.n_checksum_ok == ckpt.n_tensors - 1


def test_direct_probe_and_filesystem(scratch):
    assert ch.filesystem_type("/proc") == "proc"
    probe = ch.probe_direct_io(scratch)
    assert probe.fs_type == ch.filesystem_type(scratch)
    assert os.listdir(scratch) == []  # the probe removed its file
    if probe.supported and probe.fs_type in ch.ALIGNING_FILESYSTEMS:
        assert probe.aligned_ok and probe.enforced
        assert probe.misaligned_buffer_error == "EINVAL"
        assert "EINVAL" in probe.message
    if os.path.isdir("/dev/shm"):
        with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
            shm_probe = ch.probe_direct_io(shm)
            assert shm_probe.fs_type == "tmpfs" and not shm_probe.enforced


# ------------------------------------------------------------ the experiment


def test_records_are_consistent(mechanism):
    config = mechanism.config
    assert mechanism.data_bytes > 0 and mechanism.n_tensors == 2 * config.n_tensors
    for r in mechanism.records:
        if r.kernel_write_calls >= 0:
            assert r.kernel_write_calls == r.write_calls, r
        assert r.opens == r.closes
        unsynced = (
            r.strategy == "file_per_tensor" or r.chunk_bytes != config.chunk_bytes
        )
        assert math.isnan(r.durable_seconds) == unsynced
        if not math.isnan(r.durable_seconds):
            assert r.durable_seconds >= r.submit_seconds > 0
    assert len(mechanism.runs("file_per_tensor")) == config.slow_repeats
    assert len(mechanism.runs("direct_per_tensor")) == config.n_repeats
    assert len(mechanism.runs("aggregated")) == config.n_repeats
    assert mechanism.has("aggregated", 64 * KiB)
    assert mechanism.has("aggregated", layout="shared_file")
    shared = mechanism.runs("aggregated", layout="shared_file")[0]
    assert all(v.ok for v in shared.verification)
    fpt = mechanism.median("file_per_tensor", "files") / 2
    assert fpt == config.n_tensors + 1
    assert mechanism.median("aggregated", "files") == 4  # shard + index per rank
    assert mechanism.median("aggregated", "files", layout="shared_file") == 3
    assert len(mechanism.rows()) == len(ch.STRATEGIES) - len(mechanism.skipped)


def test_claim_holds_for_the_mechanism(mechanism):
    ch.check_claim(mechanism)
    assert mechanism.ratio("aggregated", "file_per_tensor", clock="cpu") >= 2


def test_claim_fails_for_the_baseline(baseline):
    # the baseline runs one write per tensor in place of every coalescing strategy
    calls = baseline.median("aggregated", "write_calls")
    assert calls == baseline.median("write_per_tensor", "write_calls")
    assert baseline.median("aggregated", "files") == 4  # still one shard per rank
    with pytest.raises(ClaimFailed):
        ch.check_claim(baseline)


def test_claim_fails_when_restores_are_wrong(mechanism):
    import dataclasses

    bad = ch.Verification(10, 9, 10, 0.0)
    records = tuple(
        dataclasses.replace(r, verification=(bad,)) if r.verification else r
        for r in mechanism.records
    )
    with pytest.raises(ClaimFailed, match="restored 9 exact"):
        ch.check_claim(dataclasses.replace(mechanism, records=records))


def test_plots(mechanism):
    import matplotlib.pyplot as plt

    for fig in (
        ch.plot_throughput(mechanism),
        ch.plot_sweep(mechanism),
        ch.plot_explore(mechanism, 64 * KiB),
    ):
        assert fig.axes
        plt.close(fig)


# ------------------------------------------------------------------ bad input


def test_bad_inputs(ckpt, scratch, mechanism):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="n_tensors"):
        ch.make_checkpoint(0, rng)
    with pytest.raises(TypeError, match="rng"):
        ch.make_checkpoint(10, 0)
    with pytest.raises(ValueError, match="sigma"):
        ch.make_checkpoint(10, rng, sigma=-1.0)
    with pytest.raises(ValueError, match="multiple of 4096"):
        ch.plan_chunks(ckpt, 5000)
    with pytest.raises(TypeError, match="checkpoint"):
        ch.plan_chunks("ckpt", 4096)
    with pytest.raises(ValueError, match="n_buffers"):
        ch.staging_buffers(4096, 0)
    plan = ch.plan_chunks(ckpt, 4096)
    with pytest.raises(ValueError, match="at least two buffers"):
        ch.write_aggregated(
            ckpt, scratch, "x", plan, ch.staging_buffers(4096, 1), executor=object()
        )
    with pytest.raises(ValueError, match="buffers"):
        ch.write_aggregated(ckpt, scratch, "x", plan, ch.staging_buffers(8192, 1)[:0])
    with pytest.raises(ValueError, match="files must name"):
        ch.index_bytes(ckpt, ["a.bin"])
    with pytest.raises(ValueError, match="directory"):
        ch.probe_direct_io(os.path.join(scratch, "missing"))
    with pytest.raises(ValueError, match="iov_max"):
        ch.write_pwritev(ckpt, scratch, os.path.join(scratch, "x"), iov_max=1)
    with pytest.raises(TypeError, match="config"):
        ch.run_experiment({"n_tensors": 10})
    with pytest.raises(TypeError, match="result"):
        ch.check_claim(None)
    with pytest.raises(ValueError, match="chunk_bytes"):
        ch.plot_explore(mechanism, 8 * MiB)
    with pytest.raises(ValueError, match="strategy"):
        mechanism.median("btree")
    with pytest.raises(ValueError, match="clock"):
        mechanism.ratio("aggregated", "pwritev", clock="wall")


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"variant": "fast"}, ValueError, "variant"),
        ({"n_ranks": 0}, ValueError, "n_ranks"),
        ({"n_tensors": 2.5}, TypeError, "n_tensors"),
        ({"chunk_bytes": 5000}, ValueError, "multiples of 4096"),
        ({"sweep_chunks": (1024,)}, ValueError, "sweep_chunks"),
        ({"strategies": ()}, ValueError, "strategies"),
        ({"strategies": ("fast",)}, ValueError, "strategies"),
        ({"n_repeats": 0}, ValueError, "n_repeats"),
        ({"slow_repeats": 5}, ValueError, "slow_repeats"),
        ({"run_sweep": 1}, TypeError, "run_sweep"),
        ({"seed": -1}, ValueError, "seed"),
        ({"parent_dir": "/no/such/dir"}, ValueError, "parent_dir"),
    ],
)
def test_config_validation(changes, error, message):
    with pytest.raises(error, match=message):
        ch.Config(**changes)


def test_scaled_config():
    assert ch.Config.scaled(2.0).n_tensors == 2 * ch.Config().n_tensors
    with pytest.raises(ValueError, match="factor"):
        ch.Config.scaled(0.0)

"""Checkpoint I/O: file-per-tensor, per-tensor writes, vector I/O and aggregation.

Gossman, Maurya, Nicolae and Calhoun, "Understanding LLM Checkpoint/Restore I/O
Strategies and Patterns", arXiv 2512.24511.

A rank of a model trained with 3D parallelism holds thousands of tensors of very
different sizes. Its checkpoint is those tensors' bytes plus an index that records,
for each tensor, its name, dtype, shape, where its bytes sit (file, offset, length) and
a checksum. The paper measures how the way these bytes reach the file system changes
the throughput: many small, unaligned operations are expensive, while aggregating the
tensors into large, aligned buffers (and submitting those in batches with liburing)
recovers the bandwidth.

This module writes a synthetic checkpoint for real, on the local file system, with
six strategies:

``file_per_tensor``
    create, write and close one file per tensor (metadata-heavy);
``write_per_tensor``
    one shard file, one ``pwrite`` per tensor (uncoalesced small I/O);
``pwritev``
    one shard file, coalesced vector I/O: ``os.pwritev`` with up to ``IOV_MAX``
    buffers per system call;
``aggregated``
    file-system-aware aggregation: tensors packed into a 4 KiB-aligned staging buffer
    of ``chunk_bytes`` (:func:`paperlab.kernels.checkpoint_io.pack_aligned`), written
    with one ``pwrite`` per chunk;
``aggregated_async``
    the same with several staging buffers in flight, written by a thread pool of
    blocking ``pwrite`` calls while the next chunk is packed (the stand-in for
    io_uring's batched asynchronous submission, which the standard library lacks);
``direct_per_tensor``
    uncoalesced direct I/O: ``O_DIRECT`` bypasses the page cache but demands aligned
    buffers, offsets and lengths, so each tensor gets its own 4 KiB-aligned slot of
    the file, is copied into an aligned buffer, padded and written on its own;
``aggregated_direct``
    as ``aggregated_async`` with ``O_DIRECT``: page-aligned ``mmap`` buffers and
    lengths padded to 4 KiB, bypassing the page cache.

Two ranks run as separate processes that start each write together. Two clocks are
kept: submission time (until the last write call returns) and durable time (plus one
``os.sync()``). Restores read every tensor back through the index (``pread`` and
``np.frombuffer``) and check its bytes and its Fletcher-64 checksum.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import mmap
import multiprocessing as mp
import os
import queue
import shutil
import statistics
import tempfile
import time
import traceback
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from paperlab.claims import require
from paperlab.kernels.checkpoint_io import fletcher64, pack_aligned
from paperlab.validation import check_choice, check_float, check_instance, check_int

__all__ = [
    "KiB",
    "MiB",
    "ALIGNMENT",
    "TENSOR_ALIGN",
    "SHARED_ALIGN",
    "IOV_MAX",
    "STRATEGIES",
    "STRATEGY_NAMES",
    "UNCOALESCED",
    "DIRECT",
    "SLOW",
    "ALIGNING_FILESYSTEMS",
    "LAYOUTS",
    "VARIANTS",
    "Checkpoint",
    "make_checkpoint",
    "ChunkPlan",
    "plan_chunks",
    "IOCounts",
    "staging_buffers",
    "index_bytes",
    "write_file_per_tensor",
    "write_per_tensor",
    "write_pwritev",
    "write_aggregated",
    "write_direct_per_tensor",
    "Verification",
    "restore_checkpoint",
    "verify_restore",
    "filesystem_type",
    "DirectProbe",
    "probe_direct_io",
    "Config",
    "RunRecord",
    "Result",
    "ROW_COLUMNS",
    "run_experiment",
    "check_claim",
    "plot_throughput",
    "plot_sweep",
    "plot_explore",
    "EXPLORE_STRATEGIES",
]

log = logging.getLogger(__name__)

KiB = 1024
MiB = 1024 * KiB
ALIGNMENT = 4096  # O_DIRECT and page alignment of staging buffers, offsets, lengths
TENSOR_ALIGN = 64  # a tensor starts at a multiple of 64 bytes inside a shard file
SHARED_ALIGN = MiB  # each rank's region of a shared file starts at a multiple of this
IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024
INDEX_NAME = "index.json"
SHARD_NAME = "shard.bin"
SHARED_NAME = "shared.bin"

STRATEGIES = (
    "file_per_tensor",
    "write_per_tensor",
    "pwritev",
    "aggregated",
    "aggregated_async",
    "direct_per_tensor",
    "aggregated_direct",
)
STRATEGY_NAMES = {
    "file_per_tensor": "file per tensor",
    "write_per_tensor": "write per tensor",
    "pwritev": "pwritev (vector I/O)",
    "aggregated": "aggregated",
    "aggregated_async": "aggregated + threads",
    "direct_per_tensor": "O_DIRECT per tensor",
    "aggregated_direct": "aggregated + O_DIRECT",
}
# Each coalescing strategy and the uncoalesced one the baseline variant runs instead.
UNCOALESCED = {
    "pwritev": "write_per_tensor",
    "aggregated": "write_per_tensor",
    "aggregated_async": "write_per_tensor",
    "aggregated_direct": "direct_per_tensor",
}
DIRECT = ("direct_per_tensor", "aggregated_direct")
# The strategies run only Config.slow_repeats times: a run can take a second or more.
SLOW = ("file_per_tensor",)
LAYOUTS = ("file_per_shard", "shared_file")
VARIANTS = ("mechanism", "baseline")
# Block-device file systems known to reject misaligned O_DIRECT writes with EINVAL
# (tmpfs accepts them; Btrfs and others may fall back to buffered I/O instead).
ALIGNING_FILESYSTEMS = ("ext2", "ext3", "ext4", "xfs")

# The tensors' dtypes and how often each occurs (most parameters are float32).
DTYPES = ("float32", "float16", "int64")
DTYPE_WEIGHTS = (0.8, 0.15, 0.05)

# The claim's thresholds (see check_claim).
MIN_METADATA_RATIO = 2.0
MIN_SYSCALL_RATIO = 50.0
MIN_DIRECT_RATIO = 2.5

_TIMEOUT_S = 300.0  # a rank that says nothing for this long has hung
# Strategies warmed up once before timing: those whose CPU time the claim compares.
_WARM_UP = ("write_per_tensor", "pwritev", "aggregated")


# ----------------------------------------------------------------------- the data


@dataclass(frozen=True)
class Checkpoint:
    """One rank's tensors in host memory and where each goes in a shard file.

    The tensors live in one arena (as in a pinned host buffer pool), each starting at
    a multiple of 256 bytes. In a shard file they are laid out in order, each at a
    multiple of :data:`TENSOR_ALIGN` bytes.
    """

    arena: np.ndarray  # uint8, host memory holding every tensor
    names: tuple[str, ...]  # one per tensor
    dtypes: tuple[str, ...]  # NumPy dtype names
    shapes: tuple[tuple[int, ...], ...]
    arena_offsets: np.ndarray  # int64 (n,): first byte of each tensor in the arena
    nbytes: np.ndarray  # int64 (n,): bytes of each tensor
    file_offsets: np.ndarray  # int64 (n,): first byte of each tensor in a shard file
    checksums: np.ndarray  # uint64 (n,): Fletcher-64 of each tensor's bytes

    @property
    def n_tensors(self) -> int:
        """Number of tensors."""
        return int(self.nbytes.shape[0])

    @property
    def data_bytes(self) -> int:
        """Bytes of all tensors together (no padding)."""
        return int(self.nbytes.sum())

    @property
    def shard_bytes(self) -> int:
        """Length of a shard file: the end of the last tensor."""
        if self.n_tensors == 0:
            return 0
        return int(self.file_offsets[-1] + self.nbytes[-1])

    def view(self, i: int) -> np.ndarray:
        """The bytes of tensor ``i`` (a view into the arena)."""
        start = int(self.arena_offsets[i])
        return self.arena[start : start + int(self.nbytes[i])]

    def tensor(self, i: int) -> np.ndarray:
        """Tensor ``i`` with its dtype and shape (a view into the arena)."""
        return self.view(i).view(self.dtypes[i]).reshape(self.shapes[i])


def _round_up(x, multiple):
    """``x`` rounded up to a multiple of ``multiple`` (works on arrays too)."""
    return (x + multiple - 1) // multiple * multiple


def _tensor_sizes(
    n_tensors: int,
    rng: np.random.Generator,
    median_bytes: float,
    sigma: float,
    large_fraction: float,
    max_bytes: int,
) -> tuple[np.ndarray, list[str]]:
    """Draw each tensor's dtype and byte size (a multiple of its item size)."""
    dtypes = rng.choice(len(DTYPES), size=n_tensors, p=DTYPE_WEIGHTS)
    target = rng.lognormal(np.log(median_bytes), sigma, size=n_tensors)
    n_large = int(round(large_fraction * n_tensors))
    if n_large:
        low = min(256 * KiB, max_bytes)
        big = np.exp(rng.uniform(np.log(low), np.log(max_bytes), size=n_large))
        target[rng.choice(n_tensors, size=n_large, replace=False)] = big
    itemsize = np.array([np.dtype(DTYPES[d]).itemsize for d in dtypes])
    elements = np.maximum(1, np.minimum(target, max_bytes) // itemsize).astype(np.int64)
    return elements, [DTYPES[d] for d in dtypes]


def _shape(elements: int) -> tuple[int, ...]:
    """A vector for small tensors, a matrix with 256 columns for large ones."""
    if elements >= 1024:
        return (elements // 256, 256)
    return (elements,)


def make_checkpoint(
    n_tensors: int,
    rng: np.random.Generator,
    *,
    median_bytes: float = 2 * KiB,
    sigma: float = 1.0,
    large_fraction: float = 0.001,
    max_bytes: int = 4 * MiB,
) -> Checkpoint:
    """Draw a synthetic checkpoint: tensors with log-normal sizes and random bytes.

    Sizes follow a log-normal law with median ``median_bytes`` and log-scale spread
    ``sigma`` (biases, norms and small projections); a fraction ``large_fraction`` of
    the tensors are instead log-uniform between 256 KiB and ``max_bytes`` (embeddings
    and large matrices). Tensors are float32 (80%), float16 (15%) or int64 (5%);
    sizes are clipped to ``max_bytes``. Tensors of 1,024 elements or more are
    matrices with 256 columns, so their sizes round down to whole rows.

    Parameters
    ----------
    n_tensors : int
        Number of tensors, at least 1.
    rng : numpy.random.Generator
    median_bytes : float
        Median size of the small tensors in bytes, at least 8.
    sigma : float
        Log-scale spread of the small tensors' sizes, in [0, 4].
    large_fraction : float
        Fraction of large tensors, in [0, 1].
    max_bytes : int
        Largest tensor in bytes, at least 8.

    Returns
    -------
    Checkpoint
    """
    n_tensors = check_int("n_tensors", n_tensors, minimum=1)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    median_bytes = check_float("median_bytes", median_bytes, minimum=8.0)
    sigma = check_float("sigma", sigma, minimum=0.0, maximum=4.0)
    large_fraction = check_float(
        "large_fraction", large_fraction, minimum=0.0, maximum=1.0
    )
    max_bytes = check_int("max_bytes", max_bytes, minimum=8)
    elements, dtypes = _tensor_sizes(
        n_tensors, rng, median_bytes, sigma, large_fraction, max_bytes
    )
    shapes = tuple(_shape(int(e)) for e in elements)
    itemsize = np.array([np.dtype(d).itemsize for d in dtypes], dtype=np.int64)
    nbytes = np.array([math.prod(s) for s in shapes], dtype=np.int64) * itemsize
    arena_offsets = np.cumsum(_round_up(nbytes, 256)) - _round_up(nbytes, 256)
    file_offsets = np.cumsum(_round_up(nbytes, TENSOR_ALIGN)) - _round_up(
        nbytes, TENSOR_ALIGN
    )
    arena = np.frombuffer(
        bytearray(rng.bytes(int(arena_offsets[-1] + nbytes[-1]))), dtype=np.uint8
    )
    names = tuple(f"block{i // 16:04d}.param{i % 16:02d}" for i in range(n_tensors))
    return Checkpoint(
        arena=arena,
        names=names,
        dtypes=tuple(dtypes),
        shapes=shapes,
        arena_offsets=arena_offsets.astype(np.int64),
        nbytes=nbytes,
        file_offsets=file_offsets.astype(np.int64),
        checksums=fletcher64(arena, arena_offsets.astype(np.int64), nbytes),
    )


# ------------------------------------------------------------ the chunk plan


@dataclass(frozen=True)
class ChunkPlan:
    """The pieces that fill each staging chunk of a shard file.

    Chunk ``c`` covers bytes ``[c * chunk_bytes, (c + 1) * chunk_bytes)`` of the file;
    its pieces are ``bounds[c]:bounds[c + 1]`` of the piece arrays. A tensor that
    crosses a chunk boundary is split into one piece per chunk it touches.
    """

    chunk_bytes: int
    bounds: np.ndarray  # int64 (n_chunks + 1,)
    src_offsets: np.ndarray  # int64 (n_pieces,): where each piece starts in the arena
    sizes: np.ndarray  # int64 (n_pieces,)
    dst_offsets: np.ndarray  # int64 (n_pieces,): where it goes within its chunk
    lengths: np.ndarray  # int64 (n_chunks,): bytes of the file each chunk holds

    @property
    def n_chunks(self) -> int:
        """Number of chunks (write calls, when each succeeds in one call)."""
        return int(self.lengths.shape[0])


def plan_chunks(checkpoint: Checkpoint, chunk_bytes: int) -> ChunkPlan:
    """Split the shard file into staging chunks and list the pieces of each.

    Parameters
    ----------
    checkpoint : Checkpoint
    chunk_bytes : int
        Size of a staging buffer, a positive multiple of :data:`ALIGNMENT`.

    Returns
    -------
    ChunkPlan
    """
    check_instance("checkpoint", checkpoint, Checkpoint)
    chunk_bytes = check_int("chunk_bytes", chunk_bytes, minimum=ALIGNMENT)
    if chunk_bytes % ALIGNMENT:
        raise ValueError(
            f"chunk_bytes must be a multiple of {ALIGNMENT}, got {chunk_bytes}"
        )
    start = checkpoint.file_offsets
    end = start + checkpoint.nbytes
    first = start // chunk_bytes
    last = np.maximum(end - 1, start) // chunk_bytes
    per_tensor = last - first + 1
    tensor = np.repeat(np.arange(checkpoint.n_tensors), per_tensor)
    step = np.arange(int(per_tensor.sum())) - np.repeat(
        np.cumsum(per_tensor) - per_tensor, per_tensor
    )
    chunk = first[tensor] + step
    lo = np.maximum(start[tensor], chunk * chunk_bytes)
    hi = np.minimum(end[tensor], (chunk + 1) * chunk_bytes)
    n_chunks = max(1, -(-checkpoint.shard_bytes // chunk_bytes))
    lengths = np.full(n_chunks, chunk_bytes, dtype=np.int64)
    lengths[-1] = checkpoint.shard_bytes - (n_chunks - 1) * chunk_bytes
    return ChunkPlan(
        chunk_bytes=chunk_bytes,
        bounds=np.searchsorted(chunk, np.arange(n_chunks + 1)).astype(np.int64),
        src_offsets=(checkpoint.arena_offsets[tensor] + lo - start[tensor]),
        sizes=(hi - lo).astype(np.int64),
        dst_offsets=(lo - chunk * chunk_bytes).astype(np.int64),
        lengths=lengths,
    )


# ------------------------------------------------------------------- writing


@dataclass
class IOCounts:
    """System calls a write strategy issued, counted where it issued them."""

    opens: int = 0
    writes: int = 0  # write, pwrite and pwritev calls
    closes: int = 0
    truncates: int = 0
    bytes_written: int = 0  # bytes handed to the kernel, padding included

    def add(self, other: IOCounts) -> IOCounts:
        """Add ``other``'s counts to this one's, in place; return self."""
        self.opens += other.opens
        self.writes += other.writes
        self.closes += other.closes
        self.truncates += other.truncates
        self.bytes_written += other.bytes_written
        return self


def staging_buffers(chunk_bytes: int, n_buffers: int) -> list[np.ndarray]:
    """Page-aligned staging buffers from anonymous ``mmap``, already touched.

    ``O_DIRECT`` needs the buffer's address aligned to the device's block size; an
    anonymous mapping starts on a page boundary. Writing zeros once faults the pages
    in, so the timed writes do not pay for it.

    Parameters
    ----------
    chunk_bytes : int
        Bytes per buffer, a positive multiple of :data:`ALIGNMENT`.
    n_buffers : int
        Number of buffers, at least 1.

    Returns
    -------
    list of ndarray of uint8, shape (chunk_bytes,)
    """
    chunk_bytes = check_int("chunk_bytes", chunk_bytes, minimum=ALIGNMENT)
    if chunk_bytes % ALIGNMENT:
        raise ValueError(
            f"chunk_bytes must be a multiple of {ALIGNMENT}, got {chunk_bytes}"
        )
    n_buffers = check_int("n_buffers", n_buffers, minimum=1)
    buffers = []
    for _ in range(n_buffers):
        buf = np.frombuffer(mmap.mmap(-1, chunk_bytes), dtype=np.uint8)
        buf.fill(0)
        buffers.append(buf)
    return buffers


def index_bytes(
    checkpoint: Checkpoint, files: list[str] | str, base_offset: int = 0
) -> bytes:
    """The checkpoint's index as JSON: name, dtype, shape, file, offset, length and
    Fletcher-64 checksum of every tensor.

    Parameters
    ----------
    checkpoint : Checkpoint
    files : str or list of str
        The file holding every tensor (a shard) or one file name per tensor, relative
        to the rank's directory.
    base_offset : int
        Where the rank's region starts in the shard file (0 unless it is shared).
    """
    base_offset = check_int("base_offset", base_offset, minimum=0)
    per_tensor = not isinstance(files, str)
    if per_tensor and len(files) != checkpoint.n_tensors:
        raise ValueError(
            f"files must name one file per tensor ({checkpoint.n_tensors}), "
            f"got {len(files)}"
        )
    if per_tensor:
        return _index_with_offsets(
            checkpoint, files, np.zeros(checkpoint.n_tensors, dtype=np.int64)
        )
    return _index_with_offsets(checkpoint, files, checkpoint.file_offsets + base_offset)


def _index_with_offsets(
    checkpoint: Checkpoint, files: list[str] | str, offsets: np.ndarray
) -> bytes:
    """The JSON index with explicit file offsets (see :func:`index_bytes`)."""
    one_file = isinstance(files, str)
    entries = [
        {
            "name": checkpoint.names[i],
            "dtype": checkpoint.dtypes[i],
            "shape": list(checkpoint.shapes[i]),
            "file": files if one_file else files[i],
            "offset": offset,
            "nbytes": int(checkpoint.nbytes[i]),
            "fletcher64": int(checkpoint.checksums[i]),
        }
        for i, offset in enumerate(offsets.tolist())
    ]
    return json.dumps({"tensors": entries}).encode()


def _pwrite_all(fd: int, buf, offset: int) -> int:
    """Write all of ``buf`` at ``offset``; return the number of calls it took."""
    n = os.pwrite(fd, buf, offset)
    calls = 1
    total = memoryview(buf).nbytes
    while n < total:
        rest = memoryview(buf).cast("B")[n:]
        n += os.pwrite(fd, rest, offset + n)
        calls += 1
    return calls


def _pwritev_all(fd: int, iov: list, offset: int, total: int) -> int:
    """Write the buffers ``iov`` back to back at ``offset``; return the calls taken.

    A short ``pwritev`` (the kernel may stop early) finishes with one ``pwrite`` per
    buffer not yet written.
    """
    done = os.pwritev(fd, iov, offset)
    calls = 1
    if done == total:
        return calls
    pos = 0
    for buf in iov:
        size = memoryview(buf).nbytes
        if pos + size > done:
            skip = max(done - pos, 0)
            calls += _pwrite_all(
                fd, memoryview(buf).cast("B")[skip:], offset + pos + skip
            )
        pos += size
    return calls


def _write_index(directory: str, payload: bytes) -> IOCounts:
    fd = os.open(os.path.join(directory, INDEX_NAME), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        calls = _pwrite_all(fd, payload, 0)
    finally:
        os.close(fd)
    return IOCounts(opens=1, writes=calls, closes=1, bytes_written=len(payload))


def write_file_per_tensor(checkpoint: Checkpoint, directory: str) -> IOCounts:
    """Strategy (a): create, write and close one file per tensor, then the index.

    Every tensor costs three system calls and a new inode: the metadata traffic of
    engines that save one file per shard or per tensor.
    """
    files = [f"{name}.bin" for name in checkpoint.names]
    payload = index_bytes(checkpoint, files)
    counts = IOCounts()
    flags = os.O_WRONLY | os.O_CREAT
    for i, name in enumerate(files):
        fd = os.open(os.path.join(directory, name), flags, 0o644)
        try:
            counts.writes += _pwrite_all(fd, checkpoint.view(i), 0)
        finally:
            os.close(fd)
    n = checkpoint.n_tensors
    counts.add(IOCounts(opens=n, closes=n, bytes_written=checkpoint.data_bytes))
    return counts.add(_write_index(directory, payload))


def write_per_tensor(
    checkpoint: Checkpoint, directory: str, path: str, base_offset: int = 0
) -> IOCounts:
    """Strategy (b): one shard file, one ``pwrite`` per tensor at its offset.

    Parameters
    ----------
    checkpoint : Checkpoint
    directory : str
        The rank's directory (the index goes there).
    path : str
        The shard file.
    base_offset : int
        Where the rank's region starts in the file.
    """
    payload = index_bytes(checkpoint, os.path.relpath(path, directory), base_offset)
    counts = IOCounts(opens=1, closes=1, bytes_written=checkpoint.data_bytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        offsets = (checkpoint.file_offsets + base_offset).tolist()
        for i, offset in enumerate(offsets):
            counts.writes += _pwrite_all(fd, checkpoint.view(i), offset)
    finally:
        os.close(fd)
    return counts.add(_write_index(directory, payload))


def write_pwritev(
    checkpoint: Checkpoint,
    directory: str,
    path: str,
    base_offset: int = 0,
    iov_max: int = IOV_MAX,
) -> IOCounts:
    """Strategy (c): coalesced vector I/O, up to ``iov_max`` buffers per ``pwritev``.

    The tensors and the zero padding between them form one contiguous byte range of
    the file, so a single call can carry hundreds of tensors straight from host
    memory, with no staging copy.
    """
    iov_max = check_int("iov_max", iov_max, minimum=2)
    payload = index_bytes(checkpoint, os.path.relpath(path, directory), base_offset)
    zeros = memoryview(bytes(TENSOR_ALIGN))
    ends = checkpoint.file_offsets + checkpoint.nbytes
    gaps = (np.append(checkpoint.file_offsets[1:], ends[-1]) - ends).tolist()
    counts = IOCounts(opens=1, closes=1, bytes_written=checkpoint.shard_bytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        iov, start, total = [], base_offset, 0
        for i, gap in enumerate(gaps):
            if len(iov) + 2 > iov_max:
                counts.writes += _pwritev_all(fd, iov, start, total)
                iov, start, total = [], start + total, 0
            iov.append(checkpoint.view(i))
            total += int(checkpoint.nbytes[i])
            if gap:
                iov.append(zeros[:gap])
                total += gap
        if iov:
            counts.writes += _pwritev_all(fd, iov, start, total)
    finally:
        os.close(fd)
    return counts.add(_write_index(directory, payload))


def write_aggregated(
    checkpoint: Checkpoint,
    directory: str,
    path: str,
    plan: ChunkPlan,
    buffers: list[np.ndarray],
    *,
    base_offset: int = 0,
    executor: Executor | None = None,
    direct: bool = False,
    final_size: int | None = None,
) -> IOCounts:
    """Strategies (d) and (e): pack tensors into staging chunks, one write per chunk.

    Chunk ``c`` is packed into buffer ``c mod len(buffers)`` and written at
    ``base_offset + c * plan.chunk_bytes``. Without an executor each write happens
    before the next chunk is packed; with one, the writes run on its threads (blocking
    ``pwrite`` calls, which release the GIL) while the caller packs the next chunk,
    with at most ``len(buffers)`` chunks in flight. With ``direct=True`` the file is
    opened with ``O_DIRECT``: buffers, offsets and lengths must be multiples of
    :data:`ALIGNMENT`, so the last chunk is padded with zeros and the file is then
    truncated to ``final_size``.

    Parameters
    ----------
    checkpoint : Checkpoint
    directory : str
        The rank's directory (the index goes there).
    path : str
        The shard file.
    plan : ChunkPlan
        From :func:`plan_chunks` with the buffers' size.
    buffers : list of ndarray of uint8
        Staging buffers of ``plan.chunk_bytes`` bytes (:func:`staging_buffers`); at
        least two when ``executor`` is given.
    base_offset : int
        Where the rank's region starts in the file, a multiple of ``ALIGNMENT``.
    executor : concurrent.futures.Executor, optional
        Runs the writes; ``None`` writes from the calling thread.
    direct : bool
        Open the file with ``O_DIRECT``.
    final_size : int, optional
        Truncate the file to this length at the end (``None``: leave it).
    """
    if not buffers or any(b.shape[0] < plan.chunk_bytes for b in buffers):
        raise ValueError("buffers must hold at least one buffer of plan.chunk_bytes")
    if executor is not None and len(buffers) < 2:
        raise ValueError("buffers must hold at least two buffers with an executor")
    base_offset = check_int("base_offset", base_offset, minimum=0)
    if base_offset % ALIGNMENT:
        raise ValueError(f"base_offset must be a multiple of {ALIGNMENT}")
    payload = index_bytes(checkpoint, os.path.relpath(path, directory), base_offset)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_DIRECT if direct else 0)
    counts = IOCounts(opens=1, closes=1)
    pending: list = [None] * len(buffers)
    fd = os.open(path, flags, 0o644)
    try:
        for c in range(plan.n_chunks):
            slot = c % len(buffers)
            if pending[slot] is not None:
                counts.writes += pending[slot].result()
            a, b = plan.bounds[c], plan.bounds[c + 1]
            length = int(plan.lengths[c])
            if direct:
                length = _round_up(length, ALIGNMENT)
            chunk = buffers[slot][:length]
            pack_aligned(
                checkpoint.arena,
                plan.src_offsets[a:b],
                plan.sizes[a:b],
                chunk,
                plan.dst_offsets[a:b],
            )
            offset = base_offset + c * plan.chunk_bytes
            counts.bytes_written += length
            if executor is None:
                counts.writes += _pwrite_all(fd, chunk, offset)
            else:
                pending[slot] = executor.submit(_pwrite_all, fd, chunk, offset)
        for job in pending:
            if job is not None:
                counts.writes += job.result()
        if final_size is not None:
            os.ftruncate(fd, final_size)
            counts.truncates += 1
    finally:
        os.close(fd)
    return counts.add(_write_index(directory, payload))


def direct_offsets(checkpoint: Checkpoint) -> np.ndarray:
    """Offsets of the tensors in a file where each has its own 4 KiB-aligned slot."""
    check_instance("checkpoint", checkpoint, Checkpoint)
    slots = _round_up(checkpoint.nbytes, ALIGNMENT)
    return (np.cumsum(slots) - slots).astype(np.int64)


def write_direct_per_tensor(
    checkpoint: Checkpoint, directory: str, path: str, buffer: np.ndarray
) -> IOCounts:
    """Uncoalesced direct I/O: one ``O_DIRECT`` write per tensor, each in its own
    4 KiB-aligned slot (:func:`direct_offsets`).

    ``O_DIRECT`` accepts only block-aligned buffers, offsets and lengths, so every
    tensor is first copied into the aligned ``buffer`` and padded with zeros to a
    multiple of :data:`ALIGNMENT`. Each write then goes to the device on its own.

    Parameters
    ----------
    checkpoint : Checkpoint
    directory : str
        The rank's directory (the index goes there).
    path : str
        The shard file.
    buffer : ndarray of uint8
        A page-aligned buffer at least as long as the largest padded tensor.
    """
    offsets = direct_offsets(checkpoint)
    padded = _round_up(checkpoint.nbytes, ALIGNMENT)
    if checkpoint.n_tensors and buffer.shape[0] < padded.max():
        raise ValueError(f"buffer must hold at least {padded.max()} bytes")
    payload = _index_with_offsets(checkpoint, os.path.relpath(path, directory), offsets)
    counts = IOCounts(opens=1, closes=1, bytes_written=int(padded.sum()))
    zero = np.zeros(1, dtype=np.int64)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
    try:
        slots = zip(offsets.tolist(), padded.tolist(), strict=True)
        for i, (offset, length) in enumerate(slots):
            chunk = buffer[:length]
            pack_aligned(
                checkpoint.arena,
                checkpoint.arena_offsets[i : i + 1],
                checkpoint.nbytes[i : i + 1],
                chunk,
                zero,
            )
            counts.writes += _pwrite_all(fd, chunk, offset)
    finally:
        os.close(fd)
    return counts.add(_write_index(directory, payload))


# ------------------------------------------------------------------ restoring


@dataclass(frozen=True)
class Verification:
    """What a restore read back, compared with the tensors in memory."""

    n_tensors: int  # tensors in the index
    n_exact: int  # restored byte for byte, with the right name, dtype and shape
    n_checksum_ok: int  # Fletcher-64 of the restored bytes equals the index's
    seconds: float  # wall time of the restore (reads only)

    @property
    def ok(self) -> bool:
        """Every tensor came back exact and with a matching checksum."""
        return self.n_exact == self.n_checksum_ok == self.n_tensors


def restore_checkpoint(directory: str) -> tuple[list[np.ndarray], list[dict]]:
    """Read a rank's tensors back through its index (``pread`` and ``np.frombuffer``).

    Parameters
    ----------
    directory : str
        The rank's directory, holding ``index.json``.

    Returns
    -------
    tensors : list of ndarray
        Each with the dtype and shape of its index entry.
    entries : list of dict
        The index entries.
    """
    with open(os.path.join(directory, INDEX_NAME), "rb") as f:
        entries = json.loads(f.read())["tensors"]
    fds: dict[str, int] = {}
    tensors = []
    try:
        for entry in entries:
            name = entry["file"]
            if name not in fds:
                fds[name] = os.open(os.path.join(directory, name), os.O_RDONLY)
            data = os.pread(fds[name], entry["nbytes"], entry["offset"])
            if len(data) != entry["nbytes"]:
                raise OSError(f"short read of {entry['name']}")
            tensor = np.frombuffer(data, dtype=entry["dtype"])
            tensors.append(tensor.reshape(entry["shape"]))
            if len(fds) > 64:  # one file per tensor: do not hoard descriptors
                os.close(fds.pop(name))
    finally:
        for fd in fds.values():
            os.close(fd)
    return tensors, entries


def verify_restore(checkpoint: Checkpoint, directory: str) -> Verification:
    """Restore a rank's checkpoint and compare it with the tensors in memory."""
    check_instance("checkpoint", checkpoint, Checkpoint)
    start = time.perf_counter()
    tensors, entries = restore_checkpoint(directory)
    seconds = time.perf_counter() - start
    if len(tensors) != checkpoint.n_tensors:
        return Verification(checkpoint.n_tensors, 0, 0, seconds)
    same_meta = np.array(
        [
            entry["name"] == checkpoint.names[i]
            and tensor.dtype == np.dtype(checkpoint.dtypes[i])
            and tensor.shape == checkpoint.shapes[i]
            for i, (tensor, entry) in enumerate(zip(tensors, entries, strict=True))
        ]
    )
    sizes = np.array([e["nbytes"] for e in entries], dtype=np.int64)
    offsets = np.cumsum(sizes) - sizes
    flat = np.concatenate([t.reshape(-1).view(np.uint8) for t in tensors])
    if not np.array_equal(sizes, checkpoint.nbytes):
        return Verification(checkpoint.n_tensors, 0, 0, seconds)
    expected = np.concatenate([checkpoint.view(i) for i in range(checkpoint.n_tensors)])
    same_bytes = np.ones(checkpoint.n_tensors, dtype=bool)
    wrong = np.flatnonzero(flat != expected)
    same_bytes[np.searchsorted(offsets, wrong, side="right") - 1] = False
    exact = int(np.sum(same_meta & same_bytes))
    sums = fletcher64(flat, offsets, sizes)
    stored = np.array([e["fletcher64"] for e in entries], dtype=np.uint64)
    ok = int(np.sum((sums == stored) & (stored == checkpoint.checksums)))
    return Verification(checkpoint.n_tensors, exact, ok, seconds)


# ------------------------------------------------- the file system and O_DIRECT


def filesystem_type(path: str) -> str:
    """The type of the file system holding ``path`` (from ``/proc/mounts``).

    Returns ``"unknown"`` where ``/proc/mounts`` does not exist (not Linux).
    """
    path = os.path.realpath(os.fspath(path))
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts") as f:
            lines = f.read().splitlines()
    except OSError:
        return kind
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = path == mount or path.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, fields[2]
    return kind


@dataclass(frozen=True)
class DirectProbe:
    """What ``O_DIRECT`` does on one directory's file system."""

    fs_type: str  # e.g. "ext4", "xfs", "tmpfs"
    supported: bool  # a file opens with O_DIRECT
    aligned_ok: bool  # a 4 KiB write from a page-aligned buffer succeeded
    unaligned_error: str | None  # errno of a 1,000-byte write (None: it succeeded)
    misaligned_buffer_error: str | None  # errno of a write from address + 1

    @property
    def enforced(self) -> bool:
        """Alignment is enforced: the unaligned write failed with EINVAL."""
        return self.unaligned_error == "EINVAL"

    @property
    def message(self) -> str:
        """One sentence describing the probe's outcome."""
        if not self.supported:
            return f"O_DIRECT is not supported on {self.fs_type}: skipped"
        if not self.enforced:
            return (
                f"{self.fs_type} accepts O_DIRECT but lets a misaligned write "
                "through (no block device behind it, or a fall-back to buffered I/O)"
            )
        return (
            f"{self.fs_type}: an aligned 4 KiB write succeeds, a 1,000-byte write "
            f"fails with {self.unaligned_error}, a write from a misaligned address "
            f"fails with {self.misaligned_buffer_error}"
        )


def _errno_of(fd: int, buf, offset: int) -> str | None:
    """Try one write; return the errno's name, or None if it succeeded."""
    try:
        os.pwrite(fd, buf, offset)
    except OSError as err:
        return errno.errorcode.get(err.errno, str(err.errno))
    return None


def probe_direct_io(directory: str) -> DirectProbe:
    """Open a scratch file in ``directory`` with ``O_DIRECT`` and try three writes.

    The writes: 4 KiB from a page-aligned buffer (should succeed), 1,000 bytes from
    the same buffer (length not a multiple of the block size) and 4 KiB from one byte
    past the buffer's start (misaligned address). The file is removed afterwards.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError(f"directory must be an existing directory, got {directory!r}")
    kind = filesystem_type(directory)
    if not hasattr(os, "O_DIRECT"):
        return DirectProbe(kind, False, False, None, None)
    path = os.path.join(directory, "direct-probe.bin")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
    except OSError:
        return DirectProbe(kind, False, False, None, None)
    try:
        area = mmap.mmap(-1, 2 * ALIGNMENT)
        view = memoryview(area)
        aligned_ok = _errno_of(fd, view[:ALIGNMENT], 0) is None
        unaligned = _errno_of(fd, view[:1000], 0)
        misaligned = _errno_of(fd, view[1 : ALIGNMENT + 1], 0)
        view.release()
        area.close()
    finally:
        os.close(fd)
        os.remove(path)
    return DirectProbe(kind, True, aligned_ok, unaligned, misaligned)


# ---------------------------------------------------------------- the ranks


@dataclass(frozen=True)
class _Spec:
    """What a rank process needs to build its checkpoint and thread pool."""

    n_tensors: int
    median_bytes: float
    sigma: float
    large_fraction: float
    max_bytes: int
    n_threads: int
    seed: int


@dataclass(frozen=True)
class _Command:
    """One timed write by every rank."""

    strategy: str
    coalesce: bool  # False: the baseline, one pwrite per tensor instead
    chunk_bytes: int
    run_dir: str
    shared_base: int | None  # this rank's offset in a shared file; None: own shard
    verify: bool  # restore and check after timing
    sync: bool  # time one os.sync() after the writes (the durable clock)


def _syscw() -> int:
    """Write system calls of this process so far (``/proc/self/io``), or -1."""
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("syscw:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


class _RankState:
    """A rank process's checkpoint, thread pool and staging buffers (kept across
    runs, as an engine keeps its pinned buffers)."""

    def __init__(self, rank: int, spec: _Spec):
        self.rank = rank
        self.checkpoint = make_checkpoint(
            spec.n_tensors,
            np.random.default_rng([spec.seed, rank]),
            median_bytes=spec.median_bytes,
            sigma=spec.sigma,
            large_fraction=spec.large_fraction,
            max_bytes=spec.max_bytes,
        )
        self.n_threads = spec.n_threads
        self.executor = ThreadPoolExecutor(spec.n_threads) if spec.n_threads else None
        self.plans: dict[int, ChunkPlan] = {}
        self.buffers: dict[int, list[np.ndarray]] = {}
        largest = int(self.checkpoint.nbytes.max())
        self.slot_buffer = staging_buffers(_round_up(largest, ALIGNMENT), 1)[0]

    def staging(self, chunk_bytes: int) -> tuple[ChunkPlan, list[np.ndarray]]:
        """The chunk plan and staging buffers for one chunk size (made once)."""
        if chunk_bytes not in self.plans:
            self.plans[chunk_bytes] = plan_chunks(self.checkpoint, chunk_bytes)
            n = max(2, 2 * self.n_threads)
            self.buffers[chunk_bytes] = staging_buffers(chunk_bytes, n)
        return self.plans[chunk_bytes], self.buffers[chunk_bytes]

    def write(self, cmd: _Command, directory: str) -> IOCounts:
        """Run one strategy (the baseline turns coalescing ones into per-tensor)."""
        ckpt = self.checkpoint
        shared = cmd.shared_base is not None
        base = cmd.shared_base or 0
        if shared:
            path = os.path.join(cmd.run_dir, SHARED_NAME)
        else:
            path = os.path.join(directory, SHARD_NAME)
        strategy = cmd.strategy
        if not cmd.coalesce:
            strategy = UNCOALESCED.get(strategy, strategy)
        if shared and strategy in ("file_per_tensor", "direct_per_tensor"):
            raise ValueError(f"{strategy} does not write into a shared file")
        if strategy == "file_per_tensor":
            return write_file_per_tensor(ckpt, directory)
        if strategy == "direct_per_tensor":
            return write_direct_per_tensor(ckpt, directory, path, self.slot_buffer)
        if strategy == "write_per_tensor":
            return write_per_tensor(ckpt, directory, path, base)
        if strategy == "pwritev":
            return write_pwritev(ckpt, directory, path, base)
        plan, buffers = self.staging(cmd.chunk_bytes)
        direct = strategy in DIRECT
        threaded = strategy != "aggregated" and self.executor is not None
        return write_aggregated(
            ckpt,
            directory,
            path,
            plan,
            buffers if threaded else buffers[:1],
            base_offset=base,
            executor=self.executor if threaded else None,
            direct=direct,
            final_size=None if shared or not direct else base + ckpt.shard_bytes,
        )

    def run(self, cmd: _Command, barrier) -> dict:
        """Time one write of this rank, started together with the other ranks."""
        directory = os.path.join(cmd.run_dir, f"rank{self.rank}")
        os.makedirs(directory)
        if cmd.strategy.startswith("aggregated"):
            self.staging(cmd.chunk_bytes)
        before = _syscw()
        barrier.wait(_TIMEOUT_S)
        cpu0, t0 = time.process_time(), time.perf_counter()
        counts = self.write(cmd, directory)
        t1, cpu1 = time.perf_counter(), time.process_time()
        after = _syscw()
        barrier.wait(_TIMEOUT_S)
        if self.rank == 0 and cmd.sync:
            os.sync()  # one flush of everything, the same for every strategy
        t2 = time.perf_counter() if cmd.sync else math.nan
        files = len(os.listdir(directory))
        verification = (
            verify_restore(self.checkpoint, directory) if cmd.verify else None
        )
        shutil.rmtree(directory)
        return {
            "t0": t0,
            "t1": t1,
            "t2": t2,
            "cpu": cpu1 - cpu0,
            "counts": counts,
            "syscw": after - before if before >= 0 else -1,
            "files": files,
            "verification": verification,
        }


def _rank_main(rank: int, spec: _Spec, commands, results, barrier) -> None:
    """Body of a rank process: build the checkpoint, then run commands until None."""
    state = None
    try:
        state = _RankState(rank, spec)
        ckpt = state.checkpoint
        results.put(
            ("ready", rank, (ckpt.shard_bytes, ckpt.data_bytes, ckpt.n_tensors))
        )
        while (cmd := commands.get()) is not None:
            results.put(("done", rank, state.run(cmd, barrier)))
    except BaseException:  # report anything, then end the process
        results.put(("error", rank, traceback.format_exc()))
    finally:
        if state is not None and state.executor is not None:
            state.executor.shutdown()


def _context():
    """How to start the rank processes: a fork server that has imported this module
    (and so loaded the kernels) where there is one, spawn elsewhere.

    A plain fork of the calling process is avoided: a notebook kernel runs threads
    (its messaging), and a forked copy of those can hang the notebook.
    """
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return mp.get_context("spawn")


class _RankGroup:
    """Rank processes with a barrier, fed one command per run."""

    def __init__(self, n_ranks: int, spec: _Spec):
        ctx = _context()
        self.n_ranks = n_ranks
        self.barrier = ctx.Barrier(n_ranks)
        self.results = ctx.Queue()
        self.commands = [ctx.Queue() for _ in range(n_ranks)]
        self.processes = [
            ctx.Process(
                target=_rank_main,
                args=(r, spec, self.commands[r], self.results, self.barrier),
                daemon=True,
            )
            for r in range(n_ranks)
        ]
        self.info: list = [None] * n_ranks

    def __enter__(self) -> _RankGroup:
        for p in self.processes:
            p.start()
        for rank, info in self._collect("ready"):
            self.info[rank] = info
        return self

    def _collect(self, kind: str) -> list[tuple[int, object]]:
        out = []
        deadline = time.monotonic() + _TIMEOUT_S
        while len(out) < self.n_ranks:
            try:
                tag, rank, payload = self.results.get(timeout=0.5)
            except queue.Empty:
                dead = [p.exitcode for p in self.processes if not p.is_alive()]
                if dead:
                    raise RuntimeError(
                        f"a rank process ended (exit code {dead[0]}); when running a "
                        "script, call run_experiment under if __name__ == '__main__'"
                    ) from None
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        "a rank process did not answer in time"
                    ) from None
                continue
            if tag == "error":
                raise RuntimeError(f"rank {rank} failed:\n{payload}")
            if tag != kind:
                raise RuntimeError(f"rank {rank} sent {tag!r}, expected {kind!r}")
            out.append((rank, payload))
        return sorted(out, key=lambda item: item[0])

    def run(self, commands: list[_Command]) -> list[dict]:
        for queue_, cmd in zip(self.commands, commands, strict=True):
            queue_.put(cmd)
        return [payload for _, payload in self._collect("done")]

    def __exit__(self, *exc) -> None:
        for queue_ in self.commands:
            queue_.put(None)
        for p in self.processes:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join()
        self.results.close()
        for queue_ in self.commands:
            queue_.close()


# ------------------------------------------------------------- the experiment


@dataclass(frozen=True)
class Config:
    """Sizes, repetitions and the variant of the checkpoint experiment."""

    variant: str = "mechanism"  # "mechanism", or "baseline": no coalescing anywhere
    n_ranks: int = 2  # rank processes writing at the same time
    n_tensors: int = 2000  # tensors per rank
    median_bytes: float = 2 * KiB  # median size of the small tensors
    sigma: float = 1.0  # log-normal spread of the small tensors' sizes
    large_fraction: float = 0.001  # fraction of large (256 KiB to max_bytes) tensors
    max_bytes: int = 4 * MiB  # largest tensor
    chunk_bytes: int = 4 * MiB  # staging buffer of the aggregated strategies
    sweep_chunks: tuple[int, ...] = (64 * KiB, 256 * KiB, MiB, 4 * MiB)
    n_repeats: int = 3  # timed runs of each configuration (medians are reported)
    slow_repeats: int = 1  # runs of file per tensor (SLOW), often 30-60x slower
    n_threads: int = 2  # writer threads of the async and direct strategies
    strategies: tuple[str, ...] = STRATEGIES
    run_sweep: bool = True  # aggregated and O_DIRECT writes over sweep_chunks
    run_layouts: bool = True  # aggregated writes into one shared file as well
    seed: int = 0
    parent_dir: str | None = None  # where the temporary directory goes (None: TMPDIR)

    def __post_init__(self):
        check_choice("variant", self.variant, VARIANTS)
        check_int("n_ranks", self.n_ranks, minimum=1, maximum=8)
        check_int("n_tensors", self.n_tensors, minimum=1, maximum=10**6)
        check_float("median_bytes", self.median_bytes, minimum=8.0)
        check_float("sigma", self.sigma, minimum=0.0, maximum=4.0)
        check_float("large_fraction", self.large_fraction, minimum=0.0, maximum=1.0)
        check_int("max_bytes", self.max_bytes, minimum=8)
        for name, value in [("chunk_bytes", self.chunk_bytes)] + [
            ("sweep_chunks", c) for c in self.sweep_chunks
        ]:
            check_int(name, value, minimum=ALIGNMENT, maximum=256 * MiB)
            if value % ALIGNMENT:
                raise ValueError(
                    f"{name} must hold multiples of {ALIGNMENT}, got {value}"
                )
        check_int("n_repeats", self.n_repeats, minimum=1, maximum=50)
        check_int("slow_repeats", self.slow_repeats, minimum=1, maximum=self.n_repeats)
        check_int("n_threads", self.n_threads, minimum=0, maximum=16)
        if not self.strategies:
            raise ValueError("strategies must name at least one strategy")
        for s in self.strategies:
            check_choice("strategies", s, STRATEGIES)
        for name in ("run_sweep", "run_layouts"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool")
        check_int("seed", self.seed, minimum=0)
        if self.parent_dir is not None and not os.path.isdir(self.parent_dir):
            raise ValueError(
                f"parent_dir must be an existing directory, got {self.parent_dir!r}"
            )

    @classmethod
    def scaled(cls, factor: float, **changes) -> Config:
        """The default experiment with ``factor`` times as many tensors per rank."""
        factor = check_float("factor", factor, minimum=0.01, maximum=100.0)
        return cls(n_tensors=max(1, round(2000 * factor)), **changes)


@dataclass(frozen=True)
class RunRecord:
    """One timed write of the whole checkpoint by every rank."""

    strategy: str
    chunk_bytes: int  # staging chunk (meaningful for the aggregated strategies)
    layout: str  # "file_per_shard" or "shared_file"
    repeat: int
    submit_seconds: float  # first start to the last rank's last write call returning
    durable_seconds: float  # the same plus one os.sync() (NaN: not measured)
    cpu_seconds: float  # CPU time of all ranks (all threads) while submitting
    data_bytes: int  # tensor bytes written by all ranks
    write_calls: int  # write/pwrite/pwritev calls of all ranks, counted in the code
    kernel_write_calls: int  # the same from /proc/self/io (syscw); -1 if unavailable
    opens: int  # open calls of all ranks
    closes: int  # close calls of all ranks
    files: int  # files created, all ranks
    verification: tuple[Verification, ...] | None  # one per rank, if restored

    @property
    def submit_mbps(self) -> float:
        """Submission throughput in MB/s (10**6 bytes per second)."""
        return self.data_bytes / self.submit_seconds / 1e6

    @property
    def durable_mbps(self) -> float:
        """Durable throughput in MB/s (NaN where not measured)."""
        return self.data_bytes / self.durable_seconds / 1e6

    @property
    def cpu_mbps(self) -> float:
        """Bytes per CPU second of the submitting ranks, in MB/s: the software cost
        of the write path, which other processes' load cannot stretch."""
        return self.data_bytes / self.cpu_seconds / 1e6


@dataclass(frozen=True)
class Result:
    """Everything the experiment measured."""

    config: Config
    fs_type: str  # file system of the temporary directory
    direct: DirectProbe
    shard_bytes: tuple[int, ...]  # per rank
    data_bytes: int  # tensor bytes, all ranks
    n_tensors: int  # tensors, all ranks
    records: tuple[RunRecord, ...] = field(repr=False)
    skipped: tuple[str, ...] = ()  # strategies not run, with the reason

    def runs(
        self, strategy: str, chunk_bytes: int | None = None, layout="file_per_shard"
    ) -> list[RunRecord]:
        """The records of one configuration (``chunk_bytes=None``: the main one)."""
        check_choice("strategy", strategy, STRATEGIES)
        check_choice("layout", layout, LAYOUTS)
        chunk = self.config.chunk_bytes if chunk_bytes is None else chunk_bytes
        aggregated = strategy.startswith("aggregated")
        return [
            r
            for r in self.records
            if r.strategy == strategy
            and r.layout == layout
            and (r.chunk_bytes == chunk or not aggregated)
        ]

    def has(
        self, strategy: str, chunk_bytes: int | None = None, layout="file_per_shard"
    ):
        """Whether the configuration ran."""
        return bool(self.runs(strategy, chunk_bytes, layout))

    def median(
        self,
        strategy: str,
        what: str = "submit_mbps",
        chunk_bytes: int | None = None,
        layout: str = "file_per_shard",
    ) -> float:
        """Median over the repeats of one attribute of :class:`RunRecord`."""
        runs = self.runs(strategy, chunk_bytes, layout)
        if not runs:
            raise ValueError(f"no runs of {strategy} (chunk {chunk_bytes}, {layout})")
        return float(statistics.median(getattr(r, what) for r in runs))

    def ratio(self, fast: str, slow: str, clock: str = "submit") -> float:
        """Median throughput of ``fast`` over that of ``slow`` (main chunk size).

        ``clock`` is ``"submit"`` (wall clock until the last write returns),
        ``"durable"`` (plus one sync) or ``"cpu"`` (CPU time of the ranks).
        """
        what = f"{check_choice('clock', clock, ('submit', 'durable', 'cpu'))}_mbps"
        return self.median(fast, what) / self.median(slow, what)

    def rows(self) -> list[list]:
        """One row per main strategy: medians of time, throughput, CPU and counts
        (per rank), in the order of :data:`ROW_COLUMNS`."""
        rows = []
        n = self.config.n_ranks
        for s in STRATEGIES:
            if not self.has(s):
                continue
            durable = self.median(s, "durable_mbps")
            rows.append(
                [
                    STRATEGY_NAMES[s],
                    self.median(s, "submit_seconds") * 1e3,
                    self.median(s, "submit_mbps"),
                    "not measured" if math.isnan(durable) else durable,
                    self.median(s, "cpu_seconds") * 1e3 / n,
                    round(self.median(s, "write_calls") / n),
                    round(self.median(s, "kernel_write_calls") / n),
                    round(self.median(s, "opens") / n),
                    round(self.median(s, "files") / n),
                ]
            )
        return rows


ROW_COLUMNS = (
    "strategy",
    "submit (ms)",
    "submit (MB/s)",
    "durable (MB/s)",
    "CPU per rank (ms)",
    "write calls / rank",
    "kernel-counted / rank",
    "opens / rank",
    "files / rank",
)


def _schedule(config: Config, direct_ok: bool) -> list[tuple[str, int, str]]:
    """The configurations to time: (strategy, chunk_bytes, layout)."""
    strategies = [s for s in config.strategies if direct_ok or s not in DIRECT]
    items = [(s, config.chunk_bytes, "file_per_shard") for s in strategies]
    if config.run_sweep:
        for chunk in config.sweep_chunks:
            for s in ("aggregated", "aggregated_direct"):
                item = (s, chunk, "file_per_shard")
                if s in strategies and item not in items:
                    items.append(item)
    if config.run_layouts and "aggregated" in strategies:
        items.append(("aggregated", config.chunk_bytes, "shared_file"))
    # One file per tensor last in each round: deleting its thousands of files leaves
    # the file system busy for a while, which should not fall on one strategy alone.
    late = [item for item in items if item[0] == "file_per_tensor"]
    return [item for item in items if item not in late] + late


def _verified(item: tuple[str, int, str], config: Config) -> bool:
    """Whether a configuration is restored and checked (in its first round): every
    main one, and buffered aggregation at the smallest swept chunk, where the most
    tensors straddle two chunks."""
    strategy, chunk, layout = item
    smallest = min(config.sweep_chunks, default=chunk)
    return chunk == config.chunk_bytes or (strategy, chunk) == ("aggregated", smallest)


def _synced(item: tuple[str, int, str], config: Config) -> bool:
    """Whether a configuration's runs end with the durable clock's ``os.sync()``.

    Not one file per tensor: unlinking thousands of files whose blocks are already
    allocated takes milliseconds each here, unflushed ones microseconds. Not the
    sweep's other chunk sizes, which only report submission time: their files are
    deleted before they are flushed, so they add nothing to a later run's sync.
    """
    strategy, chunk, layout = item
    return strategy != "file_per_tensor" and chunk == config.chunk_bytes


def _record(item, repeat: int, outcome: list[dict], data_bytes: int, extra_files):
    """Combine the ranks' outcomes of one run into a :class:`RunRecord`."""
    strategy, chunk, layout = item
    start = min(o["t0"] for o in outcome)
    counts = IOCounts()
    for o in outcome:
        counts.add(o["counts"])
    syscw = [o["syscw"] for o in outcome]
    verified = [o["verification"] for o in outcome]
    return RunRecord(
        strategy=strategy,
        chunk_bytes=chunk,
        layout=layout,
        repeat=repeat,
        submit_seconds=max(o["t1"] for o in outcome) - start,
        durable_seconds=outcome[0]["t2"] - start,
        cpu_seconds=sum(o["cpu"] for o in outcome),
        data_bytes=data_bytes,
        write_calls=counts.writes,
        kernel_write_calls=-1 if min(syscw) < 0 else sum(syscw),
        opens=counts.opens,
        closes=counts.closes,
        files=sum(o["files"] for o in outcome) + extra_files,
        verification=None if verified[0] is None else tuple(verified),
    )


def run_experiment(config: Config) -> Result:
    """Write the checkpoint with every strategy, ``n_repeats`` times each (the
    :data:`SLOW` ones ``slow_repeats`` times), for real.

    The ranks start each write together; the runs of all configurations are
    interleaved (one round over all, then the next), so that a burst of load on the
    machine touches every strategy alike. In its first round each main configuration
    (and the smallest swept chunk) is also restored and checked. All files live in
    one temporary directory, removed at the end. The ranks are separate processes
    started by a fork server (or spawned): a script calling this function should do
    so under ``if __name__ == "__main__":``.

    Parameters
    ----------
    config : Config

    Returns
    -------
    Result
    """
    check_instance("config", config, Config)
    spec = _Spec(
        config.n_tensors,
        config.median_bytes,
        config.sigma,
        config.large_fraction,
        config.max_bytes,
        config.n_threads,
        config.seed,
    )
    coalesce = config.variant == "mechanism"
    with (
        tempfile.TemporaryDirectory(prefix="ckpt-", dir=config.parent_dir) as tmp,
        _RankGroup(config.n_ranks, spec) as ranks,
    ):
        probe = probe_direct_io(tmp)
        items = _schedule(config, probe.supported)
        shard = [info[0] for info in ranks.info]
        bases = np.cumsum([0] + [_round_up(s, SHARED_ALIGN) for s in shard[:-1]])
        data_bytes = sum(info[1] for info in ranks.info)

        def run(item, name: str, verify: bool) -> tuple[list[dict], int]:
            run_dir = Path(tmp) / name
            run_dir.mkdir()
            shared = item[2] == "shared_file"
            commands = [
                _Command(
                    item[0],
                    coalesce,
                    item[1],
                    str(run_dir),
                    int(bases[r]) if shared else None,
                    verify,
                    _synced(item, config),
                )
                for r in range(config.n_ranks)
            ]
            outcome = ranks.run(commands)
            extra = len([p for p in run_dir.iterdir() if p.is_file()])
            shutil.rmtree(run_dir)
            return outcome, extra

        # One untimed warm-up of the strategies the claim compares by CPU time: first
        # touches of memory and code in fresh rank processes are no strategy's cost.
        for k, item in enumerate(items):
            if item[0] in _WARM_UP and item[1:] == (config.chunk_bytes, LAYOUTS[0]):
                run(item, f"warm-{k:02d}", verify=False)
        records = []
        for repeat in range(config.n_repeats):
            for k, item in enumerate(items):
                if item[0] in SLOW and repeat >= config.slow_repeats:
                    continue
                verify = repeat == 0 and _verified(item, config)
                outcome, extra = run(item, f"run{repeat:02d}-{k:02d}", verify)
                records.append(_record(item, repeat, outcome, data_bytes, extra))
                log.debug("%s %s: %.3f s", item, repeat, records[-1].submit_seconds)
    skipped = () if probe.supported else tuple(f"{s}: {probe.message}" for s in DIRECT)
    return Result(
        config=config,
        fs_type=probe.fs_type,
        direct=probe,
        shard_bytes=tuple(shard),
        data_bytes=data_bytes,
        n_tensors=sum(info[2] for info in ranks.info),
        records=tuple(records),
        skipped=skipped,
    )


def check_claim(result: Result) -> None:
    """Check the chapter's claim on a result; raise ``ClaimFailed`` if it misses.

    1. Every restored configuration gives back every tensor byte for byte, with
       matching Fletcher-64 checksums.
    2. Aggregated writing into one shard file writes at least
       ``MIN_METADATA_RATIO`` (2x) as many bytes per CPU second of the ranks as one
       file per tensor (medians).
    3. Aggregated writing issues at least ``MIN_SYSCALL_RATIO`` (50x) fewer write
       system calls than one write per tensor, counted by the kernel where
       ``/proc/self/io`` exists (buffered, and under ``O_DIRECT`` where it ran).
    4. Where the temporary directory sits on a block-device file system that
       enforces ``O_DIRECT`` alignment (:data:`ALIGNING_FILESYSTEMS`): an aligned
       write succeeds, an unaligned one fails with EINVAL, and aggregated direct
       writing has at least ``MIN_DIRECT_RATIO`` (2.5x) the median submission
       throughput of direct writing one tensor at a time.

    The buffered gain of coalescing in time is reported, not asserted: on a local
    disk it is small next to the cost of copying into the page cache (about 1.3x in
    CPU time), smaller than the noise of a shared machine. The metadata cost is
    compared in CPU time, which other processes cannot stretch, because creating a
    file took from about 20 to 300 microseconds on the machine this was written on.
    """
    check_instance("result", result, Result)
    for s in ("file_per_tensor", "write_per_tensor", "aggregated"):
        require(result.has(s), f"the claim needs runs of {s}")
    require(
        result.config.chunk_bytes >= 4 * MiB,
        f"the claim is about chunks of at least 4 MiB, got {result.config.chunk_bytes}",
    )
    checked = [r for r in result.records if r.verification is not None]
    require(checked, "no configuration was restored and verified")
    for r in checked:
        for v in r.verification:
            require(
                v.ok,
                f"{r.strategy} ({r.layout}, chunk {r.chunk_bytes}): restored "
                f"{v.n_exact} exact and {v.n_checksum_ok} checksum-matching tensors "
                f"of {v.n_tensors}",
            )
    metadata = result.ratio("aggregated", "file_per_tensor", clock="cpu")
    require(
        metadata >= MIN_METADATA_RATIO,
        f"aggregated writing writes only {metadata:.2f}x the bytes per CPU second of "
        f"one file per tensor (needs {MIN_METADATA_RATIO}x)",
    )
    calls = "kernel_write_calls" if result.records[0].kernel_write_calls >= 0 else None
    calls = calls or "write_calls"
    pairs = [("aggregated", "write_per_tensor")]
    if result.has("aggregated_direct") and result.has("direct_per_tensor"):
        pairs.append(("aggregated_direct", "direct_per_tensor"))
    for fast, slow in pairs:
        fewer = result.median(slow, calls) / result.median(fast, calls)
        require(
            fewer >= MIN_SYSCALL_RATIO,
            f"{fast} issues only {fewer:.1f}x fewer write calls than {slow} "
            f"(needs {MIN_SYSCALL_RATIO}x)",
        )
    probe = result.direct
    if not probe.supported or probe.fs_type not in ALIGNING_FILESYSTEMS:
        return
    require(probe.aligned_ok, f"an aligned O_DIRECT write failed: {probe.message}")
    require(
        probe.enforced,
        f"an unaligned O_DIRECT write did not fail with EINVAL: {probe.message}",
    )
    if pairs[1:]:
        direct = result.ratio("aggregated_direct", "direct_per_tensor")
        require(
            direct >= MIN_DIRECT_RATIO,
            f"aggregated O_DIRECT writing is only {direct:.2f}x faster than O_DIRECT "
            f"writes per tensor (needs {MIN_DIRECT_RATIO}x)",
        )


# ------------------------------------------------------------------- figures


def _plain_log_ticks(ax, axis: str = "y") -> None:
    """Label a log axis with plain numbers (1, 2, 5, 10, ...) instead of powers."""
    from matplotlib.ticker import FuncFormatter

    def label(value, _):
        if value <= 0:
            return ""
        lead = round(value / 10 ** math.floor(math.log10(value) + 1e-9))
        return f"{value:,.4g}" if lead in (1, 2, 5) else ""

    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(FuncFormatter(label))
    target.set_minor_formatter(FuncFormatter(label))


def _bar_colors():
    from paperlab.plotting import COLORS

    return {
        "file_per_tensor": COLORS[1],
        "write_per_tensor": COLORS[3],
        "pwritev": COLORS[2],
        "aggregated": COLORS[0],
        "aggregated_async": COLORS[4],
        "direct_per_tensor": COLORS[7],
        "aggregated_direct": COLORS[5],
    }


def plot_throughput(result: Result):
    """Bars of median submission and durable throughput per strategy (log scale)."""
    check_instance("result", result, Result)
    from paperlab.plotting import COLORS, label_axes, subplots

    strategies = [s for s in STRATEGIES if result.has(s)]
    x = np.arange(len(strategies))
    fig, ax = subplots(width=7.5, height=3.6)
    for shift, (what, label, color) in zip(
        (-0.2, 0.2),
        [
            ("submit_mbps", "submission (until the last write returns)", COLORS[0]),
            ("durable_mbps", "durable (plus one os.sync())", COLORS[4]),
        ],
        strict=True,
    ):
        values = [result.median(s, what) for s in strategies]
        ax.bar(x + shift, values, width=0.4, label=label, color=color)
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * 6)  # room for the legend above the bars
    _plain_log_ticks(ax)
    ax.set_xticks(x, [STRATEGY_NAMES[s] for s in strategies], rotation=20, ha="right")
    label_axes(
        ax,
        title=f"Writing {result.data_bytes / 2**20:.0f} MiB in "
        f"{result.n_tensors:,} tensors from {result.config.n_ranks} ranks",
        xlabel="strategy",
        ylabel="throughput (MB/s, median)",
        legend=False,
    )
    ax.legend(loc="upper left", ncols=2)
    return fig


def plot_sweep(result: Result):
    """Throughput and write calls of aggregated writing against the chunk size.

    Dashed lines mark the strategies that do not depend on the chunk size.
    """
    check_instance("result", result, Result)
    from matplotlib.ticker import NullLocator

    from paperlab.plotting import label_axes, subplots

    colors = _bar_colors()
    n = result.config.n_ranks
    fig, (left, right) = subplots(1, 2, width=10, height=3.8)
    for s in ("aggregated", "aggregated_direct"):
        chunks = [c for c in result.config.sweep_chunks if result.has(s, c)]
        if not chunks:
            continue
        kib = np.array(chunks) / KiB
        mbps = [result.median(s, "submit_mbps", c) for c in chunks]
        calls = [result.median(s, "write_calls", c) / n for c in chunks]
        left.plot(kib, mbps, "o-", color=colors[s], label=STRATEGY_NAMES[s])
        right.plot(kib, calls, "o-", color=colors[s], label=STRATEGY_NAMES[s])
    for s in ("write_per_tensor", "pwritev", "direct_per_tensor"):
        if result.has(s):
            mbps = result.median(s, "submit_mbps")
            left.axhline(mbps, ls="--", color=colors[s], label=STRATEGY_NAMES[s])
            calls = result.median(s, "write_calls") / n
            right.axhline(calls, ls="--", color=colors[s], label=STRATEGY_NAMES[s])
    chunks = np.array(result.config.sweep_chunks) // KiB
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(chunks, [f"{c:,}" for c in chunks])
        ax.xaxis.set_minor_locator(NullLocator())
        _plain_log_ticks(ax)
    label_axes(
        left,
        title="Submission throughput",
        xlabel="staging chunk (KiB)",
        ylabel="throughput (MB/s, median)",
        legend=False,
    )
    label_axes(
        right,
        title="Write system calls per rank",
        xlabel="staging chunk (KiB)",
        ylabel="write calls per rank",
        legend=False,
    )
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=5)
    return fig


EXPLORE_STRATEGIES = tuple(s for s in STRATEGIES if s != "aggregated_async")


def plot_explore(result: Result, chunk_bytes: int):
    """Every strategy at one staging chunk size: throughput, system calls, files.

    The two aggregated strategies of the sweep use their runs at ``chunk_bytes``
    (one of the swept sizes); the others do not depend on it.
    """
    check_instance("result", result, Result)
    chunk_bytes = check_int("chunk_bytes", chunk_bytes, minimum=ALIGNMENT)
    if not result.has("aggregated", chunk_bytes):
        raise ValueError(f"no aggregated runs with chunk_bytes={chunk_bytes}")
    from paperlab.plotting import COLORS, label_axes, subplots

    colors = _bar_colors()
    strategies = [s for s in EXPLORE_STRATEGIES if result.has(s, chunk_bytes)]
    n = result.config.n_ranks
    x = np.arange(len(strategies))
    fig, (left, right) = subplots(1, 2, width=10, height=3.9)
    mbps = [result.median(s, "submit_mbps", chunk_bytes) for s in strategies]
    left.bar(x, mbps, color=[colors[s] for s in strategies])
    left.set_yscale("log")
    _plain_log_ticks(left)
    calls = [
        sum(
            result.median(s, what, chunk_bytes)
            for what in ("write_calls", "opens", "closes")
        )
        / n
        for s in strategies
    ]
    files = [result.median(s, "files", chunk_bytes) / n for s in strategies]
    right.bar(x - 0.2, calls, width=0.4, color=COLORS[0], label="system calls")
    right.bar(x + 0.2, files, width=0.4, color=COLORS[1], label="files created")
    right.set_yscale("log")
    _plain_log_ticks(right)
    names = [STRATEGY_NAMES[s] for s in strategies]
    for ax in (left, right):
        ax.set_xticks(x, names, rotation=25, ha="right")
    label_axes(
        left,
        title=f"Submission throughput, chunk {chunk_bytes // KiB:,} KiB",
        xlabel="strategy",
        ylabel="throughput (MB/s, median)",
    )
    label_axes(
        right,
        title="Open, write and close calls, and files, per rank",
        xlabel="strategy",
        ylabel="count per rank",
    )
    return fig

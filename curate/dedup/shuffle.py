"""Partitioned files of the partitioned dedup: every step's task scatters its rows into one file per
destination partition, and the next step's task for partition d gathers file d of every source.

Files live under the work folder as STEP/SOURCE/D.parquet and are written atomically, so a task that
dies leaves no partial file and its rerun overwrites whatever it had written. Every source writes a file
for every destination (empty ones too), so readers never list folders.
"""

from __future__ import annotations

import contextlib
import ctypes
import resource
import time

import numpy as np
import pyarrow as pa

from curate import storage

MIX = np.uint64(0x9E3779B97F4A7C15)  # curate.dedup.mih's bucket mix: partitions follow its bucket keys
_TOP = np.uint64(48)  # partitions take the top 16 bits of a mixed key, which bucketing never masks


def path(work: str, step: str, source: object, dest: int) -> str:
    return storage.join(work, step, str(source), f"{dest}.parquet")


def scatter(
    table: pa.Table, dest: np.ndarray, parts: int, work: str, step: str, source: object
) -> np.ndarray:
    """Write table rows to their destination files (row order kept within each); returns rows per file.

    Destinations are sorted as 16-bit integers where they fit (numpy's radix sort), and files are written
    without dictionaries: their columns are mostly distinct keys and indices."""
    dest = dest.astype(np.int16) if parts < 2**15 else dest
    order = np.argsort(dest, kind="stable")
    table = table.take(pa.array(order))
    bounds = np.searchsorted(dest[order], np.arange(parts + 1))
    for d in range(parts):
        part = table.slice(int(bounds[d]), int(bounds[d + 1] - bounds[d]))
        storage.write_parquet_atomic(
            part, path(work, step, source, d), compression="lz4", use_dictionary=False
        )
    return np.diff(bounds)


def gather(work: str, step: str, sources, dest: int, columns: list[str] | None = None) -> pa.Table:
    """File `dest` of every source, concatenated in the order of `sources`."""
    tables = [storage.read_parquet(path(work, step, s, dest), columns) for s in sources]
    return pa.concat_tables(tables).combine_chunks()


def of_mixed(mixed: np.ndarray, parts: int) -> np.ndarray:
    """Partition of already mixed keys: contiguous ranges of their top 16 bits, so that keys equal on
    those bits (every pair that can share a bucket) meet in one partition."""
    return ((mixed >> _TOP).astype(np.int64) * parts) >> 16


def of_key(keys: np.ndarray, parts: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        return of_mixed(keys * MIX, parts)


def of_node(gidx: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Range partition of global node indices; `starts[j]` is range j's first index."""
    return np.searchsorted(starts, gidx, side="right") - 1


def distinct_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each (a, b) once, sorted."""
    if len(a) == 0:
        return a, b
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    keep = np.ones(len(a), bool)
    keep[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a[keep], b[keep]


def measured(fn, job) -> dict:
    """fn(job)'s stats plus the task's own peak resident memory, `peak_rss_mb`, and the CPU seconds its
    process spent on it, `cpu_s` (a per-core cost that other load on the machine does not inflate).

    Workers run many tasks, so the process's lifetime peak (getrusage) would report the largest task
    so far; on Linux the peak is reset when the task starts (/proc/self/clear_refs) and read back from
    VmHWM, so each task reports its own (above the worker's floor: Python, Arrow, DuckDB and Ray, about
    300 MB). Elsewhere the lifetime peak is an upper bound.
    """
    _release()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        own = True
    except OSError:
        own = False
    cpu = time.process_time()
    stats = fn(job)
    cpu = time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if own:
        with open("/proc/self/status") as fh:
            peak = next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmHWM:"))
    return {**stats, "peak_rss_mb": round(peak, 1), "cpu_s": round(cpu, 2)}


def _release() -> None:
    """Hand memory that earlier tasks of this worker freed back to the system (Arrow's pool, malloc's
    arenas), so that a task's peak is its own working set above the worker's floor."""
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)

"""Partitioned files of the partitioned dedup: every step's task scatters its rows into one file per
destination partition, and the next step's task for partition d gathers file d of every source.

Files live under the work folder as STEP/SOURCE/D.parquet and are written atomically, so a task that
dies leaves no partial file and its rerun overwrites whatever it had written. Every source writes a file
for every destination (empty ones too), so readers never list folders.
"""

from __future__ import annotations

import resource

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
    """Write table rows to their destination files (row order kept within each); returns rows per file."""
    order = np.argsort(dest, kind="stable")
    table = table.take(pa.array(order))
    bounds = np.searchsorted(dest[order], np.arange(parts + 1))
    for d in range(parts):
        part = table.slice(int(bounds[d]), int(bounds[d + 1] - bounds[d]))
        storage.write_parquet_atomic(part, path(work, step, source, d), compression="lz4")
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


def peak_rss_mb() -> float:
    """This process's peak resident memory (a reused worker reports the largest task it ran)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

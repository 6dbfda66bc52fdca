"""`crawl()`: archive files -> manifest parts, one executor job per file, then one cross-file dedup pass.

Layout of OUT (docs/FORMAT.md#crawl): part-<file:05d>-<chunk:03d>.parquet, `_crawl/inputs.json` (the
expanded input list, so a rerun with other inputs is refused instead of mixed in), `_crawl/<file>.stats.json`
per file (the executor's completion marker: a rerun skips finished files), and `.curate/summary.json`, written
last. Repeats are dropped per file while extracting; afterwards one pass over the uid column of all
parts drops pairs already kept from an earlier part (name order), so the whole run keeps each
(url, caption) once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from curate import storage
from curate.crawl.archive import iter_records
from curate.crawl.counters import ERROR_KINDS, SKIP_REASONS, CrawlStats
from curate.crawl.extract import RecordHandler, wanted
from curate.crawl.inputs import expand_inputs
from curate.crawl.pairs import PairCollector
from curate.crawl.repeats import drop_cross_file_repeats
from curate.crawl.writer import FileParts
from curate.dataset import migrate_sidecars, sidecar
from curate.errors import CurateError
from curate.executor import Job, execute

log = logging.getLogger(__name__)

STATE_DIR = "_crawl"
SUMMARY = "summary.json"


@dataclass(frozen=True)
class FileTask:
    index: int
    archive: str
    out_dir: str
    min_alt_chars: int
    rows_per_part: int
    max_record_bytes: int


def crawl_file(job: Job) -> dict:
    """The executor's job: read one archive to its end, write its parts, return its stats."""
    task: FileTask = job.payload
    stats = CrawlStats(task.archive)
    collector = PairCollector(stats, task.min_alt_chars)
    parts = FileParts(task.out_dir, task.index)
    parts.remove_stale()
    handle = RecordHandler(task.archive, collector, stats, task.max_record_bytes)
    fs, inner = storage.url_to_fs(task.archive)
    start = time.perf_counter()
    try:
        with fs.open(inner, "rb", block_size=1 << 22) as fh:
            for record in iter_records(fh, stats, max_record_bytes=task.max_record_bytes, want=wanted):
                handle(record)
                if len(collector) >= task.rows_per_part:
                    parts.write(collector.take())
        if len(collector):
            parts.write(collector.take())
    except BaseException:
        parts.remove_stale()  # a failed file leaves no parts behind; the executor retries or reports it
        raise
    seconds = time.perf_counter() - start
    return {**stats.to_dict(), "parts": parts.paths, "seconds": round(seconds, 4)}


def crawl(
    inputs: list[str],
    out_dir: str,
    *,
    executor: str = "local",
    workers: int | None = None,
    min_alt_chars: int = 1,
    prefix: str | None = None,
    limit: int | None = None,
    rows_per_part: int = 100_000,
    max_record_bytes: int = 16 << 20,
    retries: int = 2,
    overwrite: bool = False,
) -> dict:
    """Extract (image URL, alt text) pairs from WARC/WAT archives into manifest parts in `out_dir`.

    Returns the run summary (also written to OUT/.curate/summary.json): merged per-file counters, the
    cross-file duplicates dropped, the failed files, and rates.
    """
    if min_alt_chars < 1:
        raise CurateError(f"--min-alt-chars must be at least 1, not {min_alt_chars}")
    if rows_per_part < 1:
        raise CurateError(f"--rows-per-part must be at least 1, not {rows_per_part}")
    archives = expand_inputs(list(inputs), prefix=prefix, limit=limit)
    _prepare_out_dir(out_dir, archives, overwrite)
    state = storage.join(out_dir, STATE_DIR)
    jobs = [
        Job(
            key=f"{i:05d}",
            stats_path=storage.join(state, f"{i:05d}.stats.json"),
            payload=FileTask(i, archive, out_dir, min_alt_chars, rows_per_part, max_record_bytes),
        )
        for i, archive in enumerate(archives)
    ]
    start = time.perf_counter()
    run = execute(crawl_file, jobs, executor=executor, workers=workers, retries=retries, desc="crawl files")
    drop_cross_file_repeats(out_dir)
    seconds = time.perf_counter() - start
    totals = run.stats
    parts = [
        p.rpartition("/")[2]
        for p in storage.list_files(out_dir, ".parquet")
        if p.rpartition("/")[2].startswith("part-")
    ]
    written = _count_rows(out_dir, parts)
    summary = {
        "inputs": len(archives),
        "files_done": run.done + run.skipped,
        "files_skipped_already_done": run.skipped,
        "files_failed": run.failed,
        "records": totals.get("records", 0),
        "records_by_type": totals.get("records_by_type", {}),
        "pages": totals.get("pages", 0),
        "images_seen": totals.get("images_seen", 0),
        "pairs_kept_per_file": totals.get("pairs_kept", 0),
        "duplicates_across_files": totals.get("pairs_kept", 0) - written,
        "pairs_written": written,
        "skipped": {k: (totals.get("skipped") or {}).get(k, 0) for k in SKIP_REASONS},
        "errors": {k: (totals.get("errors") or {}).get(k, 0) for k in ERROR_KINDS},
        "bytes_read": totals.get("bytes_read", 0),
        "parts": len(parts),
        "seconds": round(seconds, 3),
        # Rates of this invocation only: files finished by an earlier run are not counted in them.
        "pages_per_second": round(totals.get("pages", 0) / seconds, 1)
        if seconds and not run.skipped
        else None,
    }
    storage.write_json_atomic(summary, sidecar(out_dir, SUMMARY))
    return summary


def _count_rows(out_dir: str, parts: list[str]) -> int:
    import pyarrow.parquet as pq

    total = 0
    for name in parts:
        fs, inner = storage.url_to_fs(storage.join(out_dir, name))
        with fs.open(inner, "rb") as fh:
            total += pq.ParquetFile(fh).metadata.num_rows
    return total


def _prepare_out_dir(out_dir: str, archives: list[str], overwrite: bool) -> None:
    """Record the inputs; refuse a folder crawled from other inputs (or holding other parts) unless
    overwrite."""
    migrate_sidecars(out_dir)
    record = storage.join(out_dir, STATE_DIR, "inputs.json")
    fs, _ = storage.url_to_fs(out_dir)
    if storage.exists(record) and not overwrite:
        if storage.read_json(record) == archives:
            return  # the same run again: resume
        raise CurateError(
            f"{out_dir} holds a crawl of other inputs; choose an empty folder or pass --overwrite"
        )
    old = [p for p in storage.list_files(out_dir, ".parquet") if p.rpartition("/")[2].startswith("part-")]
    if old and not overwrite:
        raise CurateError(
            f"{out_dir} already holds manifest parts ({len(old)}); choose an empty folder or pass --overwrite"
        )
    for path in old:
        fs.rm(storage.url_to_fs(path)[1])
    state = storage.join(out_dir, STATE_DIR)
    if overwrite and storage.exists(state):
        fs.rm(storage.url_to_fs(state)[1], recursive=True)
    summary = sidecar(out_dir, SUMMARY)
    if storage.exists(summary):
        fs.rm(storage.url_to_fs(summary)[1])
    storage.write_json_atomic(archives, record)

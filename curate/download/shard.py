"""One manifest part -> one shard: every manifest row becomes exactly one shard row.

`download_shard` is the executor job function. Within a worker process, a thread pool fetches and
processes rows (sockets and Pillow release the GIL); the number of rows in flight is bounded and rows
are written in row groups as they finish, so memory does not grow with the part size. Rows are stored
in completion order, not manifest order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from curate import storage
from curate.download.config import DownloadConfig
from curate.download.fetch import Fetcher, FetchError
from curate.download.optout import OptOut, load_optout
from curate.download.process import ImageError, process_image
from curate.download.writer import ShardWriter
from curate.executor import Job
from curate.schema import ERROR_CLASSES, SHARD_SCHEMA, kept_column_name, with_extra_columns
from curate.urls import parse_target

log = logging.getLogger(__name__)

MANIFEST_CORE = ("uid", "url", "caption", "status")
PROGRESS_EVERY_S = 1.0


@dataclass(frozen=True)
class ShardTask:
    """The pickled payload of one download job."""

    manifest_part: str | None  # None when retrying: the rows come from the existing shard
    shard_path: str
    stats_path: str  # the real NNNNN.stats.json (a retry job's executor marker is elsewhere)
    config: DownloadConfig
    takedown_path: str | None
    optout_files: tuple[str, ...]
    progress_path: str | None = None
    retry_classes: tuple[str, ...] = ()
    run_id: str = ""  # caches (DNS, robots.txt, host cut-offs) live for one run, not across runs


# Per worker process: one Fetcher per run, so DNS, robots.txt, connection pools and host cut-offs are
# shared across the shards that the process runs for that run.
_FETCHERS: dict[tuple[str, DownloadConfig], Fetcher] = {}
_OPTOUTS: dict[tuple, OptOut] = {}


def _fetcher(task: ShardTask) -> Fetcher:
    key = (task.run_id, task.config)
    fetcher = _FETCHERS.get(key)
    if fetcher is None:
        for old in _FETCHERS.values():
            old.close()
        _FETCHERS.clear()
        fetcher = _FETCHERS[key] = Fetcher(task.config)
    return fetcher


def close_fetchers() -> None:
    """Close this process's idle connections (the driver runs shards itself when workers == 1)."""
    for fetcher in _FETCHERS.values():
        fetcher.close()
    _FETCHERS.clear()


def _optout(task: ShardTask) -> OptOut:
    key = (task.takedown_path, task.optout_files)
    if key not in _OPTOUTS:
        _OPTOUTS.clear()
        _OPTOUTS[key] = load_optout(task.takedown_path, task.optout_files)
    return _OPTOUTS[key]


def shard_schema(manifest_schema: pa.Schema) -> pa.Schema:
    """SHARD_SCHEMA followed by the manifest's preserved columns (renamed manifest_X on a clash)."""
    extra = []
    for f in manifest_schema:
        if f.name in MANIFEST_CORE:
            continue
        # The manifest's own rule (case-insensitive: DuckDB resolves WIDTH to width).
        extra.append(f.with_name(kept_column_name(f.name)))
    return with_extra_columns(SHARD_SCHEMA, pa.schema(extra))


def download_shard(job: Job) -> dict:
    """Executor job: download one manifest part (or retry rows of one shard); return its stats."""
    task: ShardTask = job.payload
    start = time.perf_counter()
    if task.retry_classes:
        stats = _retry_shard(task)
    else:
        stats = _download_part(task)
    stats["seconds"] = round(time.perf_counter() - start, 3)
    if task.retry_classes:
        # A retry rewrites the shard's own completion marker; the executor's marker is the retry's.
        storage.write_json_atomic({"key": job.key, **stats}, task.stats_path)
    return stats


def _download_part(task: ShardTask) -> dict:
    fs, inner = storage.url_to_fs(task.manifest_part)
    with fs.open(inner, "rb") as fh:
        pf = pq.ParquetFile(fh)
        rename = {
            f.name: kept_column_name(f.name)
            for f in pf.schema_arrow
            if f.name not in MANIFEST_CORE and kept_column_name(f.name) != f.name
        }
        return _run_rows(task, shard_schema(pf.schema_arrow), _rows_of(pf, rename), kept=None)


def _rows_of(pf: pq.ParquetFile, rename: dict[str, str]) -> Iterator[dict]:
    for batch in pf.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            for old, new in rename.items():
                row[new] = row.pop(old)
            yield row


def _retry_shard(task: ShardTask) -> dict:
    """Re-fetch the rows whose error_class is in retry_classes; copy every other row unchanged."""
    fs, inner = storage.url_to_fs(task.shard_path)
    with fs.open(inner, "rb") as fh:
        return _retry_rows_of(task, pq.ParquetFile(fh))


def _retry_rows_of(task: ShardTask, pf: pq.ParquetFile) -> dict:
    schema = pf.schema_arrow
    wanted = set(task.retry_classes)

    def kept_batches() -> Iterator[pa.RecordBatch]:
        for batch in pf.iter_batches(batch_size=256):
            mask = pa.array([c not in wanted for c in batch.column("error_class").to_pylist()])
            yield batch.filter(mask)

    def retry_rows() -> Iterator[dict]:
        cols = [n for n in schema.names if n not in SHARD_SCHEMA.names or n in MANIFEST_CORE]
        for batch in pf.iter_batches(batch_size=1024, columns=cols + ["error_class"]):
            for row in batch.to_pylist():
                if row.pop("error_class") in wanted:
                    row["status"] = "ok"
                    yield row

    return _run_rows(task, schema, retry_rows(), kept=kept_batches())


def _run_rows(
    task: ShardTask, schema: pa.Schema, rows: Iterator[dict], kept: Iterator[pa.RecordBatch] | None
) -> dict:
    """Write `kept` batches, then every row of `rows` (fetched, or settled by the precheck), to the shard."""
    writer = ShardWriter(task.shard_path, schema, task.config.row_group_rows)
    sink = _RowSink(task, writer, [n for n in schema.names if n not in SHARD_SCHEMA.names])
    try:
        for batch in kept or ():
            writer.add_batch(batch)
        _fetch_rows(task, rows, sink)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    if task.progress_path:
        _write_progress(task.progress_path, writer.status, writer.error_class)
    return {
        "rows": writer.rows,
        "status": dict(writer.status),
        "error_class": dict(writer.error_class),
        "bytes_downloaded": sink.bytes_downloaded,
        "bytes_stored": sink.bytes_stored,
    }


class _RowSink:
    """Finished rows into the shard writer: kept manifest columns copied over, byte totals counted, and the
    live progress file refreshed at most every PROGRESS_EVERY_S."""

    def __init__(self, task: ShardTask, writer: ShardWriter, extra_names: list[str]) -> None:
        self.task, self.writer, self.extra_names = task, writer, extra_names
        self.bytes_downloaded = 0
        self.bytes_stored = 0
        self._last_progress = 0.0

    def record(self, result: dict, source: dict) -> None:
        self.bytes_downloaded += result.pop("_downloaded", 0)
        for name in self.extra_names:
            result[name] = source.get(name)
        self.writer.add(result)
        self.bytes_stored += len(result["image"] or b"")
        now = time.monotonic()
        if self.task.progress_path and now - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = now
            _write_progress(self.task.progress_path, self.writer.status, self.writer.error_class)


def _fetch_rows(task: ShardTask, rows: Iterator[dict], sink: _RowSink) -> None:
    """Rows the precheck settles are recorded at once; the others are fetched on `threads` threads, which put
    finished rows on a queue. At most 2 x threads rows are in flight, so memory stays bounded."""
    cfg = task.config
    fetcher, optout = _fetcher(task), _optout(task)
    finished: queue.SimpleQueue = queue.SimpleQueue()
    in_flight = 0
    with ThreadPoolExecutor(max_workers=cfg.threads, thread_name_prefix="curate-dl") as pool:
        for row in rows:
            early = precheck(row, optout)
            if early is not None:
                sink.record(early, row)
                continue
            pool.submit(_fetch_one, finished, fetcher, cfg, row, optout)
            in_flight += 1
            if in_flight >= cfg.threads * 2:
                sink.record(*_next_finished(finished))
                in_flight -= 1
        for _ in range(in_flight):
            sink.record(*_next_finished(finished))


def _fetch_one(
    finished: queue.SimpleQueue, fetcher: Fetcher, cfg: DownloadConfig, row: dict, optout: OptOut
) -> None:
    """A pool thread's job: the row's result (or the exception it raised) onto the `finished` queue."""
    try:
        finished.put((_download_row(fetcher, cfg, row, optout), row))
    except BaseException as exc:  # noqa: BLE001 - re-raised in the shard's thread by _next_finished
        finished.put((exc, row))


def _next_finished(finished: queue.SimpleQueue) -> tuple[dict, dict]:
    """(result, source row) of the next finished fetch; a fetch's exception is raised here."""
    result, row = finished.get()
    if isinstance(result, BaseException):
        raise result
    return result, row


def base_row(row: dict) -> dict:
    return {
        "uid": row["uid"],
        "url": row.get("url"),
        "caption": row.get("caption"),
        "status": "failed",
        "error_class": None,
        "error_message": None,
        "http_status": None,
        "final_url": None,
        "content_type": None,
        "image": None,
        "width": None,
        "height": None,
        "original_width": None,
        "original_height": None,
        "image_format": None,
        "original_format": None,
        "sha256": None,
        "bytes": None,
        "fetched_at": None,
    }


def precheck(row: dict, optout: OptOut) -> dict | None:
    """The final row for manifest rows that are never requested (bad URL, opt-out), else None."""
    manifest_status = row.get("status") or "ok"
    if manifest_status != "ok":
        out = base_row(row)
        out["error_class"] = manifest_status if manifest_status in ERROR_CLASSES else "invalid_url"
        out["error_message"] = f"manifest marked this row {manifest_status}"
        return out
    if parse_target(row.get("url")) is None:
        out = base_row(row)
        out.update(
            error_class="invalid_url",
            error_message=f"not an absolute http(s) URL: {str(row.get('url'))[:200]!r}",
        )
        return out
    why = optout.reason(row["uid"], row.get("url"))
    if why:
        out = base_row(row)
        out.update(status="skipped", error_class="opted_out", error_message=why)
        return out
    return None


def _download_row(fetcher: Fetcher, cfg: DownloadConfig, row: dict, optout: OptOut) -> dict:
    """Fetch and process one row; never raises for a bad URL, server or image."""
    out = base_row(row)
    try:
        resp = fetcher.fetch(row["url"], refuse=lambda hop: optout.reason(row["uid"], hop))
    except FetchError as exc:
        out.update(
            status="skipped" if exc.error_class == "opted_out" else "failed",
            error_class=exc.error_class,
            error_message=str(exc)[:500],
            http_status=exc.http_status,
            final_url=exc.final_url,
            content_type=exc.content_type,
            fetched_at=datetime.now(UTC),
        )
        return out
    except Exception as exc:
        log.debug("unexpected error on %s", row.get("url"), exc_info=True)
        out.update(
            error_class="unknown",
            error_message=f"{type(exc).__name__}: {exc}"[:500],
            fetched_at=datetime.now(UTC),
        )
        return out
    out.update(
        http_status=resp.http_status,
        final_url=resp.final_url,
        content_type=resp.content_type,
        bytes=len(resp.body),
        sha256=hashlib.sha256(resp.body).hexdigest(),
        fetched_at=datetime.now(UTC),
        _downloaded=len(resp.body),
    )
    try:
        img = process_image(resp.body, cfg)
    except ImageError as exc:
        if exc.original_size:
            out["original_width"], out["original_height"] = exc.original_size
        out.update(error_class=exc.error_class, error_message=str(exc)[:500])
        return out
    except Exception as exc:  # noqa: BLE001 - Pillow can raise anything on hostile input
        out.update(error_class="decode_error", error_message=f"{type(exc).__name__}: {exc}"[:500])
        return out
    out.update(
        status="success",
        image=img.data,
        width=img.width,
        height=img.height,
        original_width=img.original_width,
        original_height=img.original_height,
        image_format=img.image_format,
        original_format=img.original_format,
    )
    return out


def _write_progress(path: str, counts: Counter, errors: Counter) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump({"status": dict(counts), "error_class": dict(errors)}, fh)
    os.replace(tmp, path)

"""`--engine img2dataset`: run img2dataset with equivalent options and convert its output to our shards.

For users who already depend on img2dataset. Its own behaviour applies to what it fetches: no robots.txt,
no private-address refusal, no per-host cap. Rows that curate decides before any request (bad URLs,
takedowns, opt-outs) never reach it. Every manifest row still ends as exactly one shard row.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate import storage
from curate.dataset import Dataset, stats_path
from curate.download.config import DownloadConfig
from curate.download.optout import load_optout
from curate.download.shard import MANIFEST_CORE, base_row, precheck, shard_schema
from curate.download.stage import finish_run, part_key, resolve_manifest
from curate.download.writer import ShardWriter
from curate.executor import RunSummary
from curate.extras import require

log = logging.getLogger(__name__)

# img2dataset error messages -> our error classes; first match wins.
_ERROR_PATTERNS = [
    (
        r"name or service not known|nodename nor servname|getaddrinfo|temporary failure in name resolution",
        "dns",
    ),
    (r"timed out|timeout", "timeout"),
    (r"connection refused|connection reset|no route to host|network is unreachable", "connect"),
    (r"http error 429|too many requests", "http_429"),
    (r"http error 4\d\d", "http_4xx"),
    (r"http error 5\d\d", "http_5xx"),
    (r"redirect", "too_many_redirects"),
    (r"x-robots-tag|disallowed by", "x_robots_tag"),
    (r"image too small", "image_too_small"),
    (r"aspect ratio", "aspect_ratio"),
    (r"image area too large|decompression bomb", "decompression_bomb"),
    (r"unknown url type|invalid url|no host", "invalid_url"),
    (r"cannot identify image|unidentified", "not_an_image"),
    (r"decod|truncated|corrupt", "decode_error"),
]


def classify_error(message: str | None) -> str:
    text = (message or "").lower()
    for pattern, cls in _ERROR_PATTERNS:
        if re.search(pattern, text):
            return cls
    return "unknown"


def convert_rows(table: pa.Table, image_col: str = "jpg") -> Iterator[dict]:
    """img2dataset parquet rows (with a saved `uid` column) -> shard rows of curate's schema."""
    names = set(table.column_names)
    for row in table.to_pylist():
        out = base_row({"uid": row["uid"], "url": row.get("url"), "caption": row.get("caption")})
        ok = row.get("status") == "success"
        out.update(
            status="success" if ok else "failed",
            error_class=None if ok else classify_error(row.get("error_message")),
            error_message=None if ok else (row.get("error_message") or "")[:500],
            image=row.get(image_col) if ok else None,
            width=row.get("width"),
            height=row.get("height"),
            original_width=row.get("original_width"),
            original_height=row.get("original_height"),
            image_format=image_col if ok and image_col in names else None,
            sha256=row.get("sha256"),
        )
        yield out


def download_with_img2dataset(
    manifest: str, dataset: str, config: DownloadConfig | None = None, *, workers: int | None = None
) -> RunSummary:
    """Download each manifest part with img2dataset into DATASET/shards/NNNNN.parquet (resumable by part)."""
    i2d = require("img2dataset", "img2dataset")
    config = config or DownloadConfig()
    log.warning(
        "engine img2dataset: robots.txt, the private-address refusal and the per-host cap are not applied"
    )
    ds = Dataset(dataset)
    summary = RunSummary()
    start = time.perf_counter()
    with ds.lock("download"):
        parts = resolve_manifest(manifest, ds)
        takedown = ds.takedown_path if storage.exists(ds.takedown_path) else None
        optout = load_optout(takedown, tuple(config.opt_out))
        summary.total = len(parts)
        for index, part in enumerate(parts):
            key = part_key(part, index)
            marker = stats_path(ds.shards_dir, key)
            if storage.exists(marker):
                summary.skipped += 1
                continue
            stats = _download_part(
                i2d, part, storage.join(ds.shards_dir, f"{key}.parquet"), config, optout, workers
            )
            storage.write_json_atomic({"key": key, **stats}, marker)
            summary.done += 1
    summary.seconds = time.perf_counter() - start
    return finish_run(ds, summary, None, engine="img2dataset")


def _download_part(i2d, part: str, shard_path: str, cfg: DownloadConfig, optout, workers: int | None) -> dict:
    start = time.perf_counter()
    table = storage.read_parquet(part)
    schema = shard_schema(table.schema)
    extra = [n for n in schema.names if n not in MANIFEST_CORE and n in table.column_names]
    by_uid = {r["uid"]: r for r in table.to_pylist()}
    writer = ShardWriter(shard_path, schema, cfg.row_group_rows)

    def add(rows: Iterable[dict]) -> None:
        for row in rows:
            source = by_uid.get(row["uid"], {})
            for name in extra:
                row[name] = source.get(name)
            writer.add(row)

    tmp = Path(tempfile.mkdtemp(prefix="curate-i2d-"))
    try:
        todo = []
        for row in by_uid.values():
            early = precheck(row, optout)
            if early is None:
                todo.append(row)
            else:
                add([early])
        if todo:
            src = tmp / "input.parquet"
            pq.write_table(pa.table({k: [r[k] for r in todo] for k in ("uid", "url", "caption")}), src)
            i2d.download(
                url_list=str(src),
                output_folder=str(tmp / "out"),
                input_format="parquet",
                url_col="url",
                caption_col="caption",
                save_additional_columns=["uid"],
                output_format="parquet",
                image_size=cfg.image_size,
                resize_mode=cfg.resize_mode,
                resize_only_if_bigger=cfg.resize_only_if_bigger,
                encode_format=cfg.encode_format,
                encode_quality=cfg.encode_quality,
                min_image_size=cfg.min_image_size,
                max_aspect_ratio=cfg.max_aspect_ratio or float("inf"),
                processes_count=workers or 1,
                thread_count=cfg.threads,
                number_sample_per_shard=len(todo) + 1,
                timeout=int(cfg.total_timeout),
                retries=cfg.request_retries,
                user_agent_token=cfg.user_agent_token,
                disallowed_header_directives=list(cfg.x_robots_tag_block),
                enable_wandb=False,
                distributor="multiprocessing",
            )
            seen = set()
            for path in sorted((tmp / "out").glob("*.parquet")):
                converted = list(convert_rows(pq.read_table(path), cfg.encode_format))
                seen.update(r["uid"] for r in converted)
                add(converted)
            missing = [r for r in todo if r["uid"] not in seen]
            for row in missing:  # img2dataset dropped it: record that instead of losing the row
                out = base_row(row)
                out.update(error_class="unknown", error_message="img2dataset wrote no row for this URL")
                add([out])
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "rows": writer.rows,
        "status": dict(writer.status),
        "error_class": dict(writer.error_class),
        "seconds": round(time.perf_counter() - start, 3),
        "engine": "img2dataset",
    }

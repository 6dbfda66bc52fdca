"""Pools for the concept tests: download shards whose captions name known entries, and language signals.

Balancing reads only uid, caption and status, so the shards carry a few real bytes instead of
images; everything else is the real shard schema, annotated by the real `curate annotate`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from curate.schema import SHARD_SCHEMA, make_uid


def write_pool(
    root: str, rows: list[tuple[str, str, bool]], per_shard: int = 5000, languages: list[str] | None = None
) -> list[str]:
    """Shards of (url, caption, downloaded) rows, plus signals/language when `languages` is given."""
    os.makedirs(f"{root}/shards", exist_ok=True)
    uids = [make_uid(url, caption) for url, caption, _ in rows]
    for start in range(0, len(rows), per_shard):
        chunk = rows[start : start + per_shard]
        ok = [downloaded for _, _, downloaded in chunk]
        table = pa.table(
            {
                "uid": uids[start : start + per_shard],
                "url": [url for url, _, _ in chunk],
                "caption": [caption for _, caption, _ in chunk],
                "status": ["success" if o else "failed" for o in ok],
                "error_class": [None if o else "http_4xx" for o in ok],
                "image": [b"\xff\xd8 not decoded by balancing" if o else None for o in ok],
                "width": [256 if o else None for o in ok],
                "height": [256 if o else None for o in ok],
                "fetched_at": [datetime(2026, 11, 23, tzinfo=UTC)] * len(chunk),
            }
        )
        full = pa.table(
            {
                f.name: table.column(f.name) if f.name in table.column_names else pa.nulls(len(chunk), f.type)
                for f in SHARD_SCHEMA
            },
            schema=SHARD_SCHEMA,
        )
        key = f"{start // per_shard:05d}"
        pq.write_table(full, f"{root}/shards/{key}.parquet")
        if languages is not None:
            os.makedirs(f"{root}/signals/language", exist_ok=True)
            pq.write_table(
                pa.table(
                    {
                        "uid": uids[start : start + per_shard],
                        "language": languages[start : start + per_shard],
                        "language_score": pa.array([0.9] * len(chunk), pa.float32()),
                        "language_backend": ["fasttext"] * len(chunk),
                    }
                ),
                f"{root}/signals/language/{key}.parquet",
            )
    return uids

"""Real download shards (curate.schema.SHARD_SCHEMA) for the annotate tests.

Images are real encoded photos from curate.synthweb.make_photo (JPEG, PNG with alpha, WebP), plus a
blank placeholder, bytes that are not an image, and failed/skipped rows without an image, as a
download run records them.
"""

from __future__ import annotations

import hashlib
import io
import os
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from curate.dataset import stats_path
from curate.schema import SHARD_SCHEMA, make_uid
from curate.synthweb.photos import CLASSES, make_photo

CAPTIONS = [
    "a red circle lying on the grass in the afternoon",
    "Ein blauer Würfel auf einem Holztisch im Garten",
    "un triangle vert sur le sable de la plage",
    "IMG_1234.jpg",
    "http://example.com/images/photo.jpg",
    "<b>yellow star</b> &amp; friends",
    "untitled",
    "nude beach photo shoot",
    "公园里的一只粉红色的心形气球",
    None,
]


def encode(img: Image.Image, fmt: str, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, quality=quality) if fmt in ("JPEG", "WEBP") else img.save(buf, fmt)
    return buf.getvalue()


def sample_images(count: int, seed: int = 0) -> list[tuple[bytes | None, str | None, str]]:
    """(bytes, format, status) per row: photos in three formats, a blank, garbage, failures."""
    rows: list[tuple[bytes | None, str | None, str]] = []
    for i in range(count):
        kind = i % 10
        if kind == 6:
            rows.append((None, None, "failed"))
        elif kind == 9:
            rows.append((None, None, "skipped"))
        elif kind == 4:
            rows.append((encode(Image.new("RGB", (200, 120), (238, 238, 238)), "JPEG"), "jpeg", "success"))
        elif kind == 7:
            rows.append((b"\xff\xd8\xff\xe0 this is not really a jpeg", "jpeg", "success"))
        else:
            photo = make_photo(CLASSES[i % len(CLASSES)], seed * 1000 + i, (256, 192) if kind == 2 else 256)
            if kind == 3:
                rows.append((encode(photo.convert("RGBA"), "PNG"), "png", "success"))
            elif kind == 5:
                rows.append((encode(photo, "WEBP"), "webp", "success"))
            else:
                rows.append((encode(photo, "JPEG"), "jpeg", "success"))
    return rows


def shard_table(count: int, seed: int = 0) -> pa.Table:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for i, (data, fmt, status) in enumerate(sample_images(count, seed)):
        url = f"https://img.example.org/{seed}/{i}.jpg"
        caption = CAPTIONS[i % len(CAPTIONS)]
        row = {
            "uid": make_uid(url, caption),
            "url": url,
            "caption": caption,
            "status": status,
            "fetched_at": now,
        }
        if data is not None:
            size = (200, 120) if i % 10 == 4 else (256, 192) if i % 10 == 2 else (256, 256)
            original = (768, 256) if i % 10 == 8 else (size[0] * 2, size[1] * 2)  # 8: padded to a square
            row.update(
                image=data,
                width=size[0],
                height=size[1],
                original_width=original[0],
                original_height=original[1],
                image_format=fmt,
                sha256=hashlib.sha256(data).hexdigest(),
                bytes=len(data),
                http_status=200,
            )
        else:
            row.update(error_class="timeout" if status == "failed" else "opted_out")
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=SHARD_SCHEMA)


def make_dataset(root: str, shards: int = 2, rows: int = 20) -> list[pa.Table]:
    """DATASET/shards/NNNNN.parquet (+ stats markers) as `curate download` leaves them."""
    os.makedirs(os.path.join(root, "shards"), exist_ok=True)
    tables = []
    for s in range(shards):
        table = shard_table(rows, seed=s)
        pq.write_table(table, os.path.join(root, "shards", f"{s:05d}.parquet"))
        marker = stats_path(os.path.join(root, "shards"), f"{s:05d}")
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        with open(marker, "w") as fh:
            fh.write(f'{{"key": "{s:05d}", "rows": {rows}}}')
        tables.append(table)
    return tables

"""Real small datasets for the dedup / overlap / filter / export / takedown tests.

Images are real encoded JPEG/PNG photos made with numpy (smooth colour fields, shapes and sensor noise),
hashes and thumbnails come from the annotate stage's own functions, and every file is written in the
documented schemas:
shards (curate.schema.SHARD_SCHEMA) and the signals of `curate annotate`.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageEnhance

from curate.annotate.image_signals import HASHES_SCHEMA
from curate.annotate.phash import hash_images
from curate.schema import SHARD_SCHEMA, make_uid


def make_photo(seed: int, size: tuple[int, int] = (256, 256)) -> Image.Image:
    """A photo-like RGB image: low-frequency colour field, a few solid shapes, Gaussian noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    field_ = Image.fromarray((rng.random((6, 6, 3)) * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
    draw = ImageDraw.Draw(field_)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        sw, sh = int(rng.integers(w // 8, w // 2)), int(rng.integers(h // 8, h // 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x0, y0, x0 + sw, y0 + sh], fill=colour)
    arr = np.asarray(field_).astype(np.float32) + rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def encode(img: Image.Image, fmt: str = "JPEG", quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, quality=quality) if fmt == "JPEG" else img.save(buf, fmt)
    return buf.getvalue()


def transformed_copy(img: Image.Image, rng: np.random.Generator) -> bytes:
    """A re-published copy: resized 0.5x-2x, cropped <= 3% per side, brightness +-10%, caption overlay,
    re-encoded as JPEG at quality 30-95."""
    w, h = img.size
    c = rng.uniform(0, 0.03, 4)
    img = img.crop((int(c[0] * w), int(c[1] * h), w - int(c[2] * w), h - int(c[3] * h)))
    s = rng.uniform(0.5, 2.0)
    img = img.resize((max(16, int(img.width * s)), max(16, int(img.height * s))), Image.BILINEAR)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.9, 1.1))
    ImageDraw.Draw(img).text((4, 4), "(c) example.org", fill=(255, 255, 255))
    return encode(img, "JPEG", int(rng.integers(30, 96)))


@dataclass
class Sample:
    url: str
    caption: str
    image: bytes | None = None  # None: a failed download
    language: str | None = "en"
    language_score: float = 0.95
    nsfw_image: float | None = 0.01
    nsfw_text: float = 0.0
    error_class: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def uid(self) -> str:
        return make_uid(self.url, self.caption)


def write_dataset(root: str, samples: list[Sample], per_shard: int = 1000) -> list[str]:
    """Write shards and all five annotate signals for `samples`; returns the uids in order."""
    for s0 in range(0, len(samples), per_shard):
        key = f"{s0 // per_shard:05d}"
        chunk = samples[s0 : s0 + per_shard]
        _write_shard(root, key, chunk)
        _write_signals(root, key, chunk)
    return [s.uid for s in samples]


def _write_shard(root: str, key: str, samples: list[Sample]) -> None:
    rows = []
    for s in samples:
        ok = s.image is not None
        img = Image.open(io.BytesIO(s.image)) if ok else None
        rows.append(
            {
                "uid": s.uid,
                "url": s.url,
                "caption": s.caption,
                "status": "success" if ok else "failed",
                "error_class": None if ok else (s.error_class or "http_4xx"),
                "http_status": 200 if ok else 404,
                "image": s.image,
                "width": img.width if ok else None,
                "height": img.height if ok else None,
                "original_width": img.width if ok else None,
                "original_height": img.height if ok else None,
                "image_format": img.format.lower() if ok else None,
                "original_format": img.format.lower() if ok else None,
                "sha256": hashlib.sha256(s.image).hexdigest() if ok else None,
                "bytes": len(s.image) if ok else None,
                "fetched_at": datetime(2026, 11, 23, tzinfo=UTC),
            }
        )
    table = pa.Table.from_pylist(rows, schema=SHARD_SCHEMA)
    os.makedirs(f"{root}/shards", exist_ok=True)
    pq.write_table(table, f"{root}/shards/{key}.parquet")


def _write_signals(root: str, key: str, samples: list[Sample]) -> None:
    image, hashes, language, nsfw, caption = [], [], [], [], []
    for s in samples:
        ok = s.image is not None
        img = Image.open(io.BytesIO(s.image)) if ok else None
        arr = np.asarray(img.convert("L")) if ok else None
        image.append(
            {
                "uid": s.uid,
                "width": img.width if ok else None,
                "height": img.height if ok else None,
                "aspect": max(img.size) / min(img.size) if ok else None,
                "bytes": len(s.image) if ok else None,
                "format": img.format.lower() if ok else None,
                "original_width": img.width if ok else None,
                "original_height": img.height if ok else None,
                "is_blank": bool(arr.std() < 2.0) if ok else None,
            }
        )
        phash, thumb, _ = hash_images([s.image]) if ok else (None, None, None)
        hashes.append(
            {
                "uid": s.uid,
                "sha256": hashlib.sha256(s.image).hexdigest() if ok else None,
                "phash": int(phash[0]) if ok else None,
                "thumb": thumb[0].tobytes() if ok else None,
            }
        )
        language.append(
            {
                "uid": s.uid,
                "language": s.language,
                "language_score": s.language_score,
                "language_backend": "fasttext",
            }
        )
        nsfw.append(
            {
                "uid": s.uid,
                "nsfw_image": s.nsfw_image if ok else None,
                "nsfw_text": s.nsfw_text,
                "nsfw_text_terms": [],
            }
        )
        text = s.caption or ""
        lowered = text.strip().lower()
        caption.append(
            {
                "uid": s.uid,
                "caption_chars": len(text),
                "caption_words": len(text.split()),
                "caption_is_filename": lowered.endswith((".jpg", ".png", ".jpeg")),
                "caption_is_url": lowered.startswith(("http://", "https://")),
                "caption_has_html": "<" in text and ">" in text,
                "caption_is_boilerplate": lowered in {"image", "photo", "untitled", "picture"},
            }
        )
    schemas = {
        "image": pa.schema(
            [
                ("uid", pa.string()),
                ("width", pa.int32()),
                ("height", pa.int32()),
                ("aspect", pa.float32()),
                ("bytes", pa.int64()),
                ("format", pa.string()),
                ("original_width", pa.int32()),
                ("original_height", pa.int32()),
                ("is_blank", pa.bool_()),
            ]
        ),
        "hashes": HASHES_SCHEMA,
        "language": pa.schema(
            [
                ("uid", pa.string()),
                ("language", pa.string()),
                ("language_score", pa.float32()),
                ("language_backend", pa.string()),
            ]
        ),
        "nsfw": pa.schema(
            [
                ("uid", pa.string()),
                ("nsfw_image", pa.float32()),
                ("nsfw_text", pa.float32()),
                ("nsfw_text_terms", pa.list_(pa.string())),
            ]
        ),
        "caption": pa.schema(
            [
                ("uid", pa.string()),
                ("caption_chars", pa.int32()),
                ("caption_words", pa.int32()),
                ("caption_is_filename", pa.bool_()),
                ("caption_is_url", pa.bool_()),
                ("caption_has_html", pa.bool_()),
                ("caption_is_boilerplate", pa.bool_()),
            ]
        ),
    }
    for name, rows in (
        ("image", image),
        ("hashes", hashes),
        ("language", language),
        ("nsfw", nsfw),
        ("caption", caption),
    ):
        os.makedirs(f"{root}/signals/{name}", exist_ok=True)
        pq.write_table(
            pa.Table.from_pylist(rows, schema=schemas[name]), f"{root}/signals/{name}/{key}.parquet"
        )

"""Labelled evaluation sets: held-out synthetic photos, optionally with planted copies of training images.

Zero-shot evaluation needs images the model never saw; contamination tests need the opposite: eval
images that are transformed copies of training images, with the answer key kept outside the folder.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from curate.synthweb.captions import caption_for
from curate.synthweb.content import CopyTransform, derive_seed, transform_image
from curate.synthweb.photos import BACKGROUNDS, CLASSES, make_photo

if TYPE_CHECKING:
    from curate.synthweb.web import SyntheticWeb, SynthImage


def label_dir(label: str) -> str:
    """Folder name of a class ("red circle" -> "red_circle"); replace "_" with " " to get the label back."""
    return label.replace(" ", "_")


@dataclass(frozen=True)
class BenchmarkFile:
    key: str  # "<class_dir>/<name>.jpg": the file's path under the folder, or the Parquet row's key
    label: str
    caption: str  # English description for retrieval evaluation; planted copies keep the training caption
    planted_from: str | None = None  # URL of the training image this is a transformed copy of
    path: Path | None = None  # the image file (None when written as Parquet)


@dataclass
class BenchmarkSet:
    root: Path
    files: list[BenchmarkFile] = field(default_factory=list)
    parquet: Path | None = None  # set when written as one Parquet file (columns key, image, label, caption)

    @property
    def planted_keys(self) -> dict[str, str]:
        """Key of each planted copy -> URL of the training image it was made from."""
        return {f.key: f.planted_from for f in self.files if f.planted_from}

    @property
    def planted(self) -> dict[Path, str]:
        """Path of each planted copy -> URL of the training image it was made from (folder sets only)."""
        if self.parquet is not None:
            raise ValueError("this benchmark was written as Parquet: use planted_keys (the 'key' column)")
        return {f.path: f.planted_from for f in self.files if f.planted_from}


def _eval_transform(rng: np.random.Generator, size: tuple[int, int]) -> tuple[CopyTransform, tuple[int, int]]:
    """A copy as a benchmark would hold it: cropped up to 5% a side, resized to eval size, re-lit."""
    crop = tuple(float(rng.uniform(0, 0.05)) for _ in range(4))
    w, h = size
    cw, ch = w - round(crop[0] * w) - round(crop[2] * w), h - round(crop[1] * h) - round(crop[3] * h)
    side = int(rng.integers(160, 320))
    scale = side / max(cw, ch)
    out = (max(16, round(cw * scale)), max(16, round(ch * scale)))
    return CopyTransform(crop=crop, scale=scale, brightness=float(rng.uniform(0.9, 1.1))), out


def write_benchmark(
    directory: str | Path,
    n: int = 100,
    seed: int = 0,
    include_copies_from: Iterable[SynthImage] = (),
    web: SyntheticWeb | None = None,
    quality: int = 90,
    fmt: str = "folder",
) -> BenchmarkSet:
    """Write `n` held-out images (balanced over CLASSES) plus one planted, transformed copy of each image
    in `include_copies_from` (which needs the `web` that serves them).

    fmt "folder": DIR/<class_dir>/<name>.jpg (an image-folder benchmark); "parquet": DIR/benchmark.parquet
    with columns key, image (JPEG bytes), label, caption. Held-out seeds come from a stream the web never
    uses, so they never coincide with training images. Names do not reveal which images are planted; the
    returned set does.
    """
    if fmt not in ("folder", "parquet"):
        raise ValueError(f"unknown benchmark format {fmt!r}: use 'folder' or 'parquet'")
    root = Path(directory)
    copies = list(include_copies_from)
    if copies and web is None:
        raise ValueError("planting copies of training images needs the web that serves them: pass web=...")
    rng = np.random.default_rng(derive_seed(seed, 5))
    items: list[tuple[BenchmarkFile, Image.Image]] = []
    for i in range(n):
        label = CLASSES[i % len(CLASSES)]
        background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
        side = int(rng.integers(160, 400))
        size = (side, int(side * rng.choice([1.0, 0.75, 1.25])))
        img = make_photo(label, derive_seed(seed, 6, i), size, background)
        caption = caption_for(label, background, "en", rng)
        items.append((BenchmarkFile(_key(label, f"heldout-{seed}-{i}"), label, caption), img))
    for k, train in enumerate(copies):
        original = Image.open(io.BytesIO(web.image_bytes(train))).convert("RGB")
        transform, size = _eval_transform(rng, original.size)
        img = transform_image(original, transform, size)
        items.append(
            (
                BenchmarkFile(
                    _key(train.label, f"copy-{seed}-{k}"), train.label, train.caption, planted_from=train.url
                ),
                img,
            )
        )
    items.sort(key=lambda item: item[0].key)  # planted copies mixed in among held-out images
    out = BenchmarkSet(root=root)
    root.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        out.parquet = root / "benchmark.parquet"
        blobs = [_jpeg(img, quality) for _, img in items]
        table = pa.table(
            {
                "key": [f.key for f, _ in items],
                "image": pa.array(blobs, pa.binary()),
                "label": [f.label for f, _ in items],
                "caption": [f.caption for f, _ in items],
            }
        )
        pq.write_table(table, out.parquet)
        out.files = [f for f, _ in items]
        return out
    for f, img in items:
        path = root / f.key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_jpeg(img, quality))
        out.files.append(replace(f, path=path))
    return out


def _key(label: str, name: str) -> str:
    return f"{label_dir(label)}/{hashlib.sha1(name.encode()).hexdigest()[:12]}.jpg"


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()

"""Labelled evaluation sets: held-out synthetic photos, optionally with planted copies of training images.

Zero-shot evaluation needs images the model never saw; contamination tests need the opposite: eval
images that are transformed copies of training images, with the answer key kept outside the folder.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from curate.synthweb.content import CopyTransform, _seed, transform_image
from curate.synthweb.photos import BACKGROUNDS, CLASSES, make_photo

if TYPE_CHECKING:
    from curate.synthweb.web import SyntheticWeb, SynthImage


def label_dir(label: str) -> str:
    """Folder name of a class ("red circle" -> "red_circle"); replace "_" with " " to get the label back."""
    return label.replace(" ", "_")


@dataclass(frozen=True)
class BenchmarkFile:
    path: Path
    label: str
    planted_from: str | None = None  # URL of the training image this file is a transformed copy of


@dataclass
class BenchmarkSet:
    root: Path
    files: list[BenchmarkFile] = field(default_factory=list)

    @property
    def planted(self) -> dict[Path, str]:
        """Planted copy -> URL of the training image it was made from."""
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


def write_benchmark(directory: str | Path, n: int = 100, seed: int = 0,
                    include_copies_from: Iterable[SynthImage] = (), web: SyntheticWeb | None = None,
                    quality: int = 90) -> BenchmarkSet:
    """Write `n` held-out images (balanced over CLASSES) as DIR/<class_dir>/<name>.jpg, plus one planted,
    transformed copy of each image in `include_copies_from` (which needs the `web` that serves them).

    Held-out seeds come from a stream the web never uses, so they never coincide with training images.
    File names do not reveal which files are planted; the returned set does.
    """
    root = Path(directory)
    copies = list(include_copies_from)
    if copies and web is None:
        raise ValueError("planting copies of training images needs the web that serves them: pass web=...")
    rng = np.random.default_rng(_seed(seed, 5))
    out = BenchmarkSet(root=root)
    for i in range(n):
        label = CLASSES[i % len(CLASSES)]
        side = int(rng.integers(160, 400))
        size = (side, int(side * rng.choice([1.0, 0.75, 1.25])))
        img = make_photo(label, _seed(seed, 6, i), size, BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))])
        out.files.append(BenchmarkFile(_save(root, label, img, quality, f"heldout-{seed}-{i}"), label))
    for k, train in enumerate(copies):
        original = Image.open(io.BytesIO(web.image_bytes(train))).convert("RGB")
        transform, size = _eval_transform(rng, original.size)
        img = transform_image(original, transform, size)
        out.files.append(BenchmarkFile(_save(root, train.label, img, quality, f"copy-{seed}-{k}"), train.label,
                                       planted_from=train.url))
    return out


def _save(root: Path, label: str, img: Image.Image, quality: int, key: str) -> Path:
    folder = root / label_dir(label)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha1(key.encode()).hexdigest()[:12]}.jpg"
    img.save(path, "JPEG", quality=quality)
    return path

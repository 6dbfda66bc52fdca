"""Measure how well the perceptual hash separates near-copies from distinct images.

A near-copy is what the web does to a photo: cropped a little, resized, brightened or darkened,
stamped with a small caption or watermark, re-encoded at another JPEG quality. `near_copy` applies all
of these at once with random strengths in the issue's ranges; `separation` turns the Hamming
distances of (original, copy) pairs and of all other pairs into recall and precision per radius k.
Used by tests/test_annotate_phash.py (small) and benchmarks/near_dup_quality.py (5,000 images).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

MAX_CROP = 0.05  # per side
SCALE_RANGE = (0.5, 2.0)
QUALITY_RANGE = (30, 95)
BRIGHTNESS = 0.10


def near_copy(
    img: Image.Image,
    rng: np.random.Generator,
    *,
    crop: float = MAX_CROP,
    scale: tuple[float, float] = SCALE_RANGE,
    quality: tuple[int, int] = QUALITY_RANGE,
    brightness: float = BRIGHTNESS,
    overlay: bool = True,
) -> bytes:
    """JPEG bytes of a transformed copy of `img` (each transform's strength drawn from its range)."""
    w, h = img.size
    left, top, right, bottom = rng.uniform(0, crop, 4)
    out = img.crop((round(left * w), round(top * h), w - round(right * w), h - round(bottom * h)))
    factor = float(np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]))))
    out = out.resize(
        (max(8, round(out.width * factor)), max(8, round(out.height * factor))), Image.Resampling.BICUBIC
    )
    out = ImageEnhance.Brightness(out).enhance(float(rng.uniform(1 - brightness, 1 + brightness)))
    if overlay:
        out = _stamp(out, rng)
    buf = io.BytesIO()
    out.convert("RGB").save(buf, "JPEG", quality=int(rng.integers(quality[0], quality[1] + 1)))
    return buf.getvalue()


def _stamp(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A small caption (text about 5% of the image height) in a random corner, white or black."""
    img = img.convert("RGB")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=max(8, img.height // 20))
    text = f"(c) photo {int(rng.integers(1000, 9999))}"
    box = draw.textbbox((0, 0), text, font=font)
    tw, th = box[2] - box[0], box[3] - box[1]
    x = int(rng.choice([4, max(4, img.width - tw - 4)]))
    y = int(rng.choice([4, max(4, img.height - th - 8)]))
    draw.text((x, y), text, fill=(255, 255, 255) if rng.random() < 0.5 else (0, 0, 0), font=font)
    return img


@dataclass
class Separation:
    """Hamming-distance histograms (index = distance 0..64) of true copy pairs and of all other pairs."""

    copies: np.ndarray
    distinct: np.ndarray

    def recall(self, k: int) -> float:
        return float(self.copies[: k + 1].sum() / max(1, self.copies.sum()))

    def false_pairs(self, k: int) -> int:
        return int(self.distinct[: k + 1].sum())

    def precision(self, k: int) -> float:
        true = self.copies[: k + 1].sum()
        return float(true / max(1, true + self.false_pairs(k)))


def separation(originals: np.ndarray, copies: np.ndarray, chunk: int = 512) -> Separation:
    """Histograms over all pairs of the 2N hashes: (original i, copy i) are true pairs, the rest distinct."""
    n = len(originals)
    hashes = np.concatenate([originals, copies]).astype(np.int64).view(np.uint64)
    all_hist = np.zeros(65, np.int64)
    for start in range(0, len(hashes), chunk):
        rows = hashes[start : start + chunk]
        dist = np.bitwise_count(rows[:, None] ^ hashes[None, :])
        upper = np.arange(len(hashes))[None, :] > np.arange(start, start + len(rows))[:, None]  # pairs i < j
        all_hist += np.bincount(dist[upper], minlength=65)
    true_hist = np.bincount(np.bitwise_count(hashes[:n] ^ hashes[n:]), minlength=65)
    return Separation(true_hist, all_hist - true_hist)

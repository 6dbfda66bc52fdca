"""What the synthetic web holds: image specs (originals and near-duplicate copies) and page layout.

Specs are cheap (no pixels); pixels and encoded bytes are produced on demand from a spec, always the
same for the same seed. Copies are re-renders of their original followed by the transforms that
near-duplicates on the web go through (re-encoding, resizing, slight cropping, brightness, a caption
overlay), so `group` is ground truth for deduplication tests.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

from curate.synthweb.captions import caption_for, choose_language, junk_caption
from curate.synthweb.noise import DESCRIBES, noisy_caption
from curate.synthweb.photos import BACKGROUNDS, CLASSES, encode, make_photo

MAX_SIDE = 1600
MIN_SIDE = 64
BURST_SIZE = 6  # an original and its five republished copies


@dataclass(frozen=True)
class CopyTransform:
    """How a near-duplicate was derived from its original (fractions are of the original's size)."""

    crop: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # left, top, right, bottom
    scale: float = 1.0
    brightness: float = 1.0
    overlay: str | None = None

    def describe(self, fmt: str, quality: int) -> str:
        parts = [f"reencode={fmt}@{quality}"]
        if self.scale != 1.0:
            parts.append(f"resize={self.scale:.2f}")
        if any(self.crop):
            parts.append("crop=" + ",".join(f"{c:.3f}" for c in self.crop))
        if self.brightness != 1.0:
            parts.append(f"brightness={self.brightness:.2f}")
        if self.overlay:
            parts.append(f"overlay={self.overlay!r}")
        return " ".join(parts)


@dataclass(frozen=True)
class ImageSpec:
    """Everything needed to produce one served image's bytes, and its ground truth."""

    index: int
    path: str  # URL path (and query), percent-encoded, starting with "/"
    label: str
    background: str
    seed: int
    fmt: str
    quality: int
    width: int
    height: int
    caption: str
    lang: str | None  # None for junk captions ("IMG_1234.jpg") that are in no language
    group: int
    source: int | None = None  # index of the original for a near-duplicate copy
    transform: CopyTransform | None = None
    source_size: tuple[int, int] | None = None  # the original's (width, height) for a copy
    caption_kind: str = "describes"  # or "junk", or a curate.synthweb.noise.NOISE_KINDS kind
    burst: bool = False  # a copy in a near-duplicate burst (one image republished many times in a row)


def derive_seed(*key: int) -> int:
    """A 64-bit seed for one purpose of one web: (web seed, stream, index) keys never collide in practice."""
    return int.from_bytes(hashlib.blake2b(repr(key).encode(), digest_size=8).digest(), "little")


def render(spec: ImageSpec, source: ImageSpec | None = None) -> Image.Image:
    """The decoded pixels of a spec (a copy needs its original's spec as `source`)."""
    if spec.transform is None:
        return make_photo(spec.label, spec.seed, (spec.width, spec.height), spec.background)
    if source is None:
        raise ValueError(f"image {spec.index} is a copy of image {spec.source}; pass that spec as source")
    return transform_image(
        make_photo(source.label, source.seed, (source.width, source.height), source.background),
        spec.transform,
        (spec.width, spec.height),
    )


def transform_image(img: Image.Image, t: CopyTransform, size: tuple[int, int]) -> Image.Image:
    """Apply a near-duplicate transform: crop, resize to `size`, brightness, overlay text."""
    w, h = img.size
    left, top, right, bottom = t.crop
    box = (round(left * w), round(top * h), w - round(right * w), h - round(bottom * h))
    out = img.crop(box).resize(size, Image.LANCZOS)
    if t.brightness != 1.0:
        out = ImageEnhance.Brightness(out).enhance(t.brightness)
    if t.overlay:
        draw = ImageDraw.Draw(out)
        draw.text((max(2, size[0] // 40), size[1] - max(14, size[1] // 12)), t.overlay, fill=(255, 255, 255))
    return out


def encode_spec(spec: ImageSpec, source: ImageSpec | None = None) -> bytes:
    """The file bytes a web server holds for a spec."""
    return encode(render(spec, source), spec.fmt, spec.quality)


_ASPECTS = (1.0, 4 / 3, 3 / 2, 16 / 9, 5 / 4)


def _pick_size(rng: np.random.Generator) -> tuple[int, int]:
    """Sizes as on the web: long side around 500 px, thumbnails and large photos, a few panoramas."""
    r = rng.random()
    if r < 0.06:
        long = int(rng.integers(MIN_SIDE, 129))
    else:
        long = min(max(round(500 * math.exp(rng.normal(0, 0.5))), MIN_SIDE), MAX_SIDE)
    aspect = 3.5 if r > 0.97 else _ASPECTS[int(rng.integers(len(_ASPECTS)))]
    short = max(MIN_SIDE, round(long / aspect))
    return (long, short) if rng.random() < 0.7 else (short, long)


def _pick_format(rng: np.random.Generator, size: tuple[int, int]) -> tuple[str, int]:
    r = rng.random()
    fmt = "png" if r < 0.10 and max(size) <= 1000 else "webp" if r < 0.25 else "jpeg"
    return fmt, int(rng.integers(70, 96))


_EXT = {"jpeg": ("jpg", "jpg", "jpeg", "JPG"), "png": ("png",), "webp": ("webp",)}


def _pick_path(rng: np.random.Generator, index: int, fmt: str) -> str:
    """Varied but realistic URL paths: plain, CMS upload folders, CDN hashes, queries, non-ASCII names."""
    ext = _EXT[fmt][int(rng.integers(len(_EXT[fmt])))]
    token = hashlib.sha1(f"{index}-{rng.integers(1 << 30)}".encode()).hexdigest()
    style = rng.random()
    if style < 0.4:
        return f"/img/{index:06d}.{ext}"
    if style < 0.6:
        return f"/wp-content/uploads/{2015 + index % 10}/{index % 12 + 1:02d}/photo-{token[:8]}.{ext}"
    if style < 0.8:
        return f"/cdn/{token[:2]}/{token[2:12]}.{ext}"
    if style < 0.95:
        return f"/media/get?id={index}&size=large&v={token[:6]}"
    return f"/bilder/gr%C3%B6%C3%9Fe%20{index}.{ext}"  # "größe N.ext", percent-encoded


def _copy_transform(
    rng: np.random.Generator, src_size: tuple[int, int]
) -> tuple[CopyTransform, tuple[int, int]]:
    crop = tuple(float(rng.uniform(0, 0.05)) if rng.random() < 0.5 else 0.0 for _ in range(4))
    sw, sh = src_size
    cw = sw - round(crop[0] * sw) - round(crop[2] * sw)
    ch = sh - round(crop[1] * sh) - round(crop[3] * sh)
    scale = float(rng.uniform(0.5, 2.0)) if rng.random() < 0.6 else 1.0
    scale = min(scale, MAX_SIDE / max(cw, ch))
    scale = max(scale, 48 / min(cw, ch))
    brightness = float(rng.uniform(0.9, 1.1)) if rng.random() < 0.4 else 1.0
    overlay = f"(c) photo {int(rng.integers(100, 999))}" if rng.random() < 0.2 else None
    size = (max(1, round(cw * scale)), max(1, round(ch * scale)))
    return CopyTransform(crop=crop, scale=scale, brightness=brightness, overlay=overlay), size


def _bursts(n_images: int, share: float) -> dict[int, int]:
    """Copy slot -> its original's slot.

    Evenly spread runs of BURST_SIZE slots, an original then its copies.
    """
    n_bursts = round(n_images * share) // (BURST_SIZE - 1)
    if n_bursts == 0:
        return {}
    starts = np.linspace(1, max(1, n_images - BURST_SIZE), n_bursts).astype(int)
    return {i: int(start) for start in starts for i in range(start + 1, min(n_images, start + BURST_SIZE))}


def _burst_transform(
    rng: np.random.Generator, src_size: tuple[int, int]
) -> tuple[CopyTransform, tuple[int, int]]:
    """A republished copy cropped harder than ordinary copies (5-15% a side): pHash often misses it."""
    t, _ = _copy_transform(rng, src_size)
    crop = tuple(float(rng.uniform(0.05, 0.15)) for _ in range(4))
    sw, sh = src_size
    cw, ch = sw - round(crop[0] * sw) - round(crop[2] * sw), sh - round(crop[1] * sh) - round(crop[3] * sh)
    scale = max(min(t.scale, MAX_SIDE / max(cw, ch)), 48 / min(cw, ch))
    size = (max(1, round(cw * scale)), max(1, round(ch * scale)))
    return CopyTransform(crop=crop, scale=scale, brightness=t.brightness, overlay=t.overlay), size


def build_specs(
    n_images: int,
    seed: int,
    near_duplicates: float,
    images_per_page: int,
    junk_captions: float,
    caption_noise: float = 0.0,
    bursts: float = 0.0,
) -> tuple[list[ImageSpec], list[str]]:
    """The image specs of a web and the language of each page (images are laid out page by page).

    caption_noise: the share of alt texts that do not describe their image (curate.synthweb.noise);
    bursts: the share of images that are copies in near-duplicate bursts. Both draw from their own random
    stream, so a web without them is the same web as before they existed.
    """
    if n_images < 1:
        raise ValueError(f"n_images must be at least 1 (got {n_images})")
    if not 0 <= near_duplicates < 1:
        raise ValueError(f"near_duplicates is a fraction in [0, 1) (got {near_duplicates})")
    if not 0 <= caption_noise <= 1 or not 0 <= bursts < 1:
        raise ValueError(f"caption_noise and bursts are fractions (got {caption_noise}, {bursts})")
    noise_rng = np.random.default_rng(derive_seed(seed, 4))
    burst_of = _bursts(n_images, bursts)
    rng = np.random.default_rng(derive_seed(seed, 0))
    n_pages = math.ceil(n_images / images_per_page)
    page_langs = [choose_language(rng) for _ in range(n_pages)]
    n_copies = round(n_images * near_duplicates)
    copy_slots = set(
        rng.choice(np.arange(1, n_images), size=min(n_copies, n_images - 1), replace=False).tolist()
    )
    if burst_of:  # burst originals stay originals; their runs are copies
        copy_slots = (copy_slots - set(burst_of.values())) | set(burst_of)
    specs: list[ImageSpec] = []
    originals: list[int] = []
    for i in range(n_images):
        lang = page_langs[i // images_per_page]
        if i in copy_slots:
            src = specs[burst_of[i]] if i in burst_of else specs[originals[int(rng.integers(len(originals)))]]
            label, background, group = src.label, src.background, src.group
            transform, size = (
                _burst_transform(noise_rng, (src.width, src.height))
                if i in burst_of
                else _copy_transform(rng, (src.width, src.height))
            )
            fmt, quality = (
                ("jpeg", int(rng.integers(30, 96))) if rng.random() < 0.8 else _pick_format(rng, size)
            )
            img_seed = src.seed
        else:
            label = CLASSES[int(rng.integers(len(CLASSES)))]
            background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
            group, transform, src = len(originals), None, None
            size = _pick_size(rng)
            fmt, quality = _pick_format(rng, size)
            img_seed = derive_seed(seed, 1, i)
            originals.append(i)
        junk = rng.random() < junk_captions
        caption = junk_caption(rng) if junk else caption_for(label, background, lang, rng)
        kind = "junk" if junk else DESCRIBES
        if caption_noise and noise_rng.random() < caption_noise:
            caption, kind = noisy_caption(label, lang, noise_rng)
            junk = kind != "other_object"  # the rest are in no language
        specs.append(
            ImageSpec(
                index=i,
                path=_pick_path(rng, i, fmt),
                label=label,
                background=background,
                seed=img_seed,
                fmt=fmt,
                quality=quality,
                width=size[0],
                height=size[1],
                caption=caption,
                lang=None if junk else lang,
                group=group,
                source=None if src is None else src.index,
                transform=transform,
                source_size=None if src is None else (src.width, src.height),
                caption_kind=kind,
                burst=i in burst_of,
            )
        )
    return specs, page_langs

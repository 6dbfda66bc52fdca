"""Photo-like synthetic images: a textured scene with a shaded, labelled object on it.

Each class is a colour and a shape ("red circle"), so a tiny CLIP can learn them from captions and be
evaluated zero-shot on held-out images. Scenes are built from multi-octave smooth noise, gradients and
grain, so they compress like photos (not like flat graphics) and perceptual hashes of distinct images
are far apart. Everything is numpy + Pillow and deterministic by seed.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# label -> (RGB colour of the object, shape name)
_CLASS_SPECS: dict[str, tuple[tuple[int, int, int], str]] = {
    "red circle": ((208, 36, 36), "circle"),
    "blue square": ((36, 78, 212), "square"),
    "green triangle": ((42, 172, 62), "triangle"),
    "yellow star": ((242, 212, 40), "star"),
    "purple hexagon": ((132, 52, 172), "hexagon"),
    "orange diamond": ((246, 132, 22), "diamond"),
    "white cross": ((242, 242, 236), "cross"),
    "pink heart": ((242, 122, 172), "heart"),
    "black ring": ((26, 26, 30), "ring"),
    "turquoise crescent": ((42, 200, 190), "crescent"),
}
CLASSES: tuple[str, ...] = tuple(_CLASS_SPECS)

# background name -> (top colour, bottom colour, texture kind)
_BACKGROUNDS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int], str]] = {
    "grass": ((96, 124, 66), (58, 92, 40), "streaks_v"),
    "sand": ((214, 194, 152), (186, 160, 118), "ripples"),
    "sky": ((112, 156, 212), (204, 218, 236), "clouds"),
    "wood": ((150, 104, 66), (118, 80, 48), "grain"),
    "brick": ((152, 74, 58), (132, 62, 50), "bricks"),
    "snow": ((232, 236, 242), (206, 214, 226), "clouds"),
    "concrete": ((146, 146, 140), (120, 120, 116), "speckle"),
    "water": ((44, 92, 122), (72, 132, 152), "streaks_h"),
}
BACKGROUNDS: tuple[str, ...] = tuple(_BACKGROUNDS)


def _resize_f(arr: np.ndarray, w: int, h: int) -> np.ndarray:
    """Bicubic upsampling of a small float field (PIL's 'F' mode is fast and smooth)."""
    return np.asarray(Image.fromarray(arr.astype(np.float32), mode="F").resize((w, h), Image.BICUBIC))


def _fractal(
    rng: np.random.Generator, w: int, h: int, grids=(3, 6, 12, 24, 48), stretch=(1.0, 1.0)
) -> np.ndarray:
    """Smooth multi-octave noise in about [-1, 1]; `stretch` elongates it along x or y (streaks)."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    scale = max(w, h)
    for g in grids:
        gx = max(2, round(g * w / scale * stretch[0]))
        gy = max(2, round(g * h / scale * stretch[1]))
        out += amp * _resize_f(rng.standard_normal((gy, gx)), w, h)
        total += amp
        amp *= 0.6
    return out / total


def _background(rng: np.random.Generator, name: str, w: int, h: int) -> np.ndarray:
    top, bottom, kind = _BACKGROUNDS[name]
    top = np.array(top, np.float32) + rng.normal(0, 10, 3)
    bottom = np.array(bottom, np.float32) + rng.normal(0, 10, 3)
    # A gradient along a random direction, mostly vertical as in photos of scenes.
    angle = rng.uniform(-0.6, 0.6) + math.pi / 2
    # 1-D coordinates broadcast to 2-D: no full-size coordinate grids are ever allocated.
    xx = np.arange(w, dtype=np.float32)[None, :]
    yy = np.arange(h, dtype=np.float32)[:, None]
    t = (xx / max(w - 1, 1) - 0.5) * math.cos(angle) + (yy / max(h - 1, 1) - 0.5) * math.sin(angle)
    t = np.clip(t + 0.5, 0, 1)
    lum = 38.0 * _fractal(rng, w, h)  # large-scale light and shade, different for every image
    if kind == "streaks_v":
        lum += 22.0 * _fractal(rng, w, h, grids=(24, 64, 160), stretch=(1.0, 0.08))
    elif kind == "streaks_h":
        lum += 20.0 * _fractal(rng, w, h, grids=(24, 64, 160), stretch=(0.08, 1.0))
    elif kind == "ripples":
        phase = 6.0 * _fractal(rng, w, h, grids=(4, 8))
        lum += 10.0 * np.sin(yy * (rng.uniform(0.08, 0.2) * 256 / max(h, 1)) + phase)
    elif kind == "grain":
        warp = 10.0 * _fractal(rng, w, h, grids=(3, 6))
        lum += 16.0 * np.sin(xx * (rng.uniform(0.15, 0.35) * 256 / max(w, 1)) + warp)
    elif kind == "bricks":
        rows = max(4, int(rng.integers(6, 14)))
        bh = h / rows
        bw = bh * 2.2
        shift = (yy // bh) % 2 * (bw / 2)
        mortar = ((yy % bh) < bh * 0.1) | (((xx + shift) % bw) < bh * 0.1)
        lum += 10.0 * _fractal(rng, w, h, grids=(24, 48))
    elif kind == "clouds":
        lum += 30.0 * np.clip(_fractal(rng, w, h, grids=(4, 8, 16, 32)), 0, None)
    elif kind == "speckle":
        lum += 14.0 * _fractal(rng, w, h, grids=(32, 96))
    # top + (bottom - top) * t, plus the luminance field, per channel
    img = t[..., None] * (bottom - top).astype(np.float32) + top.astype(np.float32) + lum[..., None]
    if kind == "bricks":  # grey mortar lines, lit like the rest of the wall
        img = np.where(mortar[..., None], (np.float32(175) + lum)[..., None], img)
    return img


def _polygon(shape: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    """Outline points of a shape centred on (cx, cy) with radius r, rotated by rot radians."""
    if shape == "square":
        pts = [(math.cos(a), math.sin(a)) for a in (math.pi / 4 + k * math.pi / 2 for k in range(4))]
    elif shape == "triangle":
        pts = [(math.cos(a), math.sin(a)) for a in (-math.pi / 2 + k * 2 * math.pi / 3 for k in range(3))]
    elif shape == "hexagon":
        pts = [(math.cos(a), math.sin(a)) for a in (k * math.pi / 3 for k in range(6))]
    elif shape == "star":
        pts = [
            ((1.0 if k % 2 == 0 else 0.42) * math.cos(a), (1.0 if k % 2 == 0 else 0.42) * math.sin(a))
            for k, a in enumerate(-math.pi / 2 + k * math.pi / 5 for k in range(10))
        ]
    elif shape == "diamond":
        pts = [(0.0, -1.0), (0.62, 0.0), (0.0, 1.0), (-0.62, 0.0)]
    elif shape == "cross":
        a, b = 0.3, 0.95
        pts = [
            (-a, -b),
            (a, -b),
            (a, -a),
            (b, -a),
            (b, a),
            (a, a),
            (a, b),
            (-a, b),
            (-a, a),
            (-b, a),
            (-b, -a),
            (-a, -a),
        ]
    elif shape == "heart":
        ts = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        xs = 16 * np.sin(ts) ** 3 / 17
        ys = -(13 * np.cos(ts) - 5 * np.cos(2 * ts) - 2 * np.cos(3 * ts) - np.cos(4 * ts)) / 17
        pts = list(zip(xs.tolist(), ys.tolist(), strict=False))
    else:
        raise ValueError(f"no polygon for shape {shape!r}")
    c, s = math.cos(rot), math.sin(rot)
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in pts]


def _mask(shape: str, w: int, h: int, cx: float, cy: float, r: float, rot: float) -> Image.Image:
    """Anti-aliased coverage mask (mode L) of one object."""
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    if shape in ("circle", "ring", "crescent"):
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        if shape == "ring":
            ri = r * 0.58
            draw.ellipse((cx - ri, cy - ri, cx + ri, cy + ri), fill=0)
        elif shape == "crescent":
            ox, oy = cx + 0.45 * r * math.cos(rot), cy + 0.45 * r * math.sin(rot)
            ri = r * 0.85
            draw.ellipse((ox - ri, oy - ri, ox + ri, oy + ri), fill=0)
    else:
        draw.polygon(_polygon(shape, cx, cy, r, rot), fill=255)
    return mask.filter(ImageFilter.GaussianBlur(max(0.6, r / 120)))


def _paint_object(img: np.ndarray, rng: np.random.Generator, colour, shape: str, cx, cy, r, rot) -> None:
    """Composite one shaded object with a soft drop shadow onto img, in place, within its bounding window."""
    h, w = img.shape[:2]
    pad = 1.25 * r
    x0, y0 = max(0, int(cx - pad)), max(0, int(cy - pad))
    x1, y1 = min(w, int(cx + pad) + 1), min(h, int(cy + pad) + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    ww, wh = x1 - x0, y1 - y0
    cx, cy = cx - x0, cy - y0
    win = img[y0:y1, x0:x1]
    mask_img = _mask(shape, ww, wh, cx, cy, r, rot)
    # Drop shadow: the mask shifted towards the bottom right, blurred, darkening the scene under it.
    shadow_img = Image.new("L", (ww, wh), 0)
    shadow_img.paste(mask_img, (round(0.07 * r), round(0.09 * r)))
    shadow = np.asarray(shadow_img.filter(ImageFilter.GaussianBlur(max(1.0, 0.06 * r))), np.float32) / 255.0
    mask = np.asarray(mask_img, np.float32) / 255.0
    win *= (1 - 0.45 * shadow)[..., None]
    # Shading: light from the upper left, a highlight and a darker rim, plus surface texture.
    lx, ly = cx - 0.35 * r, cy - 0.4 * r
    dx2 = (np.arange(ww, dtype=np.float32)[None, :] - np.float32(lx)) ** 2
    dy2 = (np.arange(wh, dtype=np.float32)[:, None] - np.float32(ly)) ** 2
    d = np.sqrt(dx2 + dy2) / np.float32(1.7 * r)
    light = np.clip(1.25 - 0.65 * d, 0.45, 1.3)
    base = np.clip(np.array(colour, np.float32) + rng.normal(0, 10, 3), 0, 255)
    surface = base * light[..., None] + 10.0 * _fractal(rng, ww, wh, grids=(4, 12))[..., None]
    if base.mean() < 60:  # dark objects show their shape through a specular highlight instead
        surface += 70.0 * np.clip(1.0 - d * 1.6, 0, 1)[..., None]
    win *= (1 - mask)[..., None]
    win += surface * mask[..., None]


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    w, h = (size, size) if isinstance(size, int) else size
    if w < 8 or h < 8:
        raise ValueError(f"image size {w}x{h} is too small (need at least 8x8)")
    return int(w), int(h)


def make_photo(
    label: str, seed: int, size: int | tuple[int, int] = 256, background: str | None = None
) -> Image.Image:
    """A deterministic photo-like RGB image of class `label` (one of CLASSES).

    size is a side or (width, height); background one of BACKGROUNDS (chosen by the seed when None).
    The same (label, seed, size, background) always gives the same pixels.
    """
    if label not in _CLASS_SPECS:
        raise ValueError(f"unknown class {label!r}; choose one of: {', '.join(CLASSES)}")
    w, h = _size(size)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFFFFFFFFFF, CLASSES.index(label)])
    if background is None:
        background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    elif background not in _BACKGROUNDS:
        raise ValueError(f"unknown background {background!r}; choose one of: {', '.join(BACKGROUNDS)}")
    img = _background(rng, background, w, h)
    side = min(w, h)
    # Clutter: a few muted pebbles or blobs that belong to the scene, not to the class.
    for _ in range(int(rng.integers(0, 4))):
        grey = tuple(float(v) for v in rng.uniform(70, 190) + rng.normal(0, 12, 3))
        _paint_object(
            img, rng, grey, "circle", rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.03, 0.08) * side, 0
        )
    colour, shape = _CLASS_SPECS[label]
    r = rng.uniform(0.14, 0.36) * side
    cx, cy = rng.uniform(0.22, 0.78) * w, rng.uniform(0.22, 0.78) * h
    if rng.random() < 0.2:  # a smaller second specimen, in the opposite corner from the main one
        r2 = rng.uniform(0.08, 0.13) * side
        _paint_object(
            img,
            rng,
            colour,
            shape,
            w - cx * rng.uniform(0.6, 0.9),
            h - cy * rng.uniform(0.6, 0.9),
            r2,
            rng.uniform(-0.35, 0.35),
        )
    _paint_object(img, rng, colour, shape, cx, cy, r, rng.uniform(-0.35, 0.35))
    # Sensor grain, so file sizes look like photos' and nothing is perfectly flat.
    img += rng.standard_normal((h, w), dtype=np.float32)[..., None] * 5.0
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


FORMATS = ("jpeg", "png", "webp")
MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


def encode(img: Image.Image, fmt: str, quality: int = 85) -> bytes:
    """Encode to JPEG, PNG or WebP bytes as a typical web server would store them."""
    buf = io.BytesIO()
    if fmt == "jpeg":
        img.save(buf, "JPEG", quality=quality)
    elif fmt == "png":
        img.save(buf, "PNG", compress_level=6)
    elif fmt == "webp":
        img.save(buf, "WEBP", quality=quality, method=3)
    else:
        raise ValueError(f"unknown image format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return buf.getvalue()

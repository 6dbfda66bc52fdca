"""Decode shard image bytes straight to a small thumbnail, as cheaply as the format allows.

Signals that look at an image's overall layout (perceptual hash, blank detection) need a few dozen
pixels per side, not the full image. A JPEG can be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT
scaling: the 1/8 image is exactly the 8x8 block averages), which skips most of the inverse DCT and
colour conversion; what remains is entropy decoding, the floor. JPEGs go through simplejpeg, a thin
binding to libjpeg-turbo (about a quarter faster than PIL's `draft` path, whose header parsing is
Python, and pixel-identical to it); other formats and JPEGs it refuses (CMYK...) go through PIL, decoded
in full and shrunk with `reduce`.
"""

from __future__ import annotations

import warnings

import numpy as np
import simplejpeg
from PIL import Image

from curate.images import open_image

# Everything PIL can raise on bad bytes: truncated files, unknown formats, decompression bombs.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, EOFError)
_JPEG_MAGIC = b"\xff\xd8\xff"
_SJ_COLORSPACE = {"L": "GRAY", "RGB": "RGB"}
# Largest spread of values (0-255) along a line for it to count as letterbox padding; JPEG ringing
# next to the content edge stays well under it, texture does not.
LETTERBOX_TOLERANCE = 12


def open_small(data: bytes, mode: str, side: int) -> Image.Image:
    """The image in `mode` ("L" or "RGB") with both sides >= `side` where the source allows (PIL).

    Raises one of DECODE_ERRORS when the bytes are not a decodable image.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        img = open_image(data)  # web formats only (curate.images)
        if img.format == "JPEG":
            img.draft(mode, (side, side))
        else:
            img.load()
            factor = min(img.size) // side
            if factor >= 2:
                img = img.reduce(factor)
        if img.mode != mode:
            img = img.convert(mode)  # palette, alpha (dropped) and 16-bit images alike
        img.load()
    return img


def small_array(data: bytes, mode: str, side: int) -> np.ndarray:
    """Like `open_small`, as a uint8 array: (H, W) for "L", (H, W, 3) for "RGB"."""
    if data[:3] == _JPEG_MAGIC:
        try:
            arr = simplejpeg.decode_jpeg(
                data, colorspace=_SJ_COLORSPACE[mode], min_height=side, min_width=side
            )
            return arr[..., 0] if mode == "L" else arr
        except ValueError:
            pass  # CMYK, arithmetic coding, or corrupt: PIL decodes what can be decoded, or raises
    return np.asarray(open_small(data, mode, side))


def _band(spread: np.ndarray, limit: int) -> int:
    """Length of the leading run of uniform lines (spread under tolerance), at most `limit`."""
    flat = spread[:limit] <= LETTERBOX_TOLERANCE
    return int(limit if flat.all() else flat.argmin())


def trim_letterbox(arr: np.ndarray) -> np.ndarray:
    """Cut the uniform bands that `--resize-mode border` pads around an image (img2dataset's default).

    Without this, a 256x256 bordered copy of a landscape photo hashes far from the photo itself, and a
    benchmark image never matches its bordered training copy. Only symmetric bands of one colour on both
    sides are cut (a letterbox is centred), so a photo with a flat sky on one side is left alone.
    """
    # A letterbox starts with a flat first row or column: most images are rejected here in two small
    # reductions (the full band search cost a fifth of the pHash stage's time per image).
    if (
        np.ptp(arr[0], axis=0).max() > LETTERBOX_TOLERANCE
        and np.ptp(arr[:, 0], axis=0).max() > LETTERBOX_TOLERANCE
    ):
        return arr
    lines = arr.astype(np.int16)
    if lines.ndim == 2:
        lines = lines[..., None]
    h, w = lines.shape[:2]
    row_spread = (lines.max(axis=1) - lines.min(axis=1)).max(axis=1)  # (H,)
    col_spread = (lines.max(axis=0) - lines.min(axis=0)).max(axis=1)  # (W,)
    top, bottom = _band(row_spread, h // 2), _band(row_spread[::-1], h // 2)
    left, right = _band(col_spread, w // 2), _band(col_spread[::-1], w // 2)

    def centred(a: int, b: int, n: int, first: np.ndarray, last: np.ndarray) -> bool:
        same_colour = np.abs(first.astype(np.int16) - last.astype(np.int16)).max() <= LETTERBOX_TOLERANCE
        return a > 0 and b > 0 and abs(a - b) <= 1 + n // 20 and a + b < n * 0.9 and bool(same_colour)

    if centred(top, bottom, h, arr[0, 0], arr[-1, -1]):
        arr = arr[top : h - bottom]
    elif centred(left, right, w, arr[0, 0], arr[-1, -1]):
        arr = arr[:, left : w - right]
    return arr


def square(data: bytes, mode: str, side: int) -> np.ndarray:
    """(side, side[, 3]) uint8 pixels of the image content squashed to a square (as imagehash does).

    Decoded with both sides >= `side` (a 256 px JPEG decodes straight to its 32x32 block means), a
    letterbox removed (trim_letterbox), then resized with an antialiasing bilinear filter when the size
    is not already the target.
    """
    arr = trim_letterbox(small_array(data, mode, side))
    if arr.shape[:2] != (side, side):
        arr = np.asarray(Image.fromarray(arr).resize((side, side), Image.Resampling.BILINEAR))
    return arr

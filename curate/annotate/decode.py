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

import io
import warnings

import numpy as np
import simplejpeg
from PIL import Image

# Everything PIL can raise on bad bytes: truncated files, unknown formats, decompression bombs.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, EOFError)
_JPEG_MAGIC = b"\xff\xd8\xff"
_SJ_COLORSPACE = {"L": "GRAY", "RGB": "RGB"}


def open_small(data: bytes, mode: str, side: int) -> Image.Image:
    """The image in `mode` ("L" or "RGB") with both sides >= `side` where the source allows (PIL).

    Raises one of DECODE_ERRORS when the bytes are not a decodable image.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        img = Image.open(io.BytesIO(data))
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
            arr = simplejpeg.decode_jpeg(data, colorspace=_SJ_COLORSPACE[mode], min_height=side, min_width=side)
            return arr[..., 0] if mode == "L" else arr
        except ValueError:
            pass  # CMYK, arithmetic coding, or corrupt: PIL decodes what can be decoded, or raises
    return np.asarray(open_small(data, mode, side))


def square(data: bytes, mode: str, side: int) -> np.ndarray:
    """(side, side[, 3]) uint8 pixels of the whole image squashed to a square (as imagehash does).

    Decoded with both sides >= `side` (a 256 px JPEG decodes straight to its 32x32 block means), then
    resized with an antialiasing bilinear filter when the decoded size is not already the target.
    """
    arr = small_array(data, mode, side)
    if arr.shape[:2] != (side, side):
        arr = np.asarray(Image.fromarray(arr).resize((side, side), Image.Resampling.BILINEAR))
    return arr

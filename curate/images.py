"""Open downloaded image bytes with web image formats only: the one rule that download, annotate and
training decode share.

Pillow knows 43 formats. Most of them (EPS, which Pillow hands to Ghostscript where it is installed; PSD,
FITS, SPIDER, DDS, ...) are never shown on a web page, and each is parser code exposed to bytes from the
open web. Only what browsers render is opened: JPEG (MPO too, a JPEG with extra frames), PNG, GIF, WebP,
BMP, ICO and AVIF. TIFF is left out: no browser but Safari displays it.
"""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

WEB_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "ICO", "AVIF")


class UnsupportedFormat(UnidentifiedImageError):
    """Bytes of an image format Pillow knows but curate refuses (not a web format)."""

    def __init__(self, fmt: str) -> None:
        super().__init__(f"{fmt} is not a web image format; curate opens only {', '.join(WEB_FORMATS)}")
        self.format = fmt


def open_image(data: bytes) -> Image.Image:
    """Pillow's lazy image (header read, pixels not decoded) for bytes in one of WEB_FORMATS.

    Raises UnsupportedFormat when the bytes start like another format Pillow knows, and
    UnidentifiedImageError when they are no image at all (an HTML page...).
    """
    try:
        return Image.open(io.BytesIO(data), formats=WEB_FORMATS)
    except UnidentifiedImageError:
        other = other_format(data)
        if other:
            raise UnsupportedFormat(other) from None
        raise


def other_format(data: bytes) -> str | None:
    """The non-web Pillow format whose signature check accepts these bytes, without running its parser."""
    Image.init()
    prefix = data[:16]
    for fmt, (_, accept) in Image.OPEN.items():
        if fmt in WEB_FORMATS or accept is None:
            continue  # formats without a signature (TGA, SPIDER...) cannot be told from junk
        try:
            if accept(prefix):
                return fmt
        except Exception:  # noqa: BLE001, S112 - a signature check that cannot read this prefix says no
            continue
    return None

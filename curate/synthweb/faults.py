"""The synthetic web's deliberate faults: where they live and what a careful client should make of them.

Every fault is one URL path. With faults switched off (`SyntheticWeb.set_faults(False)`) every one of
these paths serves a valid image instead, so a downloader's `--retry-failed` can repair its rows.
"""

from __future__ import annotations

import io
import struct
import zlib
from functools import lru_cache

import numpy as np
from PIL import ExifTags, Image

# fault name -> URL path
FAULT_PATHS: dict[str, str] = {
    "http_404": "/fault/missing.jpg",
    "http_500": "/fault/error.jpg",
    "http_429": "/fault/busy.jpg",  # 429 with Retry-After for the first request(s), then the image
    "http_503": "/fault/unavailable.jpg",  # always 503 with Retry-After
    "slow": "/fault/slow.jpg",  # headers only after `slow_seconds`, then the image
    "stall": "/fault/stall.jpg",  # headers and a quarter of the body, then silence
    # Content-Length larger than the body sent, then the connection closes
    "truncated": "/fault/truncated.jpg",
    "redirect_chain": "/fault/hop/3.jpg",  # 3 redirects (relative and absolute Location) ending at an image
    "redirect_too_many": "/fault/hop/9.jpg",  # 9 redirects: more than a client should follow
    "redirect_loop": "/fault/loop-a.jpg",  # a -> b -> a -> ...
    "redirect_private": "/fault/to-private.jpg",  # 302 to a private/link-local address
    "wrong_content_type": "/fault/mislabelled.jpg",  # a valid JPEG served as text/html
    "html_instead_of_image": "/fault/soft-404.jpg",  # an HTML page ("soft 404") at an image URL
    "corrupt_image": "/fault/corrupt.jpg",  # a JPEG header followed by garbage
    "huge": "/fault/huge.jpg",  # `huge_bytes` with Content-Length, streamed lazily
    "huge_chunked": "/fault/huge-chunked.jpg",  # the same without Content-Length (chunked encoding)
    "decompression_bomb": "/fault/bomb.png",  # a small PNG declaring `bomb_side` x `bomb_side` pixels
    "x_robots_noai": "/fault/noai.jpg",  # a valid image with X-Robots-Tag: noai, noimageai
    "robots_disallowed": "/private/photo-0001.jpg",  # a valid image under a path robots.txt disallows
    "exif_rotated": "/fault/exif-rotated.jpg",  # stored 360x480 with EXIF Orientation 6 and GPS tags
}

# fault name -> the shard `error_class` a careful downloader records (None: it ends as a success).
EXPECTED_ERROR_CLASS: dict[str, str | None] = {
    "http_404": "http_4xx",
    "http_500": "http_5xx",
    "http_429": None,  # honouring Retry-After succeeds; a client that gives up records http_429
    "http_503": "http_5xx",
    "slow": "timeout",  # with a read timeout below slow_seconds; success with a longer one
    "stall": "timeout",
    "truncated": "protocol_error",
    "redirect_chain": None,
    "redirect_too_many": "too_many_redirects",
    "redirect_loop": "too_many_redirects",
    "redirect_private": "private_address",
    "wrong_content_type": None,  # the bytes are a valid JPEG: sniffing the bytes beats trusting the header
    "html_instead_of_image": "not_an_image",
    "corrupt_image": "decode_error",
    "huge": "too_large",
    "huge_chunked": "too_large",
    "decompression_bomb": "decompression_bomb",
    "x_robots_noai": "x_robots_tag",
    "robots_disallowed": "robots_disallowed",
    "exif_rotated": None,  # displays as 480x360 once the orientation is applied; the GPS tags must go
    # SyntheticWeb.unreachable_urls (not faults of the server: nothing answers them)
    "dns": "dns",
    "connect_refused": "connect",
}

ROBOTS_TXT = (
    "# robots.txt of the synthetic web\n"
    "User-agent: *\n"
    "Disallow: /private/\n"
    "\n"
    "User-agent: BlockedBot\n"
    "Disallow: /\n"
)
ROBOTS_TXT_OPEN = "User-agent: *\nDisallow:\n"

SOFT_404_HTML = (
    b'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Page not found</title></head>\n'
    b"<body><h1>Oops!</h1><p>The picture you are looking for has moved. Go back to the "
    b'<a href="/">home page</a>.</p></body></html>\n'
)

PIXEL_GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)

# SOI + a JFIF APP0 segment: what a file sniffer sees as the start of a JPEG.
JPEG_HEADER = bytes.fromhex("ffd8ffe000104a46494600010101004800480000")


def error_page(status: int, reason: str) -> bytes:
    return (
        f"<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>"
        f"<body><h1>{status} {reason}</h1></body></html>\n"
    ).encode()


@lru_cache(maxsize=4)
def corrupt_jpeg(seed: int, size: int = 24_000) -> bytes:
    """A JPEG header followed by seeded garbage: sniffs as JPEG, fails to decode."""
    return JPEG_HEADER + np.random.default_rng([seed, 3]).integers(0, 256, size, dtype=np.uint8).tobytes()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


@lru_cache(maxsize=2)
def bomb_png(side: int) -> bytes:
    """A valid 1-bit greyscale PNG of side x side black pixels: ~110 KB that decodes to side*side pixels.

    Built row by row through a zlib stream, so even the raw scanlines are never in memory at once.
    """
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    parts = []
    rows_per_block = max(1, (1 << 20) // len(row))
    block = row * rows_per_block
    for start in range(0, side, rows_per_block):
        parts.append(comp.compress(block if start + rows_per_block <= side else row * (side - start)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


@lru_cache(maxsize=4)
def exif_rotated_jpeg(label: str, seed: int, size: tuple[int, int], background: str) -> bytes:
    """A camera-style JPEG: pixels stored rotated, EXIF Orientation 6 to display them upright, and GPS
    coordinates (the privacy leak a downloader strips by default)."""
    from curate.synthweb.photos import make_photo

    upright = make_photo(label, seed, size, background)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # "rotate 90 degrees clockwise to display"
    exif[ExifTags.Base.Make] = "SynthCam"
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (52.0, 31.0, 12.0),
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: (13.0, 24.0, 36.0),
    }
    buf = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", quality=85, exif=exif)
    return buf.getvalue()

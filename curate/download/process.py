"""Downloaded bytes -> the stored image: sniff, guard against bombs, decode at reduced size, orient,
resize with img2dataset's modes, re-encode without metadata.

JPEG decoding at reduced size (libjpeg DCT scaling through PIL's draft mode) is what makes this
fast: a 1200 px photo bound for 256 px is decoded at 300-600 px, 4-16x fewer pixels than a full decode.
Pillow releases the GIL while decoding, resizing and encoding, so worker threads run this in parallel;
the pixels they decode at once are bounded by the process's pixel budget (curate.download.budget).
Only web image formats are opened (curate.images).
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from curate.download.budget import pixel_budget
from curate.download.config import DownloadConfig
from curate.images import UnsupportedFormat, open_image

# Our own pixel cap (DownloadConfig.max_pixels) is checked from the header before decoding; Pillow's
# warning for large images would only repeat it.
warnings.simplefilter("ignore", Image.DecompressionBombWarning)

FORMAT_NAMES = {"jpg": "JPEG", "webp": "WEBP", "png": "PNG"}
PIL_TO_FORMAT = {
    "JPEG": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tiff",
    "MPO": "jpg",
    "ICO": "ico",
    "AVIF": "avif",
}


class ImageError(Exception):
    """The bytes are not a usable image; `error_class` is from curate.schema.ERROR_CLASSES."""

    def __init__(self, error_class: str, message: str, original_size: tuple[int, int] | None = None) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.original_size = original_size


@dataclass
class Processed:
    data: bytes
    width: int
    height: int
    original_width: int
    original_height: int
    image_format: str
    original_format: str  # the decoder's name for the downloaded bytes ("jpeg", "png", "gif", "mpo", ...)


def process_image(data: bytes, cfg: DownloadConfig) -> Processed:
    """Decode, check, orient, resize and encode one image according to `cfg`."""
    try:
        img = open_image(data)
    except Image.DecompressionBombError as exc:
        raise ImageError("decompression_bomb", str(exc)) from exc
    except UnsupportedFormat as exc:
        raise ImageError("unsupported_format", str(exc)) from exc
    except UnidentifiedImageError as exc:
        if _has_image_signature(data):
            raise ImageError("decode_error", f"image header is corrupt (starts with {data[:16]!r})") from exc
        raise ImageError(
            "not_an_image", f"not a recognised image format (starts with {data[:16]!r})"
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError("decode_error", f"cannot read image header: {exc}") from exc
    with img:
        w, h = img.size
        if w <= 0 or h <= 0:
            raise ImageError("decode_error", f"invalid image size {w}x{h}")
        if w * h > cfg.max_pixels:
            raise ImageError(
                "decompression_bomb",
                f"{w}x{h} = {w * h:,} pixels exceeds the cap of {cfg.max_pixels:,} (--max-pixels)",
                (w, h),
            )
        scale = _draft(img, cfg) if cfg.reencode else None
        # Every decode of pixels happens inside the reservation, the EXIF read included (a PNG's eXIf chunk
        # may follow its pixels: Pillow decodes the whole image to reach it). Released once the decoded
        # image is closed and the transformed copies are gone with _checked_transform's frame.
        with pixel_budget(cfg.decode_pixel_budget).reserve(img.width * img.height):
            try:
                return _checked_transform(img, data, cfg, (w, h), scale)
            finally:
                img.close()


def _checked_transform(
    img: Image.Image, data: bytes, cfg: DownloadConfig, size: tuple[int, int], scale: float | None
) -> Processed:
    """Orientation, size rules, then the stored bytes: `data` verified as is, or resized and re-encoded."""
    w, h = size
    orientation = _orientation(img)
    ow, oh = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    if cfg.min_image_size and min(ow, oh) < cfg.min_image_size:
        raise ImageError(
            "image_too_small", f"{ow}x{oh} is below --min-image-size {cfg.min_image_size}", (ow, oh)
        )
    if cfg.max_aspect_ratio and max(ow, oh) / min(ow, oh) > cfg.max_aspect_ratio:
        raise ImageError(
            "aspect_ratio",
            f"{ow}x{oh} has aspect ratio {max(ow, oh) / min(ow, oh):.2f} > "
            f"--max-aspect-ratio {cfg.max_aspect_ratio:g}",
            (ow, oh),
        )
    fmt = PIL_TO_FORMAT.get(img.format or "", (img.format or "unknown").lower())
    source = (img.format or "unknown").lower()
    if not cfg.reencode:
        try:
            img.verify()
        except Exception as exc:
            raise ImageError("decode_error", f"corrupt image: {exc}", (ow, oh)) from exc
        return Processed(data, ow, oh, ow, oh, fmt, source)
    try:
        out = _transform(img, cfg, orientation, scale)
    except Image.DecompressionBombError as exc:
        raise ImageError("decompression_bomb", str(exc), (ow, oh)) from exc
    except Exception as exc:
        raise ImageError("decode_error", f"cannot decode image: {exc}", (ow, oh)) from exc
    return Processed(_encode(out, cfg), out.width, out.height, ow, oh, cfg.encode_format, source)


_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def _has_image_signature(data: bytes) -> bool:
    """Magic bytes of an image format: such bytes that fail to parse are a corrupt image, not a web page."""
    if data.startswith(_SIGNATURES):
        return True
    return (data[:4] == b"RIFF" and data[8:12] == b"WEBP") or data[4:12] in (b"ftypavif", b"ftypheic")


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - malformed EXIF must not fail the image
        return 1


def _target_scale(w: int, h: int, cfg: DownloadConfig) -> float | None:
    """Scale factor applied to the decoded image, or None for no resize (img2dataset's semantics)."""
    size = cfg.image_size
    mode = cfg.resize_mode
    if mode == "no":
        return None
    if mode in ("border", "keep_ratio_largest"):
        side = max(w, h)
    else:  # keep_ratio, center_crop: the shorter side becomes image_size
        side = min(w, h)
    if cfg.resize_only_if_bigger and side <= size:
        return None
    return size / side


def _draft(img: Image.Image, cfg: DownloadConfig) -> float | None:
    """The resize scale (_target_scale); a JPEG is set to decode at reduced size, as `img.size` then says."""
    w, h = img.size
    scale = _target_scale(w, h, cfg)
    if scale is not None and scale < 1 and img.format == "JPEG":
        # DCT scaling: decode directly at the smallest 1/2, 1/4 or 1/8 size that is still >= the target.
        img.draft("RGB", (max(1, math.ceil(w * scale)), max(1, math.ceil(h * scale))))
    return scale


def _transform(img: Image.Image, cfg: DownloadConfig, orientation: int, scale: float | None) -> Image.Image:
    keep_alpha = cfg.encode_format != "jpg"
    img.load()
    if orientation != 1:
        img = ImageOps.exif_transpose(img)  # also drops the orientation tag from info["exif"]
    meta = {k: img.info[k] for k in ("exif", "icc_profile") if img.info.get(k)}
    img = _to_rgb(img, keep_alpha)
    if scale is not None:
        tw, th = _scaled_size(img.width, img.height, cfg)
        if (tw, th) != img.size:
            # After DCT scaling the image is at most 2x the target: antialiased bilinear is enough there
            # (PSNR ~45 dB against full decode + Lanczos) and cheaper than bicubic; upscaling uses Lanczos.
            resample = Image.Resampling.BILINEAR if (tw < img.width) else Image.Resampling.LANCZOS
            img = img.resize((tw, th), resample, reducing_gap=None)
        size = cfg.image_size
        if cfg.resize_mode == "center_crop" and (img.width > size or img.height > size):
            left, top = (img.width - size) // 2, (img.height - size) // 2
            img = img.crop((left, top, left + min(size, img.width), top + min(size, img.height)))
        elif cfg.resize_mode == "border" and (img.width < size or img.height < size):
            fill = (255, 255, 255, 255) if img.mode == "RGBA" else (255, 255, 255)
            canvas = Image.new(img.mode, (max(size, img.width), max(size, img.height)), fill)
            canvas.paste(img, ((canvas.width - img.width) // 2, (canvas.height - img.height) // 2))
            img = canvas
    img.info = meta  # only what --keep-exif may keep; comments, XMP and the rest are gone
    return img


def _scaled_size(w: int, h: int, cfg: DownloadConfig) -> tuple[int, int]:
    scale = _target_scale(w, h, cfg)
    if scale is None:
        return w, h
    return max(1, round(w * scale)), max(1, round(h * scale))


def _to_rgb(img: Image.Image, keep_alpha: bool) -> Image.Image:
    """RGB (or RGBA when the output format keeps alpha); transparency flattened onto white for JPEG."""
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        if keep_alpha:
            return rgba
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img if img.mode == "RGB" else img.convert("RGB")


def _encode(img: Image.Image, cfg: DownloadConfig) -> bytes:
    buf = io.BytesIO()
    kwargs: dict = {}
    if cfg.encode_format == "png":
        kwargs["compress_level"] = min(9, max(0, cfg.encode_quality if cfg.encode_quality <= 9 else 6))
    else:
        kwargs["quality"] = cfg.encode_quality
    meta, img.info = img.info, {}  # Pillow copies some metadata from info (PNG ICC, JPEG comments)
    if cfg.keep_exif:
        kwargs.update(meta)
    img.save(buf, FORMAT_NAMES[cfg.encode_format], **kwargs)
    return buf.getvalue()

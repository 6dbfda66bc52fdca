"""Image processing of the downloader: resize modes, EXIF orientation and stripping, bombs; robots rules."""

from __future__ import annotations

import io

import numpy as np
import pytest
from download_server import photo_jpeg, png_bomb
from PIL import Image

from curate.download.config import DownloadConfig
from curate.download.process import ImageError, process_image
from curate.download.robots import parse_robots, x_robots_blocked


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


@pytest.mark.parametrize(
    "mode,src,expected",
    [
        ("border", (800, 400), (256, 256)),
        ("keep_ratio", (800, 400), (512, 256)),
        ("keep_ratio_largest", (800, 400), (256, 128)),
        ("center_crop", (800, 400), (256, 256)),
        ("no", (800, 400), (800, 400)),
        ("keep_ratio", (100, 50), (512, 256)),  # upscaled: img2dataset's default resizes small images too
        ("border", (300, 1200), (256, 256)),
    ],
)
def test_resize_modes_give_img2dataset_output_sizes(mode, src, expected):
    out = process_image(photo_jpeg(1, src), DownloadConfig(resize_mode=mode))
    assert (out.width, out.height) == expected
    assert decode(out.data).size == expected
    assert (out.original_width, out.original_height) == src
    assert out.image_format == "jpg"


def test_border_pads_with_white_and_keeps_content_centred():
    out = decode(process_image(photo_jpeg(2, (800, 400)), DownloadConfig(resize_mode="border")).data)
    arr = np.asarray(out.convert("RGB")).astype(int)
    assert arr[:60].min() >= 245  # top band is padding (white)
    assert arr[-60:].min() >= 245
    assert arr[70:186].std() > 10  # the photo sits in the middle


def test_resize_only_if_bigger_keeps_small_images():
    out = process_image(
        photo_jpeg(3, (100, 50)), DownloadConfig(resize_mode="keep_ratio", resize_only_if_bigger=True)
    )
    assert (out.width, out.height) == (100, 50)


def test_reduced_size_decode_matches_full_decode_quality():
    """Decoding at reduced DCT scale must look like a full decode followed by a good resize."""
    data = photo_jpeg(4, (1200, 900), quality=92)
    fast = np.asarray(decode(process_image(data, DownloadConfig(resize_mode="keep_ratio")).data)).astype(
        float
    )
    full = Image.open(io.BytesIO(data)).convert("RGB").resize((341, 256), Image.Resampling.LANCZOS)
    ref = np.asarray(full).astype(float)
    psnr = 10 * np.log10(255**2 / np.mean((fast - ref) ** 2))
    assert fast.shape == ref.shape
    assert psnr > 30, psnr


@pytest.mark.parametrize("fmt,pil", [("jpg", "JPEG"), ("webp", "WEBP"), ("png", "PNG")])
def test_encode_formats(fmt, pil):
    out = process_image(photo_jpeg(5, (400, 300)), DownloadConfig(encode_format=fmt, encode_quality=80))
    assert decode(out.data).format == pil
    assert out.image_format == fmt


def _exif_jpeg(orientation: int) -> bytes:
    """400x200 JPEG, left half red and right half blue, with an orientation tag and a GPS position."""
    arr = np.zeros((200, 400, 3), "uint8")
    arr[:, :200] = (255, 0, 0)
    arr[:, 200:] = (0, 0, 255)
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "CameraMaker"
    gps = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}
    exif[0x8825] = gps
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def test_exif_orientation_is_applied_and_metadata_stripped_by_default():
    data = _exif_jpeg(orientation=6)  # stored landscape, displayed rotated 90 degrees clockwise
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)  # the source really carries GPS
    out = process_image(data, DownloadConfig(resize_mode="keep_ratio", image_size=100))
    img = decode(out.data)
    assert (out.original_width, out.original_height) == (200, 400)
    assert img.size == (100, 200)
    top, bottom = np.asarray(img)[20, 50], np.asarray(img)[180, 50]
    assert top[0] > 200 and top[2] < 60  # red (the stored left half) is on top after rotation
    assert bottom[2] > 200 and bottom[0] < 60
    assert "exif" not in img.info and not img.getexif()


def test_keep_exif_keeps_gps_but_resets_orientation():
    out = process_image(
        _exif_jpeg(orientation=6), DownloadConfig(resize_mode="keep_ratio", image_size=100, keep_exif=True)
    )
    exif = decode(out.data).getexif()
    assert exif.get_ifd(0x8825)  # GPS kept on request
    assert exif.get(0x0112, 1) == 1  # orientation already applied, so not applied twice by viewers


@pytest.mark.parametrize("size", [(10000, 8000), (30000, 30000)])  # our cap; and beyond Pillow's own limit
def test_decompression_bomb_is_refused_before_decoding(size):
    with pytest.raises(ImageError) as info:
        process_image(png_bomb(*size), DownloadConfig(max_pixels=50_000_000))
    assert info.value.error_class == "decompression_bomb"
    assert "pixels" in str(info.value)


def test_pixel_cap_names_the_size_and_the_option():
    with pytest.raises(ImageError, match="4000x3000 = 12,000,000 pixels exceeds.*--max-pixels"):
        process_image(png_bomb(4000, 3000), DownloadConfig(max_pixels=10_000_000))


@pytest.mark.parametrize(
    "data,cls",
    [
        (b"<html>hello</html>", "not_an_image"),
        (photo_jpeg(6, (300, 300))[:400], "decode_error"),
    ],
)
def test_bad_bytes_are_classified(data, cls):
    with pytest.raises(ImageError) as info:
        process_image(data, DownloadConfig())
    assert info.value.error_class == cls


def test_min_size_and_aspect_ratio_filters():
    with pytest.raises(ImageError) as small:
        process_image(photo_jpeg(7, (100, 80)), DownloadConfig(min_image_size=200))
    assert small.value.error_class == "image_too_small"
    with pytest.raises(ImageError) as wide:
        process_image(photo_jpeg(8, (900, 100)), DownloadConfig(max_aspect_ratio=3))
    assert wide.value.error_class == "aspect_ratio"


def test_no_reencode_keeps_original_bytes():
    data = photo_jpeg(9, (300, 200))
    out = process_image(data, DownloadConfig(reencode=False))
    assert out.data == data and (out.width, out.height) == (300, 200)


def test_transparent_png_is_flattened_on_white_for_jpeg():
    img = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    out = decode(process_image(buf.getvalue(), DownloadConfig(resize_mode="no")).data)
    assert np.asarray(out).min() >= 250


# -- robots.txt (RFC 9309) and X-Robots-Tag -------------------------------------------------------

ROBOTS = """
User-agent: *
Disallow: /private/
Allow: /private/ok$
Disallow: /*.gif$

User-agent: curate
User-agent: otherbot
Disallow: /no-curate
Allow: /no-curate/but-this
"""


def test_robots_uses_the_group_for_our_token_only():
    rules = parse_robots(ROBOTS, "curate")
    assert not rules.allowed("/no-curate/x.jpg")
    assert rules.allowed("/no-curate/but-this/x.jpg")  # longer allow wins
    assert rules.allowed("/private/x.jpg")  # the * group does not apply when our token has a group


def test_robots_star_group_longest_match_and_wildcards():
    rules = parse_robots(ROBOTS, "somebot")
    assert not rules.allowed("/private/x.jpg")
    assert rules.allowed("/private/ok")
    assert not rules.allowed("/private/ok/more")  # $ anchors the allow
    assert not rules.allowed("/a/b.gif")
    assert rules.allowed("/a/b.gif?x=1")
    assert rules.allowed("/public.jpg")


def test_robots_empty_disallow_allows_everything():
    assert parse_robots("User-agent: *\nDisallow:\n", "curate").allowed("/x")


def test_x_robots_tag_directives():
    block = ("noai", "noimageai")
    assert x_robots_blocked(["noai"], "curate", block) == "noai"
    assert x_robots_blocked(["noindex, noimageai"], "curate", block) == "noimageai"
    assert x_robots_blocked(["otherbot: noai"], "curate", block) is None
    assert x_robots_blocked(["curate: noai"], "curate", block) == "noai"
    assert x_robots_blocked(["noindex"], "curate", block) is None
    assert x_robots_blocked(["noindex"], "curate", block + ("noindex",)) == "noindex"


def test_comments_and_icc_are_dropped_and_keep_exif_survives_padding():
    img = Image.open(io.BytesIO(_exif_jpeg(orientation=1)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=img.info["exif"], comment=b"shot at 12 Main St", icc_profile=b"\0" * 128)
    stripped = decode(process_image(buf.getvalue(), DownloadConfig(resize_mode="border")).data)
    assert not {"comment", "icc_profile", "exif"} & set(stripped.info)
    kept = decode(process_image(buf.getvalue(), DownloadConfig(resize_mode="border", keep_exif=True)).data)
    assert kept.size == (256, 256) and kept.getexif().get_ifd(0x8825)  # padding did not lose the EXIF
    assert "comment" not in kept.info


def test_config_from_a_recipe_table_accepts_lists_and_rejects_bad_values():
    from curate.errors import CurateError

    cfg = DownloadConfig(x_robots_tag_block=["noai", "noindex"], allow_networks=["10.0.0.0/8"])
    assert cfg.x_robots_tag_block == ("noai", "noindex") and hash(cfg)  # hashable: cached per worker
    with pytest.raises(CurateError, match="resize mode"):
        DownloadConfig(resize_mode="stretch")
    with pytest.raises(CurateError, match="allow-network"):
        DownloadConfig(allow_networks=("not-a-net",))

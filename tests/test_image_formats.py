"""Only web image formats are opened (curate.images): download records other formats as
`unsupported_format`, and annotate's and training's decoders refuse them through the same rule."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest
from PIL import Image
from test_decode_budget import FileServer, write_manifest

from curate.annotate.decode import DECODE_ERRORS, open_small
from curate.download import DownloadConfig, download
from curate.images import WEB_FORMATS, UnsupportedFormat, open_image

# A minimal Encapsulated PostScript file: Pillow parses its header and would hand the body to Ghostscript.
EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 48\n%%EndComments\n"
    b"newpath 0 0 moveto 64 48 lineto stroke\nshowpage\n%%EOF\n"
)


def encoded(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 60)).save(buf, fmt)
    return buf.getvalue()


def test_download_records_non_web_formats_as_unsupported(tmp_path):
    files = {
        "/a.eps": (EPS, "application/postscript"),
        "/a.pcx": (encoded("PCX"), "image/x-pcx"),
        "/a.tif": (encoded("TIFF"), "image/tiff"),
        "/a.ppm": (encoded("PPM"), "image/x-portable-pixmap"),
        "/a.png": (encoded("PNG"), "image/png"),
        "/a.gif": (encoded("GIF"), "image/gif"),
        "/a.html": (b"<html><body>not an image</body></html>", "text/html"),
    }
    with FileServer(files) as server:
        manifest = write_manifest(tmp_path / "m", [server.url(p) for p in files])
        download(
            manifest,
            str(tmp_path / "ds"),
            DownloadConfig(allow_networks=("127.0.0.1/32",), threads=4),
            workers=1,
        )
    table = pq.read_table(
        tmp_path / "ds" / "shards" / "00000.parquet",
        columns=["url", "status", "error_class", "error_message"],
    )
    rows = {r["url"].rpartition("/")[2]: r for r in table.to_pylist()}
    for name, fmt in (("a.eps", "EPS"), ("a.pcx", "PCX"), ("a.tif", "TIFF"), ("a.ppm", "PPM")):
        assert rows[name]["status"] == "failed" and rows[name]["error_class"] == "unsupported_format", rows[
            name
        ]
        assert rows[name]["error_message"].startswith(f"{fmt} is not a web image format")
    assert rows["a.png"]["status"] == rows["a.gif"]["status"] == "success"
    assert rows["a.html"]["error_class"] == "not_an_image"


@pytest.mark.parametrize("fmt", WEB_FORMATS)
def test_every_web_format_opens(fmt):
    assert open_image(encoded(fmt, (32, 32))).format == fmt


def test_annotate_and_training_decoders_refuse_other_formats():
    from curate.train.data import eval_image

    pcx = encoded("PCX", (300, 300))
    with pytest.raises(UnsupportedFormat) as info:
        open_small(pcx, "RGB", 64)
    assert isinstance(info.value, DECODE_ERRORS)  # counted as a decode error by every signal, never a crash
    with pytest.raises(UnsupportedFormat):
        eval_image(pcx, 32)
    with pytest.raises(UnsupportedFormat, match="EPS"):
        open_image(EPS)
    assert eval_image(encoded("PNG", (300, 300)), 32).shape == (32, 32, 3)

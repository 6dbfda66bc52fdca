"""`curate download --engine img2dataset`: a clear error without the extra; converted shards with it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from download_server import FaultServer
from test_download import write_manifest

from curate.download.config import DownloadConfig
from curate.download.img2dataset_engine import classify_error

HAVE_I2D = importlib.util.find_spec("img2dataset") is not None


@pytest.mark.skipif(
    HAVE_I2D, reason="img2dataset is installed here, so the missing-extra message cannot show"
)
def test_missing_extra_names_the_pip_command(tmp_path):
    manifest = write_manifest(tmp_path / "m", ["http://example.org/a.jpg"])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "curate",
            "download",
            str(manifest),
            "-o",
            str(tmp_path / "ds"),
            "--engine",
            "img2dataset",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "pip install 'curate[img2dataset]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_img2dataset_error_messages_map_to_our_classes():
    assert classify_error("<urlopen error [Errno -2] Name or service not known>") == "dns"
    assert classify_error("HTTP Error 404: Not Found") == "http_4xx"
    assert classify_error("HTTP Error 503: Service Unavailable") == "http_5xx"
    assert classify_error("The read operation timed out") == "timeout"
    assert classify_error("image too small") == "image_too_small"
    assert classify_error("cannot identify image file <_io.BytesIO object>") == "not_an_image"
    assert classify_error("something new") == "unknown"


@pytest.mark.skipif(not HAVE_I2D, reason="img2dataset is not installed (pip install 'curate[img2dataset]')")
def test_img2dataset_engine_writes_our_schema_with_every_row(tmp_path):
    from curate.download.img2dataset_engine import download_with_img2dataset

    with FaultServer() as server:
        urls = [server.url(f"/img/{i}.jpg") for i in range(5)] + [server.url("/status/404"), "ftp://x/y.jpg"]
        manifest = write_manifest(tmp_path / "m", urls, extra={"similarity": list(range(7))})
        download_with_img2dataset(str(manifest), str(tmp_path / "ds"), DownloadConfig(threads=4), workers=1)
    rows = {r["url"]: r for r in pq.read_table(tmp_path / "ds" / "shards" / "00000.parquet").to_pylist()}
    assert len(rows) == len(urls)
    assert all(rows[u]["status"] == "success" and rows[u]["width"] == 256 for u in urls[:5])
    assert rows[urls[5]]["error_class"] == "http_4xx"
    assert rows[urls[6]]["error_class"] == "invalid_url"
    assert [rows[u]["similarity"] for u in urls] == list(range(7))

"""curate download against the synthetic web (curate.synthweb): its whole fault catalogue, end to end."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
from PIL import Image

from curate.download import DownloadConfig, download
from curate.synthweb import EXPECTED_ERROR_CLASS, SyntheticWeb

# 127.0.0.1 is allowed explicitly, so the fault that redirects to 169.254.169.254 must still be refused.
# Timeouts are generous (the server renders images on demand on a shared 2-core machine) yet below the
# web's slow_seconds, so the slow and stalled faults still time out.
CFG = {
    "allow_networks": ("127.0.0.1/32",),
    "connect_timeout": 2.0,
    "read_timeout": 3.0,
    "total_timeout": 8.0,
    "backoff_base": 0.05,
    "max_backoff": 5.0,
    "threads": 16,
    "max_connections_per_host": 4,
}


def read_rows(dataset) -> list[dict]:
    rows = []
    for path in sorted((dataset / "shards").glob("[0-9]*.parquet")):
        rows += pq.read_table(path).to_pylist()
    return rows


def test_synthetic_web_faults_end_as_documented_and_retry_repairs_them(tmp_path):
    with SyntheticWeb(n_images=60, seed=0, faults=True, huge_bytes=3 << 20, slow_seconds=6.0) as web:
        url_list = web.write_url_list(tmp_path / "urls.parquet")
        ds = tmp_path / "ds"
        cfg = DownloadConfig(max_bytes=2 << 20, **CFG)
        summary = download(str(url_list), str(ds), cfg, workers=1)
        rows = {r["url"]: r for r in read_rows(ds)}
        assert len(rows) == len(web.manifest_rows())  # row count in == row count out
        for name, url in web.fault_urls.items():
            row = rows[url]
            want = EXPECTED_ERROR_CLASS[name]
            assert row["error_class"] == want, (name, row["error_message"])
            assert row["status"] == ("success" if want is None else "failed"), name
        failed = {
            img.url: rows[img.url]["error_message"]
            for img in web.images
            if rows[img.url]["status"] != "success"
        }
        assert not failed
        assert summary.stats["dataset"]["rows"] == len(rows)
        # the sideways camera photo is stored upright, without its GPS tags
        rotated = rows[web.fault_urls["exif_rotated"]]
        out = Image.open(io.BytesIO(rotated["image"]))
        assert (rotated["original_width"], rotated["original_height"]) == (480, 360)
        assert not out.getexif()

        web.set_faults(False)
        retry = ["timeout", "http_5xx", "protocol_error", "robots_disallowed", "not_an_image", "decode_error"]
        download(str(url_list), str(ds), cfg, workers=1, retry_failed=True, error_classes=retry)
        after = {r["url"]: r for r in read_rows(ds)}
        assert len(after) == len(rows)
        for name, url in web.fault_urls.items():
            if EXPECTED_ERROR_CLASS[name] in retry:
                assert after[url]["status"] == "success", (name, after[url]["error_message"])
            else:
                assert after[url]["error_class"] == rows[url]["error_class"], name  # not retried, unchanged


def test_per_host_cap_counted_by_the_synthetic_web(tmp_path):
    with SyntheticWeb(n_images=40, seed=1, faults=False) as web:
        url_list = web.write_url_list(tmp_path / "urls.txt")
        cfg = DownloadConfig(**{**CFG, "max_connections_per_host": 2})
        download(str(url_list), str(tmp_path / "ds"), cfg, workers=1)
        assert all(r["status"] == "success" for r in read_rows(tmp_path / "ds"))
        assert max(web.max_concurrent.values()) == 2  # 16 threads, yet never more than 2 connections

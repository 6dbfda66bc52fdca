"""Kept manifest columns in downloaded shards: a name that clashes with a stage column, in any case, is
renamed by the same rule the manifest uses (curate.schema.kept_column_name)."""

from __future__ import annotations

import duckdb
from download_server import FaultServer
from test_download import FAST, write_manifest

from curate.download import DownloadConfig, download


def test_a_hand_made_manifest_with_laion_WIDTH_keeps_it_apart_from_the_stored_width(tmp_path):
    with FaultServer() as server:
        urls = [server.url(f"/img/{i}.jpg") for i in range(4)]
        manifest = write_manifest(tmp_path / "m", urls, extra={"WIDTH": [1000 + i for i in range(4)]})
        cfg = DownloadConfig(allow_networks=("127.0.0.1/32",), image_size=64, **FAST)
        download(str(manifest), str(tmp_path / "ds"), cfg, workers=1)
    rows = duckdb.sql(
        f"SELECT url, width, manifest_WIDTH FROM read_parquet('{tmp_path}/ds/shards/0*.parquet') ORDER BY url"
    ).fetchall()
    assert [r[2] for r in rows] == [1000 + urls.index(r[0]) for r in rows]
    assert all(r[1] == 64 for r in rows)  # the stored (resized) width, not LAION's

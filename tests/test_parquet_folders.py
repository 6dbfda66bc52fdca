"""Every Parquet folder curate writes reads as one table in pandas, pyarrow.dataset, polars, DuckDB and HF
datasets with no help: the JSON that describes a folder lives in its hidden `.curate/` subfolder. A dataset
written by an older curate, with that JSON beside the Parquet files, is moved into place by the next stage
and resumes without redoing a finished shard.

The dataset is made by the real stages: `curate download` from a loopback HTTP server, `curate annotate`,
`curate filter`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from download_server import FaultServer
from test_download import FAST

from curate.annotate.stage import annotate
from curate.dataset import SIDECAR_DIR, Dataset, sidecar, stats_files, stats_path
from curate.download import DownloadConfig, download
from curate.filter import filter_dataset
from curate.manifest import build_manifest

polars = pytest.importorskip("polars")

SIGNALS = ["caption", "image"]
RECIPE = {"name": "small", "filter": {"min_side": 300, "min_caption_words": 2}}
FOLDERS = ("manifest", "shards", "signals/caption", "signals/image", "decisions")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A dataset made by manifest, download (10 photos, 2 failures), annotate and filter."""
    base = tmp_path_factory.mktemp("folders")
    with FaultServer() as server:
        urls = [server.url(f"/img/{i}.jpg") for i in range(10)] + [
            server.url(p) for p in ("/status/404", "/html")
        ]
        url_list = base / "urls.txt"
        url_list.write_text("".join(f"{u}\n" for u in urls))
        root = base / "ds"
        build_manifest([str(url_list)], str(root / "manifest"), rows_per_part=6)
        config = DownloadConfig(allow_networks=("127.0.0.1/32",), **FAST)
        download(str(root), str(root), config, workers=1)
        annotate(str(root), signals=SIGNALS, workers=1)
        filter_dataset(str(root), RECIPE, threads=1)
        yield {"root": root, "config": config, "server": server}


def _rows(folder: Path) -> int:
    """Rows of the folder's Parquet files, counted file by file from their footers."""
    return sum(pq.read_metadata(p).num_rows for p in folder.glob("*.parquet"))


@pytest.mark.parametrize("name", FOLDERS)
def test_a_parquet_folder_reads_as_one_table_in_pandas_pyarrow_polars_and_duckdb(made, name):
    folder = made["root"] / name
    expected = _rows(folder)
    assert expected > 0
    sidecars = list((folder / SIDECAR_DIR).iterdir())
    assert sidecars and all(p.suffix == ".json" for p in sidecars)  # the folder is described...
    assert sorted({p.suffix for p in folder.iterdir() if p.is_file()}) == [".parquet"]  # ...from outside it
    assert len(pd.read_parquet(folder)) == expected
    assert pads.dataset(folder, format="parquet").count_rows() == expected
    assert polars.read_parquet(f"{folder}/*").height == expected
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{folder}/*')").fetchall() == [(expected,)]


@pytest.mark.parametrize("name", ["shards", "decisions"])
def test_hf_datasets_loads_a_parquet_folder(made, name, tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = made["root"] / name
    loaded = datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "hf"))
    assert loaded.num_rows == _rows(folder) > 0
    assert "uid" in loaded.column_names


def test_the_descriptions_are_where_the_stages_read_them(made):
    root = made["root"]
    markers = stats_files(str(root / "shards"))
    assert [Path(p).name for p in markers] == ["00000.stats.json", "00001.stats.json"]
    assert markers == [stats_path(str(root / "shards"), k) for k in ("00000", "00001")]
    for name in ["summary.json", "source.json"]:
        assert os.path.exists(sidecar(str(root / "shards"), name))
    assert os.path.exists(sidecar(str(root / "decisions"), "small.summary.json"))
    assert len(stats_files(str(root / "signals" / "caption"))) == 2


def _to_old_layout(root: Path) -> list[str]:
    """Move every `.curate/` file beside its Parquet files, as curate wrote them before; their names."""
    moved = []
    for hidden in sorted(root.rglob(SIDECAR_DIR)):
        for path in hidden.iterdir():
            path.rename(hidden.parent / path.name)
            moved.append(str((hidden.parent / path.name).relative_to(root)))
        hidden.rmdir()
    return moved


def test_a_dataset_in_the_old_layout_resumes_without_redoing_work(made, tmp_path, caplog):
    root = tmp_path / "ds"
    shutil.copytree(made["root"], root)
    old = _to_old_layout(root)
    assert "shards/00000.stats.json" in old and "decisions/small.summary.json" in old
    assert stats_files(str(root / "shards")) == [] and "stats files of an older curate" in caplog.text
    shards = {p.name: p.stat().st_mtime_ns for p in (root / "shards").glob("*.parquet")}
    signals = {p.name: p.stat().st_mtime_ns for p in (root / "signals" / "caption").glob("*.parquet")}
    server = made["server"]
    requests = sum(len(v) for k, v in server.log.items() if k.startswith("/img/"))

    summary = download(str(made["root"]), str(root), made["config"], workers=1)  # the manifest it recorded
    assert (summary.done, summary.skipped) == (0, 2)
    assert sum(len(v) for k, v in server.log.items() if k.startswith("/img/")) == requests
    assert {p.name: p.stat().st_mtime_ns for p in (root / "shards").glob("*.parquet")} == shards
    again = annotate(str(root), signals=SIGNALS, workers=1)
    assert (again.done, again.skipped) == (0, 4)
    assert {p.name: p.stat().st_mtime_ns for p in (root / "signals" / "caption").glob("*.parquet")} == signals

    for rel in old:  # every old file moved into its folder's .curate/, none left beside the Parquet files
        folder, _, name = rel.rpartition("/")
        assert not (root / rel).exists() and Path(sidecar(str(root / folder), name)).exists()
    assert _rows(root / "shards") == len(pd.read_parquet(root / "shards"))


def test_a_description_in_both_places_keeps_the_new_one(made, tmp_path, caplog):
    root = tmp_path / "ds"
    shutil.copytree(made["root"], root)
    marker = Path(stats_path(str(root / "shards"), "00000"))
    (root / "shards" / "00000.stats.json").write_text('{"rows": 999}')
    assert Dataset(str(root)).migrate_sidecars() == 0
    assert '"rows": 999' not in marker.read_text()
    assert "both exist" in caplog.text

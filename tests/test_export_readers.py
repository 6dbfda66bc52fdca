"""Exports other tools read without help: Parquet folder discovery, webdataset, open_clip's sizes.json."""

from __future__ import annotations

import ast
import json
import os
import zipfile

import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from curation_data import Sample, encode, make_photo, write_dataset

from curate.export.stage import export
from curate.filter import filter_dataset
from curate.takedown.stage import takedown


@pytest.fixture()
def filtered(tmp_path) -> tuple[str, list[Sample]]:
    samples = [
        Sample(f"https://ok.example/{i}.jpg", f"a photo of a meadow number {i}", encode(make_photo(300 + i)))
        for i in range(7)
    ]
    root = str(tmp_path / "ds")
    write_dataset(root, samples, per_shard=4)
    filter_dataset(root, "datacomp_basic")
    return root, samples


def test_a_parquet_export_folder_is_read_whole_by_folder_discovery(filtered, tmp_path):
    """pandas.read_parquet(FOLDER) is pyarrow's folder discovery: every file in it must be Parquet data."""
    root, samples = filtered
    out = tmp_path / "parquet"
    export(root, "datacomp_basic", out=str(out), samples_per_shard=3)
    table = pq.read_table(out)
    assert sorted(table.column("uid").to_pylist()) == sorted(s.uid for s in samples)
    assert pads.dataset(out, format="parquet").count_rows() == 7
    assert {p.name for p in out.iterdir() if not p.name.endswith(".parquet")} == {
        ".export.json",
        ".curate.json",
    }


def _open_clip_dataset_size():
    """open_clip_train's get_dataset_size (and the expand_urls it calls) from the reference wheel, run with
    the webdataset version open_clip pins; the module itself needs torchvision, so only these are loaded."""
    wds = pytest.importorskip("webdataset")
    braceexpand = pytest.importorskip("braceexpand")
    from conftest import open_clip_wheel_path

    with zipfile.ZipFile(open_clip_wheel_path()) as wheel:
        source = wheel.read("open_clip_train/data.py").decode()
    wanted = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef) and node.name in ("expand_urls", "get_dataset_size")
    ]
    namespace = {"wds": wds, "braceexpand": braceexpand, "os": os, "json": json, "ast": ast}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), "open_clip_train/data.py", "exec"), namespace)
    return namespace["get_dataset_size"]


def test_webdataset_export_has_sizes_that_open_clip_reads_and_tars_webdataset_reads(filtered, tmp_path):
    wds = pytest.importorskip("webdataset")
    get_dataset_size = _open_clip_dataset_size()
    root, samples = filtered
    out = tmp_path / "wds"
    export(root, "datacomp_basic", out=str(out), fmt="webdataset", samples_per_shard=3)
    sizes = json.loads((out / "sizes.json").read_text())
    assert sizes == {"00000.tar": 3, "00001.tar": 3, "00002.tar": 1}
    tars = sorted(str(p) for p in out.glob("*.tar"))
    assert get_dataset_size(f"{out}/0000{{0..2}}.tar") == (7, 3)
    assert get_dataset_size(tars[:2]) == (6, 2)
    read = list(wds.WebDataset(tars, shardshuffle=False))
    assert sorted(s["__key__"] for s in read) == sorted(s.uid for s in samples)
    assert all({"jpg", "txt", "json"} <= set(s) for s in read)

    takedown(root, uids=[samples[0].uid])
    after = json.loads((out / "sizes.json").read_text())
    assert sum(after.values()) == 6 and get_dataset_size(tars)[0] == 6
    assert len(list(wds.WebDataset(tars, shardshuffle=False))) == 6


def test_an_older_export_index_is_read_and_renamed(filtered, tmp_path):
    """Exports written before the index took a leading `_` (export.json) are still found by takedowns."""
    root, samples = filtered
    out = tmp_path / "old"
    export(root, "datacomp_basic", out=str(out))
    (out / ".export.json").rename(out / "export.json")
    takedown(root, uids=[samples[1].uid])
    assert not (out / "export.json").exists()
    assert json.loads((out / ".export.json").read_text())["samples"] == 6
    assert pq.read_table(out).num_rows == 6


def test_hugging_face_datasets_loads_the_parquet_export_with_an_image_feature(filtered, tmp_path):
    """`load_dataset("parquet", ...)` sees `image` as an Image (decoded to PIL), with no cast."""
    datasets = pytest.importorskip("datasets")
    pandas = pytest.importorskip("pandas")
    root, samples = filtered
    out = tmp_path / "hf"
    export(root, "datacomp_basic", out=str(out), samples_per_shard=4)
    loaded = datasets.load_dataset(
        "parquet", data_dir=str(out), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert isinstance(loaded.features["image"], datasets.Image)
    assert loaded.features["width"] == datasets.Value("int32") and loaded.num_rows == 7
    by_uid = {s.uid: s for s in samples}
    for row in loaded:
        assert row["image"].size == (row["width"], row["height"])
        assert row["caption"] == by_uid[row["uid"]].caption
    frame = pandas.read_parquet(out)  # the folder, as pandas users open it
    assert sorted(frame["uid"]) == sorted(by_uid) and frame["image"][0]["bytes"][:2] == b"\xff\xd8"
    takedown(root, uids=[samples[2].uid])  # the rewritten shard keeps the image type and its features
    again = datasets.load_dataset(
        "parquet", data_dir=str(out), split="train", cache_dir=str(tmp_path / "cache2")
    )
    assert isinstance(again.features["image"], datasets.Image) and again.num_rows == 6

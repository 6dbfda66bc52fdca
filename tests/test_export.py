"""curate export: kept samples as Parquet or WebDataset tar shards that webdataset/open_clip read."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import duckdb
import pytest
from curation_data import Sample, encode, make_photo, write_dataset
from PIL import Image

from curate.errors import CurateError
from curate.export.stage import export
from curate.filter import filter_dataset
from curate.storage import read_parquet


@pytest.fixture()
def filtered(tmp_path):
    samples = [
        Sample(
            f"https://ok.example/{i}.jpg",
            f"a photo of a garden number {i}",
            encode(make_photo(i), "PNG" if i % 4 == 0 else "JPEG"),
        )
        for i in range(10)
    ]
    samples.append(
        Sample("https://ok.example/de.jpg", "ein Garten im Sommer", encode(make_photo(50)), language="de")
    )
    samples.append(
        Sample("https://ok.example/tiny.jpg", "a tiny garden photo", encode(make_photo(51, (64, 64))))
    )
    samples.append(Sample("https://ok.example/gone.jpg", "a garden that failed", None))
    root = str(tmp_path / "ds")
    write_dataset(root, samples, per_shard=5)
    filter_dataset(root, "datacomp_basic")
    kept = {s.uid for s in samples[:10]}
    return root, samples, kept


def test_parquet_export_holds_exactly_the_kept_samples_with_their_images(filtered):
    root, samples, kept = filtered
    summary = export(root, "datacomp_basic", samples_per_shard=4)
    out = f"{root}/export/datacomp_basic"
    files = sorted(f for f in os.listdir(out) if f.endswith(".parquet"))
    assert files == ["00000.parquet", "00001.parquet", "00002.parquet"]
    table = duckdb.sql(f"SELECT * FROM '{out}/*.parquet'").to_arrow_table()
    assert set(table.column("uid").to_pylist()) == kept and table.num_rows == len(kept)
    assert {
        "uid",
        "caption",
        "image",
        "width",
        "height",
        "url",
        "language",
        "language_score",
        "nsfw_image",
        "phash",
    } <= set(table.column_names)
    by_uid = {s.uid: s for s in samples}
    for row in table.to_pylist():  # the image is Hugging Face's image struct: bytes, a file name by format
        image = row["image"]["bytes"]
        assert image == by_uid[row["uid"]].image and row["caption"] == by_uid[row["uid"]].caption
        assert Image.open(io.BytesIO(image)).size == (row["width"], row["height"])
        ext = {"png": "png", "jpeg": "jpg"}[row["image_format"].lower()]
        assert row["image"]["path"] == f"{row['uid']}.{ext}"
    index = json.loads(Path(f"{out}/.export.json").read_text())
    assert index["shards"] == {"00000.parquet": 4, "00001.parquet": 4, "00002.parquet": 2}
    assert summary["samples"] == 10 and not any(
        ".tmp-" in f or ".old-" in f for f in os.listdir(f"{root}/export")
    )


def _webdataset_groups(path: str) -> list[tuple[str, dict[str, bytes]]]:
    """Group tar members as webdataset's tar_file_expander + group_by_keys do."""
    groups: list[tuple[str, dict[str, bytes]]] = []
    with tarfile.open(path) as tar:
        for member in tar:
            base = os.path.basename(member.name)
            key, _, ext = base.partition(".")
            if not groups or groups[-1][0] != key:
                groups.append((key, {}))
            assert ext not in groups[-1][1], f"duplicate {ext} in sample {key}"
            groups[-1][1][ext] = tar.extractfile(member).read()
    return groups


def test_webdataset_tars_follow_the_key_grouping_rules(filtered, tmp_path):
    root, samples, kept = filtered
    out = str(tmp_path / "wds")
    export(root, "datacomp_basic", out=out, fmt="webdataset", samples_per_shard=3)
    tars = sorted(f for f in os.listdir(out) if f.endswith(".tar"))
    assert len(tars) == 4
    groups = [g for t in tars for g in _webdataset_groups(os.path.join(out, t))]
    keys = [k for k, _ in groups]
    assert len(keys) == len(set(keys)) == 10 and set(keys) == kept  # each key one consecutive run
    by_uid = {s.uid: s for s in samples}
    for key, files in groups:
        image_ext = (set(files) - {"txt", "json"}).pop()
        fmt = Image.open(io.BytesIO(files[image_ext])).format
        assert image_ext == {"PNG": "png", "JPEG": "jpg"}[fmt]
        assert files[image_ext] == by_uid[key].image
        assert files["txt"].decode() == by_uid[key].caption
        meta = json.loads(files["json"])
        assert meta["uid"] == key and meta["url"] == by_uid[key].url and meta["language"] == "en"
    # exports outside the dataset are registered so that a takedown reaches them
    assert out in json.loads(Path(f"{root}/export/exports.json").read_text())


def test_label_only_exports_every_downloaded_sample_with_its_reasons(filtered):
    root, samples, kept = filtered
    filter_dataset(root, "datacomp_basic", label_only=True)
    export(root, "datacomp_basic")
    table = read_parquet(f"{root}/export/datacomp_basic/00000.parquet")
    reasons = dict(zip(table.column("uid").to_pylist(), table.column("reasons").to_pylist(), strict=False))
    assert len(reasons) == 12  # all downloaded samples; the failed download has no image to export
    assert reasons[samples[10].uid] == ["language"] and reasons[samples[11].uid] == ["image_too_small"]
    assert all(reasons[u] == [] for u in kept)


def test_export_errors_name_the_fix(filtered):
    root, _, _ = filtered
    with pytest.raises(CurateError, match="curate filter"):
        export(root, "strict")
    with pytest.raises(CurateError, match="parquet, webdataset"):
        export(root, "datacomp_basic", fmt="zip")


def test_export_does_not_depend_on_the_download_completion_order(tmp_path):
    """Shards hold rows in completion order, which varies run to run; the export must not."""
    samples = [
        Sample(f"https://ok.example/{i}.jpg", f"a photo of a garden number {i}", encode(make_photo(i)))
        for i in range(8)
    ]
    outputs = []
    for name, order in (("a", samples), ("b", samples[::-1])):
        root = str(tmp_path / name)
        write_dataset(root, order, per_shard=8)
        filter_dataset(root, "datacomp_basic")
        export(root, "datacomp_basic")
        outputs.append(read_parquet(f"{root}/export/datacomp_basic/00000.parquet").column("uid").to_pylist())
    assert outputs[0] == outputs[1] == sorted(outputs[0])

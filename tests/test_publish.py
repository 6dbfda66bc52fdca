"""Where outputs may be published: only new, empty or same-kind curate folders, never the dataset's data."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from curation_data import Sample, encode, make_photo, write_dataset

from curate import publish
from curate.cli import main
from curate.errors import CurateError
from curate.export.stage import export
from curate.filter import filter_dataset
from curate.storage import read_parquet


def _fingerprint(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture()
def filtered(tmp_path) -> str:
    samples = [
        Sample(f"https://ok.example/{i}.jpg", f"a photo of a garden number {i}", encode(make_photo(i)))
        for i in range(6)
    ]
    root = str(tmp_path / "data" / "ds")
    write_dataset(root, samples, per_shard=3)
    filter_dataset(root, "datacomp_basic")
    return root


@pytest.mark.parametrize(
    "target",
    [
        "{ds}",
        "{ds}/",
        "{ds}/..",
        "{ds}/../..",
        "{ds}/shards",
        "{ds}/signals",
        "{ds}/signals/hashes",
        "{ds}/decisions",
        "{ds}/manifest/x",
        "{ds}/export",
        "{ds}/shards/../signals/.",
    ],
)
def test_export_refuses_the_dataset_its_parents_and_its_data_folders(filtered, target):
    """`curate export -o DATASET` renamed the dataset away and deleted it."""
    root = Path(filtered)
    before = _fingerprint(root.parent.parent)
    out = target.format(ds=filtered)
    with pytest.raises(CurateError, match="refusing to write the export") as err:
        export(filtered, "datacomp_basic", out=out)
    assert "choose" in str(err.value) or "name one inside it" in str(err.value)
    assert _fingerprint(root.parent.parent) == before


def test_export_refuses_a_folder_that_is_not_an_earlier_export(filtered, tmp_path, capsys):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"my own picture")
    (mine / "notes.parquet").write_bytes(b"PAR1 my own table")
    before = _fingerprint(mine)
    assert main(["export", filtered, "--recipe", "datacomp_basic", "-o", str(mine)]) == 2
    err = capsys.readouterr().err
    assert "not a curate export" in err and "choose a new or empty folder" in err
    assert _fingerprint(mine) == before
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(CurateError, match="it is a file"):
        export(filtered, "datacomp_basic", out=str(tmp_path / "a-file"))
    # The output of another command is not an export either.
    demo = tmp_path / "demo-out"
    demo.mkdir()
    publish.mark(str(demo), "demo")
    (demo / "recipe.toml").write_text("x")
    with pytest.raises(CurateError, match="not a curate export"):
        export(filtered, "datacomp_basic", out=str(demo))
    assert (demo / "recipe.toml").read_text() == "x"


def test_export_replaces_new_empty_and_earlier_export_folders(filtered, tmp_path):
    out = tmp_path / "out"
    first = export(filtered, "datacomp_basic", out=str(out), samples_per_shard=1)
    assert json.loads((out / publish.MARKER).read_text())["kind"] == "export"
    assert len(first["shards"]) == 6
    second = export(filtered, "datacomp_basic", out=str(out), samples_per_shard=4)
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".parquet") == [
        "00000.parquet",
        "00001.parquet",
    ]
    assert second["samples"] == sum(read_parquet(str(p)).num_rows for p in out.glob("*.parquet")) == 6
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export(filtered, "datacomp_basic", out=str(empty))["samples"] == 6
    # The default folder inside the dataset, twice.
    for _ in range(2):
        assert export(filtered, "datacomp_basic")["out"] == f"{filtered}/export/datacomp_basic"
    # An export written before the marker existed (its index then named export.json) is recognised as one.
    legacy = tmp_path / "legacy"
    export(filtered, "datacomp_basic", out=str(legacy))
    (legacy / publish.MARKER).unlink()
    (legacy / ".export.json").rename(legacy / "export.json")
    export(filtered, "datacomp_basic", out=str(legacy), fmt="webdataset")
    names = [".curate.json", ".export.json", "00000.tar", "sizes.json"]
    assert sorted(p.name for p in legacy.iterdir()) == names


def test_an_unrelated_export_json_does_not_make_a_folder_replaceable(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "export.json").write_text('{"something": "else"}')
    with pytest.raises(CurateError, match="not a curate export"):
        publish.check_replaceable(str(folder), "export")


def test_demo_refuses_a_folder_that_is_not_an_earlier_demo(tmp_path):
    from curate.demo import run_demo

    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("mine")
    with pytest.raises(CurateError, match="not a curate demo"):
        run_demo(str(home), n_images=10, train=False)
    assert sorted(os.listdir(home)) == [".bashrc"]


def _train_settings(filtered: str) -> dict:
    export(filtered, "datacomp_basic")
    return {
        "data": f"{filtered}/export/datacomp_basic",
        "model": "tiny",
        "image_size": 32,
        "vocab_size": 300,
        "batch_size": 4,
        "steps": 1,
        "workers": 0,
        "progress": False,
    }


def test_train_refuses_the_dataset_and_folders_that_are_not_runs(filtered, tmp_path):
    pytest.importorskip("torch")
    from curate.train.train import TrainConfig, train

    settings = _train_settings(filtered)
    before = _fingerprint(Path(filtered))
    with pytest.raises(CurateError, match="refusing to write the train to .*not a curate train"):
        train(TrainConfig(out_dir=filtered, **settings))
    assert _fingerprint(Path(filtered)) == before
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.tex").write_text("mine")
    with pytest.raises(CurateError, match="not a curate train"):
        train(TrainConfig(out_dir=str(tmp_path / "docs"), **settings))
    assert os.listdir(tmp_path / "docs") == ["thesis.tex"]


@pytest.mark.slow
def test_train_marks_its_run_folder_and_resumes_it(filtered, tmp_path):
    pytest.importorskip("torch")
    from curate.train.train import TrainConfig, train

    settings = _train_settings(filtered)
    run = tmp_path / "run"
    train(TrainConfig(out_dir=str(run), **settings))
    assert json.loads((run / publish.MARKER).read_text())["kind"] == "train"
    train(TrainConfig(out_dir=str(run), resume=True, **{**settings, "steps": 2}))
    assert (run / "checkpoints" / "step_0000002.pt").exists()


def test_report_overwrites_only_an_earlier_report_outside_the_data(filtered, tmp_path):
    from curate.inspect.report import build_report

    page = tmp_path / "card.html"
    build_report(filtered, str(page))
    assert publish.file_signature("report") in page.read_text()
    build_report(filtered, str(page))  # its own earlier report: replaced
    notes = tmp_path / "notes.html"
    notes.write_text("<html>my notes</html>")
    with pytest.raises(CurateError, match="it is not a curate report"):
        build_report(filtered, str(notes))
    assert notes.read_text() == "<html>my notes</html>"
    shard = sorted(Path(filtered, "shards").glob("*.parquet"))[0]
    before = shard.read_bytes()
    with pytest.raises(CurateError, match="inside the dataset's shards"):
        build_report(filtered, str(shard))
    assert shard.read_bytes() == before
    (tmp_path / "folder").mkdir()
    with pytest.raises(CurateError, match="it is a folder"):
        build_report(filtered, str(tmp_path / "folder"))


def test_an_export_on_an_object_store_is_replaced_whole_and_other_folders_refused(filtered, s3_endpoint):
    """Object stores cannot swap folders: an earlier export is removed first, so no stale shard stays."""
    import fsspec

    fs = fsspec.filesystem("s3", client_kwargs={"endpoint_url": s3_endpoint})
    out = "s3://curate-test/exports/garden"
    assert len(export(filtered, "datacomp_basic", out=out, samples_per_shard=1)["shards"]) == 6
    assert len(export(filtered, "datacomp_basic", out=out, samples_per_shard=4)["shards"]) == 2
    fs.invalidate_cache()
    names = sorted(p.rpartition("/")[2] for p in fs.ls("curate-test/exports/garden"))
    assert names == [".curate.json", ".export.json", "00000.parquet", "00001.parquet"]
    fs.pipe("curate-test/photos/mine.jpg", b"my own picture")
    with pytest.raises(CurateError, match="not a curate export"):
        export(filtered, "datacomp_basic", out="s3://curate-test/photos")
    assert fs.cat("curate-test/photos/mine.jpg") == b"my own picture"

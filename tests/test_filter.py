"""curate filter: recipes, SQL decisions with stable reasons over real Parquet signals."""

from __future__ import annotations

import os
import shutil

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from curation_data import Sample, encode, make_photo, write_dataset

from curate.dedup import dedup
from curate.errors import CurateError
from curate.filter import filter_dataset
from curate.recipe import available, load_recipe
from curate.schema import TAKEDOWN_SCHEMA


def test_shipped_recipes_load(tmp_path):
    assert {"datacomp_basic", "laion5b", "strict", "demo"} <= set(available())
    basic = load_recipe("datacomp_basic")
    assert basic.filter == {
        "languages": ["en"],
        "min_caption_words": 3,
        "min_caption_chars": 6,
        "min_side": 200,
        "max_aspect": 3.0,
    }
    copy = tmp_path / "mine.toml"
    copy.write_text('name = "mine"\n[filter]\nmin_side = 64\n[train]\nepochs = 3\n[input]\nurls = "x"\n')
    mine = load_recipe(str(copy))
    assert mine.name == "mine" and mine.filter == {"min_side": 64} and mine.raw["train"] == {"epochs": 3}


def test_recipe_errors_name_the_fix(tmp_path):
    with pytest.raises(CurateError, match="valid keys: .*min_side"):
        load_recipe({"name": "x", "filter": {"min_sise": 200}})
    with pytest.raises(CurateError, match="max_aspect must be int or float"):
        load_recipe({"name": "x", "filter": {"max_aspect": "3"}})
    with pytest.raises(CurateError, match="datacomp_basic"):
        load_recipe("no_such_recipe")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [\n")
    with pytest.raises(CurateError, match="not valid TOML"):
        load_recipe(str(bad))


@pytest.fixture()
def dataset(tmp_path):
    photo = make_photo(1)
    ok = [
        Sample(f"https://ok.example/{i}.jpg", f"a red house near the sea {i}", encode(make_photo(100 + i)))
        for i in range(5)
    ]
    cases = {
        "download_failed": Sample("https://ok.example/missing.jpg", "a photo that never arrived", None),
        "opted_out": Sample(
            "https://private.example/a.jpg",
            "a photo the site opted out of",
            None,
            error_class="robots_disallowed",
        ),
        "image_too_small": Sample(
            "https://ok.example/s.jpg", "a small red house photo", encode(photo.resize((150, 150)))
        ),
        "aspect_ratio": Sample(
            "https://ok.example/w.jpg", "a wide banner of a house", encode(photo.resize((700, 200)))
        ),
        "caption_too_short": Sample("https://ok.example/c.jpg", "house", encode(make_photo(2))),
        "language": Sample(
            "https://ok.example/d.jpg", "ein rotes Haus am Meer", encode(make_photo(3)), language="de"
        ),
        "language+caption_too_short": Sample(
            "https://ok.example/e.jpg", "rotes Haus", encode(make_photo(4)), language="de"
        ),
        "nsfw_image": Sample(
            "https://ok.example/n.jpg", "a photo with an unsafe image", encode(make_photo(5)), nsfw_image=0.93
        ),
        "exact_duplicate": Sample(
            "https://mirror.example/0.jpg", "the same bytes elsewhere again", ok[0].image
        ),
    }
    root = str(tmp_path / "ds")
    write_dataset(root, ok + list(cases.values()), per_shard=6)
    return root, ok, cases


def _decisions(root: str, name: str) -> dict[str, tuple[bool, list[str]]]:
    rows = duckdb.sql(f"SELECT uid, keep, reasons FROM '{root}/decisions/{name}.parquet'").fetchall()
    return {u: (k, r) for u, k, r in rows}


def test_datacomp_basic_drops_each_sample_for_exactly_its_reasons(dataset):
    root, ok, cases = dataset
    summary = filter_dataset(root, "datacomp_basic")
    d = _decisions(root, "datacomp_basic")
    assert len(d) == len(ok) + len(cases)
    for s in ok:
        assert d[s.uid] == (True, [])
    expected = {
        "download_failed": ["download_failed"],
        "opted_out": ["opted_out"],
        "image_too_small": ["image_too_small"],
        "aspect_ratio": ["aspect_ratio"],
        "caption_too_short": ["caption_too_short"],
        "language": ["language"],
        "language+caption_too_short": ["caption_too_short", "language"],
        "nsfw_image": [],
        "exact_duplicate": [],
    }  # not rules of datacomp_basic
    for name, sample in cases.items():
        assert d[sample.uid] == (not expected[name], expected[name]), name
    assert summary["kept"] == len(ok) + 2 and summary["dropped"] == len(cases) - 2
    assert (
        summary["dropped_by_reason"]["language"] == 2 and summary["dropped_by_reason"]["download_failed"] == 1
    )
    assert "near_duplicate" not in summary["dropped_by_reason"]  # inactive filters are not reported


def test_new_threshold_changes_decisions_and_recomputes_nothing_else(dataset):
    root, ok, cases = dataset
    signal_files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(f"{root}/signals") for f in fs)
    before = {p: os.stat(p).st_mtime_ns for p in signal_files}
    recipe = {"name": "mine", "filter": {"min_side": 100, "languages": ["en", "de"]}}
    filter_dataset(root, recipe)
    d = _decisions(root, "mine")
    assert d[cases["image_too_small"].uid] == (True, []) and d[cases["language"].uid] == (True, [])
    filter_dataset(root, {**recipe, "filter": {"min_side": 300}})
    d = _decisions(root, "mine")
    assert all(d[s.uid] == (False, ["image_too_small"]) for s in ok)
    assert {p: os.stat(p).st_mtime_ns for p in signal_files} == before


def test_strict_uses_dedup_nsfw_and_label_only_keeps_the_same_decisions(dataset):
    root, ok, cases = dataset
    with pytest.raises(CurateError, match="curate dedup"):
        filter_dataset(root, {"name": "dups", "filter": {"drop_exact_duplicates": True}})
    dedup(root, max_distance=6)
    recipe = {
        **load_recipe("strict").raw,
        "filter": {k: v for k, v in load_recipe("strict").filter.items() if k != "drop_benchmark_overlap"},
    }
    summary = filter_dataset(root, recipe)
    d = _decisions(root, "strict")
    assert d[cases["nsfw_image"].uid] == (False, ["nsfw_image"])
    dup_pair = sorted([ok[0].uid, cases["exact_duplicate"].uid])
    assert d[dup_pair[0]] == (True, []) and d[dup_pair[1]] == (False, ["exact_duplicate"])
    assert summary["dropped_by_reason"]["exact_duplicate"] == 1
    labelled = filter_dataset(root, recipe, label_only=True)
    assert labelled["label_only"] and _decisions(root, "strict") == d


def test_takedown_requests_and_missing_signals_are_reported(dataset):
    root, _ok, cases = dataset
    pq.write_table(
        pa.Table.from_pylist(
            [{"kind": "domain", "value": "mirror.example", "reason": "owner asked"}], schema=TAKEDOWN_SCHEMA
        ),
        f"{root}/takedown.parquet",
    )
    d_sum = filter_dataset(root, {"name": "t", "filter": {}})
    assert _decisions(root, "t")[cases["exact_duplicate"].uid] == (False, ["takedown"])
    assert d_sum["dropped_by_reason"]["takedown"] == 1
    shutil.rmtree(f"{root}/signals/language")
    with pytest.raises(CurateError, match="curate annotate"):
        filter_dataset(root, "datacomp_basic")
    os.remove(f"{root}/signals/image/00001.parquet")  # rows 6-11: one failed download, 5 images
    with pytest.raises(CurateError, match=r"5 downloaded samples have no 'image' signal.*curate annotate"):
        filter_dataset(root, {"name": "x", "filter": {"min_side": 10}})

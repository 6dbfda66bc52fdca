"""`curate stats` / compute_stats on a real dataset: every section checked against the files themselves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from inspect_dataset import shared_dataset

from curate.cli import main
from curate.stats import compute_stats


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> dict:
    return shared_dataset(tmp_path_factory)


@pytest.fixture(scope="module")
def stats(ds) -> dict:
    return compute_stats(ds["root"])


def _shards(root: str) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in sorted(Path(root, "shards").glob("*.parquet")))


def test_download_section_matches_the_shards_and_their_stats_files(ds, stats):
    d = stats["download"]
    files = [json.loads(p.read_text()) for p in Path(ds["root"], "shards").glob("*.stats.json")]
    assert d["rows"] == sum(f["rows"] for f in files) == stats["manifest"]["rows"] == 31
    assert d["stats_files"] == {"shards": 2, "rows": 31, "by_status": {"success": 25, "failed": 6}}
    assert d["by_status"] == {"success": 25, "failed": 6} and d["success_rate"] == round(25 / 31, 6)
    assert d["failures_by_class"] == {"http_4xx": 2, "dns": 1, "invalid_url": 1, "not_an_image": 1, "timeout": 1}
    assert [(h["host"], h["failed"], h["rows"]) for h in d["top_failing_hosts"]] == [
        ("dead0.example", 3, 3), ("dead1.example", 2, 2), ("(no host)", 1, 1)]


def test_image_and_caption_distributions_match_numpy(ds, stats):
    shards = _shards(ds["root"])
    ok = [r for r in shards.to_pylist() if r["status"] == "success"]
    widths = np.array([r["width"] for r in ok], float)
    aspect = np.array([max(r["width"], r["height"]) / min(r["width"], r["height"]) for r in ok])
    images = stats["images"]
    assert images["count"] == len(ok) == 25
    assert images["width"]["quantiles"]["p50"] == pytest.approx(np.quantile(widths, 0.5))
    assert images["aspect"]["quantiles"]["p95"] == pytest.approx(np.quantile(aspect, 0.95), abs=1e-4)
    assert sum(images["shorter_side"]["histogram"]["counts"]) == 25
    assert images["shorter_side"]["histogram"]["counts"][:2] == [1, 0]  # only the 64x48 image is under 128
    assert images["formats"] == {"jpeg": 24, "png": 1}
    chars = np.array([len(r["caption"]) for r in shards.to_pylist()], float)
    assert stats["captions"]["chars"]["mean"] == pytest.approx(chars.mean(), abs=1e-4)
    assert stats["captions"]["flags"] == {"filename": 1, "url": 0, "html": 1, "boilerplate": 0}


def test_language_nsfw_duplicates_overlap_recipes(stats):
    top = {t["language"]: t["count"] for t in stats["language"]["top"]}
    assert top == {"en": 21, "unknown": 6, "de": 1, "fr": 1, "es": 1, "ja": 1}
    assert stats["nsfw"]["image"]["at_least_0.5"] == 1 and stats["nsfw"]["image"]["histogram"]["counts"][-1] == 1
    assert stats["duplicates"] == {"samples": 25, "duplicates": 2, "rate": 0.08, "by_kind": {"near": 1, "exact": 1},
                                   "clusters_with_duplicates": 2, "largest_cluster": 2}
    assert stats["overlap"] == {"shapes": {"eval_images": 4, "eval_images_matched": 1, "overlap_pct": 25.0,
                                           "training_samples_flagged": 1}}
    basic = stats["recipes"]["basic"]
    assert (basic["samples"], basic["kept"], basic["dropped"]) == (31, 15, 16)
    assert basic["drops_by_reason"]["download_failed"] == 6 and basic["drops_by_reason"]["language"] == 4
    assert basic["drops_by_reason"]["nsfw_image"] == 1 and basic["drops_by_reason_alone"]["nsfw_image"] == 0
    assert set(stats["recipes"]) == {"basic", "strict"}
    assert stats["takedowns"] == {"requests": {"domain": 1}, "uids_purged": 0}


def test_recipe_option_and_unknown_recipe(ds, capsys):
    one = compute_stats(ds["root"], "strict")
    assert list(one["recipes"]) == ["strict"] and one["recipes"]["strict"]["kept"] == 14
    assert main(["stats", ds["root"], "--recipe", "nope"]) == 2
    err = capsys.readouterr().err
    assert "recipe 'nope' has no decisions" in err and "decided recipes: basic, strict" in err


def test_cli_text_and_json(ds, stats, capsys):
    assert main(["stats", ds["root"], "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    printed.pop("seconds"), stats.pop("seconds", None)
    assert printed == json.loads(json.dumps(stats))
    assert main(["stats", ds["root"], "--recipe", "basic"]) == 0
    out = capsys.readouterr().out
    assert "download: 31 rows, success 80.6%" in out
    assert "failing host dead0.example: 3 of 3 rows (http_4xx)" in out
    assert "recipe basic: kept 15 of 31 (48.4%)" in out and "dropped for language: 4" in out


def test_partial_dataset_gets_a_card_with_missing_sections_named(ds, tmp_path, capsys):
    import shutil

    root = tmp_path / "partial"
    shutil.copytree(Path(ds["root"]) / "manifest", root / "manifest")
    shutil.copytree(Path(ds["root"]) / "shards", root / "shards")
    s = compute_stats(str(root))
    assert s["download"]["rows"] == 31 and "flags" not in s["captions"]
    assert s["language"] is s["nsfw"] is s["duplicates"] is s["overlap"] is None and s["recipes"] == {}
    assert main(["stats", str(root)]) == 0
    out = capsys.readouterr().out
    assert "language: not annotated (curate annotate)" in out and "recipes: none applied (curate filter)" in out

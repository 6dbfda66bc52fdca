"""`curate stats` / compute_stats on a real dataset: every section checked against the files themselves."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from inspect_dataset import RECIPES, shared_dataset

from curate.cli import main
from curate.dataset import sidecar, stats_files
from curate.inspect.stats import compute_stats


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> dict:
    return shared_dataset(tmp_path_factory)


@pytest.fixture(scope="module")
def stats(ds) -> dict:
    return compute_stats(ds["root"])


def _shards(root: str) -> pa.Table:
    cols = ["status", "error_class", "width", "height", "caption"]
    return pa.concat_tables(
        [pq.read_table(p, columns=cols) for p in sorted(Path(root, "shards").glob("*.parquet"))],
        promote_options="permissive",
    )


def test_download_section_matches_the_shards_and_their_stats_files(ds, stats):
    d = stats["download"]
    files = [json.loads(Path(p).read_text()) for p in stats_files(str(Path(ds["root"], "shards")))]
    assert d["rows"] == sum(f["rows"] for f in files) == stats["manifest"]["rows"] == 32
    assert d["stats_files"] == {"shards": 2, "rows": 32, "by_status": {"success": 26, "failed": 6}}
    assert d["by_status"] == {"success": 25, "failed": 6, "skipped": 1}  # one taken down after download
    assert d["success_rate"] == round(25 / 32, 6)
    assert d["failures_by_class"] == {
        "http_4xx": 2,
        "dns": 1,
        "invalid_url": 1,
        "not_an_image": 1,
        "takedown": 1,
        "timeout": 1,
    }
    assert [(h["host"], h["failed"], h["rows"]) for h in d["top_failing_hosts"]] == [
        ("dead0.example", 3, 3),
        ("dead1.example", 2, 2),
        ("(no host)", 1, 1),
    ]
    assert [h["main_error"] for h in d["top_failing_hosts"]] == [
        "http_4xx",
        "dns",
        "invalid_url",
    ]  # ties: by name


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
    # the taken-down sample's caption statistics were nulled by the takedown (curate.takedown.purge)
    chars = np.array([len(r["caption"]) for r in shards.to_pylist() if r["error_class"] != "takedown"], float)
    assert stats["captions"]["chars"]["mean"] == pytest.approx(chars.mean(), abs=1e-4)
    assert stats["captions"]["flags"] == {"filename": 1, "url": 0, "html": 1, "boilerplate": 0}


def test_language_nsfw_duplicates_overlap_recipes(ds, stats):
    top = {t["language"]: t["count"] for t in stats["language"]["top"]}
    # 22 English captions, one of them taken down: its language was nulled by the takedown
    # (curate.takedown.purge)
    assert top == {"en": 21, "unknown": 7, "de": 1, "fr": 1, "es": 1, "ja": 1}
    assert (
        stats["nsfw"]["image"]["at_least_0.5"] == 1 and stats["nsfw"]["image"]["histogram"]["counts"][-1] == 1
    )
    assert stats["duplicates"] == {
        "samples": 25,
        "duplicates": 2,
        "rate": 0.08,
        "by_kind": {"near": 1, "exact": 1},
        "clusters_with_duplicates": 2,
        "largest_cluster": 2,
    }
    summary = json.loads(Path(sidecar(f"{ds['root']}/signals/overlap", "summary.json")).read_text())["shapes"]
    assert stats["overlap"] == {
        "shapes": {
            "eval_images": summary["eval_images"],
            "eval_images_matched": summary["eval_overlapping"],
            "overlap_pct": summary["overlap_pct"],
            "training_samples_flagged": summary["training_flagged"],
        }
    }
    assert set(stats["recipes"]) == set(RECIPES)
    for recipe in RECIPES:
        rows = pq.read_table(Path(ds["root"], "decisions", f"{recipe}.parquet")).to_pylist()
        got = stats["recipes"][recipe]
        assert (got["samples"], got["kept"]) == (len(rows), sum(r["keep"] for r in rows))
        by_reason = Counter(reason for r in rows for reason in set(r["reasons"]))
        alone = Counter(r["reasons"][0] for r in rows if len(r["reasons"]) == 1)
        assert got["drops_by_reason"] == dict(by_reason)
        assert got["drops_by_reason_alone"] == {k: alone.get(k, 0) for k in by_reason}
    laion = stats["recipes"]["strict"]["drops_by_reason"]
    assert laion["nsfw_image"] == laion["benchmark_overlap"] == laion["near_duplicate"] == 1
    assert stats["takedowns"] == {"requests": {"domain": 1}, "uids_purged": 1}


def test_recipe_option_and_unknown_recipe(ds, capsys):
    one = compute_stats(ds["root"], "strict")
    assert list(one["recipes"]) == ["strict"]
    assert one["recipes"]["strict"]["kept"] == sum(
        pq.read_table(Path(ds["root"], "decisions/strict.parquet")).column("keep").to_pylist()
    )
    assert main(["stats", ds["root"], "--recipe", "nope"]) == 2
    err = capsys.readouterr().err
    assert "recipe 'nope' has no decisions" in err and "decided recipes: datacomp_basic, strict" in err


def test_cli_text_and_json(ds, stats, capsys):
    assert main(["stats", ds["root"], "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    printed.pop("seconds"), stats.pop("seconds", None)
    assert printed == json.loads(json.dumps(stats))
    assert main(["stats", ds["root"], "--recipe", "strict"]) == 0
    out = capsys.readouterr().out
    assert "download: 32 rows, success 78.1% (success 25, failed 6, skipped 1)" in out
    assert "failing host dead0.example: 3 of 3 rows (http_4xx)" in out
    r = stats["recipes"]["strict"]
    assert f"recipe strict: kept {r['kept']} of 32 ({100 * r['kept'] / 32:.1f}%)" in out
    assert "dropped for nsfw_image: 1 (0 for this alone)" in out and "recipe datacomp_basic" not in out


def test_partial_dataset_gets_a_card_with_missing_sections_named(ds, tmp_path, capsys):
    import shutil

    root = tmp_path / "partial"
    shutil.copytree(Path(ds["root"]) / "manifest", root / "manifest")
    shutil.copytree(Path(ds["root"]) / "shards", root / "shards")
    s = compute_stats(str(root))
    assert s["download"]["rows"] == 32 and "flags" not in s["captions"]
    assert s["language"] is s["nsfw"] is s["duplicates"] is s["overlap"] is None and s["recipes"] == {}
    assert main(["stats", str(root)]) == 0
    out = capsys.readouterr().out
    assert (
        "language: not annotated (curate annotate)" in out and "recipes: none applied (curate filter)" in out
    )


def test_histogram_bins_are_half_open_at_exact_edges():
    import duckdb

    from curate.inspect.stats import Dist, _dists

    out = _dists(
        duckdb.connect(),
        (Dist("x", "x", (0, 64, 128)),),
        "(SELECT unnest([0, 63, 64, 127.5, 128, 500, NULL])::DOUBLE AS x)",
    )["x"]
    assert out["histogram"]["counts"] == [2, 2, 2] and out["histogram"]["labels"] == [
        "0-64",
        "64-128",
        ">=128",
    ]
    assert (out["count"], out["min"], out["max"], out["quantiles"]["p50"]) == (6, 0.0, 500.0, 95.75)


def test_failing_hosts_group_like_url_host_of_each_url():
    """The per-host grouping cuts URLs before parsing them: it must give what parsing every URL gives."""
    import duckdb

    from curate.inspect.stats import _failing_hosts
    from curate.urls import install_url_host

    urls = [
        "http://Ex.COM/a",
        "abcdefghijklmn://Ex.com/p",
        "a:b://c.d/e",
        "x://y",
        "HTTP://user:pw@ex.com:8080/b",
        "https://ex.com?q=1/2",
        "https://ex.com",
        "http://a/b",
        "http://[::1]:80/x",
        "//proto.relative/x",
        "javascript:void(0)",
        "not a url",
        "https://very-long-subdomain.example.org/path/to/img.jpg",
        "http://b.example#frag/x",
        "ftp://ex.com/f",
    ]
    con = duckdb.connect()
    install_url_host(con)
    con.execute("CREATE TABLE samples (url VARCHAR, status VARCHAR, error_class VARCHAR)")
    con.executemany("INSERT INTO samples VALUES (?, 'failed', 'dns')", [(u,) for u in urls])
    expected = Counter(
        h or "(no host)" for (h,) in con.execute("SELECT url_host(url) FROM samples").fetchall()
    )
    got = {h["host"]: h["failed"] for h in _failing_hosts(con)}
    assert got == dict(expected.most_common(10))
    assert got["ex.com"] == 6


def test_stats_of_a_dataset_on_an_object_store_equal_the_local_ones(ds, stats, s3_endpoint):
    """Remote datasets run their sections one at a time (shared fsspec handles); the numbers must not move."""
    import fsspec

    fs = fsspec.filesystem("s3", client_kwargs={"endpoint_url": s3_endpoint})
    fs.put(ds["root"], "curate-test/stats-ds", recursive=True)
    remote = compute_stats("s3://curate-test/stats-ds")
    drop = ("dataset", "seconds")
    assert {k: v for k, v in remote.items() if k not in drop} == {
        k: v for k, v in stats.items() if k not in drop
    }
    assert remote["download"]["rows"] == 32 and remote["recipes"]

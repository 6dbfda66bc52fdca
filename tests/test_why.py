"""`curate why` / explain on kept, dropped, duplicate, benchmark-matched and failed samples."""

from __future__ import annotations

import json
from datetime import UTC

import pytest
from inspect_dataset import RECIPES, shared_dataset

from curate.cli import main
from curate.errors import CurateError
from curate.inspect.why import explain


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> dict:
    return shared_dataset(tmp_path_factory)


def test_kept_sample(ds):
    uid = ds["roles"]["kept"][0]
    info = explain(ds["root"], uid)
    assert info["decisions"] == {r: {"keep": True, "reasons": []} for r in RECIPES}
    assert info["manifest"]["url"] == "https://photos0.example/0.jpg"
    assert info["download"]["status"] == "success" and info["download"]["shard"] == "00000"
    assert info["signals"]["language"] == "en" and info["signals"]["language_score"] == 0.9
    assert info["signals"]["width"] == 224 and info["download"]["height"] == 300
    # It is the representative of the exact copy published on mirror.example.
    dup = info["duplicates"]
    assert dup["is_representative"] and dup["cluster_size"] == 2
    assert [m["uid"] for m in dup["members"]] == [uid, ds["roles"]["exact_dup"][0]]
    assert info["overlap"] == [] and info["takedowns"] == []


def test_dropped_samples_carry_reasons_and_the_facts_behind_them(ds):
    nsfw = explain(ds["root"], ds["roles"]["nsfw"][0])
    assert nsfw["decisions"] == {
        "datacomp_basic": {"keep": True, "reasons": []},
        "strict": {"keep": False, "reasons": ["nsfw_image", "nsfw_text"]},
    }
    assert nsfw["signals"]["nsfw_image"] == pytest.approx(0.93)
    near = explain(ds["root"], ds["roles"]["near_dup"][0])
    assert near["decisions"]["strict"]["reasons"] == ["near_duplicate"]
    assert near["duplicates"]["duplicate_kind"] == "near"
    assert near["duplicates"]["representative_uid"] == ds["roles"]["kept"][1]
    bench = explain(ds["root"], ds["roles"]["bench"][0])
    assert [(m["benchmark"], m["eval_id"], m["match_kind"]) for m in bench["overlap"]] == [
        ("shapes", "circle/0007.jpg", "image")
    ]
    assert bench["overlap"][0]["distance"] <= 8
    assert bench["decisions"]["strict"]["reasons"] == ["benchmark_overlap"]


def test_failed_download(ds):
    uid = ds["roles"]["failed"][2]
    info = explain(ds["root"], uid)
    assert info["download"]["status"] == "failed" and info["download"]["error_class"] == "timeout"
    assert info["duplicates"] is None
    assert all("download_failed" in d["reasons"] and not d["keep"] for d in info["decisions"].values())


def test_prefix_and_unknown_uids(ds):
    uid = ds["roles"]["small"][0]
    assert explain(ds["root"], uid[:10].upper())["uid"] == uid
    with pytest.raises(CurateError, match="is not in"):
        explain(ds["root"], "0" * 32)
    with pytest.raises(CurateError, match="is not a uid"):
        explain(ds["root"], "hello")


def test_taken_down_sample(ds):
    info = explain(ds["root"], ds["roles"]["taken_down"][0])
    assert [(t["kind"], t["value"], t["reason"]) for t in info["takedowns"]] == [
        ("domain", "gone.example", "owner request")
    ]
    assert info["download"]["status"] == "skipped" and info["download"]["error_class"] == "takedown"
    assert all("takedown" in d["reasons"] for d in info["decisions"].values())


def test_takedown_by_parent_domain(ds, tmp_path):
    import shutil
    from datetime import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.schema import TAKEDOWN_SCHEMA

    root = tmp_path / "td"
    shutil.copytree(ds["root"], root)
    pq.write_table(
        pa.Table.from_pylist(
            [
                {
                    "kind": "domain",
                    "value": "example",
                    "reason": "tld request",
                    "requested_at": datetime(2026, 1, 1, tzinfo=UTC),
                    "uids_purged": 1,
                },
                {
                    "kind": "domain",
                    "value": "mple",
                    "reason": "not a parent",
                    "requested_at": None,
                    "uids_purged": 0,
                },
            ],
            schema=TAKEDOWN_SCHEMA,
        ),
        root / "takedown.parquet",
    )
    info = explain(str(root), ds["roles"]["kept"][3])
    assert [t["reason"] for t in info["takedowns"]] == ["tld request"]


def test_cli_text_and_json(ds, capsys):
    uid = ds["roles"]["near_dup"][0]
    assert main(["why", ds["root"], uid]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        f"uid {uid}\n  recipe datacomp_basic: KEPT\n  recipe strict: DROPPED: near_duplicate\n"
    )
    assert f"near duplicate of {ds['roles']['kept'][1]}" in out
    assert main(["why", ds["root"], ds["roles"]["failed"][0], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["download"]["error_class"] == "http_4xx"
    assert main(["why", ds["root"], "f" * 32]) == 2
    assert "Traceback" not in capsys.readouterr().err

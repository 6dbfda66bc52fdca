"""curate takedown: purge image bytes from shards and exports, record the request, skip it later."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import duckdb
import pytest
from curation_data import Sample, encode, make_photo, write_dataset

from curate.errors import CurateError
from curate.export.stage import export
from curate.filter import filter_dataset
from curate.storage import read_parquet
from curate.takedown.stage import takedown


@pytest.fixture()
def exported(tmp_path):
    samples = [
        Sample(f"https://site{i % 3}.example/{i}.jpg", f"a photo of a lake number {i}", encode(make_photo(i)))
        for i in range(12)
    ]
    samples.append(
        Sample("https://cdn.blog.example/p.jpg", "a photo of a lake on a blog", encode(make_photo(40)))
    )
    root = str(tmp_path / "ds")
    write_dataset(root, samples, per_shard=5)
    filter_dataset(root, "datacomp_basic")
    export(root, "datacomp_basic", samples_per_shard=4)
    outside = str(tmp_path / "wds")
    export(root, "datacomp_basic", out=outside, fmt="webdataset", samples_per_shard=4)
    return root, samples, outside


def _shard_rows(root: str) -> dict[str, dict]:
    rows = duckdb.sql(f"SELECT * FROM '{root}/shards/*.parquet'").to_arrow_table().to_pylist()
    return {r["uid"]: r for r in rows}


def _tar_keys(out: str) -> set[str]:
    keys = set()
    for name in os.listdir(out):
        if name.endswith(".tar"):
            with tarfile.open(os.path.join(out, name)) as tar:
                keys |= {m.name.split(".", 1)[0] for m in tar}
    return keys


def test_takedown_purges_shards_and_every_export_and_later_runs_skip_it(exported, tmp_path):
    root, samples, outside = exported
    before = _shard_rows(root)
    request_file = tmp_path / "requests.txt"
    request_file.write_text(f"# consent requests\n{samples[1].uid}\nblog.example   # a whole site\n")
    summary = takedown(root, urls=[samples[0].url], file=str(request_file), reason="owner request #42")
    gone = {samples[0].uid, samples[1].uid, samples[12].uid}  # url, uid, and a subdomain of blog.example
    assert summary["samples_matched"] == 3 and summary["shard_rows_purged"] == 3
    assert summary["export_samples_removed"] == 6  # from the Parquet export and the WebDataset export

    after = _shard_rows(root)
    assert set(after) == set(before)  # rows stay, explained
    for uid in gone:
        assert after[uid]["image"] is None and after[uid]["sha256"] is None
        assert (after[uid]["status"], after[uid]["error_class"]) == ("skipped", "takedown")
        assert after[uid]["error_message"] == "taken down: owner request #42"
    for uid in set(before) - gone:
        assert after[uid] == before[uid]

    parquet_uids = set(
        duckdb.sql(f"SELECT uid FROM '{root}/export/datacomp_basic/*.parquet'").fetchnumpy()["uid"]
    )
    assert parquet_uids == set(before) - gone
    assert _tar_keys(outside) == set(before) - gone
    assert json.loads(Path(f"{outside}/.export.json").read_text())["samples"] == len(before) - 3

    log = read_parquet(f"{root}/takedown.parquet").to_pylist()
    assert {(r["kind"], r["value"], r["uids_purged"]) for r in log} == {
        ("url", samples[0].url, 1),
        ("uid", samples[1].uid, 1),
        ("domain", "blog.example", 1),
    }
    assert all(r["reason"] == "owner request #42" and r["requested_at"] is not None for r in log)

    # decisions made after the takedown explain it; a fresh export skips it
    filter_dataset(root, "datacomp_basic")
    d = dict(duckdb.sql(f"SELECT uid, reasons FROM '{root}/decisions/datacomp_basic.parquet'").fetchall())
    assert all("takedown" in d[u] for u in gone)
    export(root, "datacomp_basic", out=str(tmp_path / "again"), fmt="webdataset")
    assert _tar_keys(str(tmp_path / "again")) == set(before) - gone

    # a second request is appended to the record
    takedown(root, domains=["site2.example"])
    assert len(read_parquet(f"{root}/takedown.parquet")) == 4
    assert len(_tar_keys(outside)) == len(before) - 3 - 4  # site2 has samples 2, 5, 8, 11


def test_takedown_rejects_empty_or_malformed_requests(exported, tmp_path):
    root, _, _ = exported
    with pytest.raises(CurateError, match="nothing to take down"):
        takedown(root)
    with pytest.raises(CurateError, match="not a curate uid"):
        takedown(root, uids=["abc"])
    with pytest.raises(CurateError, match="does not exist"):
        takedown(root, file=str(tmp_path / "missing.txt"))
    assert not os.path.exists(f"{root}/takedown.parquet")


def test_cli_runs_the_curation_stages_and_reports_bad_input_in_one_line(exported, tmp_path, capsys):
    from curate.cli import main

    root, samples, _ = exported
    bench = tmp_path / "bench" / "lake"
    bench.mkdir(parents=True)
    (bench / "0.png").write_bytes(encode(make_photo(3), "PNG"))
    assert main(["dedup", root, "--max-distance", "6"]) == 0
    assert main(["overlap", root, "--benchmark", f"lakes={bench.parent}", "--max-distance", "6"]) == 0
    out = capsys.readouterr().out
    assert "lakes" in out and "100.00%" in out  # the one eval image is a copy of training sample 3
    assert main(["filter", root, "--recipe", "strict"]) == 0
    assert "benchmark_overlap" in capsys.readouterr().out
    assert main(["export", root, "--recipe", "strict", "--format", "webdataset"]) == 0
    assert samples[3].uid not in _tar_keys(f"{root}/export/strict")
    assert main(["takedown", root, "--domain", "site0.example", "--reason", "cli"]) == 0
    assert _tar_keys(f"{root}/export/strict").isdisjoint({samples[i].uid for i in range(0, 12, 3)})
    assert main(["takedown", root]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["curate takedown: error: nothing to take down: give --uid, --url, --domain or --file"]
    assert main(["filter", root, "--recipe", "nope"]) == 2
    assert not os.path.exists(f"{root}/.lock")

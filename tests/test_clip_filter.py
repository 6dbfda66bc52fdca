"""clip_score filter: LAION's threshold and DataComp's top fraction over planted CLIP signals."""

from __future__ import annotations

import math
import os
import shutil

import duckdb
import numpy as np
import pytest
from clip_signals import clip_table, write_clip_signals
from curation_data import Sample, encode, make_photo, write_dataset

from curate.errors import CurateError
from curate.filter import filter_dataset
from curate.recipe import load_recipe

# 12 downloaded samples with planted scores (two ties) and one failed download, in two shards.
SCORES = [0.31, 0.12, 0.28, 0.27, 0.35, 0.22, 0.30, 0.30, 0.05, 0.18, 0.30, 0.26]


@pytest.fixture()
def scored(tmp_path):
    samples = [
        Sample(f"https://ok.example/{i}.jpg", f"a photo of thing number {i}", encode(make_photo(200 + i)))
        for i in range(len(SCORES))
    ]
    samples.append(Sample("https://ok.example/gone.jpg", "a photo that never arrived", None))
    root = str(tmp_path / "ds")
    uids = write_dataset(root, samples, per_shard=7)
    rng = np.random.default_rng(0)
    scores = {uid: SCORES[i] for i, uid in enumerate(uids[: len(SCORES)])}
    for shard, rows in (("00000", uids[:7]), ("00001", uids[7 : len(SCORES)])):  # the failed one has no row
        write_clip_signals(
            root, shard, clip_table(rows, [scores[u] for u in rows], rng.normal(size=(len(rows), 8)))
        )
    return root, scores, uids[-1]


def _decisions(root: str, name: str) -> dict[str, tuple[bool, list[str]]]:
    rows = duckdb.sql(f"SELECT uid, keep, reasons FROM '{root}/decisions/{name}.parquet'").fetchall()
    return {u: (k, r) for u, k, r in rows}


def test_min_clip_score_drops_exactly_the_samples_below_the_threshold(scored):
    root, scores, failed = scored
    summary = filter_dataset(root, {"name": "laion", "filter": {"min_clip_score": 0.28}})
    d = _decisions(root, "laion")
    for uid, score in scores.items():
        assert d[uid] == ((True, []) if score >= np.float32(0.28) else (False, ["clip_score"])), score
    assert d[failed] == (False, ["download_failed"])  # no score: clip_score does not fire
    assert summary["dropped_by_reason"]["clip_score"] == sum(s < np.float32(0.28) for s in scores.values())


def test_top_fraction_keeps_the_best_of_the_pool_with_ties_broken_by_uid(scored):
    root, scores, failed = scored
    fraction = 0.3
    filter_dataset(root, {"name": "top", "filter": {"clip_score_top_fraction": fraction}})
    d = _decisions(root, "top")
    ranked = sorted(scores, key=lambda u: (-np.float32(scores[u]), u))
    n_keep = math.ceil(fraction * len(scores))  # 4 of 12: 0.35, 0.31 and two of the three tied 0.30
    assert {u for u in scores if d[u][0]} == set(ranked[:n_keep])
    tied = sorted(u for u in scores if scores[u] == 0.30)
    assert d[tied[0]][0] and d[tied[1]][0] and d[tied[2]] == (False, ["clip_score"])
    assert d[failed] == (False, ["download_failed"])
    filter_dataset(root, {"name": "top", "filter": {"clip_score_top_fraction": fraction}})
    assert _decisions(root, "top") == d  # same cut on a rerun


def test_shipped_datacomp_recipe_keeps_thirty_percent(scored):
    root, scores, _ = scored
    recipe = load_recipe("datacomp_clip_score")
    assert recipe.filter == {"clip_score_top_fraction": 0.3}
    summary = filter_dataset(root, "datacomp_clip_score")
    assert summary["dropped_by_reason"] == {
        "download_failed": 1,
        "opted_out": 0,
        "takedown": 0,
        "clip_score": len(scores) - 4,
    }
    assert summary["kept"] == 4


def test_missing_or_incomplete_clip_signal_names_the_annotate_command(scored):
    root, _, _ = scored
    os.remove(f"{root}/signals/clip/00001.parquet")
    with pytest.raises(
        CurateError, match=r"5 downloaded samples have no 'clip' signal.*curate annotate --signals clip"
    ):
        filter_dataset(root, {"name": "x", "filter": {"min_clip_score": 0.2}})
    shutil.rmtree(f"{root}/signals/clip")
    with pytest.raises(CurateError, match=r"no 'clip' signals .*Run `curate annotate --signals clip "):
        filter_dataset(root, "datacomp_clip_score")


def test_fraction_outside_zero_one_is_a_clear_error(scored):
    root, _, _ = scored
    for bad in (0, 1.5, -0.1):
        with pytest.raises(CurateError, match=r"clip_score_top_fraction = .* in \(0, 1\]"):
            filter_dataset(root, {"name": "x", "filter": {"clip_score_top_fraction": bad}})
    with pytest.raises(CurateError, match="min_clip_score must be int or float"):
        load_recipe({"name": "x", "filter": {"min_clip_score": "0.28"}})


@pytest.mark.slow
def test_dfn_loop_train_on_trusted_score_the_pool_keep_the_top_and_train_again(tmp_path):
    """Any curate run is a filter model: train on a trusted subset, score the pool with that run folder
    (the real `curate annotate --signals clip`), keep the best half, train on what is kept."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.cli import main
    from curate.export.stage import export
    from curate.filter import decisions_path
    from curate.run import train_from_table
    from curate.schema import DECISIONS_SCHEMA
    from curate.synthweb.photos import CLASSES, make_photo

    classes = CLASSES[:4]
    samples, matches = [], {}
    for i in range(48):
        label = classes[i % 4]
        said = classes[(i + 1) % 4] if i >= 24 and i % 3 == 0 else label  # 8 of 48 describe another shape
        sample = Sample(
            f"https://pool.example/{i}.jpg", f"a photo of a {said}", encode(make_photo(label, i, 96))
        )
        samples.append(sample)
        matches[sample.uid] = said == label
    root = str(tmp_path / "pool")
    write_dataset(root, samples, per_shard=24)
    uids = [s.uid for s in samples]
    trusted = {u for u in uids[:24] if matches[u]}  # checked by hand: the first 24, all matching
    table = pa.table(
        {
            "uid": uids,
            "keep": [u in trusted for u in uids],
            "reasons": [[] if u in trusted else ["untrusted"] for u in uids],
        },
        schema=DECISIONS_SCHEMA,
    )
    os.makedirs(f"{root}/decisions")
    pq.write_table(table, decisions_path(root, "trusted"))
    spec = {
        "model": "tiny",
        "steps": 40,
        "batch_size": 16,
        "warmup_steps": 4,
        "lr": 2e-3,
        "workers": 0,
        "threads": 1,
        "save_every": 40,
        "log_every": 40,
        "progress": False,
    }
    trusted_export = export(root, {"name": "trusted", "filter": {}}, fmt="webdataset")
    filter_run = str(tmp_path / "filter-run")
    train_from_table(spec, trusted_export["out"], filter_run)

    assert (
        main(["annotate", root, "--signals", "clip", "--clip-checkpoint", filter_run, "--device", "cpu"]) == 0
    )
    scored = duckdb.sql(f"SELECT uid, clip_score FROM '{root}/signals/clip/*.parquet'").fetchall()
    assert len(scored) == 48 and all(s is not None and -1 <= s <= 1 for _, s in scored)
    meta = pq.read_schema(f"{root}/signals/clip/00000.parquet").metadata
    assert meta[b"curate.clip.checkpoint_sha256"]  # which filter model scored the pool is on record
    summary = filter_dataset(root, {"name": "dfn", "filter": {"clip_score_top_fraction": 0.5}})
    assert summary["kept"] == 24
    kept = {u for u, (k, _) in _decisions(root, "dfn").items() if k}
    score = dict(scored)
    assert min(score[u] for u in kept) >= max(score[u] for u in uids if u not in kept)
    # the filter model has learnt what a matching caption is: mismatched pairs score lower
    right = [score[u] for u in uids[24:] if matches[u]]
    wrong = [score[u] for u in uids[24:] if not matches[u]]
    assert sum(wrong) / len(wrong) < sum(right) / len(right)

    kept_export = export(root, {"name": "dfn", "filter": {}}, fmt="webdataset")
    assert kept_export["samples"] == 24
    second = train_from_table(
        {**spec, "steps": 4, "save_every": 4}, kept_export["out"], str(tmp_path / "run2")
    )
    assert os.path.exists(second["checkpoint"])

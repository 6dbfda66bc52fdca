"""Semantic dedup (SemDeDup): planted near-identical CLIP embeddings collapse to the best-scored sample."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest
from clip_signals import clip_table, near, unit, write_clip_signals
from curation_data import Sample, encode, make_photo, write_dataset

from curate.cli import main
from curate.dedup import dedup
from curate.dedup.semantic import semantic_edges
from curate.errors import CurateError
from curate.filter import filter_dataset
from curate.inspect.why import explain

DIM = 32


@pytest.fixture()
def planted(tmp_path):
    """40 different photos with random embeddings; three groups re-embedded near one another."""
    rng = np.random.default_rng(5)
    samples = [
        Sample(f"https://site.example/{i}.jpg", f"photo number {i}", encode(make_photo(300 + i)))
        for i in range(40)
    ]
    samples.append(Sample(samples[0].url.replace("site", "mirror"), "same bytes elsewhere", samples[0].image))
    root = str(tmp_path / "ds")
    uids = write_dataset(root, samples, per_shard=25)
    emb = unit(rng.normal(size=(len(samples), DIM)))
    scores = rng.uniform(0.1, 0.3, len(samples)).astype(np.float32)
    emb[40] = emb[0]  # the byte copy embeds like its original
    groups = {"triple": [3, 7, 11], "pair": [20, 21], "tied": [30, 31]}
    for members in groups.values():
        for m in members[1:]:
            emb[m] = near(emb[members[0]], 0.995, rng)
    scores[[3, 7, 11]] = [0.20, 0.33, 0.25]  # 7 is the best-described: it is kept
    scores[[20, 21]] = [0.31, 0.22]
    scores[[30, 31]] = [0.26, 0.26]  # equal scores: the smaller uid is kept
    emb[35] = near(emb[36], 0.98, rng)  # cosine 0.98: a duplicate only when eps > 0.02
    for start in (0, 25):
        part = slice(start, start + 25)
        write_clip_signals(root, f"{start // 25:05d}", clip_table(uids[part], list(scores[part]), emb[part]))
    return root, uids, groups


def _clusters(root: str) -> dict[str, tuple]:
    rows = duckdb.sql(
        f"SELECT uid, representative_uid, is_representative, duplicate_kind "
        f"FROM '{root}/signals/dedup/clusters.parquet'"
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


@pytest.mark.parametrize("clusters", [None, 4])
def test_planted_duplicates_collapse_to_the_highest_clip_score_then_uid(planted, clusters):
    root, uids, groups = planted
    summary = dedup(root, semantic_eps=0.01, semantic_clusters=clusters)
    c = _clusters(root)
    tied = min(uids[30], uids[31])
    expected_rep = {uids[3]: uids[7], uids[11]: uids[7], uids[21]: uids[20], max(uids[30], uids[31]): tied}
    for uid, rep in expected_rep.items():
        assert c[uid] == (rep, False, "semantic")
    for rep in (uids[7], uids[20], tied, uids[35], uids[36]):
        assert c[rep][1] is True
    assert c[uids[40]][2] == "exact" or c[uids[0]][2] == "exact"  # byte copies stay exact duplicates
    assert summary["duplicates_by_kind"] == {"exact": 1, "url": 0, "near": 0, "semantic": 4}
    assert summary["semantic"]["clusters"] == (clusters or 1) and summary["semantic"]["embedded"] == 41
    first = open(f"{root}/signals/dedup/clusters.parquet", "rb").read()
    dedup(root, semantic_eps=0.01, semantic_clusters=clusters)
    assert open(f"{root}/signals/dedup/clusters.parquet", "rb").read() == first  # same bytes on a rerun


def test_eps_sets_the_cosine_radius(planted):
    root, uids, _ = planted
    dedup(root, semantic_eps=0.03)
    c = _clusters(root)
    assert c[uids[35]][0] == c[uids[36]][0] and c[uids[35]][1] != c[uids[36]][1]
    assert sum(not v[1] and v[2] == "semantic" for v in c.values()) == 5


def test_filter_drops_semantic_duplicates_and_why_explains_them(planted):
    root, uids, _ = planted
    dedup(root, semantic_eps=0.01)
    summary = filter_dataset(
        root, {"name": "sem", "filter": {"drop_semantic_duplicates": True, "drop_exact_duplicates": True}}
    )
    assert summary["dropped_by_reason"]["semantic_duplicate"] == 4
    assert summary["dropped_by_reason"]["exact_duplicate"] == 1
    answer = explain(root, uids[3])
    assert answer["decisions"]["sem"] == {"keep": False, "reasons": ["semantic_duplicate"]}
    assert answer["duplicates"]["representative_uid"] == uids[7]
    assert answer["duplicates"]["duplicate_kind"] == "semantic"
    assert answer["duplicates"]["cluster_size"] == 3


def test_cli_semantic_flags_and_errors(planted, capsys):
    root, uids, _ = planted
    assert main(["dedup", root, "--semantic", "--eps", "0.01", "--clusters", "2"]) == 0
    out = capsys.readouterr().out
    assert "semantic: 41 embeddings in 2 k-means clusters" in out and "semantic 4" in out
    assert main(["dedup", root, "--eps", "0.05"]) == 2
    assert "add --semantic" in capsys.readouterr().err
    assert main(["dedup", root, "--semantic", "--eps", "1.5"]) == 2
    assert "--eps 1.5 is outside (0, 1)" in capsys.readouterr().err
    assert main(["why", root, uids[21], "--json"]) == 0
    why = json.loads(capsys.readouterr().out)
    assert why["duplicates"]["duplicate_kind"] == "semantic"


def test_missing_clip_signal_names_the_annotate_command(tmp_path):
    root = str(tmp_path / "ds")
    write_dataset(
        root, [Sample(f"https://a.example/{i}.jpg", f"photo {i}", encode(make_photo(i))) for i in range(3)]
    )
    with pytest.raises(
        CurateError, match=r"curate annotate .* --signals clip --clip-model NAME --clip-checkpoint"
    ):
        dedup(root, semantic_eps=0.01)


def test_cluster_search_finds_the_planted_pairs_and_nothing_else():
    """Checked against all pairs: one cluster finds exactly every pair above the threshold; with k-means
    (second-nearest clusters cover the boundaries) no pair is invented and at most 2% are lost, on random
    embeddings without the topical clusters real ones have."""
    rng = np.random.default_rng(11)
    base = unit(rng.normal(size=(3000, 64)))
    picks = rng.choice(3000, 150, replace=False)
    copies = np.stack([near(base[p], 0.995, rng) for p in picks])
    x = np.concatenate([base, copies]).astype(np.float16)
    x32 = x.astype(np.float32)
    expected = {(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(x32 @ x32.T > 0.99, k=1)), strict=True)}
    assert len(expected) == 150
    a, b, info = semantic_edges(x, np.ones(len(x), bool), eps=0.01, clusters=1)
    assert {(int(i), int(j)) for i, j in zip(a, b, strict=True)} == expected and info["pairs"] == 150
    for k, seed in ((12, 0), (40, 1)):
        perm = np.random.default_rng(seed).permutation(len(x))  # another order: other samples and centroids
        a, b, info = semantic_edges(x[perm], np.ones(len(x), bool), eps=0.01, clusters=k)
        found = {tuple(sorted((int(perm[i]), int(perm[j])))) for i, j in zip(a, b, strict=True)}
        assert found <= expected and len(found) >= 0.98 * len(expected) and info["clusters"] == k

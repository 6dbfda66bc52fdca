"""The partitioned semantic dedup (curate.dedup.semantic_partitioned) on a local 2-CPU Ray: the same
pairs, clusters, representatives and summary as the single-process `curate dedup --semantic`."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clip_signals import clip_table, near, unit, write_clip_signals
from curation_data import Sample, encode, make_photo, write_dataset

from curate.cli import main
from curate.dataset import Dataset
from curate.dedup import dedup
from curate.dedup.partitioned import _ray_session, _Run
from curate.dedup.semantic import semantic_edges
from curate.dedup.semantic_partitioned import dedup_semantic_partitioned, find_pairs, uid_ranges
from curate.filter import filter_dataset
from curate.inspect.why import explain

DIM = 32


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """60 photos over three shards in four embedding topics: semantic groups (one with tied scores), byte
    copies (one of them a semantic duplicate of a third photo, so a hash cluster and a semantic edge
    join), a photo without an embedding and a failed download."""
    rng = np.random.default_rng(7)
    samples = [
        Sample(f"https://site.example/{i}.jpg", f"photo {i}", encode(make_photo(500 + i))) for i in range(60)
    ]
    samples += [Sample(f"https://mirror.example/{i}.jpg", f"copy of {i}", samples[i].image) for i in (0, 5)]
    samples.append(Sample("https://gone.example/x.jpg", "a failed download", None))
    root = str(tmp_path_factory.mktemp("sempart") / "ds")
    uids = write_dataset(root, samples, per_shard=22)
    topics = unit(rng.normal(size=(4, DIM)))
    emb = unit(topics[np.arange(len(samples)) % 4] + rng.normal(0, 0.5, (len(samples), DIM)))
    scores = rng.uniform(0.1, 0.3, len(samples)).astype(np.float32)
    for group in ([3, 7, 11], [20, 24], [30, 34], [41, 45, 49, 53]):
        for m in group[1:]:
            emb[m] = near(emb[group[0]], 0.996, rng)
    scores[[30, 34]] = 0.27  # tied: the smaller uid is kept
    emb[60], emb[61] = emb[0], near(emb[5], 0.999, rng)  # byte copies embed like (or near) their originals
    emb[9] = near(emb[0], 0.995, rng)  # joins the hash cluster of 0 and its copy
    scores[9] = 0.35  # and is the best-described of them: it represents the byte copies
    embedded = [i for i in range(len(samples) - 1) if i != 17]  # 17 has no embedding
    for part in np.array_split(np.array(embedded), 3):
        key = f"{part[0]:05d}"
        write_clip_signals(root, key, clip_table([uids[i] for i in part], list(scores[part]), emb[part]))
    return root, uids


def _rows(root: str) -> list[dict]:
    return pq.read_table(f"{root}/signals/dedup/clusters.parquet").to_pylist()


@pytest.mark.parametrize("k", [None, 5])
def test_partitioned_semantic_dedup_equals_the_single_process_path(pool, local_ray, k):
    root, uids = pool
    single = dedup(root, semantic_eps=0.01, semantic_clusters=k)
    expected = _rows(root)
    assert single["duplicates_by_kind"]["semantic"] >= 7 and single["duplicates_by_kind"]["exact"] >= 1
    by_uid = {r["uid"]: r for r in expected}
    assert by_uid[uids[0]]["representative_uid"] == uids[9]  # a hash cluster led by a semantic duplicate
    for parts in (1, 3):
        summary = dedup_semantic_partitioned(root, eps=0.01, clusters_k=k, partitions=parts)
        assert _rows(root) == expected  # same rows and order: clusters, representatives, kinds, distances
        assert {key: v for key, v in summary.items() if key not in ("seconds", "partitions")} == {
            key: v for key, v in single.items() if key != "seconds"
        }
        assert summary["partitions"]["count"] == parts and summary["partitions"]["peak_task_rss_mb"] > 0
        assert not os.listdir(f"{root}/signals/dedup/_work")  # both passes removed their work files


def test_filter_and_why_read_the_partitioned_result(pool, local_ray):
    root, _ = pool
    dedup(root, semantic_eps=0.01)
    recipe = {"name": "sem", "filter": {"drop_semantic_duplicates": True, "drop_exact_duplicates": True}}
    expected = filter_dataset(root, recipe)["dropped_by_reason"]
    dedup_semantic_partitioned(root, eps=0.01, partitions=2)
    assert filter_dataset(root, recipe)["dropped_by_reason"] == expected
    assert expected["semantic_duplicate"] >= 7
    dup = next(r for r in _rows(root) if r["duplicate_kind"] == "semantic")
    answer = explain(root, dup["uid"])
    assert answer["duplicates"]["representative_uid"] == dup["representative_uid"]
    assert answer["decisions"]["sem"] == {"keep": False, "reasons": ["semantic_duplicate"]}


def test_cli_runs_semantic_dedup_on_ray(pool, local_ray, capsys):
    root, _ = pool
    assert (
        main(["dedup", root, "--semantic", "--executor", "ray", "--partitions", "2", "--clusters", "3"]) == 0
    )
    out = capsys.readouterr().out
    assert "partitioned: 2 partitions" in out and "k-means clusters" in out and "semantic " in out
    kinds = [r["duplicate_kind"] for r in _rows(root)]
    assert kinds.count("semantic") >= 7


def test_find_pairs_equals_semantic_edges_with_sampled_kmeans(tmp_path, local_ray):
    """3,000 rows in 12 clusters: the fitting samples are a part of the rows, projections are computed in
    other blocks than the single path's, and rows visit second-nearest clusters; the pairs are the same."""
    rng = np.random.default_rng(3)
    base = unit(rng.normal(size=(2850, 48)))
    copies = np.stack([near(base[p], 0.995, rng) for p in rng.choice(2850, 150, replace=False)])
    x = np.concatenate([base, copies]).astype(np.float16)
    n = len(x)
    uids = [f"{i:08x}" for i in rng.permutation(n)]  # files in another order than the uids
    root = str(tmp_path / "bare")
    scores = np.full(n, 0.3, np.float32)
    for f, part in enumerate(np.array_split(np.arange(n), 4)):
        write_clip_signals(root, f"{f:05d}", clip_table([uids[i] for i in part], list(scores[part]), x[part]))
    order = np.argsort(uids)
    a, b, info = semantic_edges(x[order], np.ones(n, bool), eps=0.01, clusters=12)
    expected = set(zip(a.tolist(), b.tolist(), strict=True))
    assert info["guests"] > 0 and len(expected) >= 140
    work = str(tmp_path / "work")
    runner = _Run(work, 3, 0, 0.0, {"executor": "ray", "workers": 2, "retries": 0})
    with _ray_session("ray", 2):
        splitters, starts = uid_ranges(work, pa.array(sorted(uids)), 3)
        files = sorted(str(p) for p in (tmp_path / "bare" / "signals" / "clip").glob("*.parquet"))
        got_info, sources = find_pairs(runner, Dataset(root), files, splitters, starts, 0.01, 12)
    edges = pa.concat_tables(
        [pq.read_table(f"{work}/edges/{s}/{j}.parquet") for s in sources for j in range(3)]
    ).to_pydict()
    got = {(ea, eb) for ea, eb in zip(edges["a"], edges["b"], strict=True) if ea < eb}
    assert got == expected and got_info == info

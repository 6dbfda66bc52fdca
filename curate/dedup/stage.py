"""`curate dedup`: cluster a dataset's exact and near duplicates, optionally against built datasets.

Reads only small columns (uid, url, size, sha256, phash, thumbnail), shard by shard: never image bytes. Writes
DATASET/signals/dedup/clusters.parquet and .curate/summary.json (docs/FORMAT.md).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import storage
from curate.dataset import Dataset, sidecar
from curate.dedup import clusters, mih, semantic
from curate.dedup.hashing import default_max_distance, default_similarity
from curate.dedup.near import near_edges
from curate.dedup.nodes import load_nodes
from curate.schema import CLUSTERS_SCHEMA, DUPLICATE_KINDS

log = logging.getLogger(__name__)


def clusters_path(dataset: str) -> str:
    return storage.join(Dataset(dataset).signals_dir("dedup"), "clusters.parquet")


def dedup(
    dataset: str,
    *,
    max_distance: int | None = None,
    against: list[str] | tuple[str, ...] = (),
    workers: int = 2,
    semantic_eps: float | None = None,
    semantic_clusters: int | None = None,
) -> dict:
    """Group duplicates into clusters and pick one representative each; returns the summary.

    semantic_eps: also link this dataset's samples whose CLIP image embeddings have cosine > 1 - eps inside
    one of `semantic_clusters` k-means clusters (curate.dedup.semantic); every representative is then the
    member with the highest CLIP score (the best-described copy), then the smallest uid.
    """
    start = time.perf_counter()
    k = default_max_distance() if max_distance is None else int(max_distance)
    min_similarity = default_similarity()
    ds = Dataset(dataset)
    nodes = load_nodes(ds, list(against))
    from_other = nodes["source"] > 0
    n_own = int((~from_other).sum())
    n = len(nodes["uid"])
    log.info("dedup: %d samples, %d from --against datasets, max distance %d", n_own, n - n_own, k)

    copy, first_copy = _same_value_edges(nodes["sha"], nodes["sha_valid"])
    same_url, first_url = _same_value_edges(nodes["url"], nodes["url_valid"])
    if nodes["thumbs"] is None:
        log.warning(
            "hash signals hold no thumbnails: near duplicates by pHash distance alone (lower "
            "precision); rerun `curate annotate` to add them"
        )
    # Byte-identical copies have identical hashes and thumbnails, so their near duplicates are their
    # first copy's: only that one joins the search (the exact edges already tie the rest to it).
    searched = nodes["phash_valid"].copy()
    searched[copy] = False
    a, b, search = near_edges(nodes["phash"], searched, nodes["thumbs"], k, min_similarity, workers)
    edges_a, edges_b = np.concatenate([copy, same_url, a]), np.concatenate([first_copy, first_url, b])
    labels = clusters.components(n, edges_a, edges_b)
    priority = np.where(from_other, np.iinfo(np.int64).min, -nodes["pixels"])
    hash_labels, sem = labels, None
    if semantic_eps is not None:
        emb = semantic.load_embeddings(ds, nodes["uid"].slice(0, n_own))
        sa, sb, sem = semantic.semantic_edges(emb.vectors, emb.valid, semantic_eps, semantic_clusters)
        labels = clusters.components(n, np.concatenate([edges_a, sa]), np.concatenate([edges_b, sb]))
        priority = np.where(from_other, np.iinfo(np.int64).min, _score_rank(emb.scores, n))
    rep = clusters.representatives(labels, priority, np.arange(n))
    table = _clusters_table(nodes, rep, n_own, hash_labels)
    storage.write_parquet_atomic(table, clusters_path(dataset))

    summary = _summary(table, k, search, list(against), time.perf_counter() - start, sem is not None)
    summary["semantic"] = sem
    summary["min_thumbnail_similarity"] = min_similarity if nodes["thumbs"] is not None else None
    storage.write_json_atomic(summary, sidecar(ds.signals_dir("dedup"), "summary.json"))
    log.info(
        "dedup: %d duplicates in %d clusters (%.1f s)",
        summary["duplicates"],
        summary["clusters"],
        summary["seconds"],
    )
    return summary


def _same_value_edges(digests: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Link every node to the first node (lowest index) with the same value (its 128-bit digest)."""
    idx = np.flatnonzero(valid)
    if len(idx) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    rows = digests[idx]
    order = np.lexsort((idx, rows[:, 1], rows[:, 0]))
    rows, members = rows[order], idx[order]
    starts = np.ones(len(rows), bool)
    starts[1:] = (rows[1:] != rows[:-1]).any(axis=1)
    head = members[np.maximum.accumulate(np.where(starts, np.arange(len(rows)), 0))]
    link = head != members
    return members[link], head[link]


def _score_rank(scores: np.ndarray, n: int) -> np.ndarray:
    """Priority by CLIP score: 0 for the highest, equal scores equal; samples without a score last."""
    full = np.full(n, np.nan, np.float32)
    full[: len(scores)] = scores
    ranks = np.unique(-full[~np.isnan(full)], return_inverse=True)[1]
    priority = np.full(n, len(full), np.int64)
    priority[~np.isnan(full)] = ranks
    return priority


def _clusters_table(nodes: dict, rep: np.ndarray, n_own: int, hash_labels: np.ndarray) -> pa.Table:
    """One row per own sample; members tied to their representative only through a semantic edge are
    kind `semantic` (`hash_labels`: the clusters of the exact, URL and near edges alone)."""
    own = np.arange(n_own)
    r = rep[own]
    is_rep = r == own

    def same(column: str) -> np.ndarray:
        valid = nodes[f"{column}_valid"]
        return valid[own] & valid[r] & (nodes[column][own] == nodes[column][r]).all(axis=1)

    kind_idx = np.where(is_rep, -1, np.where(same("sha"), 0, np.where(same("url"), 1, 2)))
    kind_idx = np.where(~is_rep & (hash_labels[own] != hash_labels[r]), 3, kind_idx)
    kind = pc.take(pa.array(DUPLICATE_KINDS), pa.array(kind_idx, mask=kind_idx < 0))
    both = nodes["phash_valid"][own] & nodes["phash_valid"][r]
    dist = mih.popcount(nodes["phash"][own] ^ nodes["phash"][r]).astype(np.int16)
    names = pa.array([name or None for name in nodes["against_names"]], pa.string())
    return pa.table(
        {
            "uid": nodes["uid"].slice(0, n_own),
            "cluster_id": pa.array(r, pa.int64()),
            "representative_uid": nodes["uid"].take(pa.array(r)),
            "is_representative": pa.array(is_rep, pa.bool_()),
            "duplicate_kind": kind,
            "distance_to_representative": pa.array(dist, pa.int16(), mask=~both),
            "against_dataset": names.take(pa.array(nodes["source"][r])),
        },
        schema=CLUSTERS_SCHEMA,
    )


def _summary(
    table: pa.Table, k: int, search: str, against: list[str], seconds: float, semantic: bool
) -> dict:
    """Counts for the summary JSON (a cluster counts when it has a duplicate in this dataset)."""
    dups = table.filter(pc.invert(table.column("is_representative")))
    kinds = {
        row["values"]: row["counts"] for row in pc.value_counts(dups.column("duplicate_kind")).to_pylist()
    }
    return {
        "samples": table.num_rows,
        "clusters": len(pc.unique(dups.column("cluster_id"))),
        "duplicates": dups.num_rows,
        "duplicates_by_kind": {
            kind: int(kinds.get(kind, 0)) for kind in DUPLICATE_KINDS if semantic or kind != "semantic"
        },
        "duplicates_of_against": table.num_rows - table.column("against_dataset").null_count,
        "against": against,
        "max_distance": k,
        "search": search,
        "seconds": round(seconds, 3),
    }

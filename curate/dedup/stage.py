"""`curate dedup`: cluster a dataset's exact and near duplicates, optionally against built datasets.

Reads only small columns (uid, url, size, sha256, phash): never image bytes. Writes
DATASET/signals/dedup/clusters.parquet and summary.json (docs/FORMAT.md).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pyarrow as pa

from curate import duck, storage
from curate.dataset import Dataset
from curate.dedup import clusters, mih

log = logging.getLogger(__name__)

# Used until curate.annotate (which owns the hash and its measured default) is installed.
_FALLBACK_DISTANCE = 8

CLUSTERS_SCHEMA = pa.schema([
    pa.field("uid", pa.string(), nullable=False),
    pa.field("cluster_id", pa.int64(), nullable=False),
    pa.field("representative_uid", pa.string(), nullable=False),
    pa.field("is_representative", pa.bool_(), nullable=False),
    pa.field("duplicate_kind", pa.string()),  # exact | url | near; null for the representative
    pa.field("distance_to_representative", pa.int16()),
    pa.field("against_dataset", pa.string()),  # set when the representative lives in another dataset
])
DUPLICATE_KINDS = ("exact", "url", "near")


def default_max_distance() -> int:
    """The near-duplicate Hamming radius measured by the annotate stage for its perceptual hash."""
    try:
        from curate.annotate.phash import DEFAULT_NEAR_DUP_DISTANCE
    except ImportError:
        return _FALLBACK_DISTANCE
    return int(DEFAULT_NEAR_DUP_DISTANCE)


def clusters_path(dataset: str) -> str:
    return storage.join(Dataset(dataset).signals_dir("dedup"), "clusters.parquet")


def dedup(dataset: str, *, max_distance: int | None = None, against: list[str] | tuple[str, ...] = (),
          workers: int = 2) -> dict:
    """Group duplicates into clusters and pick one representative each; returns the summary."""
    start = time.perf_counter()
    k = default_max_distance() if max_distance is None else int(max_distance)
    ds = Dataset(dataset)
    nodes = _load_nodes(ds, list(against))
    n_own = int((nodes["against"] == "").sum())
    n = len(nodes["uid"])
    log.info("dedup: %d samples, %d from --against datasets, max distance %d", n_own, n - n_own, k)

    edges_a, edges_b = [], []
    for codes in (nodes["sha_code"], nodes["url_code"]):
        a, b = _same_value_edges(codes)
        edges_a.append(a), edges_b.append(b)
    a, b, plan = _near_edges(nodes["phash"], nodes["phash_valid"], k, workers)
    edges_a.append(a), edges_b.append(b)
    labels = clusters.components(n, np.concatenate(edges_a), np.concatenate(edges_b))

    from_other = nodes["against"] != ""
    priority = np.where(from_other, np.iinfo(np.int64).min, -nodes["pixels"])
    rep = clusters.representatives(labels, priority, np.arange(n))
    table = _clusters_table(nodes, rep, n_own)
    storage.write_parquet_atomic(table, clusters_path(dataset))

    summary = _summary(table, k, plan, list(against), time.perf_counter() - start)
    storage.write_json_atomic(summary, storage.join(ds.signals_dir("dedup"), "summary.json"))
    log.info("dedup: %d duplicates in %d clusters (%.1f s)", summary["duplicates"], summary["clusters"],
             summary["seconds"])
    return summary


def _load_nodes(ds: Dataset, against: list[str]) -> dict[str, np.ndarray]:
    """One row per hashed sample: this dataset's first (sorted by uid), then the --against ones."""
    con = duck.connect()
    hashes = duck.source(con, storage.list_files(ds.signals_dir("hashes"), ".parquet"),
                         f"hash signals in {ds.signals_dir('hashes')}", f"curate annotate {ds.root}")
    shards = duck.source(con, ds.shard_paths(), f"download shards in {ds.shards_dir}",
                         f"curate download ... {ds.root}")
    parts = [f"""SELECT h.uid, s.url, h.sha256, h.phash,
                        coalesce(s.width, 0)::BIGINT * coalesce(s.height, 0) AS pixels, '' AS against
                 FROM {hashes} h JOIN (SELECT uid, url, width, height, status FROM {shards}) s USING (uid)
                 WHERE s.status = 'success'"""]
    for other in against:
        o = Dataset(other)
        src = duck.source(con, storage.list_files(o.signals_dir("hashes"), ".parquet"),
                          f"hash signals in --against dataset {other}", f"curate annotate {other}")
        lit = other.replace("'", "''")
        parts.append(f"SELECT uid, NULL AS url, sha256, phash, 0 AS pixels, '{lit}' AS against FROM {src}")
    query = f"""
        WITH nodes AS ({' UNION ALL '.join(parts)})
        SELECT uid, against, phash, pixels, url, sha256,
               CASE WHEN sha256 IS NULL THEN -1 ELSE dense_rank() OVER (ORDER BY sha256) END AS sha_code,
               CASE WHEN url IS NULL THEN -1 ELSE dense_rank() OVER (ORDER BY url) END AS url_code
        FROM nodes ORDER BY against <> '', against, uid"""
    t = con.sql(query).to_arrow_table()
    phash = t.column("phash")
    return {
        "uid": t.column("uid").to_numpy(zero_copy_only=False),
        "against": t.column("against").to_numpy(zero_copy_only=False),
        "url": t.column("url").to_numpy(zero_copy_only=False),
        "sha256": t.column("sha256").to_numpy(zero_copy_only=False),
        "phash": mih.as_uint64(phash.fill_null(0).to_numpy().astype(np.int64)),
        "phash_valid": phash.is_valid().to_numpy(zero_copy_only=False),
        "pixels": t.column("pixels").to_numpy().astype(np.int64),
        "sha_code": t.column("sha_code").to_numpy().astype(np.int64),
        "url_code": t.column("url_code").to_numpy().astype(np.int64),
    }


def _same_value_edges(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Link every node to the first node with the same code (codes < 0 mean 'no value')."""
    idx = np.flatnonzero(codes >= 0)
    if len(idx) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    _, first, inverse = np.unique(codes[idx], return_index=True, return_inverse=True)
    head = idx[first][inverse]
    link = head != idx
    return idx[link], head[link]


def _near_edges(phash: np.ndarray, valid: np.ndarray, k: int, workers: int):
    """Edges between samples whose perceptual hashes are within k (identical hashes included)."""
    idx = np.flatnonzero(valid)
    values, first, inverse = np.unique(phash[idx], return_index=True, return_inverse=True)
    head = idx[first]
    same_a, same_b = idx, head[inverse]
    n = len(values)
    plan = mih.plan(n * (n - 1) / 2, n, k)
    log.info("near duplicates over %d distinct hashes: %s", n, plan.describe())
    ua, ub, _ = mih.self_pairs(values, k, workers=workers, search=plan)
    return np.concatenate([same_a, head[ua]]), np.concatenate([same_b, head[ub]]), plan


def _clusters_table(nodes: dict, rep: np.ndarray, n_own: int) -> pa.Table:
    own = np.arange(n_own)
    r = rep[own]
    is_rep = r == own
    same_sha = (nodes["sha_code"][own] >= 0) & (nodes["sha_code"][own] == nodes["sha_code"][r])
    same_url = (nodes["url_code"][own] >= 0) & (nodes["url_code"][own] == nodes["url_code"][r])
    kind = np.where(same_sha, "exact", np.where(same_url, "url", "near")).astype(object)
    kind[is_rep] = None
    both = nodes["phash_valid"][own] & nodes["phash_valid"][r]
    dist = mih.popcount(nodes["phash"][own] ^ nodes["phash"][r]).astype(np.int16)
    against = nodes["against"][r].astype(object)
    against[against == ""] = None
    return pa.table({
        "uid": pa.array(nodes["uid"][own], pa.string()),
        "cluster_id": pa.array(r, pa.int64()),
        "representative_uid": pa.array(nodes["uid"][r], pa.string()),
        "is_representative": pa.array(is_rep, pa.bool_()),
        "duplicate_kind": pa.array(kind, pa.string()),
        "distance_to_representative": pa.array(dist, pa.int16(), mask=~both),
        "against_dataset": pa.array(against, pa.string()),
    }, schema=CLUSTERS_SCHEMA)


def _summary(table: pa.Table, k: int, plan: mih.Plan, against: list[str], seconds: float) -> dict:
    con = duck.connect()
    con.register("c", table)
    kinds = dict(con.execute("""SELECT duplicate_kind, count(*) FROM c WHERE NOT is_representative
                                GROUP BY 1""").fetchall())
    n_clusters, n_against = con.execute("""
        SELECT (SELECT count(*) FROM (SELECT cluster_id FROM c GROUP BY 1 HAVING count(*) > 1 OR
                                      bool_or(against_dataset IS NOT NULL))),
               count(*) FILTER (WHERE against_dataset IS NOT NULL) FROM c""").fetchall()[0]
    return {
        "samples": table.num_rows,
        "clusters": int(n_clusters),
        "duplicates": int(sum(kinds.values())),
        "duplicates_by_kind": {kind: int(kinds.get(kind, 0)) for kind in DUPLICATE_KINDS},
        "duplicates_of_against": int(n_against),
        "against": against,
        "max_distance": k,
        "search": plan.describe(),
        "seconds": round(seconds, 3),
    }

"""`curate dedup`: cluster a dataset's exact and near duplicates, optionally against built datasets.

Reads only small columns (uid, url, size, sha256, phash, thumbnail): never image bytes. Writes
DATASET/signals/dedup/clusters.parquet and summary.json (docs/FORMAT.md).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import duck, storage
from curate.dataset import Dataset
from curate.dedup import clusters, mih, simhash
from curate.dedup.hashing import default_max_distance, default_similarity
from curate.dedup.near import near_edges

log = logging.getLogger(__name__)

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


def clusters_path(dataset: str) -> str:
    return storage.join(Dataset(dataset).signals_dir("dedup"), "clusters.parquet")


def dedup(dataset: str, *, max_distance: int | None = None, against: list[str] | tuple[str, ...] = (),
          workers: int = 2) -> dict:
    """Group duplicates into clusters and pick one representative each; returns the summary."""
    start = time.perf_counter()
    k = default_max_distance() if max_distance is None else int(max_distance)
    min_similarity = default_similarity()
    ds = Dataset(dataset)
    nodes = _load_nodes(ds, list(against))
    from_other = pc.not_equal(nodes["against"], "").to_numpy(zero_copy_only=False)
    n_own = int((~from_other).sum())
    n = len(nodes["uid"])
    log.info("dedup: %d samples, %d from --against datasets, max distance %d", n_own, n - n_own, k)

    edges_a, edges_b = [], []
    for hashed, column in (("sha_h", "sha256"), ("url_h", "url")):
        a, b = _same_value_edges(nodes[hashed], nodes[column])
        edges_a.append(a), edges_b.append(b)
    if nodes["thumbs"] is None:
        log.warning("hash signals hold no thumbnails: near duplicates by pHash distance alone (lower "
                    "precision); rerun `curate annotate` to add them")
    a, b, search = near_edges(nodes["phash"], nodes["phash_valid"], nodes["thumbs"], k, min_similarity, workers)
    edges_a.append(a), edges_b.append(b)
    labels = clusters.components(n, np.concatenate(edges_a), np.concatenate(edges_b))

    priority = np.where(from_other, np.iinfo(np.int64).min, -nodes["pixels"])
    rep = clusters.representatives(labels, priority, np.arange(n))
    table = _clusters_table(nodes, rep, n_own)
    storage.write_parquet_atomic(table, clusters_path(dataset))

    summary = _summary(table, k, search, list(against), time.perf_counter() - start)
    summary["min_thumbnail_similarity"] = min_similarity if nodes["thumbs"] is not None else None
    storage.write_json_atomic(summary, storage.join(ds.signals_dir("dedup"), "summary.json"))
    log.info("dedup: %d duplicates in %d clusters (%.1f s)", summary["duplicates"], summary["clusters"],
             summary["seconds"])
    return summary


def _load_nodes(ds: Dataset, against: list[str]) -> dict:
    """One row per hashed sample: this dataset's first (sorted by uid), then the --against ones."""
    con = duck.connect()
    hashes = duck.source(con, storage.list_files(ds.signals_dir("hashes"), ".parquet"),
                         f"hash signals in {ds.signals_dir('hashes')}", f"curate annotate {ds.root}")
    shards = duck.source(con, ds.shard_paths(), f"download shards in {ds.shards_dir}",
                         f"curate download ... {ds.root}")
    sources = [hashes]
    for other in against:
        sources.append(duck.source(con, storage.list_files(Dataset(other).signals_dir("hashes"), ".parquet"),
                                   f"hash signals in --against dataset {other}", f"curate annotate {other}"))
    with_thumbs = all("thumb" in con.sql(f"SELECT * FROM {src} LIMIT 0").columns for src in sources)
    thumb = ", thumb" if with_thumbs else ""
    parts = [f"""SELECT h.uid, s.url, h.sha256, h.phash{thumb},
                        coalesce(s.width, 0)::BIGINT * coalesce(s.height, 0) AS pixels, '' AS against
                 FROM {hashes} h JOIN (SELECT uid, url, width, height, status FROM {shards}) s USING (uid)
                 WHERE s.status = 'success'"""]
    for other, src in zip(against, sources[1:]):
        lit = other.replace("'", "''")
        parts.append(f"SELECT uid, NULL AS url, sha256, phash{thumb}, 0 AS pixels, '{lit}' AS against FROM {src}")
    query = f"""SELECT *, hash(sha256) AS sha_h, hash(url) AS url_h
                FROM ({' UNION ALL '.join(parts)}) ORDER BY against <> '', against, uid"""
    t = con.sql(query).to_arrow_table()
    phash = t.column("phash")
    return {
        "uid": t.column("uid"),  # Arrow strings: never 10M Python objects
        "against": t.column("against"),
        "phash": mih.as_uint64(phash.fill_null(0).to_numpy().astype(np.int64)),
        "phash_valid": phash.is_valid().to_numpy(zero_copy_only=False),
        "pixels": t.column("pixels").to_numpy().astype(np.int64),
        "sha256": t.column("sha256"),
        "url": t.column("url"),
        "sha_h": _hashes(t.column("sha_h"), t.column("sha256")),
        "url_h": _hashes(t.column("url_h"), t.column("url")),
        "thumbs": simhash.as_matrix(t.column("thumb")) if with_thumbs else None,
    }


def _hashes(h: pa.ChunkedArray, values: pa.ChunkedArray) -> np.ma.MaskedArray:
    """64-bit hashes of a string column, masked where the string is null."""
    return np.ma.array(h.to_numpy().astype(np.uint64), mask=~values.is_valid().to_numpy(zero_copy_only=False))


def _same_value_edges(hashes: np.ma.MaskedArray, values: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Link every node to the first node with the same string (grouped by 64-bit hash, then compared,
    so that a hash collision never merges two different values)."""
    idx = np.flatnonzero(~np.ma.getmaskarray(hashes))
    if len(idx) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    _, first, inverse = np.unique(hashes.data[idx], return_index=True, return_inverse=True)
    head = idx[first][inverse]
    link = head != idx
    a, b = idx[link], head[link]
    same = pc.equal(pc.take(values, pa.array(a)), pc.take(values, pa.array(b))).to_numpy(zero_copy_only=False)
    return a[same], b[same]


def _clusters_table(nodes: dict, rep: np.ndarray, n_own: int) -> pa.Table:
    own = np.arange(n_own)
    r = rep[own]
    is_rep = r == own
    rep_idx = pa.array(r)
    same_sha, same_url = (pc.fill_null(pc.equal(nodes[c].slice(0, n_own), pc.take(nodes[c], rep_idx)), False)
                          .to_numpy(zero_copy_only=False) for c in ("sha256", "url"))
    kind_idx = np.where(is_rep, -1, np.where(same_sha, 0, np.where(same_url, 1, 2)))
    kind = pc.take(pa.array(DUPLICATE_KINDS), pa.array(kind_idx, mask=kind_idx < 0))
    both = nodes["phash_valid"][own] & nodes["phash_valid"][r]
    dist = mih.popcount(nodes["phash"][own] ^ nodes["phash"][r]).astype(np.int16)
    against = pc.take(nodes["against"], rep_idx)
    return pa.table({
        "uid": nodes["uid"].slice(0, n_own),
        "cluster_id": pa.array(r, pa.int64()),
        "representative_uid": pc.take(nodes["uid"], rep_idx),
        "is_representative": pa.array(is_rep, pa.bool_()),
        "duplicate_kind": kind,
        "distance_to_representative": pa.array(dist, pa.int16(), mask=~both),
        "against_dataset": pc.if_else(pc.equal(against, ""), pa.scalar(None, pa.string()), against),
    }, schema=CLUSTERS_SCHEMA)


def _summary(table: pa.Table, k: int, search: str, against: list[str], seconds: float) -> dict:
    """Counts for the summary JSON (a cluster counts when it has a duplicate in this dataset)."""
    dups = table.filter(pc.invert(table.column("is_representative")))
    kinds = {row["values"]: row["counts"] for row in pc.value_counts(dups.column("duplicate_kind")).to_pylist()}
    return {
        "samples": table.num_rows,
        "clusters": len(pc.unique(dups.column("cluster_id"))),
        "duplicates": dups.num_rows,
        "duplicates_by_kind": {kind: int(kinds.get(kind, 0)) for kind in DUPLICATE_KINDS},
        "duplicates_of_against": table.num_rows - table.column("against_dataset").null_count,
        "against": against,
        "max_distance": k,
        "search": search,
        "seconds": round(seconds, 3),
    }

"""Semantic duplicates (SemDeDup): images whose CLIP embeddings nearly coincide, found in k-means clusters.

All-pairs cosine over a pool is quadratic; SemDeDup (Abbas et al. 2023) first partitions the image
embeddings with k-means and compares pairs only inside each cluster, where duplicates land together. Pairs
with cosine > 1 - eps become edges; `curate.dedup.stage` joins them with the exact and near edges.

k-means runs on the top principal components of the embeddings (64 by default): assigning 1M points to
2,000 centroids then costs an eighth of the full-width product, and points within cosine 0.99 of each
other are also neighbours in the projection. The pair test itself uses the full embeddings.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from curate import storage
from curate.dataset import Dataset
from curate.errors import CurateError

log = logging.getLogger(__name__)

DEFAULT_EPS = 0.01
MEMBERS_PER_CLUSTER = 500  # default k = n / 500: assignment and in-cluster pair costs balance near 1M
KMEANS_ITERATIONS = 10
KMEANS_SAMPLE_PER_CLUSTER = 40  # centroids are fitted on a sample of 40 points per cluster
PROJECTION_DIMS = 64
_CHUNK = 16384  # rows per matrix product: bounds the float32 working set to a few tens of MB
_SEED = 0


@dataclass
class Embeddings:
    """Image embeddings aligned to the dedup nodes: (n, d) float16 unit rows, scores, and which rows exist."""

    vectors: np.ndarray
    scores: np.ndarray  # float32 clip_score, NaN where missing
    valid: np.ndarray  # bool: the sample has an image embedding


def load_embeddings(ds: Dataset, uids: pa.Array) -> Embeddings:
    """Read `image_embedding` and `clip_score` of signals/clip/ for `uids` (the dedup nodes, in order)."""
    fix = f"curate annotate {ds.root} --signals clip --clip-model NAME --clip-checkpoint FILE"
    files = storage.list_files(ds.signals_dir("clip"), ".parquet")
    if not files:
        raise CurateError(
            f"semantic dedup clusters CLIP image embeddings, and {ds.signals_dir('clip')} has none. "
            f"Run `{fix}` first."
        )
    tables = [
        storage.read_parquet(p, columns=["uid", "clip_score", "image_embedding"])
        for p in tqdm(files, desc="load clip signals", unit="file", disable=len(files) < 20)
    ]
    table = pa.concat_tables(tables).combine_chunks()
    embedding = table.column("image_embedding").chunk(0) if table.num_rows else None
    if embedding is None or not pa.types.is_fixed_size_list(embedding.type):
        raise CurateError(
            f"{ds.signals_dir('clip')} holds no image embeddings (a fixed-size `image_embedding` "
            f"column). Rerun `{fix}`."
        )
    dim = embedding.type.list_size
    pos = pc.index_in(table.column("uid"), value_set=uids).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(~np.isnan(pos) & embedding.is_valid().to_numpy(zero_copy_only=False))
    target = pos[rows].astype(np.int64)
    values = embedding.values.slice(embedding.offset * dim, len(embedding) * dim)
    vectors = np.zeros((len(uids), dim), np.float16)
    vectors[target] = values.fill_null(0).to_numpy(zero_copy_only=False).reshape(-1, dim)[rows]
    scores = np.full(len(uids), np.nan, np.float32)
    scores[target] = table.column("clip_score").to_numpy(zero_copy_only=False).astype(np.float32)[rows]
    valid = np.zeros(len(uids), bool)
    valid[target] = True
    missing = int(len(uids) - valid.sum())
    if missing:
        log.warning(
            "%d of %d samples have no CLIP image embedding: they take no part in semantic dedup; run `%s`",
            missing,
            len(uids),
            fix,
        )
    return Embeddings(vectors, scores, valid)


def default_clusters(n: int) -> int:
    return max(1, math.ceil(n / MEMBERS_PER_CLUSTER))


def semantic_edges(
    vectors: np.ndarray, valid: np.ndarray, eps: float = DEFAULT_EPS, clusters: int | None = None
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Node pairs (a, b) with cosine > 1 - eps inside one k-means cluster, and what the search did."""
    if not 0 < eps < 1:
        raise CurateError(
            f"--eps {eps} is outside (0, 1): give the cosine distance under which two images are "
            f"duplicates, e.g. {DEFAULT_EPS}"
        )
    idx = np.flatnonzero(valid)
    k = min(len(idx), clusters or default_clusters(len(idx))) if len(idx) else 0
    if clusters is not None and clusters < 1:
        raise CurateError(
            f"--clusters {clusters} must be at least 1 (default: one per {MEMBERS_PER_CLUSTER} samples)"
        )
    info = {"eps": eps, "clusters": k, "embedded": len(idx), "pairs": 0, "largest_cluster": 0, "guests": 0}
    if len(idx) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64), info
    x = vectors[idx]
    if k > 1:
        labels, second = assign_clusters(x, k, margin=2 * math.sqrt(2 * eps))
    else:
        labels, second = np.zeros(len(idx), np.int64), np.full(len(idx), -1, np.int64)
    members, guests = _by_cluster(labels, k), _by_cluster(second, k)
    a, b = [], []
    for c in tqdm(range(k), desc="semantic pairs", unit="cluster", disable=k < 50):
        i, j = _close_pairs(x, members[c], guests[c], 1.0 - eps)
        a.append(idx[i])
        b.append(idx[j])
    a, b = np.concatenate(a), np.concatenate(b)
    pairs = np.unique(
        np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), axis=0
    )  # a guest may meet twice
    info.update(
        pairs=len(pairs), largest_cluster=max(len(m) for m in members), guests=int((second >= 0).sum())
    )
    return pairs[:, 0], pairs[:, 1], info


def _by_cluster(labels: np.ndarray, k: int) -> list[np.ndarray]:
    """Row indices per cluster label 0..k-1 (label -1: none)."""
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], np.arange(k + 1))
    return [order[starts[c] : starts[c + 1]] for c in range(k)]


def _close_pairs(
    x: np.ndarray, members: np.ndarray, guests: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs with dot product > threshold: members among themselves (upper triangle), guests x members."""
    rows, cols = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    if len(members) == 0:
        return rows[0], cols[0]
    m = x[members].astype(np.float32)
    queries = np.concatenate([members, guests])
    step = max(1, (_CHUNK * 256) // len(members))  # bounds each (step, members) block to ~16 MB
    for r0 in range(0, len(queries), step):
        q = queries[r0 : r0 + step]
        i, j = np.nonzero(x[q].astype(np.float32) @ m.T > threshold)  # (step, members)
        keep = (r0 + i >= len(members)) | (j > r0 + i)  # guests: every member; members: later ones only
        rows.append(q[i[keep]])
        cols.append(members[j[keep]])
    return np.concatenate(rows), np.concatenate(cols)


def assign_clusters(x16: np.ndarray, k: int, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """k-means labels of unit rows, fitted on a sample in a PCA projection (deterministic), and each row's
    second-nearest cluster where it lies within `margin` of the nearest one, else -1.

    Projection never lengthens a distance, so a row p whose duplicate q (|p - q| <= r) sits in another
    cluster B is within 2r of B's centroid beyond its own: with margin 2r, a pair split by a boundary is
    still compared whenever B is p's (or q's) second-nearest cluster.
    """
    rng = np.random.default_rng(_SEED)
    n = len(x16)
    sample = np.sort(rng.choice(n, size=min(n, k * KMEANS_SAMPLE_PER_CLUSTER), replace=False))
    fit = x16[sample].astype(np.float32)
    mean = fit.mean(axis=0)
    dims = min(PROJECTION_DIMS, x16.shape[1])
    # top principal directions of the sample: eigenvectors of its covariance, largest eigenvalues first
    _, vecs = np.linalg.eigh(np.cov(fit - mean, rowvar=False).astype(np.float64))
    basis = vecs[:, ::-1][:, :dims].astype(np.float32)
    centroids = _lloyd((fit - mean) @ basis, k, rng)
    labels, second = np.empty(n, np.int64), np.empty(n, np.int64)
    for r0 in tqdm(range(0, n, _CHUNK), desc="k-means assign", unit="chunk", disable=n < 20 * _CHUNK):
        points = (x16[r0 : r0 + _CHUNK].astype(np.float32) - mean) @ basis
        dist = _sq_distances(points, centroids)
        two = np.argpartition(dist, 1, axis=1)[:, :2] if k > 1 else np.zeros((len(points), 2), np.int64)
        d2 = np.take_along_axis(dist, two, axis=1)
        swap = d2[:, 1] < d2[:, 0]
        two[swap], d2[swap] = two[swap][:, ::-1], d2[swap][:, ::-1]
        near = np.sqrt(np.maximum(d2[:, 1], 0)) <= np.sqrt(np.maximum(d2[:, 0], 0)) + margin
        labels[r0 : r0 + _CHUNK] = two[:, 0]
        second[r0 : r0 + _CHUNK] = np.where(near, two[:, 1], -1)
    return labels, second


def _lloyd(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Lloyd's iterations from k distinct sample points; a centroid that loses all its points stays put."""
    centroids = points[np.sort(rng.choice(len(points), size=k, replace=False))].copy()
    for _ in range(KMEANS_ITERATIONS):
        labels = _nearest(points, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, points)
        counts = np.bincount(labels, minlength=k)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    return centroids


def _sq_distances(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (rows: points), as ||p||^2 + ||c||^2 - 2 p.c in one matrix product."""
    return (
        (points * points).sum(axis=1)[:, None]
        + (centroids * centroids).sum(axis=1)
        - 2.0 * points @ centroids.T
    )


def _nearest(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    return np.argmin((centroids * centroids).sum(axis=1) - 2.0 * points @ centroids.T, axis=1)

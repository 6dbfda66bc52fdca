"""Semantic duplicates (SemDeDup): images whose CLIP embeddings nearly coincide, found in k-means clusters.

All-pairs cosine over a pool is quadratic; SemDeDup (Abbas et al. 2023) first partitions the image
embeddings with k-means and compares pairs only inside each cluster, where duplicates land together. Pairs
with cosine > 1 - eps become edges; `curate.dedup.stage` joins them with the exact and near edges.

Everything but the final test runs on the top principal components of the embeddings (64 by default):
a projection never lengthens a distance, so two rows within cosine 1 - eps (distance sqrt(2 eps)) are
within that distance in the projection too. k-means clusters the projected rows, candidate pairs are the
projected rows within sqrt(2 eps) of each other inside a cluster (an eighth of the full-width products),
and only those candidates are tested on the full embeddings: the projection loses no pair.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from tqdm import tqdm

from curate import storage
from curate.dataset import Dataset
from curate.errors import CurateError
from curate.inspect import duck

log = logging.getLogger(__name__)

DEFAULT_EPS = 0.01
MEMBERS_PER_CLUSTER = 500  # default k = n / 500: assignment and in-cluster pair costs balance near 1M
KMEANS_ITERATIONS = 10
KMEANS_SAMPLE_PER_CLUSTER = 40  # centroids are fitted on a sample of 40 points per cluster
PROJECTION_DIMS = 64  # candidate pairs are tested in this many principal components
KMEANS_DIMS = 32  # k-means uses the largest of them
_CHUNK = 16384  # rows per matrix product: bounds the float32 working set to a few tens of MB
_SEED = 0


@dataclass
class Embeddings:
    """Image embeddings aligned to the dedup nodes: (n, d) float16 unit rows, scores, and which rows exist."""

    vectors: np.ndarray
    scores: np.ndarray  # float32 clip_score, NaN where missing
    valid: np.ndarray  # bool: the sample has an image embedding


def load_embeddings(ds: Dataset, uids: pa.Array) -> Embeddings:
    """Read `image_embedding` and `clip_score` of signals/clip/ for `uids` (the dedup nodes, in order).

    DuckDB decodes Parquet lists of float16 about five times faster than pyarrow (it hands them over as
    float32 lists); the rows are kept as float16, as stored.
    """
    fix = clip_fix(ds)
    files = clip_files(ds)
    con = duck.connect()
    try:
        parts = [
            read_file(con, path, fix)
            for path in tqdm(files, desc="load clip signals", unit="file", disable=len(files) < 20)
        ]
    finally:
        con.close()
    parts = [p for p in parts if p is not None]
    vectors = np.zeros((len(uids), one_dim(ds, {p[2].shape[1] for p in parts})), np.float16)
    scores = np.full(len(uids), np.nan, np.float32)
    pos = pc.index_in(pa.chunked_array([p[0] for p in parts]), value_set=uids).to_numpy(zero_copy_only=False)
    end = 0
    for _, score, values in parts:  # each file's rows straight to their node positions
        at = pos[end : end + len(values)]
        end += len(values)
        found = ~np.isnan(at)
        target = at[found].astype(np.int64)
        vectors[target] = values[found]
        scores[target] = score.to_numpy(zero_copy_only=False)[found]
    target = pos[~np.isnan(pos)].astype(np.int64)
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


def clip_fix(ds: Dataset) -> str:
    return f"curate annotate {ds.root} --signals clip --clip-model NAME --clip-checkpoint FILE"


def clip_files(ds: Dataset) -> list[str]:
    """The clip signal files, or an error naming the command that writes them."""
    files = storage.list_files(ds.signals_dir("clip"), ".parquet")
    if not files:
        raise CurateError(
            f"semantic dedup clusters CLIP image embeddings, and {ds.signals_dir('clip')} has none. "
            f"Run `{clip_fix(ds)}` first."
        )
    return files


def one_dim(ds: Dataset, dims: set[int]) -> int:
    """The embedding length all signal files share (an error when none has embeddings or they differ)."""
    if not dims:
        raise CurateError(f"{ds.signals_dir('clip')} holds no image embeddings. Rerun `{clip_fix(ds)}`.")
    if len(dims) > 1:
        raise CurateError(
            f"image embeddings in {ds.signals_dir('clip')} differ in length {sorted(dims)} (several "
            f"models?). Delete the folder and rerun `{clip_fix(ds)}` with one model."
        )
    return next(iter(dims))


def read_file(
    con: duckdb.DuckDBPyConnection, path: str, fix: str
) -> tuple[pa.Array, pa.Array, np.ndarray] | None:
    """(uids, scores, float16 (rows, dim)) of one signal file, None when it has no embedding; one file at a
    time bounds the float32 copy DuckDB hands over."""
    src = duck.source(con, [path], path, fix)
    try:
        t = (
            con.sql(
                f"SELECT uid, clip_score::FLOAT AS clip_score, image_embedding FROM {src} "
                "WHERE image_embedding IS NOT NULL"
            )
            .to_arrow_table()
            .combine_chunks()
        )
    except duckdb.Error as exc:
        raise CurateError(
            f"cannot read image embeddings from {path}: {str(exc).strip()}. Rerun `{fix}`."
        ) from None
    if t.num_rows == 0:
        return None
    emb = t.column("image_embedding").chunk(0)
    lengths = pc.list_value_length(emb)
    dim = pc.min(lengths).as_py()
    if dim != pc.max(lengths).as_py():
        raise CurateError(f"image embeddings in {path} differ in length. Rerun `{fix}`.")
    values = pc.list_flatten(emb).to_numpy(zero_copy_only=False).astype(np.float16).reshape(-1, dim)
    return t.column("uid").chunk(0), t.column("clip_score").chunk(0), values


def default_clusters(n: int) -> int:
    return max(1, math.ceil(n / MEMBERS_PER_CLUSTER))


def semantic_edges(
    vectors: np.ndarray, valid: np.ndarray, eps: float = DEFAULT_EPS, clusters: int | None = None
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Node pairs (a, b), a < b, with cosine > 1 - eps inside one k-means cluster, and what the search did."""
    check_settings(eps, clusters)
    idx = np.flatnonzero(valid)
    k = min(len(idx), clusters or default_clusters(len(idx)))
    info = {"eps": eps, "clusters": k, "embedded": len(idx), "pairs": 0, "largest_cluster": 0, "guests": 0}
    if len(idx) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64), info
    x = vectors[idx]
    radius = math.sqrt(2 * eps)  # |p - q| for unit rows at cosine 1 - eps
    mean, basis = fit_projection(x[projection_sample(len(x), k)])
    proj = project(x, mean, basis)
    labels, second = assign_clusters(proj, k, margin=2 * radius)
    members, guests = by_cluster(labels, k), by_cluster(second, k)
    a, b = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    for c in tqdm(range(k), desc="semantic pairs", unit="cluster", disable=k < 50):
        i, j = cluster_pairs(x, proj, members[c], guests[c], eps)
        a.append(i)
        b.append(j)
    a, b = np.concatenate(a), np.concatenate(b)
    pairs = np.unique(
        np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), axis=0
    )  # a guest may meet twice
    info.update(
        pairs=len(pairs), largest_cluster=max(len(m) for m in members), guests=int((second >= 0).sum())
    )
    return idx[pairs[:, 0]], idx[pairs[:, 1]], info


def check_settings(eps: float, clusters: int | None) -> None:
    if not 0 < eps < 1:
        raise CurateError(
            f"--eps {eps} is outside (0, 1): give the cosine distance under which two images are "
            f"duplicates, e.g. {DEFAULT_EPS}"
        )
    if clusters is not None and clusters < 1:
        raise CurateError(
            f"--clusters {clusters} must be at least 1 (default: one per {MEMBERS_PER_CLUSTER} samples)"
        )


def projection_sample(n: int, k: int) -> np.ndarray:
    """Sorted positions (among the n embedded rows) of the sample the principal directions are fitted on."""
    rng = np.random.default_rng(_SEED)
    return np.sort(rng.choice(n, size=min(n, max(k * KMEANS_SAMPLE_PER_CLUSTER, 4096)), replace=False))


def fit_projection(fit16: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sample's mean and top principal directions ((d,), (d, PROJECTION_DIMS) float32)."""
    fit = fit16.astype(np.float32)
    mean = fit.mean(axis=0)
    _, vecs = np.linalg.eigh(np.cov(fit - mean, rowvar=False).astype(np.float64))  # ascending eigenvalues
    return mean, vecs[:, ::-1][:, : min(PROJECTION_DIMS, fit16.shape[1])].astype(np.float32)


def project(x16: np.ndarray, mean: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Rows minus the sample mean, on the principal directions: (n, PROJECTION_DIMS) float32."""
    out = np.empty((len(x16), basis.shape[1]), np.float32)
    for r0 in range(0, len(x16), _CHUNK):
        out[r0 : r0 + _CHUNK] = (x16[r0 : r0 + _CHUNK].astype(np.float32) - mean) @ basis
    return out


def by_cluster(labels: np.ndarray, k: int) -> list[np.ndarray]:
    """Row indices per cluster label 0..k-1 (label -1: none)."""
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], np.arange(k + 1))
    return [order[starts[c] : starts[c + 1]] for c in range(k)]


def cluster_pairs(
    x16: np.ndarray, proj: np.ndarray, members: np.ndarray, guests: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs of one cluster (members among themselves, guests x members) with cosine > 1 - eps."""
    i, j = _candidates(proj, members, guests, math.sqrt(2 * eps))
    sure = _cosines(x16, i, j) > 1.0 - eps
    return i[sure], j[sure]


def _candidates(
    proj: np.ndarray, members: np.ndarray, guests: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs within `radius` in the projection: members among themselves (once each), guests x members.

    Squared distances come out of one matrix product of augmented rows, [q, |q|^2, 1] . [-2m, 1, |m|^2],
    so the only other pass over each block is the comparison.
    """
    rows, cols = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    if len(members) == 0:
        return rows[0], cols[0]
    m = _augment(proj[members], query=False)
    limit = radius * radius + 1e-4  # float32 rounding of the expanded square: never lose a pair at the edge
    step = max(1, (_CHUNK * 256) // len(members))  # bounds each (step, members) block to ~16 MB
    for r0 in range(0, len(members), step):  # members: the block against itself and the later members
        i, j = np.nonzero(_augment(proj[members[r0 : r0 + step]], query=True) @ m[r0:].T <= limit)
        later = j > i
        rows.append(members[r0 + i[later]])
        cols.append(members[r0 + j[later]])
    for r0 in range(0, len(guests), step):
        i, j = np.nonzero(_augment(proj[guests[r0 : r0 + step]], query=True) @ m.T <= limit)
        rows.append(guests[r0 + i])
        cols.append(members[j])
    return np.concatenate(rows), np.concatenate(cols)


def _augment(rows: np.ndarray, query: bool) -> np.ndarray:
    """Rows extended so that query . member = squared distance (see `_candidates`)."""
    sq = (rows * rows).sum(axis=1, keepdims=True)
    ones = np.ones_like(sq)
    return np.hstack([rows, sq, ones] if query else [-2.0 * rows, ones, sq])


def _cosines(x16: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Full-width dot products of row pairs (the exact test), in chunks."""
    out = np.empty(len(i), np.float32)
    for r0 in range(0, len(i), _CHUNK):
        a = x16[i[r0 : r0 + _CHUNK]].astype(np.float32)
        out[r0 : r0 + _CHUNK] = np.einsum("ij,ij->i", a, x16[j[r0 : r0 + _CHUNK]].astype(np.float32))
    return out


def assign_clusters(proj: np.ndarray, k: int, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """k-means labels of projected rows (fitted on a sample, deterministic), and each row's second-nearest
    cluster where it lies within `margin` of the nearest one, else -1.

    A row p whose duplicate q (|p - q| <= r) sits in another cluster B is at most 2r farther from B's
    centroid than from its own: with margin 2r, a pair split by a boundary is still compared whenever B is
    p's (or q's) second-nearest cluster. Clustering uses the first KMEANS_DIMS components (the largest).
    """
    n = len(proj)
    if k == 1:
        return np.zeros(n, np.int64), np.full(n, -1, np.int64)
    at, rng = kmeans_sample(n, k)
    return nearest_two(proj, fit_centroids(proj[at], k, rng), margin)


def kmeans_sample(n: int, k: int) -> tuple[np.ndarray, np.random.Generator]:
    """Sorted positions of the k-means sample, and the generator that then picks the first centroids."""
    rng = np.random.default_rng(_SEED + 1)
    return np.sort(rng.choice(n, size=min(n, k * KMEANS_SAMPLE_PER_CLUSTER), replace=False)), rng


def fit_centroids(sample: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means centroids of projected sample rows, on their first KMEANS_DIMS components."""
    return _lloyd(np.ascontiguousarray(sample[:, :KMEANS_DIMS]), k, rng)


def nearest_two(proj: np.ndarray, centroids: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Each row's nearest centroid, and its second-nearest where that lies within `margin` more, else -1."""
    n = len(proj)
    proj = proj[:, : centroids.shape[1]]
    c_aug = np.hstack(
        [-2.0 * centroids, (centroids * centroids).sum(axis=1, keepdims=True)]
    ).T  # (dims + 1, k)
    labels, second = np.empty(n, np.int64), np.empty(n, np.int64)
    for r0 in tqdm(range(0, n, _CHUNK), desc="k-means assign", unit="chunk", disable=n < 20 * _CHUNK):
        points = proj[r0 : r0 + _CHUNK]
        p_sq = (points * points).sum(axis=1)
        dist = np.hstack([points, np.ones((len(points), 1), np.float32)]) @ c_aug  # |p - c|^2 - |p|^2
        rows = np.arange(len(points))
        best = dist.argmin(axis=1)
        d_best = dist[rows, best] + p_sq
        dist[rows, best] = np.inf
        runner = dist.argmin(axis=1)
        d_runner = dist[rows, runner] + p_sq
        near = np.sqrt(np.maximum(d_runner, 0)) <= np.sqrt(np.maximum(d_best, 0)) + margin
        labels[r0 : r0 + _CHUNK] = best
        second[r0 : r0 + _CHUNK] = np.where(near, runner, -1)
    return labels, second


def _lloyd(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Lloyd's iterations from k distinct sample points; a centroid that loses all its points stays put."""
    centroids = points[np.sort(rng.choice(len(points), size=k, replace=False))].copy()
    for _ in range(KMEANS_ITERATIONS):
        labels = _nearest(points, centroids)
        sums = (
            coo_matrix(
                (np.ones(len(points), np.float32), (labels, np.arange(len(points)))), shape=(k, len(points))
            ).tocsr()
            @ points
        )
        counts = np.bincount(labels, minlength=k)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    return centroids


def _nearest(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    return np.argmin((centroids * centroids).sum(axis=1) - 2.0 * points @ centroids.T, axis=1)

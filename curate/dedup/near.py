"""Near-duplicate edges between samples under the annotate stage's rule (curate.dedup.hashing).

With thumbnails, candidates come from thumbnail SimHash LSH (curate.dedup.simhash) and are checked
against the whole rule; without them (older signals), the pHash radius alone is the rule and
multi-index hashing (curate.dedup.mih) finds every pair within it exactly. Either way, samples with
identical codes are linked to one head first, so a thousand copies of one picture cost a thousand
checks, not half a million pairs.
"""

from __future__ import annotations

import logging

import numpy as np

from curate.dedup import hashing, mih, simhash

log = logging.getLogger(__name__)


def near_edges(
    phash: np.ndarray,
    valid: np.ndarray,
    thumbs: np.ndarray | None,
    k: int,
    min_similarity: float,
    workers: int = 2,
) -> tuple[np.ndarray, np.ndarray, str]:
    """(a, b, description of the search): node pairs that are near duplicates."""
    if thumbs is None:
        return _by_phash(phash, valid, k, workers)
    return _by_thumbnail(phash, valid, thumbs, k, min_similarity, workers)


def _by_phash(phash: np.ndarray, valid: np.ndarray, k: int, workers: int):
    idx = np.flatnonzero(valid)
    values, first, inverse = np.unique(phash[idx], return_index=True, return_inverse=True)
    head = idx[first]
    n = len(values)
    search = mih.plan(n * (n - 1) / 2, n, k)
    log.info("near duplicates over %d distinct pHashes: %s", n, search.describe())
    ua, ub, _ = mih.self_pairs(values, k, workers=workers, search=search)
    return np.concatenate([idx, head[ua]]), np.concatenate([head[inverse], head[ub]]), search.describe()


def _by_thumbnail(
    phash: np.ndarray, valid: np.ndarray, thumbs: np.ndarray, k: int, min_similarity: float, workers: int
):
    def check(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return hashing.near(phash, phash, thumbs, thumbs, a, b, k, min_similarity)[0]

    idx = np.flatnonzero(valid & simhash.informative(thumbs))  # flat images correlate with nothing
    codes = simhash.simhash(thumbs, idx)
    # identical codes: link to the first holder when the rule agrees; the rest join the search
    heads, member, head = simhash.same_fold(codes)
    ok = check(idx[member], idx[head])
    linked = (idx[member[ok]], idx[head[ok]])
    nodes = idx
    if len(member):  # in row order, so that the codes are gathered sequentially
        search_pos = np.sort(np.concatenate([heads, member[~ok]]))
        codes, nodes = codes[search_pos], idx[search_pos]
    hashes = mih.as_uint64(phash[nodes])
    search = simhash.plan(codes, min_similarity, hashes=hashes, radius=k)
    log.info("near duplicates over %d distinct thumbnails: %s", len(nodes), search.describe())
    ca, cb = simhash.self_candidates(codes, search, workers, hashes=hashes, radius=k)
    a, b = nodes[ca], nodes[cb]
    ok = check(a, b)
    log.info("%d candidate pairs, %d near duplicates", len(a), int(ok.sum()))
    return np.concatenate([linked[0], a[ok]]), np.concatenate([linked[1], b[ok]]), search.describe()


def cross_near(
    q_hash: np.ndarray,
    q_thumbs: np.ndarray | None,
    h_hash: np.ndarray,
    h_thumbs: np.ndarray | None,
    k: int,
    min_similarity: float,
    workers: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(query i, index j, pHash distance, search description) of near-duplicate (query, index) pairs."""
    if q_thumbs is None or h_thumbs is None:
        qi, hj, dist = mih.cross_pairs(q_hash, h_hash, k, workers=workers)
        return qi, hj, dist, "pHash radius, multi-index hashing"
    qpos = np.flatnonzero(simhash.informative(q_thumbs))
    hpos = np.flatnonzero(simhash.informative(h_thumbs))
    q_codes, h_codes = simhash.simhash(q_thumbs, qpos), simhash.simhash(h_thumbs, hpos)
    q_hashes, h_hashes = mih.as_uint64(q_hash[qpos]), mih.as_uint64(h_hash[hpos])
    search = simhash.plan(h_codes, min_similarity, hashes=h_hashes, radius=k)
    ca, cb = simhash.cross_candidates(
        q_codes, h_codes, search, workers, q_hashes=q_hashes, hashes=h_hashes, radius=k
    )
    qi, hj = qpos[ca], hpos[cb]
    ok, dist = hashing.near(q_hash, h_hash, q_thumbs, h_thumbs, qi, hj, k, min_similarity)
    return qi[ok], hj[ok], dist[ok], search.describe()

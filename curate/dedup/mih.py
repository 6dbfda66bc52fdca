"""Hamming-radius search over 64-bit perceptual hashes by multi-index hashing, never all-pairs.

Why it is exact: split the 64 bits into m = k + s disjoint bands. Two hashes within Hamming distance k
differ in at most k bands, so they agree exactly on at least s bands (pigeonhole; s = 1 is the classic
"k + 1 bands" scheme). Hence every such pair shares the key of some combination of s bands. For each of
the C(m, s) combinations we bucket all hashes by that key (one numpy sort of a packed key|index word),
emit the pairs inside each bucket as candidates, and keep those whose popcount(a ^ b) <= k.

A larger s means longer keys (fewer random candidates) but more combinations (more sorts); `plan`
picks (m, s), or plain all-pairs for small inputs, from a cost model fitted on a 2-core x86 machine.
Bucket keys are a multiplicative hash of the masked bits: equal band values always meet, and the rare
hash collision only adds a candidate that the popcount check rejects, so results stay exact.
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import combinations

import numpy as np

log = logging.getLogger(__name__)

BITS = 64
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd, so multiplication is a bijection on uint64
_PAIR_CHUNK = 4_000_000  # candidate pairs materialised at once (bounds memory)
# Cost model, nanoseconds (measured with numpy 2.x on the 2-core development machine).
_NS_PER_SORTED_ITEM = 20.0
_NS_PER_CANDIDATE = 30.0
_NS_PER_BRUTE_PAIR = 10.0
_NS_PER_BUCKETING = 300_000.0  # fixed numpy call overhead of one bucketing


@dataclass(frozen=True)
class Plan:
    """How a search runs: `all_pairs`, or multi-index hashing with `bands` bands sharing `shared`."""

    k: int
    bands: int = 0
    shared: int = 0
    all_pairs: bool = False

    def masks(self) -> list[np.uint64]:
        """One bit mask per combination of `shared` bands out of `bands` contiguous bands."""
        edges = [round(i * BITS / self.bands) for i in range(self.bands + 1)]
        band = [((1 << (edges[i + 1] - edges[i])) - 1) << edges[i] for i in range(self.bands)]
        return [
            np.uint64(sum(band[i] for i in combo)) for combo in combinations(range(self.bands), self.shared)
        ]

    def describe(self) -> str:
        if self.all_pairs:
            return f"all-pairs (k={self.k})"
        return (
            f"multi-index hashing: {self.bands} bands, {self.shared} shared, "
            f"{math.comb(self.bands, self.shared)} bucketings (k={self.k})"
        )


def popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x)


def as_uint64(hashes: np.ndarray) -> np.ndarray:
    """int64 bit patterns (as stored in Parquet) viewed as unsigned 64-bit words."""
    arr = np.ascontiguousarray(hashes)
    return arr.view(np.uint64) if arr.dtype == np.int64 else arr.astype(np.uint64)


def plan(n_pairs: float, n_sorted: int, k: int, max_shared: int = 6) -> Plan:
    """Cheapest plan for `n_pairs` possible pairs over `n_sorted` hashes sorted per bucketing."""
    if not 0 <= k < BITS:
        raise ValueError(f"max distance must be in 0..{BITS - 1}, got {k}")
    best, best_cost = Plan(k=k, all_pairs=True), n_pairs * _NS_PER_BRUTE_PAIR
    for shared in range(1, max_shared + 1):
        bands = k + shared
        if bands > BITS:
            break
        combos = math.comb(bands, shared)
        key_bits = shared * BITS / bands
        cost = combos * (
            _NS_PER_BUCKETING + n_sorted * _NS_PER_SORTED_ITEM + n_pairs * 2.0**-key_bits * _NS_PER_CANDIDATE
        )
        if cost < best_cost:
            best, best_cost = Plan(k=k, bands=bands, shared=shared), cost
    log.debug("plan %s, estimated %.1f s", best.describe(), best_cost / 1e9)
    return best


def self_pairs(
    hashes: np.ndarray, k: int, *, workers: int = 2, search: Plan | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs (i < j) of `hashes` within Hamming distance k, with their distances.

    Pass distinct hashes (np.unique first): identical values form cliques whose pairs grow
    quadratically, and the caller can link them directly.
    """
    h = as_uint64(hashes)
    n = len(h)
    search = search or plan(n * (n - 1) / 2, n, k)
    if search.all_pairs:
        return _brute_self(h, k)
    idx_bits = max(1, int(n - 1).bit_length())
    parts = map_threads(lambda mask: _bucket_self(h, mask, k, idx_bits), search.masks(), workers)
    return _unique_pairs(parts, n)


def cross_pairs(
    queries: np.ndarray, index: np.ndarray, k: int, *, workers: int = 2, search: Plan | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (query i, index j) pairs within Hamming distance k, with their distances."""
    q, h = as_uint64(queries), as_uint64(index)
    search = search or plan(len(q) * len(h), len(h) + len(q), k)
    if search.all_pairs:
        return _brute_cross(q, h, k)
    parts = map_threads(lambda mask: _bucket_cross(q, h, mask, k), search.masks(), workers)
    return _unique_pairs(parts, len(h))


def map_threads(fn, items: list, workers: int) -> list:
    """numpy sorts and arithmetic release the GIL, so threads use several cores without copies."""
    if workers <= 1 or len(items) == 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def bucketed(keys: np.ndarray, idx_bits: int, index: np.ndarray | None = None) -> np.ndarray:
    """Sorted words (bucket key << idx_bits | index), so that equal keys sort together.

    The bucket key is the top bits of key * odd constant: equal keys give equal bucket keys, and
    unequal ones collide rarely (an extra candidate the verification rejects). `keys` is overwritten.
    `index`: np.arange(len(keys), dtype=np.uint64), for callers that bucket the same rows many times.
    """
    with np.errstate(over="ignore"):
        np.multiply(keys, _MIX, out=keys)
    np.bitwise_and(keys, np.uint64(~((1 << idx_bits) - 1) & (2**BITS - 1)), out=keys)
    np.bitwise_or(keys, np.arange(len(keys), dtype=np.uint64) if index is None else index, out=keys)
    keys.sort()
    return keys


def bucket_pairs(keys: np.ndarray, idx_bits: int) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """(order, chunks): node indices sorted by key, and the (i, j) positions in `order` of every pair of
    nodes with equal keys, in chunks of about _PAIR_CHUNK pairs. `keys` is overwritten."""
    words = bucketed(keys, idx_bits)
    idx_mask = np.uint64((1 << idx_bits) - 1)
    order = (words & idx_mask).astype(np.int64)
    # p such that words p and p + 1 share a bucket key (their XOR has no key bits)
    pos = np.flatnonzero(np.bitwise_xor(words[1:], words[:-1]) <= idx_mask)
    if len(pos) == 0:
        return order, []
    breaks = np.flatnonzero(np.diff(pos) != 1) + 1
    run_start = pos[np.concatenate(([0], breaks))]
    run_len = np.diff(np.concatenate(([0], breaks, [len(pos)]))) + 1  # members per bucket
    two = run_len == 2  # the common case: a bucket of two is one candidate pair
    return order, [(run_start[two], run_start[two] + 1), *_run_chunks(run_start[~two], run_len[~two])]


def _bucket_self(h: np.ndarray, mask: np.uint64, k: int, idx_bits: int):
    order, chunks = bucket_pairs(np.bitwise_and(h, mask), idx_bits)
    if not chunks:
        return _empty()
    hs = h[order]  # hashes in bucket order: candidates compare neighbours, not random memory
    out_a, out_b, out_d = [], [], []
    for i, j in chunks:
        d = popcount(hs[i] ^ hs[j])
        ok = d <= k
        a, b = order[i[ok]], order[j[ok]]
        out_a.append(np.minimum(a, b))
        out_b.append(np.maximum(a, b))
        out_d.append(d[ok])
    return np.concatenate(out_a), np.concatenate(out_b), np.concatenate(out_d)


def _run_chunks(start: np.ndarray, length: np.ndarray):
    """Candidate pairs of buckets larger than two, at most about _PAIR_CHUNK pairs at a time."""
    cum = np.cumsum(length * (length - 1) // 2)
    lo = 0
    while lo < len(start):
        base = cum[lo - 1] if lo else 0
        hi = max(lo + 1, int(np.searchsorted(cum, base + _PAIR_CHUNK, side="right")))
        yield _run_pairs(start[lo:hi], length[lo:hi])
        lo = hi


def _run_pairs(start: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (i, j), i < j, of every pair inside each run [start, start + length)."""
    pos = np.repeat(start, length) + (np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length))
    after = np.repeat(start + length, length) - pos - 1  # partners following each position
    i = np.repeat(pos, after)
    offs = np.arange(after.sum()) - np.repeat(np.cumsum(after) - after, after)
    return i, i + 1 + offs


def lookup(words: np.ndarray, query_keys: np.ndarray, idx_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(query index, position in `words`) of every word whose bucket key equals a query's key.
    `words` comes from `bucketed`; `query_keys` is overwritten."""
    key_mask = np.uint64(~((1 << idx_bits) - 1) & (2**BITS - 1))
    with np.errstate(over="ignore"):
        np.multiply(query_keys, _MIX, out=query_keys)
    np.bitwise_and(query_keys, key_mask, out=query_keys)
    keys = words & key_mask
    lo = np.searchsorted(keys, query_keys, side="left")
    count = np.searchsorted(keys, query_keys, side="right") - lo
    qi = np.repeat(np.arange(len(query_keys), dtype=np.int64), count)
    pos = np.repeat(lo, count) + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))
    return qi, pos


def _bucket_cross(q: np.ndarray, h: np.ndarray, mask: np.uint64, k: int):
    idx_bits = max(1, int(len(h) - 1).bit_length())
    words = bucketed(np.bitwise_and(h, mask), idx_bits)
    qi, pos = lookup(words, np.bitwise_and(q, mask), idx_bits)
    hj = (words[pos] & np.uint64((1 << idx_bits) - 1)).astype(np.int64)
    d = popcount(q[qi] ^ h[hj])
    ok = d <= k
    return qi[ok], hj[ok], d[ok]


def _brute_self(h: np.ndarray, k: int, block: int = 2048):
    e = _empty()
    out_a, out_b, out_d = [e[0]], [e[1]], [e[2]]
    for s in range(0, len(h), block):
        d = popcount(h[s : s + block, None] ^ h[None, s:])
        a, b = np.nonzero(d <= k)
        upper = a < b  # rows start at s and so do columns: keep each pair once
        out_a.append(a[upper] + s)
        out_b.append(b[upper] + s)
        out_d.append(d[a, b][upper])
    return np.concatenate(out_a), np.concatenate(out_b), np.concatenate(out_d)


def _brute_cross(q: np.ndarray, h: np.ndarray, k: int, block: int = 1024):
    out = [_empty()]
    for s in range(0, len(q), block):
        d = popcount(q[s : s + block, None] ^ h[None, :])
        a, b = np.nonzero(d <= k)
        out.append((a + s, b, d[a, b]))
    return tuple(np.concatenate([o[i] for o in out]) for i in range(3))


def _empty():
    return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.uint8)


def _unique_pairs(parts: list, n: int):
    """Merge the bucketings' pairs; a pair found through several band combinations is kept once."""
    a = np.concatenate([p[0] for p in parts]).astype(np.int64)
    b = np.concatenate([p[1] for p in parts]).astype(np.int64)
    d = np.concatenate([p[2] for p in parts]).astype(np.uint8)
    _, first = np.unique(a * np.int64(n) + b, return_index=True)
    return a[first], b[first], d[first]

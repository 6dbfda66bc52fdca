"""Candidate near-duplicate pairs by LSH over the annotate stage's 8x8 thumbnails and 64-bit pHashes.

The annotate stage defines a near duplicate as pHash distance <= 14 AND thumbnail correlation >= 0.94
(curate.annotate.phash). A 14-bit radius on 64-bit hashes leaves no room for exact banding at scale
(bands get 3-4 bits long; see docs/PERFORMANCE.md), so candidates come mostly from the thumbnails:
Pearson correlation of two thumbnails is the cosine of the centred vectors, and a random hyperplane
separates two vectors at angle theta with probability theta / pi (Charikar's SimHash). Each thumbnail
gets PLANES sign bits in WORDS words of 64; each table keys the samples on b bits of one word, tables
taking the words in turn, plus m bits of the pHash drawn afresh for every table.

Recall. A pair at the threshold correlation disagrees on D_w ~ Binomial(64, q) planes of word w,
q = arccos(threshold) / pi, independently across words, and agrees on b random bits of word w with
probability h(D) = C(64 - D, b) / C(64, b). A pair within the pHash radius r differs in d <= r pHash
bits and agrees on m random ones with probability g = C(64 - d, m) / C(64, m) >= C(64 - r, m) / C(64, m),
independently for each table (each draws its own pHash bits). Tables of one word share its planes, so a
pair's D_w is the same in all of them; `plan` therefore picks the tables per word, L_w, so that
(E_D[(1 - h(D) g)^L_w])^WORDS <= 1 - recall (0.99), with g taken at the worst distance r. (Treating
the tables as independent would overstate recall: a 256-plane pool at 137 tables misses 7%, not 1%.)
More similar pairs are found more surely. Probabilities are over the seeded random planes and key bits,
for any fixed pair; runs are deterministic.

Why pHash bits: distinct photos of one kind have correlated thumbnails, so thumbnail bits separate them
poorly, while a pHash bit costs a near pair at most r / 64 of its chances. `plan` measures on a sample
how often distinct samples share keys of each shape (thumbnail bits b, pHash bits m) and takes the shape
with the least estimated work, so it keeps m = 0 where pHash bits would not lower it (pHashes that
follow the thumbnails).

Inside a table only pairs within the pHash radius are kept (the cheap half of the rule); the caller
checks the whole rule on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from scipy.special import gammaln
from scipy.stats import binom

from curate.dedup import mih

PLANES = 512
WORDS = PLANES // 64
HASH_BITS = 64
THUMB_VALUES = 192
_SEED = 0x5EED_C0DE
_CHUNK = 4096  # thumbnails projected at once: the (rows, PLANES) product stays in cache (2x faster than 65k)
# Cost model of one table over n samples with c candidate pairs, fitted at 10M samples on the 2-core
# development machine (numpy 2.4): n * (_NS_PER_ITEM [+ _NS_PER_HASH_KEY]) + c * _NS_PER_CANDIDATE ns.
_NS_PER_ITEM = 17.7  # key, sort, find the samples in shared buckets
_NS_PER_HASH_KEY = 2.7  # mask, mix and add the pHash bits
_NS_PER_CANDIDATE = 21.0  # gather its samples' indices and pHashes, test the radius
_MAX_HASH_KEY_BITS = 16  # pHash bits per key that `plan` considers
_HASH_MIX = np.uint64(0xD6E8FEB86659FD93)  # odd: spreads the masked pHash bits over the key
_WORD_MIX = np.random.default_rng(_SEED + 3).integers(0, 2**64, WORDS, dtype=np.uint64) | np.uint64(1)


@dataclass(frozen=True)
class LshPlan:
    threshold: float
    bits: int  # thumbnail bits per key
    tables: int  # a multiple of WORDS
    recall: float
    hash_bits: int = 0  # pHash bits per key
    radius: int | None = None  # the pHash distance the recall is stated for, with pHash bits

    def __post_init__(self):
        if self.hash_bits and self.radius is None:
            raise ValueError("pHash bits in the key need the pHash radius the recall is stated for")

    def masks(self) -> list[tuple[int, np.uint64, np.uint64]]:
        """(word, mask of `bits` thumbnail bits, mask of `hash_bits` pHash bits) per table."""
        rng = np.random.default_rng(_SEED + 1)
        out = []
        for t in range(self.tables):
            bits = rng.choice(64, self.bits, replace=False)
            hbits = rng.choice(HASH_BITS, self.hash_bits, replace=False) if self.hash_bits else []
            out.append(
                (
                    t % WORDS,
                    np.uint64(sum(1 << int(b) for b in bits)),
                    np.uint64(sum(1 << int(b) for b in hbits)),
                )
            )
        return out

    def describe(self) -> str:
        key = f"{self.bits} thumbnail bits" + (f" + {self.hash_bits} pHash bits" if self.hash_bits else "")
        pair = f"a pair at correlation {self.threshold}" + (
            f" within pHash distance {self.radius}" if self.hash_bits else ""
        )
        return (
            f"thumbnail SimHash LSH: {self.tables} tables of {key} ({pair} is a candidate with "
            f"probability >= {self.recall})"
        )


def sample_rows(n: int, sample: int = 2000) -> np.ndarray:
    """The rows of n codes whose agreements `plan` measures (seeded: the same rows on every run)."""
    return np.random.default_rng(_SEED + 2).choice(n, min(n, sample), replace=False)


def plan(
    codes: np.ndarray,
    threshold: float,
    recall: float = 0.99,
    sample: int = 2000,
    hashes: np.ndarray | None = None,
    radius: int | None = None,
    hash_bits: int | None = None,
    total: int | None = None,
) -> LshPlan:
    """Key shape and tables for these codes: `recall` for pairs at the threshold, least estimated work.

    With `hashes` and `radius`, keys may also take pHash bits (recall then holds for pairs within the
    radius; `hash_bits` fixes how many, else the cheapest count is taken). Photos are not random (layouts
    repeat, pHashes follow thumbnails), so the chance that two distinct samples share a key is measured
    on a sample of pairs rather than assumed to be 2^-bits. `total`: `codes` and `hashes` are already the
    rows `sample_rows(total, sample)` picked from `total` codes (a partitioned search reads only those).
    """
    n = len(codes) if total is None else total
    if total is None:
        pos = sample_rows(n, sample)
        codes, hashes = codes[pos], None if hashes is None else mih.as_uint64(hashes)[pos]
    hist = _agreement(codes, None if hashes is None or radius is None else mih.as_uint64(hashes))
    q = math.acos(max(-1.0, min(1.0, threshold))) / math.pi
    disagree = np.arange(65)
    weight = binom.pmf(disagree, 64, q)
    miss_per_word = (1.0 - recall) ** (1.0 / WORDS)
    if hash_bits and (hashes is None or radius is None):
        raise ValueError("pHash bits in the key need the pHashes and the pHash radius")
    max_hash = 0 if hashes is None or radius is None else min(_MAX_HASH_KEY_BITS, HASH_BITS - radius)
    shapes = range(max_hash + 1) if hash_bits is None else [hash_bits]
    all_bits = range(8, 49)
    # share of sampled (pair, word)s meeting in a table of each shape: P(agree on b random thumbnail bits
    # and m random pHash bits) = C(a_thumb, b) / C(64, b) * C(a_hash, m) / C(64, m), summed over the sample
    agree = np.arange(65)
    thumb_share = np.exp([_log_comb(agree, b) - _log_comb(64, b) for b in all_bits])  # (bits, 65)
    hash_share = np.exp([_log_comb(agree, m) - _log_comb(HASH_BITS, m) for m in shapes])  # (shapes, 65)
    collide = thumb_share @ hist @ hash_share.T  # (bits, shapes)
    best = None
    for j, m in enumerate(shapes):
        g = math.exp(_log_comb(HASH_BITS - (radius or 0), m) - _log_comb(HASH_BITS, m))
        per_item = _NS_PER_ITEM + (_NS_PER_HASH_KEY if m else 0.0)
        for i, bits in enumerate(all_bits):
            h = np.exp(_log_comb(64 - disagree, bits) - _log_comb(64, bits)) * g  # table hit, given D
            per_word = _tables_for(weight, h, miss_per_word)
            if per_word is None:
                continue
            cost = WORDS * per_word * (n * per_item + n * (n - 1) / 2 * collide[i, j] * _NS_PER_CANDIDATE)
            if best is None or cost < best[0]:
                best = (
                    cost,
                    LshPlan(
                        threshold=threshold,
                        bits=bits,
                        tables=WORDS * per_word,
                        recall=recall,
                        hash_bits=m,
                        radius=radius if m else None,
                    ),
                )
    return best[1]


def _agreement(codes: np.ndarray, hashes: np.ndarray | None) -> np.ndarray:
    """(65, 65) share of (pair, word) of these samples by thumbnail bits agreeing in the word and pHash
    bits agreeing, over all pairs; pHash agreement counts as 64 without hashes."""
    hist = np.zeros(65 * 65, np.float64)
    for s in range(0, len(codes), 256):
        block, rest = codes[s : s + 256], codes[s:]  # pairs (i, j > i): later rows only
        thumb = (64 - np.bitwise_count(block[:, None, :] ^ rest[None, :, :])).astype(
            np.uint16
        )  # (B, R, WORDS)
        if hashes is None:
            same = np.full(thumb.shape[:2], 64, np.uint16)
        else:
            same = 64 - np.bitwise_count(hashes[s : s + 256, None] ^ hashes[None, s:]).astype(
                np.uint16
            )  # (B, R)
        upper = np.arange(thumb.shape[1])[None, :] > np.arange(len(block))[:, None]
        hist += np.bincount((thumb * 65 + same[:, :, None])[upper].ravel(), minlength=65 * 65)
    return (hist / max(1.0, hist.sum())).reshape(65, 65)


def _log_comb(n: np.ndarray | int, k: int) -> np.ndarray:
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    return np.where(n >= k, out, -np.inf)


def _tables_for(weight: np.ndarray, hit: np.ndarray, miss: float, limit: int = 100_000) -> int | None:
    """Fewest tables L with sum_D weight(D) (1 - hit(D))^L <= miss (binary search; monotone in L), or
    None when even `limit` tables miss more."""
    if float((weight * (1.0 - hit) ** limit).sum()) > miss:
        return None
    lo, hi = 1, limit
    while lo < hi:
        mid = (lo + hi) // 2
        if float((weight * (1.0 - hit) ** mid).sum()) <= miss:
            hi = mid
        else:
            lo = mid + 1
    return lo


def as_matrix(thumbs) -> np.ndarray:
    """Arrow binary thumbnails of 192 bytes (nulls as zeros) -> (N, 192) uint8."""
    arr = thumbs.combine_chunks() if hasattr(thumbs, "combine_chunks") else thumbs
    if arr.type != pa.binary(THUMB_VALUES):  # DuckDB hands BLOBs back as variable-length binary
        arr = arr.cast(pa.binary(THUMB_VALUES))
    data = np.frombuffer(arr.buffers()[1], dtype=np.uint8)
    start = arr.offset * THUMB_VALUES
    out = data[start : start + len(arr) * THUMB_VALUES].reshape(len(arr), THUMB_VALUES).copy()
    if arr.null_count:
        out[~arr.is_valid().to_numpy(zero_copy_only=False)] = 0
    return out


def informative(thumbs: np.ndarray) -> np.ndarray:
    """Rows that are not flat: a flat thumbnail correlates with nothing (annotate's rule gives 0)."""
    return thumbs.max(axis=1) != thumbs.min(axis=1)


def simhash(thumbs: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """(N, WORDS) uint64 sign bits of the centred thumbnails (those at `rows`, else all) against PLANES
    fixed random hyperplanes.

    Centring is folded into the planes: (x - mean(x)) . p = x . (p - mean(p)), one product per chunk;
    rows are gathered a chunk at a time, never as a copy of the whole matrix.
    """
    planes = np.random.default_rng(_SEED).standard_normal((THUMB_VALUES, PLANES)).astype(np.float32)
    planes -= planes.mean(axis=0, keepdims=True)
    n = len(thumbs) if rows is None else len(rows)
    out = np.empty((n, WORDS), dtype=np.uint64)
    for s in range(0, n, _CHUNK):
        chunk = thumbs[s : s + _CHUNK] if rows is None else thumbs[rows[s : s + _CHUNK]]
        bits = (chunk.astype(np.float32) @ planes) > 0  # (B, PLANES)
        out[s : s + _CHUNK] = np.packbits(bits, axis=1, bitorder="little").view(np.uint64)
    return out


def distinct(x: np.ndarray) -> np.ndarray:
    """Sorted distinct values (numpy's SIMD sort; np.unique's hash path is slower on large arrays)."""
    x = np.sort(x)
    return x[np.concatenate(([True], x[1:] != x[:-1]))] if len(x) else x


def fold(codes: np.ndarray) -> np.ndarray:
    """One uint64 per code (equal codes, equal folds; unequal ones rarely collide), in cache-sized chunks."""
    out = np.empty(len(codes), np.uint64)
    with np.errstate(over="ignore"):
        for s in range(0, len(codes), 8 * _CHUNK):
            out[s : s + 8 * _CHUNK] = (codes[s : s + 8 * _CHUNK] * _WORD_MIX[None, :]).sum(
                axis=1, dtype=np.uint64
            )
    return out


def same_fold(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(heads, members, head of each member): heads are the first row of each distinct fold (ascending),
    members the other rows. One sort of fold | row words; equal folds are grouped on their top bits, so
    the rare codes whose folds share those bits are grouped too: callers verify members against heads."""
    n = len(codes)
    idx_bits = max(1, int(n - 1).bit_length())
    words = mih.bucketed(fold(codes), idx_bits)
    rows = np.bitwise_and(words, np.uint64((1 << idx_bits) - 1)).view(np.int64)
    new = np.ones(n, bool)
    new[1:] = np.bitwise_xor(words[1:], words[:-1]) > np.uint64((1 << idx_bits) - 1)
    group_head = rows[new]  # rows ascend within a group: the first is the smallest
    member = ~new
    heads = np.sort(group_head)
    return heads, rows[member], group_head[np.cumsum(new)[member] - 1]


def _keys(
    column: np.ndarray,
    hashes: np.ndarray | None,
    mask: np.uint64,
    hash_mask: np.uint64,
    out: np.ndarray | None = None,
    scratch: np.ndarray | None = None,
) -> np.ndarray:
    """A table's key per sample (into `out`, else a new array): its thumbnail bits plus its pHash bits
    times an odd constant, so that the two sets of bits do not cancel where their positions coincide."""
    keys = np.bitwise_and(column, mask, out=out)
    if hash_mask:
        extra = np.bitwise_and(hashes, hash_mask, out=scratch)
        with np.errstate(over="ignore"):
            np.multiply(extra, _HASH_MIX, out=extra)
        np.add(keys, extra, out=keys)
    return keys


def _checked_hashes(search: LshPlan, hashes: np.ndarray | None, n: int) -> np.ndarray | None:
    if hashes is None:
        if search.hash_bits:
            raise ValueError("this plan keys on pHash bits: pass the samples' pHashes")
        return None
    hashes = mih.as_uint64(hashes)
    if len(hashes) != n:
        raise ValueError(f"{len(hashes)} pHashes for {n} codes")
    return hashes


def self_candidates(
    codes: np.ndarray,
    search: LshPlan,
    workers: int = 2,
    hashes: np.ndarray | None = None,
    radius: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct node pairs (a < b) that share a bucket in at least one table (and, with `radius`, whose
    `hashes` differ in at most `radius` bits: the pHash half of the rule, tested inside each table so the
    many pairs it rejects are never collected).

    Tables are run word by word: each word's column is copied out once (contiguous, not strided through
    the codes) for all of its tables, which reuse two buffers of n words.
    """
    n = len(codes)
    hashes = _checked_hashes(search, hashes, n)
    idx_bits = max(1, int(n - 1).bit_length())
    by_word: dict[int, list[tuple[np.uint64, np.uint64]]] = {}
    for word, mask, hash_mask in search.masks():
        by_word.setdefault(word, []).append((mask, hash_mask))

    index = np.arange(n, dtype=np.uint64)

    def one_word(word: int) -> np.ndarray:
        column = np.ascontiguousarray(codes[:, word])
        keys, scratch = np.empty(n, np.uint64), np.empty(n, np.uint64)  # reused: no page faults per table
        found = []
        for mask, hash_mask in by_word[word]:
            words = mih.bucketed(_keys(column, hashes, mask, hash_mask, keys, scratch), idx_bits, index)
            a, b = bucket_pairs_within(
                words, idx_bits, hashes if radius is not None else None, radius, scratch
            )
            if len(a):
                found.append(a * np.int64(n) + b)
        return distinct(np.concatenate(found)) if found else np.empty(0, np.int64)

    parts = mih.map_threads(one_word, sorted(by_word), workers)
    pairs = distinct(np.concatenate([np.empty(0, np.int64), *parts]))
    return pairs // n, pairs % n


def bucket_pairs_within(
    words: np.ndarray,
    idx_bits: int,
    hashes: np.ndarray | None,
    radius: int | None,
    scratch: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (a < b) of equal bucket keys in `words` (from mih.bucketed), optionally only those
    whose `hashes` differ in at most `radius` bits. `scratch`: a spare array of len(words) uint64.

    Only samples in buckets of two or more are gathered (their indices and hashes, once each, into
    compact arrays); pairs are then the positions i, i + d of the compact arrays in one bucket: d = 1
    over the whole compact arrays at once (most pairs; sequential reads), larger d from the positions
    that reached d - 1. Within a bucket indices ascend (the words sort by key, then index), so a < b.
    """
    idx_mask = np.uint64((1 << idx_bits) - 1)
    diff = np.bitwise_xor(words[1:], words[:-1], out=None if scratch is None else scratch[:-1])
    link = diff <= idx_mask  # positions p, p + 1 in one bucket
    member = np.zeros(len(words), bool)
    member[1:] = link
    member[:-1] |= link
    pos = np.flatnonzero(member)
    if len(pos) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    ids = np.bitwise_and(words[pos], idx_mask).view(np.int64)
    near = link[pos[:-1]]  # compact i, i + 1 in one bucket
    vals = None if hashes is None else hashes[ids]
    ok = near if vals is None else near & (np.bitwise_count(vals[1:] ^ vals[:-1]) <= radius)
    first = np.flatnonzero(ok)
    out_a, out_b = [ids[first]], [ids[first + 1]]
    starts = np.flatnonzero(near[:-1] & near[1:])  # i, i + 1, i + 2 in one bucket
    gap = 2
    while len(starts):
        ok = starts if vals is None else starts[np.bitwise_count(vals[starts] ^ vals[starts + gap]) <= radius]
        out_a.append(ids[ok])
        out_b.append(ids[ok + gap])
        starts = starts[starts + gap < len(near)]  # is i + gap + 1 in the bucket too?
        starts = starts[near[starts + gap]]
        gap += 1
    return np.concatenate(out_a), np.concatenate(out_b)


def cross_candidates(
    queries: np.ndarray,
    codes: np.ndarray,
    search: LshPlan,
    workers: int = 2,
    q_hashes: np.ndarray | None = None,
    hashes: np.ndarray | None = None,
    radius: int | None = None,
    idx_bits: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (query, index) pairs that share a bucket in at least one table (`radius` as above).

    `idx_bits`: the bucket keys' low bits to drop, when `codes` is one part of a larger index (the
    whole index's, so that a pair shares a bucket exactly when it does in the whole)."""
    n = len(codes)
    q_hashes, hashes = _checked_hashes(search, q_hashes, len(queries)), _checked_hashes(search, hashes, n)
    idx_bits = max(1, int(n - 1).bit_length()) if idx_bits is None else idx_bits

    def one(table: tuple[int, np.uint64, np.uint64]) -> np.ndarray:
        word, mask, hash_mask = table
        words = mih.bucketed(_keys(np.ascontiguousarray(codes[:, word]), hashes, mask, hash_mask), idx_bits)
        qi, pos = mih.lookup(words, _keys(queries[:, word], q_hashes, mask, hash_mask), idx_bits)
        hj = (words[pos] & np.uint64((1 << idx_bits) - 1)).astype(np.int64)
        if radius is not None:
            ok = np.bitwise_count(q_hashes[qi] ^ hashes[hj]) <= radius
            qi, hj = qi[ok], hj[ok]
        return qi * np.int64(n) + hj

    pairs = distinct(np.concatenate([np.empty(0, np.int64), *mih.map_threads(one, search.masks(), workers)]))
    return pairs // n, pairs % n

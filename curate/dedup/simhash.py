"""Candidate near-duplicate pairs from the annotate stage's 8x8 thumbnails, by SimHash LSH.

The annotate stage defines a near duplicate as pHash distance <= 14 AND thumbnail correlation >= 0.94
(curate.annotate.phash). A 14-bit radius on 64-bit hashes leaves no room for exact banding at scale
(bands get 3-4 bits long; see docs/PERFORMANCE.md), so candidates come from the thumbnails instead:
Pearson correlation of two thumbnails is the cosine of the centred vectors, and a random hyperplane
separates two vectors at angle theta with probability theta / pi (Charikar's SimHash). Each thumbnail
gets PLANES sign bits in WORDS words of 64; each table keys the samples on b bits of one word (one
AND per sample), tables taking the words in turn. A pair at the threshold correlation disagrees on
D_w ~ Binomial(64, q) planes of word w, q = arccos(threshold) / pi, independently across words, and
meets in a table of word w when its b bits avoid all D_w: h(D) = C(64 - D, b) / C(64, b). Tables of
one word share its planes, so a pair's D_w is the same in all of them; `plan` therefore picks the
tables per word, L_w, so that (E_D[(1 - h(D))^L_w])^WORDS <= 1 - recall (0.99). (Treating the
tables as independent would overstate recall: a 256-plane pool at 137 tables misses 7%, not 1%.)
More similar pairs are found more surely. Candidates are then checked against the full rule. Seeds
are fixed, so runs are deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from scipy.special import gammaln
from scipy.stats import binom

from curate.dedup import mih

PLANES = 512
WORDS = PLANES // 64
THUMB_VALUES = 192
_SEED = 0x5EED_C0DE
_CHUNK = 65_536
_NS_PER_ITEM = 25.0  # one table: key, sort, scan, per sample (2-core development machine)
_NS_PER_CANDIDATE = 20.0  # generate a candidate pair and test its pHash distance
_WORD_MIX = np.random.default_rng(_SEED + 3).integers(0, 2**64, WORDS, dtype=np.uint64) | np.uint64(1)


@dataclass(frozen=True)
class LshPlan:
    threshold: float
    bits: int
    tables: int  # a multiple of WORDS
    recall: float

    def masks(self) -> list[tuple[int, np.uint64]]:
        """(word, mask of `bits` bits) per table, the words taken in turn."""
        rng = np.random.default_rng(_SEED + 1)
        out = []
        for t in range(self.tables):
            bits = rng.choice(64, self.bits, replace=False)
            out.append((t % WORDS, np.uint64(sum(1 << int(b) for b in bits))))
        return out

    def describe(self) -> str:
        return (f"thumbnail SimHash LSH: {self.tables} tables of {self.bits} bits (a pair at correlation "
                f"{self.threshold} is a candidate with probability >= {self.recall})")


def plan(codes: np.ndarray, threshold: float, recall: float = 0.99, sample: int = 2000) -> LshPlan:
    """Key bits and tables for these codes: `recall` for pairs at the threshold, least estimated work.

    Photos' thumbnails are not random vectors (layouts repeat), so the chance that two distinct ones
    share a key is measured on a sample of pairs rather than assumed to be 2^-bits.
    """
    n = len(codes)
    rng = np.random.default_rng(_SEED + 2)
    pick = codes[rng.choice(n, min(n, sample), replace=False)]
    hist = np.zeros(65, np.int64)  # (pair of the sample, word) by number of agreeing sign bits
    for s in range(0, len(pick), 256):
        agree = 64 - np.bitwise_count(pick[s:s + 256, None, :] ^ pick[None, :, :])  # (B, S, WORDS)
        upper = np.arange(len(pick))[None, :] > np.arange(s, s + len(agree))[:, None]
        hist += np.bincount(agree[upper].ravel(), minlength=65)
    share = np.arange(65) / 64
    q = math.acos(max(-1.0, min(1.0, threshold))) / math.pi
    disagree = np.arange(65)
    weight = binom.pmf(disagree, 64, q)
    miss_per_word = (1.0 - recall) ** (1.0 / WORDS)
    best = None
    for bits in range(12, 49):
        h = np.exp(_log_comb(64 - disagree, bits) - _log_comb(64, bits))  # table hit, given D
        tables = WORDS * _tables_for(weight, h, miss_per_word)
        collide = float((hist * share ** bits).sum() / max(1, hist.sum()))
        cost = tables * (n * _NS_PER_ITEM + n * (n - 1) / 2 * collide * _NS_PER_CANDIDATE)
        if best is None or cost < best[0]:
            best = (cost, LshPlan(threshold=threshold, bits=bits, tables=tables, recall=recall))
    return best[1]


def _log_comb(n: np.ndarray | int, k: int) -> np.ndarray:
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    return np.where(n >= k, out, -np.inf)


def _tables_for(weight: np.ndarray, hit: np.ndarray, miss: float, limit: int = 100_000) -> int:
    """Fewest tables L with sum_D weight(D) (1 - hit(D))^L <= miss (binary search; monotone in L)."""
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
    out = data[start:start + len(arr) * THUMB_VALUES].reshape(len(arr), THUMB_VALUES).copy()
    if arr.null_count:
        out[~arr.is_valid().to_numpy(zero_copy_only=False)] = 0
    return out


def informative(thumbs: np.ndarray) -> np.ndarray:
    """Rows that are not flat: a flat thumbnail correlates with nothing (annotate's rule gives 0)."""
    return thumbs.max(axis=1) != thumbs.min(axis=1)


def simhash(thumbs: np.ndarray) -> np.ndarray:
    """(N, WORDS) uint64 sign bits of the centred thumbnails against PLANES fixed random hyperplanes."""
    planes = np.random.default_rng(_SEED).standard_normal((THUMB_VALUES, PLANES)).astype(np.float32)
    out = np.empty((len(thumbs), WORDS), dtype=np.uint64)
    for s in range(0, len(thumbs), _CHUNK):
        x = thumbs[s:s + _CHUNK].astype(np.float32)
        x -= x.mean(axis=1, keepdims=True)
        bits = (x @ planes) > 0  # (B, PLANES)
        out[s:s + _CHUNK] = np.packbits(bits, axis=1, bitorder="little").view(np.uint64)
    return out


def distinct(x: np.ndarray) -> np.ndarray:
    """Sorted distinct values (numpy's SIMD sort; np.unique's hash path is slower on large arrays)."""
    x = np.sort(x)
    return x[np.concatenate(([True], x[1:] != x[:-1]))] if len(x) else x


def fold(codes: np.ndarray) -> np.ndarray:
    """One uint64 per code (equal codes, equal folds; unequal ones rarely collide)."""
    with np.errstate(over="ignore"):
        return (codes * _WORD_MIX[None, :]).sum(axis=1, dtype=np.uint64)


def _table_keys(codes: np.ndarray, table: tuple[int, np.uint64]) -> np.ndarray:
    word, mask = table
    return np.bitwise_and(codes[:, word], mask)


PairFilter = Callable[[np.ndarray, np.ndarray], np.ndarray]


def self_candidates(codes: np.ndarray, search: LshPlan, workers: int = 2,
                    keep: PairFilter | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Distinct node pairs (a < b) that share a bucket in at least one table.

    Tables are run word by word: each word's column is copied out once (contiguous, not strided through
    the codes) for all of its tables, and node indices are unpacked only at candidate positions, not for
    every node of every table. `keep(a, b)` (a cheap test, e.g. the pHash radius) runs on each table's
    pairs as they come, so the many pairs it rejects are never collected and deduplicated.
    """
    n = len(codes)
    idx_bits = max(1, int(n - 1).bit_length())
    idx_mask = np.uint64((1 << idx_bits) - 1)
    by_word: dict[int, list[np.uint64]] = {}
    for word, mask in search.masks():
        by_word.setdefault(word, []).append(mask)

    def one_word(word: int) -> np.ndarray:
        column = np.ascontiguousarray(codes[:, word])
        found = []
        for mask in by_word[word]:
            words = mih.bucketed(np.bitwise_and(column, mask), idx_bits)
            out = []
            for i, j in mih.bucket_runs(words, idx_bits):
                a, b = (words[i] & idx_mask).astype(np.int64), (words[j] & idx_mask).astype(np.int64)
                if keep is not None:
                    ok = keep(a, b)
                    a, b = a[ok], b[ok]
                out.append(np.minimum(a, b) * np.int64(n) + np.maximum(a, b))
            if out:
                found.append(distinct(np.concatenate(out)))
        return distinct(np.concatenate(found)) if found else np.empty(0, np.int64)

    parts = mih.map_threads(one_word, sorted(by_word), workers)
    pairs = distinct(np.concatenate([np.empty(0, np.int64), *parts]))
    return pairs // n, pairs % n


def cross_candidates(queries: np.ndarray, codes: np.ndarray, search: LshPlan, workers: int = 2,
                     keep: PairFilter | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (query, index) pairs that share a bucket in at least one table (`keep` as above)."""
    n = len(codes)
    idx_bits = max(1, int(n - 1).bit_length())

    def one(table: tuple[int, np.uint64]) -> np.ndarray:
        words = mih.bucketed(_table_keys(codes, table), idx_bits)
        qi, pos = mih.lookup(words, _table_keys(queries, table), idx_bits)
        hj = (words[pos] & np.uint64((1 << idx_bits) - 1)).astype(np.int64)
        if keep is not None:
            ok = keep(qi, hj)
            qi, hj = qi[ok], hj[ok]
        return qi * np.int64(n) + hj

    pairs = distinct(np.concatenate([np.empty(0, np.int64), *mih.map_threads(one, search.masks(), workers)]))
    return pairs // n, pairs % n

"""Remembering every uid seen so far in 16 bytes a row, to keep each (url, caption) pair once.

Digests are held as sorted numpy runs (their first 8 bytes as the sort key, the last 8 beside),
merged like a binary counter (an LSM tree in miniature). Membership is one binary search per run,
and the full 16 bytes are compared, so two different pairs are never merged. 10M rows cost 160 MB
(plus at most 64 MB while two runs merge); a Python set of the same digests takes about 1 GB.
"""

from __future__ import annotations

import numpy as np

_KEY = np.dtype(">u8")
# Runs stop merging at this many digests, which bounds the transient copy of a merge at 64 MB;
# a lookup then searches len/MAX_RUN runs (about 25 for 100M rows), each a cheap binary search.
MAX_RUN = 4_000_000  # big-endian: numeric order of the key is byte order of the digest


class SeenSet:
    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []  # (hi sorted, lo), hi/lo native uint64

    def __len__(self) -> int:
        return sum(len(hi) for hi, _ in self.runs)

    @property
    def nbytes(self) -> int:
        return sum(hi.nbytes + lo.nbytes for hi, lo in self.runs)

    def first_seen(self, digests: bytes) -> np.ndarray:
        """Mask of the 16-byte digests (concatenated) not seen before, in this call or earlier; remembers
        them."""
        pairs = np.frombuffer(digests, dtype=_KEY).astype(np.uint64).reshape(-1, 2)
        hi, lo = pairs[:, 0], pairs[:, 1]
        order = np.lexsort((lo, hi))
        hi_s, lo_s = hi[order], lo[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = (hi_s[1:] != hi_s[:-1]) | (lo_s[1:] != lo_s[:-1])
        # lexsort is stable, so each group's first element is its earliest row
        keep = order[first]
        hi_u, lo_u = hi_s[first], lo_s[first]
        new = ~self._contains(hi_u, lo_u)
        mask = np.zeros(len(hi), dtype=bool)
        mask[keep[new]] = True
        self._push(hi_u[new], lo_u[new])
        return mask

    def _contains(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        found = np.zeros(len(hi), dtype=bool)
        for run_hi, run_lo in self.runs:
            at = np.minimum(np.searchsorted(run_hi, hi), len(run_hi) - 1)
            same_hi = run_hi[at] == hi
            found |= same_hi & (run_lo[at] == lo)
            for i in np.flatnonzero(
                same_hi & ~found
            ):  # first 8 bytes equal, last 8 not: scan that key's span
                end = np.searchsorted(run_hi, hi[i], side="right")
                found[i] = bool((run_lo[at[i] : end] == lo[i]).any())
        return found

    def _push(self, hi: np.ndarray, lo: np.ndarray) -> None:
        if not len(hi):
            return
        self.runs.append((hi, lo))
        while (
            len(self.runs) > 1
            and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0])
            and len(self.runs[-2][0]) + len(self.runs[-1][0]) <= MAX_RUN
        ):
            top_hi, top_lo = self.runs.pop()
            low_hi, low_lo = self.runs.pop()
            merged_hi = np.concatenate([low_hi, top_hi])
            merged_lo = np.concatenate([low_lo, top_lo])
            del low_hi, low_lo, top_hi, top_lo
            order = np.argsort(merged_hi, kind="stable")
            self.runs.append((merged_hi[order], merged_lo[order]))

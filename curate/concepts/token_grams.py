"""Entries of whole tokens found in a normalized batch: every token k-gram that is an entry.

In the normalized text a token runs from just past a space to the next space inclusive, so the k-gram
at token j is the byte slice from token j's start to token j + k's, and an entry stored with one space
after it is found by looking that slice up (curate.concepts.slice_table): nothing is copied out.

Most slices cannot match, so they are not looked up: an empty token (the padding between captions, the
spaces around punctuation) starts no entry, and a k-gram (k >= 2) is looked up only where its first
token starts some entry of k or more tokens, which the one-token lookup tells at the same time (the
first tokens of longer entries are stored beside the entries). That halves the lookups of a caption.
"""

from __future__ import annotations

import numpy as np

from curate.concepts.slice_table import HashClash, SliceTable
from curate.errors import CurateError

_SPACE = ord(" ")
_TOKEN_BITS = 16
_TOKEN_MASK = (1 << _TOKEN_BITS) - 1  # a longest entry of more tokens is kept as this many


class TokenGrams:
    """Finds the entries made of whole tokens, with one lookup table built for the entry list."""

    def __init__(self, entries: list[bytes], ids: list[int]) -> None:
        """entries: each with one space after its last token; ids: the entry id of each."""
        entry_of: dict[bytes, int] = {}  # the first id of each entry string
        longest: dict[bytes, int] = {}  # first token -> tokens of the longest entry it starts
        for entry, entry_id in zip(entries, ids, strict=True):
            entry_of.setdefault(entry, entry_id)
            tokens = entry.count(b" ")
            if tokens > 1:
                head = entry[: entry.index(b" ") + 1]
                longest[head] = max(longest.get(head, 0), tokens)
        strings = list(entry_of | dict.fromkeys(longest, 0))
        try:
            self.table = SliceTable(strings)
        except HashClash as clash:
            first, second = (strings[i].decode()[:40] for i in (clash.first, clash.second))
            raise CurateError(
                f"entries {first!r}... and {second!r}... hash alike (crafted strings): "
                "remove one from the entry list"
            ) from clash
        # per stored string, one gather: entry id (-1 for a first token only) and its longest entry's tokens
        self._info = np.array(
            [(entry_of.get(s, -1) << _TOKEN_BITS) | min(longest.get(s, 0), _TOKEN_MASK) for s in strings],
            np.int64,
        )
        self._counts = sorted({entry.count(b" ") for entry in entries if entry.count(b" ") > 1})

    def find(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(byte offset where it starts, entry id) of every k-gram of `data` that is an entry."""
        starts = np.flatnonzero(data == _SPACE) + 1  # token starts; the last is the end of the data
        tokens = np.flatnonzero(data[starts[:-1]] != _SPACE)  # non-empty tokens, by index into starts
        slices = self.table.over(data)
        row = slices.find(starts[tokens], starts[tokens + 1])
        known = row >= 0
        tokens, row = tokens[known], row[known]
        info = self._info[row]
        entry, longest = info >> _TOKEN_BITS, info & _TOKEN_MASK
        found = entry >= 0
        at, ids = [starts[tokens[found]]], [entry[found]]
        for k in self._counts:
            first = tokens[(longest >= min(k, _TOKEN_MASK)) & (tokens + k < len(starts))]
            gram = slices.find(starts[first], starts[first + k])
            hit = gram >= 0
            at.append(starts[first[hit]])
            ids.append(self._info[gram[hit]] >> _TOKEN_BITS)
        return np.concatenate(at), np.concatenate(ids)  # k-grams (k >= 2) equal only stored entries

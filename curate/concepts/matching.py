"""Which entries a caption contains: MetaCLIP's substring rule, by token lookups and Aho-Corasick automatons.

Normalization (MetaCLIP `spacing`, plus lower-casing): the text is lower-cased, each of , . ; : ? ! `
gets a space on both sides, tabs and line breaks become spaces, and the whole is padded with one space.
Entry e matches when " e " occurs in the normalized text; the space is left off a side of e that
starts or ends in a script written without spaces (CJK, kana, Thai, Lao, Myanmar, Khmer, Tibetan) or
in punctuation, as MetaCLIP 2 does, so Chinese and Japanese entries match inside unsegmented text.
MetaCLIP matches case-sensitively; curate folds case because word lists (and the default list) are
lower-case while captions start with capitals.

Speed: a batch of captions is normalized as one byte array (curate.concepts.spacing); entries bounded
by spaces are found by hash lookups of token k-grams sliced from those bytes, the rest by automatons
that scan only the captions (and the character runs) they can occur in (see Matcher).
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata

import ahocorasick
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.concepts.entries import EntryList, load_entries
from curate.concepts.spacing import PUNCTUATION, Spaced, space
from curate.concepts.token_grams import TokenGrams
from curate.errors import CurateError

_SEPARATOR = "\x00"
# Captions matched in one pass. Larger blocks are slower per caption, not faster: their temporaries
# (eight bytes per text byte for the hashes) leave the cache, and fresh pages cost more than the work.
_BLOCK_ROWS = 16_384
# Scripts written without spaces between words (code point ranges): entries in them match as substrings.
_UNSPACED_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x0F00, 0x0FFF),  # Tibetan
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x2E80, 0x2FFF),  # CJK radicals, description characters
    (0x3000, 0x30FF),  # CJK punctuation, hiragana, katakana
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x2EBEF),  # CJK ideographs
)


def normalize_array(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Normalized, space-padded texts (nulls become a single space): the strings the automaton scans."""
    return space(texts).array()


def normalize(text: str) -> str:
    """One text normalized and padded, exactly as `normalize_array` does it."""
    return normalize_array(pa.array([text], pa.string()))[0].as_py()


def _unspaced(char: str) -> bool:
    point = ord(char)
    return unicodedata.category(char).startswith("P") or any(lo <= point <= hi for lo, hi in _UNSPACED_RANGES)


def _bounded(char: str) -> bool:
    """Whether the normalized text always has a space beside this entry edge character."""
    return char in PUNCTUATION or not _unspaced(char)


def pattern(entry: str) -> str:
    """The string the automaton looks for: the entry with a space on each side written with spaces."""
    return ("" if _unspaced(entry[0]) else " ") + entry + ("" if _unspaced(entry[-1]) else " ")


class Matcher:
    """Maps captions to the sorted ids of the entries they contain.

    Most entries are bounded by spaces in the normalized text: on a side written with spaces, and on a
    side that is one of PUNCTUATION (normalization puts a space beside each). Such an entry of k
    space-separated tokens occurs exactly when k consecutive tokens of the text join to it, so those
    are found by vectorized hash lookups of token k-grams in a table built once per entry list
    (curate.concepts.token_grams; the padding's empty tokens keep k-grams from spanning two captions).
    Entries written only in scripts without spaces (CJK, Thai, ...) can only occur inside a run of such
    characters, so their automaton scans just those runs; the few left (mixed scripts, other punctuation
    at an edge) go to a second automaton that scans only captions holding a character one of them
    starts with. The scans, not the lookups, cost per character (a root node with thousands of CJK
    children makes each character slow).
    """

    def __init__(self, entries: EntryList) -> None:
        self.size = len(entries.entries)
        bounded: list[bytes] = []
        bounded_ids: list[int] = []
        unspaced, mixed = _Scan(), _Scan()
        for index, entry in enumerate(entries.entries):
            if _bounded(entry[0]) and _bounded(entry[-1]):
                bounded.append((entry + " ").encode())  # with the space after its last token
                bounded_ids.append(index)
            elif " " not in entry and all(map(_unspaced, entry)):
                unspaced.add(entry, index, set(entry))
            else:
                mixed.add(pattern(entry), index, {entry[0]})
        self._grams = TokenGrams(bounded, bounded_ids)
        self._shift = max(self.size - 1, 1).bit_length()
        # unspaced entries: captions holding a character of their alphabet, each run of other characters
        # made one separator; the rest: captions holding one of their first characters, as they are
        self._unspaced = unspaced.finish(shrink=True)
        self._mixed = mixed.finish(shrink=False)

    def match(self, captions: pa.Array | pa.ChunkedArray) -> pa.ListArray:
        """list<int32> per caption: the entries it contains, each once, ascending ([] when none)."""
        if len(captions) <= _BLOCK_ROWS:
            return self._match_block(captions)
        blocks = range(0, len(captions), _BLOCK_ROWS)
        return pa.concat_arrays([self._match_block(captions.slice(at, _BLOCK_ROWS)) for at in blocks])

    def _match_block(self, captions: pa.Array | pa.ChunkedArray) -> pa.ListArray:
        spaced = space(captions)
        rows = len(spaced.offsets) - 1
        if rows == 0:
            return pa.array([], pa.list_(pa.int32()))
        padded = spaced.array()
        found = [self._match_grams(spaced)]
        found += [scan.match(padded, spaced) for scan in (self._unspaced, self._mixed) if scan is not None]
        # one key per (caption, entry), sorted caption-major with ids ascending
        keys = np.concatenate([(row << self._shift) | ids for row, ids in found])
        keys.sort()  # in place; np.unique's extra passes cost 5x more at 600k matches
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys
        ids = (keys & ((1 << self._shift) - 1)).astype(np.int32)
        offsets = np.searchsorted(keys >> self._shift, np.arange(rows + 1), side="left").astype(np.int32)
        return pa.ListArray.from_arrays(offsets, pa.array(ids))

    def _match_grams(self, spaced: Spaced) -> tuple[np.ndarray, np.ndarray]:
        """(caption row, entry id) of every run of tokens that is an entry bounded by spaces."""
        at, ids = self._grams.find(spaced.data)
        return np.searchsorted(spaced.offsets, at, side="right") - 1, ids


class _Scan:
    """One automaton and the regex that narrows what it scans (see Matcher)."""

    def __init__(self) -> None:
        self.automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        self.chars: set[str] = set()

    def add(self, found_as: str, index: int, chars: set[str]) -> None:
        self.automaton.add_word(found_as, index)
        self.chars |= chars

    def finish(self, shrink: bool) -> _Scan | None:
        """Ready to match captions holding one of `chars`; `shrink`: scan only runs of those characters."""
        if len(self.automaton) == 0:
            return None
        self.automaton.make_automaton()
        body = "".join(re.escape(c) for c in sorted(self.chars))
        self.select, self.outside = f"[{body}]", (f"[^{body}]+" if shrink else None)
        # a caption holding one of `chars` holds a byte >= the smallest of their UTF-8 lead bytes: when
        # that byte is not ASCII's, a numpy pass over the bytes rules out most captions before the regex
        self.lead = min(c.encode()[0] for c in self.chars)
        return self

    def match(self, padded: pa.Array, spaced: Spaced) -> tuple[np.ndarray, np.ndarray]:
        """(caption row, entry id) of every automaton match: the texts joined by NUL, one scan."""
        rows, texts = np.arange(len(padded)), padded
        if self.lead >= 0xC0:
            wide = np.flatnonzero(spaced.data >= self.lead)
            rows = np.unique(np.searchsorted(spaced.offsets, wide, side="right") - 1)
            texts = padded.take(pa.array(rows, pa.int64()))
        rows = rows[pc.match_substring_regex(texts, self.select).to_numpy(zero_copy_only=False)]
        texts = padded.take(pa.array(rows, pa.int64()))
        if self.outside is not None:
            texts = pc.replace_substring_regex(texts, self.outside, _SEPARATOR)
        if len(rows) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        text = _SEPARATOR.join(texts.to_pylist())
        # character offset just past each text's separator
        ends = np.cumsum(pc.add(pc.utf8_length(texts), 1).to_numpy(zero_copy_only=False))
        # (end offset, entry id) pairs, flattened straight into an array: no list of tuples per match
        pairs = np.fromiter(itertools.chain.from_iterable(self.automaton.iter(text)), dtype=np.int64)
        pairs = pairs.reshape(-1, 2)
        return rows[np.searchsorted(ends, pairs[:, 0], side="right")].astype(np.int64), pairs[:, 1]


@functools.lru_cache(maxsize=2)
def matcher_for(path: str | None, sha256: str) -> Matcher:
    """One automaton per entry list and process (building it for 500,000 entries takes about a second).

    `sha256` is the digest the caller planned with: a list edited since is an error, not a silent mix.
    """
    entries = load_entries(path)
    if entries.sha256 != sha256:
        raise CurateError(
            f"entry list {entries.source} changed while annotating (sha256 "
            f"{entries.sha256[:12]}, planned {sha256[:12]}): rerun `curate annotate`"
        )
    return Matcher(entries)

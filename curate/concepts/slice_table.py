"""Exact lookup of byte slices in a fixed set of strings, with a hash table built once.

Concept matching looks up every token k-gram of every caption batch in the same 500,000 entries. A
hash table rebuilt per call (Arrow's `index_in`) costs as much as the lookups for a 10,000-caption
shard; this one is built when the entry list is loaded and only read afterwards.

Hashes are polynomial over the bytes modulo 2**64, so every slice of a batch is hashed at once from
prefix sums: hash(a, b) = (S[b] - S[a]) * P**-a with S[j] = sum of c_t * P**t for t < j (P odd, hence
invertible modulo 2**64). A hash is only a candidate: each hit is checked byte for byte, so a collision
can cost time but never a wrong match.
"""

from __future__ import annotations

import numpy as np

# odd 64-bit multipliers; the first whose hashes of the stored strings are all distinct is used
_BASES = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93)
_EMPTY = -1
# the first n bytes of a little-endian 8-byte word, n = 0..8
_TAIL_MASKS = np.array([(1 << (8 * n)) - 1 for n in range(9)], np.uint64)


class HashClash(ValueError):
    """Two stored strings hash alike under every base; names their indices."""

    def __init__(self, first: int, second: int) -> None:
        super().__init__(f"strings {first} and {second} share a hash under every base")
        self.first, self.second = first, second


class SliceTable:
    """Maps byte slices to the index of the equal stored string, or -1.

    Thread-safe for lookups: the power tables grow by replacing whole arrays, never in place.
    """

    def __init__(self, strings: list[bytes]) -> None:
        self.bytes = np.frombuffer(b"".join(strings), np.uint8)
        lengths = np.fromiter(map(len, strings), np.int64, len(strings))
        self.offsets = np.concatenate(([0], np.cumsum(lengths)))
        for base in _BASES:
            self._base, self._inverse = np.uint64(base), np.uint64(pow(base, -1, 1 << 64))
            self._powers = (np.ones(1, np.uint64), np.ones(1, np.uint64))
            keys = self.over(self.bytes).hashes(self.offsets[:-1], self.offsets[1:])
            order = np.argsort(keys, kind="stable")
            clash = np.flatnonzero(keys[order][1:] == keys[order][:-1])
            if not len(clash):
                break
        else:  # only crafted strings (e.g. a Thue-Morse word and its complement) collide under every base
            first, second = sorted(order[clash[0] : clash[0] + 2].tolist())
            raise HashClash(first, second)
        self.words = _words(self.bytes)
        self.lengths = lengths
        self.first_words = self.words[self.offsets[:-1]] & _TAIL_MASKS[np.minimum(lengths, 8)]
        self.bits = max(4, (4 * max(len(strings), 1) - 1).bit_length())  # load factor <= 1/4
        self.keys, self.values = _build(keys, self.bits)

    def over(self, data: np.ndarray) -> Slices:
        """Lookups of slices of `data` (uint8), sharing one pass over its bytes."""
        return Slices(self, data)

    def powers(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """P**t and P**-t for t < size, grown to the next power of two when a batch is longer."""
        powers = self._powers
        if len(powers[0]) < size:
            n = 1 << (size - 1).bit_length()
            with np.errstate(over="ignore"):
                forward = np.full(n, self._base, np.uint64)
                backward = np.full(n, self._inverse, np.uint64)
                forward[0] = backward[0] = 1
                powers = (np.cumprod(forward), np.cumprod(backward))
            self._powers = powers
        return powers


class Slices:
    """One batch's bytes, ready for lookups: prefix sums and 8-byte words computed once."""

    def __init__(self, table: SliceTable, data: np.ndarray) -> None:
        self.table, self.data = table, data
        forward, self._backward = table.powers(max(len(data), 1))
        with np.errstate(over="ignore"):
            weighted = data.astype(np.uint64)
            weighted += np.uint64(1)  # so that a zero byte still counts
            weighted *= forward[: len(data)]
            self._prefix = np.zeros(len(data) + 1, np.uint64)
            np.cumsum(weighted, out=self._prefix[1:])
        self._words: np.ndarray | None = None

    def hashes(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """uint64 hash of each slice data[starts[i]:ends[i]] (mixed, so any bits can index a table)."""
        with np.errstate(over="ignore"):
            return _mix((self._prefix[ends] - self._prefix[starts]) * self._backward[starts])

    def find(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """int64 per slice: index of the stored string equal to data[starts[i]:ends[i]], else -1."""
        table = self.table
        keys = self.hashes(starts, ends)
        found = np.full(len(keys), _EMPTY, np.int64)
        slots = _home(keys, table.bits)
        values = table.values[slots]
        pending = np.flatnonzero(values != _EMPTY)  # at load <= 1/4, most slices end here
        slots, values = slots[pending], values[pending]
        mask = (1 << table.bits) - 1
        while len(pending):  # linear probing, every query a step at a time, until its key or a free slot
            hit = table.keys[slots] == keys[pending]
            found[pending[hit]] = values[hit]
            slots = (slots[~hit] + 1) & mask
            values = table.values[slots]
            going = values != _EMPTY
            pending, slots, values = pending[~hit][going], slots[going], values[going]
        candidates = np.flatnonzero(found != _EMPTY)
        wrong = ~self._equal(starts[candidates], ends[candidates], found[candidates])
        found[candidates[wrong]] = _EMPTY
        return found

    def _equal(self, starts: np.ndarray, ends: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Whether each slice equals its candidate string, compared eight bytes at a time (most entries
        are one word: their length and first word are kept beside the table, so one gather each)."""
        table = self.table
        if self._words is None:
            self._words = _words(self.data)
        text = self._words
        lengths = ends - starts
        head = text[starts] & _TAIL_MASKS[np.minimum(lengths, 8)]
        equal = (lengths == table.lengths[index]) & (head == table.first_words[index])
        at = np.flatnonzero(equal & (lengths > 8))
        left, right, todo = starts[at] + 8, table.offsets[index[at]] + 8, lengths[at] - 8
        while len(at):
            tail = _TAIL_MASKS[np.minimum(todo, 8)]
            same = ((text[left] ^ table.words[right]) & tail) == 0
            equal[at[~same]] = False
            more = same & (todo > 8)
            at, left, right, todo = at[more], left[more] + 8, right[more] + 8, todo[more] - 8
        return equal


def _mix(keys: np.ndarray) -> np.ndarray:
    """A bijective finalizer (splitmix64's): a polynomial hash's low bits depend on few input bits."""
    with np.errstate(over="ignore"):
        keys = (keys ^ (keys >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        keys = (keys ^ (keys >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return keys ^ (keys >> np.uint64(31))


def _words(data: np.ndarray) -> np.ndarray:
    """The little-endian 8-byte word starting at each byte (over a copy padded with 8 zero bytes)."""
    padded = np.concatenate((data, np.zeros(8, np.uint8)))
    return np.ndarray((len(data) + 1,), "<u8", padded, strides=(1,))


def _home(keys: np.ndarray, bits: int) -> np.ndarray:
    return (keys >> np.uint64(64 - bits)).astype(np.int64)


def _build(keys: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """An open-addressing table (linear probing) of distinct keys: slot -> key, slot -> index or -1."""
    table_keys = np.zeros(1 << bits, np.uint64)
    values = np.full(1 << bits, _EMPTY, np.int32)
    mask = (1 << bits) - 1
    pending = np.arange(len(keys))
    slots = _home(keys, bits)
    while len(pending):  # each round, every free slot takes the first key that wants it
        free = values[slots] == _EMPTY
        taken, first = np.unique(slots[free], return_index=True)
        placed = np.flatnonzero(free)[first]
        values[taken] = pending[placed]
        table_keys[taken] = keys[pending[placed]]
        left = np.ones(len(pending), bool)
        left[placed] = False
        pending, slots = pending[left], (slots[left] + 1) & mask
    return table_keys, values

"""The concept matcher's persistent lookup table: exact answers, whatever the hashes do."""

import numpy as np
import pytest

from curate.concepts.entries import EntryList
from curate.concepts.matching import Matcher
from curate.concepts.slice_table import HashClash, SliceTable
from curate.errors import CurateError


def thue_morse(rounds: int, letters: bytes) -> bytes:
    """A Thue-Morse word over two letters: it and its complement hash alike modulo 2**64 for any base."""
    bits = [0]
    for _ in range(rounds):
        bits += [1 - b for b in bits]
    return bytes(letters[b] for b in bits)


def test_every_slice_is_found_exactly_as_a_dictionary_would():
    rng = np.random.default_rng(7)
    alphabet = np.frombuffer(b"ab c\xc3\xa9", np.uint8)
    stored = sorted({bytes(rng.choice(alphabet, rng.integers(1, 12))) for _ in range(3000)})
    table = SliceTable(stored)
    data = rng.choice(alphabet, 20_000)
    starts = rng.integers(0, len(data), 50_000)
    ends = np.minimum(starts + rng.integers(0, 12, len(starts)), len(data))
    where = {s: i for i, s in enumerate(stored)}
    expected = [where.get(bytes(data[a:b]), -1) for a, b in zip(starts, ends, strict=True)]
    found = table.over(data).find(starts, ends)
    assert found.tolist() == expected
    assert (found >= 0).sum() > 5_000  # the data holds many stored strings, not only misses


def test_a_slice_that_only_hashes_like_a_stored_string_is_not_found():
    word = thue_morse(11, b"ab")
    twin = thue_morse(11, b"ba")
    table = SliceTable([word, b"x"])
    data = np.frombuffer(twin + b" " + word, np.uint8)
    starts, ends = np.array([0, len(twin) + 1]), np.array([len(twin), len(data)])
    slices = table.over(data)
    assert slices.hashes(starts[:1], ends[:1]) == slices.hashes(starts[1:], ends[1:])
    assert slices.find(starts, ends).tolist() == [-1, 0]


def test_stored_strings_that_clash_under_every_base_are_named():
    with pytest.raises(HashClash) as clash:
        SliceTable([b"y", thue_morse(11, b"ab"), thue_morse(11, b"ba")])
    assert (clash.value.first, clash.value.second) == (1, 2)
    words = ("a", thue_morse(11, b"ab").decode(), thue_morse(11, b"ba").decode())
    listed = EntryList(words, (None,) * 3, "t")
    with pytest.raises(CurateError, match="remove one from the entry list"):
        Matcher(listed)


def test_batches_longer_than_any_before_grow_the_power_tables():
    table = SliceTable([b"cat ", b"black cat "])
    for size in (16, 5_000, 70_000):
        text = (b"a " * size) + b"black cat "
        data = np.frombuffer(text, np.uint8)
        starts = np.array([len(text) - 10, len(text) - 4, 0])
        ends = np.array([len(text), len(text), 2])
        assert table.over(data).find(starts, ends).tolist() == [1, 0, -1]

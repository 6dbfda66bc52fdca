"""Concept matching (MetaCLIP's substring rule) and the `concepts` signal written by `curate annotate`."""

from __future__ import annotations

import gzip
import random

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from concept_pool import write_pool

from curate.annotate import annotate
from curate.concepts import matching
from curate.concepts.entries import load_entries
from curate.concepts.matching import Matcher, normalize, pattern
from curate.errors import CurateError


def _entries(tmp_path, text: str, name: str = "entries.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_entries(str(path))


def test_normalization_is_metaclips_spacing_with_case_folded():
    assert normalize("Red fox, by the sea.\tNice!") == " red fox ,  by the sea .  nice !  "
    assert normalize("a`b;c:d?e") == " a ` b ; c : d ? e "
    assert normalize("line\nbreak\r") == " line break  "
    assert normalize(None) == "  "  # a null caption matches nothing


def test_entries_match_whole_words_and_cjk_inside_text(tmp_path):
    entries = _entries(tmp_path, "red\nfox\nred fox\nSt. Louis\n猫\tzh\nphoto.\n")
    assert entries.entries == ("red", "fox", "red fox", "st .  louis", "猫", "photo .")
    assert pattern("猫") == "猫" and pattern("photo .") == " photo ." and pattern("red fox") == " red fox "
    got = Matcher(entries).match(
        pa.array(
            ["A RED fox in St. Louis", "我的猫很好", None, "reddish foxes", "red, red.", "", "my photo."]
        )
    )
    assert got.to_pylist() == [[0, 1, 2, 3], [4], [], [], [0], [], [5]]
    assert Matcher(entries).match(pa.array(["nothing", None])).to_pylist() == [
        [],
        [],
    ]  # a batch without a match
    assert Matcher(entries).match(pa.array([], pa.string())).to_pylist() == []


@pytest.mark.parametrize("block_rows", [None, 97], ids=["one-block", "blocks-of-97"])
def test_matcher_agrees_with_a_direct_loop_over_entries(tmp_path, monkeypatch, block_rows):
    """Token k-gram lookups, the automaton and its prefilter together equal the substring rule itself,
    whether a call is matched in one pass or in blocks (a long call is split to stay in cache)."""
    if block_rows:
        monkeypatch.setattr(matching, "_BLOCK_ROWS", block_rows)
    rng = random.Random(7)
    words = [
        "cat",
        "dog",
        "red",
        "blue",
        "sky",
        "sea",
        "big",
        "car",
        "猫",
        "犬",
        "the",
        "a",
        "(big",
        "u.s.",
        "-x",
    ]
    marks = ["", ",", ".", "!", "", ")", "  ", "\t"]
    entries = sorted(
        {" ".join(rng.sample(words, rng.randint(1, 3))) for _ in range(60)} | {"st. louis", "a."}
    )
    listed = _entries(tmp_path, "\n".join(entries))
    captions = [
        " ".join(rng.choice(words) + rng.choice(marks) for _ in range(rng.randint(0, 8))) for _ in range(800)
    ]
    captions += ["St. Louis, a.", "猫犬", "big(big", "u.s.a"]
    got = Matcher(listed).match(pa.chunked_array([captions[:500], captions[500:]])).to_pylist()
    texts = [normalize(c) for c in captions]
    direct = [[i for i, e in enumerate(listed.entries) if pattern(e) in text] for text in texts]
    assert got == direct
    assert sum(map(len, got)) > 500  # the loop found plenty to agree on


def test_entry_file_format_languages_comments_duplicates_and_errors(tmp_path):
    listed = _entries(tmp_path, "# a comment\nHotel\ten\n\nhotel\tde\nKreis\tde\nfox\n")
    assert listed.entries == ("hotel", "kreis", "fox") and listed.langs == ("en", "de", None)
    table = listed.table()
    assert table.column("id").to_pylist() == [0, 1, 2] and table.column("lang").to_pylist() == [
        "en",
        "de",
        None,
    ]
    same = _entries(tmp_path, "hotel\ten\nkreis\tde\nfox\n", "b.txt")
    assert same.sha256 == listed.sha256  # the digest is of the normalized list, not the file's bytes
    gz = tmp_path / "c.txt.gz"
    gz.write_bytes(gzip.compress("hotel\ten\nkreis\tde\nfox\n".encode()))
    assert load_entries(str(gz)).sha256 == listed.sha256
    with pytest.raises(CurateError, match="line 2 has 3 tab-separated columns"):
        _entries(tmp_path, "ok\nbad\ten\textra\n", "bad.txt")
    with pytest.raises(CurateError, match="does not exist"):
        load_entries(str(tmp_path / "missing.txt"))
    with pytest.raises(CurateError, match="holds no entries"):
        _entries(tmp_path, "# only a comment\n\n", "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(CurateError, match="not UTF-8"):
        load_entries(str(tmp_path / "latin1.txt"))


def test_default_list_is_multilingual_and_has_no_function_words():
    listed = load_entries()
    langs = set(listed.langs)
    assert len(listed.entries) > 100_000 and {"en", "de", "zh", "ja", "ar", "hi", "ru"} <= langs
    index = {e: i for i, e in enumerate(listed.entries)}
    assert (
        listed.langs[index["beach"]] == "en" and "the" not in index and "的" not in index and "a" not in index
    )
    found = Matcher(listed).match(pa.array(["A red circle on a beach", "海滩上的红色圆圈", "the of and"]))
    named = [{listed.entries[i] for i in ids} for ids in found.to_pylist()]
    assert named[0] == {"red", "circle", "beach"} and "红色" in named[1] and named[2] == set()


def _signal(root: str) -> pa.Table:
    """The signal files only: the *.parquet glob leaves the _entries folder out."""
    return duckdb.sql(f"SELECT * FROM read_parquet('{root}/signals/concepts/*.parquet')").to_arrow_table()


def test_annotate_writes_the_concepts_signal_and_the_entry_table(tmp_path):
    root = str(tmp_path / "ds")
    rows = [
        (f"https://e.example/{i}.jpg", caption, True)
        for i, caption in enumerate(["a red fox", "Blue sky.", "nothing here", None, "red sky"] * 3)
    ]
    uids = write_pool(root, rows, per_shard=6)
    first = tmp_path / "first.txt"
    first.write_text("red\nfox\nsky\tde\n")
    summary = annotate(root, signals="concepts", entries=str(first), workers=1)
    assert summary.done == 3 and summary.stats["concepts"]["no_concept"] == 6
    table = _signal(root)
    assert table.schema.field("concept_ids").type == pa.list_(pa.int32())
    got = dict(zip(table.column("uid").to_pylist(), table.column("concept_ids").to_pylist(), strict=True))
    assert [got[u] for u in uids[:5]] == [[0, 1], [2], [], [], [0, 2]]
    listed = load_entries(str(first))
    meta = pq.read_schema(f"{root}/signals/concepts/00000.parquet").metadata
    assert meta[b"curate.concepts.entries_sha256"] == listed.sha256.encode()
    entries = pq.read_table(f"{root}/signals/concepts/_entries/entries.parquet")
    assert entries.to_pylist() == [
        {"id": 0, "entry": "red", "lang": None},
        {"id": 1, "entry": "fox", "lang": None},
        {"id": 2, "entry": "sky", "lang": "de"},
    ]
    assert annotate(root, signals="concepts", entries=str(first), workers=1).done == 0  # resumable
    second = tmp_path / "second.txt"
    second.write_text("sky\nnothing\n")
    assert (
        annotate(root, signals="concepts", entries=str(second), workers=1).done == 3
    )  # another list: recomputed
    table = _signal(root)
    got = dict(zip(table.column("uid").to_pylist(), table.column("concept_ids").to_pylist(), strict=True))
    assert [got[u] for u in uids[:5]] == [[], [0], [1], [], [0]]
    assert pq.read_table(f"{root}/signals/concepts/_entries/entries.parquet").column("entry").to_pylist() == [
        "sky",
        "nothing",
    ]
    with pytest.raises(CurateError, match="does not exist"):
        annotate(root, signals="concepts", entries=str(tmp_path / "nope.txt"))

"""curate manifest: every format (plain and .gz), real data, malformed input, columns, dedupe, takedown."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import subprocess
import sys
import zlib
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from conftest import shared_path

from curate.cli import main
from curate.dataset import sidecar
from curate.errors import CurateError
from curate.manifest import SUMMARY, build_manifest, jsonread, readers, repeats
from curate.manifest.repeats import SeenSet
from curate.schema import MANIFEST_SCHEMA, TAKEDOWN_SCHEMA, make_uid

# url, caption: unicode, quotes, commas, a tab-free caption with a newline only where the format allows
ROWS = [
    ("http://a.example/1.jpg", "a red fox, jumping"),
    ("https://b.example/2.png", 'she said "hi"'),
    ("HTTPS://c.example/3.webp", "日本語のキャプション"),
    ("  http://d.example/4.jpg  ", "url with spaces around"),
    ("", "no url here"),
    ("www.e.example/5.jpg", "no scheme"),
    ("ftp://f.example/6.jpg", "wrong scheme"),
    ("http://a.example/1.jpg", "a red fox, jumping"),  # duplicate of the first row
    ("http://a.example/1.jpg", "same url, other caption"),
]
EXPECTED = [  # (url, caption, status) after normalisation, duplicates left out
    ("http://a.example/1.jpg", "a red fox, jumping", "ok"),
    ("https://b.example/2.png", 'she said "hi"', "ok"),
    ("HTTPS://c.example/3.webp", "日本語のキャプション", "ok"),
    ("http://d.example/4.jpg", "url with spaces around", "ok"),
    (None, "no url here", "missing_url"),
    ("www.e.example/5.jpg", "no scheme", "invalid_url"),
    ("ftp://f.example/6.jpg", "wrong scheme", "invalid_url"),
    ("http://a.example/1.jpg", "same url, other caption", "ok"),
]


def _write(path: Path, data: bytes) -> Path:
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def _encode(fmt: str, rows: list[tuple[str, str]]) -> bytes:
    if fmt == "txt":
        return "".join(f"{u}\n" for u, _ in rows).encode()
    if fmt in ("csv", "tsv"):
        buf = io.StringIO()
        if fmt == "csv":
            w = csv.writer(buf)
            w.writerow(["url", "caption"])
            w.writerows(rows)
        else:
            buf.write("URL\tTEXT\n" + "".join(f"{u}\t{c}\n" for u, c in rows))
        return buf.getvalue().encode()
    if fmt == "json":
        return json.dumps(
            [{"image_url": u, "alt": c} for u, c in rows], indent=1, ensure_ascii=False
        ).encode()
    if fmt == "jsonl":
        return "".join(
            json.dumps({"url": u, "caption": c}, ensure_ascii=False) + "\n" for u, c in rows
        ).encode()
    raise AssertionError(fmt)


def _write_input(tmp_path: Path, fmt: str, gz: bool, rows=ROWS) -> Path:
    name = f"in.{fmt}" + (".gz" if gz else "")
    if fmt == "parquet":
        path = tmp_path / name
        buf = io.BytesIO()
        pq.write_table(pa.table({"URL": [u for u, _ in rows], "TEXT": [c for _, c in rows]}), buf)
        return _write(path, buf.getvalue())
    return _write(tmp_path / name, _encode(fmt, rows))


def _read(out: Path) -> pa.Table:
    return pads.dataset(out, format="parquet", exclude_invalid_files=True).to_table()


def _rows(out: Path) -> list[tuple]:
    return [(r["url"], r["caption"], r["status"]) for r in _read(out).to_pylist()]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "jsonl", "parquet"])
def test_every_format_gives_the_same_manifest(tmp_path, fmt, gz):
    src = _write_input(tmp_path, fmt, gz)
    summary = build_manifest([str(src)], str(tmp_path / "out"))
    table = _read(tmp_path / "out")
    assert table.schema.names == MANIFEST_SCHEMA.names
    assert _rows(tmp_path / "out") == EXPECTED
    assert table.column("uid").to_pylist() == [make_uid(u or "", c) for u, c, _ in EXPECTED]
    assert summary["rows_read"] == len(ROWS)
    assert summary["duplicates"] == 1
    assert summary["status"] == {"ok": 5, "missing_url": 1, "invalid_url": 2}
    assert summary["inputs"][0]["gzip"] is gz
    assert json.loads(Path(sidecar(str(tmp_path / "out"), SUMMARY)).read_text()) == summary


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_txt_one_url_a_line(tmp_path, gz):
    src = _write(
        tmp_path / ("urls.txt.gz" if gz else "urls.txt"),
        b"\xef\xbb\xbfhttp://x.example/a.jpg\r\n\n  https://x.example/b.jpg\nnot a url\nhttp://x.example/a.jpg\n",
    )
    summary = build_manifest([str(src)], str(tmp_path / "out"))
    assert _rows(tmp_path / "out") == [
        ("http://x.example/a.jpg", None, "ok"),
        ("https://x.example/b.jpg", None, "ok"),
        ("not a url", None, "invalid_url"),
    ]
    assert summary["duplicates"] == 1


def test_reads_the_real_10000_row_file_as_is(tmp_path):
    src = shared_path("data", "url-lists", "test_10000.parquet")
    summary = build_manifest([str(src)], str(tmp_path / "out"))
    table = _read(tmp_path / "out")
    source = pq.read_table(src)
    assert summary["inputs"][0]["url_col"] == "URL" and summary["inputs"][0]["caption_col"] == "TEXT"
    assert table.num_rows == summary["rows_written"] == source.num_rows - summary["duplicates"]
    assert table.column("caption").to_pylist() == source.column("TEXT").to_pylist()
    invalid = [r for r in table.to_pylist() if r["status"] != "ok"]
    assert [(r["url"], r["status"]) for r in invalid] == [("UNLIKELY", "invalid_url")]
    assert summary["status"]["invalid_url"] == 1
    assert all(r["uid"] == make_uid(r["url"], r["caption"]) for r in table.to_pylist())
    assert len(set(table.column("uid").to_pylist())) == table.num_rows


def test_batch_uids_equal_make_uid(tmp_path):
    pairs = [
        ("http://x/é", None),
        ("", "only a caption"),
        ("http://x/a", ""),
        ("http://x/b", "日本 \x00 nul"),
        ("http://x/c", "emoji 🦊"),
        ("http://x/ü?q=\u2028x", "line\nbreak"),
    ]
    src = _write(
        tmp_path / "x.jsonl", "".join(json.dumps({"url": u, "caption": c}) + "\n" for u, c in pairs).encode()
    )
    build_manifest([str(src)], str(tmp_path / "o"))
    table = _read(tmp_path / "o")
    assert table.column("uid").to_pylist() == [make_uid(u, c) for u, c in pairs]


def test_uid_is_blake2b_128_of_url_unit_separator_caption():
    expected = hashlib.blake2b("http://x/é.jpg\x1fun chat".encode(), digest_size=16).hexdigest()
    assert make_uid("http://x/é.jpg", "un chat") == expected
    assert make_uid("http://x/a.jpg", None) == make_uid("http://x/a.jpg", "")


def test_parts_dedupe_across_files_and_parts(tmp_path):
    a = _write(
        tmp_path / "a.jsonl",
        "".join(
            json.dumps({"url": f"http://h/{i}.jpg", "caption": f"c{i}"}) + "\n" for i in range(25)
        ).encode(),
    )
    b = _write(
        tmp_path / "b.jsonl",
        "".join(
            json.dumps({"url": f"http://h/{i}.jpg", "caption": f"c{i}"}) + "\n" for i in range(20, 30)
        ).encode(),
    )
    summary = build_manifest([str(a), str(b)], str(tmp_path / "out"), rows_per_part=7)
    parts = sorted(p.name for p in (tmp_path / "out").glob("part-*.parquet"))
    assert parts == [f"part-{i:05d}.parquet" for i in range(5)]
    assert [pq.read_metadata(tmp_path / "out" / p).num_rows for p in parts] == [7, 7, 7, 7, 2]
    assert _read(tmp_path / "out").column("url").to_pylist() == [f"http://h/{i}.jpg" for i in range(30)]
    assert summary["duplicates"] == 5
    assert (
        summary["rows_read"] == summary["rows_written"] + summary["duplicates"] + summary["takedown_skipped"]
    )


def test_seen_set_compares_all_16_bytes():
    seen = SeenSet()
    a, b, c = b"\x01" * 8 + b"\x02" * 8, b"\x01" * 8 + b"\x03" * 8, b"\x01" * 8 + b"\x04" * 8
    assert seen.first_seen(a + c + a).tolist() == [True, True, False]
    assert seen.first_seen(b).tolist() == [True]  # same first 8 bytes as a and c: still new
    assert seen.first_seen(c + b + a + b"\x09" * 16).tolist() == [False, False, False, True]
    assert len(seen) == 4 and seen.nbytes == 64


def test_dedupe_across_many_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "BATCH_ROWS", 10)
    monkeypatch.setattr(repeats, "MAX_RUN", 40)  # many capped runs, as on a 100M-row input
    lines = [f"http://h/{i % 137}.jpg\n" for i in range(1000)]
    src = _write(tmp_path / "u.txt", "".join(lines).encode())
    summary = build_manifest([str(src)], str(tmp_path / "out"), rows_per_part=50)
    assert summary["rows_written"] == 137 and summary["duplicates"] == 1000 - 137
    assert _read(tmp_path / "out").column("url").to_pylist() == [f"http://h/{i}.jpg" for i in range(137)]


def test_folder_glob_and_fsspec_url_inputs(tmp_path):
    folder = tmp_path / "lists"
    (folder / "sub").mkdir(parents=True)
    _write(folder / "1.txt", b"http://h/1.jpg\n")
    _write(folder / "sub" / "2.csv.gz", b"url,caption\nhttp://h/2.jpg,two\n")
    _write(folder / "README.md", b"not a url list")
    _write(folder / ".hidden.txt", b"http://h/hidden.jpg\n")
    build_manifest([str(folder)], str(tmp_path / "o1"))
    assert [r[0] for r in _rows(tmp_path / "o1")] == ["http://h/1.jpg", "http://h/2.jpg"]
    build_manifest([str(folder / "**" / "*.csv.gz")], str(tmp_path / "o2"))
    assert [r[0] for r in _rows(tmp_path / "o2")] == ["http://h/2.jpg"]

    mem = fsspec.filesystem("memory")
    mem.pipe("/lists/urls.jsonl", b'{"url": "http://h/m.jpg", "caption": "in memory"}\n')
    try:
        summary = build_manifest(["memory://lists/urls.jsonl"], "memory://out")
        assert summary["inputs"][0]["path"] == "memory://lists/urls.jsonl"
        with mem.open("/out/part-00000.parquet", "rb") as fh:
            assert pq.read_table(fh).column("url").to_pylist() == ["http://h/m.jpg"]
        assert json.loads(mem.cat(sidecar("/out", SUMMARY)))["rows_written"] == 1
    finally:
        mem.rm("/lists", recursive=True)
        mem.rm("/out", recursive=True)


def test_gzip_is_found_by_its_bytes_not_its_name(tmp_path):
    src = tmp_path / "really_gzip.csv"
    src.write_bytes(gzip.compress(b"url,caption\nhttp://h/1.jpg,one\n"))
    summary = build_manifest([str(src)], str(tmp_path / "o"))
    assert summary["inputs"][0]["gzip"] is True
    assert _rows(tmp_path / "o") == [("http://h/1.jpg", "one", "ok")]


def test_kept_column_type_is_set_by_the_first_file(tmp_path):
    first = _write(tmp_path / "a.jsonl", b'{"url": "http://h/1.jpg", "w": 640}\n')
    second = _write(tmp_path / "b.csv", b"url,w\nhttp://h/2.jpg,800\nhttp://h/3.jpg,wide\n")
    summary = build_manifest([str(first), str(second)], str(tmp_path / "o"), keep_cols=["w"])
    table = _read(tmp_path / "o")
    assert table.schema.field("w").type == pa.int64()
    assert table.column("w").to_pylist() == [640, 800, None]
    [example] = summary["malformed"]["examples"]
    assert (example["kind"], example["file"], example["row"]) == ("bad_value", str(second), 2)


def test_format_option_overrides_extension(tmp_path):
    src = _write(tmp_path / "urls.list", b"http://h/1.jpg\n")
    with pytest.raises(CurateError, match="--format"):
        build_manifest([str(src)], str(tmp_path / "o1"))
    build_manifest([str(src)], str(tmp_path / "o2"), fmt="txt")
    assert _rows(tmp_path / "o2") == [("http://h/1.jpg", None, "ok")]


def test_column_detection_and_override(tmp_path):
    src = _write(tmp_path / "x.csv", b"id,link,title,alt\n1,http://h/1.jpg,the title,the alt\n")
    build_manifest([str(src)], str(tmp_path / "o1"))
    assert _rows(tmp_path / "o1") == [("http://h/1.jpg", "the alt", "ok")]
    build_manifest([str(src)], str(tmp_path / "o2"), caption_col="title")
    assert _rows(tmp_path / "o2") == [("http://h/1.jpg", "the title", "ok")]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_headerless_tsv_like_conceptual_captions(tmp_path, gz):
    src = _write(
        tmp_path / ("cc3m.tsv.gz" if gz else "cc3m.tsv"),
        b"a bus at the station\thttp://h/1.jpg\nsunset over the sea\thttps://h/2.jpg\n",
    )
    summary = build_manifest([str(src)], str(tmp_path / "o"))
    assert _rows(tmp_path / "o") == [
        ("http://h/1.jpg", "a bus at the station", "ok"),
        ("https://h/2.jpg", "sunset over the sea", "ok"),
    ]
    assert (summary["inputs"][0]["url_col"], summary["inputs"][0]["caption_col"]) == ("url", "caption")


def test_missing_column_names_the_columns_that_exist(tmp_path):
    src = _write(tmp_path / "x.csv", b"id,where,words\n1,http://h/1.jpg,hi\n")
    with pytest.raises(CurateError, match=r"no URL column.*'id', 'where', 'words'.*--url-col"):
        build_manifest([str(src)], str(tmp_path / "o1"))
    with pytest.raises(
        CurateError, match=r"no column 'TEXT' \(--caption-col\); its columns are: 'id', 'where'"
    ):
        build_manifest([str(src)], str(tmp_path / "o2"), url_col="where", caption_col="TEXT")
    with pytest.raises(CurateError, match=r"no column 'WIDTH' \(--keep-cols\)"):
        build_manifest([str(src)], str(tmp_path / "o3"), url_col="where", keep_cols=["WIDTH"])


def test_cli_reports_user_errors_in_one_line(tmp_path):
    src = _write(tmp_path / "x.csv", b"id,where\n1,http://h/1.jpg\n")
    proc = subprocess.run(
        [sys.executable, "-m", "curate", "manifest", str(src), "-o", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "its columns are: 'id', 'where'" in proc.stderr


def test_cli_prints_summary_and_writes_it(tmp_path, capsys):
    src = _write(
        tmp_path / "x.jsonl", b'{"url": "http://h/1.jpg", "caption": "a", "w": 3}\n{"url": ""}\n{"url": \n'
    )
    assert (
        main(["manifest", str(src), "-o", str(tmp_path / "o"), "--keep-cols", "w", "--rows-per-part", "1"])
        == 0
    )
    out = capsys.readouterr().out
    assert "wrote 2 rows in 2 part(s)" in out
    assert "ok 1, missing_url 1, invalid_url 0" in out
    assert "malformed input: bad_json 1" in out and "x.jsonl:3: bad_json" in out
    assert json.loads(Path(sidecar(str(tmp_path / "o"), SUMMARY)).read_text())["columns"] == [
        *MANIFEST_SCHEMA.names,
        "w",
    ]


def test_kept_columns_keep_their_types(tmp_path):
    pq.write_table(
        pa.table(
            {
                "URL": ["http://h/1.jpg", "http://h/2.jpg"],
                "TEXT": ["a", "b"],
                "WIDTH": pa.array([640, 800], pa.int32()),
                "similarity": pa.array([0.31, 0.28], pa.float32()),
            }
        ),
        tmp_path / "laion.parquet",
    )
    build_manifest([str(tmp_path / "laion.parquet")], str(tmp_path / "o1"), keep_cols=["WIDTH", "similarity"])
    t = _read(tmp_path / "o1")
    assert (
        t.schema.field("manifest_WIDTH").type == pa.int32()
        and t.schema.field("similarity").type == pa.float32()
    )
    assert t.column("manifest_WIDTH").to_pylist() == [640, 800]

    _write(
        tmp_path / "laion.csv",
        b"URL,TEXT,WIDTH,similarity,note\nhttp://h/1.jpg,a,640,0.31,x\nhttp://h/2.jpg,b,,0.28,\n",
    )
    build_manifest(
        [str(tmp_path / "laion.csv")], str(tmp_path / "o2"), keep_cols=["WIDTH", "similarity", "note"]
    )
    t = _read(tmp_path / "o2")
    assert (
        t.schema.field("manifest_WIDTH").type == pa.int64()
        and t.schema.field("similarity").type == pa.float64()
    )
    assert t.column("manifest_WIDTH").to_pylist() == [640, None]
    assert t.column("note").to_pylist() == ["x", ""]


def test_kept_value_that_breaks_the_type_becomes_null_and_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "CSV_BLOCK_BYTES", 64)
    body = "".join(f"http://h/{i}.jpg,c{i},{i}\n" for i in range(20)) + "http://h/x.jpg,cx,wide\n"
    _write(tmp_path / "x.csv", ("url,caption,n\n" + body).encode())
    summary = build_manifest([str(tmp_path / "x.csv")], str(tmp_path / "o"), keep_cols=["n"])
    t = _read(tmp_path / "o")
    assert t.schema.field("n").type == pa.int64()
    assert t.column("n").to_pylist() == list(range(20)) + [None]
    assert summary["malformed"]["counts"] == {"bad_value": 1}
    assert summary["malformed"]["examples"][0]["row"] == 21


def test_keep_cols_cannot_shadow_manifest_columns(tmp_path):
    src = _write(tmp_path / "x.csv", b"URL,TEXT,Status\nhttp://h/1.jpg,a,200\n")
    with pytest.raises(CurateError, match="clashes with the manifest column 'status'"):
        build_manifest([str(src)], str(tmp_path / "o"), keep_cols=["Status"])


def test_bad_json_line_is_recorded_with_its_line(tmp_path):
    src = _write(
        tmp_path / "x.jsonl",
        b'{"url": "http://h/1.jpg", "caption": "one"}\n'
        b'{"url": "http://h/2.jpg", "caption": \n'
        b"[1, 2]\n"
        b'{"url": "http://h/3.jpg", "caption": 3}\n',
    )
    summary = build_manifest([str(src)], str(tmp_path / "o"))
    assert _rows(tmp_path / "o") == [("http://h/1.jpg", "one", "ok"), ("http://h/3.jpg", "3", "ok")]
    assert summary["malformed"]["counts"] == {"bad_json": 1, "not_an_object": 1}
    assert [(e["kind"], e["line"]) for e in summary["malformed"]["examples"]] == [
        ("bad_json", 2),
        ("not_an_object", 3),
    ]
    assert summary["rows_not_read"] == 2


def test_jsonl_blocks_keep_every_good_line_around_bad_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonread, "BATCH_ROWS", 4)
    lines = [
        json.dumps({"url": f"http://h/{i}.jpg", "caption": f"c{i}", "n": i}).encode() for i in range(1, 17)
    ]
    lines[6] = b'{"url": "http://h/7.jpg", "caption": '  # bad JSON on line 7
    lines[9] = b'{"url": "http://h/10.jpg", "caption": "c10", "n": "wide"}'  # n changes type on line 10
    lines[10] = b'{"url": "http://h/11.jpg", "caption": "caf\xe9", "n": 11}'  # not UTF-8 on line 11
    summary = build_manifest(
        [str(_write(tmp_path / "x.jsonl", b"\n".join(lines)))], str(tmp_path / "o"), keep_cols=["n"]
    )
    table = _read(tmp_path / "o")
    assert table.schema.field("n").type == pa.int64()
    expected_n = [i for i in range(1, 17) if i != 7]
    assert table.column("url").to_pylist() == [f"http://h/{i}.jpg" for i in expected_n]
    assert table.column("n").to_pylist() == [None if i == 10 else i for i in expected_n]
    assert table.column("caption").to_pylist()[9] == "caf\ufffd"
    assert summary["malformed"]["counts"] == {"bad_json": 1, "bad_value": 1, "invalid_utf8": 1}
    assert sorted((e["kind"], e["line"]) for e in summary["malformed"]["examples"]) == [
        ("bad_json", 7),
        ("bad_value", 10),
        ("invalid_utf8", 11),
    ]


@pytest.mark.parametrize("fmt", ["txt", "csv", "jsonl", "json"])
def test_non_utf8_bytes_are_replaced_and_recorded(tmp_path, fmt):
    bad = b"caf\xe9"
    data = {
        "txt": b"http://h/1.jpg\nhttp://h/" + bad + b".jpg\n",
        "csv": b"url,caption\nhttp://h/1.jpg,ok\nhttp://h/2.jpg," + bad + b"\n",
        "jsonl": b'{"url": "http://h/1.jpg", "caption": "ok"}\n{"url": "http://h/2.jpg", "caption": "'
        + bad
        + b'"}\n',
        "json": b'[{"url": "http://h/1.jpg", "caption": "ok"},\n {"url": "http://h/2.jpg", "caption": "'
        + bad
        + b'"}]',
    }[fmt]
    summary = build_manifest([str(_write(tmp_path / f"x.{fmt}", data))], str(tmp_path / "o"))
    table = _read(tmp_path / "o")
    assert table.num_rows == 2
    text = table.column("url" if fmt == "txt" else "caption").to_pylist()[1]
    assert "caf\ufffd" in text
    assert summary["malformed"]["counts"] == {"invalid_utf8": 1}
    example = summary["malformed"]["examples"][0]
    assert example["file"].endswith(f"x.{fmt}")
    assert (example["line"], example["row"]) == ((None, 2) if fmt == "csv" else (2, None))


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_ragged_csv_rows_are_recorded_with_their_line(tmp_path, gz):
    src = _write(
        tmp_path / ("x.csv.gz" if gz else "x.csv"),
        b'url,caption\nhttp://h/1.jpg,"one\non two lines"\nhttp://h/2.jpg,two,extra\n'
        b"http://h/3.jpg\nhttp://h/4.jpg,four\n",
    )
    summary = build_manifest([str(src)], str(tmp_path / "o"))
    assert _rows(tmp_path / "o") == [
        ("http://h/1.jpg", "one\non two lines", "ok"),
        ("http://h/4.jpg", "four", "ok"),
    ]
    assert summary["malformed"]["counts"] == {"ragged_row": 2}
    assert [(e["line"], e["message"]) for e in summary["malformed"]["examples"]] == [
        (4, "3 fields where the header has 2: 'http://h/2.jpg,two,extra'"),
        (5, "1 fields where the header has 2: 'http://h/3.jpg'"),
    ]
    assert summary["rows_not_read"] == 2


@pytest.mark.parametrize("name", ["e.txt", "e.csv", "e.jsonl", "e.json", "e.parquet", "e.csv.gz"])
def test_empty_file_is_recorded_and_others_still_read(tmp_path, name):
    empty = _write(tmp_path / name, b"")
    good = _write(tmp_path / "good.txt", b"http://h/1.jpg\n")
    summary = build_manifest([str(empty), str(good)], str(tmp_path / "o"))
    assert _rows(tmp_path / "o") == [("http://h/1.jpg", None, "ok")]
    assert summary["malformed"]["counts"] == {"empty_file": 1}
    assert summary["malformed"]["examples"][0]["file"] == str(empty)


def test_corrupt_parquet_is_recorded_and_an_empty_file_still_counts(tmp_path):
    corrupt = _write(tmp_path / "corrupt.parquet", b"PAR1 this is not really parquet")
    empty = _write(tmp_path / "empty.jsonl", b"\n\n")
    summary = build_manifest([str(corrupt), str(empty)], str(tmp_path / "o"))
    assert summary["malformed"]["counts"] == {"unreadable_file": 1, "empty_file": 1}
    assert [e["file"] for e in summary["malformed"]["examples"]] == [str(corrupt), str(empty)]
    table = pq.read_table(tmp_path / "o" / "part-00000.parquet")
    assert table.num_rows == 0 and table.schema.names == MANIFEST_SCHEMA.names


def test_truncated_gzip_keeps_rows_read_and_records_the_file(tmp_path):
    body = gzip.compress("".join(f"http://h/{i}.jpg\n" for i in range(400_000)).encode())
    src = tmp_path / "cut.txt.gz"
    src.write_bytes(body[: len(body) // 2])
    summary = build_manifest([str(src)], str(tmp_path / "o"))
    assert summary["malformed"]["counts"] == {"unreadable_file": 1}
    assert 0 < summary["rows_written"] < 400_000
    assert _read(tmp_path / "o").num_rows == summary["rows_written"]


def test_json_array_streams_elements_across_chunk_borders(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonread, "CHUNK_BYTES", 7)
    rows = [
        {
            "url": f"http://h/{i}.jpg",
            "caption": f"caption {i} \u00e9\u65e5",
            "n": i,
            "ok": i % 2 == 0,
            "pi": 3.25,
        }
        for i in range(40)
    ]
    src = _write(tmp_path / "x.json", json.dumps(rows, indent=2, ensure_ascii=False).encode())
    summary = build_manifest([str(src)], str(tmp_path / "o"), keep_cols=["n", "ok", "pi"])
    table = _read(tmp_path / "o")
    assert table.select(["url", "caption", "n", "ok", "pi"]).to_pylist() == rows
    assert summary["malformed"]["counts"] == {}


def test_json_array_syntax_error_keeps_earlier_rows_and_names_the_line(tmp_path):
    src = _write(
        tmp_path / "x.json",
        b'[\n{"url": "http://h/1.jpg"},\n{"url": "http://h/2.jpg"},\n'
        b'{"url": http://h/3.jpg},\n{"url": "http://h/4.jpg"}\n]\n',
    )
    summary = build_manifest([str(src)], str(tmp_path / "o"))
    assert [r[0] for r in _rows(tmp_path / "o")] == ["http://h/1.jpg", "http://h/2.jpg"]
    [example] = summary["malformed"]["examples"]
    assert example["kind"] == "bad_json" and example["line"] == 4
    assert "rest of this file is not read" in example["message"]


def test_json_that_is_not_an_array_is_recorded(tmp_path):
    src = _write(tmp_path / "x.json", b'{"url": "http://h/1.jpg"}\n')
    summary = build_manifest([str(src)], str(tmp_path / "o"))
    assert summary["malformed"]["counts"]["bad_json"] == 1
    assert ".jsonl" in summary["malformed"]["examples"][0]["message"]


def test_takedown_requests_are_honoured_and_counted(tmp_path):
    takedown = tmp_path / "takedown.parquet"
    pq.write_table(
        pa.table(
            {
                "kind": ["domain", "url", "uid"],
                "value": [
                    "b.example",
                    "http://a.example/1.jpg",
                    make_uid("https://c.example/3.webp", "three"),
                ],
                "reason": ["owner request"] * 3,
                "requested_at": pa.array([None] * 3, pa.timestamp("ms", tz="UTC")),
                "uids_purged": pa.array([0] * 3, pa.int64()),
            },
            schema=TAKEDOWN_SCHEMA,
        ),
        takedown,
    )
    src = _write(
        tmp_path / "x.jsonl",
        "".join(
            json.dumps({"url": u, "caption": c}) + "\n"
            for u, c in [
                ("http://a.example/1.jpg", "one"),
                ("http://img.b.example/2.jpg", "two"),
                ("https://c.example/3.webp", "three"),
                ("https://c.example/3.webp", "kept: other caption"),
                ("http://notb.example/4.jpg", "kept"),
            ]
        ).encode(),
    )
    summary = build_manifest([str(src)], str(tmp_path / "o"), takedown=str(takedown))
    assert [r[1] for r in _rows(tmp_path / "o")] == ["kept: other caption", "kept"]
    assert summary["takedown_skipped"] == 3


def test_existing_manifest_is_not_overwritten_by_accident(tmp_path):
    src = _write(tmp_path / "a.txt", b"http://h/1.jpg\nhttp://h/2.jpg\n")
    build_manifest([str(src)], str(tmp_path / "o"), rows_per_part=1)
    src2 = _write(tmp_path / "b.txt", b"http://h/3.jpg\n")
    with pytest.raises(CurateError, match="--overwrite"):
        build_manifest([str(src2)], str(tmp_path / "o"))
    Path(sidecar(str(tmp_path / "o"), SUMMARY)).unlink()  # as a run stopped before its end leaves it
    with pytest.raises(CurateError, match="unfinished manifest"):
        build_manifest([str(src2)], str(tmp_path / "o"))
    build_manifest([str(src2)], str(tmp_path / "o"), overwrite=True)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [".curate", "part-00000.parquet"]
    assert _rows(tmp_path / "o") == [("http://h/3.jpg", None, "ok")]


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(CurateError, match="does not exist"):
        build_manifest([str(tmp_path / "nope.csv")], str(tmp_path / "o"))
    with pytest.raises(CurateError, match="matches no file"):
        build_manifest([str(tmp_path / "*.csv")], str(tmp_path / "o"))


# ---------------------------------------------------------------- hostile input: no traceback, no lost row


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_json_nested_100000_deep_is_counted_and_every_other_row_kept(tmp_path, fmt):
    deep = '{"url": "http://h/deep.jpg", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    lines = [json.dumps({"url": f"http://h/{i}.jpg"}) for i in range(3)]
    lines.insert(2, deep)
    text = "\n".join(lines) + "\n" if fmt == "jsonl" else "[\n" + ",\n".join(lines) + "\n]\n"
    src = _write(tmp_path / f"x.{fmt}", text.encode())
    assert main(["manifest", str(src), "-o", str(tmp_path / "o")]) == 0
    summary = json.loads(Path(sidecar(str(tmp_path / "o"), SUMMARY)).read_text())
    assert [r[0] for r in _rows(tmp_path / "o")] == ["http://h/0.jpg", "http://h/1.jpg", "http://h/2.jpg"]
    assert summary["malformed"]["counts"] == {"too_deep": 1} and summary["rows_not_read"] == 1
    assert summary["malformed"]["examples"][0]["line"] == (3 if fmt == "jsonl" else 4)


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_a_csv_row_over_1_mib_is_counted_and_every_later_row_kept(tmp_path, fmt):
    sep = "," if fmt == "csv" else "\t"
    good = [f"http://h/{i}.jpg{sep}caption {i}" for i in range(40)]
    huge = f"http://h/huge.jpg{sep}" + "x" * (2 << 20)
    lines = [
        "url" + sep + "caption",
        *good[:10],
        f"http://h/ragged.jpg{sep}a{sep}b",
        *good[10:20],
        huge,
        *good[20:30],
        f"http://h/ragged2.jpg{sep}a{sep}b",
        *good[30:],
    ]
    if fmt == "csv":  # a quoted field over 1 MiB spanning lines, then a quoted caption with a newline
        lines += ['http://h/huge2.jpg,"' + "y\n" * (1 << 20) + '"', 'http://h/last.jpg,"two\nlines"']
    src = _write(tmp_path / f"x.{fmt}", ("\n".join(lines) + "\n").encode())
    summary = build_manifest([str(src)], str(tmp_path / "o"))
    expected = [(f"http://h/{i}.jpg", f"caption {i}") for i in range(40)]
    if fmt == "csv":
        expected.append(("http://h/last.jpg", "two\nlines"))
    assert [(u, c) for u, c, _ in _rows(tmp_path / "o")] == expected
    counts = summary["malformed"]["counts"]
    assert counts == {"oversized_row": 2 if fmt == "csv" else 1, "ragged_row": 2}
    assert summary["rows_not_read"] == sum(counts.values())
    oversized = [e for e in summary["malformed"]["examples"] if e["kind"] == "oversized_row"]
    assert oversized[0]["line"] == 23 and "http://h/huge.jpg" in oversized[0]["message"]


@pytest.mark.parametrize("fmt", ["txt", "csv", "tsv", "jsonl", "json"])
def test_a_truncated_gzip_keeps_every_whole_row_before_the_cut(tmp_path, fmt):
    urls = [f"http://h/{i}.jpg" for i in range(3000)]
    if fmt == "txt":
        text = "".join(f"{u}\n" for u in urls)
    elif fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        text = f"url{sep}caption\n" + "".join(f"{u}{sep}caption {i}\n" for i, u in enumerate(urls))
    elif fmt == "jsonl":
        text = "".join(json.dumps({"url": u}) + "\n" for u in urls)
    else:
        text = "[\n" + ",\n".join(json.dumps({"url": u}) for u in urls) + "\n]\n"
    packed = gzip.compress(text.encode())
    src = tmp_path / f"cut.{fmt}.gz"
    src.write_bytes(packed[: len(packed) // 2])
    readable = zlib.decompressobj(31).decompress(packed[: len(packed) // 2])
    whole_lines = readable[: readable.rfind(b"\n") + 1].count(b"\n")  # the lines before the cut
    kept = urls[: whole_lines - (fmt in ("csv", "tsv", "json"))]  # less the header row or the "[" line
    assert 0 < len(kept) < len(urls)
    summary = build_manifest([str(src)], str(tmp_path / "o"))
    assert [r[0] for r in _rows(tmp_path / "o")] == kept
    assert summary["malformed"]["counts"] == {"unreadable_file": 1}
    assert f"stopped after {len(kept)} rows" in summary["malformed"]["examples"][0]["message"]


# ---------------------------------------------------------------- outputs that other tools read


def test_laion_WIDTH_and_HEIGHT_stay_apart_from_the_shards_width_in_duckdb(tmp_path):
    """DuckDB names are case-insensitive: a kept WIDTH beside the shard's (resized) width must be renamed."""
    import duckdb
    from download_server import FaultServer

    from curate.download import DownloadConfig, download

    with FaultServer() as server:
        pq.write_table(
            pa.table(
                {
                    "URL": [server.url(f"/img/{i}.jpg") for i in range(3)],
                    "TEXT": [f"photo {i}" for i in range(3)],
                    "WIDTH": [640, 641, 642],
                    "HEIGHT": [480, 481, 482],
                }
            ),
            tmp_path / "laion.parquet",
        )
        build_manifest([str(tmp_path / "laion.parquet")], str(tmp_path / "m"), keep_cols=["WIDTH", "HEIGHT"])
        download(
            str(tmp_path / "m"),
            str(tmp_path / "ds"),
            DownloadConfig(allow_networks=("127.0.0.1/32",), threads=4),
            workers=1,
        )
    shards = str(tmp_path / "ds" / "shards" / "[0-9]*.parquet")
    names = duckdb.sql(f"SELECT * FROM read_parquet('{shards}') LIMIT 0").columns
    assert len({n.lower() for n in names}) == len(names)  # no two columns that DuckDB cannot tell apart
    got = duckdb.sql(
        f"SELECT manifest_WIDTH, manifest_HEIGHT, width, height, status FROM read_parquet('{shards}') "
        "ORDER BY manifest_WIDTH"
    ).fetchall()
    assert got == [(640 + i, 480 + i, 256, 256, "success") for i in range(3)]  # the list's sizes; the resized


def test_kept_columns_that_differ_only_in_case_are_refused(tmp_path):
    src = _write(tmp_path / "x.csv", b"url,note,NOTE\nhttp://h/1.jpg,a,b\n")
    with pytest.raises(CurateError, match="differ only in case"):
        build_manifest([str(src)], str(tmp_path / "o"), keep_cols=["note", "NOTE"])


def test_a_kept_column_all_null_in_the_first_file_takes_the_type_of_later_files(tmp_path):
    """pandas writes an all-None column as Arrow's null type; later files' values must not be lost."""
    first = pa.table(
        {
            "url": [f"http://h/a{i}.jpg" for i in range(30)],
            "similarity": pa.nulls(30),
            "n": pa.array(range(30), pa.int32()),
        }
    )
    later = pa.table(
        {
            "url": [f"http://h/b{i}.jpg" for i in range(120)],
            "similarity": [0.25 + i / 1000 for i in range(120)],
            "n": [i * 0.5 for i in range(120)],
        }
    )
    pq.write_table(first, tmp_path / "a.parquet")
    pq.write_table(later, tmp_path / "b.parquet")
    summary = build_manifest(
        [str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")],
        str(tmp_path / "o"),
        keep_cols=["similarity", "n"],
        rows_per_part=20,
    )  # parts written before the widening
    assert summary["malformed"]["counts"] == {}
    parts = sorted((tmp_path / "o").glob("part-*.parquet"))
    assert len(parts) == 8 and {str(pq.read_schema(p).remove_metadata()) for p in parts} == {
        str(pq.read_schema(parts[-1]).remove_metadata())
    }  # one schema in every part
    t = _read(tmp_path / "o")
    assert t.schema.field("similarity").type == pa.float64() and t.schema.field("n").type == pa.float64()
    assert t.column("similarity").to_pylist() == [None] * 30 + later.column("similarity").to_pylist()
    assert t.column("n").to_pylist() == list(range(30)) + later.column("n").to_pylist()


def test_a_folder_of_img2dataset_output_reads_only_its_url_lists_and_logs_the_rest(tmp_path, caplog):
    out = tmp_path / "i2d"
    (out / "00000").mkdir(parents=True)
    pq.write_table(
        pa.table({"url": ["http://h/1.jpg", "http://h/2.jpg"], "caption": ["one", "two"]}),
        out / "00000.parquet",
    )
    (out / "00000_stats.json").write_text(
        json.dumps({"count": 2, "successes": 2, "status_dict": {"success": 2}})
    )
    for key, caption in (("000000000", "one"), ("000000001", "two")):  # the "files" output format
        (out / "00000" / f"{key}.jpg").write_bytes(b"\xff\xd8\xff")
        (out / "00000" / f"{key}.txt").write_text(caption)
        (out / "00000" / f"{key}.json").write_text(json.dumps({"url": "http://h/1.jpg", "key": key}))
    (out / "more.txt").write_text("http://h/3.jpg\n")  # a URL list beside them is still read
    with caplog.at_level("WARNING", logger="curate.manifest.inputs"):
        summary = build_manifest([str(out)], str(tmp_path / "m"))
    assert [f["path"] for f in summary["inputs"]] == [str(out / "00000.parquet"), str(out / "more.txt")]
    assert [r[0] for r in _rows(tmp_path / "m")] == ["http://h/1.jpg", "http://h/2.jpg", "http://h/3.jpg"]
    assert summary["malformed"]["counts"] == {}
    logged = caplog.text
    assert (
        "skipped 5 files that are not URL lists" in logged
        and "00000_stats.json (img2dataset shard stats)" in logged
    )
    assert "000000001.txt (caption or metadata of an image" in logged

"""`curate sql` and curate.inspect.sql: views over a real dataset, errors, formats, read-only, fsspec URLs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from inspect_dataset import RECIPES, shared_dataset

from curate.cli import main
from curate.dataset import stats_files
from curate.inspect import sql
from curate.schema import SHARD_SCHEMA


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> dict:
    return shared_dataset(tmp_path_factory)


def _query(root: str, query: str) -> list[tuple]:
    con = sql.connect(root)
    try:
        return con.execute(query).fetchall()
    finally:
        sql.close(con)


def _fingerprint(root: str) -> dict[str, str]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


def test_view_counts_agree_with_the_shard_stats_files(ds):
    root = ds["root"]
    per_shard = dict(_query(root, "SELECT shard, count(*) FROM samples GROUP BY 1"))
    status = dict(_query(root, "SELECT status, count(*) FROM samples GROUP BY 1"))
    markers = [Path(p) for p in stats_files(str(Path(root, "shards")))]
    assert len(markers) == len(per_shard) == 2
    summed: dict[str, int] = {}
    for path in markers:
        data = json.loads(path.read_text())
        assert per_shard[path.name.split(".")[0]] == data["rows"]
        for key, value in data["status"].items():
            summed[key] = summed.get(key, 0) + value
    # The takedown turned downloaded rows into skipped ones after the stats files were written.
    purged = _query(root, "SELECT sum(uids_purged) FROM takedowns")[0][0]
    assert purged == 1
    assert status == {**summed, "success": summed["success"] - purged, "skipped": purged}
    assert status == {"success": 25, "failed": 6, "skipped": 1}
    counts = _query(
        root,
        "SELECT (SELECT count(*) FROM manifest), (SELECT count(*) FROM samples), "
        "(SELECT count(*) FROM images), (SELECT count(*) FROM signals)",
    )[0]
    assert counts == (32, 32, 32, 32)
    for recipe in RECIPES:
        table = pq.read_table(Path(root, "decisions", f"{recipe}.parquet"))
        kept = sum(table.column("keep").to_pylist())
        assert _query(
            root, f"SELECT count(*), count(*) FILTER (WHERE keep) FROM decisions WHERE recipe = '{recipe}'"
        ) == [(table.num_rows, kept)]


def test_samples_leave_out_image_bytes_and_images_carry_them(ds):
    con, infos = sql.open_views(ds["root"])
    try:
        cols = {i.name: [c for c, _ in i.columns] for i in infos}
        assert "image" not in cols["samples"] and "image" in cols["images"]
        assert cols["samples"][:2] == ["shard", "uid"]
        uid = ds["roles"]["kept"][0]
        data = con.execute("SELECT image FROM images WHERE uid = ?", [uid]).fetchall()[0][0]
        assert data == ds["samples"][0].image
    finally:
        sql.close(con)


def test_signals_decisions_clusters_overlap_views(ds):
    root, roles = ds["root"], ds["roles"]
    de = roles["kept"][14]  # the German caption
    assert _query(
        root, f"SELECT language, nsfw_image IS NOT NULL, caption_words FROM signals WHERE uid = '{de}'"
    ) == [("de", True, 8)]
    assert dict(_query(root, "SELECT recipe, count(*) FROM decisions GROUP BY 1")) == {r: 32 for r in RECIPES}
    small = roles["small"][0]
    assert _query(root, f"SELECT recipe, keep, reasons FROM decisions WHERE uid = '{small}' ORDER BY 1") == [
        ("datacomp_basic", False, ["image_too_small"]),
        ("strict", False, ["image_too_small"]),
    ]
    near = roles["near_dup"][0]
    assert _query(root, f"SELECT duplicate_kind, representative_uid FROM clusters WHERE uid = '{near}'") == [
        ("near", roles["kept"][1])
    ]
    assert _query(root, "SELECT uid, benchmark, eval_id, match_kind FROM overlap") == [
        (roles["bench"][0], "shapes", "circle/0007.jpg", "image")
    ]
    assert _query(
        root, "SELECT benchmark, count(*), count(*) FILTER (WHERE overlapping) FROM eval_images GROUP BY 1"
    ) == [("shapes", 4, 1)]
    assert _query(root, "SELECT kind, value, uids_purged FROM takedowns") == [("domain", "gone.example", 1)]


def test_missing_parts_are_empty_views_with_their_documented_columns(tmp_path):
    root = tmp_path / "partial"
    (root / "manifest").mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "uid": ["a" * 32],
                "url": ["https://x.example/a.jpg"],
                "caption": ["c"],
                "status": ["ok"],
                "page_url": ["https://x.example/"],
            }
        ),
        root / "manifest/part-00000.parquet",
    )
    con, infos = sql.open_views(str(root))
    try:
        by_name = {i.name: i for i in infos}
        assert [c for c, _ in by_name["manifest"].columns] == ["uid", "url", "caption", "status", "page_url"]
        assert [c for c, _ in by_name["samples"].columns] == ["shard"] + [
            f.name for f in SHARD_SCHEMA if f.name != "image"
        ]
        for name in (
            "samples",
            "images",
            "signals",
            "signals_nsfw",
            "clusters",
            "overlap",
            "decisions",
            "takedowns",
        ):
            assert by_name[name].files == 0
            assert con.execute(f"SELECT count(*) FROM {name}").fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM signals WHERE nsfw_image > 0.5").fetchall() == [(0,)]
        assert "no files yet: empty until `curate download`" in sql.schema_text(infos)
    finally:
        sql.close(con)


def test_signals_view_takes_new_sets_and_new_columns(ds, tmp_path):
    import shutil

    root = tmp_path / "grown"
    shutil.copytree(ds["root"], root)
    uids = [s.uid for s in ds["samples"]]
    (root / "signals/aesthetics").mkdir()
    pq.write_table(
        pa.table(
            {"uid": uids, "aesthetic_score": [float(i) for i in range(len(uids))], "width": [1] * len(uids)}
        ),
        root / "signals/aesthetics/00000.parquet",
    )
    # A newer annotate adds a column to one shard of the `language` set only.
    lang = pq.read_table(root / "signals/language/00001.parquet")
    pq.write_table(
        lang.append_column("script", pa.array(["Latn"] * lang.num_rows)),
        root / "signals/language/00001.parquet",
    )
    widths = [
        pq.read_table(p, columns=["width"]).column("width")
        for p in (root / "signals/image").glob("*.parquet")
    ]
    with_width = sum(len(w) - w.null_count for w in widths)
    rows = _query(
        str(root),
        "SELECT count(*), sum(aesthetic_score), count(script), count(aesthetics_width), "
        "count(width) FROM signals",
    )
    assert rows == [(32, float(sum(range(32))), lang.num_rows, 32, with_width)]
    # Each set is also a view of its own, without the joins.
    assert _query(str(root), "SELECT count(*), max(aesthetic_score) FROM signals_aesthetics") == [(32, 31.0)]
    assert _query(str(root), "SELECT count(*) FROM signals_nsfw") == [(32,)]


def test_damaged_file_is_named_not_a_traceback(ds, tmp_path, capsys):
    import shutil

    root = tmp_path / "damaged"
    shutil.copytree(ds["root"], root)
    (root / "signals/nsfw/00001.parquet").write_bytes(b"PAR1 this is not parquet")
    assert main(["sql", str(root), "SELECT count(*) FROM signals_nsfw"]) == 2
    err = capsys.readouterr().err
    assert (
        "cannot open the `signals_nsfw` view" in err and "00001.parquet" in err and "curate annotate" in err
    )
    assert "Traceback" not in err


def test_cli_query_formats(ds, tmp_path, capsys):
    root = ds["root"]
    query = "SELECT status, count(*) AS n FROM samples GROUP BY 1 ORDER BY 1"
    assert main(["sql", root, query]) == 0
    out = capsys.readouterr().out
    assert "failed   6" in out and "success  25" in out and "skipped  1" in out and "(3 rows)" in out
    assert main(["sql", root, query, "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        '"status","n"',
        '"failed",6',
        '"skipped",1',
        '"success",25',
    ]
    assert (
        main(
            [
                "sql",
                root,
                "SELECT uid, reasons FROM decisions WHERE recipe = 'strict' AND NOT keep",
                "--format",
                "json",
                "-o",
                str(tmp_path / "d.jsonl"),
            ]
        )
        == 0
    )
    lines = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    decided = pq.read_table(Path(root, "decisions/strict.parquet")).to_pylist()
    assert {x["uid"]: x["reasons"] for x in lines} == {
        d["uid"]: d["reasons"] for d in decided if not d["keep"]
    }
    assert (
        main(
            [
                "sql",
                root,
                "SELECT uid, image FROM images",
                "--format",
                "parquet",
                "-o",
                str(tmp_path / "i.parquet"),
            ]
        )
        == 0
    )
    assert pq.read_table(tmp_path / "i.parquet").num_rows == 32
    assert main(["sql", root, "SELECT 1", "--format", "parquet"]) == 2
    assert "add -o FILE.parquet" in capsys.readouterr().err


def test_cli_opens_the_views_a_query_names(ds, capsys):
    assert sql.referenced_views("SELECT * FROM Samples s JOIN signals_nsfw n USING (uid)") == {
        "samples",
        "signals_nsfw",
    }
    assert main(["sql", ds["root"], "SELECT count(*) AS n FROM signals_language", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ['"n"', "32"]
    assert main(["sql", ds["root"], "SHOW TABLES", "--format", "csv"]) == 0  # names no view: all are opened
    assert set(capsys.readouterr().out.split()) >= {'"name"', '"samples"', '"decisions"', '"signals_nsfw"'}


def test_bad_query_prints_duckdb_message_and_the_views(ds, capsys):
    assert main(["sql", ds["root"], "SELECT no_such_column FROM samples"]) == 2
    err = capsys.readouterr().err
    assert 'Referenced column "no_such_column" not found' in err
    assert "Traceback" not in err
    assert "samples(shard, uid, url, caption, status, error_class" in err
    assert "decisions(recipe, uid, keep, reasons)" in err
    assert main(["sql", ds["root"], "SELEC 1"]) == 2
    assert "Parser Error" in capsys.readouterr().err


def test_schema_flag_lists_views_and_columns(ds, capsys):
    assert main(["sql", ds["root"], "--schema"]) == 0
    out = capsys.readouterr().out
    for view in sql.VIEW_NAMES:
        assert f"\n{view}  -- " in "\n" + out
    assert "    nsfw_text_terms  VARCHAR[]" in out and "    image  BLOB" in out


@pytest.mark.parametrize(
    "statement",
    [
        "COPY (SELECT 1) TO '{root}/manifest/part-00000.parquet'",
        "CREATE TABLE t AS SELECT * FROM samples",
        "ATTACH '{root}/x.duckdb'",
        "INSTALL httpfs",
        "EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{root}/manifest/part-00000.parquet'",
        "SELECT 1; COPY (SELECT 1 AS x) TO '{root}/x.csv'",
    ],
)
def test_cli_refuses_writes(ds, capsys, statement):
    before = _fingerprint(ds["root"])
    assert main(["sql", ds["root"], statement.format(root=ds["root"])]) == 2
    assert "curate sql is read-only" in capsys.readouterr().err
    assert _fingerprint(ds["root"]) == before


def test_connection_cannot_write_the_dataset_or_anything_else(ds, tmp_path):
    root = ds["root"]
    before = _fingerprint(root)
    con = sql.connect(root)
    target = f"{root}/manifest/part-00000.parquet"
    attempts = [
        f"COPY (SELECT 1 AS x) TO '{target}' (FORMAT parquet, USE_TMP_FILE false)",
        f"COPY (SELECT 1 AS x) TO 'curatero://{target}' (FORMAT parquet, USE_TMP_FILE false)",
        f"COPY (SELECT 1 AS x) TO '{tmp_path}/out.csv'",
        f"ATTACH '{root}/evil.duckdb'",
        "SET enable_external_access = true",
        "INSTALL httpfs",
        "SELECT * FROM read_text('/etc/hostname')",
    ]
    try:
        for statement in attempts:
            with pytest.raises(duckdb.Error):
                con.execute(statement)
        assert con.execute("SELECT count(*) FROM manifest").fetchall() == [(32,)]
    finally:
        sql.close(con)
    assert _fingerprint(root) == before
    assert not (tmp_path / "out.csv").exists()


def test_trusted_local_connection_reads_only_the_dataset_files(ds, tmp_path):
    """curate's own commands read a local dataset natively; access is still limited to its files."""
    con, _ = sql.open_views(ds["root"], trusted=True)
    try:
        assert con.execute("SELECT count(*) FROM samples").fetchall() == [(32,)]
        for statement in (
            f"COPY (SELECT 1 AS x) TO '{tmp_path}/out.csv'",
            "SELECT * FROM read_text('/etc/hostname')",
            f"SELECT * FROM read_parquet('{ds['bench']}/../*.parquet')",
            "SET enable_external_access = true",
        ):
            with pytest.raises(duckdb.Error):
                con.execute(statement)
    finally:
        sql.close(con)
    assert not (tmp_path / "out.csv").exists()


def test_dataset_on_an_object_store(ds, s3_endpoint):
    import fsspec

    fs = fsspec.filesystem("s3", client_kwargs={"endpoint_url": s3_endpoint})
    fs.put(ds["root"], "curate-test/inspect-ds", recursive=True)
    url = "s3://curate-test/inspect-ds"
    local = _query(ds["root"], "SELECT shard, status, count(*) FROM samples GROUP BY ALL ORDER BY ALL")
    assert _query(url, "SELECT shard, status, count(*) FROM samples GROUP BY ALL ORDER BY ALL") == local
    kept = "SELECT recipe, count(*) FILTER (WHERE keep) FROM decisions GROUP BY 1 ORDER BY 1"
    assert _query(url, kept) == _query(ds["root"], kept) and len(_query(url, kept)) == 2
    con = sql.connect(url)
    try:
        with pytest.raises(duckdb.Error):
            con.execute(
                "COPY (SELECT 1 AS x) TO 'curatero://curate-test/inspect-ds/manifest/part-00000.parquet'"
            )
    finally:
        sql.close(con)
    assert (
        fs.cat("curate-test/inspect-ds/manifest/part-00000.parquet")
        == Path(ds["root"], "manifest/part-00000.parquet").read_bytes()
    )


def test_parallel_reads_of_one_large_file_are_consistent(tmp_path):
    """DuckDB threads share one handle per file; the read-only filesystem must not mix their offsets
    (a shared seek position returned wrong sums or 'ZSTD Decompression failure' in 7 of 10 runs)."""
    import numpy as np

    n = 1_000_000
    values = np.random.default_rng(0).integers(0, 1 << 40, n)
    (tmp_path / "ds/signals/wide").mkdir(parents=True)
    pq.write_table(
        pa.table({"uid": pa.array([f"{i:08x}" for i in range(n)]), "value": values}),
        tmp_path / "ds/signals/wide/00000.parquet",
        row_group_size=50_000,
        compression="zstd",
    )
    for _ in range(3):
        con = sql.connect(str(tmp_path / "ds"), threads=4)
        try:
            assert con.execute("SELECT sum(value), count(DISTINCT uid) FROM signals_wide").fetchall() == [
                (int(values.sum()), n)
            ]
        finally:
            sql.close(con)


def _outside_files(tmp_path: Path) -> dict[str, Path]:
    """A secret text file, a CSV and a Parquet file beside (not inside) the dataset."""
    folder = tmp_path / "outside"
    folder.mkdir(exist_ok=True)
    (folder / "secret.txt").write_text("root:SECRET-HASH:19000::::::\n")
    (folder / "secret.csv").write_text("user,hash\nroot,SECRET-HASH\n")
    pq.write_table(pa.table({"hash": ["SECRET-HASH"]}), folder / "secret.parquet")
    return {"txt": folder / "secret.txt", "csv": folder / "secret.csv", "parquet": folder / "secret.parquet"}


@pytest.mark.parametrize("opening", ["path", "file://", "blockcache::file://", "simplecache::file://"])
def test_python_connection_reads_no_file_outside_the_dataset(ds, tmp_path, opening):
    """sql.connect (what notebooks use) on a path or a URL, which goes through the read-only filesystem:
    the dataset's views work, while read_text/read_csv/read_parquet of any other file are refused."""
    root = ds["root"] if opening == "path" else f"{opening}{ds['root']}"
    files = _outside_files(tmp_path)
    con = sql.connect(root)
    try:
        assert con.execute("SELECT count(*) FROM samples").fetchall() == [(32,)]
        for reader, path in (
            ("read_text", files["txt"]),
            ("read_csv", files["csv"]),
            ("read_parquet", files["parquet"]),
        ):
            escape = f"curatero://{ds['root']}/../outside/{path.name}"
            for spelling in (f"curatero://{path}", str(path), escape, f"curatero://{tmp_path}/outside/*"):
                with pytest.raises(duckdb.Error):
                    con.execute(f"SELECT * FROM {reader}('{spelling}')").fetchall()
    finally:
        sql.close(con)


def test_read_only_filesystem_serves_only_its_root(ds, tmp_path):
    """The filesystem itself refuses other paths, whatever DuckDB's own settings allow."""
    import fsspec

    from curate.inspect.readonly_fs import OutsideDatasetError, ReadOnlyFileSystem

    files = _outside_files(tmp_path)
    rofs = ReadOnlyFileSystem(fsspec.filesystem("file"), ds["root"])
    assert rofs.cat_file(f"curatero://{ds['root']}/manifest/part-00000.parquet")[:4] == b"PAR1"
    for path in (str(files["txt"]), f"{ds['root']}/../outside/secret.txt", f"{ds['root']}-sibling/x"):
        with pytest.raises(OutsideDatasetError, match="outside the dataset"):
            rofs.open(f"curatero://{path}", "rb")
        with pytest.raises(OutsideDatasetError):
            rofs.info(path)
    with pytest.raises(OutsideDatasetError):
        rofs.glob(f"curatero://{ds['root']}/*/../../outside/*")
    with pytest.raises(OutsideDatasetError):
        rofs.ls(str(tmp_path))


@pytest.mark.parametrize("trusted", [False, True])
def test_duckdb_spills_into_a_private_folder_removed_on_close(ds, tmp_path, monkeypatch, trusted):
    """Not `<cwd>/.tmp` (DuckDB's default, which it also reads back from): a 0700 folder per connection."""
    monkeypatch.chdir(tmp_path)
    con, _ = sql.open_views(ds["root"], trusted=trusted)
    spill = Path(con.execute("SELECT current_setting('temp_directory')").fetchone()[0])
    folder = spill.parent
    assert folder.is_dir() and not spill.is_relative_to(tmp_path)
    assert folder.stat().st_mode & 0o077 == 0
    with pytest.raises(duckdb.Error):
        con.execute("SET temp_directory = '.tmp'")
    sql.close(con)
    assert not folder.exists()


def test_internal_connections_spill_into_a_private_folder_too(tmp_path, monkeypatch):
    from curate.inspect import duck

    monkeypatch.chdir(tmp_path)
    con = duck.connect()
    folder = Path(con.execute("SELECT current_setting('temp_directory')").fetchone()[0]).parent
    assert folder.is_dir() and not folder.is_relative_to(tmp_path)
    duck.close(con)
    assert not folder.exists()


def test_simplecache_dataset_url_is_read_like_the_folder(ds):
    query = "SELECT status, count(*) FROM samples GROUP BY 1 ORDER BY 1"
    assert _query(f"simplecache::file://{ds['root']}", query) == _query(ds["root"], query)


@pytest.mark.parametrize("command", ["sql", "stats"])
def test_a_folder_that_is_not_a_dataset_is_an_error(tmp_path, capsys, command):
    """Not an empty dataset with rc 0: the user named the wrong folder, and is told so."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    query = ["SELECT count(*) FROM samples"] if command == "sql" else []
    cases = (
        (tmp_path / "empty", "is not a curate dataset"),
        (tmp_path / "file.txt", "is a file"),
        (tmp_path / "missing", "does not exist"),
    )
    for path, message in cases:
        assert main([command, str(path), *query]) == 2
        err = capsys.readouterr().err
        assert message in err and "curate download" in err and "Traceback" not in err


def test_shards_without_a_documented_column_show_it_as_null(ds, tmp_path, capsys):
    """Shards written without `error_class`/`error_message` (an older or foreign writer): the views still
    have the documented columns, so queries and `curate stats` run."""
    import shutil

    root = tmp_path / "older"
    shutil.copytree(ds["root"], root)
    for shard in sorted((root / "shards").glob("*.parquet"))[:1]:
        pq.write_table(pq.read_table(shard).drop_columns(["error_class", "error_message"]), shard)
    assert _query(str(root), "SELECT count(*), count(error_class) FROM samples")[0][0] == 32
    assert main(["stats", str(root)]) == 0
    out = capsys.readouterr().out
    assert "download: 32 rows" in out and "failures by class" in out
    for shard in sorted((root / "shards").glob("*.parquet"))[1:]:
        pq.write_table(pq.read_table(shard).drop_columns(["error_class"]), shard)
    assert _query(str(root), "SELECT count(error_class) FROM samples") == [(0,)]
    con, infos = sql.open_views(str(root))
    sql.close(con)
    assert {f.name for f in SHARD_SCHEMA} - {"image"} <= {c for c, _ in infos[1].columns}


def test_repeated_column_names_are_printed_or_refused_never_lost(ds, capsys):
    assert main(["sql", ds["root"], "SELECT 1 AS a, 2 AS a"]) == 0
    assert capsys.readouterr().out.splitlines()[:3] == ["a  a", "-  -", "1  2"]
    assert main(["sql", ds["root"], "SELECT 1 AS a, 2 AS a", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ['"a","a"', "1,2"]
    assert main(["sql", ds["root"], "SELECT 1 AS a, 2 AS a", "--format", "json"]) == 2
    assert "more than one column named 'a'" in capsys.readouterr().err


def test_query_results_are_never_written_over_the_dataset(ds, tmp_path, capsys):
    before = _fingerprint(ds["root"])
    for target in (
        f"{ds['root']}/shards/00000.parquet",
        f"{ds['root']}/decisions/x.csv",
        ds["root"],
        str(Path(ds["root"]).parent),
    ):
        assert main(["sql", ds["root"], "SELECT 1 AS x", "--format", "parquet", "-o", target]) == 2
        assert "refusing to write the query result" in capsys.readouterr().err
    assert _fingerprint(ds["root"]) == before
    assert main(["sql", ds["root"], "SELECT 1 AS x", "--format", "csv", "-o", str(tmp_path / "x.csv")]) == 0
    assert (tmp_path / "x.csv").read_text().splitlines() == ['"x"', "1"]

"""DuckDB over a dataset's Parquet files, local or on an object store (via fsspec)."""

from __future__ import annotations

import shutil
import tempfile
import weakref

import duckdb

from curate import storage
from curate.errors import CurateError
from curate.urls import install_url_host

# Connection -> the finalizer removing its private spill folder (run by `close`, or at garbage collection).
_SPILL_FOLDERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def connect(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    private_temp_directory(con)
    install_url_host(con)  # the host rule that takedowns and exports match (curate.urls)
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def private_temp_directory(con: duckdb.DuckDBPyConnection) -> str:
    """Point DuckDB's spill files into a fresh private folder (mode 0700), removed when `con` is closed.

    By default DuckDB spills to, and reads back from, `<cwd>/.tmp`: a folder anyone who controls the
    working directory can plant files in, shared by every process started there.
    """
    folder = tempfile.mkdtemp(prefix="curate-duckdb-")
    spill = f"{folder}/spill"  # DuckDB creates it only when a query spills
    con.execute("SET temp_directory = '" + spill.replace("'", "''") + "'")
    _SPILL_FOLDERS[con] = weakref.finalize(con, shutil.rmtree, folder, ignore_errors=True)
    return spill


def close(con: duckdb.DuckDBPyConnection) -> None:
    """Close `con` and remove its private spill folder."""
    con.close()
    finalizer = _SPILL_FOLDERS.pop(con, None)
    if finalizer is not None:
        finalizer()


def source(con: duckdb.DuckDBPyConnection, paths: list[str], what: str, fix: str, options: str = "") -> str:
    """SQL for `read_parquet([...], OPTIONS)` over `paths`; a clear error naming `fix` when there are none.

    Remote paths are served by the matching fsspec filesystem registered on the connection, so DuckDB
    reads s3:// or gs:// datasets with the credentials fsspec already uses.
    """
    if not paths:
        raise CurateError(f"no {what} found. Run `{fix}` first.")
    fs, _ = storage.url_to_fs(paths[0])
    if not storage.is_local(fs):
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        if not con.filesystem_is_registered(protocol):
            con.register_filesystem(fs)
            # DuckDB's threads share one fsspec file handle and its position: parallel reads of one
            # remote file can return another range's bytes. One thread reads remote data correctly.
            con.execute("SET threads = 1")
    quoted = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
    return f"read_parquet([{quoted}], union_by_name = true{', ' + options if options else ''})"

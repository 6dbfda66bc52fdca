"""DuckDB over a dataset's Parquet files, local or on an object store (via fsspec)."""

from __future__ import annotations

import duckdb

from curate import storage
from curate.errors import CurateError


def connect(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


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

"""Paths that may be local or fsspec URLs (s3://, gs://, https://), and atomic writes on them.

Every writer in curate goes through `write_parquet_atomic` / `write_json_atomic`: the file is
written under a temporary name and renamed, so a killed run never leaves a truncated output.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem


def url_to_fs(path: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path inside it) for a local path or an fsspec URL."""
    fs, inner = fsspec.core.url_to_fs(str(path))
    return fs, inner


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def join(base: str, *parts: str) -> str:
    """Join path parts with '/', keeping a URL scheme intact."""
    out = str(base).rstrip("/")
    for part in parts:
        out = f"{out}/{str(part).strip('/')}"
    return out


def exists(path: str) -> bool:
    fs, inner = url_to_fs(path)
    if not is_local(fs):
        fs.invalidate_cache(inner)  # other processes write here: never trust a cached listing
    return fs.exists(inner)


def _tmp_name(inner: str) -> str:
    head, _, tail = inner.rpartition("/")
    return f"{head}/.tmp-{uuid.uuid4().hex[:12]}-{tail}" if head else f".tmp-{uuid.uuid4().hex[:12]}-{tail}"


def write_bytes_atomic(data: bytes, path: str) -> None:
    """Write bytes so that readers see either the old file, or the whole new one."""
    fs, inner = url_to_fs(path)
    parent = inner.rpartition("/")[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    if is_local(fs):
        tmp = _tmp_name(inner)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, inner)
    else:
        # Object stores make a single PUT visible all at once: no temporary name is needed.
        with fs.open(inner, "wb") as fh:
            fh.write(data)


def write_parquet_atomic(
    table: pa.Table, path: str, compression: str = "zstd", use_dictionary: bool = True
) -> None:
    """`use_dictionary=False` for columns of distinct values (hashes, keys): trying a dictionary on them
    costs several times the write itself."""
    fs, inner = url_to_fs(path)
    if is_local(fs):
        parent = os.path.dirname(inner)
        if parent:
            os.makedirs(parent, exist_ok=True)
        tmp = _tmp_name(inner)
        try:
            pq.write_table(table, tmp, compression=compression, use_dictionary=use_dictionary)
            os.replace(tmp, inner)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return
    buf = io.BytesIO()
    pq.write_table(table, buf, compression=compression, use_dictionary=use_dictionary)
    write_bytes_atomic(buf.getvalue(), path)


def write_json_atomic(obj: Any, path: str) -> None:
    write_bytes_atomic(json.dumps(obj, indent=2, sort_keys=True, default=str).encode(), path)


def read_json(path: str) -> Any:
    fs, inner = url_to_fs(path)
    with fs.open(inner, "rb") as fh:
        return json.loads(fh.read())


def read_parquet(path: str, columns: list[str] | None = None) -> pa.Table:
    fs, inner = url_to_fs(path)
    return pq.read_table(inner, columns=columns, filesystem=fs)


def list_files(directory: str, suffix: str) -> list[str]:
    """Sorted full paths (URLs keep their scheme) of files in `directory` ending with `suffix`."""
    fs, inner = url_to_fs(directory)
    if not is_local(fs):
        fs.invalidate_cache(inner)
    if not fs.exists(inner):
        return []
    names = [p for p in fs.ls(inner, detail=False) if p.endswith(suffix)]
    names = [n for n in names if not n.rpartition("/")[2].startswith(".tmp-")]
    prefix = str(directory).rstrip("/")
    return sorted(f"{prefix}/{n.rpartition('/')[2]}" for n in names)

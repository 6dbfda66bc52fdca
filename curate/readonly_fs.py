"""A read-only fsspec view of a dataset, so that DuckDB queries can read it but never write it.

`curate sql` and notebooks run user SQL. DuckDB's `allowed_paths` lets a query overwrite any path it may
read (`COPY ... TO` an existing shard), so instead every dataset file is served to DuckDB through this
filesystem: reads are delegated to the real one (local disk or an object store), every write raises.
"""

from __future__ import annotations

from typing import Any

import fsspec
from fsspec import AbstractFileSystem

PROTOCOL = "curatero"


class ReadOnlyError(PermissionError):
    """A query tried to write into a dataset opened for inspection."""


def _refuse(*_args: Any, **_kwargs: Any) -> None:
    raise ReadOnlyError("the dataset is opened read-only for inspection: queries cannot write into it")


class ReadOnlyFileSystem(AbstractFileSystem):
    """`curatero://<path inside fs>` -> `fs`, reads only."""

    protocol = PROTOCOL
    cachable = False

    def __init__(self, fs: fsspec.AbstractFileSystem, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fs = fs

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        path = str(path)
        prefix = f"{PROTOCOL}://"
        return path.removeprefix(prefix)

    def url(self, inner: str) -> str:
        """The address DuckDB reads `inner` (a path inside the wrapped filesystem) by."""
        return f"{PROTOCOL}://{inner}"

    def _open(self, path: str, mode: str = "rb", **kwargs: Any):
        if mode != "rb":
            _refuse()
        return self.fs.open(self._strip_protocol(path), "rb")

    def ls(self, path: str, detail: bool = True, **kwargs: Any):
        return self.fs.ls(self._strip_protocol(path), detail=detail, **kwargs)

    def info(self, path: str, **kwargs: Any) -> dict:
        return self.fs.info(self._strip_protocol(path), **kwargs)

    def modified(self, path: str):
        return self.fs.modified(self._strip_protocol(path))

    # Every way fsspec (and DuckDB through it) can change a file system.
    rm = rm_file = _rm = mv = cp_file = copy = put_file = pipe_file = touch = _refuse
    mkdir = makedirs = rmdir = _refuse

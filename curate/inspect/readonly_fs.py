"""A read-only fsspec view of a dataset, so that DuckDB queries can read it but never write it.

`curate sql` and notebooks run user SQL. DuckDB's `allowed_paths` lets a query overwrite any path it may
read (`COPY ... TO` an existing shard), so instead every dataset file is served to DuckDB through this
filesystem: reads are delegated to the real one (local disk or an object store), every write raises, and
every path outside the dataset's root (`read_text('curatero:///etc/shadow')`, `..` segments) is refused.
"""

from __future__ import annotations

import datetime
import io
import os
import posixpath
import stat
import threading
from typing import Any

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

PROTOCOL = "curatero"


class _PositionalReader(io.RawIOBase):
    """A read-only file whose position is kept per thread.

    DuckDB's threads share one handle per file and call seek() then read(); with one shared position two
    threads interleave and read each other's bytes (seen as "ZSTD Decompression failure" on large files).
    Local files are read with os.pread (no shared offset, no lock); other files under a lock.
    """

    def __init__(self, fd: int | None, handle: Any, size: int | None = None) -> None:
        super().__init__()
        self._fd, self._handle = fd, handle
        self._lock = threading.Lock()
        self._pos = threading.local()
        self._size = os.fstat(fd).st_size if fd is not None else size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return getattr(self._pos, "value", 0)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.tell(), io.SEEK_END: self._size}[whence]
        self._pos.value = base + offset
        return self._pos.value

    def read(self, size: int = -1) -> bytes:
        pos = self.tell()
        size = self._size - pos if size is None or size < 0 else size
        if self._fd is not None:
            data = os.pread(self._fd, size, pos)
        else:
            with self._lock:
                self._handle.seek(pos)
                data = self._handle.read(size)
        self._pos.value = pos + len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            if self._fd is not None:
                os.close(self._fd)
            else:
                self._handle.close()
        super().close()


class ReadOnlyError(PermissionError):
    """A query tried to write into a dataset opened for inspection."""


class OutsideDatasetError(PermissionError):
    """A query named a file outside the dataset it was opened on."""


def _refuse(*_args: Any, **_kwargs: Any) -> None:
    raise ReadOnlyError("the dataset is opened read-only for inspection: queries cannot write into it")


class ReadOnlyFileSystem(AbstractFileSystem):
    """`curatero://<path inside fs>` -> `fs`, reads only, and only under `root` (a path inside `fs`)."""

    protocol = PROTOCOL
    cachable = False

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fs = fs
        self.root = posixpath.normpath(root) if root else ""
        if not self.root or self.root == ".":
            raise ValueError("a read-only view needs the dataset's root folder")
        self._local = isinstance(fs, LocalFileSystem)

    def _inside(self, path: str) -> str:
        """The path inside `fs` for `path`, refused unless it lies under the root (after `..` is resolved)."""
        inner = posixpath.normpath(self._strip_protocol(path))
        if inner != self.root and not inner.startswith(self.root.rstrip("/") + "/"):
            raise OutsideDatasetError(f"{path} is outside the dataset {self.root}, the only files it serves")
        return inner

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
        inner = self._inside(path)
        if self._local:
            return _PositionalReader(os.open(inner, os.O_RDONLY), None)
        # The size from the listing: a caching wrapper (simplecache::) hands back a plain local file.
        return _PositionalReader(None, self.fs.open(inner, "rb"), self.fs.size(inner))

    def ls(self, path: str, detail: bool = True, **kwargs: Any):
        return self.fs.ls(self._inside(path), detail=detail, **kwargs)

    def glob(self, path: str, **kwargs: Any):
        """DuckDB globs every file of a list; a name without wildcards is itself (no listing, no stat)."""
        inner = self._inside(path)
        if not any(c in inner for c in "*?["):
            return [inner]
        return [self._inside(p) for p in self.fs.glob(inner, **kwargs)]

    def info(self, path: str, **kwargs: Any) -> dict:
        inner = self._inside(path)
        if self._local:  # DuckDB asks for every file on every bind: skip fsspec's path normalisation
            st = os.stat(inner)
            return {
                "name": inner,
                "size": st.st_size,
                "type": "directory" if stat.S_ISDIR(st.st_mode) else "file",
                "mtime": st.st_mtime,
            }
        return self.fs.info(inner, **kwargs)

    def modified(self, path: str):
        inner = self._inside(path)
        if self._local:
            return datetime.datetime.fromtimestamp(os.stat(inner).st_mtime, tz=datetime.UTC)
        return self.fs.modified(inner)

    # Every way fsspec (and DuckDB through it) can change a file system.
    rm = rm_file = _rm = mv = cp_file = copy = put_file = pipe_file = touch = _refuse
    mkdir = makedirs = rmdir = _refuse

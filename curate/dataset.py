"""The dataset folder: a fixed layout that every stage reads and writes (docs/FORMAT.md).

    DATASET/manifest/part-NNNNN.parquet     normalized URL list
    DATASET/shards/NNNNN.parquet            downloaded images, one row per manifest row
    DATASET/shards/NNNNN.stats.json         per-shard counts; its presence marks the shard done
    DATASET/signals/<name>/NNNNN.parquet    facts per uid (hashes, language, nsfw, ...)
    DATASET/decisions/<recipe>.parquet      uid, keep, reasons
    DATASET/export/<recipe>/...             curated Parquet or WebDataset shards
    DATASET/takedown.parquet                consent requests honoured
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from curate import storage
from curate.errors import CurateError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dataset:
    root: str

    def path(self, *parts: str) -> str:
        return storage.join(self.root, *parts)

    @property
    def manifest_dir(self) -> str:
        return self.path("manifest")

    @property
    def shards_dir(self) -> str:
        return self.path("shards")

    def signals_dir(self, name: str) -> str:
        return self.path("signals", name)

    @property
    def decisions_dir(self) -> str:
        return self.path("decisions")

    def export_dir(self, recipe: str) -> str:
        return self.path("export", recipe)

    @property
    def takedown_path(self) -> str:
        return self.path("takedown.parquet")

    def shard_paths(self) -> list[str]:
        """Finished download shards, in key order."""
        return storage.list_files(self.shards_dir, ".parquet")

    def manifest_parts(self) -> list[str]:
        return storage.list_files(self.manifest_dir, ".parquet")

    @staticmethod
    def shard_key(path: str) -> str:
        """'.../shards/00012.parquet' -> '00012'."""
        return path.rpartition("/")[2].split(".")[0]

    @contextmanager
    def lock(self, stage: str) -> Iterator[None]:
        """Refuse a second writer on the same dataset, with a message that says who holds it."""
        lock_path = self.path(".lock")
        fs, inner = storage.url_to_fs(lock_path)
        me = f"{socket.gethostname()}:{os.getpid()}:{stage}"
        if storage.is_local(fs):
            os.makedirs(os.path.dirname(inner), exist_ok=True)
            try:
                fd = os.open(inner, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = _read_text(inner)
                if _is_stale(holder):
                    log.warning("removing stale lock %s held by %s", inner, holder)
                    os.unlink(inner)
                    fd = os.open(inner, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                else:
                    raise CurateError(
                        f"dataset {self.root} is in use by another run ({holder}). Wait for it to finish, "
                        f"or delete {inner} if that run is gone."
                    ) from None
            with os.fdopen(fd, "w") as fh:
                fh.write(me)
        else:
            if fs.exists(inner):
                raise CurateError(
                    f"dataset {self.root} is in use by another run ({_read_remote(fs, inner)}). "
                    f"Delete {lock_path} if that run is gone."
                )
            fs.pipe(inner, me.encode())
        try:
            yield
        finally:
            try:
                fs.rm(inner)
            except FileNotFoundError:
                pass


def _read_text(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return "unknown"


def _read_remote(fs, inner: str) -> str:
    try:
        return fs.cat(inner).decode(errors="replace")
    except OSError:
        return "unknown"


def _is_stale(holder: str) -> bool:
    """A lock whose process on this host no longer exists."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False

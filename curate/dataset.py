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

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from curate import runlock, storage
from curate.errors import CurateError


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
        """Refuse a second writer on the same dataset, with a message that says who holds it.

        On a local disk the lock is held by the run's driver and every worker it starts (curate.runlock):
        it is taken over only once no process of the old run is alive.
        """
        lock_path = self.path(".lock")
        fs, inner = storage.url_to_fs(lock_path)
        me = f"{socket.gethostname()}:{os.getpid()}:{stage}"
        if storage.is_local(fs):
            try:
                fd = runlock.acquire(inner, me)
            except runlock.LockHeld as exc:
                raise CurateError(
                    f"dataset {self.root} is in use by another run ({exc}). Wait for it to finish, "
                    f"or delete {inner} if that run is gone."
                ) from None
            previous = os.environ.get(runlock.ENV_VAR)
            os.environ[runlock.ENV_VAR] = inner  # workers started from here join the run's lock
            try:
                yield
            finally:
                if previous is None:
                    os.environ.pop(runlock.ENV_VAR, None)
                else:
                    os.environ[runlock.ENV_VAR] = previous
                runlock.release(inner, fd)
            return
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


def _read_remote(fs, inner: str) -> str:
    try:
        return fs.cat(inner).decode(errors="replace")
    except OSError:
        return "unknown"


"""The dataset folder: a fixed layout that every stage reads and writes (docs/FORMAT.md).

    DATASET/manifest/part-NNNNN.parquet     normalized URL list
    DATASET/shards/NNNNN.parquet            downloaded images, one row per manifest row
    DATASET/shards/.curate/NNNNN.stats.json per-shard counts; its presence marks the shard done
    DATASET/signals/<name>/NNNNN.parquet    facts per uid (hashes, language, nsfw, ...)
    DATASET/decisions/<recipe>.parquet      uid, keep, reasons
    DATASET/export/<recipe>/...             curated Parquet or WebDataset shards
    DATASET/takedown.parquet                consent requests honoured

JSON that describes a Parquet folder (stats, summaries, the source record) sits in that folder's hidden
`.curate/` subfolder (`sidecar`), never beside the Parquet files: pandas, pyarrow.dataset, DuckDB's
`read_parquet('FOLDER/*')` and HF's folder loader then read the folder as one table.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from curate import runlock, storage
from curate.errors import CurateError

log = logging.getLogger(__name__)

SIDECAR_DIR = ".curate"
# Names an older layout wrote beside the Parquet files; `migrate_sidecars` moves them into SIDECAR_DIR.
_LEGACY_SUFFIXES = (".stats.json", "summary.json", "source.json")


def sidecar(folder: str, name: str) -> str:
    """Where the JSON file NAME that describes the Parquet folder FOLDER lives: FOLDER/.curate/NAME.

    A hidden subfolder, not a hidden file: Arrow, pandas and HF skip both, but the `FOLDER/*` glob of
    DuckDB and polars matches dot-files, never folders.
    """
    return storage.join(folder, SIDECAR_DIR, name)


def stats_path(folder: str, key: str) -> str:
    """The stats JSON of job KEY's output in FOLDER; the executor's completion marker for that job."""
    return sidecar(folder, f"{key}.stats.json")


def stats_files(folder: str) -> list[str]:
    """Every job's stats JSON in FOLDER, in key order."""
    found = storage.list_files(storage.join(folder, SIDECAR_DIR), ".stats.json")
    if not found and storage.list_files(folder, ".stats.json"):  # an older layout, not moved yet
        log.warning(
            "%s holds stats files of an older curate beside its Parquet files: they are counted "
            "once a writing stage (e.g. `curate filter`) moved them into %s/",
            folder,
            SIDECAR_DIR,
        )
    return found


def migrate_sidecars(folder: str) -> int:
    """Move JSON files an older curate wrote beside FOLDER's Parquet files into FOLDER/.curate/.

    Stats files are completion markers, so a dataset written before the move resumes where it stopped
    instead of redoing its finished shards. Returns how many files moved.
    """
    moved = 0
    fs, _ = storage.url_to_fs(folder)
    for old in storage.list_files(folder, ".json"):
        name = old.rpartition("/")[2]
        if name.startswith(".") or not name.endswith(_LEGACY_SUFFIXES):
            continue
        new = sidecar(folder, name)
        if storage.exists(new):
            log.warning("%s and %s both exist: keeping %s; delete %s", old, new, new, old)
            continue
        fs.makedirs(storage.url_to_fs(new)[1].rpartition("/")[0], exist_ok=True)
        fs.mv(storage.url_to_fs(old)[1], storage.url_to_fs(new)[1])
        moved += 1
    if moved:
        log.info("moved %d JSON files of %s into %s/", moved, folder, SIDECAR_DIR)
    return moved


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

    def migrate_sidecars(self) -> int:
        """Move the JSON files of an older layout into each Parquet folder's .curate/ (`migrate_sidecars`)."""
        signals = self.path("signals")
        fs, inner = storage.url_to_fs(signals)
        entries = fs.ls(inner, detail=True) if fs.isdir(inner) else []
        names = [e["name"].rpartition("/")[2] for e in entries if e["type"] == "directory"]
        folders = [self.manifest_dir, self.shards_dir, self.decisions_dir]
        folders += [self.signals_dir(n) for n in sorted(names) if not n.startswith((".", "_"))]
        return sum(migrate_sidecars(f) for f in folders if storage.exists(f))

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
        it is taken over only once no process of the old run is alive. Whoever holds it first moves the
        JSON files of an older layout into place (`migrate_sidecars`), so every stage sees them.
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
                self.migrate_sidecars()
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
            self.migrate_sidecars()
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

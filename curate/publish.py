"""The one rule for where curate may publish an output, and what it may replace there.

Commands that publish a folder (export, demo, a training run) or a file (report) can be pointed anywhere
with `-o`, and an earlier version removed whatever the folder held, the dataset itself included. Now:

- a folder is replaced (or written into) only when it does not exist, is empty, or is a previous curate
  output of the same kind: it holds the marker file `.curate.json` that every publishing command writes
  (a leading `_`, so Parquet readers that discover a folder's files skip it);
- a file is overwritten only when it is an earlier output of the same command (`file_signature`);
- never the dataset itself, a folder above it, or anything inside the folders that hold its data.
"""

from __future__ import annotations

import os
import posixpath
from datetime import UTC, datetime

from curate import storage
from curate.errors import CurateError

MARKER = ".curate.json"
# Folders of a dataset that hold its data: no output may be written at, inside or above them.
DATA_FOLDERS = ("manifest", "shards", "signals", "decisions", "takedown.parquet")
# Folders of a dataset that hold outputs (export/<recipe>, runs/<recipe>): an output goes inside, not at them.
OUTPUT_PARENTS = ("export", "runs")
# Outputs written before the marker existed: a JSON file only their command writes, and its keys.
_LEGACY = {
    "export": ("export.json", {"format", "shards", "recipe"}),
    "demo": ("demo-summary.json", {"outputs", "headline"}),
    "train": ("config.json", {"train_config", "model_config"}),
}


def _location(path: str) -> tuple[str, str]:
    """(protocol, normalised absolute path) so that `.`, `..`, symlinks and trailing slashes compare equal."""
    fs, inner = storage.url_to_fs(path)
    if storage.is_local(fs):
        return "file", os.path.realpath(inner)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol, posixpath.normpath("/" + inner.lstrip("/"))


def _within(inner: str, folder: str) -> bool:
    return inner == folder or inner.startswith(folder.rstrip("/") + "/")


def check_location(path: str, dataset: str | None, what: str) -> None:
    """Refuse `path` when it is the dataset, above it, or at or inside one of its data folders."""
    if dataset is None:
        return
    protocol, inner = _location(path)
    ds_protocol, root = _location(dataset)
    if protocol != ds_protocol:
        return
    fix = f"choose another path: outside the dataset, or a new name under {dataset}/export/ or runs/"
    if _within(root, inner):
        raise CurateError(
            f"refusing to write the {what} to {path}: it is the dataset {dataset} or a folder "
            f"above it, and would replace its data; {fix}"
        )
    for name in DATA_FOLDERS:
        if _within(inner, posixpath.join(root, name)):
            raise CurateError(
                f"refusing to write the {what} to {path}: it is inside the dataset's {name} (its data); {fix}"
            )
    for name in OUTPUT_PARENTS:
        if inner == posixpath.join(root, name):
            raise CurateError(
                f"refusing to write the {what} to {path}: that folder holds the dataset's "
                f"{name} folders, one per recipe; name one inside it, e.g. {path}/NAME"
            )


def is_output_of(path: str, kind: str) -> bool:
    """Whether the folder `path` is a curate output of `kind` (its marker, or a legacy output's file)."""
    if storage.exists(storage.join(path, MARKER)):
        return _json_keys(storage.join(path, MARKER)).get("kind") == kind
    name, keys = _LEGACY.get(kind, ("", set()))
    return bool(name) and keys <= set(_json_keys(storage.join(path, name)))


def _json_keys(path: str) -> dict:
    """The JSON object in `path`; {} when it is missing, not JSON or not an object."""
    try:
        data = storage.read_json(path)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def check_replaceable(path: str, kind: str, dataset: str | None = None) -> None:
    """Refuse to publish a `kind` output into the folder `path` unless it is new, empty or an earlier one."""
    check_location(path, dataset, kind)
    fs, inner = storage.url_to_fs(path)
    if not storage.is_local(fs):
        fs.invalidate_cache(inner)
    if not fs.exists(inner):
        return
    if not fs.isdir(inner):
        raise CurateError(f"refusing to write the {kind} to {path}: it is a file; choose a folder path")
    if not fs.ls(inner, detail=False) or is_output_of(path, kind):
        return
    raise CurateError(
        f"refusing to write the {kind} to {path}: the folder holds files that are not a curate "
        f"{kind} (no {MARKER}); choose a new or empty folder, or delete its contents yourself"
    )


def mark(path: str, kind: str, **details: object) -> None:
    """Write the marker that lets a later run of the same command replace `path`."""
    storage.write_json_atomic(
        {"kind": kind, "created_at": datetime.now(UTC).isoformat(timespec="seconds"), **details},
        storage.join(path, MARKER),
    )


def check_file_replaceable(path: str, kind: str, dataset: str | None = None) -> None:
    """Refuse to overwrite the file `path` unless an earlier `kind` output (`file_signature` in its head)."""
    check_location(path, dataset, kind)
    fs, inner = storage.url_to_fs(path)
    if not fs.exists(inner):
        return
    if fs.isdir(inner):
        raise CurateError(
            f"refusing to write the {kind} to {path}: it is a folder; name a file, e.g. "
            f"{path.rstrip('/')}/{kind}.html"
        )
    with fs.open(inner, "rb") as fh:
        head = fh.read(4096)
    if file_signature(kind).encode() not in head:
        raise CurateError(
            f"refusing to overwrite {path}: it is not a curate {kind}; choose another file "
            "name, or delete it yourself"
        )


def file_signature(kind: str) -> str:
    """The tag an HTML output carries in its head so that a later run recognises it as its own."""
    return f'<meta name="generator" content="curate {kind}">'

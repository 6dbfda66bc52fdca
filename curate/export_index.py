"""Where a dataset's exports live, and removing samples from an existing export (for takedowns).

Every export folder holds export.json (format, recipe, shard file -> sample count). Exports under
DATASET/export/ are found by listing; exports written elsewhere (-o OUT) are registered in
DATASET/export/exports.json so that a takedown reaches them too.
"""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.compute as pc

from curate import storage
from curate.dataset import Dataset
from curate.webdataset import filter_tar

log = logging.getLogger(__name__)

INDEX = "export.json"


def registry_path(dataset: str) -> str:
    return Dataset(dataset).path("export", "exports.json")


def register(dataset: str, out: str) -> None:
    """Remember an export written outside DATASET/export/."""
    path = registry_path(dataset)
    known = storage.read_json(path) if storage.exists(path) else []
    if out not in known:
        storage.write_json_atomic(sorted([*known, out]), path)


def export_dirs(dataset: str) -> list[str]:
    """Every export of `dataset` that still exists (a folder with export.json)."""
    base = Dataset(dataset).path("export")
    fs, inner = storage.url_to_fs(base)
    found = []
    if fs.exists(inner):
        found = [storage.join(base, p.rpartition("/")[2]) for p in fs.ls(inner, detail=False) if fs.isdir(p)]
    if storage.exists(registry_path(dataset)):
        found += storage.read_json(registry_path(dataset))
    return sorted({d for d in found if storage.exists(storage.join(d, INDEX))})


def rewrite_export(out: str, uids: set[str]) -> int:
    """Remove samples `uids` from the export in `out` (atomic per shard); returns samples removed."""
    index_path = storage.join(out, INDEX)
    index = storage.read_json(index_path)
    removed_total = 0
    for name in sorted(index["shards"]):
        path = storage.join(out, name)
        if name.endswith(".tar"):
            removed, kept = filter_tar(path, uids)
        else:
            table = storage.read_parquet(path)
            hit = pc.is_in(table.column("uid"), pa.array(sorted(uids), pa.string()))
            removed = int(pc.sum(hit).as_py() or 0)
            if removed:
                table = table.filter(pc.invert(hit))
                storage.write_parquet_atomic(table, path)
            kept = table.num_rows
        index["shards"][name] = kept
        removed_total += removed
    index["samples"] = sum(index["shards"].values())
    storage.write_json_atomic(index, index_path)
    if removed_total:
        log.info("takedown: removed %d samples from export %s", removed_total, out)
    return removed_total

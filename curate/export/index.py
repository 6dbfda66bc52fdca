"""Where a dataset's exports live, and removing samples from an existing export (for takedowns).

Every export folder holds .export.json (format, recipe, shard file -> sample count; `export.json` in
exports written before, still read) and, for WebDataset exports, sizes.json (tar -> samples, which
open_clip reads instead of --train-num-samples). Exports under DATASET/export/ are found by listing;
exports written elsewhere (-o OUT) are registered in DATASET/export/exports.json so that a takedown
reaches them too.
"""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.compute as pc

from curate import storage
from curate.dataset import Dataset
from curate.export.webdataset import filter_tar

log = logging.getLogger(__name__)

# A leading ".": readers that discover a folder's Parquet files (pandas, pyarrow, polars, HF) skip it.
INDEX = ".export.json"
LEGACY_INDEX = "export.json"  # the index's name before; read, and renamed by the next rewrite
SIZES = "sizes.json"  # WebDataset exports: {tar name: samples}, open_clip's get_dataset_size reads it


def index_path(out: str) -> str | None:
    """The index of the export in `out` (new name first), or None when `out` holds no export."""
    for name in (INDEX, LEGACY_INDEX):
        path = storage.join(out, name)
        if storage.exists(path):
            return path
    return None


def write_index(out: str, index: dict) -> None:
    """Write the export's index, and sizes.json beside WebDataset tars."""
    tars = {name: count for name, count in index["shards"].items() if name.endswith(".tar")}
    if tars:
        storage.write_json_atomic(tars, storage.join(out, SIZES))
    storage.write_json_atomic(index, storage.join(out, INDEX))


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
    return sorted({d for d in found if index_path(d)})


def rewrite_export(out: str, uids: set[str]) -> int:
    """Remove samples `uids` from the export in `out` (atomic per shard); returns samples removed."""
    old_path = index_path(out)
    index = storage.read_json(old_path)
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
    write_index(out, index)
    if old_path != storage.join(out, INDEX):  # an older export: its index now has the new name only
        fs, inner = storage.url_to_fs(old_path)
        fs.rm(inner)
    if removed_total:
        log.info("takedown: removed %d samples from export %s", removed_total, out)
    return removed_total

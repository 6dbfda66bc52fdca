"""`import_img2dataset()`: an img2dataset output folder in, a curate dataset out, with no new download.

Each img2dataset shard NNNNN becomes manifest part `manifest/part-NNNNN.parquet` and shard
`shards/NNNNN.parquet`, one row per sample in img2dataset's order: the uid that curate gives the
(url, caption) pair, img2dataset's outcome in curate's status and error classes, the image bytes as
img2dataset stored them, and its other metadata (key, exif, the additional columns) as manifest columns.
A shard's stats JSON marks it done, so a stopped import resumes. Rows curate would never have fetched
are recorded as it records them: bad URLs failed, rows named in the dataset's takedown list skipped (their
image dropped), and a repeated (url, caption) pair left out and counted.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter

import pyarrow as pa
from tqdm import tqdm

from curate import storage
from curate.dataset import Dataset, sidecar, stats_files, stats_path
from curate.download.img2dataset_engine import classify_error
from curate.download.optout import OptOut, load_optout
from curate.download.shard import base_row, precheck, shard_schema
from curate.download.stage import SOURCE_FILE, SUMMARY_FILE, finish_run
from curate.download.writer import ShardWriter
from curate.errors import CurateError
from curate.executor import RunSummary
from curate.imports.img2dataset import Shard, find_shards, read_shard, stored_format
from curate.manifest.normalize import Normalizer
from curate.schema import (
    KEPT_COLUMN_PREFIX,
    MANIFEST_SCHEMA,
    MANIFEST_STATUSES,
    kept_column_name,
    with_extra_columns,
)

log = logging.getLogger(__name__)

ENGINE = "img2dataset-import"
# img2dataset columns that become shard columns; every other one is carried as a manifest column.
MAPPED = (
    "url",
    "caption",
    "status",
    "error_message",
    "width",
    "height",
    "original_width",
    "original_height",
    "sha256",
    "image",
)
_INT_COLUMNS = ("width", "height", "original_width", "original_height")


def import_img2dataset(folder: str, dataset: str) -> dict:
    """Turn the img2dataset output at `folder` into DATASET/manifest and DATASET/shards; the summary."""
    ds = Dataset(dataset)
    start = time.perf_counter()
    with ds.lock("import"):
        shards = find_shards(folder)
        _check_source(ds, folder)
        optout = load_optout(ds.takedown_path, ())
        normalize = Normalizer()
        summary = RunSummary(total=len(shards))
        for shard in tqdm(shards, desc="import shards", unit=" shards", disable=None):
            part = storage.join(ds.manifest_dir, f"part-{shard.key}.parquet")
            marker = stats_path(ds.shards_dir, shard.key)
            if storage.exists(marker) and storage.exists(part):
                _remember(normalize, part)  # duplicates across a resumed run are still found
                summary.skipped += 1
                continue
            stats = _import_shard(
                shard, part, storage.join(ds.shards_dir, f"{shard.key}.parquet"), normalize, optout
            )
            storage.write_json_atomic({"key": shard.key, **stats}, marker)
            summary.done += 1
        summary.seconds = time.perf_counter() - start
        _write_manifest_summary(ds, folder, summary.seconds)
        finish_run(ds, summary, None, engine=ENGINE)
    return storage.read_json(sidecar(ds.shards_dir, SUMMARY_FILE))


def _import_shard(shard: Shard, part: str, shard_path: str, normalize: Normalizer, optout: OptOut) -> dict:
    """Write one img2dataset shard as a manifest part and a curate shard; the shard's stats."""
    start = time.perf_counter()
    table = read_shard(shard)
    carried = [c for c in table.column_names if c not in MAPPED]
    names = {c: _carried_name(c) for c in carried}
    caption = (
        table.column("caption") if "caption" in table.column_names else pa.nulls(len(table), pa.string())
    )
    batch = pa.RecordBatch.from_arrays(
        [
            table.column("url").cast(pa.string()).combine_chunks(),
            caption.cast(pa.string()).combine_chunks(),
            pa.array(range(len(table)), pa.int64()),
        ],
        names=["url", "caption", "row"],
    )
    kept = normalize(batch)  # uid, url, caption, status, row: the first of each (url, caption) pair
    rows = kept.column("row")
    manifest = pa.Table.from_batches([kept.drop_columns(["row"])])
    for name in carried:
        manifest = manifest.append_column(names[name], table.column(name).take(rows))
    manifest = manifest.cast(with_extra_columns(MANIFEST_SCHEMA, pa.schema(list(manifest.schema)[4:])))
    storage.write_parquet_atomic(manifest, part)

    samples = table.take(rows).to_pylist()
    writer = ShardWriter(shard_path, shard_schema(manifest.schema))
    try:
        for entry, sample in zip(manifest.to_pylist(), samples, strict=True):
            row = precheck(entry, optout) or _shard_row(entry, sample, shard.key)
            writer.add({**row, **{names[c]: entry[names[c]] for c in carried}})
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return {
        "rows": writer.rows,
        "status": dict(writer.status),
        "error_class": dict(writer.error_class),
        "duplicates": len(table) - len(rows),
        "source": shard.parquet,
        "format": shard.fmt,
        "engine": ENGINE,
        "seconds": round(time.perf_counter() - start, 3),
    }


def _shard_row(entry: dict, sample: dict, key: str) -> dict:
    """The shard row of a sample that curate would have fetched: img2dataset's outcome, mapped."""
    out = base_row(entry)
    image = sample.get("image")
    if sample.get("status") == "success" and image:
        out.update(
            status="success",
            image=image,
            image_format=stored_format(image),
            sha256=sample.get("sha256"),
            **{c: sample.get(c) for c in _INT_COLUMNS},
        )
    elif sample.get("status") == "success":
        out.update(
            error_class="unknown",
            error_message=f"img2dataset's output holds no image for key {sample.get('key')!r} of shard {key}",
        )
    else:
        message = sample.get("error_message") or sample.get("status") or ""
        out.update(error_class=classify_error(message), error_message=f"img2dataset: {message}"[:500])
    return out


def _carried_name(name: str) -> str:
    """A carried column's shard name: prefixed where it would clash with a curate column in any case."""
    if name.lower() in {n.lower() for n in MANIFEST_SCHEMA.names}:
        return f"{KEPT_COLUMN_PREFIX}{name}"
    return kept_column_name(name)


def _remember(normalize: Normalizer, part: str) -> None:
    uids = storage.read_parquet(part, columns=["uid"]).column("uid").to_pylist()
    normalize.seen.first_seen(b"".join(bytes.fromhex(u) for u in uids))


def _check_source(ds: Dataset, folder: str) -> None:
    """Import into a new dataset, or resume the import of the same folder; never mix with other shards."""
    fs, inner = storage.url_to_fs(folder)
    source = {
        "manifest": _absolute(ds.manifest_dir),
        "imported_from": os.path.abspath(inner) if storage.is_local(fs) else folder,
    }
    path = sidecar(ds.shards_dir, SOURCE_FILE)
    if storage.exists(path):
        previous = storage.read_json(path)
        if previous.get("imported_from") != source["imported_from"]:
            what = previous.get("imported_from") or previous.get("manifest")
            raise CurateError(
                f"{ds.shards_dir} holds shards from {what}, not from {folder}: import into a new "
                "dataset folder"
            )
        return
    if ds.shard_paths() or ds.manifest_parts():
        raise CurateError(f"{ds.root} already holds a manifest or shards: import into a new dataset folder")
    storage.write_json_atomic(source, path)


def _absolute(path: str) -> str:
    fs, inner = storage.url_to_fs(path)
    return os.path.abspath(inner) if storage.is_local(fs) else path


def _write_manifest_summary(ds: Dataset, folder: str, seconds: float) -> None:
    """manifest/.curate/summary.json in `curate manifest`'s layout.

    Counted from the parts and the shards' stats, so a resumed import counts every shard,
    so the manifest reads as a finished one.
    """
    parts = ds.manifest_parts()
    status = Counter()
    for part in parts:
        status.update(storage.read_parquet(part, columns=["status"]).column("status").to_pylist())
    duplicates = sum(int(storage.read_json(p).get("duplicates", 0)) for p in stats_files(ds.shards_dir))
    rows = sum(status.values())
    storage.write_json_atomic(
        {
            "inputs": [{"path": folder, "format": "img2dataset"}],
            "rows_read": rows + duplicates,
            "rows_written": rows,
            "duplicates": duplicates,
            "takedown_skipped": 0,
            "status": {s: status.get(s, 0) for s in MANIFEST_STATUSES},
            "malformed": {"counts": {}, "examples": []},
            "rows_not_read": 0,
            "parts": len(parts),
            "columns": storage.read_parquet(parts[0]).schema.names if parts else MANIFEST_SCHEMA.names,
            "seconds": round(seconds, 3),
            "imported_from": folder,
        },
        sidecar(ds.manifest_dir, SUMMARY_FILE),
    )

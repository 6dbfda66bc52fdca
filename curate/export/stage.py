"""`curate export`: the kept samples of a recipe as Parquet shards or WebDataset tar shards.

Reads one download shard at a time (bounded memory), joins its decisions and a few useful signals,
and writes OUT/NNNNN.parquet or OUT/NNNNN.tar plus OUT/.export.json (and OUT/sizes.json beside tars)
and the marker OUT/.curate.json (hidden: folder readers of OUT skip them). A
local export is built in a temporary sibling folder and swapped in at the end, so readers never see a
half-written export; OUT is replaced only when it is new, empty or an earlier export (curate.publish).
Samples named in DATASET/takedown.parquet are never exported, even if filtered before the takedown.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from datetime import UTC, datetime

import pyarrow as pa
from tqdm import tqdm

from curate import publish, storage
from curate.dataset import Dataset
from curate.errors import CurateError
from curate.export import hf_features, webdataset
from curate.export import index as export_index
from curate.filter import LABEL_ONLY_KEY, decisions_path
from curate.inspect import duck
from curate.recipe import Recipe, load_recipe
from curate.takedown.stage import matching_uids_sql

log = logging.getLogger(__name__)

FORMATS = ("parquet", "webdataset")
# Signal columns carried into the export when the signal exists: (signal, column).
_SIGNAL_COLUMNS = (
    ("language", "language"),
    ("language", "language_score"),
    ("nsfw", "nsfw_image"),
    ("nsfw", "nsfw_text"),
    ("image", "aspect"),
    ("hashes", "phash"),
)


def export(
    dataset: str,
    recipe: str | dict | Recipe,
    out: str | None = None,
    fmt: str = "parquet",
    samples_per_shard: int = 10_000,
) -> dict:
    """Export the samples that `curate filter --recipe` kept; returns the export summary."""
    start = time.perf_counter()
    if fmt not in FORMATS:
        raise CurateError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    if samples_per_shard < 1:
        raise CurateError(f"--samples-per-shard must be at least 1, got {samples_per_shard}")
    rcp = load_recipe(recipe)
    ds = Dataset(dataset)
    out = out or ds.export_dir(rcp.name)
    publish.check_replaceable(out, "export", dataset)
    dpath = decisions_path(dataset, rcp.name)
    if not storage.exists(dpath):
        raise CurateError(
            f"no decisions for recipe {rcp.name!r} in {ds.decisions_dir}. "
            f"Run `curate filter {dataset} --recipe {rcp.source}` first."
        )
    decisions = storage.read_parquet(dpath)
    label_only = (decisions.schema.metadata or {}).get(LABEL_ONLY_KEY) == b"true"

    con = duck.connect()
    con.register("decisions", decisions)
    con.execute("CREATE TABLE taken_down AS SELECT NULL::VARCHAR AS uid LIMIT 0")
    if storage.exists(ds.takedown_path):
        con.register("requests", storage.read_parquet(ds.takedown_path, columns=["kind", "value"]))
        shards_all = duck.source(con, ds.shard_paths(), "download shards", f"curate download ... {dataset}")
        con.execute(
            f"CREATE OR REPLACE TABLE taken_down AS SELECT DISTINCT uid FROM "
            f"({matching_uids_sql('requests', f'(SELECT uid, url, final_url FROM {shards_all})')})"
        )

    staging = _staging_dir(out)
    writer = _ShardWriter(staging, fmt, samples_per_shard, label_only)
    for shard in tqdm(ds.shard_paths(), desc=f"export {rcp.name}", unit="shard", disable=None):
        for batch in _shard_rows(con, ds, shard, label_only):
            writer.add(batch)
    writer.close()
    summary = {
        "recipe": rcp.name,
        "format": fmt,
        "label_only": label_only,
        "samples": writer.total,
        "shards": writer.shards,
        "samples_per_shard": samples_per_shard,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    export_index.write_index(staging, summary)
    publish.mark(staging, "export", dataset=dataset, recipe=rcp.name)
    _publish(staging, out)
    if not out.rstrip("/").startswith(ds.path("export")):
        export_index.register(dataset, out)
    summary = {**summary, "out": out, "seconds": round(time.perf_counter() - start, 3)}
    log.info(
        "export %s: %d samples in %d %s shards -> %s", rcp.name, writer.total, len(writer.shards), fmt, out
    )
    return summary


def _shard_rows(con, ds: Dataset, shard: str, label_only: bool):
    """Record batches of one shard's exported rows, in uid order.

    Download shards hold rows in completion order, which differs between runs; ordering by uid (a hash,
    so also a fair shuffle) makes the same dataset export to byte-identical shards and training
    reproducible.
    """
    key = Dataset.shard_key(shard)
    shard_src = duck.source(con, [shard], "shard", "curate download")
    selects, joins, seen = [], [], set()
    for signal, column in _SIGNAL_COLUMNS:
        path = storage.join(ds.signals_dir(signal), f"{key}.parquet")
        if signal not in seen and storage.exists(path):
            seen.add(signal)
            joins.append(
                f"LEFT JOIN {duck.source(con, [path], signal, 'curate annotate')} {signal} "
                f"ON {signal}.uid = s.uid"
            )
        if signal in seen:
            selects.append(f"{signal}.{column}")
    keep = "true" if label_only else "d.keep"
    query = f"""
        SELECT s.uid, s.url, s.caption, s.image, s.width, s.height, s.image_format, s.sha256,
               {"".join(c + ", " for c in selects)}d.reasons
        FROM {shard_src} s JOIN decisions d ON d.uid = s.uid
        {" ".join(joins)}
        WHERE s.status = 'success' AND s.image IS NOT NULL AND {keep}
          AND s.uid NOT IN (SELECT uid FROM taken_down)
        ORDER BY s.uid"""
    yield from con.sql(query).to_arrow_reader(batch_size=2048)


def _staging_dir(out: str) -> str:
    fs, inner = storage.url_to_fs(out)
    if storage.is_local(fs):
        tmp = f"{inner.rstrip('/')}.tmp-{uuid.uuid4().hex[:8]}"
        os.makedirs(tmp)
        return tmp
    if fs.exists(inner):  # an earlier export (publish.check_replaceable said so): object stores cannot rename
        fs.rm(inner, recursive=True)  # a folder away, so its shards go first, or stale ones would stay
    return out


def _publish(staging: str, out: str) -> None:
    """Swap the finished local export in place of the previous one (`publish.check_replaceable` said so)."""
    if staging == out:
        return
    _, inner = storage.url_to_fs(out)
    old = None
    if os.path.exists(inner):
        old = f"{inner.rstrip('/')}.old-{uuid.uuid4().hex[:8]}"
        os.replace(inner, old)
    os.replace(staging, inner)
    if old:
        shutil.rmtree(old)


class _ShardWriter:
    """Cuts the stream of exported rows into shards of `per_shard` samples."""

    def __init__(self, out: str, fmt: str, per_shard: int, label_only: bool) -> None:
        self.out, self.fmt, self.per_shard, self.label_only = out, fmt, per_shard, label_only
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.shards: dict[str, int] = {}
        self.total = 0

    def add(self, batch: pa.RecordBatch) -> None:
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        while self.pending_rows >= self.per_shard:
            table = pa.Table.from_batches(self.pending)
            self._write(table.slice(0, self.per_shard))
            rest = table.slice(self.per_shard)
            self.pending, self.pending_rows = rest.to_batches(), rest.num_rows

    def close(self) -> None:
        if self.pending_rows:
            self._write(pa.Table.from_batches(self.pending))
        self.pending, self.pending_rows = [], 0

    def _write(self, table: pa.Table) -> None:
        if not self.label_only:
            table = table.drop_columns(["reasons"])
        ext = "parquet" if self.fmt == "parquet" else "tar"
        name = f"{len(self.shards):05d}.{ext}"
        path = storage.join(self.out, name)
        if self.fmt == "parquet":
            storage.write_parquet_atomic(_hf_images(table), path)
        else:
            webdataset.write_tar(path, _samples(table))
        self.shards[name] = table.num_rows
        self.total += table.num_rows


def _hf_images(table: pa.Table) -> pa.Table:
    """`image` as HF's image struct with its features metadata: `datasets` loads it as an Image, no cast."""
    paths = [
        f"{uid}.{webdataset.image_extension(fmt)}"
        for uid, fmt in zip(
            table.column("uid").to_pylist(), table.column("image_format").to_pylist(), strict=True
        )
    ]
    i = table.column_names.index("image")
    table = table.set_column(
        i, pa.field("image", hf_features.IMAGE_TYPE), hf_features.image_column(table.column("image"), paths)
    )
    return hf_features.with_features(table)


def _samples(table: pa.Table):
    for row in table.to_pylist():
        image = row.pop("image")
        yield {
            "key": row["uid"],
            "image": image,
            "image_format": row.get("image_format"),
            "caption": row.get("caption"),
            "meta": row,
        }

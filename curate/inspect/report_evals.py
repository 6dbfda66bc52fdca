"""Evaluation images for the report's benchmark pairs, read back from where `curate overlap` read them.

The overlap stage stores matches and per-eval flags, not eval images; its .curate/summary.json records each
benchmark's PATH. eval_id is a relative file path (folder), a row index (Parquet) or a uid (another
dataset), so only the few matched images are read, never the whole benchmark.
"""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.parquet as pq

from curate import storage
from curate.dataset import Dataset, sidecar
from curate.dedup import evalsets
from curate.inspect import sql

log = logging.getLogger(__name__)


def benchmark_paths(dataset: str) -> dict[str, str]:
    """benchmark name -> the PATH it was read from (empty when overlap has not run)."""
    path = sidecar(Dataset(dataset).signals_dir("overlap"), "summary.json")
    if not storage.exists(path):
        return {}
    return {
        name: entry["path"]
        for name, entry in storage.read_json(path).items()
        if isinstance(entry, dict) and entry.get("path")
    }


def eval_images(path: str, eval_ids: list[str]) -> dict[str, bytes]:
    """eval_id -> image bytes for the ids found at `path`; missing or unreadable ones are left out."""
    try:
        kind = evalsets.kind_of(path)
        reader = {"folder": _folder, "parquet": _parquet, "dataset": _dataset}[kind]
        return reader(path, eval_ids)
    except Exception as exc:  # noqa: BLE001 - the benchmark moved or changed: the report shows "no image"
        log.warning("report: eval images of %s not readable (%s); pairs show no eval image", path, exc)
        return {}


def _folder(path: str, eval_ids: list[str]) -> dict[str, bytes]:
    fs, inner = storage.url_to_fs(path)
    out = {}
    for eval_id in eval_ids:
        if eval_id.startswith("/") or ".." in eval_id.split("/"):
            continue  # only files inside the benchmark folder
        target = storage.join(inner, eval_id)
        if fs.exists(target):
            out[eval_id] = fs.cat_file(target)
    return out


def _parquet(path: str, eval_ids: list[str]) -> dict[str, bytes]:
    wanted = {int(e): e for e in eval_ids if e.isdigit()}
    fs, inner = storage.url_to_fs(path)
    with fs.open(inner, "rb") as fh:
        pf = pq.ParquetFile(fh)
        column = next((c for c in evalsets._IMAGE_COLUMNS if c in pf.schema_arrow.names), None)
        if column is None:
            return {}
        out, start = {}, 0
        for batch in pf.iter_batches(columns=[column]):
            col = batch.column(column)
            col = col.field("bytes") if pa.types.is_struct(col.type) else col  # HF-style {bytes, path}
            for row in [r for r in wanted if start <= r < start + batch.num_rows]:
                out[wanted[row]] = col[row - start].as_py()
            start += batch.num_rows
            if start > max(wanted, default=-1):
                break
    return out


def _dataset(path: str, eval_ids: list[str]) -> dict[str, bytes]:
    con, _ = sql.open_views(path, trusted=True)  # only the query below
    try:
        rows = (
            con.sql(
                "SELECT uid, image FROM images WHERE uid IN (SELECT unnest(?))",
                params=[sorted(set(eval_ids))],
            )
            .to_arrow_table()
            .to_pylist()
        )
    finally:
        sql.close(con)
    return {r["uid"]: r["image"] for r in rows if r["image"]}

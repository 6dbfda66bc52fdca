"""Copies of a sample that curate derived from it, and removing them when the sample is taken down.

`curate takedown` purges the image from the download shards and the exports (curate.takedown.stage). What else
was derived from the sample is reached here (docs/CONSENT.md lists it):

- per-shard signals (signals/<name>/<shard>.parquet): every column of the sample's row but `uid` and the
  hashes (`sha256`, `phash`) becomes null: its 8x8 thumbnail, embeddings, caption statistics, scores;
- decisions (decisions/<recipe>.parquet): the sample is dropped with the reason `takedown`;
- search caches (.search/*.parquet in the dataset and in every export): deleted, embedded again on the
  next search;
- reports (`curate report`) and search pages (`curate search --html`) registered in
  DATASET/outputs.json: a report is written again (without the sample), a search page that shows the
  sample is deleted.
"""

from __future__ import annotations

import logging
import os

import pyarrow as pa
import pyarrow.compute as pc

from curate import storage
from curate.dataset import Dataset
from curate.errors import CurateError
from curate.inspect import duck

log = logging.getLogger(__name__)

# Signal columns kept for a taken-down sample: they hold no pixels or text, and let a later crawl
# recognise a re-upload of the same picture.
KEPT_SIGNAL_COLUMNS = ("uid", "sha256", "phash")
# Folders under signals/ that hold global outputs (uids and cluster or benchmark ids, no content).
GLOBAL_SIGNALS = ("dedup", "overlap")
TAKEDOWN_REASON = "takedown"
REGISTRY = "outputs.json"
SEARCH_CACHES = (".search", "search")  # the cache folder, and its name in older versions


def _hits(table: pa.Table, uids: set[str]) -> pa.ChunkedArray:
    return pc.is_in(table.column("uid"), pa.array(sorted(uids), pa.string()))


def purge_signals(ds: Dataset, uids: set[str], shard_keys: set[str]) -> int:
    """Null the content columns of `uids` in the signal files of `shard_keys`; returns the rows nulled."""
    base = ds.path("signals")
    fs, inner = storage.url_to_fs(base)
    if not fs.exists(inner):
        return 0
    names = sorted(p.rstrip("/").rpartition("/")[2] for p in fs.ls(inner, detail=False) if fs.isdir(p))
    nulled = 0
    for name in names:
        if name in GLOBAL_SIGNALS or name.startswith((".", "_")):
            continue
        for key in sorted(shard_keys):
            path = storage.join(ds.signals_dir(name), f"{key}.parquet")
            if storage.exists(path):
                nulled += _null_rows(path, uids)
    return nulled


def _null_rows(path: str, uids: set[str]) -> int:
    table = storage.read_parquet(path)
    if "uid" not in table.column_names:
        return 0
    hit = _hits(table, uids)
    count = int(pc.sum(hit).as_py() or 0)
    if not count:
        return 0
    for i, field in enumerate(table.schema):
        if field.name not in KEPT_SIGNAL_COLUMNS:
            column = pc.if_else(hit, pa.scalar(None, field.type), table.column(i))
            table = table.set_column(i, field, column)
    storage.write_parquet_atomic(table, path)
    return count


def purge_decisions(ds: Dataset, uids: set[str]) -> int:
    """Drop `uids` with the reason `takedown` in every recipe's decisions; returns decisions changed."""
    con = duck.connect()
    con.register("gone", pa.table({"uid": sorted(uids)}))
    changed = 0
    for path in storage.list_files(ds.decisions_dir, ".parquet"):
        table = storage.read_parquet(path)
        if not {"uid", "keep", "reasons"} <= set(table.column_names):
            continue  # not a decisions file (e.g. a balance report beside it)
        con.register("d", table)
        hit = "uid IN (SELECT uid FROM gone)"
        missing = f"NOT list_contains(coalesce(reasons, []), '{TAKEDOWN_REASON}')"
        count = con.execute(f"SELECT count(*) FROM d WHERE {hit} AND (keep OR {missing})").fetchall()[0][0]
        if count:
            new = con.sql(f"""SELECT * REPLACE (keep AND NOT {hit} AS keep,
                                  CASE WHEN {hit} AND {missing}
                                       THEN list_append(coalesce(reasons, []), '{TAKEDOWN_REASON}')
                                       ELSE reasons END AS reasons)
                              FROM d""").to_arrow_table()  # DuckDB keeps the row order of a plain scan
            storage.write_parquet_atomic(new.cast(table.schema), path)  # schema and its metadata (label-only)
            changed += count
        con.unregister("d")
    duck.close(con)
    return changed


def purge_search_caches(folders: list[str]) -> int:
    """Delete the search embedding caches under each folder (the dataset and its exports); returns files."""
    removed = 0
    for folder in folders:
        for path in [
            p for name in SEARCH_CACHES for p in storage.list_files(storage.join(folder, name), ".parquet")
        ]:
            fs, inner = storage.url_to_fs(path)
            fs.rm(inner)
            removed += 1
    return removed


def register(dataset: str, kind: str, path: str, **arguments: object) -> None:
    """Remember a page written from `dataset` (and how), so that a takedown can reach it.

    The dataset may be read-only to whoever writes the page: the page is then not registered, with a warning.
    """
    registry = Dataset(dataset).path(REGISTRY)
    fs, inner = storage.url_to_fs(path)
    if storage.is_local(fs):
        path = os.path.abspath(inner)  # found again from any working directory
    try:
        entries = [e for e in registered(dataset) if e["path"] != path]
        storage.write_json_atomic([*entries, {"kind": kind, "path": path, **arguments}], registry)
    except OSError as exc:
        log.warning("could not record %s in %s (%s): a later takedown will not reach it", path, registry, exc)


def registered(dataset: str) -> list[dict]:
    registry = Dataset(dataset).path(REGISTRY)
    return list(storage.read_json(registry)) if storage.exists(registry) else []


def purge_pages(dataset: str, uids: set[str]) -> dict[str, int]:
    """Write registered reports again and delete registered search pages that show one of `uids`."""
    from curate.inspect.report import build_report

    counts = {"reports_rewritten": 0, "pages_deleted": 0}
    for entry in registered(dataset):
        fs, inner = storage.url_to_fs(entry["path"])
        if not fs.exists(inner):
            continue
        if entry["kind"] == "report":
            arguments = {k: v for k, v in entry.items() if k not in ("kind", "path")}
            try:
                build_report(dataset, entry["path"], **arguments)
                counts["reports_rewritten"] += 1
            except CurateError as exc:  # e.g. its recipe's decisions were deleted since: remove the old page
                log.warning("takedown: report %s cannot be rebuilt (%s); deleting it", entry["path"], exc)
                fs.rm(inner)
                counts["pages_deleted"] += 1
        elif entry["kind"] == "search page":
            text = fs.cat(inner).decode("utf-8", errors="replace")
            if any(uid in text for uid in uids):
                fs.rm(inner)
                counts["pages_deleted"] += 1
    return counts


def purge_derived(dataset: str, uids: set[str], shard_keys: set[str], exports: list[str]) -> dict[str, int]:
    """Every derived copy of `uids` listed above; returns what was done, for the takedown summary."""
    if not uids:
        return {
            "signal_rows_nulled": 0,
            "decisions_dropped": 0,
            "search_caches_deleted": 0,
            "reports_rewritten": 0,
            "pages_deleted": 0,
        }
    ds = Dataset(dataset)
    counts = {
        "signal_rows_nulled": purge_signals(ds, uids, shard_keys),
        "decisions_dropped": purge_decisions(ds, uids),
        "search_caches_deleted": purge_search_caches([dataset, *exports]),
    }
    return {**counts, **purge_pages(dataset, uids)}

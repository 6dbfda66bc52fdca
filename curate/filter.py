"""`curate filter`: decisions as one DuckDB query over the shards and the stored signals.

Every active filter (curate.filters) contributes a "drop when" expression; a sample's `reasons` lists
those that fire, and keep = no reasons. Only Parquet columns the expressions read are scanned (never
image bytes), so changing a threshold and rerunning takes seconds and recomputes no signal.
"""

from __future__ import annotations

import logging
import time

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import filters, storage
from curate.concepts import balance
from curate.dataset import Dataset, sidecar
from curate.errors import CurateError
from curate.filters.base import PRODUCERS
from curate.inspect import duck
from curate.recipe import Recipe, load_recipe
from curate.schema import BALANCE_REASONS, DECISIONS_SCHEMA, DROP_REASONS
from curate.takedown.stage import matching_uids_sql

log = logging.getLogger(__name__)

LABEL_ONLY_KEY = b"curate.label_only"


def decisions_path(dataset: str, recipe_name: str) -> str:
    return storage.join(Dataset(dataset).decisions_dir, f"{recipe_name}.parquet")


def summary_path(dataset: str, recipe_name: str) -> str:
    return sidecar(Dataset(dataset).decisions_dir, f"{recipe_name}.summary.json")


def filter_dataset(
    dataset: str, recipe: str | dict | Recipe, *, label_only: bool = False, threads: int | None = None
) -> dict:
    """Write DATASET/decisions/<recipe>.parquet (uid, keep, reasons) and its summary; return the summary.

    label_only: the decisions are the same, but `curate export` then includes every downloaded sample
    (taken-down ones excepted) and carries `reasons` as a label column instead of dropping.
    """
    start = time.perf_counter()
    rcp = load_recipe(recipe)
    ds = Dataset(dataset)
    active = filters.build(rcp.filter)
    bal = balance.from_recipe(rcp.raw, rcp.source)
    con = duck.connect(threads)
    needs = {need for f in active for need in f.needs} | ({"concepts"} if bal else set())
    views = _register_views(con, ds, needs)
    if bal:
        balance.register_entries(con, ds, storage.list_files(ds.signals_dir("concepts"), ".parquet"))
    report = None
    try:
        if bal:
            rules, report = _balanced(con, ds, active, views, bal)
        else:
            rules = _rules(active, views, None, positional=False)
        table = con.sql(
            f"SELECT uid, reasons = [] AS keep, reasons, missing FROM ({rules}) ORDER BY uid"
        ).to_arrow_table()
    except duckdb.BinderException as exc:  # e.g. s.original_format in shards written before it existed
        raise CurateError(
            f"recipe {rcp.name} reads a column these shards or signals lack ({exc}). Re-run "
            f"`curate download` / `curate annotate` on {ds.root} with this version of curate, "
            "or remove the rule from the recipe."
        ) from None
    _check_coverage(table.column("missing"), ds)
    table = table.select(["uid", "keep", "reasons"]).cast(DECISIONS_SCHEMA)
    table = table.replace_schema_metadata({LABEL_ONLY_KEY: b"true" if label_only else b"false"})
    storage.write_parquet_atomic(table, decisions_path(dataset, rcp.name))

    con.register("d", table)
    if report is not None:
        storage.write_parquet_atomic(report, balance.report_path(dataset, rcp.name))
    kept, total = con.execute("SELECT count(*) FILTER (WHERE keep), count(*) FROM d").fetchall()[0]
    counts = dict(
        con.execute("SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM d) GROUP BY r").fetchall()
    )
    summary = {
        "recipe": rcp.name,
        "recipe_source": rcp.source,
        "label_only": label_only,
        "samples": int(total),
        "kept": int(kept),
        "dropped": int(total - kept),
        "dropped_by_reason": {
            r: int(counts.get(r, 0))
            for r in DROP_REASONS + BALANCE_REASONS
            if r in {f.reason for f in active} | (set(BALANCE_REASONS) if bal else set())
        },
        "filters": {f.reason: f.drop_when() for f in active},
        "seconds": round(time.perf_counter() - start, 3),
    }
    storage.write_json_atomic(summary, summary_path(dataset, rcp.name))
    log.info("filter %s: kept %d of %d (%.2f s)", rcp.name, kept, total, summary["seconds"])
    return summary


def _register_views(con, ds: Dataset, needs: set[str]) -> list[str]:
    """Create view `s` (shards without image bytes), `takedown`, and each needed signal view."""
    shards = duck.source(
        con, ds.shard_paths(), f"download shards in {ds.shards_dir}", f"curate download ... {ds.root}"
    )
    # Every shard column but the image bytes; DuckDB reads only the ones the filters name.
    con.execute(f"CREATE VIEW s AS SELECT * EXCLUDE (image) FROM {shards}")
    views = []
    for name in sorted(needs):
        if name == "dedup":
            path = storage.join(ds.signals_dir("dedup"), "clusters.parquet")
            files = [path] if storage.exists(path) else []
        elif name == "overlap":
            files = [
                p
                for p in storage.list_files(ds.signals_dir("overlap"), ".parquet")
                if not p.endswith(".eval.parquet")
            ]
        else:
            files = storage.list_files(ds.signals_dir(name), ".parquet")
        src = duck.source(
            con,
            files,
            f"'{name}' signals in {ds.signals_dir(name)} (the recipe needs them)",
            f"{PRODUCERS[name]} {ds.root}",
        )
        if name == "overlap":
            con.execute(f"""CREATE VIEW overlap AS SELECT uid, count(*) AS matches,
                            list(DISTINCT benchmark) AS benchmarks FROM {src} GROUP BY uid""")
        else:
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM {src}")
        views.append(name)
    _register_takedown(con, ds)
    views.append("takedown")
    return views


def _balanced(con, ds: Dataset, active: list, views: list[str], bal: balance.Balance) -> tuple[str, pa.Table]:
    """Balancing, the last step: the rules' rows decided in memory (curate.concepts.balance); returns the
    query of the decided rows and the per-entry report."""
    rows = None
    if _aligned(ds, "concepts"):
        rows = con.sql(_rules(active, views, None, positional=True)).to_arrow_table()
        if pc.any(pc.equal(pc.list_flatten(rows.column("missing")), "concepts")).as_py():
            rows = None  # concepts rows in another order than the shards': join them on uid instead
        else:
            rows = balance.with_pool_concepts(
                rows, storage.list_files(ds.signals_dir("concepts"), ".parquet")
            )
    if rows is None:
        rows = con.sql(bal.pool(_rules(active, views, bal, positional=False))).to_arrow_table()
    decided, report = bal.decide(con, rows)
    con.register("decided", decided)
    return balance.with_reasons("decided"), report


def _rules(active: list, views: list[str], bal: balance.Balance | None, positional: bool) -> str:
    """The rules query: (uid, reasons, missing[, concept_ids when balancing]) per shard row.

    positional: join the concepts signal by position (no hash join of millions of uids; see _aligned);
    a row whose uid differs then counts as missing, as an unmatched one does in a join on uid.
    """
    cases = ", ".join(f"CASE WHEN {f.drop_when()} THEN '{f.reason}' END" for f in active)
    joins = " ".join(
        ["POSITIONAL JOIN concepts" if positional else ""]
        + [f"LEFT JOIN {v} ON {v}.uid = s.uid" for v in views if not (positional and v == "concepts")]
    )
    # A downloaded sample without a row in a per-sample signal would silently pass its filters.
    covered = [v for v in views if v not in ("overlap", "takedown")]
    missing = ", ".join(
        f"CASE WHEN s.status = 'success' AND {v}.uid IS DISTINCT FROM s.uid THEN '{v}' END" for v in covered
    )
    carried = ", CASE WHEN concepts.uid = s.uid THEN concepts.concept_ids END AS concept_ids" if bal else ""
    return f"""
            SELECT s.uid, list_filter([{cases}], lambda r: r IS NOT NULL)::VARCHAR[] AS reasons,
                   list_filter([{missing or "NULL"}], lambda r: r IS NOT NULL)::VARCHAR[] AS missing
                   {carried}
            FROM s {joins}"""


def _aligned(ds: Dataset, name: str) -> bool:
    """True when signals/<name> holds one file per shard, of the same key and row count (as `curate
    annotate` writes them: each shard's rows in order)."""
    shards, signal = ds.shard_paths(), storage.list_files(ds.signals_dir(name), ".parquet")
    if [Dataset.shard_key(p) for p in shards] != [Dataset.shard_key(p) for p in signal]:
        return False
    return all(_rows(a) == _rows(b) for a, b in zip(shards, signal, strict=True))


def _rows(path: str) -> int:
    fs, inner = storage.url_to_fs(path)
    with fs.open(inner, "rb") as fh:
        return pq.ParquetFile(fh).metadata.num_rows


def _check_coverage(missing: pa.ChunkedArray, ds: Dataset) -> None:
    """Name the first signal that some downloaded samples lack, and the command that writes it."""
    lacking = pc.list_flatten(missing)
    if len(lacking) == 0:
        return
    counts = pc.value_counts(lacking).to_pylist()
    name, n = counts[0]["values"], counts[0]["counts"]
    raise CurateError(
        f"{n} downloaded samples have no '{name}' signal (new or changed shards). "
        f"Run `{PRODUCERS[name]} {ds.root}` first."
    )


def _register_takedown(con, ds: Dataset) -> None:
    """View `takedown` (uid, hit) of the samples DATASET/takedown.parquet names; empty without requests."""
    if not storage.exists(ds.takedown_path):
        con.execute("CREATE VIEW takedown AS SELECT NULL::VARCHAR AS uid, NULL::BOOLEAN AS hit WHERE false")
        return
    con.register("takedown_requests", storage.read_parquet(ds.takedown_path, columns=["kind", "value"]))
    con.execute(f"""CREATE VIEW takedown AS SELECT DISTINCT uid, true AS hit
                    FROM ({matching_uids_sql("takedown_requests", "s")})""")

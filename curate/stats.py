"""`compute_stats`: the numbers a dataset card needs, from the inspect views (docs/FORMAT.md#inspect).

Every section is one DuckDB scan over the columns it needs (never the image bytes). A section whose
stage has not run yet is None, so a partial dataset still gets a card. Distributions come as
quantiles plus a fixed-edge histogram, so plots and JSON consumers need no second pass.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import duckdb

from curate import sql, storage
from curate.dataset import Dataset
from curate.errors import CurateError

log = logging.getLogger(__name__)

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
TOP_HOSTS = 10
TOP_LANGUAGES = 15


def host_sql(expr: str) -> str:
    """SQL for the lower-cased host of the URL in `expr` ('' when it has none)."""
    return rf"lower(regexp_extract({expr}, '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^:/?#]+)', 1))"


HOST_SQL = host_sql("url")


@dataclass(frozen=True)
class Dist:
    """A distribution to compute: a SQL expression, its histogram edges (last bin open-ended)."""

    key: str
    expr: str
    edges: tuple[float, ...]


IMAGE_DISTS = (
    Dist("width", "width", (0, 64, 128, 256, 512, 1024, 2048)),
    Dist("height", "height", (0, 64, 128, 256, 512, 1024, 2048)),
    Dist("shorter_side", "least(width, height)", (0, 64, 128, 200, 256, 512, 1024)),
    Dist("aspect", "greatest(width, height)::DOUBLE / nullif(least(width, height), 0)",
         (1, 1.25, 1.5, 2, 3, 5)),
    Dist("bytes", "bytes", (0, 10_000, 30_000, 100_000, 300_000, 1_000_000)),
)
CAPTION_DISTS = (
    Dist("chars", "length(caption)", (0, 1, 10, 20, 40, 80, 160, 320)),
    Dist("words", "CASE WHEN trim(coalesce(caption, '')) = '' THEN 0 "
                  "ELSE length(regexp_split_to_array(trim(caption), '\\s+')) END", (0, 1, 2, 3, 5, 10, 20, 40)),
)
SCORE_EDGES = tuple(i / 10 for i in range(11))
NSFW_DISTS = (Dist("image", "nsfw_image", SCORE_EDGES[:-1]), Dist("text", "nsfw_text", SCORE_EDGES[:-1]))


def compute_stats(dataset: str, recipe: str | None = None, *, threads: int | None = None) -> dict:
    """Dataset-card numbers for `dataset`; the recipes section holds `recipe` only, or every recipe."""
    start = time.perf_counter()
    con, infos = sql.open_views(dataset, threads=threads)
    try:
        files = {info.name: info.files for info in infos}
        recipes = _recipe_names(con) if files["decisions"] else []
        if recipe is not None and recipe not in recipes:
            raise CurateError(f"recipe {recipe!r} has no decisions in {dataset}: run `curate filter {dataset} "
                              f"--recipe {recipe}` first" + (f" (decided recipes: {', '.join(recipes)})"
                                                             if recipes else ""))
        stats = {
            "dataset": str(dataset),
            "files": files,
            "manifest": _manifest(con) if files["manifest"] else None,
            "download": _download(con, Dataset(str(dataset))) if files["samples"] else None,
            "images": _images(con) if files["samples"] else None,
            "captions": _captions(con, flags=files["signals_caption"] > 0) if files["samples"] else None,
            "language": _language(con) if files["signals_language"] else None,
            "nsfw": _nsfw(con) if files["signals_nsfw"] else None,
            "duplicates": _duplicates(con) if files["clusters"] else None,
            "overlap": _overlap(con) if files["overlap"] or files["eval_images"] else None,
            "recipes": {r: _recipe(con, r) for r in ([recipe] if recipe else recipes)},
            "takedowns": _takedowns(con) if files["takedowns"] else None,
        }
    finally:
        sql.close(con)
    stats["seconds"] = round(time.perf_counter() - start, 3)
    return stats


def _one(con: duckdb.DuckDBPyConnection, query: str) -> dict:
    cur = con.execute(query)
    return dict(zip([c[0] for c in cur.description], cur.fetchall()[0]))


def _pairs(con: duckdb.DuckDBPyConnection, query: str) -> dict:
    return {k if k is not None else "null": int(v) for k, v in con.execute(query).fetchall()}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def _dist_sql(d: Dist) -> str:
    """Aggregates of one distribution, named `<key>__<stat>` so `_dist_out` can regroup them."""
    q = ", ".join(str(p) for p in QUANTILES)
    parts = [f"count({d.expr}) AS {d.key}__n", f"min({d.expr})::DOUBLE AS {d.key}__min",
             f"max({d.expr})::DOUBLE AS {d.key}__max", f"avg({d.expr})::DOUBLE AS {d.key}__mean",
             f"quantile_cont({d.expr}, [{q}]) AS {d.key}__q"]
    edges = list(d.edges) + [None]
    for i, lo in enumerate(d.edges):
        hi = edges[i + 1]
        cond = f"{d.expr} >= {lo}" + (f" AND {d.expr} < {hi}" if hi is not None else "")
        parts.append(f"count(*) FILTER (WHERE {cond}) AS {d.key}__b{i}")
    return ", ".join(parts)


def _dist_out(row: dict, d: Dist) -> dict:
    n = int(row[f"{d.key}__n"])
    q = row[f"{d.key}__q"] or []
    labels = [f"{_num(lo)}-{_num(hi)}" for lo, hi in zip(d.edges, d.edges[1:])] + [f">={_num(d.edges[-1])}"]
    return {
        "count": n,
        "min": _round(row[f"{d.key}__min"]), "max": _round(row[f"{d.key}__max"]),
        "mean": _round(row[f"{d.key}__mean"]),
        "quantiles": {f"p{int(p * 100)}": _round(v) for p, v in zip(QUANTILES, q)},
        "histogram": {"edges": list(d.edges), "labels": labels,
                      "counts": [int(row[f"{d.key}__b{i}"]) for i in range(len(d.edges))]},
    }


def _num(v: float) -> str:
    """Short bin-edge label: 0.5, 200, 30k, 1M."""
    for div, unit in ((1_000_000, "M"), (1_000, "k")):
        if v >= div and v % (div // 10) == 0:
            return f"{v / div:g}{unit}"
    return f"{v:g}"


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)


# sections -----------------------------------------------------------------------------------------

def _manifest(con: duckdb.DuckDBPyConnection) -> dict:
    by_status = _pairs(con, "SELECT status, count(*) FROM manifest GROUP BY 1 ORDER BY 2 DESC")
    return {"rows": sum(by_status.values()), "by_status": by_status}


def _download(con: duckdb.DuckDBPyConnection, ds: Dataset) -> dict:
    by_status = _pairs(con, "SELECT status, count(*) FROM samples GROUP BY 1 ORDER BY 2 DESC")
    rows = sum(by_status.values())
    success = by_status.get("success", 0)
    failures = _pairs(con, "SELECT coalesce(error_class, 'unknown'), count(*) FROM samples "
                           "WHERE status <> 'success' GROUP BY 1 ORDER BY 2 DESC, 1")
    hosts = con.execute(f"""
        WITH f AS (SELECT {HOST_SQL} AS host, error_class FROM samples WHERE status = 'failed'),
             top AS (SELECT host, count(*) AS failed, mode(error_class) AS main_error FROM f
                     GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {TOP_HOSTS})
        SELECT top.host, top.failed, t.rows, top.main_error FROM top JOIN
               (SELECT {HOST_SQL} AS host, count(*) AS rows FROM samples
                WHERE {HOST_SQL} IN (SELECT host FROM top) GROUP BY 1) t USING (host)
        ORDER BY top.failed DESC, top.host""").fetchall()
    return {
        "rows": rows,
        "by_status": by_status,
        "success_rate": _rate(success, rows),
        "failures_by_class": failures,
        "top_failing_hosts": [{"host": h or "(no host)", "failed": int(f), "rows": int(r), "failure_rate":
                               _rate(int(f), int(r)), "main_error": e} for h, f, r, e in hosts],
        "stats_files": _stats_files(ds),
    }


def _stats_files(ds: Dataset) -> dict:
    """Totals of the per-shard NNNNN.stats.json markers written by `curate download`."""
    paths = storage.list_files(ds.shards_dir, ".stats.json")
    rows, status = 0, {}
    for path in paths:
        data = storage.read_json(path)
        rows += int(data.get("rows", 0))
        for key, value in (data.get("status") or {}).items():
            status[key] = status.get(key, 0) + int(value)
    return {"shards": len(paths), "rows": rows, "by_status": status}


def _images(con: duckdb.DuckDBPyConnection) -> dict:
    row = _one(con, f"SELECT {', '.join(_dist_sql(d) for d in IMAGE_DISTS)} FROM samples WHERE status = 'success'")
    out = {d.key: _dist_out(row, d) for d in IMAGE_DISTS}
    out["count"] = out["width"]["count"]
    out["formats"] = _pairs(con, "SELECT image_format, count(*) FROM samples WHERE status = 'success' "
                                 "GROUP BY 1 ORDER BY 2 DESC, 1")
    return out


def _captions(con: duckdb.DuckDBPyConnection, flags: bool) -> dict:
    row = _one(con, f"SELECT count(*) FILTER (WHERE trim(coalesce(caption, '')) = '') AS empty, "
                    f"{', '.join(_dist_sql(d) for d in CAPTION_DISTS)} FROM samples")
    out = {d.key: _dist_out(row, d) for d in CAPTION_DISTS}
    out["empty"] = int(row["empty"])
    if flags:
        counts = _one(con, "SELECT count(*) FILTER (WHERE caption_is_filename) AS filename, "
                          "count(*) FILTER (WHERE caption_is_url) AS url, "
                          "count(*) FILTER (WHERE caption_has_html) AS html, "
                          "count(*) FILTER (WHERE caption_is_boilerplate) AS boilerplate FROM signals_caption")
        out["flags"] = {k: int(v) for k, v in counts.items()}
    return out


def _language(con: duckdb.DuckDBPyConnection) -> dict | None:
    counts = con.execute("SELECT coalesce(language, 'unknown') AS language, count(*), avg(language_score) "
                     "FROM signals_language GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()
    total = sum(int(n) for _, n, _ in counts)
    backends = _pairs(con, "SELECT language_backend, count(*) FROM signals_language WHERE language_backend IS NOT NULL "
                           "GROUP BY 1 ORDER BY 2 DESC")
    if not backends:
        return None
    top = [{"language": lang, "count": int(n), "share": _rate(int(n), total), "mean_score": _round(s)}
           for lang, n, s in counts[:TOP_LANGUAGES]]
    return {"samples": total, "backends": backends, "distinct": len(counts), "top": top,
            "other": sum(int(n) for _, n, _ in counts[TOP_LANGUAGES:])}


def _nsfw(con: duckdb.DuckDBPyConnection) -> dict | None:
    row = _one(con, f"SELECT {', '.join(_dist_sql(d) for d in NSFW_DISTS)}, "
                    "count(*) FILTER (WHERE nsfw_image >= 0.5) AS image_over_half, "
                    "count(*) FILTER (WHERE nsfw_text >= 0.5) AS text_over_half FROM signals_nsfw")
    if not row["image__n"] and not row["text__n"]:
        return None
    out = {d.key: _dist_out(row, d) for d in NSFW_DISTS}
    out["image"]["at_least_0.5"] = int(row["image_over_half"])
    out["text"]["at_least_0.5"] = int(row["text_over_half"])
    return out


def _duplicates(con: duckdb.DuckDBPyConnection) -> dict:
    row = _one(con, """SELECT count(*) AS samples, count(*) FILTER (WHERE NOT is_representative) AS duplicates,
                              count(DISTINCT cluster_id) FILTER (WHERE NOT is_representative) AS clusters
                       FROM clusters""")
    largest = con.execute("SELECT max(n) FROM (SELECT count(*) AS n FROM clusters GROUP BY cluster_id)").fetchall()[0]
    by_kind = _pairs(con, "SELECT duplicate_kind, count(*) FROM clusters WHERE NOT is_representative "
                          "GROUP BY 1 ORDER BY 2 DESC")
    samples, dups = int(row["samples"]), int(row["duplicates"])
    return {"samples": samples, "duplicates": dups, "rate": _rate(dups, samples), "by_kind": by_kind,
            "clusters_with_duplicates": int(row["clusters"]), "largest_cluster": int(largest[0] or 0)}


def _overlap(con: duckdb.DuckDBPyConnection) -> dict:
    rows = con.execute("""
        WITH e AS (SELECT benchmark, count(DISTINCT eval_id) AS eval_images FROM eval_images GROUP BY 1),
             m AS (SELECT benchmark, count(DISTINCT eval_id) AS matched, count(DISTINCT uid) AS flagged
                   FROM overlap GROUP BY 1)
        SELECT benchmark, e.eval_images, coalesce(m.matched, 0), coalesce(m.flagged, 0)
        FROM e FULL OUTER JOIN m USING (benchmark) ORDER BY benchmark""").fetchall()
    return {b: {"eval_images": None if n is None else int(n), "eval_images_matched": int(m),
                "overlap_pct": None if not n else round(100 * int(m) / int(n), 2), "training_samples_flagged": int(f)}
            for b, n, m, f in rows}


def _recipe_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT DISTINCT recipe FROM decisions ORDER BY 1").fetchall()]


def _recipe(con: duckdb.DuckDBPyConnection, recipe: str) -> dict:
    """Kept count and drops per reason; a reason's detail after ':' (`language:de`) is grouped away."""
    lit = "'" + recipe.replace("'", "''") + "'"
    row = _one(con, f"SELECT count(*) AS samples, count(*) FILTER (WHERE keep) AS kept FROM decisions "
                    f"WHERE recipe = {lit}")
    reasons = con.execute(f"""
        WITH d AS (SELECT uid, list_distinct(list_transform(reasons, lambda r: split_part(r, ':', 1))) AS rs
                   FROM decisions WHERE recipe = {lit} AND NOT keep)
        SELECT r, count(*), count(*) FILTER (WHERE len(rs) = 1) FROM (SELECT uid, rs, unnest(rs) AS r FROM d)
        GROUP BY 1 ORDER BY 2 DESC, 1""").fetchall()
    samples, kept = int(row["samples"]), int(row["kept"])
    return {"samples": samples, "kept": kept, "dropped": samples - kept, "kept_rate": _rate(kept, samples),
            "drops_by_reason": {r: int(n) for r, n, _ in reasons},
            "drops_by_reason_alone": {r: int(a) for r, _, a in reasons}}


def _takedowns(con: duckdb.DuckDBPyConnection) -> dict:
    return {"requests": _pairs(con, "SELECT kind, count(*) FROM takedowns GROUP BY 1 ORDER BY 1"),
            "uids_purged": int(con.execute("SELECT coalesce(sum(uids_purged), 0) FROM takedowns").fetchall()[0][0])}

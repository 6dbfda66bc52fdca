"""The coverage card of a balanced recipe: what MetaCLIP balancing did to the pool's concepts.

For each recipe with a [balance] table (its per-entry report, decisions/_balance/<recipe>.parquet) the
card compares the pool before balancing (samples every other rule keeps) with the kept samples: the
head/tail curve of entry counts, the top and the starved entries, entry languages, caption languages
(signals/language) and domains, and, for a target concept list the user names (e.g. a benchmark's
class names), how many samples mention each, zeros first. It is the dataset's diversity statement.
"""

from __future__ import annotations

import logging

import duckdb
import numpy as np
import pyarrow as pa

from curate import storage
from curate.concepts import balance
from curate.concepts.entries import load_entries
from curate.concepts.matching import Matcher
from curate.dataset import Dataset

log = logging.getLogger(__name__)

TOP = 20
TOP_GROUPS = 15
CURVE_POINTS = 60
BATCH = 65_536


def cards(
    con: duckdb.DuckDBPyConnection, dataset: str, recipes: list[str], targets: str | None = None
) -> dict | None:
    """{recipe: card} for the recipes that were balanced; None when none was. `con` has the inspect views."""
    out = {}
    for recipe in recipes:
        path = balance.report_path(dataset, recipe)
        if storage.exists(path):
            out[recipe] = card(con, Dataset(dataset), recipe, storage.read_parquet(path), targets)
    return out or None


def card(
    con: duckdb.DuckDBPyConnection, ds: Dataset, recipe: str, report: pa.Table, targets: str | None
) -> dict:
    """One recipe's card from its per-entry report and the samples it decided."""
    cur = con.cursor()
    try:
        cur.register("entry_report", report)
        totals = _one(
            cur,
            """SELECT count(*) AS entries, count(*) FILTER (WHERE matched > 0) AS matched_before,
                                     count(*) FILTER (WHERE kept > 0) AS matched_after,
                                     coalesce(sum(matched), 0) AS matches_before,
                                     coalesce(sum(kept), 0) AS matches_after
                              FROM entry_report""",
        )
        columns = "entry, lang, matched AS before, kept AS after, round(p, 6) AS p"
        top = _rows(cur, f"SELECT {columns} FROM entry_report ORDER BY matched DESC, id LIMIT {TOP}")
        starved = _rows(
            cur,
            f"SELECT {columns} FROM entry_report WHERE matched > 0 ORDER BY kept, matched, id LIMIT {TOP}",
        )
        entry_langs = _rows(
            cur,
            f"""SELECT coalesce(lang, '') AS "group", sum(matched)::BIGINT AS before,
                                            sum(kept)::BIGINT AS after
                                     FROM entry_report GROUP BY 1 ORDER BY before DESC LIMIT {TOP_GROUPS}""",
        )
        name = recipe.replace("'", "''")
        pool = f"""(SELECT s.uid, s.url, s.caption, d.keep FROM decisions d JOIN samples s USING (uid)
                    WHERE d.recipe = '{name}' AND (d.keep OR d.reasons = ['balanced_out']))"""
        samples = _one(cur, f"SELECT count(*) AS before, count(*) FILTER (WHERE keep) AS after FROM {pool}")
        domains = _groups(cur, f"SELECT url_host(url) AS g, keep FROM {pool}")
        languages = _groups(
            cur,
            f"""SELECT coalesce(l.language, '') AS g, p.keep FROM {pool} p
                                     LEFT JOIN signals_language l USING (uid)""",
        )
        return {
            **totals,
            "samples_before": samples["before"],
            "samples_after": samples["after"],
            "curve": _curve(report.column("matched").to_numpy(), report.column("kept").to_numpy()),
            "top": top,
            "starved": starved,
            "entry_languages": entry_langs,
            "languages": languages,
            "domains": domains,
            "targets": _targets(cur, pool, targets) if targets else None,
        }
    finally:
        cur.close()


def _one(cur: duckdb.DuckDBPyConnection, query: str) -> dict:
    c = cur.execute(query)
    return {k[0]: int(v) for k, v in zip(c.description, c.fetchall()[0], strict=True)}


def _rows(cur: duckdb.DuckDBPyConnection, query: str) -> list[dict]:
    return cur.sql(query).to_arrow_table().to_pylist()


def _groups(cur: duckdb.DuckDBPyConnection, query: str) -> list[dict]:
    """Top groups by samples before balancing, with their counts after."""
    return _rows(
        cur,
        f"""SELECT g AS "group", count(*) AS before, count(*) FILTER (WHERE keep) AS after
                          FROM ({query}) GROUP BY g ORDER BY before DESC, g LIMIT {TOP_GROUPS}""",
    )


def _curve(before: np.ndarray, after: np.ndarray) -> dict:
    """Entry counts by rank (largest first) at log-spaced ranks: the head/tail curve on log axes."""
    b, a = np.sort(before[before > 0])[::-1], np.sort(after[after > 0])[::-1]
    n = max(len(b), 1)
    ranks = np.unique(np.geomspace(1, n, CURVE_POINTS).astype(np.int64))
    return {
        "rank": ranks.tolist(),
        "before": [int(b[r - 1]) if r <= len(b) else 0 for r in ranks],
        "after": [int(a[r - 1]) if r <= len(a) else 0 for r in ranks],
    }


def _targets(cur: duckdb.DuckDBPyConnection, pool: str, path: str) -> list[dict]:
    """Samples whose caption names each target concept (MetaCLIP's matching rule), before and after,
    zeros (after balancing) first."""
    listed = load_entries(path)
    matcher = Matcher(listed)
    before = np.zeros(len(listed.entries), np.int64)
    after = np.zeros(len(listed.entries), np.int64)
    reader = cur.sql(f"SELECT caption, keep FROM {pool}").to_arrow_reader(BATCH)
    for batch in reader:
        ids = matcher.match(batch.column(0))
        rows = np.repeat(np.arange(len(ids)), np.diff(ids.offsets.to_numpy()))
        flat = ids.values.to_numpy(zero_copy_only=False)
        keep = batch.column(1).to_numpy(zero_copy_only=False).astype(bool)
        np.add.at(before, flat, 1)
        np.add.at(after, flat[keep[rows]], 1)
    out = [
        {"concept": e, "before": int(b), "after": int(a)}
        for e, b, a in zip(listed.entries, before, after, strict=True)
    ]
    return sorted(out, key=lambda r: (r["after"], r["before"], r["concept"]))

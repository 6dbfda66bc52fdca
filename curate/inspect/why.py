"""`explain(dataset, uid)`: everything the dataset's files know about one sample, for `curate why`.

Answers only from the files (manifest, shard row, signals, cluster, benchmark matches, decisions,
takedowns), so the answer is the same on any machine and needs nothing recomputed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from curate.concepts import balance
from curate.errors import CurateError
from curate.inspect import sql

MIN_PREFIX = 6
CLUSTER_MEMBERS_SHOWN = 20


def explain(dataset: str, uid: str) -> dict:
    """Manifest row, download outcome, signals, duplicate cluster, overlap matches, decisions, takedowns.

    `uid` may be a unique prefix of at least 6 characters. Sections with nothing known are None (or empty).
    """
    con, _ = sql.open_views(dataset, trusted=True)  # only the queries below
    try:
        uid = _resolve(con, dataset, uid.strip().lower())
        download = _row(con, "SELECT * FROM samples WHERE uid = ?", uid)
        url = (download or {}).get("url")
        manifest = _row(con, "SELECT * FROM manifest WHERE uid = ?", uid)
        url = url or (manifest or {}).get("url")
        signals = _row(con, "SELECT * EXCLUDE (uid) FROM signals WHERE uid = ?", uid)
        decisions = {
            r["recipe"]: {"keep": r["keep"], "reasons": list(r["reasons"] or [])}
            for r in _rows(
                con, "SELECT recipe, keep, reasons FROM decisions WHERE uid = ? ORDER BY recipe", uid
            )
        }
        return {
            "uid": uid,
            "manifest": manifest,
            "download": download,
            "signals": signals if signals and any(v is not None for v in signals.values()) else None,
            "duplicates": _cluster(con, uid),
            "overlap": _rows(
                con, "SELECT * EXCLUDE (uid) FROM overlap WHERE uid = ? ORDER BY benchmark, eval_id", uid
            ),
            "decisions": decisions,
            "concepts": balance.explain(dataset, (signals or {}).get("concept_ids")),
            "takedowns": _takedowns(con, uid, url),
        }
    finally:
        sql.close(con)


def _resolve(con: duckdb.DuckDBPyConnection, dataset: str, uid: str) -> str:
    """The full uid for `uid` or a unique prefix of it, from every view that lists uids."""
    if len(uid) < MIN_PREFIX or any(c not in "0123456789abcdef" for c in uid):
        raise CurateError(
            f"{uid!r} is not a uid: give the 32 hex characters of a uid (or at least {MIN_PREFIX})"
        )
    found = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT uid FROM (SELECT uid FROM manifest UNION ALL SELECT uid FROM samples "
            "UNION ALL SELECT uid FROM decisions) WHERE starts_with(uid, ?) ORDER BY 1 LIMIT 5",
            [uid],
        ).fetchall()
    ]
    if not found:
        raise CurateError(
            f"uid {uid} is not in {dataset} (manifest, shards or decisions). Find uids with: "
            f"curate sql {dataset} \"SELECT uid, url, caption FROM samples WHERE url LIKE '%...%'\""
        )
    if len(found) > 1:
        raise CurateError(
            f"uid prefix {uid} matches several samples ({', '.join(found)}...): give more characters"
        )
    return found[0]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, float):
        return float(f"{value:.6g}")  # float32 signals without their binary noise (0.95, not 0.949999988)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _rows(con: duckdb.DuckDBPyConnection, query: str, *params: Any) -> list[dict]:
    table = con.sql(query, params=list(params)).to_arrow_table()  # arrow: time zones without pytz
    return [{k: _jsonable(v) for k, v in row.items()} for row in table.to_pylist()]


def _row(con: duckdb.DuckDBPyConnection, query: str, *params: Any) -> dict | None:
    rows = _rows(con, query, *params)
    return rows[0] if rows else None


def _cluster(con: duckdb.DuckDBPyConnection, uid: str) -> dict | None:
    me = _row(con, "SELECT * EXCLUDE (uid) FROM clusters WHERE uid = ?", uid)
    if me is None:
        return None
    members = _rows(
        con,
        "SELECT uid, duplicate_kind, distance_to_representative FROM clusters "
        "WHERE cluster_id = ? ORDER BY is_representative DESC, uid",
        me["cluster_id"],
    )
    me["cluster_size"] = len(members)
    me["members"] = members[:CLUSTER_MEMBERS_SHOWN]
    return me


def _takedowns(con: duckdb.DuckDBPyConnection, uid: str, url: str | None) -> list[dict]:
    """Takedown requests that name this uid, its URL, or its URL's domain (or a parent domain)."""
    host = _rows(con, "SELECT url_host(?) AS host", url or "")[0]["host"] or ""
    return _rows(
        con,
        """SELECT * FROM takedowns WHERE (kind = 'uid' AND value = ?) OR (kind = 'url' AND value = ?)
                         OR (kind = 'domain' AND (lower(value) = ? OR ends_with(?, '.' || lower(value))))""",
        uid,
        url or "",
        host,
        host,
    )

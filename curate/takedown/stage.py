"""`curate takedown`: honour a consent request after the fact.

A request names samples by uid, URL or domain (a domain covers its subdomains). The image bytes of
every matching row are purged from the download shards (atomic rewrite: image -> null, status
"skipped", error_class "takedown") and the samples are removed from every export of the dataset
(Parquet shards and WebDataset tars rewritten); every other copy derived from them (signals, decisions,
search caches, reports) is reached by curate.takedown.purge. The request is appended to
DATASET/takedown.parquet (curate.schema.TAKEDOWN_SCHEMA), which later downloads, filters and exports
honour. See docs/CONSENT.md.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from curate import storage
from curate.dataset import Dataset
from curate.errors import CurateError
from curate.export.index import export_dirs, rewrite_export
from curate.inspect import duck
from curate.schema import TAKEDOWN_SCHEMA
from curate.takedown import purge
from curate.urls import canonical_host

log = logging.getLogger(__name__)

TAKEDOWN_STATUS = "skipped"
TAKEDOWN_ERROR_CLASS = "takedown"
_UID = re.compile(r"^[0-9a-f]{32}$")


def matching_uids_sql(requests: str, rows: str) -> str:
    """SQL selecting the uids of `rows` (uid, url, final_url) named by `requests` (kind, value).

    A URL request matches the URL or the final URL (after redirects); a domain request matches when the
    host of either is the domain or under it. Hosts are curate.urls' canonical ones (`url_host`, the host
    the downloader connected to), so case, a trailing dot, IDNA spelling or userinfo cannot dodge it."""
    return f"""
        SELECT r.uid, t.kind, t.value FROM {rows} r JOIN {requests} t ON t.kind = 'uid' AND r.uid = t.value
        UNION ALL
        SELECT r.uid, t.kind, t.value FROM {rows} r JOIN {requests} t
          ON t.kind = 'url' AND (r.url = t.value OR r.final_url = t.value)
        UNION ALL
        SELECT r.uid, t.kind, t.value
        FROM (SELECT uid, url_host(url) AS host FROM {rows}
              UNION ALL SELECT uid, url_host(final_url) FROM {rows} WHERE final_url IS NOT NULL) r
        JOIN (SELECT kind, value, canonical_host(value) AS d FROM {requests} WHERE kind = 'domain') t
          ON r.host = t.d OR ends_with(r.host, '.' || t.d)"""


def parse_requests(uids=(), urls=(), domains=(), file: str | None = None) -> list[tuple[str, str]]:
    """(kind, value) pairs; a file holds one uid, URL or domain per line (`#` starts a comment)."""
    out = [("uid", u.strip().lower()) for u in uids] + [("url", u.strip()) for u in urls]
    out += [("domain", d) for d in domains]
    if file:
        fs, inner = storage.url_to_fs(file)
        if not fs.exists(inner):
            raise CurateError(f"takedown file {file} does not exist")
        with fs.open(inner, "rt", encoding="utf-8") as fh:
            for line in fh:
                value = line.split("#", 1)[0].strip()
                if not value:
                    continue
                kind = "uid" if _UID.match(value.lower()) else "url" if "://" in value else "domain"
                out.append((kind, value.lower() if kind != "url" else value))
    out = [(k, _domain(v) if k == "domain" and v.strip() else v) for k, v in out]
    bad = [v for k, v in out if k == "uid" and not _UID.match(v)]
    if bad:
        raise CurateError(f"not a curate uid (32 hex characters): {bad[0]!r}")
    if not [v for _, v in out if v]:
        raise CurateError("nothing to take down: give --uid, --url, --domain or --file")
    return sorted({(k, v) for k, v in out if v})


def _domain(value: str) -> str:
    """A domain request in the canonical form url_host gives (`*.Bücher.DE.` is `xn--bcher-kva.de`)."""
    host = canonical_host(value.strip().lstrip("*").lstrip("."))
    if host is None:
        raise CurateError(f"not a domain name: {value!r} (write it like example.com)")
    return host


def takedown(
    dataset: str, *, uids=(), urls=(), domains=(), file: str | None = None, reason: str = ""
) -> dict:
    """Purge the named samples from shards and exports and record the request; returns counts."""
    start = time.perf_counter()
    ds = Dataset(dataset)
    requests = parse_requests(uids, urls, domains, file)
    req_table = pa.table({"kind": [k for k, _ in requests], "value": [v for _, v in requests]})
    con = duck.connect()
    con.register("requests", req_table)

    hits: dict[tuple[str, str], set[str]] = {r: set() for r in requests}
    purged_rows, touched = 0, set()
    for path in tqdm(ds.shard_paths(), desc="takedown: shards", unit="shard", disable=None):
        table = storage.read_parquet(path)
        con.register("shard", table.select(["uid", "url", "final_url"]))
        matches = con.sql(matching_uids_sql("requests", "shard")).fetchall()
        con.unregister("shard")
        for uid, kind, value in matches:
            hits[(kind, value)].add(uid)
        matched = {m[0] for m in matches}
        if matched:
            purged_rows += _purge_shard(path, table, matched, reason)
            touched.add(Dataset.shard_key(path))

    all_uids = set().union(*hits.values()) if hits else set()
    exports = export_dirs(dataset)
    export_rows = sum(rewrite_export(d, all_uids) for d in exports) if all_uids else 0
    _record(ds, hits, reason)  # before the reports are written again, so that they show the request
    derived = purge.purge_derived(dataset, all_uids, touched, exports)
    summary = {
        "requests": len(requests),
        "samples_matched": len(all_uids),
        "shard_rows_purged": purged_rows,
        "export_samples_removed": export_rows,
        **derived,
        "seconds": round(time.perf_counter() - start, 3),
    }
    log.info(
        "takedown: %d samples matched, %d shard images purged, %d export samples removed",
        len(all_uids),
        purged_rows,
        export_rows,
    )
    return summary


def _purge_shard(path: str, table: pa.Table, uids: set[str], reason: str) -> int:
    """Rewrite one shard with the image bytes of `uids` removed; returns the rows that held an image."""
    hit = pc.is_in(table.column("uid"), pa.array(sorted(uids), pa.string()))
    had_image = int(pc.sum(pc.and_(hit, pc.is_valid(table.column("image")))).as_py() or 0)

    def masked(name: str, value) -> pa.ChunkedArray:
        col = table.column(name)
        return pc.if_else(hit, pa.scalar(value, col.type), col)

    message = f"taken down: {reason}" if reason else "taken down"
    for name, value in (
        ("image", None),
        ("status", TAKEDOWN_STATUS),
        ("error_class", TAKEDOWN_ERROR_CLASS),
        ("error_message", message),
        ("sha256", None),
        ("bytes", None),
    ):
        if name in table.column_names:  # the field itself, not its name: the shard keeps its schema
            i = table.column_names.index(name)
            table = table.set_column(i, table.schema.field(i), masked(name, value))
    storage.write_parquet_atomic(table, path)
    return had_image


def _record(ds: Dataset, hits: dict[tuple[str, str], set[str]], reason: str) -> None:
    now = datetime.now(UTC)
    new = pa.table(
        {
            "kind": [k for k, _ in hits],
            "value": [v for _, v in hits],
            "reason": [reason or None] * len(hits),
            "requested_at": [now] * len(hits),
            "uids_purged": [len(u) for u in hits.values()],
        },
        schema=TAKEDOWN_SCHEMA,
    )
    if storage.exists(ds.takedown_path):
        new = pa.concat_tables([storage.read_parquet(ds.takedown_path).cast(TAKEDOWN_SCHEMA), new])
    storage.write_parquet_atomic(new, ds.takedown_path)

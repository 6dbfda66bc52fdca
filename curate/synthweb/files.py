"""Files that describe a synthetic web: its URL list in the formats people ship, and a WARC of its pages."""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from curate.synthweb.faults import SOFT_404_HTML

if TYPE_CHECKING:
    from curate.synthweb.web import SyntheticWeb

URL_LIST_FORMATS = (".parquet", ".csv", ".tsv", ".jsonl", ".json", ".txt")
_COLUMNS = ("url", "caption", "label", "lang")


def write_rows(rows: list[dict], path: Path) -> Path:
    """Write URL-list rows in the format named by the extension; `.gz` compresses any text format."""
    compressed = path.suffix == ".gz"
    ext = Path(path.stem).suffix if compressed else path.suffix
    if ext not in URL_LIST_FORMATS or (compressed and ext == ".parquet"):
        raise ValueError(
            f"cannot write a URL list as {path.name!r}: use one of "
            f"{', '.join(URL_LIST_FORMATS)} (text formats may end in .gz)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if ext == ".parquet":
        table = pa.table({c: pa.array([r[c] for r in rows], pa.string()) for c in _COLUMNS})
        pq.write_table(table, path)
        return path
    with (
        gzip.open(path, "wt", encoding="utf-8", newline="")
        if compressed
        else open(path, "w", encoding="utf-8", newline="")
    ) as fh:
        if ext in (".csv", ".tsv"):
            writer = csv.DictWriter(fh, fieldnames=_COLUMNS, delimiter="," if ext == ".csv" else "\t")
            writer.writeheader()
            writer.writerows(rows)
        elif ext == ".jsonl":
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        elif ext == ".json":
            json.dump(rows, fh, ensure_ascii=False, indent=1)
        else:
            fh.writelines(r["url"] + "\n" for r in rows)
    return path


@dataclass(frozen=True)
class WarcEntry:
    """Where a response record landed in a WARC (what a WAT's Container and WARC-Refers-To point at)."""

    url: str
    offset: int
    record_id: str
    request_id: str
    request_offset: int
    date: str


def write_warc(web: SyntheticWeb, path: Path) -> Path:
    """The pages as Common Crawl ships them: one gzip member per record; warcinfo, then request + response
    per page. Two more records a crawler must cope with follow: a 404 HTML response and an image response.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        _write_warc(web, fh, path.name)
    return path


def _write_warc(web: SyntheticWeb, fh: BinaryIO, name: str) -> list[WarcEntry]:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    netloc = web.base_url.split("//", 1)[1]
    date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    writer = WARCWriter(fh, gzip=True)
    entries = []

    def exchange(url: str, status: str, ctype: str, body: bytes) -> None:
        target = url.split(netloc, 1)[1] or "/"
        req_headers = StatusAndHeaders(
            f"GET {target} HTTP/1.1",
            [
                ("Host", netloc),
                ("User-Agent", "curate-synthweb/1.0"),
                ("Accept", "text/html,*/*"),
            ],
            is_http_request=True,
        )
        request = writer.create_warc_record(
            url,
            "request",
            payload=io.BytesIO(b""),
            http_headers=req_headers,
            warc_headers_dict={"WARC-Date": date},
        )
        resp_headers = StatusAndHeaders(
            status, [("Content-Type", ctype), ("Content-Length", str(len(body)))], protocol="HTTP/1.1"
        )
        response = writer.create_warc_record(
            url,
            "response",
            payload=io.BytesIO(body),
            http_headers=resp_headers,
            warc_headers_dict={"WARC-Date": date, "WARC-IP-Address": web.host},
        )
        response_id = response.rec_headers.get_header("WARC-Record-ID")
        request.rec_headers.add_header("WARC-Concurrent-To", response_id)
        request_offset = fh.tell()
        writer.write_record(request)
        offset = fh.tell()
        writer.write_record(response)
        entries.append(
            WarcEntry(
                url,
                offset,
                response_id,
                request.rec_headers.get_header("WARC-Record-ID"),
                request_offset,
                date,
            )
        )

    writer.write_record(
        writer.create_warcinfo_record(
            name,
            {
                "software": "curate synthweb",
                "format": "WARC File Format 1.1",
                "isPartOf": "curate-synthweb",
                "description": f"{len(web.pages)} pages of a synthetic web (seed {web.seed})",
            },
        )
    )
    for page in web.pages:
        exchange(page.url, "200 OK", f"text/html; charset={page.encoding}", page.html)
    exchange(web.base_url + "/pages/gone.html", "404 Not Found", "text/html; charset=utf-8", SOFT_404_HTML)
    first = web.images[0]
    exchange(first.url, "200 OK", f"image/{first.fmt}", web.image_bytes(first))
    return entries


def write_wat(web: SyntheticWeb, path: Path, warc_path: Path | None = None) -> Path:
    """A WAT (metadata extract) of the WARC in Common Crawl's JSON layout: per WARC record a `metadata`
    record whose `Envelope.Payload-Metadata.HTTP-Response-Metadata.HTML-Metadata` holds `Head` (Title,
    Metas, Base) and `Links` ({"path": "IMG@/src", "url": raw src, "alt"} and A@/href). Offsets point into
    `warc_path`, which is written too when given (else the WARC is built in memory for its offsets).
    """
    from warcio.warcwriter import WARCWriter

    buf = io.BytesIO()
    warc_name = warc_path.name if warc_path else path.name.replace(".wat", "")
    entries = _write_warc(web, buf, warc_name)
    if warc_path is not None:
        warc_path.parent.mkdir(parents=True, exist_ok=True)
        warc_path.write_bytes(buf.getvalue())
    pages = {page.url: page for page in web.pages}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        writer.write_record(
            writer.create_warcinfo_record(
                path.name,
                {
                    "Software-Info": "curate synthweb",
                    "format": "WARC File Format 1.0",
                },
            )
        )
        for entry in entries:
            for kind in ("request", "response"):
                record_id = entry.request_id if kind == "request" else entry.record_id
                offset = entry.request_offset if kind == "request" else entry.offset
                envelope = _envelope(web, entry, kind, record_id, pages.get(entry.url))
                doc = {
                    "Container": {"Filename": warc_name, "Compressed": True, "Offset": str(offset)},
                    "Envelope": envelope,
                }
                writer.write_record(
                    writer.create_warc_record(
                        entry.url,
                        "metadata",
                        payload=io.BytesIO(json.dumps(doc, ensure_ascii=False).encode()),
                        warc_content_type="application/json",
                        warc_headers_dict={"WARC-Date": entry.date, "WARC-Refers-To": record_id},
                    )
                )
    return path


def _envelope(web: SyntheticWeb, entry: WarcEntry, kind: str, record_id: str, page) -> dict:
    header = {
        "WARC-Type": kind,
        "WARC-Date": entry.date,
        "WARC-Record-ID": record_id,
        "Content-Type": f"application/http; msgtype={kind}",
        "WARC-Target-URI": entry.url,
    }
    if kind == "request":
        path = entry.url.split(web.base_url, 1)[1] or "/"
        return {
            "Format": "WARC/1.0",
            "WARC-Header-Metadata": header,
            "Payload-Metadata": {
                "Actual-Content-Type": "application/http; msgtype=request",
                "HTTP-Request-Metadata": {
                    "Request-Message": {"Method": "GET", "Path": path, "Version": "HTTP/1.1"},
                    "Headers": {"Host": web.base_url.split("//", 1)[1]},
                    "Entity-Length": "0",
                },
            },
        }
    response: dict = {
        "Response-Message": {
            "Version": "HTTP/1.1",
            "Status": "200" if page else "404",
            "Reason": "OK" if page else "Not Found",
        }
    }
    if page is not None:
        meta = web.page_meta(page.url)
        head = {
            "Title": meta.title,
            "Metas": [
                {"charset": meta.encoding},
                {"name": "viewport", "content": "width=device-width, initial-scale=1"},
            ],
        }
        if meta.base:
            head["Base"] = meta.base
        response["Headers"] = {
            "Content-Type": f"text/html; charset={meta.encoding}",
            "Content-Length": str(len(page.html)),
        }
        response["Entity-Length"] = str(len(page.html))
        response["HTML-Metadata"] = {"Head": head, "Links": list(meta.links)}
    return {
        "Format": "WARC/1.0",
        "WARC-Header-Metadata": header,
        "Payload-Metadata": {
            "Actual-Content-Type": "application/http; msgtype=response",
            "HTTP-Response-Metadata": response,
        },
    }

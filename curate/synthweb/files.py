"""Files that describe a synthetic web: its URL list in the formats people ship, and a WARC of its pages."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

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
        raise ValueError(f"cannot write a URL list as {path.name!r}: use one of "
                         f"{', '.join(URL_LIST_FORMATS)} (text formats may end in .gz)")
    path.parent.mkdir(parents=True, exist_ok=True)
    if ext == ".parquet":
        table = pa.table({c: pa.array([r[c] for r in rows], pa.string()) for c in _COLUMNS})
        pq.write_table(table, path)
        return path
    with (gzip.open(path, "wt", encoding="utf-8", newline="") if compressed
          else open(path, "w", encoding="utf-8", newline="")) as fh:
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


def write_warc(web: SyntheticWeb, path: Path) -> Path:
    """The pages as Common Crawl ships them: one gzip member per record; warcinfo, then request + response
    per page. Two more records a crawler must cope with follow: a 404 HTML response and an image response.
    """
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    netloc = web.base_url.split("//", 1)[1]
    date = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def exchange(writer: WARCWriter, url: str, status: str, ctype: str, body: bytes) -> None:
        target = url.split(netloc, 1)[1] or "/"
        req_headers = StatusAndHeaders(f"GET {target} HTTP/1.1", [
            ("Host", netloc), ("User-Agent", "curate-synthweb/1.0"), ("Accept", "text/html,*/*"),
        ], is_http_request=True)
        request = writer.create_warc_record(url, "request", payload=io.BytesIO(b""), http_headers=req_headers,
                                            warc_headers_dict={"WARC-Date": date})
        resp_headers = StatusAndHeaders(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))],
                                        protocol="HTTP/1.1")
        response = writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=resp_headers,
                                             warc_headers_dict={"WARC-Date": date, "WARC-IP-Address": web.host})
        request.rec_headers.add_header("WARC-Concurrent-To", response.rec_headers.get_header("WARC-Record-ID"))
        writer.write_record(request)
        writer.write_record(response)

    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        writer.write_record(writer.create_warcinfo_record(path.name, {
            "software": "curate synthweb", "format": "WARC File Format 1.1", "isPartOf": "curate-synthweb",
            "description": f"{len(web.pages)} pages of a synthetic web (seed {web.seed})",
        }))
        for page in web.pages:
            exchange(writer, page.url, "200 OK", "text/html; charset=utf-8", page.html)
        exchange(writer, web.base_url + "/pages/gone.html", "404 Not Found", "text/html; charset=utf-8",
                 SOFT_404_HTML)
        first = web.images[0]
        exchange(writer, first.url, "200 OK", f"image/{first.fmt}", web.image_bytes(first))
    return path

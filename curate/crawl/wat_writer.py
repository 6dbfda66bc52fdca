"""Write pages as a Common Crawl WAT file: per page a request and a response metadata record, gzip per record.

The JSON follows the layout of Common Crawl's WAT records (ia-web-commons): `Container`, and an
`Envelope` with `WARC-Header-Metadata` and `Payload-Metadata.HTTP-Response-Metadata` holding
`Response-Message`, `Headers` and `HTML-Metadata` (`Head` with `Title`, `Base`, `Metas`, `Link`, and `Links`
with `A@/href` + `text`, `IMG@/src` + `alt`, `LINK@/href`, `SCRIPT@/src` entries, values as written in the
page).
The links are found with the standard library's html.parser, independently of the selectolax parser the
WARC path uses, so tests of the WAT reader do not lean on the code they test. Tests, the benchmark and the
demo make WAT files with it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import uuid
from base64 import b32encode
from collections.abc import Iterable
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

from curate.crawl.http import decode_html

PageInput = tuple[str, bytes, dict[str, str] | None]  # (url, html bytes, response headers or None)
_LINK_ATTRS = {
    "a": ("A@/href", "href"),
    "img": ("IMG@/src", "src"),
    "link": ("LINK@/href", "href"),
    "script": ("SCRIPT@/src", "src"),
    "iframe": ("IFRAME@/src", "src"),
}


class _LinkCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.head: dict = {"Metas": [], "Link": []}
        self.links: list[dict] = []
        self._in_title = False
        self._title: list[str] = []
        self._anchor: dict | None = None  # the open <a> link, collecting its text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v for k, v in attrs if v is not None}
        if tag == "title":
            self._in_title = True
        elif tag == "base" and "href" in a and "Base" not in self.head:
            self.head["Base"] = a["href"]
        elif tag == "meta":
            self.head["Metas"].append(
                {k: v for k, v in a.items() if k in ("name", "property", "content", "http-equiv", "charset")}
            )
        if tag == "link" and "href" in a:
            self.head["Link"].append({"path": "LINK@/href", "url": a["href"], "rel": a.get("rel", "")})
        elif tag in _LINK_ATTRS and _LINK_ATTRS[tag][1] in a:
            path, attr = _LINK_ATTRS[tag]
            link = {"path": path, "url": a[attr]}
            for extra in ("alt", "title", "rel", "target"):
                if extra in a:
                    link[extra] = a[extra]
            self.links.append(link)
            if tag == "a":
                self._anchor = link

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag == "a" and self._anchor is not None:
            text = " ".join(self._anchor.get("text", "").split())
            self._anchor.pop("text", None)
            if text:
                self._anchor["text"] = text
            self._anchor = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title.append(data)
        if self._anchor is not None:
            self._anchor["text"] = self._anchor.get("text", "") + data

    def html_metadata(self) -> dict:
        head = {k: v for k, v in self.head.items() if v}
        if self._title:
            head["Title"] = " ".join("".join(self._title).split())
        return {"Head": head, "Links": self.links}


def html_metadata(html: bytes, content_type: str = "") -> dict:
    """The `HTML-Metadata` object Common Crawl's WAT holds for this page (decoded in its declared charset)."""
    collector = _LinkCollector()
    collector.feed(decode_html(html, content_type)[0])
    collector.close()
    return collector.html_metadata()


def write_wat(
    pages: Iterable[PageInput],
    path: str | Path,
    *,
    warc_name: str = "synthetic.warc.gz",
    date: datetime | None = None,
) -> Path:
    """Write `pages` as a gzip-per-record WAT file at `path`; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    when = (date or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(path, "wb") as fh:
        _write_record(
            fh,
            "warcinfo",
            None,
            when,
            "application/warc-fields",
            f"Software-Info: curate wat_writer\r\nformat: WARC File Format 1.0\r\n"
            f"WARC-Filename: {warc_name}\r\n".encode(),
        )
        offset = 0
        for url, html, headers in pages:
            request_id, response_id = _record_id(), _record_id()
            request = _envelope(
                warc_name,
                offset,
                url,
                when,
                request_id,
                "request",
                {
                    "Actual-Content-Type": "application/http; msgtype=request",
                    "HTTP-Request-Metadata": {
                        "Request-Message": {
                            "Method": "GET",
                            "Path": "/" + url.split("/", 3)[-1],
                            "Version": "HTTP/1.1",
                        },
                        "Headers": {"User-Agent": "curate-wat-writer/1.0", "Host": url.split("/")[2]},
                    },
                },
            )
            _write_record(fh, "metadata", url, when, "application/json", request, refers_to=request_id)
            offset += 600
            response_headers = dict(headers or {"Content-Type": "text/html; charset=utf-8"})
            response_headers.setdefault("Content-Length", str(len(html)))
            response = _envelope(
                warc_name,
                offset,
                url,
                when,
                response_id,
                "response",
                {
                    "Actual-Content-Type": "application/http; msgtype=response",
                    "HTTP-Response-Metadata": {
                        "Response-Message": {"Version": "HTTP/1.1", "Status": "200", "Reason": "OK"},
                        "Headers-Length": str(sum(len(k) + len(v) + 4 for k, v in response_headers.items())),
                        "Headers": response_headers,
                        "Entity-Length": str(len(html)),
                        "Entity-Digest": _digest(html),
                        "HTML-Metadata": html_metadata(html, _header(response_headers, "content-type")),
                    },
                },
            )
            _write_record(fh, "metadata", url, when, "application/json", response, refers_to=response_id)
            offset += 600 + len(html) // 4
    return path


def _header(headers: dict[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name), "")


def _envelope(
    warc_name: str, offset: int, url: str, when: str, record_id: str, kind: str, payload: dict
) -> bytes:
    doc = {
        "Container": {
            "Filename": warc_name,
            "Compressed": True,
            "Offset": str(offset),
            "Gzip-Metadata": {"Header-Length": "10", "Footer-Length": "8"},
        },
        "Envelope": {
            "Format": "WARC",
            "WARC-Header-Length": "400",
            "Block-Digest": _digest(url.encode()),
            "Payload-Metadata": payload,
            "WARC-Header-Metadata": {
                "WARC-Type": kind,
                "WARC-Date": when,
                "WARC-Record-ID": record_id,
                "WARC-Target-URI": url,
                "Content-Type": f"application/http; msgtype={kind}",
            },
        },
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _write_record(
    fh: io.BufferedWriter,
    kind: str,
    url: str | None,
    when: str,
    content_type: str,
    block: bytes,
    refers_to: str | None = None,
) -> None:
    head = ["WARC/1.0", f"WARC-Type: {kind}"]
    if url:
        head.append(f"WARC-Target-URI: {url}")
    head += [f"WARC-Date: {when}", f"WARC-Record-ID: {_record_id()}"]
    if refers_to:
        head.append(f"WARC-Refers-To: {refers_to}")
    head += [
        f"Content-Type: {content_type}",
        f"Content-Length: {len(block)}",
        f"WARC-Block-Digest: {_digest(block)}",
    ]
    data = ("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + block + b"\r\n\r\n"
    fh.write(gzip.compress(data, compresslevel=6, mtime=0))


def _record_id() -> str:
    return f"<urn:uuid:{uuid.uuid4()}>"


def _digest(data: bytes) -> str:
    return "sha1:" + b32encode(hashlib.sha1(data).digest()).decode()

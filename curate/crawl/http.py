"""The HTTP response inside a WARC response record: status, headers, and the body decoded to text.

Charset rule: the declaration is a BOM, else the Content-Type header's charset, else a <meta charset> /
http-equiv in the first 2 KB. Bytes that are valid UTF-8 are read as UTF-8 (a page declaring a legacy
charset but holding non-ASCII UTF-8 is counted as a `charset` error: mislabelled); otherwise the declared
charset is used (windows-1252 for latin-1/ascii labels, as browsers do; windows-1252 when undeclared). A
label Python does not know, or bytes that do not decode in the declared charset, are counted (`charset`)
and decoded with U+FFFD for the bad bytes: the page is still read, never dropped for its encoding.
"""

from __future__ import annotations

import codecs
import re
import zlib
from dataclasses import dataclass

_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.IGNORECASE
)
_CT_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9_.:-]{1,40})""", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
HTML_TYPES = ("text/html", "application/xhtml+xml")
# WHATWG encoding labels that mean windows-1252, which Python spells differently or decodes more strictly.
_LABEL_ALIASES = {
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "x-user-defined": "cp1252",
}


class BadHttp(ValueError):
    """The record's block is not an HTTP response."""


class BadEncoding(ValueError):
    """The body's transfer or content encoding cannot be undone."""


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def mime(self) -> str:
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()


def parse_response(block: bytes) -> Response:
    """Split 'HTTP/1.1 200 OK' + headers + blank line + body; raise BadHttp when it is not that."""
    head_end = block.find(b"\r\n\r\n")
    sep = 4
    if head_end < 0:
        head_end, sep = block.find(b"\n\n"), 2
    if head_end < 0 or not block.startswith(b"HTTP/"):
        raise BadHttp("no HTTP status line and header block")
    lines = block[:head_end].decode("latin-1").splitlines()
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise BadHttp(f"bad status line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return Response(int(parts[1]), headers, block[head_end + sep :])


def decoded_body(response: Response, max_bytes: int) -> bytes:
    """The entity as the server meant it: de-chunked and un-gzipped where the headers say so.

    Common Crawl stores bodies already decoded (and renames the headers to X-Crawler-*), but WARCs from
    other crawlers (wget, warcprox, browsertrix) keep the bytes as sent. Output is capped at `max_bytes`.
    """
    body = response.body
    if "chunked" in response.headers.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    coding = response.headers.get("content-encoding", "").strip().lower()
    if coding in ("gzip", "x-gzip", "deflate") and body:
        inflater = zlib.decompressobj(47 if body[:1] in (b"\x1f", b"\x78") else -15)  # gzip/zlib, else raw
        try:
            body = inflater.decompress(body, max_bytes)
        except zlib.error as exc:
            raise BadEncoding(f"Content-Encoding {coding}: {exc}") from None
    elif coding not in ("", "identity", "none", "utf-8"):
        raise BadEncoding(f"Content-Encoding {coding!r} is not supported")
    return body


def _dechunk(body: bytes) -> bytes:
    """Undo Transfer-Encoding: chunked; bodies that are not really chunked come back unchanged."""
    out, i = [], 0
    while True:
        line_end = body.find(b"\r\n", i)
        if line_end < 0:
            return body
        try:
            size = int(body[i:line_end].split(b";")[0].strip(), 16)
        except ValueError:
            return body if not out else b"".join(out)
        if size == 0:
            return b"".join(out)
        out.append(body[line_end + 2 : line_end + 2 + size])
        i = line_end + 2 + size + 2


def declared_charset(body: bytes, content_type: str) -> tuple[str | None, int]:
    """(charset label or None, bytes of BOM to skip)."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name, len(bom)
    m = _CT_CHARSET.search(content_type or "")
    if m:
        return m.group(1).lower(), 0
    m = _META_CHARSET.search(body, 0, 2048)
    return (m.group(1).decode("ascii").lower(), 0) if m else (None, 0)


def decode_html(body: bytes, content_type: str) -> tuple[str, str | None]:
    """(text, problem) where problem names an unknown or wrong declared charset, else None."""
    label, skip = declared_charset(body, content_type)
    if skip:
        body = body[skip:]
    if label and label.startswith("utf-16"):
        return body.decode(label, "replace"), None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        # Valid UTF-8 with non-ASCII text is UTF-8 whatever the label says (legacy bytes almost never are).
        if label and label not in ("utf-8", "utf8") and not text.isascii():
            return text, f"declared {label!r} but the bytes are UTF-8"
        return text, None
    if label is None:
        return body.decode("cp1252", "replace"), None  # the web's default for undeclared legacy pages
    try:
        codec = codecs.lookup(_LABEL_ALIASES.get(label, label)).name
    except LookupError:
        return body.decode("cp1252", "replace"), f"unknown charset {label!r}"
    try:
        return body.decode(codec), None
    except UnicodeDecodeError as exc:
        return body.decode(codec, "replace"), f"bytes are not {label} ({exc.reason} at byte {exc.start})"

"""The image links of one Common Crawl WAT record, without parsing the whole JSON envelope.

A WAT file holds one JSON record per WARC record; only those of HTML responses carry
`Envelope.Payload-Metadata.HTTP-Response-Metadata.HTML-Metadata`, whose `Links` entries with path
`IMG@/src` (and their `alt`) are the images, and `Head.Base` the base URL. The rest (request and metadata
records, the envelope's header maps, the hundreds of A@/href links) is dead weight, and json.loads of it
is most of what a WAT reader spends. So the fast path works on the raw bytes of Common Crawl's compact
JSON: a byte search rejects records without `"HTTP-Response-Metadata":` outright (two thirds of a WAT
file); of the rest only small pieces are decoded: the WARC-Date, the status, the Content-Language header,
`Head.Base`, and each `{"path":"IMG@/src",...}` link object on its own. This is sound because a quote
inside a JSON string is escaped, so `"IMG@/src"` or `"Base":` in the raw bytes are real tokens. Anything
unexpected (a link object that does not decode on its own, keys not in the compact form, escaped slashes)
sends the record to the full path, json.loads of the whole record, which is also where invalid JSON is
detected (InvalidWat: the record is skipped and counted). Damage in parts the fast path never decodes does
not touch the pairs and goes unnoticed.

WAT records keep only `src`: lazy-loaded images whose src is a data: placeholder are lost in WAT (read
the WARC for those), and there is no <html lang>, so the page language comes from Content-Language.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

from curate.crawl.html_images import ImgRef

IMG_PATH = "IMG@/src"


class InvalidWat(ValueError):
    """The WAT record's JSON does not parse."""


class _Unusual(Exception):
    """The fast path met something it does not handle: use the full path."""


@dataclass(slots=True)
class WatPage:
    status: int | None
    is_html: bool
    base_href: str | None
    lang: str | None
    warc_date: str | None
    images: list[ImgRef]


def parse_wat(payload: bytes) -> WatPage | None:
    """The HTML response described by a WAT record, or None when the record is not about a response."""
    if b'"HTTP-Response-Metadata"' not in payload:
        return None
    try:
        return _fast(payload)
    except _Unusual:
        return _full(payload)


def _fast(data: bytes) -> WatPage:
    response = data.find(b'"HTTP-Response-Metadata":{')
    if response < 0:
        raise _Unusual
    header = data.rfind(b'"WARC-Header-Metadata":{')
    warc_date = _string_after(data, b'"WARC-Date":', header) if header >= 0 else None
    message = data.find(b'"Response-Message":{', response)
    status = _string_after(data, b'"Status":', message) if message >= 0 else None
    meta = data.find(b'"HTML-Metadata":{', response)
    end = meta if meta >= 0 else len(data)
    lang = None
    for key in (b'"Content-Language":', b'"content-language":'):
        if data.find(key, response, end) >= 0:
            lang = _string_after(data, key, response)
            break
    if meta < 0:
        return WatPage(_int(status), False, None, None, warc_date, [])
    links = data.find(b'"Links":[', meta)
    base = data.find(b'"Base":', meta, links if links >= 0 else len(data))
    images = []
    i = data.find(b'"IMG@/src"', meta)
    if i < 0 and b"IMG@\\/src" in data:
        raise _Unusual
    while i >= 0:
        start, stop = data.rfind(b"{", meta, i), data.find(b"}", i)
        if start < 0 or stop < 0:
            raise _Unusual
        link = _flat_object(data[start:stop + 1])
        if link.get("path") != IMG_PATH:
            raise _Unusual
        images.append(ImgRef(_unescape(link.get("alt")), _unescape(link.get("url"))))
        i = data.find(b'"IMG@/src"', stop)
    return WatPage(_int(status), True, _string_after(data, b'"Base":', base) if base >= 0 else None,
                   _first_language(lang), warc_date, images)


def _flat_object(raw: bytes) -> dict:
    """A link object such as {"path":"IMG@/src","url":"...","alt":"..."}: all values strings.

    Without a backslash no string can hold a quote, so splitting at quotes gives the exact token sequence
    `{ key : value , key : value }`; that is checked token by token. Otherwise json.loads decides.
    """
    parts = raw.split(b'"')
    n = len(parts)
    if (b"\\" not in raw and n % 4 == 1 and parts[0] == b"{" and parts[-1] == b"}"
            and all(parts[k] == b":" for k in range(2, n, 4)) and all(parts[k] == b"," for k in range(4, n - 1, 4))):
        try:
            return {parts[k].decode(): parts[k + 2].decode() for k in range(1, n - 1, 4)}
        except UnicodeDecodeError:
            raise _Unusual from None
    try:
        value = json.loads(raw)
    except ValueError:
        raise _Unusual from None
    if not isinstance(value, dict):
        raise _Unusual
    return value


def _string_after(data: bytes, key: bytes, start: int) -> str | None:
    """The JSON string value of the first `key` at or after `start` (None when absent or not a string)."""
    i = data.find(key, start)
    if i < 0:
        return None
    i += len(key)
    if data[i:i + 1] != b'"':
        raise _Unusual
    j = data.find(b'"', i + 1)
    while j > 0 and data[j - 1] == 0x5C:  # an escaped quote: the string goes on
        j = data.find(b'"', j + 1)
    try:
        value = json.loads(data[i:j + 1])
    except ValueError:
        raise _Unusual from None
    return value


def _full(payload: bytes) -> WatPage:
    """json.loads of the whole record: any layout, and the judge of invalid JSON."""
    try:
        doc = json.loads(payload)
    except ValueError as exc:
        raise InvalidWat(f"invalid JSON: {exc}") from None
    envelope = _dict(_dict(doc).get("Envelope"))
    warc_date = _dict(envelope.get("WARC-Header-Metadata")).get("WARC-Date")
    response = _dict(_dict(envelope.get("Payload-Metadata")).get("HTTP-Response-Metadata"))
    status = _dict(response.get("Response-Message")).get("Status")
    headers = _dict(response.get("Headers"))
    lang = next((v for k, v in headers.items() if k.lower() == "content-language" and isinstance(v, str)), None)
    meta = response.get("HTML-Metadata")
    if not isinstance(meta, dict):
        return WatPage(_int(status), False, None, None, warc_date, [])
    base = _dict(meta.get("Head")).get("Base")
    links = meta.get("Links")
    images = [ImgRef(_unescape(link.get("alt")), _unescape(link.get("url")))
              for link in (links if isinstance(links, list) else ())
              if isinstance(link, dict) and link.get("path") == IMG_PATH]
    return WatPage(_int(status), True, base if isinstance(base, str) else None, _first_language(lang),
                   warc_date if isinstance(warc_date, str) else None, images)


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _first_language(value: object) -> str | None:
    return value.split(",")[0].strip() or None if isinstance(value, str) else None


def _unescape(value: object) -> str | None:
    """WAT values are attribute text as written: decode HTML entities left in them."""
    if not isinstance(value, str):
        return None
    return html.unescape(value) if "&" in value else value


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None

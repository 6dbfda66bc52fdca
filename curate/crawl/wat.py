"""The image links of one Common Crawl WAT record, without parsing the whole JSON envelope.

A WAT file holds one JSON record per WARC record; only those of HTML responses carry
`Envelope.Payload-Metadata.HTTP-Response-Metadata.HTML-Metadata`, whose `Links` entries with path
`IMG@/src` (and their `alt`) are the images, and `Head.Base` the base URL. The rest (request and metadata
records, the envelope's header maps) is dead weight. So: a byte search rejects records without
`"HTTP-Response-Metadata"` outright (two thirds of a WAT file), and only that object and the small
`WARC-Header-Metadata` object (for the capture's WARC-Date) are decoded, with the stdlib's C scanner
(`raw_decode` from the key's position). JSON keys are unambiguous in the raw text: inside a JSON string a
quote is escaped, so `"HTTP-Response-Metadata":` can only be a key. Invalid JSON in the parts decoded
raises InvalidWat; damage elsewhere in the envelope does not matter to the pairs.

WAT records keep only `src`: lazy-loaded images whose src is a data: placeholder are lost in WAT (read
the WARC for those), and there is no <html lang>, so the page language comes from Content-Language.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass

from curate.crawl.html_images import ImgRef

_RESPONSE_KEY = re.compile(r'"HTTP-Response-Metadata"\s*:\s*')
_WARC_HEADER_KEY = re.compile(r'"WARC-Header-Metadata"\s*:\s*')
_decode = json.JSONDecoder().raw_decode
IMG_PATH = "IMG@/src"


class InvalidWat(ValueError):
    """The WAT record's JSON does not parse where it matters."""


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
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidWat(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    m = _RESPONSE_KEY.search(text)
    if m is None:
        raise InvalidWat('"HTTP-Response-Metadata" is not followed by a value')
    response = _object_at(text, m.end(), "HTTP-Response-Metadata")
    m = _WARC_HEADER_KEY.search(text)
    warc_date = None
    if m is not None:
        warc_date = _object_at(text, m.end(), "WARC-Header-Metadata").get("WARC-Date")
    status = (response.get("Response-Message") or {}).get("Status")
    headers = response.get("Headers") or {}
    lang = next((v for k, v in headers.items() if k.lower() == "content-language" and isinstance(v, str)), None)
    meta = response.get("HTML-Metadata")
    if not isinstance(meta, dict):
        return WatPage(_int(status), False, None, None, warc_date, [])
    head = meta.get("Head") or {}
    base = head.get("Base") if isinstance(head, dict) else None
    images = [
        ImgRef(_unescape(link.get("alt")), _unescape(link.get("url")))
        for link in meta.get("Links") or () if isinstance(link, dict) and link.get("path") == IMG_PATH
    ]
    lang = lang.split(",")[0].strip() or None if lang else None
    return WatPage(_int(status), True, base if isinstance(base, str) else None, lang, warc_date, images)


def _object_at(text: str, pos: int, name: str) -> dict:
    try:
        value, _ = _decode(text, pos)
    except json.JSONDecodeError as exc:
        raise InvalidWat(f"{name}: {exc.msg} at char {exc.pos}") from None
    if not isinstance(value, dict):
        raise InvalidWat(f"{name} is a {type(value).__name__}, not an object")
    return value


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

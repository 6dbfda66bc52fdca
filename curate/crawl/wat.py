"""The image links of one Common Crawl WAT record, without parsing the whole JSON envelope.

A WAT file holds one JSON record per WARC record; only those of HTML responses carry
`Envelope.Payload-Metadata.HTTP-Response-Metadata.HTML-Metadata`, whose `Links` entries with path
`IMG@/src` (and their `alt`) are the images, and `Head.Base` the base URL. The rest (request and metadata
records, the envelope's header maps, the hundreds of A@/href links) is dead weight, and json.loads of it
is most of what a WAT reader spends. So the fast path works on the raw bytes of Common Crawl's compact
JSON: a byte search rejects records without `"HTTP-Response-Metadata":` outright (two thirds of a WAT
file); of the rest only small pieces are decoded: the WARC-Date, the status, the Content-Language header,
`Head.Base`, and the `IMG@/src` link objects (all of a record's by one regex over its links when they
are in the compact form, else each on its own). This is sound because a quote inside a JSON string is
escaped, so `"IMG@/src"` or `"Base":` in the raw bytes are real tokens. Anything
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
import re
from dataclasses import dataclass
from itertools import repeat

from curate.crawl.html_images import ImgRef

IMG_PATH = "IMG@/src"
# Every `IMG@/src"` in the links (so every `"IMG@/src"`: the pattern starts after the quote, as a
# rarer first character lets the regex engine skip faster); those of a link in the compact form Common
# Crawl writes, {"path":"IMG@/src","url":"...","alt":"...","title":"..."} (alt and title optional) with
# values free of quotes, backslashes, braces and NUL, also give the url, the alt and the closing brace.
# One findall over the decoded links replaces a dozen calls per link. When every link matched, the
# values are what the link-by-link reading (_scanned_images) decodes, since a valid UTF-8 text cut at
# ASCII quotes gives valid pieces; otherwise (some other link form, bytes that are not UTF-8) that
# reading decides, so both give the same images. A link without alt text keeps its URL here (the
# scan drops it): either way it is skipped as no_alt.
_IMG_LINK = re.compile(
    r'IMG@/src"(?:(?<=\{"path":"IMG@/src"),"url":"([^"\\{}\x00]*+)"'
    r'(?:,"alt":"([^"\\{}\x00]*+)")?+(?:,"title":"[^"\\{}\x00]*+")?+(\}))?+'
)
_NONE = repeat(None)


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


def parse_wat(data: bytes, lo: int = 0, hi: int | None = None) -> WatPage | None:
    """The HTML response described by the WAT record `data[lo:hi]`, or None when it is not about a response.

    The record is read in place (bounds, not a slice): at WAT sizes a copy costs as much as the scan.
    """
    hi = len(data) if hi is None else hi
    if data.find(b'"HTTP-Response-Metadata"', lo, hi) < 0:
        return None
    try:
        return _fast(data, lo, hi)
    except _Unusual:
        return _full(data[lo:hi])


def _fast(data: bytes, lo: int, hi: int) -> WatPage:
    response = data.find(b'"HTTP-Response-Metadata":{', lo, hi)
    if response < 0:
        raise _Unusual
    header = data.rfind(b'"WARC-Header-Metadata":{', lo, hi)
    warc_date = _string_after(data, b'"WARC-Date":', header, hi) if header >= 0 else None
    message = data.find(b'"Response-Message":{', response, hi)
    status = _string_after(data, b'"Status":', message, hi) if message >= 0 else None
    meta = data.find(b'"HTML-Metadata":{', response, hi)
    end = meta if meta >= 0 else hi
    lang = None
    for key in (b'"Content-Language":', b'"content-language":'):
        if data.find(key, response, end) >= 0:
            lang = _string_after(data, key, response, end)
            break
    if meta < 0:
        return WatPage(_int(status), False, None, None, warc_date, [])
    links = data.find(b'"Links":[', meta, hi)
    base = data.find(b'"Base":', meta, links if links >= 0 else hi)
    try:
        text = data[meta:hi].decode()
    except UnicodeDecodeError:  # somewhere in the links: only the values the scan reads must decode
        images = _scanned_images(data, meta, hi)
    else:
        found = _IMG_LINK.findall(text)
        if not found:
            if "IMG@\\/src" in text:
                raise _Unusual
            images = []
        else:
            urls, alts, closes = zip(*found, strict=True)
            if "" in closes:
                images = _scanned_images(data, meta, hi)
            else:
                if "&" in text:
                    alts, urls = _unescaped(alts), _unescaped(urls)
                images = list(zip(alts, urls, _NONE, _NONE, strict=False))  # _NONE: endless
    return WatPage(
        _int(status),
        True,
        _string_after(data, b'"Base":', base, hi) if base >= 0 else None,
        _first_language(lang),
        warc_date,
        images,
    )


def _unescaped(values: tuple[str, ...]) -> list[str]:
    return [html.unescape(value) if "&" in value else value for value in values]


def _scanned_images(data: bytes, meta: int, hi: int) -> list[ImgRef]:
    """The images of a record with some link not in the compact form, one `"IMG@/src"` at a time."""
    images = []
    find, rfind = data.find, data.rfind
    i = find(b'"IMG@/src"', meta, hi)
    if i < 0 and find(b"IMG@\\/src", meta, hi) >= 0:
        raise _Unusual
    try:
        while i >= 0:
            start, stop = rfind(b"{", meta, i), find(b"}", i, hi)
            raw = data[start : stop + 1]
            # Without a backslash no string can hold a quote, so a slice that opens with {" and closes
            # with "}, holds no other { and an even number of quotes is one flat object of strings, and
            # every "alt":" in it is that key. Anything else: json.loads of the slice decides.
            if (
                start < 0
                or stop < 0
                or b"\\" in raw
                or not raw.startswith(b'{"')
                or not raw.endswith(b'"}')
                or raw.find(b"{", 1) >= 0
                or raw.count(b'"') % 2
            ):
                alt, url = _json_link(raw)
            else:
                a = raw.find(b'"alt":"')
                if (
                    a < 0 or raw[a + 7] == 0x22
                ):  # no alt, or "alt":"": the URL is not needed (skipped as no_alt)
                    alt = url = None
                else:
                    u = raw.find(b'"url":"')
                    alt = raw[a + 7 : raw.find(b'"', a + 7)].decode()
                    url = raw[u + 7 : raw.find(b'"', u + 7)].decode() if u >= 0 else None
            if alt and "&" in alt:
                alt = html.unescape(alt)
            if url and "&" in url:
                url = html.unescape(url)
            images.append((alt, url, None, None))
            i = find(b'"IMG@/src"', stop, hi)
    except UnicodeDecodeError:
        raise _Unusual from None
    return images


def _json_link(raw: bytes) -> tuple[str | None, str | None]:
    """(alt, url) of a link object the byte scan cannot vouch for."""
    try:
        link = json.loads(raw)
    except ValueError:
        raise _Unusual from None
    if not isinstance(link, dict) or link.get("path") != IMG_PATH:
        raise _Unusual
    alt, url = link.get("alt"), link.get("url")
    return alt if isinstance(alt, str) else None, url if isinstance(url, str) else None


def _string_after(data: bytes, key: bytes, start: int, hi: int) -> str | None:
    """The JSON string value of the first `key` in data[start:hi] (None when absent)."""
    i = data.find(key, start, hi)
    if i < 0:
        return None
    i += len(key)
    if data[i : i + 1] != b'"':
        raise _Unusual
    j = data.find(b'"', i + 1, hi)
    while j > 0 and data[j - 1] == 0x5C:  # an escaped quote: the string goes on
        j = data.find(b'"', j + 1, hi)
    if j < 0:
        raise _Unusual
    raw = data[i + 1 : j]
    try:
        return json.loads(b'"' + raw + b'"') if b"\\" in raw else raw.decode("utf-8")
    except ValueError:
        raise _Unusual from None


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
    lang = next(
        (v for k, v in headers.items() if k.lower() == "content-language" and isinstance(v, str)), None
    )
    meta = response.get("HTML-Metadata")
    if not isinstance(meta, dict):
        return WatPage(_int(status), False, None, None, warc_date, [])
    base = _dict(meta.get("Head")).get("Base")
    links = meta.get("Links")
    images = [
        (_unescape(link.get("alt")), _unescape(link.get("url")), None, None)
        for link in (links if isinstance(links, list) else ())
        if isinstance(link, dict) and link.get("path") == IMG_PATH
    ]
    return WatPage(
        _int(status),
        True,
        base if isinstance(base, str) else None,
        _first_language(lang),
        warc_date if isinstance(warc_date, str) else None,
        images,
    )


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

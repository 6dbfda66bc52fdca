"""Safe HTML pieces for the dataset report: every string from the data passes through `esc`.

Captions and URLs come from the open web and are attacker-controlled. The page therefore has no
script at all, a Content-Security-Policy that forbids script and any remote load (images are data:
URIs), text escaped with quotes, and links only for http(s) URLs.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from urllib.parse import urlsplit

from PIL import Image

from curate import publish

log = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
THUMB_PX = 160
MAX_SOURCE_PIXELS = 50_000_000  # refuse to decode bigger images (decompression bombs) in a report
CAPTION_CHARS = 240

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;\
max-width:1200px;padding:16px 24px;
color:#1d232b;background:#fafbfc}
h1{font-size:24px;margin:8px 0 2px} h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #d9dee5;
padding-bottom:4px} h3{font-size:15px;margin:18px 0 6px}
.muted{color:#5b6673} table{border-collapse:collapse;margin:6px 0 12px} td,th{padding:3px 10px;
border-bottom:1px solid #e3e7ec;text-align:left;vertical-align:top} th{background:#eef1f5}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.plots{display:flex;flex-wrap:wrap;gap:10px} .plots figure{margin:0;background:#fff;border:1px solid #e3e7ec}
.plots img{display:block;width:374px;height:auto}
.gallery{display:flex;flex-wrap:wrap;gap:10px} .card{width:170px;background:#fff;border:1px solid #e3e7ec;
padding:5px;font-size:12px;overflow-wrap:anywhere} .card img{display:block;max-width:160px;max-height:160px;
margin:0 auto 4px} .card .cap{white-space:pre-wrap} .card .why{color:#a33b2c}
.row{display:flex;gap:10px;align-items:flex-start;margin:8px 0;padding:6px;background:#fff;\
border:1px solid #e3e7ec}
.noimg{width:160px;height:60px;display:flex;align-items:center;justify-content:center;background:#eef1f5;
color:#5b6673;margin:0 auto 4px}
"""


def esc(value: object) -> str:
    """Text for HTML content or attribute values: &, <, >, " and ' escaped."""
    return html.escape("" if value is None else str(value), quote=True)


def link(url: str | None, text: str | None = None) -> str:
    """An <a> only for http(s) URLs; any other value (javascript:, data:, ...) is shown as plain text."""
    if not url:
        return ""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme not in ("http", "https") or any(c in url for c in "\r\n\t"):
        shown = url if len(url) <= CAPTION_CHARS else url[: CAPTION_CHARS - 1] + "…"
        return f'<span class="badurl">{esc(shown)}</span>'
    shown = text if text is not None else url
    return f'<a href="{esc(url)}" rel="noopener noreferrer nofollow">{esc(shown)}</a>'


def thumbnail(data: bytes | None) -> str | None:
    """A small JPEG of `data` as a data: URI, or None when it cannot be decoded safely."""
    if not data:
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_SOURCE_PIXELS:
                return None
            img.draft("RGB", (THUMB_PX * 2, THUMB_PX * 2))
            img.thumbnail((THUMB_PX, THUMB_PX))
            out = io.BytesIO()
            img.convert("RGB").save(out, "JPEG", quality=80)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        log.debug("report: image not shown: %s", exc)
        return None
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def img(uri: str | None, alt: str, cls: str = "thumb") -> str:
    """An <img> for a data: URI built here, or a grey box saying there is no image."""
    if not uri or not uri.startswith("data:image/"):
        return '<div class="noimg">no image</div>'
    return f'<img class="{cls}" src="{uri}" alt="{esc(alt)}">'


def caption(text: str | None) -> str:
    text = text or ""
    short = text if len(text) <= CAPTION_CHARS else text[: CAPTION_CHARS - 1] + "…"
    return f'<div class="cap">{esc(short)}</div>'


def card(uri: str | None, sample: dict, extra: str = "") -> str:
    """One gallery tile: thumbnail, caption, uid, link to the source, and `extra` (already escaped HTML)."""
    return (
        f'<div class="card">{img(uri, sample.get("caption") or "")}{caption(sample.get("caption"))}'
        f'<div class="muted">{esc(sample["uid"][:12])} · {link(sample.get("url"), "source")}</div>'
        f"{extra}</div>"
    )


def table(headers: list[str], rows: list[list[object]], numeric: tuple[int, ...] = ()) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{esc(_fmt(v))}</td>' if i in numeric else f"<td>{esc(_fmt(v))}</td>"
            for i, v in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: object) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.4g}"
    return str(v)


def page(title: str, body: str) -> str:
    """The whole document; its generator tag lets a later `curate report` recognise the file as its own."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"{publish.file_signature('report')}"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>{body}</body></html>\n"
    )

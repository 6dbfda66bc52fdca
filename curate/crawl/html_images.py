"""The <img> tags of an HTML page, with a real HTML5 parser (selectolax / lexbor), not regular expressions.

Which URL an <img> stands for (the srcset / lazy-load rule):
1. the first of `data-src`, `data-lazy-src`, `data-original`, `src` that is set and not a `data:` URI
   (lazy-loading scripts keep the real URL in a data- attribute and a placeholder in src, so those win);
2. else the `srcset` (or `data-srcset`) candidate with the largest width (`w`) or density (`x`)
   descriptor (the first candidate when none has one);
3. else a `data:` URI if that is all there is (counted as skipped `data_uri`), else nothing (`no_src`).
Attribute values come back entity-decoded from the parser; the <html lang> and the first <base href>
are read too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser

LAZY_SRC_ATTRS = ("data-src", "data-lazy-src", "data-original", "src")
SRCSET_ATTRS = ("srcset", "data-srcset")
_SRCSET_CANDIDATE = re.compile(r"\s*([^\s,][^\s]*?)(?:\s+(\d+(?:\.\d+)?)([wx]))?\s*(?:,|$)")
_DIMENSION = re.compile(r"\s*(\d{1,6})(?:\.\d*)?\s*(?:px)?\s*$", re.IGNORECASE)


# One <img>: (alt text or None when absent, chosen URL as written, declared width, declared height).
# A plain tuple, not a class: a crawl makes one per <img> of billions of pages.
ImgRef = tuple[str | None, str | None, int | None, int | None]


@dataclass(slots=True)
class HtmlPage:
    lang: str | None
    base_href: str | None
    images: list[ImgRef]


def parse_html(text: str) -> HtmlPage:
    """The page's lang, base href and <img> tags in document order."""
    tree = LexborHTMLParser(text)
    root = tree.root
    lang = (root.attributes.get("lang") or "").strip() or None if root is not None else None
    base = tree.css_first("base[href]")
    base_href = (base.attributes.get("href") or "").strip() or None if base is not None else None
    images = [image_ref(node.attributes) for node in tree.css("img")]
    return HtmlPage(lang, base_href, images)


def image_ref(attrs: dict[str, str | None]) -> ImgRef:
    return attrs.get("alt"), choose_src(attrs), dimension(attrs.get("width")), dimension(attrs.get("height"))


def choose_src(attrs: dict[str, str | None]) -> str | None:
    """The URL the <img> shows, by the rule in the module docstring (as written, not yet resolved)."""
    data_uri = None
    for name in LAZY_SRC_ATTRS:
        value = (attrs.get(name) or "").strip()
        if value:
            if value[:5].lower() != "data:":
                return value
            data_uri = data_uri or value
    for name in SRCSET_ATTRS:
        best = best_srcset_candidate(attrs.get(name) or "")
        if best:
            if best[:5].lower() != "data:":
                return best
            data_uri = data_uri or best
    return data_uri


def best_srcset_candidate(srcset: str) -> str | None:
    """The candidate URL with the largest descriptor (w or x); the first one when none has a descriptor."""
    best, best_size = None, -1.0
    for m in _SRCSET_CANDIDATE.finditer(srcset):
        url, size = m.group(1), float(m.group(2) or 0)
        if url and size > best_size:
            best, best_size = url, size
    return best


def dimension(value: str | None) -> int | None:
    """An <img> width/height attribute as an int ("640", "640px"); None for "auto", "50%" or absent."""
    if not value:
        return None
    m = _DIMENSION.match(value)
    return int(m.group(1)) if m else None

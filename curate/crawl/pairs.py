"""From a page's <img> references to manifest rows: resolve URLs, apply the alt-text rule, drop repeats.

WARC pages and WAT records both end here, so both follow one rule, applied in this order (the first that
fails names the skip reason): alt text present and at least `min_alt_chars` long after whitespace
collapsing (`no_alt`); a URL (`no_src`) that is not a data: URI (`data_uri`); resolved against the
<base href> (itself resolved against the page URL) or the page URL, fragment dropped (`invalid_url` when
it does not parse); scheme http or https with a host (`not_http`); (url, caption) not kept before from
this file (`duplicate`).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

from curate.crawl.html_images import ImgRef
from curate.crawl.stats import CrawlStats
from curate.schema import uid_digest

_URL_JUNK = str.maketrans("", "", "\t\n\r")


class PairCollector:
    """Accumulates the kept pairs of one input file as columns, ready for a Parquet part."""

    COLUMNS = ("uid", "url", "caption", "page_url", "page_lang", "crawl_time", "source", "width", "height")

    def __init__(self, stats: CrawlStats, min_alt_chars: int = 1) -> None:
        self.stats, self.min_alt_chars = stats, max(1, min_alt_chars)
        self.seen: set[bytes] = set()
        self.columns: dict[str, list] = {name: [] for name in self.COLUMNS}

    def __len__(self) -> int:
        return len(self.columns["uid"])

    def take(self) -> dict[str, list]:
        """The collected columns; the collector starts empty again (its repeat memory is kept)."""
        out, self.columns = self.columns, {name: [] for name in self.COLUMNS}
        return out

    def add_page(self, page_url: str, base_href: str | None, lang: str | None, crawl_time: int | None,
                 source: str, images: Iterable[ImgRef]) -> None:
        stats, cols = self.stats, self.columns
        base = resolve_base(page_url, base_href)
        for img in images:
            stats.images_seen += 1
            caption = " ".join(img.alt.split()) if img.alt else ""
            if len(caption) < self.min_alt_chars:
                stats.skip("no_alt")
                continue
            src = img.src
            if not src:
                stats.skip("no_src")
                continue
            if src[:5].lower() == "data:":
                stats.skip("data_uri")
                continue
            try:
                url = urljoin(base, src.strip().translate(_URL_JUNK))
                parts = urlsplit(url)
            except ValueError:
                stats.skip("invalid_url")
                continue
            if parts.scheme not in ("http", "https") or not parts.netloc:
                stats.skip("not_http")
                continue
            if parts.fragment:
                url = url.partition("#")[0]
            digest = uid_digest(url, caption)
            if digest in self.seen:
                stats.skip("duplicate")
                continue
            self.seen.add(digest)
            cols["uid"].append(digest.hex())
            cols["url"].append(url)
            cols["caption"].append(caption)
            cols["page_url"].append(page_url)
            cols["page_lang"].append(lang)
            cols["crawl_time"].append(crawl_time)
            cols["source"].append(source)
            cols["width"].append(_int32(img.width))
            cols["height"].append(_int32(img.height))
            stats.pairs_kept += 1


def resolve_base(page_url: str, base_href: str | None) -> str:
    """The URL relative srcs resolve against: an http(s) <base href> (resolved itself), else the page URL."""
    if not base_href:
        return page_url
    try:
        base = urljoin(page_url, base_href.strip().translate(_URL_JUNK))
    except ValueError:
        return page_url
    return base if base.startswith(("http://", "https://")) else page_url


def _int32(value: int | None) -> int | None:
    return value if value is not None and value < 2**31 else None

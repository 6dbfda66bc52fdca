"""From a page's <img> references to manifest rows: resolve URLs, apply the alt-text rule, drop repeats.

WARC pages and WAT records both end here, so both follow one rule, applied in this order (the first that
fails names the skip reason): alt text present and at least `min_alt_chars` long after whitespace
collapsing (`no_alt`); a URL (`no_src`) that is not a data: URI (`data_uri`); resolved against the
<base href> (itself resolved against the page URL) or the page URL, fragment dropped (`invalid_url` when
it does not parse); scheme http or https with a host (`not_http`); (url, caption) not kept before from
this file (`duplicate`).
"""

from __future__ import annotations

from hashlib import blake2b
from urllib.parse import urljoin, urlsplit

from curate.crawl.html_images import ImgRef
from curate.crawl.stats import CrawlStats
from curate.schema import UID_BYTES

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
                 source: str, images: list[ImgRef]) -> None:
        seen, min_chars = self.seen, self.min_alt_chars
        resolver = None  # made on the first image that needs it: many pages have none
        no_alt = no_src = data_uri = invalid = not_http = repeated = 0
        kept = []
        for alt, src, width, height in images:
            if not alt:
                no_alt += 1
                continue
            caption = " ".join(alt.split())
            if len(caption) < min_chars:
                no_alt += 1
                continue
            if not src:
                no_src += 1
                continue
            if src[0] in "dD" and src[:5].lower() == "data:":
                data_uri += 1
                continue
            if resolver is None:
                resolver = Resolver(resolve_base(page_url, base_href))
            try:
                url = resolver(src)
            except ValueError:
                invalid += 1
                continue
            if url is None:
                not_http += 1
                continue
            # = curate.schema.uid_digest(url, caption), inlined: this runs once per pair of a crawl
            digest = blake2b(f"{url}\x1f{caption}".encode("utf-8", "surrogatepass"), digest_size=UID_BYTES).digest()
            if digest in seen:
                repeated += 1
                continue
            seen.add(digest)
            kept.append((digest.hex(), url, caption, width, height))
        stats = self.stats
        stats.images_seen += len(images)
        if len(kept) < len(images):
            skipped = stats.skipped
            for reason, n in (("no_alt", no_alt), ("no_src", no_src), ("data_uri", data_uri),
                              ("invalid_url", invalid), ("not_http", not_http), ("duplicate", repeated)):
                if n:
                    skipped[reason] += n
        if kept:
            self._append(kept, page_url, lang, crawl_time, source)

    def _append(self, kept: list[tuple], page_url: str, lang: str | None, crawl_time: int | None,
                source: str) -> None:
        cols, n = self.columns, len(kept)
        uids, urls, captions, widths, heights = zip(*kept)
        cols["uid"] += uids
        cols["url"] += urls
        cols["caption"] += captions
        cols["width"] += [_int32(w) for w in widths]
        cols["height"] += [_int32(h) for h in heights]
        cols["page_url"] += [page_url] * n
        cols["page_lang"] += [lang] * n
        cols["crawl_time"] += [crawl_time] * n
        cols["source"] += [source] * n
        self.stats.pairs_kept += n


def resolve_base(page_url: str, base_href: str | None) -> str:
    """The URL relative srcs resolve against: an http(s) <base href> (resolved itself), else the page URL."""
    if not base_href:
        return page_url
    try:
        base = urljoin(page_url, base_href.strip().translate(_URL_JUNK))
    except ValueError:
        return page_url
    return base if base.startswith(("http://", "https://")) else page_url


class Resolver:
    """Absolute http(s) URLs of srcs on one page, as urljoin would make them, with fast paths for the
    common absolute, protocol-relative and root-relative forms (the base is split once per page)."""

    def __init__(self, base: str) -> None:
        self.base = base
        parts = urlsplit(base)
        self.scheme = parts.scheme
        self.origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else None
        self.folder = self.origin + parts.path.rpartition("/")[0] + "/" if self.origin else None

    def __call__(self, src: str) -> str | None:
        """The resolved URL without its fragment; None when it is not http(s) with a host; ValueError when
        it does not parse."""
        src = src.strip()
        if not src.isprintable():  # tabs and newlines inside a URL are dropped, as browsers do
            src = src.translate(_URL_JUNK)
        if "#" in src:
            src = src.partition("#")[0]
        if src.startswith(("http://", "https://")):
            url = src
        elif src.startswith("//") and self.scheme in ("http", "https"):
            url = f"{self.scheme}:{src}"
        elif src.startswith("/") and self.origin and "/." not in src:
            return self.origin + src
        elif self.folder and src and src[0] not in "./?" and ":" not in src and "/." not in src:
            return self.folder + src  # a plain relative path: the base's folder + src
        else:
            return self._slow(src)
        netloc = url[url.index("//") + 2:].partition("/")[0].partition("?")[0]
        if not netloc or "[" in netloc or "@" in netloc or "\\" in netloc or " " in netloc or not netloc.isascii():
            return self._slow(url)  # let urlsplit judge IPv6 literals, userinfo and oddities
        return url

    def _slow(self, src: str) -> str | None:
        url = urljoin(self.base, src)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return None
        return url.partition("#")[0]


def _int32(value: int | None) -> int | None:
    return value if value is not None and value < 2**31 else None

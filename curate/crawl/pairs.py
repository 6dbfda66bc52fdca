"""From a page's <img> references to manifest rows: resolve URLs, apply the alt-text rule, drop repeats.

WARC pages and WAT records both end here, so both follow one rule, applied in this order (the first that
fails names the skip reason): alt text present and at least `min_alt_chars` long after whitespace
collapsing (`no_alt`); a URL (`no_src`) that is not a data: URI (`data_uri`); resolved against the
<base href> (itself resolved against the page URL) or the page URL, fragment dropped (`invalid_url` when
it does not parse); scheme http or https with a host (`not_http`); (url, caption) not kept before from
this file (`duplicate`).
"""

from __future__ import annotations

import re
from hashlib import blake2b
from urllib.parse import urljoin, urlsplit

import pyarrow as pa

from curate.crawl.counters import CrawlStats
from curate.crawl.html_images import ImgRef
from curate.crawl.writer import pairs_table
from curate.schema import UID_BYTES

_URL_JUNK = str.maketrans("", "", "\t\n\r")
# = curate.schema.uid_digest's hash: copying an empty state is cheaper than making one per pair
_UID_HASH = blake2b(digest_size=UID_BYTES)


class PairCollector:
    """Accumulates the kept pairs of one input file, ready for a Parquet part.

    Per pair it keeps one tuple (uid digest, url, caption, width, height) and per page one tuple of the
    values its pairs share, with the number of pairs; writer.pairs_table builds the columns from these
    in a few calls per column instead of per-page list work.
    """

    def __init__(self, stats: CrawlStats, min_alt_chars: int = 1) -> None:
        self.stats, self.min_alt_chars = stats, max(1, min_alt_chars)
        self.seen: set[bytes] = set()
        self._start()

    def _start(self) -> None:
        self.rows: list[tuple] = []  # (uid digest, url, caption, width, height) per kept pair
        self.pages: list[tuple] = []  # (page_url, page_lang, crawl_time, source) per page with kept pairs
        self.counts: list[int] = []  # kept pairs of each entry of `pages`

    def __len__(self) -> int:
        return len(self.rows)

    def take(self) -> pa.Table:
        """The collected pairs as a table in CRAWL_SCHEMA; the collector starts empty again (its repeat
        memory is kept)."""
        table = pairs_table(self.rows, self.pages, self.counts)
        self._start()
        return table

    def add_page(
        self,
        page_url: str,
        base_href: str | None,
        lang: str | None,
        crawl_time: int | None,
        source: str,
        images: list[ImgRef],
    ) -> None:
        seen, min_chars, new_hash = self.seen, self.min_alt_chars, _UID_HASH.copy
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
            digest = new_hash()
            digest.update(f"{url}\x1f{caption}".encode("utf-8", "surrogatepass"))
            digest = digest.digest()
            if digest in seen:
                repeated += 1
                continue
            seen.add(digest)
            kept.append((digest, url, caption, width, height))
        stats = self.stats
        stats.images_seen += len(images)
        if len(kept) < len(images):
            skipped = stats.skipped
            for reason, n in (
                ("no_alt", no_alt),
                ("no_src", no_src),
                ("data_uri", data_uri),
                ("invalid_url", invalid),
                ("not_http", not_http),
                ("duplicate", repeated),
            ):
                if n:
                    skipped[reason] += n
        if kept:
            self.rows += kept
            self.pages.append((page_url, lang, crawl_time, source))
            self.counts.append(len(kept))
            stats.pairs_kept += len(kept)


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
        self.scheme, netloc, path = _split(base)
        self.origin = f"{self.scheme}://{netloc}" if netloc else None
        self.folder = self.origin + path.rpartition("/")[0] + "/" if self.origin else None

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
        netloc = url[url.index("//") + 2 :].partition("/")[0].partition("?")[0]
        if (
            not netloc
            or "[" in netloc
            or "@" in netloc
            or "\\" in netloc
            or " " in netloc
            or not netloc.isascii()
        ):
            return self._slow(url)  # let urlsplit judge IPv6 literals, userinfo and oddities
        return url

    def _slow(self, src: str) -> str | None:
        url = urljoin(self.base, src)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return None
        return url.partition("#")[0]


# scheme://netloc then the path, of an http(s) URL; matched, it is what urlsplit gives when the URL is
# printable (nothing for urlsplit to strip), the path empty or absolute (the netloc stopped at / ? #,
# not at a bracket) and the netloc ASCII (no IPv6 brackets or NFKC checks): urlsplit of every page URL
# was a tenth of a WAT crawl's pair stage.
_HTTP_PARTS = re.compile(r"(https?)://([^/?#\[\]]*)([^?#]*)")


def _split(url: str) -> tuple[str, str, str]:
    """(scheme, netloc, path) of `url`, as urlsplit gives them."""
    match = _HTTP_PARTS.match(url)
    if match is not None:
        scheme, netloc, path = match.groups()
        if (not path or path[0] == "/") and netloc.isascii() and url.isprintable():
            return scheme, netloc, path
    parts = urlsplit(url)
    return parts.scheme, parts.netloc, parts.path

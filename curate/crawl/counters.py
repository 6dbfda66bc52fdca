"""Per-file crawl counters: what was read, what was kept, and why everything else was not.

Every record, page and <img> ends up counted somewhere, so a file's numbers add up and a lost pair is
always explained (docs/FORMAT.md#crawl lists the reasons).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Why an <img> (or a whole record) produced no pair. Stable public strings.
SKIP_REASONS = {
    "no_alt": "the <img> has no alt text, or fewer than min_alt_chars characters after whitespace collapsing",
    "no_src": "the <img> names no URL (src, data-src, data-lazy-src, data-original, srcset all empty)",
    "data_uri": "the only URL is an inline data: URI",
    "not_http": "the resolved URL's scheme is not http or https (javascript:, ftp:, mailto: ...)",
    "invalid_url": "the URL cannot be parsed (e.g. a malformed IPv6 host)",
    "duplicate": "the (url, caption) pair was already kept from this file",
    "not_html": "a response record whose payload is not HTML (image, PDF, ...): not a page",
    "http_status": "a response with a non-2xx HTTP status: not a page",
    "too_large": "a record bigger than max_record_bytes (skipped without being held in memory)",
}
# Damage in the input. The rest of the file is still read.
ERROR_KINDS = {
    "corrupt_gzip": "a gzip member that does not decompress; reading resumes at the next member",
    "truncated_gzip": "the file ends inside a gzip member",
    "incomplete_record": "a record cut short by a truncated or corrupt member; its partial bytes are dropped",
    "content_length_overrun": (
        "a record whose Content-Length runs past the end of its gzip member (a wrong or lying length); "
        "it is dropped and reading resumes with the next member's record"
    ),
    "malformed_record": (
        "bytes that are not a WARC record (bad header, bad Content-Length); skipped to the next one"
    ),
    "bad_http": "a response record whose HTTP header block cannot be parsed",
    "content_encoding": (
        "a body whose Content-Encoding cannot be undone (br, a broken gzip); the page is skipped"
    ),
    "invalid_json": "a WAT record whose JSON does not parse",
    "charset": "HTML in an unknown or wrong charset; decoded with a fallback (the page is still read)",
}
MAX_EXAMPLES = 20
MAX_LOGGED_PER_KIND = 3


@dataclass
class CrawlStats:
    """Counters of one input file; `to_dict` is the per-file stats JSON."""

    name: str
    records: Counter = field(default_factory=Counter)  # per WARC-Type
    pages: int = 0
    images_seen: int = 0
    pairs_kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    examples: list = field(default_factory=list)
    bytes_read: int = 0

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] += n

    def error(self, kind: str, offset: int | None, message: str) -> None:
        """Count damage at `offset` of the file, keep the first examples and log the first few per kind."""
        assert kind in ERROR_KINDS, kind
        self.errors[kind] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append({"kind": kind, "offset": offset, "message": message})
        if self.errors[kind] <= MAX_LOGGED_PER_KIND:
            log.warning("%s at offset %s: %s: %s", self.name, offset, kind, message)
        elif self.errors[kind] == MAX_LOGGED_PER_KIND + 1:
            log.warning("%s: more %s errors; all are counted in its stats JSON", self.name, kind)

    def to_dict(self) -> dict:
        return {
            "input": self.name,
            "records": sum(self.records.values()),
            "records_by_type": dict(sorted(self.records.items())),
            "pages": self.pages,
            "images_seen": self.images_seen,
            "pairs_kept": self.pairs_kept,
            "skipped": {k: self.skipped.get(k, 0) for k in SKIP_REASONS},
            "errors": {k: self.errors.get(k, 0) for k in ERROR_KINDS},
            "error_examples": self.examples,
            "bytes_read": self.bytes_read,
        }

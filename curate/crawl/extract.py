"""One archive record in, its image-alt pairs out: WARC HTML responses and WAT metadata records alike.

The record type decides the path, not the file name, so WARC and WAT files (and a file mixing them) go
through the same loop.
"""

from __future__ import annotations

from datetime import UTC, datetime

from curate.crawl.archive import Record, WarcHeaders
from curate.crawl.counters import CrawlStats
from curate.crawl.html_images import parse_html
from curate.crawl.http import HTML_TYPES, BadEncoding, BadHttp, decode_html, decoded_body, parse_response
from curate.crawl.pairs import PairCollector
from curate.crawl.wat import InvalidWat, parse_wat


def wanted(kind: str, headers: WarcHeaders) -> bool:
    """Records that can hold pages: WARC responses and WAT (JSON metadata) records; the rest stream past."""
    if kind == "response":
        return True
    return kind == "metadata" and (headers.get("content-type") or "").startswith("application/json")


class RecordHandler:
    """Turns the records of one archive into pairs in `collector`, counting everything in `stats`."""

    def __init__(
        self, archive: str, collector: PairCollector, stats: CrawlStats, max_record_bytes: int
    ) -> None:
        self.archive, self.collector, self.stats = archive, collector, stats
        self.max_record_bytes = max_record_bytes
        self._date_text: str | None = None
        self._date_ms: int | None = None

    def __call__(self, record: Record) -> None:
        kind = record.type
        if kind == "metadata":
            self._wat(record)
        elif kind == "response":
            self._warc_response(record)

    def _warc_response(self, record: Record) -> None:
        stats = self.stats
        try:
            response = parse_response(record.content)
        except BadHttp as exc:
            stats.error("bad_http", record.offset, str(exc))
            return
        mime = response.mime or (record.headers.get("warc-identified-payload-type") or "").lower()
        if mime not in HTML_TYPES:
            stats.skip("not_html")
            return
        if not 200 <= response.status < 300:
            stats.skip("http_status")
            return
        try:
            body = decoded_body(response, self.max_record_bytes)
        except BadEncoding as exc:
            stats.error("content_encoding", record.offset, str(exc))
            return
        text, problem = decode_html(body, response.headers.get("content-type", ""))
        if problem:
            stats.error("charset", record.offset, problem)
        page = parse_html(text)
        stats.pages += 1
        lang = page.lang or _first_language(response.headers.get("content-language"))
        self.collector.add_page(
            _target_uri(record),
            page.base_href,
            lang,
            self._time(record.headers.get("warc-date")),
            f"{self.archive}:{record.offset}",
            page.images,
        )

    def _wat(self, record: Record) -> None:
        stats = self.stats
        try:
            page = parse_wat(record.data, record.start, record.end)
        except InvalidWat as exc:
            stats.error("invalid_json", record.offset, str(exc))
            return
        if page is None:
            return
        if not page.is_html:
            stats.skip("not_html")
            return
        if page.status is not None and not 200 <= page.status < 300:
            stats.skip("http_status")
            return
        stats.pages += 1
        self.collector.add_page(
            _target_uri(record),
            page.base_href,
            page.lang,
            self._time(page.warc_date or record.headers.get("warc-date")),
            f"{self.archive}:{record.offset}",
            page.images,
        )

    def _time(self, text: str | None) -> int | None:
        """WARC-Date as milliseconds since the epoch (records of one file mostly share a few dates)."""
        if text != self._date_text:
            self._date_text, self._date_ms = text, _parse_date(text)
        return self._date_ms


def _parse_date(text: str | None) -> int | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())  # Python 3.11 reads a trailing Z
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # WARC-Date is UTC by definition
    return int(moment.timestamp() * 1000)


def _target_uri(record: Record) -> str:
    return (record.headers.get("warc-target-uri") or "").strip("<> ")


def _first_language(header: str | None) -> str | None:
    if not header:
        return None
    return header.split(",")[0].strip() or None

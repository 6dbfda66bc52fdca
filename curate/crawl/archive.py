"""Stream WARC records (WARC and WAT files alike) out of gzip-member archives, surviving damage.

Common Crawl ships each record as its own gzip member. Decoding the members directly (ISA-L's inflate
through the isal package, else zlib) and parsing the WARC header by hand is faster than warcio's generic
stream stack (measured in benchmarks/crawl.py), and it lets damage be handled per member: a member that does not decompress is
counted and reading resumes at the next gzip magic; a file cut inside a member keeps every record before
the cut; bytes that are not a WARC record are skipped to the next `WARC/` header; a record larger than the
cap is skipped while it streams past, never held in memory. Plain (uncompressed) WARC files work too.
"""

from __future__ import annotations

import logging
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from curate.crawl.stats import CrawlStats

try:  # ISA-L's inflate decodes the members about twice as fast as zlib's (benchmarks/crawl.py)
    from isal import isal_zlib as _inflate_lib

    _INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, _inflate_lib.error)
except ImportError:  # pragma: no cover - isal has wheels for the usual platforms; zlib is the fallback
    _inflate_lib = zlib
    _INFLATE_ERRORS = (zlib.error,)

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b\x08"
READ_SIZE = 1 << 20
FEED_SIZE = 32 << 10  # input bytes per zlib call: bounds the copy zlib makes of the unused tail at a member end
MAX_HEADER_BYTES = 64 << 10
_DATA, _MEMBER, _GAP = 0, 1, 2


@dataclass(slots=True)
class Record:
    """One WARC record: where it starts in the file, its header (names lower-cased) and its block."""

    offset: int  # byte offset in the archive: of the record's gzip member, or of the record itself when plain
    headers: dict[str, str]
    content: bytes

    @property
    def type(self) -> str:
        return self.headers.get("warc-type", "")


def iter_records(fh: BinaryIO, stats: CrawlStats, *, max_record_bytes: int = 16 << 20,
                 want: Callable[[dict[str, str]], bool] | None = None) -> Iterator[Record]:
    """Every readable record of the archive in `fh`, in order; damage is counted in `stats`.

    `want(headers)` picks the records whose blocks are wanted; the others stream past without a copy.
    """
    parser = _RecordParser(stats, max_record_bytes, want)
    for kind, value in _decompressed(fh, stats):
        if kind == _DATA:
            yield from parser.feed(value)
        elif kind == _MEMBER:
            parser.member_start(value)
        else:
            parser.gap()
    parser.finish()


class _RecordParser:
    """Cuts a stream of decompressed bytes into WARC records (header, then Content-Length bytes)."""

    def __init__(self, stats: CrawlStats, max_record_bytes: int,
                 want: Callable[[dict[str, str]], bool] | None) -> None:
        self.stats, self.max_record_bytes, self.want = stats, max_record_bytes, want
        self.buf = bytearray()
        self.base = 0  # stream position of buf[0]
        self.end = 0  # stream position of buf's end
        self.skipping = 0  # bytes of a skipped record still to come
        self.skip_offset = 0
        self.marks: deque[tuple[int, int]] = deque()  # (stream position, archive offset) of member starts
        self.plain = True  # until a gzip member is seen, stream positions are archive offsets
        self.resyncing = False  # inside bytes already counted as malformed, looking for the next record

    def member_start(self, offset: int) -> None:
        """A gzip member begins: records start at member starts, so unparsed bytes before one are junk."""
        if self.resyncing:
            self._consume(len(self.buf))
            self.resyncing = False
        self.plain = False
        self.marks.append((self.end, offset))

    def offset_at(self, pos: int) -> int:
        if self.plain:
            return pos
        marks = self.marks
        while len(marks) > 1 and marks[1][0] <= pos:
            marks.popleft()
        return marks[0][1] if marks else pos

    def gap(self) -> None:
        """The stream broke (a corrupt member): whatever record was in progress is lost."""
        self._drop_partial()
        self.skipping = 0

    def finish(self) -> None:
        self._drop_partial()

    def _drop_partial(self) -> None:
        if self.buf.strip(b"\r\n") or self.skipping:
            self.stats.error("incomplete_record", self.offset_at(self.base),
                             f"record cut short after {len(self.buf)} bytes; dropped")
        self._consume(len(self.buf))

    def _consume(self, n: int) -> None:
        del self.buf[:n]
        self.base += n

    def feed(self, data: bytes) -> Iterator[Record]:
        self.end += len(data)
        if self.skipping:
            if len(data) <= self.skipping:  # the common case of a huge record: never buffered
                self.skipping -= len(data)
                self.base += len(data)
                return
            cut = self.skipping
            self.skipping = 0
            self.base += cut
            data = data[cut:]
        self.buf += data
        buf = self.buf
        while True:
            start = 0
            while start < len(buf) and buf[start] in b"\r\n":
                start += 1
            if start:
                self._consume(start)
            if not buf:
                return
            if not buf.startswith(b"WARC/"):
                if len(buf) < 5 and b"WARC/".startswith(bytes(buf)):
                    return
                self._resync("no WARC/ version line where a record should start")
                continue
            head_end = buf.find(b"\r\n\r\n", 0, MAX_HEADER_BYTES)
            if head_end < 0:
                if len(buf) >= MAX_HEADER_BYTES:
                    self._resync(f"no end of the WARC header within {MAX_HEADER_BYTES} bytes")
                    continue
                return
            headers = _parse_header(bytes(buf[:head_end]))
            length = _content_length(headers)
            if length is None:
                self._resync(f"missing or invalid Content-Length {headers.get('content-length')!r}")
                continue
            self.resyncing = False
            body_start = head_end + 4
            offset = self.offset_at(self.base)
            self.stats.records[headers.get("warc-type", "unknown")] += 1
            if length > self.max_record_bytes or (self.want is not None and not self.want(headers)):
                if length > self.max_record_bytes:
                    self.stats.skip("too_large")
                    log.warning("%s at offset %d: skipped a %d-byte record (max_record_bytes %d)",
                                self.stats.name, offset, length, self.max_record_bytes)
                have = min(len(buf) - body_start, length)
                self._consume(body_start + have)
                self.skipping = length - have
                if self.skipping:
                    return
                continue
            total = body_start + length
            if len(buf) < total:
                return
            record = Record(offset, headers, bytes(buf[body_start:total]))
            self._consume(total)
            yield record

    def _resync(self, why: str) -> None:
        """Count a malformed record (once per stretch of junk) and drop bytes up to the next `WARC/1.`."""
        if not self.resyncing:
            self.stats.error("malformed_record", self.offset_at(self.base), why)
            self.resyncing = True
        nxt = self.buf.find(b"WARC/1.", 1)
        self._consume(nxt if nxt > 0 else max(len(self.buf) - 6, 1))


def _parse_header(raw: bytes) -> dict[str, str]:
    lines = raw.decode("utf-8", "replace").split("\r\n")
    headers = {"warc-version": lines[0]}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def _content_length(headers: dict[str, str]) -> int | None:
    value = headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def _decompressed(fh: BinaryIO, stats: CrawlStats) -> Iterator[tuple[int, object]]:
    """(_DATA, bytes), (_MEMBER, archive offset) at each gzip member start, (_GAP, None) after damage."""
    chunk = fh.read(READ_SIZE)
    pos = 0  # archive offset of chunk[0]
    if not chunk.startswith(GZIP_MAGIC[:2]):
        while chunk:
            stats.bytes_read += len(chunk)
            yield _DATA, chunk
            chunk = fh.read(READ_SIZE)
        return
    i = 0
    member = -1  # archive offset of the member being decoded; -1 between members
    decomp = None
    view = memoryview(chunk)
    while True:
        if len(chunk) - i < len(GZIP_MAGIC) or (decomp is not None and i >= len(chunk)):
            more = fh.read(READ_SIZE)
            if more:
                pos += i
                chunk = chunk[i:] + more
                view = memoryview(chunk)
                i = 0
            elif i >= len(chunk) or decomp is None:
                stats.bytes_read = pos + len(chunk)
                if decomp is not None:
                    stats.error("truncated_gzip", member, "the file ends inside this gzip member")
                    yield _GAP, None
                elif chunk[i:].strip(b"\0\r\n"):
                    stats.error("corrupt_gzip", pos + i, f"{len(chunk) - i} trailing bytes that are not gzip")
                return
        if decomp is None:
            if chunk[i:i + 3] != GZIP_MAGIC:
                nxt = chunk.find(GZIP_MAGIC, i + 1)
                stats.error("corrupt_gzip", pos + i, "bytes that do not start a gzip member; skipped to the next")
                yield _GAP, None
                i = nxt if nxt >= 0 else max(len(chunk) - 2, i + 1)
                continue
            member = pos + i
            decomp = _inflate_lib.decompressobj(31)
            yield _MEMBER, member
        piece = view[i:i + FEED_SIZE]
        try:
            out = decomp.decompress(piece)
        except _INFLATE_ERRORS as exc:
            stats.error("corrupt_gzip", member, f"gzip member does not decompress ({exc}); skipped to the next")
            yield _GAP, None
            decomp = None
            nxt = chunk.find(GZIP_MAGIC, max(member - pos, 0) + 1)
            i = nxt if nxt >= 0 else len(chunk)
            continue
        if decomp.eof:
            i += len(piece) - len(decomp.unused_data)
            decomp = None
        else:
            i += len(piece)
        if out:
            yield _DATA, out

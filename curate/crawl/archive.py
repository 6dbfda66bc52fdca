"""Stream WARC records (WARC and WAT files alike) out of gzip-member archives, surviving damage.

Common Crawl ships each record as its own gzip member. Decoding the members directly (ISA-L's inflate
through the isal package, else zlib) and parsing the WARC header by hand is faster than warcio's generic
stream stack (measured in benchmarks/crawl.py), and it lets damage be handled per member: a member that
does not decompress is counted and reading resumes at the next gzip magic; a file cut inside a member
keeps every record before the cut; bytes that are not a WARC record are skipped to the next `WARC/`
header; a record larger than the cap is skipped while it streams past, never held in memory; a record
whose Content-Length runs past the end of its member (a wrong or lying length) ends there, so it costs
only itself. Plain (uncompressed) WARC files work too, but there only the Content-Length marks where a
record ends.
"""

from __future__ import annotations

import logging
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from curate.crawl.counters import CrawlStats

try:  # ISA-L's inflate decodes the members about twice as fast as zlib's (benchmarks/crawl.py)
    from isal import isal_zlib as _inflate_lib

    _INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, _inflate_lib.error)
except ImportError:  # pragma: no cover - isal has wheels for the usual platforms; zlib is the fallback
    _inflate_lib = zlib
    _INFLATE_ERRORS = (zlib.error,)

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b\x08"
READ_SIZE = 1 << 20
# Input bytes per inflate call: small for a member's first call (most members are a few KB, and at a
# member's end inflate copies the unused rest of the piece), larger once a member proves big.
FIRST_FEED, FEED_SIZE = 4 << 10, 64 << 10
MAX_HEADER_BYTES = 64 << 10
_DATA, _MEMBER, _GAP = 0, 1, 2


class WarcHeaders:
    """A record's WARC header block, looked up by name on demand (case-insensitively).

    A crawl reads 4-6 of a record's ~10 header fields, millions of times: finding them in the raw block
    costs less than building a dict of all of them.
    """

    __slots__ = ("low", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.low = raw.lower()  # ASCII-only lowering keeps byte positions

    def get(self, name: str, default: str | None = None) -> str | None:
        key = _KEYS.get(name) or _key(name)
        i = self.low.find(key)
        if i < 0:
            return default
        start = i + len(key)
        end = self.raw.find(b"\r\n", start)
        return self.raw[start : end if end >= 0 else len(self.raw)].strip().decode("utf-8", "replace")


def _key(name: str) -> bytes:
    key = _KEYS[name] = b"\r\n" + name.lower().encode("ascii") + b":"
    return key


_KEYS: dict[str, bytes] = {}


@dataclass(slots=True)
class Record:
    """One WARC record: where it starts in the file, its header and its block.

    The block is `data[start:end]`: `data` is usually the inflated gzip member itself, so readers that
    can work within bounds (the WAT parser) need no copy; `content` makes one.
    """

    offset: int  # byte offset in the archive: of the record's gzip member, or of the record itself when plain
    type: str  # WARC-Type
    headers: WarcHeaders
    data: bytes
    start: int
    end: int

    @property
    def content(self) -> bytes:
        data = self.data
        return data if self.start == 0 and self.end == len(data) else data[self.start : self.end]


def iter_records(
    fh: BinaryIO,
    stats: CrawlStats,
    *,
    max_record_bytes: int = 16 << 20,
    want: Callable[[str, WarcHeaders], bool] | None = None,
) -> Iterator[Record]:
    """Every readable record of the archive in `fh`, in order; damage is counted in `stats`.

    `want(warc_type, headers)` picks the records whose blocks are wanted; the others stream past uncopied.
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
    """Cuts a stream of decompressed bytes into WARC records (header, then Content-Length bytes).

    The stream arrives in pieces (`feed`) between events: `member_start` (a gzip member begins), `gap`
    (a damaged member was skipped) and `finish`. A record that is still open at an event is dropped and
    counted once, so a wrong Content-Length costs its own record, never the records after it.
    """

    def __init__(
        self, stats: CrawlStats, max_record_bytes: int, want: Callable[[str, WarcHeaders], bool] | None
    ) -> None:
        self.stats, self.max_record_bytes, self.want = stats, max_record_bytes, want
        self.buf = bytearray()  # the unparsed rest: a record (or header) that the next piece completes
        self.base = 0  # stream position of buf[0]
        self.end = 0  # stream position of buf's end
        self.skipping = 0  # bytes of a skipped record still to come
        self.skipped: tuple[str, int, int] = ("", 0, 0)  # that record's (WARC-Type, offset, Content-Length)
        self.marks: deque[tuple[int, int]] = deque()  # (stream position, archive offset) of member starts
        self.plain = True  # until a gzip member is seen, stream positions are archive offsets
        self.resyncing = False  # inside bytes already counted as malformed, looking for the next record

    # ---------------------------------------------------------------- stream events

    def member_start(self, offset: int) -> None:
        """A gzip member begins. Records are written one per member, so one still open here claimed more
        bytes than its member held: it is dropped and the new member's record is read."""
        if self.skipping or self.buf or self.resyncing:  # usually none: the last record ended with its member
            self._drop_open("content_length_overrun")
        self.plain = False
        self.marks.append((self.end, offset))

    def gap(self) -> None:
        """The stream broke (a corrupt member): whatever record was in progress is lost."""
        self._drop_open("incomplete_record")

    def finish(self) -> None:
        """The stream ended: in a gzip file after a whole member (a truncated one ends in `gap`)."""
        self._drop_open("incomplete_record" if self.plain else "content_length_overrun")

    def offset_at(self, pos: int) -> int:
        if self.plain:
            return pos
        marks = self.marks
        while len(marks) > 1 and marks[1][0] <= pos:
            marks.popleft()
        return marks[0][1] if marks else pos

    # ---------------------------------------------------------------- records

    def feed(self, data: bytes) -> Iterator[Record]:
        """The records that `data`, the next decompressed bytes, completes; a partial one waits in `buf`."""
        self.end += len(data)
        if self.skipping:
            data = self._pass_skipped(data)
        if self.buf:
            self.buf += data
            buf: bytes | bytearray = self.buf
        else:
            buf = data  # the usual case, a member holding one whole record: parsed in place, not copied
        pos = 0
        try:
            while True:
                pos, head = self._next_head(buf, pos)
                if head is None:
                    return
                headers, kind, body_start, length = head
                if length > self.max_record_bytes or (self.want is not None and not self.want(kind, headers)):
                    pos = self._skip_block(buf, body_start, length, kind, self.offset_at(self.base + pos))
                    if self.skipping:
                        return
                    continue
                total = body_start + length
                if len(buf) < total:
                    return  # the rest of the record is in the next pieces: its header is parsed again then
                self.stats.records[kind] += 1
                offset = self.offset_at(self.base + pos)
                if buf is self.buf:  # a bytearray that the next piece changes: the block is copied out
                    record = Record(
                        offset, kind, headers, bytes(buf[body_start:total]), 0, total - body_start
                    )
                else:
                    record = Record(offset, kind, headers, buf, body_start, total)
                pos = total
                yield record
        finally:
            self._keep(buf, pos)

    def _next_head(
        self, buf: bytes | bytearray, pos: int
    ) -> tuple[int, tuple[WarcHeaders, str, int, int] | None]:
        """The next record's start at or after `pos` and its (headers, WARC-Type, block start,
        Content-Length), past blank lines and (counted) junk; None for the header while it is incomplete."""
        n = len(buf)
        while True:
            while pos < n and buf[pos] in (10, 13):
                pos += 1
            if pos >= n:
                return pos, None
            if not buf.startswith(b"WARC/", pos):
                if n - pos < 5 and b"WARC/".startswith(buf[pos:]):
                    return pos, None
                pos = self._resync(buf, pos, "no WARC/ version line where a record should start")
                continue
            head_end = buf.find(b"\r\n\r\n", pos, pos + MAX_HEADER_BYTES)
            if head_end < 0:
                if n - pos < MAX_HEADER_BYTES:
                    return pos, None
                pos = self._resync(buf, pos, f"no end of the WARC header within {MAX_HEADER_BYTES} bytes")
                continue
            headers = WarcHeaders(bytes(buf[pos:head_end]))
            length = _content_length(headers)
            if length is None:
                pos = self._resync(
                    buf, pos, f"missing or invalid Content-Length {headers.get('content-length')!r}"
                )
                continue
            self.resyncing = False
            return pos, (headers, headers.get("warc-type") or "unknown", head_end + 4, length)

    def _skip_block(
        self, buf: bytes | bytearray, body_start: int, length: int, kind: str, offset: int
    ) -> int:
        """Stream past a block that is unwanted or too large, never holding it; returns the position
        after its part in `buf`.

        The record is counted once its last byte has passed: a block that its member does not hold is a
        wrong length, counted as that instead."""
        have = min(len(buf) - body_start, length)
        self.skipping = length - have
        if self.skipping:
            self.skipped = (kind, offset, length)
        else:
            self._count_skipped(kind, offset, length)
        return body_start + have

    def _pass_skipped(self, data: bytes) -> bytes:
        """What is left of `data` after the rest of the record being skipped."""
        if len(data) < self.skipping:  # the common case of a huge record: never buffered
            self.skipping -= len(data)
            self.base += len(data)
            return b""
        cut, self.skipping = self.skipping, 0
        self.base += cut
        self._count_skipped(*self.skipped)
        return data[cut:]

    def _count_skipped(self, kind: str, offset: int, length: int) -> None:
        self.stats.records[kind] += 1
        if length > self.max_record_bytes:
            self.stats.skip("too_large")
            log.warning(
                "%s at offset %d: skipped a %d-byte record (max_record_bytes %d)",
                self.stats.name,
                offset,
                length,
                self.max_record_bytes,
            )

    def _keep(self, buf: bytes | bytearray, pos: int) -> None:
        """Drop the `pos` bytes parsed; keep the rest (a partial record) for the next piece."""
        if len(buf) - pos <= 8 and not buf[pos:].strip(b"\r\n"):
            pos = len(buf)  # only the blank lines after a record: the next piece can be parsed in place
        self.base += pos
        if buf is self.buf:
            del self.buf[:pos]
        elif pos < len(buf):
            self.buf = bytearray(buf[pos:])

    def _resync(self, buf: bytes | bytearray, pos: int, why: str) -> int:
        """Count a malformed record (once per stretch of junk); the position of the next `WARC/1.`."""
        if not self.resyncing:
            self.stats.error("malformed_record", self.offset_at(self.base + pos), why)
            self.resyncing = True
        nxt = buf.find(b"WARC/1.", pos + 1)
        return nxt if nxt > 0 else max(len(buf) - 6, pos + 1)

    def _drop_open(self, error: str) -> None:
        """Drop the record in progress, if any, and count it once: as `error`, or as `malformed_record`
        when a gzip member ends inside its WARC header."""
        buf = self.buf
        if self.skipping:
            _, offset, claimed = self.skipped
            self._count_open(error, offset, claimed, claimed - self.skipping)
        elif buf.strip(b"\r\n") and not self.resyncing:  # junk being resynced over is already counted
            head_end = buf.find(b"\r\n\r\n")
            offset = self.offset_at(self.base)
            if head_end >= 0:
                claimed = _content_length(WarcHeaders(bytes(buf[:head_end]))) or 0
                self._count_open(error, offset, claimed, len(buf) - head_end - 4)
            elif error == "incomplete_record":
                self.stats.error(error, offset, f"record cut short inside its WARC header ({len(buf)} bytes)")
            else:
                self.stats.error("malformed_record", offset, "the gzip member ends inside a WARC header")
        self.skipping = 0
        self.resyncing = False
        del buf[:]
        self.base = self.end

    def _count_open(self, error: str, offset: int, claimed: int, got: int) -> None:
        if error == "content_length_overrun":
            why = f"Content-Length {claimed} but its gzip member ends {got} bytes into the block"
        else:
            why = f"record cut short {got} of {claimed} bytes into its block"
        self.stats.error(error, offset, f"{why}; record dropped, reading resumes after it")


def _content_length(headers: WarcHeaders) -> int | None:
    value = headers.get("content-length") or ""
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
            if chunk[i : i + 3] != GZIP_MAGIC:
                nxt = chunk.find(GZIP_MAGIC, i + 1)
                stats.error(
                    "corrupt_gzip", pos + i, "bytes that do not start a gzip member; skipped to the next"
                )
                yield _GAP, None
                i = nxt if nxt >= 0 else max(len(chunk) - 2, i + 1)
                continue
            member = pos + i
            decomp = _inflate_lib.decompressobj(31)
            yield _MEMBER, member
        piece = view[i : i + (FIRST_FEED if i == member - pos else FEED_SIZE)]
        try:
            out = decomp.decompress(piece)
        except _INFLATE_ERRORS as exc:
            stats.error(
                "corrupt_gzip", member, f"gzip member does not decompress ({exc}); skipped to the next"
            )
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

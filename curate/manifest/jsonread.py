"""Streaming readers for JSON lines and JSON arrays of objects.

JSON lines: blocks of lines go through Arrow's JSON parser; a block it refuses is parsed line by
line, so a bad line is recorded (file:line) and skipped, and its neighbours are kept.
JSON array: elements are decoded one at a time from a bounded text buffer (no whole-file load);
after a syntax error the array cannot be resynchronised, so the rest of that file is not read and
the error (file:line) says so.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.json as pajson

from curate.manifest.columns import ColumnPlan
from curate.manifest.inputs import Source
from curate.manifest.problems import Problems
from curate.manifest.readers import BATCH_ROWS, BOM, READ_ERRORS, make_batch
from curate.manifest.values import array_lenient, text_of

CHUNK_BYTES = 1 << 20
MAX_ELEMENT_CHARS = 64 << 20
TOO_DEEP = "nested deeper than the JSON parser allows (Python's recursion limit); the row is skipped"
TAIL_MARGIN = 16  # an error this close to the buffer's end may just be an element cut by the chunking
_WS = re.compile(r"[ \t\n\r]*")

Rows = list[tuple[int, dict]]


class _JsonReader:
    """Shared part: JSON objects (with their line) to record batches of the planned columns."""

    def __init__(self, src: Source, problems: Problems) -> None:
        self.src, self.problems = src, problems
        self._first: Rows = []
        self._types: dict[str, pa.DataType] = {}

    def _objects(self, items: Iterable[tuple[int, Any]]) -> Rows:
        rows = []
        for line, obj in items:
            if isinstance(obj, dict):
                rows.append((line, obj))
            else:
                self.problems.add(
                    "not_an_object", self.src.name, f"a JSON {type(obj).__name__}, not an object", line=line
                )
        return rows

    def _first_rows(self, blocks: Iterator[Rows]) -> list[str] | None:
        """Keep the first rows (they name the columns); None when the source has no object at all."""
        self._first = next(blocks, [])
        names = dict.fromkeys(key for _, obj in self._first for key in obj)
        return list(names) or None

    def _batch(self, block: Rows, plan: ColumnPlan) -> pa.RecordBatch:
        """Batch from parsed objects; kept columns take the type of their first block (misfits -> null)."""
        url = pa.array([text_of(obj.get(plan.url)) for _, obj in block], pa.string())
        caption = (
            pa.array([text_of(obj.get(plan.caption)) for _, obj in block], pa.string())
            if plan.caption
            else None
        )
        kept = {}
        for name in plan.keep:

            def bad(i: int, msg: str, name: str = name) -> None:
                self.problems.add("bad_value", self.src.name, f"column {name!r}: {msg}", line=block[i][0])

            arr = array_lenient([obj.get(name) for _, obj in block], self._types.get(name), bad)
            if name not in self._types:
                self._types[name] = pa.string() if pa.types.is_null(arr.type) else arr.type
                arr = arr.cast(self._types[name])
            kept[name] = arr
        return make_batch(url, caption, kept)


class JsonlReader(_JsonReader):
    """One object a line. After the first block, blocks of lines go through Arrow's JSON parser with
    the first block's column types; a block that Arrow refuses (a bad line, a type change, non-UTF-8
    bytes) is parsed line by line instead, so every problem is still named with its line."""

    def columns(self) -> list[str] | None:
        self._raw = self._raw_blocks()
        parsed = (rows for block in self._raw if (rows := self._objects(self._parse_lines(block))))
        return self._first_rows(parsed)

    def batches(self, plan: ColumnPlan) -> Iterator[pa.RecordBatch]:
        if self._first:
            yield self._batch(self._first, plan)
        fields = {plan.url: pa.string(), **({plan.caption: pa.string()} if plan.caption else {})}
        schema = pa.schema({**{n: self._types[n] for n in plan.keep}, **fields})
        for block in self._raw:
            batch = self._fast(block, plan, schema)
            if batch is None:
                rows = self._objects(self._parse_lines(block))
                batch = self._batch(rows, plan) if rows else None
            if batch is not None:
                yield batch

    def _raw_blocks(self) -> Iterator[list[tuple[int, bytes]]]:
        block: list[tuple[int, bytes]] = []
        try:
            with self.src.open_buffered() as fh:
                for lineno, raw in enumerate(fh, 1):
                    line = raw.strip()
                    if lineno == 1 and line.startswith(BOM):
                        line = line[len(BOM) :]
                    if line:
                        block.append((lineno, line))
                    if len(block) >= BATCH_ROWS:
                        yield block
                        block = []
        except READ_ERRORS:
            if block:  # keep what was read before a truncated or corrupt stream; the caller records the error
                yield block
            raise
        if block:
            yield block

    def _fast(
        self, block: list[tuple[int, bytes]], plan: ColumnPlan, schema: pa.Schema
    ) -> pa.RecordBatch | None:
        data = b"\n".join(line for _, line in block)
        try:
            table = pajson.read_json(
                pa.BufferReader(data),
                read_options=pajson.ReadOptions(use_threads=False, block_size=len(data) + 1),
                parse_options=pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
            )
            table.validate(full=True)  # Arrow's JSON parser does not check UTF-8
        except pa.ArrowException:
            return None
        if table.num_rows != len(block):
            return None
        batch = table.combine_chunks().to_batches()[0]
        return make_batch(
            batch.column(plan.url),
            batch.column(plan.caption) if plan.caption else None,
            {name: batch.column(name) for name in plan.keep},
        )

    def _parse_lines(self, block: list[tuple[int, bytes]]) -> Iterator[tuple[int, Any]]:
        for lineno, line in block:
            try:
                yield lineno, json.loads(line)
                continue
            except UnicodeDecodeError as exc:
                self.problems.add(
                    "invalid_utf8",
                    self.src.name,
                    f"bytes that are not UTF-8 ({exc.reason}); replaced by U+FFFD",
                    line=lineno,
                )
                text = line.decode("utf-8", "replace")
            except json.JSONDecodeError as exc:
                self.problems.add("bad_json", self.src.name, f"{exc.msg} at column {exc.colno}", line=lineno)
                continue
            except RecursionError:
                self.problems.add("too_deep", self.src.name, TOO_DEEP, line=lineno)
                continue
            try:
                yield lineno, json.loads(text)
            except json.JSONDecodeError as exc:
                self.problems.add("bad_json", self.src.name, f"{exc.msg} at column {exc.colno}", line=lineno)
            except RecursionError:
                self.problems.add("too_deep", self.src.name, TOO_DEEP, line=lineno)


class _Utf8Chunks:
    """Decode a byte stream chunk by chunk; undecodable bytes become U+FFFD and are recorded."""

    def __init__(self, fh: BinaryIO, name: str, problems: Problems) -> None:
        self.fh, self.name, self.problems = fh, name, problems
        self.decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.lines_done = 0

    def read(self) -> tuple[str, bool]:
        chunk = self.fh.read1(CHUNK_BYTES)  # one raw read: read() would drop what it had when the next fails
        final = not chunk
        state = self.decoder.getstate()
        try:
            text = self.decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            self.problems.add(
                "invalid_utf8",
                self.name,
                f"bytes that are not UTF-8 ({exc.reason}); replaced by U+FFFD",
                line=self.lines_done + chunk[: exc.start].count(b"\n") + 1,
            )
            lenient = codecs.getincrementaldecoder("utf-8")("replace")
            lenient.setstate(state)
            text = lenient.decode(chunk, final)
            self.decoder.setstate(lenient.getstate())
        self.lines_done += chunk.count(b"\n")
        return text, final


class JsonArrayReader(_JsonReader):
    """One array of objects, decoded element by element."""

    def columns(self) -> list[str] | None:
        self._blocks = self._object_blocks()
        return self._first_rows(self._blocks)

    def batches(self, plan: ColumnPlan) -> Iterator[pa.RecordBatch]:
        block = self._first
        while block:
            yield self._batch(block, plan)
            block = next(self._blocks, [])

    def _object_blocks(self) -> Iterator[Rows]:
        block: list[tuple[int, Any]] = []
        try:
            with self.src.open_buffered() as fh:
                for item in _ArrayScanner(
                    _Utf8Chunks(fh, self.src.name, self.problems), self.src.name, self.problems
                ).elements():
                    block.append(item)
                    if len(block) >= BATCH_ROWS:
                        if rows := self._objects(block):
                            yield rows
                        block = []
        except READ_ERRORS:
            if rows := self._objects(block):  # keep what was read before a truncated or corrupt stream
                yield rows
            raise
        if rows := self._objects(block):
            yield rows


class _ArrayScanner:
    """The elements of one JSON array, with their line, from a bounded window of its text.

    Consumed text is dropped as the window moves on; an element cut by a chunk border is decoded again
    once the next chunk has arrived. A syntax error ends the file (an array cannot be resynchronised);
    an element nested too deep for the decoder is skipped by matching its brackets, and the rest is read.
    """

    def __init__(self, chunks: _Utf8Chunks, name: str, problems: Problems) -> None:
        self.chunks, self.name, self.problems = chunks, name, problems
        self.decoder = json.JSONDecoder()
        self.buf, self.pos, self.eof, self.started = "", 0, False, False
        self.line, self.line_pos = 1, 0  # the line of buf[line_pos]

    def elements(self) -> Iterator[tuple[int, Any]]:
        self._skip_ws()
        if self.pos >= len(self.buf):
            return
        if self.buf[self.pos] != "[":
            self._fail(
                "a .json input must be one JSON array of objects (one object a line is .jsonl)", self.pos
            )
            return
        self.pos += 1
        first = True
        while self._next_element(first):
            first = False
            found = self._decode()
            if found is None:
                return
            if found is not _SKIPPED:
                yield found

    def _next_element(self, first: bool) -> bool:
        """Move to the next element's first character; False at the array's end (or a syntax error)."""
        self._skip_ws()
        if self.pos >= len(self.buf):
            self._fail("the array is not closed (truncated file?)", self.pos)
            return False
        char = self.buf[self.pos]
        if char == "]":
            return False
        if not first:
            if char != ",":
                self._fail(f"expected ',' or ']' but found {char!r}", self.pos)
                return False
            self.pos += 1
            self._skip_ws()
        return True

    def _decode(self) -> tuple[int, Any] | object | None:
        """(line, value) of the element at pos, _SKIPPED for one too deep to decode, None after an error."""
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
                break
            except json.JSONDecodeError as exc:
                cut = exc.pos >= len(self.buf) - TAIL_MARGIN or exc.msg.startswith("Unterminated string")
                if self.eof or not cut or len(self.buf) - self.pos > MAX_ELEMENT_CHARS:
                    self._fail(exc.msg, exc.pos)
                    return None
                self._more()
            except RecursionError:
                return self._skip_too_deep()
        found = (self._line_of(self.pos), value)
        self.pos = end
        return found

    def _skip_too_deep(self) -> object | None:
        """Count the element at pos as too deep and move past it (its brackets matched by a scan)."""
        line = self._line_of(self.pos)
        while (end := _value_end(self.buf, self.pos)) is None:
            if self.eof or len(self.buf) - self.pos > MAX_ELEMENT_CHARS:
                self._fail("an element nested too deep does not end", self.pos)
                return None
            self._more()
        self.problems.add("too_deep", self.name, TOO_DEEP, line=line)
        self.pos = end
        return _SKIPPED

    def _line_of(self, p: int) -> int:
        self.line += self.buf.count("\n", self.line_pos, p)
        self.line_pos = p
        return self.line

    def _more(self) -> None:
        self._line_of(self.pos)
        self.buf, self.line_pos, self.pos = (
            self.buf[self.pos :],
            0,
            0,
        )  # drop what is consumed: a small window
        text, self.eof = self.chunks.read()
        if not self.started and text.startswith("\ufeff"):
            text = text[1:]
        self.started = True
        self.buf += text

    def _skip_ws(self) -> None:
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf) or self.eof:
                return
            self._more()

    def _fail(self, message: str, at: int) -> None:
        self.problems.add(
            "bad_json", self.name, f"{message}; the rest of this file is not read", line=self._line_of(at)
        )


_SKIPPED = object()
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _value_end(text: str, pos: int) -> int | None:
    """The end of the array or object that starts at text[pos] (brackets matched outside strings),
    or None when text ends first."""
    depth = 0
    for token in _TOKENS.finditer(text, pos):
        char = token.group()
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                return token.end()
    return None

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
                self.problems.add("not_an_object", self.src.name, f"a JSON {type(obj).__name__}, not an object",
                                  line=line)
        return rows

    def _first_rows(self, blocks: Iterator[Rows]) -> list[str] | None:
        """Keep the first rows (they name the columns); None when the source has no object at all."""
        self._first = next(blocks, [])
        names = dict.fromkeys(key for _, obj in self._first for key in obj)
        return list(names) or None

    def _batch(self, block: Rows, plan: ColumnPlan) -> pa.RecordBatch:
        """Batch from parsed objects; kept columns take the type of their first block (misfits -> null)."""
        url = pa.array([text_of(obj.get(plan.url)) for _, obj in block], pa.string())
        caption = (pa.array([text_of(obj.get(plan.caption)) for _, obj in block], pa.string())
                   if plan.caption else None)
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
                        line = line[len(BOM):]
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

    def _fast(self, block: list[tuple[int, bytes]], plan: ColumnPlan, schema: pa.Schema) -> pa.RecordBatch | None:
        data = b"\n".join(line for _, line in block)
        try:
            table = pajson.read_json(
                pa.BufferReader(data), read_options=pajson.ReadOptions(use_threads=False, block_size=len(data) + 1),
                parse_options=pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"))
            table.validate(full=True)  # Arrow's JSON parser does not check UTF-8
        except pa.ArrowException:
            return None
        if table.num_rows != len(block):
            return None
        batch = table.combine_chunks().to_batches()[0]
        return make_batch(batch.column(plan.url), batch.column(plan.caption) if plan.caption else None,
                          {name: batch.column(name) for name in plan.keep})

    def _parse_lines(self, block: list[tuple[int, bytes]]) -> Iterator[tuple[int, Any]]:
        for lineno, line in block:
            try:
                yield lineno, json.loads(line)
                continue
            except UnicodeDecodeError as exc:
                self.problems.add("invalid_utf8", self.src.name,
                                  f"bytes that are not UTF-8 ({exc.reason}); replaced by U+FFFD", line=lineno)
                text = line.decode("utf-8", "replace")
            except json.JSONDecodeError as exc:
                self.problems.add("bad_json", self.src.name, f"{exc.msg} at column {exc.colno}", line=lineno)
                continue
            try:
                yield lineno, json.loads(text)
            except json.JSONDecodeError as exc:
                self.problems.add("bad_json", self.src.name, f"{exc.msg} at column {exc.colno}", line=lineno)


class _Utf8Chunks:
    """Decode a byte stream chunk by chunk; undecodable bytes become U+FFFD and are recorded."""

    def __init__(self, fh: BinaryIO, name: str, problems: Problems) -> None:
        self.fh, self.name, self.problems = fh, name, problems
        self.decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.lines_done = 0

    def read(self) -> tuple[str, bool]:
        chunk = self.fh.read(CHUNK_BYTES)
        final = not chunk
        state = self.decoder.getstate()
        try:
            text = self.decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            self.problems.add("invalid_utf8", self.name, f"bytes that are not UTF-8 ({exc.reason}); replaced by "
                              "U+FFFD", line=self.lines_done + chunk[: exc.start].count(b"\n") + 1)
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
            for item in self._elements():
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

    def _elements(self) -> Iterator[tuple[int, Any]]:
        decoder = json.JSONDecoder()
        with self.src.open_buffered() as fh:
            chunks = _Utf8Chunks(fh, self.src.name, self.problems)
            buf, pos, eof, started = "", 0, False, False
            line, line_pos = 1, 0

            def line_of(p: int) -> int:
                nonlocal line, line_pos
                line += buf.count("\n", line_pos, p)
                line_pos = p
                return line

            def more() -> None:
                nonlocal buf, pos, eof, line_pos, started
                line_of(pos)
                buf, line_pos, pos = buf[pos:], 0, 0  # drop what is consumed: the buffer stays small
                text, eof = chunks.read()
                if not started and text.startswith("\ufeff"):
                    text = text[1:]
                started = True
                buf += text

            def skip_ws() -> None:
                nonlocal pos
                while True:
                    pos = _WS.match(buf, pos).end()
                    if pos < len(buf) or eof:
                        return
                    more()

            def fail(message: str, at: int) -> None:
                self.problems.add("bad_json", self.src.name, f"{message}; the rest of this file is not read",
                                  line=line_of(at))

            skip_ws()
            if pos >= len(buf):
                return
            if buf[pos] != "[":
                fail("a .json input must be one JSON array of objects (one object a line is .jsonl)", pos)
                return
            pos += 1
            first = True
            while True:
                skip_ws()
                if pos >= len(buf):
                    fail("the array is not closed (truncated file?)", pos)
                    return
                if buf[pos] == "]" and first:
                    return
                if not first:
                    if buf[pos] == "]":
                        return
                    if buf[pos] != ",":
                        fail(f"expected ',' or ']' but found {buf[pos]!r}", pos)
                        return
                    pos += 1
                    skip_ws()
                while True:
                    try:
                        obj, end = decoder.raw_decode(buf, pos)
                        break
                    except json.JSONDecodeError as exc:
                        cut = exc.pos >= len(buf) - TAIL_MARGIN or exc.msg.startswith("Unterminated string")
                        if eof or not cut or len(buf) - pos > MAX_ELEMENT_CHARS:
                            fail(exc.msg, exc.pos)
                            return
                        more()
                yield line_of(pos), obj
                pos, first = end, False

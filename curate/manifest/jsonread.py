"""Streaming readers for JSON lines and JSON arrays of objects.

JSON lines: every line is parsed on its own, so a bad line is recorded (file:line) and skipped.
JSON array: elements are decoded one at a time from a bounded text buffer (no whole-file load);
after a syntax error the array cannot be resynchronised, so the rest of that file is not read and
the error (file:line) says so.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

import pyarrow as pa

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
    """Shared part: rows (line, object) in blocks; the first block names the columns."""

    def __init__(self, src: Source, problems: Problems) -> None:
        self.src, self.problems = src, problems
        self._rows: Iterator[tuple[int, Any]] | None = None
        self._first: Rows = []

    def _iter_objects(self) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError

    def _blocks(self) -> Iterator[Rows]:
        block: Rows = []
        try:
            for line, obj in self._iter_objects():
                if not isinstance(obj, dict):
                    self.problems.add("not_an_object", self.src.name,
                                      f"a JSON {type(obj).__name__}, not an object", line=line)
                    continue
                block.append((line, obj))
                if len(block) >= BATCH_ROWS:
                    yield block
                    block = []
        except READ_ERRORS:
            if block:  # keep what was read before a truncated or corrupt stream; the caller records the error
                yield block
            raise
        if block:
            yield block

    def columns(self) -> list[str] | None:
        self._rows = self._blocks()
        self._first = next(self._rows, [])
        names = dict.fromkeys(key for _, obj in self._first for key in obj)
        return list(names) or None

    def batches(self, plan: ColumnPlan) -> Iterator[pa.RecordBatch]:
        assert self._rows is not None, "columns() first"
        types: dict[str, pa.DataType] = {}
        block: Rows | None = self._first
        while block:
            yield self._batch(block, plan, types)
            block = next(self._rows, None)

    def _batch(self, block: Rows, plan: ColumnPlan, types: dict[str, pa.DataType]) -> pa.RecordBatch:
        url = pa.array([text_of(obj.get(plan.url)) for _, obj in block], pa.string())
        caption = (pa.array([text_of(obj.get(plan.caption)) for _, obj in block], pa.string())
                   if plan.caption else None)
        kept = {}
        for name in plan.keep:
            def bad(i: int, msg: str, name: str = name) -> None:
                self.problems.add("bad_value", self.src.name, f"column {name!r}: {msg}", line=block[i][0])

            arr = array_lenient([obj.get(name) for _, obj in block], types.get(name), bad)
            if name not in types:
                types[name] = pa.string() if pa.types.is_null(arr.type) else arr.type
                arr = arr.cast(types[name]) if pa.types.is_null(arr.type) else arr
            kept[name] = arr
        return make_batch(url, caption, kept)


class JsonlReader(_JsonReader):
    def _iter_objects(self) -> Iterator[tuple[int, Any]]:
        with self.src.open_buffered() as fh:
            for lineno, raw in enumerate(fh, 1):
                line = raw.strip()
                if lineno == 1 and line.startswith(BOM):
                    line = line[len(BOM):]
                if not line:
                    continue
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
    def _iter_objects(self) -> Iterator[tuple[int, Any]]:
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

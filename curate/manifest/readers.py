"""Streaming readers for txt, csv/tsv and parquet sources (JSON lives in jsonread.py).

A reader first reports the source's column names (so that the url/caption columns can be picked),
then yields record batches of `url` (string), `caption` (string) and the kept columns, in input order.
No reader ever holds more than one block of its file in memory.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import shutil
import tempfile
from collections import defaultdict, deque
from collections.abc import Iterator
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from curate import storage
from curate.manifest.columns import ColumnPlan
from curate.manifest.inputs import Source
from curate.manifest.problems import MAX_EXAMPLES, Problems
from curate.manifest.values import cast_lenient, infer_type, to_text

log = logging.getLogger(__name__)

BATCH_ROWS = 65_536
CSV_BLOCK_BYTES = 1 << 20
MAX_CSV_ROW_CHARS = CSV_BLOCK_BYTES  # the largest row Arrow's blocks hold; larger ones are not read
MAX_CSV_FIELD_CHARS = 64 << 20  # past this (an unclosed quote?) a CSV file cannot be split into rows
BOM = b"\xef\xbb\xbf"
# Errors that mean "this file cannot be read (any further)": the rows before are kept, the file is recorded.
READ_ERRORS = (pa.ArrowException, OSError, EOFError, ValueError)
_URL_LIKE = re.compile(r"^\s*https?://", re.IGNORECASE)


class Reader(Protocol):
    def columns(self) -> list[str] | None:
        """Column names, or None when the source holds no data at all."""

    def batches(self, plan: ColumnPlan) -> Iterator[pa.RecordBatch]:
        """Batches of url, caption and plan.keep columns."""


def make_batch(url: pa.Array, caption: pa.Array | None, kept: dict[str, pa.Array]) -> pa.RecordBatch:
    caption = caption if caption is not None else pa.nulls(len(url), pa.string())
    return pa.RecordBatch.from_arrays([url, caption, *kept.values()], names=["url", "caption", *kept])


def _arrow_stream(src: Source) -> pa.NativeFile:
    if storage.is_local(src.fs):
        return pa.input_stream(src.path, compression="gzip" if src.gzip else None)
    raw = pa.PythonFile(src.fs.open(src.path, "rb"), mode="r")
    return pa.CompressedInputStream(raw, "gzip") if src.gzip else raw


class TxtReader:
    """One URL a line; blank lines are not rows."""

    def __init__(self, src: Source, problems: Problems) -> None:
        self.src, self.problems = src, problems

    def columns(self) -> list[str] | None:
        return ["url"]

    def batches(self, plan: ColumnPlan) -> Iterator[pa.RecordBatch]:
        urls: list[str] = []
        try:
            yield from self._lines(urls)
        except READ_ERRORS:
            if urls:  # keep what was read before a truncated or corrupt stream; the caller records the error
                yield make_batch(pa.array(urls, pa.string()), None, {})
            raise
        if urls:
            yield make_batch(pa.array(urls, pa.string()), None, {})

    def _lines(self, urls: list[str]) -> Iterator[pa.RecordBatch]:
        with self.src.open_buffered() as fh:
            for lineno, raw in enumerate(fh, 1):
                line = raw.strip()
                if lineno == 1 and line.startswith(BOM):
                    line = line[len(BOM) :].strip()
                if not line:
                    continue
                try:
                    urls.append(line.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    self.problems.add(
                        "invalid_utf8",
                        self.src.name,
                        f"bytes that are not UTF-8 ({exc.reason}); replaced by U+FFFD",
                        line=lineno,
                    )
                    urls.append(line.decode("utf-8", "replace"))
                if len(urls) >= BATCH_ROWS:
                    yield make_batch(pa.array(urls, pa.string()), None, {})
                    urls.clear()


class CsvReader:
    """CSV (quoted fields may span lines) or TSV (no quoting), with a header row, or without one when
    the first row holds a URL (the columns are then named url, caption / column_N).

    All columns are read as bytes so that one non-UTF-8 value or one odd number cannot stop the
    stream: url/caption are decoded per block, kept columns take the type of their first block.
    Arrow reads the file in 1 MiB blocks; a row that no block holds stops it, and the rest of the file
    is then read by Python's csv module, which counts rows over 1 MiB as `oversized_row` and keeps the rest.
    """

    def __init__(self, src: Source, problems: Problems) -> None:
        self.src, self.problems = src, problems
        tsv = src.fmt == "tsv"
        self.delimiter = "\t" if tsv else ","
        self.quoting = not tsv
        self.names: list[str] | None = None  # set when the file has no header row
        self.skipped_rows = 0  # rows Arrow's invalid-row handler skipped: Arrow has read past them

    def _parse_options(self, ragged: list[pacsv.InvalidRow] | None) -> pacsv.ParseOptions:
        def on_invalid(row: pacsv.InvalidRow) -> str:
            if ragged is None:
                return "skip"
            self.skipped_rows += 1
            if row.number is None and len(ragged) < MAX_EXAMPLES:
                ragged.append(row)  # its line is found after the file is read (see _locate)
            else:
                self._record_ragged(row, row.number)
            return "skip"

        return pacsv.ParseOptions(
            delimiter=self.delimiter,
            quote_char='"' if self.quoting else False,
            newlines_in_values=self.quoting,
            invalid_row_handler=on_invalid,
        )

    def _read_options(self) -> pacsv.ReadOptions:
        return pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, column_names=self.names)

    def columns(self) -> list[str] | None:
        try:
            # The header is parsed from the file's first block in memory: a streaming reader over the
            # file would leave a read-ahead task behind, which can abort the interpreter at exit.
            with self.src.open(raise_at_end=False) as fh:  # a damaged .gz: its whole lines
                head = fh.read(CSV_BLOCK_BYTES)
            header = pacsv.open_csv(
                pa.BufferReader(head),
                read_options=self._read_options(),
                parse_options=self._parse_options(None),
            ).schema.names
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                return None
            raise
        if any(_URL_LIKE.match(name) for name in header):
            # No header row (Conceptual Captions ships "caption<TAB>url" like this): name the columns.
            self.names = [f"column_{i}" for i in range(len(header))]
            url_at = next(i for i, name in enumerate(header) if _URL_LIKE.match(name))
            self.names[url_at] = "url"
            if len(header) == 2:
                self.names[1 - url_at] = "caption"
            log.info("%s has no header row; its columns are read as %s", self.src.name, self.names)
        return self.names or header

    def _record_ragged(self, row: pacsv.InvalidRow, line: int | None) -> None:
        self._ragged(row.actual_columns, row.expected_columns, row.text, line)

    def _ragged(self, actual: int, expected: int, text: str, line: int | None) -> None:
        self.problems.add(
            "ragged_row",
            self.src.name,
            f"{actual} fields where the header has {expected}: {text[:100]!r}",
            line=line,
        )

    def _locate(self, ragged: list[pacsv.InvalidRow]) -> None:
        """Record ragged rows with their line numbers, which Arrow cannot give when quoted fields may
        span lines: one more pass over the file, only when there are such rows (the first 100)."""
        waiting: dict[str, deque[int]] = defaultdict(deque)
        for i, row in enumerate(ragged):
            waiting[row.text].append(i)
        lines: list[int | None] = [None] * len(ragged)
        try:
            with self.src.open_buffered() as fh:
                for lineno, raw in enumerate(fh, 1):
                    text = raw.rstrip(b"\r\n").decode("utf-8", "replace")
                    if text in waiting:
                        lines[waiting[text].popleft()] = lineno
                        if not waiting[text]:
                            del waiting[text]
                            if not waiting:
                                break
        except READ_ERRORS:
            pass  # the file's read error is recorded by the caller; these rows keep no line
        found = sorted(
            zip(lines, range(len(ragged)), strict=True), key=lambda p: (p[0] is None, p[0] or 0, p[1])
        )
        for line, i in found:
            self._record_ragged(ragged[i], line)

    def batches(self, plan: ColumnPlan) -> Iterator[pa.RecordBatch]:
        ragged: list[pacsv.InvalidRow] = []
        try:
            yield from self._batches(plan, ragged)
        finally:
            if ragged:
                self._locate(ragged)

    def _batches(self, plan: ColumnPlan, ragged: list[pacsv.InvalidRow]) -> Iterator[pa.RecordBatch]:
        wanted = _wanted(plan)
        convert = pacsv.ConvertOptions(include_columns=wanted, column_types={c: pa.binary() for c in wanted})
        types: dict[str, pa.DataType] = {}
        done = 0
        try:
            with (
                _arrow_stream(self.src) as stream,
                pacsv.open_csv(
                    stream,
                    read_options=self._read_options(),
                    parse_options=self._parse_options(ragged),
                    convert_options=convert,
                ) as reader,
            ):  # closed before its stream when the caller stops early
                for rb in reader:
                    yield self._convert({name: rb.column(name) for name in wanted}, plan, types, done)
                    done += rb.num_rows
            return
        except (pa.ArrowException, OSError, EOFError) as exc:  # a row no block holds, a damaged .gz
            log.info(
                "%s: Arrow stopped after %d rows (%s); the rest is read by Python's csv module",
                self.src.name,
                done,
                exc,
            )
        read_by_arrow = (self.names is None) + done + self.skipped_rows  # header, good and ragged rows
        yield from self._rows_after(read_by_arrow, plan, types, done)

    def _rows_after(
        self, skip: int, plan: ColumnPlan, types: dict[str, pa.DataType], done: int
    ) -> Iterator[pa.RecordBatch]:
        """The rows after the first `skip` records, parsed by Python's csv module; rows over
        MAX_CSV_ROW_CHARS are counted and left out, as are rows whose field count is wrong."""
        wanted = _wanted(plan)
        values: dict[str, list[bytes]] = {name: [] for name in wanted}
        limit = csv.field_size_limit(MAX_CSV_FIELD_CHARS)
        try:
            with self.src.open() as raw:
                text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
                records = csv.reader(
                    text,
                    delimiter=self.delimiter,
                    strict=False,
                    quoting=csv.QUOTE_MINIMAL if self.quoting else csv.QUOTE_NONE,
                )
                names, at = self.names, None
                for n, row in enumerate(_records(records), 1):
                    if names is None:
                        names = row
                    if n <= skip:
                        continue
                    at = at or {name: names.index(name) for name in wanted}
                    if self._fits(row, len(names), records.line_num):
                        for name, i in at.items():
                            values[name].append(row[i].encode("utf-8", "surrogateescape"))
                    if len(values[plan.url]) >= BATCH_ROWS:
                        yield self._convert(_binary(values), plan, types, done)
                        done += BATCH_ROWS
                        values = {name: [] for name in wanted}
        except READ_ERRORS:
            if values[plan.url]:  # the rows read before the damage are kept; the caller records the error
                yield self._convert(_binary(values), plan, types, done)
            raise
        finally:
            csv.field_size_limit(limit)
        if values[plan.url]:
            yield self._convert(_binary(values), plan, types, done)

    def _fits(self, row: list[str], width: int, line: int) -> bool:
        if len(row) != width:
            self._ragged(len(row), width, self.delimiter.join(row), line)
            return False
        size = sum(map(len, row))
        if size > MAX_CSV_ROW_CHARS:
            self.problems.add(
                "oversized_row",
                self.src.name,
                f"a row of {size:,} characters (at most {MAX_CSV_ROW_CHARS:,}): {row[0][:60]!r}...",
                line=line,
            )
            return False
        return True

    def _convert(
        self, cols: dict[str, pa.Array], plan: ColumnPlan, types: dict[str, pa.DataType], done: int
    ) -> pa.RecordBatch:
        """A batch of the planned columns from the raw bytes of rows `done + 1`...: text, kept types."""

        def bad(kind: str):
            return lambda i, msg: self.problems.add(kind, self.src.name, msg, row=done + i + 1)

        url = to_text(cols[plan.url], bad("invalid_utf8"))
        caption = to_text(cols[plan.caption], bad("invalid_utf8")) if plan.caption else None
        kept = {}
        for name in plan.keep:
            text = to_text(cols[name], bad("invalid_utf8"))
            if name not in types:
                types[name] = infer_type(pc.if_else(pc.equal(text, ""), None, text))
            if types[name] != pa.string():
                text = pc.if_else(pc.equal(text, ""), None, text)
            kept[name] = cast_lenient(text, types[name], bad("bad_value"))
        return make_batch(url, caption, kept)


def _wanted(plan: ColumnPlan) -> list[str]:
    return list(dict.fromkeys([plan.url, *([plan.caption] if plan.caption else []), *plan.keep]))


def _records(reader: Iterator[list[str]]) -> Iterator[list[str]]:
    """The non-empty records of a csv reader (Arrow skips empty lines too); a field over the csv
    module's limit leaves no way to tell where rows end, so it stops the file (with a ValueError)."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ValueError(
                f"{exc} near line {reader.line_num} (an unclosed quote?); the rest of the "
                "file cannot be split into rows"
            ) from exc
        if row:
            yield row


def _binary(values: dict[str, list[bytes]]) -> dict[str, pa.Array]:
    return {name: pa.array(column, pa.binary()) for name, column in values.items()}


# Read column chunks through a small buffer instead of prefetching whole row groups: less memory.
_PARQUET_OPTIONS = {"pre_buffer": False, "buffer_size": 1 << 20}


class ParquetReader:
    """Parquet, read a row group slice at a time with only the needed columns.

    Parquet needs random access (its footer is at the end), so a gzipped parquet file is first
    decompressed to a temporary file on local disk, never into memory.
    """

    def __init__(self, src: Source, problems: Problems) -> None:
        self.src, self.problems = src, problems
        self._unzipped: tempfile._TemporaryFileWrapper | None = None

    def _file(self) -> pq.ParquetFile:
        if self.src.gzip:
            if self._unzipped is None:
                self._unzipped = tempfile.NamedTemporaryFile(prefix="curate-manifest-", suffix=".parquet")  # noqa: SIM115 - closed after the last batch
                with self.src.open() as fh:
                    shutil.copyfileobj(fh, self._unzipped, 4 << 20)
                self._unzipped.flush()
            return pq.ParquetFile(self._unzipped.name, **_PARQUET_OPTIONS)
        if storage.is_local(self.src.fs):
            return pq.ParquetFile(self.src.path, **_PARQUET_OPTIONS)
        return pq.ParquetFile(self.src.fs.open(self.src.path, "rb"), **_PARQUET_OPTIONS)

    def columns(self) -> list[str] | None:
        if self.src.fs.size(self.src.path) == 0:
            return None
        return self._file().schema_arrow.names

    def batches(self, plan: ColumnPlan) -> Iterator[pa.RecordBatch]:
        wanted = _wanted(plan)
        done = 0
        for rb in self._file().iter_batches(batch_size=BATCH_ROWS, columns=wanted):

            def bad(i: int, msg: str, offset: int = done) -> None:
                self.problems.add("invalid_utf8", self.src.name, msg, row=offset + i + 1)

            url = to_text(rb.column(plan.url), bad)
            caption = to_text(rb.column(plan.caption), bad) if plan.caption else None
            done += rb.num_rows
            yield make_batch(url, caption, {name: rb.column(name) for name in plan.keep})
        if self._unzipped is not None:
            self._unzipped.close()

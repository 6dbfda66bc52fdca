"""build_manifest: URL lists in, OUT_DIR/part-NNNNN.parquet + .curate/summary.json out, streaming."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator

import pyarrow as pa
from tqdm import tqdm

from curate import storage
from curate.dataset import migrate_sidecars, sidecar
from curate.errors import CurateError
from curate.manifest.columns import plan_columns
from curate.manifest.inputs import Source, resolve
from curate.manifest.jsonread import JsonArrayReader, JsonlReader
from curate.manifest.normalize import Normalizer
from curate.manifest.problems import Problems
from curate.manifest.readers import BATCH_ROWS, READ_ERRORS, CsvReader, ParquetReader, Reader, TxtReader
from curate.manifest.values import cast_lenient
from curate.schema import MANIFEST_SCHEMA, MANIFEST_STATUSES, with_extra_columns
from curate.takedown.requests import Takedown

log = logging.getLogger(__name__)

READERS = {
    "txt": TxtReader,
    "csv": CsvReader,
    "tsv": CsvReader,
    "parquet": ParquetReader,
    "jsonl": JsonlReader,
    "json": JsonArrayReader,
}
SUMMARY = "summary.json"


class PartWriter:
    """Buffers rows and writes OUT_DIR/part-NNNNN.parquet files of exactly rows_per_part rows (the last
    fewer).

    The schema can widen while inputs are read (a kept column that was all null in the first file, an
    int column that later holds floats); parts written before are then rewritten to it on close, so
    every part has one schema.
    """

    def __init__(self, out_dir: str, rows_per_part: int) -> None:
        self.out_dir, self.rows_per_part = out_dir, rows_per_part
        self.schema: pa.Schema | None = None
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.parts: list[str] = []
        self.stale = 0  # parts[:stale] were written with an earlier, narrower schema
        self.rows = 0

    def widen(self, schema: pa.Schema) -> None:
        """Switch to a wider schema: the rows waiting are cast now, the parts written are at close."""
        self.pending = [batch.cast(schema, safe=False) for batch in self.pending]  # a supertype
        self.schema = schema
        self.stale = len(self.parts)

    def add(self, batch: pa.RecordBatch) -> None:
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        while self.pending_rows >= self.rows_per_part:
            table = pa.Table.from_batches(self.pending, self.schema)
            self._write(table.slice(0, self.rows_per_part))
            rest = table.slice(self.rows_per_part)
            self.pending = rest.combine_chunks().to_batches() if rest.num_rows else []
            self.pending_rows = rest.num_rows

    def close(self) -> None:
        if self.pending_rows or not self.parts:
            self._write(pa.Table.from_batches(self.pending, self.schema))
        self.pending, self.pending_rows = [], 0
        for path in self.parts[: self.stale]:
            storage.write_parquet_atomic(storage.read_parquet(path).cast(self.schema, safe=False), path)
        self.stale = 0

    def _write(self, table: pa.Table) -> None:
        path = storage.join(self.out_dir, f"part-{len(self.parts):05d}.parquet")
        storage.write_parquet_atomic(table, path)
        self.parts.append(path)
        self.rows += table.num_rows


def build_manifest(
    inputs: list[str],
    out_dir: str,
    *,
    fmt: str = "auto",
    url_col: str | None = None,
    caption_col: str | None = None,
    keep_cols: Iterable[str] = (),
    rows_per_part: int = 10_000,
    takedown: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Normalise URL lists into a manifest; return the summary, also written as OUT_DIR/.curate/summary.json.

    `takedown` names a takedown.parquet whose requests are honoured (matching rows are left out and
    counted); a path that does not exist means no requests. The summary is written last: its presence
    means the manifest is complete. An OUT_DIR that already holds a manifest is refused unless `overwrite`.
    """
    if rows_per_part < 1:
        raise CurateError(f"rows_per_part must be at least 1, not {rows_per_part}")
    keep_cols = tuple(keep_cols)
    sources = resolve(list(inputs), fmt)
    _prepare_out_dir(out_dir, overwrite)
    start = time.perf_counter()
    problems = Problems()
    normalize = Normalizer(Takedown.load(takedown))
    writer = PartWriter(out_dir, rows_per_part)
    files = []
    with tqdm(desc="manifest", unit=" rows", unit_scale=True, dynamic_ncols=True, disable=None) as bar:
        for src in sources:
            reader: Reader = READERS[src.fmt](src, problems)
            info = {"path": src.name, "format": src.fmt, "gzip": src.gzip, "rows": 0}
            files.append(info)
            unreadable = False
            try:
                columns = reader.columns()
                if columns is not None:
                    plan = plan_columns(
                        columns, src.name, url_col=url_col, caption_col=caption_col, keep_cols=keep_cols
                    )
                    info.update(url_col=plan.url, caption_col=plan.caption)
                    log.info(
                        "reading %s (%s%s): url column %r, caption column %r",
                        src.name,
                        src.fmt,
                        ", gzip" if src.gzip else "",
                        plan.url,
                        plan.caption,
                    )
                    if plan.keep_as != plan.keep:
                        log.info(
                            "%s: kept columns %s are written as %s (download adds columns so named)",
                            src.name,
                            list(plan.keep),
                            list(plan.keep_as),
                        )
                    for batch in _rebatch(reader.batches(plan), BATCH_ROWS):
                        batch = pa.RecordBatch.from_arrays(
                            batch.columns, names=["url", "caption", *plan.keep_as]
                        )
                        info["rows"] += batch.num_rows
                        writer.add(
                            _conform(normalize(batch), writer, src, info["rows"] - batch.num_rows, problems)
                        )
                        bar.update(batch.num_rows)
            except READ_ERRORS as exc:
                unreadable = True
                problems.add("unreadable_file", src.name, f"stopped after {info['rows']} rows: {exc}")
            if info["rows"] == 0 and not unreadable:
                problems.add("empty_file", src.name, "no data rows")
    if writer.schema is None:  # no input row at all: an empty manifest is still a manifest
        writer.schema = MANIFEST_SCHEMA
    writer.close()
    seconds = time.perf_counter() - start
    summary = {
        "inputs": files,
        "rows_read": normalize.rows_in,
        "rows_written": writer.rows,
        "duplicates": normalize.duplicates,
        "takedown_skipped": normalize.taken_down,
        "status": {s: normalize.status.get(s, 0) for s in MANIFEST_STATUSES},
        "malformed": problems.to_dict(),
        "rows_not_read": problems.rows_not_read,
        "parts": len(writer.parts),
        "rows_per_part": rows_per_part,
        "columns": writer.schema.names,
        "dedupe_index_bytes": normalize.seen.nbytes,
        "seconds": round(seconds, 3),
        "rows_per_second": round(normalize.rows_in / seconds) if seconds else None,
    }
    storage.write_json_atomic(summary, sidecar(out_dir, SUMMARY))
    return summary


def _rebatch(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Join small reader batches (a 1 MiB CSV block is ~10k rows) so per-batch costs (the duplicate
    index search, Arrow calls) are paid once per `rows` rows."""
    pending: list[pa.RecordBatch] = []
    count = 0

    def join() -> pa.RecordBatch:
        return (
            pending[0]
            if len(pending) == 1
            else pa.Table.from_batches(pending).combine_chunks().to_batches()[0]
        )

    try:
        for batch in batches:
            pending.append(batch)
            count += batch.num_rows
            if count >= rows:
                yield join()
                pending, count = [], 0
    except READ_ERRORS:
        if count:  # the rows read before the error are kept; the caller records the error
            yield join()
        raise
    if count:
        yield join()


def _conform(
    batch: pa.RecordBatch, writer: PartWriter, src: Source, offset: int, problems: Problems
) -> pa.RecordBatch:
    """Fix the output schema on the first batch; widen it where a later batch's kept column needs a wider
    type (null, narrower numbers), and cast the batch to it (values that still do not fit: bad_value)."""
    if writer.schema is None:
        kept = pa.schema(list(batch.schema)[len(MANIFEST_SCHEMA) :])
        writer.schema = with_extra_columns(MANIFEST_SCHEMA, kept)
        return batch.cast(writer.schema)
    if batch.schema.names != writer.schema.names:
        raise CurateError(
            f"{src.name}: its columns {batch.schema.names[4:]} differ from the earlier inputs' "
            f"{writer.schema.names[4:]}; run one manifest per kind of input"
        )
    wider = _widened(writer.schema, batch.schema)
    if wider is not writer.schema:
        log.info("%s: column types widened to %s", src.name, wider.remove_metadata().to_string())
        writer.widen(wider)
    arrays = []
    for field, arr in zip(writer.schema, batch.columns, strict=True):

        def bad(i: int, msg: str, name: str = field.name) -> None:
            problems.add("bad_value", src.name, f"column {name!r}: {msg}", row=offset + i + 1)

        arrays.append(cast_lenient(arr, field.type, bad))
    return pa.RecordBatch.from_arrays(arrays, schema=writer.schema)


def _widened(schema: pa.Schema, batch: pa.Schema) -> pa.Schema:
    """`schema` with each kept column's type unified with the batch's (Arrow's permissive promotion:
    null takes any type, integers and floats widen); a type that does not unify stays as it is."""
    fields = list(schema)
    for i in range(len(MANIFEST_SCHEMA), len(fields)):
        have, new = fields[i], batch.field(i)
        if have.type == new.type or pa.types.is_null(new.type):
            continue
        try:
            unified = pa.unify_schemas(
                [pa.schema([have]), pa.schema([new.with_name(have.name)])], promote_options="permissive"
            ).field(0)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            continue
        fields[i] = have.with_type(unified.type)
    widened = pa.schema(fields, metadata=schema.metadata)
    return schema if widened.equals(schema) else widened


def _prepare_out_dir(out_dir: str, overwrite: bool) -> None:
    migrate_sidecars(out_dir)
    old = storage.list_files(out_dir, ".parquet") + [
        p for p in [sidecar(out_dir, SUMMARY)] if storage.exists(p)
    ]
    old = [p for p in old if p.rpartition("/")[2].startswith(("part-", SUMMARY))]
    if not old:
        return
    if not overwrite:
        finished = any(p.endswith(SUMMARY) for p in old)
        what = (
            "a manifest" if finished else "an unfinished manifest (parts, no summary.json: a run was stopped)"
        )
        raise CurateError(f"{out_dir} already holds {what}; choose an empty folder or pass --overwrite")
    fs, _ = storage.url_to_fs(out_dir)
    for path in old:
        fs.rm(storage.url_to_fs(path)[1])

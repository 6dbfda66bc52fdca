"""Stream rows into one Parquet shard, made visible only when complete.

Rows arrive as images finish; they are written in row groups so a worker holds at most one row group
of images in memory, and the file appears under its final name only after close (a killed run leaves
at most an ignored `.tmp-*` file).
"""

from __future__ import annotations

import glob
import os
import tempfile
import uuid
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq

from curate import storage


class ShardWriter:
    """Writes one shard and counts what it holds: `rows`, and rows per `status` and per `error_class`
    (the per-shard stats every download engine reports)."""

    def __init__(self, path: str, schema: pa.Schema, row_group_rows: int = 256) -> None:
        self.path = path
        self.schema = schema
        self.row_group_rows = row_group_rows
        self.rows = 0
        self.status: Counter[str] = Counter()
        self.error_class: Counter[str] = Counter()
        self._buffer: list[dict] = []
        fs, inner = storage.url_to_fs(path)
        self._fs, self._inner = fs, inner
        self._local = storage.is_local(fs)
        if self._local:
            head, _, tail = inner.rpartition("/")
            os.makedirs(head, exist_ok=True)
            for stale in glob.glob(f"{glob.escape(head)}/.tmp-*-{glob.escape(tail)}"):
                os.unlink(stale)  # left by a killed attempt at this same shard
            self._tmp = f"{head}/.tmp-{uuid.uuid4().hex[:12]}-{tail}"
        else:
            # Object stores: write locally, then one upload that becomes visible all at once.
            self._tmp = os.path.join(tempfile.gettempdir(), f"curate-{uuid.uuid4().hex[:12]}.parquet")
        # Encoded images do not compress: spend no CPU trying; the other columns are zstd.
        codecs = {name: ("none" if name == "image" else "zstd") for name in schema.names}
        self._writer = pq.ParquetWriter(
            self._tmp, schema, compression=codecs, use_dictionary=[n for n in schema.names if n != "image"]
        )

    def add(self, row: dict) -> None:
        self._count([row["status"]], [row["error_class"]])
        self._buffer.append(row)
        if len(self._buffer) >= self.row_group_rows:
            self._flush()

    def add_batch(self, batch: pa.RecordBatch) -> None:
        """Copy rows that are already in the shard schema (kept rows of a retried shard)."""
        self._flush()
        if batch.num_rows:
            self._writer.write_table(pa.Table.from_batches([batch]).cast(self.schema))
            self.rows += batch.num_rows
            self._count(batch.column("status").to_pylist(), batch.column("error_class").to_pylist())

    def _count(self, statuses: list[str], error_classes: list[str | None]) -> None:
        self.status.update(statuses)
        self.error_class.update(c for c in error_classes if c)

    def _flush(self) -> None:
        if self._buffer:
            self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=self.schema))
            self.rows += len(self._buffer)
            self._buffer = []

    def commit(self) -> None:
        self._flush()
        self._writer.close()
        if self._local:
            with open(self._tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(self._tmp, self._inner)
            return
        try:
            self._fs.makedirs(self._inner.rpartition("/")[0], exist_ok=True)
            self._fs.put_file(self._tmp, self._inner)
        finally:
            os.unlink(self._tmp)

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)

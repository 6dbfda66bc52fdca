"""Manifest parts of one archive file: OUT/part-FFFFFFCCC.parquet (file index, 6 digits; chunk, 3 digits).

Files are crawled in parallel, so part names come from the input's position in the expanded input list
and a per-file chunk counter, never from a shared counter: the same inputs give the same names on any
executor, and a rerun of one file rewrites exactly its own parts. Sorted by name, the parts list the
pairs in input order, which is how `curate download` reads a folder; the name is all digits after
`part-` because download names each shard after those digits.
"""

from __future__ import annotations

import pyarrow as pa

from curate import storage
from curate.errors import CurateError
from curate.schema import MANIFEST_SCHEMA, with_extra_columns

CRAWL_SCHEMA = with_extra_columns(MANIFEST_SCHEMA, pa.schema([
    pa.field("page_url", pa.string()),
    pa.field("page_lang", pa.string()),
    pa.field("crawl_time", pa.timestamp("ms", tz="UTC")),
    pa.field("source", pa.string()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
]))


MAX_CHUNKS = 1000


def part_prefix(file_index: int) -> str:
    return f"part-{file_index:06d}"


class FileParts:
    """Writes the chunks of one input file, each atomically."""

    def __init__(self, out_dir: str, file_index: int) -> None:
        self.out_dir, self.file_index = out_dir, file_index
        self.paths: list[str] = []

    def remove_stale(self) -> None:
        """Delete parts an interrupted earlier attempt at this file left (it may have had more chunks)."""
        fs, _ = storage.url_to_fs(self.out_dir)
        for path in storage.list_files(self.out_dir, ".parquet"):
            if path.rpartition("/")[2].startswith(part_prefix(self.file_index)):
                fs.rm(storage.url_to_fs(path)[1])

    def write(self, columns: dict[str, list]) -> None:
        n = len(columns["uid"])
        arrays = [pa.array(columns[f.name], f.type) if f.name != "status" else pa.array(["ok"] * n, f.type)
                  for f in CRAWL_SCHEMA]
        table = pa.Table.from_arrays(arrays, schema=CRAWL_SCHEMA)
        if len(self.paths) >= MAX_CHUNKS:
            raise CurateError(f"more than {MAX_CHUNKS} parts from one input file: raise --rows-per-part")
        name = f"{part_prefix(self.file_index)}{len(self.paths):03d}.parquet"
        path = storage.join(self.out_dir, name)
        storage.write_parquet_atomic(table, path)
        self.paths.append(name)

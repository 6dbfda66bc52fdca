"""Manifest parts of one archive file: OUT/part-FFFFFFCCC.parquet (file index, 6 digits; chunk, 3 digits).

Files are crawled in parallel, so part names come from the input's position in the expanded input list
and a per-file chunk counter, never from a shared counter: the same inputs give the same names on any
executor, and a rerun of one file rewrites exactly its own parts. Sorted by name, the parts list the
pairs in input order, which is how `curate download` reads a folder; the name is all digits after
`part-` because download names each shard after those digits.
"""

from __future__ import annotations

import binascii
from operator import itemgetter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import storage
from curate.errors import CurateError
from curate.schema import CRAWL_SCHEMA, UID_BYTES

MAX_CHUNKS = 1000
_UID_ROWS_PER_CHUNK = 1 << 20  # 32 hex characters a row: well inside a string array's 2 GiB


def pairs_table(rows: list[tuple], pages: list[tuple], counts: list[int]) -> pa.Table:
    """The CRAWL_SCHEMA table of `rows` (uid digest, url, caption, width, height), whose page columns
    (page_url, page_lang, crawl_time, source) come from `pages`, each repeated for its `counts` rows.

    The uid column is hex-encoded in one call over all digests and the page columns are repeated by
    Arrow: per row, only the url and caption strings are converted one by one.
    """
    n = len(rows)
    # itemgetter per column: zip(*rows) would call next() on one iterator per row, ten times slower
    digests, urls, captions, widths, heights = (list(map(itemgetter(i), rows)) for i in range(5))
    page_urls, langs, times, sources = (list(map(itemgetter(i), pages)) for i in range(4))
    of_page = pa.array(np.repeat(np.arange(len(pages), dtype=np.int32), counts))
    columns = {
        "uid": _uid_column(digests),
        "url": pa.array(urls, pa.string()),
        "caption": pa.array(captions, pa.string()),
        "status": pa.array(["ok"] * n, pa.string()),
        "page_url": pa.array(page_urls, pa.string()).take(of_page),
        "page_lang": pa.array(langs, pa.string()).take(of_page),
        "crawl_time": pa.array(times, pa.timestamp("ms", tz="UTC")).take(of_page),
        "source": pa.array(sources, pa.string()).take(of_page),
        "width": _int32_column(widths),
        "height": _int32_column(heights),
    }
    return pa.Table.from_arrays([columns[f.name] for f in CRAWL_SCHEMA], schema=CRAWL_SCHEMA)


def _uid_column(digests: list[bytes]) -> pa.ChunkedArray:
    """make_uid's 32 hex characters per digest, without a Python string per row."""
    width = 2 * UID_BYTES
    chunks = []
    for lo in range(0, max(len(digests), 1), _UID_ROWS_PER_CHUNK):
        part = digests[lo : lo + _UID_ROWS_PER_CHUNK]
        hexed = binascii.hexlify(b"".join(part))
        offsets = np.arange(0, len(hexed) + 1, width, dtype=np.int32)
        chunks.append(pa.StringArray.from_buffers(len(part), pa.py_buffer(offsets), pa.py_buffer(hexed)))
    return pa.chunked_array(chunks, pa.string())


def _int32_column(values: list[int | None]) -> pa.Array:
    """Declared sizes as int32; a size that does not fit (none do: the HTML reader takes 6 digits) is null."""
    array = pa.array(values, pa.int64())
    return pc.if_else(pc.less(array, 2**31), array, pa.scalar(None, pa.int64())).cast(pa.int32())


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

    def write(self, table: pa.Table) -> None:
        if len(self.paths) >= MAX_CHUNKS:
            raise CurateError(f"more than {MAX_CHUNKS} parts from one input file: raise --rows-per-part")
        name = f"{part_prefix(self.file_index)}{len(self.paths):03d}.parquet"
        path = storage.join(self.out_dir, name)
        storage.write_parquet_atomic(table, path)
        self.paths.append(name)

"""The `concepts` signal: the ids of the entries (MetaCLIP metadata) each caption contains.

Matching follows MetaCLIP's substring rule (curate.concepts.matching); the entry list is the packaged
default or the file given to `curate annotate --entries`. Each signal file records the list's sha256
in its metadata, and the list itself is written once to signals/concepts/_entries/entries.parquet
(id, entry, lang), so decisions and coverage cards name entries without the original file.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from curate import storage
from curate.annotate.options import Options
from curate.concepts.entries import EntryList
from curate.concepts.matching import matcher_for
from curate.dataset import Dataset
from curate.schema import CONCEPTS_SCHEMA

CONCEPTS_COLUMNS = ("uid", "caption")
SHA_KEY = b"curate.concepts.entries_sha256"


def entries_table_path(ds: Dataset) -> str:
    """Where the entry table of a dataset's concepts signal lives (a sub-folder: not a signal file)."""
    return storage.join(ds.signals_dir("concepts"), "_entries", "entries.parquet")


def write_entries_table(ds: Dataset, entries: EntryList) -> None:
    """Write the entry table unless the same list (by sha256) is already there."""
    path = entries_table_path(ds)
    if storage.exists(path):
        meta = storage.read_parquet(path).schema.metadata or {}
        if meta.get(SHA_KEY) == entries.sha256.encode():
            return
    table = entries.table().replace_schema_metadata(
        {SHA_KEY: entries.sha256.encode(), b"curate.concepts.source": entries.source.encode()}
    )
    storage.write_parquet_atomic(table, path)


def concepts_schema(opts: Options) -> pa.Schema:
    """CONCEPTS_SCHEMA with the entry list's sha256: every file carries it, an empty shard's too, since
    `curate filter` refuses files matched against another list."""
    return CONCEPTS_SCHEMA.with_metadata({SHA_KEY: opts.concept_entries_sha256.encode()})


def concepts_signal(shard: pa.Table, opts: Options) -> tuple[pa.Table, dict]:
    matcher = matcher_for(opts.concept_entries, opts.concept_entries_sha256)
    ids = matcher.match(shard.column("caption"))
    table = pa.table({"uid": shard.column("uid"), "concept_ids": ids}, schema=concepts_schema(opts))
    lengths = pc.list_value_length(ids)
    stats = {
        "rows": table.num_rows,
        "no_concept": int(pc.sum(pc.equal(lengths, 0)).as_py() or 0),
        "matches": int(pc.sum(lengths).as_py() or 0),
    }
    return table, stats

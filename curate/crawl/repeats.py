"""The cross-file half of crawl dedup: keep each (url, caption) once over all parts of a run.

Each file already dropped its own repeats while it was read. Here DuckDB groups the uid column of all
parts (it spills to disk, so memory stays bounded however large the run) and only the parts that hold a
repeat of a pair kept by an earlier part (name order: input order) are rewritten, atomically. The pass
is idempotent: a rerun finds nothing to drop.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import pyarrow as pa
import pyarrow.compute as pc

from curate import storage
from curate.inspect import duck

log = logging.getLogger(__name__)


def drop_cross_file_repeats(out_dir: str) -> int:
    """Rewrite the parts holding repeats without them; return how many rows were dropped."""
    parts = [p for p in storage.list_files(out_dir, ".parquet") if p.rpartition("/")[2].startswith("part-")]
    if len(parts) < 2:
        return 0
    con = duck.connect()
    src = duck.source(con, parts, "manifest parts", "curate crawl", "filename = true, file_row_number = true")
    rows = con.execute(f"""
        WITH repeated AS (SELECT uid FROM {src} GROUP BY uid HAVING count(*) > 1),
        ranked AS (
            SELECT filename, file_row_number,
                   row_number() OVER (PARTITION BY uid ORDER BY filename, file_row_number) AS rank
            FROM {src} WHERE uid IN (SELECT uid FROM repeated))
        SELECT filename, file_row_number FROM ranked WHERE rank > 1
    """).fetchall()
    if not rows:
        return 0
    drop: dict[str, list[int]] = defaultdict(list)
    for filename, row in rows:
        drop[filename].append(row)
    by_inner = {storage.url_to_fs(p)[1]: p for p in parts}
    for filename, row_numbers in drop.items():
        path = by_inner.get(filename) or by_inner.get(storage.url_to_fs(filename)[1]) or filename
        table = storage.read_parquet(path)
        keep = pc.invert(
            pc.is_in(pa.array(range(table.num_rows), pa.int64()), pa.array(row_numbers, pa.int64()))
        )
        storage.write_parquet_atomic(table.filter(keep), path)
        log.info("%s: dropped %d pairs already kept from an earlier file", path, len(row_numbers))
    return len(rows)

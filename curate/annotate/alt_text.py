"""The `alt_text` signal: the caption's length after LAION-5B's alt-text cleanup.

LAION's crawler (Crawling@Home `parse_wat`) kept alt text of at least 5 characters counted after
`ftfy.fix_text(alt.replace("\\n", " ")).strip()` and after dropping every character that is not
printable (`str.isprintable`). ftfy repairs mojibake and decodes HTML entities ("&amp;" -> "&"), so the
count needs Python per caption (about 11,000 captions/s per core): an opt-in signal, computed once,
read by the `alt_text_too_short` rule of the laion5b recipe.
"""

from __future__ import annotations

import pyarrow as pa

from curate.annotate.options import Options
from curate.extras import require
from curate.schema import ALT_TEXT_SCHEMA

ALT_TEXT_COLUMNS = ("uid", "caption")


def laion_clean(text: str, fix_text) -> str:
    """LAION's cleaned alt text: newline -> space, ftfy, strip, printable characters only."""
    return "".join(c for c in fix_text(text.replace("\n", " ")).strip() if c.isprintable())


def alt_text_signal(shard: pa.Table, opts: Options) -> tuple[pa.Table, dict]:
    fix_text = require("ftfy", "laion").fix_text
    lengths = [len(laion_clean(t, fix_text)) if t else 0 for t in shard.column("caption").to_pylist()]
    table = pa.table(
        {"uid": shard.column("uid"), "laion_alt_chars": pa.array(lengths, pa.int32())}, schema=ALT_TEXT_SCHEMA
    )
    return table, {"rows": table.num_rows, "under_5": sum(n < 5 for n in lengths)}

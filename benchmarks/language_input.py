"""How much fastText's input cleaning matters: DataComp's `text.replace("\\n", " ")` (curate's input now)
against collapsing every Unicode whitespace run (curate's input before), same model (lid.176.ftz).

    python benchmarks/language_input.py [URL_LIST.parquet ...]   # default: the 10,000 real LAION-style rows

Prints rows compared, rows whose cleaned text differs, top-1 label changes, and en <-> not-en flips
(the only ones a DataComp-basic decision can see).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pyarrow.parquet as pq

from curate.annotate.language import detect_fasttext, fasttext_input

# The reference data's real alt texts (env CURATE_REFERENCE_DATA, as for the tests).
DEFAULT = str(
    Path(os.environ.get("CURATE_REFERENCE_DATA", Path(__file__).resolve().parents[2] / "shared"))
    / "data"
    / "url-lists"
    / "test_10000.parquet"
)
ASCII_SPACE = " \t\n\r\x0b\x0c"


def main(paths: list[str]) -> None:
    texts = []
    for path in paths:
        table = pq.read_table(path)
        column = "TEXT" if "TEXT" in table.column_names else "caption"
        texts += [t for t in table.column(column).to_pylist() if t and t.strip()]
    datacomp = [fasttext_input(t) for t in texts]
    collapsed = [" ".join(t.split()) for t in texts]
    a, _ = detect_fasttext(datacomp)
    b, _ = detect_fasttext(collapsed)
    # fastText splits words on ASCII whitespace itself: only other Unicode spaces (NBSP...) change its words.
    differ = sum(any(c.isspace() and c not in ASCII_SPACE for c in t) for t in texts)
    changed = [(t, x, y) for t, x, y in zip(texts, a, b, strict=True) if x != y]
    flips = [c for c in changed if (c[1] == "en") != (c[2] == "en")]
    print(
        f"rows {len(texts)}; with non-ASCII whitespace {differ}; top-1 label changes {len(changed)}; "
        f"en <-> not-en flips {len(flips)}"
    )
    for text, x, y in changed[:10]:
        print(f"  {x} (DataComp input) vs {y} (collapsed): {text[:80]!r}")


if __name__ == "__main__":
    main(sys.argv[1:] or [DEFAULT])

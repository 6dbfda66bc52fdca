"""Malformed input, recorded: every unreadable line or value is counted and named, never silently lost."""

from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger(__name__)

KINDS = {
    "bad_json": "a line or element that is not valid JSON; the row is not in the manifest",
    "not_an_object": "a JSON line or array element that is not an object; it is not in the manifest",
    "ragged_row": "a CSV/TSV row with more or fewer fields than the header; the row is not in the manifest",
    "oversized_row": "a CSV/TSV row over 1 MiB (a huge field, a runaway quote); not in the manifest",
    "too_deep": "a JSON line or array element nested deeper than the JSON parser allows; not in the manifest",
    "invalid_utf8": "bytes that are not UTF-8; the row is kept with them replaced by U+FFFD",
    "bad_value": (
        "a kept column's value that does not fit the column's type; the row is kept with a null there"
    ),
    "empty_file": "an input file with no data at all",
    "unreadable_file": "a file that could not be read (to the end); the rows read before the error are kept",
}
NOT_READ = ("bad_json", "not_an_object", "ragged_row", "oversized_row", "too_deep")  # kinds that cost a row
MAX_EXAMPLES = 100
MAX_LOGGED_PER_KIND = 5


class Problems:
    """Counts per kind plus the first examples, each naming the file and the line (or data row)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: list[dict] = []

    def add(
        self, kind: str, file: str, message: str, *, line: int | None = None, row: int | None = None
    ) -> None:
        assert kind in KINDS, kind
        self.counts[kind] += 1
        where = (
            f"{file}:{line}" if line is not None else f"{file} (data row {row})" if row is not None else file
        )
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append({"kind": kind, "file": file, "line": line, "row": row, "message": message})
        if self.counts[kind] <= MAX_LOGGED_PER_KIND:
            log.warning("%s: %s: %s", where, kind, message)
        elif self.counts[kind] == MAX_LOGGED_PER_KIND + 1:
            log.warning("more %s problems; all are counted in summary.json", kind)

    @property
    def rows_not_read(self) -> int:
        """Input rows that are not in the manifest because they could not be parsed."""
        return sum(self.counts[k] for k in NOT_READ)

    def to_dict(self) -> dict:
        return {"counts": dict(sorted(self.counts.items())), "examples": self.examples}

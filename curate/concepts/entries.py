"""Entry lists: the concepts a caption can name (MetaCLIP's "metadata"), one per line, optional language.

File format: UTF-8 text, one entry per line, optionally followed by a tab and a language code
(`red fox\ten`); blank lines and lines starting with `#` are skipped; `.gz` files are read transparently.
Entries are normalized exactly as captions are (curate.concepts.matching.normalize), so "St. Louis" in
the list matches "st. louis" in a caption. An entry that normalizes to one already listed is dropped
(the first language wins) so that a caption never counts the same text twice.

The default list (curate/data/concept_entries.tsv.gz) is built by tools/build_concept_entries.py from the
per-language word frequency lists inside the `wordfreq` package; nothing is downloaded at run time.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.resources
import logging
from dataclasses import dataclass

import pyarrow as pa

from curate import storage
from curate.errors import CurateError
from curate.schema import CONCEPT_ENTRIES_SCHEMA

log = logging.getLogger(__name__)

DEFAULT_NAME = "concept_entries.tsv.gz"


@dataclass(frozen=True)
class EntryList:
    """Normalized entries (id = position) with their languages (None when the file gives none)."""

    entries: tuple[str, ...]
    langs: tuple[str | None, ...]
    source: str

    @functools.cached_property
    def sha256(self) -> str:
        """Digest of the normalized (entry, language) list: the signal's identity, recorded in its files."""
        digest = hashlib.sha256()
        for entry, lang in zip(self.entries, self.langs, strict=True):
            digest.update(f"{entry}\t{lang or ''}\n".encode())
        return digest.hexdigest()

    def table(self) -> pa.Table:
        return pa.table(
            {
                "id": pa.array(range(len(self.entries)), pa.int32()),
                "entry": pa.array(self.entries, pa.string()),
                "lang": pa.array(self.langs, pa.string()),
            },
            schema=CONCEPT_ENTRIES_SCHEMA,
        )


def default_path() -> str:
    return str(importlib.resources.files("curate") / "data" / DEFAULT_NAME)


def load_entries(path: str | None = None) -> EntryList:
    """The entry list at `path` (local or fsspec URL), or the default list when `path` is None."""
    from curate.concepts.matching import normalize_array

    path = path or default_path()
    if not storage.exists(path):
        raise CurateError(
            f"entry list {path} does not exist: give a text file with one entry per line "
            "(optionally a tab and a language code), or leave --entries out for the default"
        )
    fs, inner = storage.url_to_fs(path)
    with fs.open(inner, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CurateError(f"entry list {path} is not UTF-8 text ({exc}): save it as UTF-8") from None
    raw_entries: list[str] = []
    raw_langs: list[str | None] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) > 2:
            raise CurateError(
                f"entry list {path} line {number} has {len(parts)} tab-separated columns: "
                "write `entry` or `entry<TAB>language`"
            )
        raw_entries.append(parts[0])
        raw_langs.append(parts[1].strip() or None if len(parts) == 2 else None)
    entries: list[str] = []
    langs: list[str | None] = []
    seen: set[str] = set()
    duplicates = 0
    normalized = normalize_array(pa.array(raw_entries, pa.string())).to_pylist()
    for entry, lang in zip(normalized, raw_langs, strict=True):
        entry = entry.strip(" ")
        if not entry:
            continue
        if entry in seen:
            duplicates += 1
            continue
        seen.add(entry)
        entries.append(entry)
        langs.append(lang)
    if not entries:
        raise CurateError(f"entry list {path} holds no entries: write one entry per line")
    if duplicates:
        log.info(
            "entry list %s: %d entries repeat an earlier one after normalization; kept the first",
            path,
            duplicates,
        )
    return EntryList(tuple(entries), tuple(langs), path)

"""Which source column holds the URL, which the caption, and which are carried along."""

from __future__ import annotations

from dataclasses import dataclass

from curate.errors import CurateError
from curate.schema import MANIFEST_SCHEMA, kept_column_name

# Names tried in order, case-insensitively (LAION uses URL/TEXT, CC3M/CC12M url/caption, WIT image_url).
URL_NAMES = ("url", "image_url", "img_url", "imageurl", "image_src", "img_src", "src", "link", "uri", "image")
CAPTION_NAMES = (
    "caption",
    "text",
    "alt",
    "alt_text",
    "alttext",
    "title",
    "description",
    "caption_text",
    "txt",
)


@dataclass(frozen=True)
class ColumnPlan:
    """Source column names to read: url, caption (None when the source has none) and kept columns."""

    url: str
    caption: str | None
    keep: tuple[str, ...]
    keep_as: tuple[str, ...] = ()  # names in the manifest (curate.schema.kept_column_name)


def _find(columns: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {c.lower(): c for c in reversed(columns)}  # the first of equal lowercase names wins
    return next((lowered[n] for n in names if n in lowered), None)


def plan_columns(
    columns: list[str],
    source: str,
    *,
    url_col: str | None = None,
    caption_col: str | None = None,
    keep_cols: tuple[str, ...] = (),
) -> ColumnPlan:
    """Pick the columns of one source; a name that is absent raises an error that lists what exists."""
    have = ", ".join(repr(c) for c in columns) or "none"

    def require(name: str, option: str) -> str:
        if name not in columns:
            raise CurateError(f"{source}: no column {name!r} ({option}); its columns are: {have}")
        return name

    if url_col:
        url = require(url_col, "--url-col")
    else:
        found = _find(columns, URL_NAMES)
        if found is None:
            raise CurateError(
                f"{source}: no URL column found (tried {', '.join(URL_NAMES)}); its columns are: {have}. "
                "Name it with --url-col"
            )
        url = found
    caption = require(caption_col, "--caption-col") if caption_col else _find(columns, CAPTION_NAMES)
    reserved = {n.lower() for n in MANIFEST_SCHEMA.names}
    for name in keep_cols:
        require(name, "--keep-cols")
        if name.lower() in reserved:
            raise CurateError(
                f"--keep-cols {name!r} clashes with the manifest column {name.lower()!r} (column names are "
                "case-insensitive in DuckDB); it is already in the manifest as url/caption, or rename it"
            )
    keep = tuple(dict.fromkeys(keep_cols))
    keep_as = tuple(kept_column_name(name) for name in keep)
    lowered = [name.lower() for name in keep_as]
    if len(set(lowered)) < len(lowered):
        raise CurateError(
            f"--keep-cols {list(keep)} names columns that differ only in case (column names are "
            "case-insensitive in DuckDB); keep one of each"
        )
    return ColumnPlan(url=url, caption=caption, keep=keep, keep_as=keep_as)

"""The small base class every filter derives from (datatrove's base_filter, as SQL).

A filter only states *when a sample is dropped*: a DuckDB boolean expression over the joined sample
row. curate.filter runs all active filters in one query and records each one's `reason` string.

Columns available to expressions (aliases of the join in curate.filter):
  s.*         the download shard row without image bytes
              (uid, url, caption, status, error_class, width, height)
  image.*, hashes.*, language.*, nsfw.*, caption.*   the `curate annotate` signals
  dedup.*     signals/dedup/clusters.parquet (curate dedup)
  clip.*      signals/clip: clip_score, image/text embeddings (curate annotate --signals clip)
  overlap.*   per uid: benchmarks (list) and matches (count) from signals/overlap/*.parquet (curate overlap)
  takedown.*  per uid: hit = true when DATASET/takedown.parquet names the sample (uid, URL or domain)
"""

from __future__ import annotations

from typing import Any, ClassVar

from curate.schema import OPT_IN_SIGNALS, SIGNAL_NAMES

# View name -> the command that produces it (named in the error when it is missing).
PRODUCERS = {
    **{
        name: f"curate annotate --signals {name}" if name in OPT_IN_SIGNALS else "curate annotate"
        for name in SIGNAL_NAMES
    },
    "dedup": "curate dedup",
    "overlap": "curate overlap",
}


Settings = dict[str, tuple[type | tuple[type, ...], str]]  # recipe key -> (accepted type(s), help)


class Filter:
    """Subclasses set `reason`, `settings` (recipe key -> (type, help)) and `needs`, and write `drop_when`."""

    reason: ClassVar[str]
    settings: ClassVar[Settings] = {}
    needs: ClassVar[tuple[str, ...]] = ()
    always: ClassVar[bool] = False  # active whatever the recipe says (no image, no sample)

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = {key: config[key] for key in self.settings if key in config}

    @property
    def active(self) -> bool:
        """Always-on filters, and filters with at least one setting that is not `false`."""
        return self.always or any(value is not False for value in self.config.values())

    def drop_when(self) -> str:
        raise NotImplementedError


def literal(value: Any) -> str:
    """A Python value as a DuckDB SQL literal (strings quoted, lists as list literals)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as SQL")

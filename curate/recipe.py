"""Recipes: TOML files that state a pipeline's thresholds (pipelines/*.toml, or any path).

Layout: top-level `name` and `description`; [filter] holds the decision settings read by the filters in
curate.filters, [dedup] `max_distance` and `against`, [overlap] `benchmarks = { NAME = "PATH" }`.
Other stages add their own tables ([input], [download], [annotate], [export], [train]); tables this
module does not know are kept in `raw` untouched, but an unknown key inside [filter], [dedup] or
[overlap] is an error, so a typo never silently disables a rule.
"""

from __future__ import annotations

import importlib.resources
import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from curate.errors import CurateError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str = ""
    filter: dict[str, Any] = field(default_factory=dict)
    dedup: dict[str, Any] = field(default_factory=dict)
    overlap: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    source: str = "<dict>"

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, name: str | None = None, source: str = "<dict>") -> Recipe:
        from curate.filters import validate_settings

        rname = str(data.get("name") or name or "").strip()
        if not rname:
            raise CurateError(f'recipe {source} has no `name`: add name = "..." at the top of the file')
        if not _NAME.fullmatch(rname):
            # The name becomes decisions/<name>.parquet and export/<name>/, read back by globs and listings:
            # `*` would match every recipe's decisions (counted twice), `..` would leave the dataset.
            raise CurateError(
                f"recipe name {rname!r} ({source}) must be a plain word of letters, digits, "
                "'_', '-' or '.', starting with a letter or digit: set name = \"...\""
            )
        sections = {}
        for table in ("filter", "dedup", "overlap"):
            value = data.get(table, {})
            if not isinstance(value, dict):
                raise CurateError(f"recipe {source}: [{table}] must be a table, got {type(value).__name__}")
            sections[table] = value
        validate_settings(sections["filter"], source)
        _validate_dedup(sections["dedup"], source)
        _validate_overlap(sections["overlap"], source)
        return cls(
            name=rname, description=str(data.get("description", "")), raw=data, source=source, **sections
        )


def available() -> list[str]:
    """Names of the recipes shipped in curate.pipelines."""
    files = importlib.resources.files("curate.pipelines")
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".toml"))


def load_recipe(name_or_path: str | dict | Recipe) -> Recipe:
    """A Recipe from a dict, a TOML path (`looks_like_path`) or a packaged recipe name (`datacomp_basic`)."""
    if isinstance(name_or_path, Recipe):
        return name_or_path
    if isinstance(name_or_path, dict):
        return Recipe.from_dict(name_or_path)
    text, source = _read(str(name_or_path))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CurateError(f"recipe {source} is not valid TOML: {exc}") from None
    stem = os.path.basename(source).removesuffix(".toml")
    return Recipe.from_dict(data, name=stem, source=source)


def looks_like_path(name_or_path: str) -> bool:
    """A recipe is a file only when it says so (`./x.toml`, a `.toml` suffix, a slash); otherwise it names
    a packaged recipe, whatever the working directory holds (`curate demo -o demo` makes a folder `demo`)."""
    return name_or_path.endswith(".toml") or "/" in name_or_path or os.sep in name_or_path


def _read(name_or_path: str) -> tuple[str, str]:
    if looks_like_path(name_or_path):
        if not os.path.isfile(name_or_path):
            what = "is a folder, not a TOML file" if os.path.isdir(name_or_path) else "does not exist"
            raise CurateError(f"recipe file {name_or_path} {what}")
        with open(name_or_path, encoding="utf-8") as fh:
            return fh.read(), name_or_path
    resource = importlib.resources.files("curate.pipelines") / f"{name_or_path}.toml"
    if not _NAME.fullmatch(name_or_path) or not resource.is_file():
        local = os.path.isfile(name_or_path)
        here = f" (for the file {name_or_path} here, write ./{name_or_path})" if local else ""
        raise CurateError(
            f"no recipe named {name_or_path!r}: give a path to a .toml file or one of "
            f"{', '.join(available())}{here}"
        )
    return resource.read_text(encoding="utf-8"), f"curate.pipelines/{name_or_path}.toml"


def _validate_dedup(table: dict, source: str) -> None:
    unknown = set(table) - {"max_distance", "against"}
    if unknown:
        raise CurateError(
            f"recipe {source}: unknown key(s) {sorted(unknown)} in [dedup]; valid: max_distance, against"
        )
    value = table.get("max_distance")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 64):
        raise CurateError(f"recipe {source}: [dedup] max_distance must be an integer 0..63, got {value!r}")
    against = table.get("against", [])
    if not isinstance(against, list) or not all(isinstance(v, str) for v in against):
        raise CurateError(
            f"recipe {source}: [dedup] against must be a list of dataset paths, got {against!r}"
        )


def _validate_overlap(table: dict, source: str) -> None:
    unknown = set(table) - {"benchmarks", "max_distance"}
    if unknown:
        raise CurateError(
            f"recipe {source}: unknown key(s) {sorted(unknown)} in [overlap]; valid: benchmarks, max_distance"
        )
    benchmarks = table.get("benchmarks", {})
    if not isinstance(benchmarks, dict) or not all(isinstance(v, str) for v in benchmarks.values()):
        raise CurateError(f'recipe {source}: [overlap] benchmarks must be a table of NAME = "PATH"')

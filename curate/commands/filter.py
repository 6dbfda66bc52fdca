"""`curate filter DATASET --recipe NAME_OR_PATH`: decisions (uid, keep, reasons) as SQL over signals."""

from __future__ import annotations

import argparse

NAME = "filter"
HELP = "decide keep/drop per sample from a recipe's thresholds (DuckDB over stored signals; no recompute)"
ORDER = 40


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(NAME, help=HELP, description=HELP)
    parser.add_argument("dataset", metavar="DATASET", help="dataset folder (local path or fsspec URL)")
    parser.add_argument(
        "--recipe",
        required=True,
        metavar="NAME_OR_PATH",
        help="a packaged recipe (datacomp_basic, datacomp_clip_score, laion5b, metaclip, "
        "strict, demo) or a .toml path",
    )
    parser.add_argument(
        "--label-only",
        action="store_true",
        help="record reasons but let `curate export` include every sample, reasons as labels",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.dataset import Dataset
    from curate.filter import decisions_path, filter_dataset

    with Dataset(args.dataset).lock(NAME):
        s = filter_dataset(args.dataset, args.recipe, label_only=args.label_only)
    pct = 100.0 * s["kept"] / s["samples"] if s["samples"] else 0.0
    print(
        f"recipe {s['recipe']}: kept {s['kept']:,} of {s['samples']:,} samples ({pct:.1f}%) "
        f"in {s['seconds']:.2f} s"
        + (" [label-only: export will include dropped samples with their reasons]" if s["label_only"] else "")
    )
    for reason, n in sorted(s["dropped_by_reason"].items(), key=lambda kv: -kv[1]):
        print(f"  {reason:<22} {n:>10,}")
    print(f"wrote {decisions_path(args.dataset, s['recipe'])}")
    return 0

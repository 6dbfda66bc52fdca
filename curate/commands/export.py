"""`curate export DATASET --recipe NAME [-o OUT] --format parquet|webdataset`: the kept samples as shards."""

from __future__ import annotations

import argparse

NAME = "export"
HELP = "write a recipe's kept samples as Parquet shards or WebDataset tar shards (open_clip reads them)"
ORDER = 45


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(NAME, help=HELP, description=HELP)
    parser.add_argument("dataset", metavar="DATASET", help="dataset folder (local path or fsspec URL)")
    parser.add_argument(
        "--recipe", required=True, metavar="NAME_OR_PATH", help="the recipe `curate filter` used"
    )
    parser.add_argument(
        "-o", "--output", default=None, metavar="OUT", help="default: DATASET/export/<recipe>"
    )
    parser.add_argument(
        "--format", default="parquet", choices=["parquet", "webdataset"], help="default parquet"
    )
    parser.add_argument("--samples-per-shard", type=int, default=10_000, metavar="N", help="default 10000")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.dataset import Dataset
    from curate.export.stage import export

    with Dataset(args.dataset).lock(NAME):
        s = export(
            args.dataset,
            args.recipe,
            out=args.output,
            fmt=args.format,
            samples_per_shard=args.samples_per_shard,
        )
    print(
        f"exported {s['samples']:,} samples of recipe {s['recipe']} "
        f"in {len(s['shards'])} {s['format']} shard(s) "
        f"to {s['out']} in {s['seconds']:.1f} s"
        + (" (label-only: all samples, reasons as labels)" if s["label_only"] else "")
    )
    return 0

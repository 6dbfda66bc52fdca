"""`curate overlap DATASET --benchmark NAME=PATH...`: flag training samples that match evaluation sets."""

from __future__ import annotations

import argparse

from curate.commands._common import add_partition_args

NAME = "overlap"
HELP = "flag training samples near-duplicating benchmark images (or repeating their captions)"
ORDER = 36


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(NAME, help=HELP, description=HELP)
    parser.add_argument("dataset", metavar="DATASET", help="dataset folder (local path or fsspec URL)")
    parser.add_argument(
        "--benchmark",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="an evaluation set: a folder of images (class sub-folders allowed), a .parquet with "
        "an image column (+ label/caption), or a curate dataset; repeat for several",
    )
    parser.add_argument(
        "--recipe", metavar="NAME_OR_PATH", help="also use the benchmarks of the recipe's [overlap]"
    )
    parser.add_argument(
        "--max-distance",
        type=int,
        default=None,
        metavar="K",
        help="Hamming radius on the perceptual hash (default: the dedup default)",
    )
    add_partition_args(parser, "one shard or uid range of the pool")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.dataset import Dataset
    from curate.dedup.overlap import format_table, overlap
    from curate.errors import CurateError
    from curate.recipe import load_recipe

    benchmarks: dict[str, str] = {}
    k = args.max_distance
    if args.recipe:
        rcp = load_recipe(args.recipe)
        benchmarks.update(rcp.overlap.get("benchmarks", {}))
        k = k if k is not None else rcp.overlap.get("max_distance")
    for item in args.benchmark:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise CurateError(
                f"--benchmark {item!r}: write NAME=PATH, e.g. --benchmark imagenet=/data/imagenet/val"
            )
        benchmarks[name] = path
    with Dataset(args.dataset).lock(NAME):
        results = overlap(
            args.dataset,
            benchmarks,
            max_distance=k,
            workers=args.workers,
            executor=args.executor,
            partitions=args.partitions,
            memory_budget=args.memory_budget,
        )
    print(format_table(results))
    part = next(iter(results.values())).get("partitions")
    if part:
        print(f"partitioned: {part['count']} partitions, largest task {part['peak_task_rss_mb']:,.0f} MB")
    print(
        f"wrote {Dataset(args.dataset).signals_dir('overlap')}/<benchmark>.parquet "
        "and <benchmark>.eval.parquet"
    )
    return 0

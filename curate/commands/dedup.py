"""`curate dedup DATASET [--against OTHER...]`: exact and near-duplicate clusters (docs/FORMAT.md)."""

from __future__ import annotations

import argparse

NAME = "dedup"
HELP = "cluster exact (sha256, URL) and near (perceptual-hash) duplicates; --against built datasets"
ORDER = 35


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(NAME, help=HELP, description=HELP)
    parser.add_argument("dataset", metavar="DATASET", help="dataset folder (local path or fsspec URL)")
    parser.add_argument("--max-distance", type=int, default=None, metavar="K",
                        help="Hamming radius on the 64-bit perceptual hash (default: the measured default)")
    parser.add_argument("--against", nargs="+", default=[], metavar="OTHER_DATASET",
                        help="already built datasets: copies of their samples are marked duplicates (reads "
                             "their hash signals only)")
    parser.add_argument("--recipe", metavar="NAME_OR_PATH", help="take --max-distance from the recipe's [dedup]")
    parser.add_argument("--workers", type=int, default=2, help="threads for the hash search (default 2)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.dataset import Dataset
    from curate.dedup import clusters_path, dedup
    from curate.recipe import load_recipe

    k = args.max_distance
    if k is None and args.recipe:
        k = load_recipe(args.recipe).dedup.get("max_distance")
    with Dataset(args.dataset).lock(NAME):
        s = dedup(args.dataset, max_distance=k, against=args.against, workers=args.workers)
    kinds = ", ".join(f"{kind} {n:,}" for kind, n in s["duplicates_by_kind"].items())
    print(f"{s['samples']:,} samples, {s['clusters']:,} duplicate clusters, {s['duplicates']:,} duplicates "
          f"({kinds}) in {s['seconds']:.1f} s")
    if s["against"]:
        print(f"{s['duplicates_of_against']:,} samples duplicate samples of {', '.join(s['against'])}")
    print(f"search: {s['search']}")
    print(f"wrote {clusters_path(args.dataset)}")
    return 0

"""`curate dedup DATASET [--against OTHER...] [--semantic]`: exact, near and semantic duplicate clusters
(docs/FORMAT.md)."""

from __future__ import annotations

import argparse

from curate.commands._common import add_partition_args

NAME = "dedup"
HELP = "cluster exact (sha256, URL) and near (perceptual-hash) duplicates; --against built datasets"
ORDER = 35


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(NAME, help=HELP, description=HELP)
    parser.add_argument("dataset", metavar="DATASET", help="dataset folder (local path or fsspec URL)")
    parser.add_argument(
        "--max-distance",
        type=int,
        default=None,
        metavar="K",
        help="Hamming radius on the 64-bit perceptual hash (default: the measured default)",
    )
    parser.add_argument(
        "--against",
        nargs="+",
        default=[],
        metavar="OTHER_DATASET",
        help="already built datasets: copies of their samples are marked duplicates (reads "
        "their hash signals only)",
    )
    parser.add_argument(
        "--recipe", metavar="NAME_OR_PATH", help="take --max-distance from the recipe's [dedup]"
    )
    add_partition_args(parser, "one partition")
    parser.add_argument(
        "--semantic",
        action="store_true",
        help="also collapse images whose CLIP embeddings (signals/clip) nearly coincide "
        "(SemDeDup); representatives are then the highest CLIP score",
    )
    parser.add_argument(
        "--eps",
        type=float,
        default=None,
        metavar="EPS",
        help="with --semantic: pairs with cosine > 1 - EPS are duplicates (default 0.01)",
    )
    parser.add_argument(
        "--clusters",
        type=int,
        default=None,
        metavar="K",
        help="with --semantic: k-means clusters to search in (default: 1 per 500 samples)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.dataset import Dataset
    from curate.dedup import clusters_path, dedup
    from curate.dedup.partitioned import dedup_partitioned
    from curate.dedup.semantic import DEFAULT_EPS
    from curate.dedup.semantic_partitioned import dedup_semantic_partitioned
    from curate.errors import CurateError
    from curate.recipe import load_recipe

    k = args.max_distance
    if k is None and args.recipe:
        k = load_recipe(args.recipe).dedup.get("max_distance")
    if not args.semantic and (args.eps is not None or args.clusters is not None):
        raise CurateError("--eps and --clusters set the semantic search: add --semantic")
    eps = (DEFAULT_EPS if args.eps is None else args.eps) if args.semantic else None
    partitioned = args.executor == "ray" or args.partitions is not None or args.memory_budget is not None
    if partitioned and args.against:
        raise CurateError(
            "the partitioned dedup (--executor ray, --partitions, --memory-budget) does not "
            "take --against yet: run it with the default local executor"
        )
    if args.partitions is not None and args.partitions < 1:
        raise CurateError(f"--partitions must be at least 1, got {args.partitions}")
    with Dataset(args.dataset).lock(NAME):
        if partitioned and args.semantic:
            s = dedup_semantic_partitioned(
                args.dataset,
                eps=eps,
                clusters_k=args.clusters,
                max_distance=k,
                partitions=args.partitions,
                memory_budget=args.memory_budget,
                executor=args.executor,
                workers=args.workers,
            )
        elif partitioned:
            s = dedup_partitioned(
                args.dataset,
                max_distance=k,
                partitions=args.partitions,
                memory_budget=args.memory_budget,
                executor=args.executor,
                workers=args.workers,
            )
        else:
            s = dedup(
                args.dataset,
                max_distance=k,
                against=args.against,
                workers=args.workers,
                semantic_eps=eps,
                semantic_clusters=args.clusters,
            )
    kinds = ", ".join(f"{kind} {n:,}" for kind, n in s["duplicates_by_kind"].items())
    print(
        f"{s['samples']:,} samples, {s['clusters']:,} duplicate clusters, {s['duplicates']:,} duplicates "
        f"({kinds}) in {s['seconds']:.1f} s"
    )
    if s["against"]:
        print(f"{s['duplicates_of_against']:,} samples duplicate samples of {', '.join(s['against'])}")
    print(f"search: {s['search']}")
    if s.get("partitions"):
        part = s["partitions"]
        print(
            f"partitioned: {part['count']} partitions, {part['component_rounds']} component rounds, "
            f"largest task {part['peak_task_rss_mb']:,.0f} MB"
        )
    if s["semantic"]:
        sem = s["semantic"]
        print(
            f"semantic: {sem['embedded']:,} embeddings in {sem['clusters']:,} k-means clusters (largest "
            f"{sem['largest_cluster']:,}), {sem['pairs']:,} pairs with cosine > {1 - sem['eps']:g}"
        )
    print(f"wrote {clusters_path(args.dataset)}")
    return 0

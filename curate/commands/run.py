"""`curate run RECIPE`: every stage of a recipe in one go (resumable: rerun to finish)."""

from __future__ import annotations

import argparse
import json

from curate.commands._common import add_executor_args

NAME = "run"
HELP = "run a recipe's whole chain: ingest, download, annotate, dedup, overlap, filter, export, train"
ORDER = 50


def register(sub: argparse._SubParsersAction) -> None:
    from curate.schema import STAGES

    p = sub.add_parser(
        NAME,
        help=HELP,
        description=HELP,
        epilog="example: curate run pipelines/strict.toml --dataset s3://bucket/laion-sample",
    )
    p.add_argument("recipe", help="a recipe name (e.g. datacomp_basic) or a path to a TOML recipe")
    p.add_argument("--dataset", help="dataset folder (default: the recipe's [input] dataset)")
    p.add_argument("--stages", help=f"comma-separated subset of: {','.join(STAGES)}")
    add_executor_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.run import run_pipeline

    stages = [s.strip() for s in args.stages.split(",")] if args.stages else None
    result = run_pipeline(
        args.recipe, dataset=args.dataset, executor=args.executor, workers=args.workers, stages=stages
    )
    print(f"dataset: {result.dataset}")
    for stage, seconds in result.seconds.items():
        print(f"  {stage:<9} {seconds:8.1f} s")
    print(json.dumps({"stages": list(result.stages)}, indent=None))
    return 0

"""`curate train DATA -o RUN_DIR --model tiny`: train CLIP on exported shards.

Use torchrun for several processes.
"""

from __future__ import annotations

import argparse

from curate.settings import add_options, from_args
from curate.train.configs import TrainConfig

NAME = "train"
HELP = "train CLIP (tiny, ViT-B-32, ViT-B-16, ViT-L-14, ...) on exported Parquet or WebDataset shards"
ORDER = 70


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        NAME,
        help=HELP,
        description=HELP + ". Several processes or GPUs: "
        "torchrun --nproc_per_node N -m curate train ... Each option is also a key of a "
        "recipe's [train] table (--batch-size: batch_size).",
    )
    parser.add_argument(
        "data",
        nargs="+",
        metavar="DATA",
        help="shard files or folders of .parquet/.tar shards (e.g. DATASET/export/RECIPE)",
    )
    parser.add_argument(
        "-o", "--out", required=True, metavar="RUN_DIR", help="run directory (config, metrics, checkpoints)"
    )
    add_options(parser, TrainConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import os

    from curate.extras import require

    require("torch", "train")
    require("tokenizers", "train")
    from curate.train.train import train

    result = train(from_args(TrainConfig, args, data=args.data, out_dir=args.out))
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one report
        print(json.dumps(result, indent=2))
    return 0

"""`curate search CHECKPOINT DATASET "a query"`: the dataset's images closest to a text (or image) query."""

from __future__ import annotations

import argparse

NAME = "search"
HELP = "find a dataset's images matching a text or image query with a trained CLIP (embeddings cached)"
ORDER = 72


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(NAME, help=HELP, description=HELP)
    parser.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="a checkpoint .pt file or a run directory (latest)"
    )
    parser.add_argument(
        "dataset", metavar="DATASET", help="a curate dataset folder, or a folder of exported shards"
    )
    parser.add_argument("query", nargs="?", metavar="QUERY", help="text to search for")
    parser.add_argument("--image", metavar="PATH", help="search with an image instead of a text")
    parser.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    parser.add_argument("--html", metavar="OUT.html", help="also write an HTML grid of the results")
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.extras import require

    require("torch", "train")
    from curate.train.search import format_table, search, write_html

    result = search(
        args.checkpoint, args.dataset, query=args.query, image=args.image, k=args.k, device=args.device
    )
    print(format_table(result["hits"]))
    print(f"({result['n']} images; embeddings cached at {result['cache']})")
    if args.html:
        write_html(result, args.dataset, args.html, title=f"curate search: {args.query or args.image}")
        print(f"wrote {args.html}")
    return 0

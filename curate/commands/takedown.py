"""`curate takedown DATASET --uid/--url/--domain/--file`: honour a consent request (docs/CONSENT.md)."""

from __future__ import annotations

import argparse

NAME = "takedown"
HELP = "purge samples (by uid, URL or domain) from shards and exports and record the request"
ORDER = 48


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(NAME, help=HELP, description=HELP)
    parser.add_argument("dataset", metavar="DATASET", help="dataset folder (local path or fsspec URL)")
    parser.add_argument("--uid", action="append", default=[], help="a sample uid (repeatable)")
    parser.add_argument("--url", action="append", default=[], help="an image URL (repeatable)")
    parser.add_argument(
        "--domain", action="append", default=[], help="a domain, subdomains included (repeatable)"
    )
    parser.add_argument("--file", help="a text file: one uid, URL or domain a line, # comments")
    parser.add_argument("--reason", default="", help="why (stored in takedown.parquet)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.dataset import Dataset
    from curate.takedown.stage import takedown

    with Dataset(args.dataset).lock(NAME):
        s = takedown(
            args.dataset,
            uids=args.uid,
            urls=args.url,
            domains=args.domain,
            file=args.file,
            reason=args.reason,
        )
    print(
        f"{s['requests']} request(s): {s['samples_matched']:,} samples matched, {s['shard_rows_purged']:,} "
        f"images purged from shards, {s['export_samples_removed']:,} samples removed from exports"
    )
    print(f"recorded in {Dataset(args.dataset).takedown_path}")
    return 0

"""`curate import FOLDER -o DATASET`: an img2dataset output as a curate dataset (see curate.imports)."""

from __future__ import annotations

import argparse

NAME = "import"
HELP = "take an img2dataset output folder (parquet, webdataset or files format) as a dataset, no new download"
ORDER = 21


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help=HELP, description=HELP + ". Rerun the same command to resume.")
    p.add_argument("folder", metavar="FOLDER", help="img2dataset's output_folder (local or s3://...)")
    p.add_argument("-o", "--output", required=True, metavar="DATASET", help="new dataset folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate.imports import import_img2dataset

    summary = import_img2dataset(args.folder, args.output)
    data = summary["dataset"]
    status = data.get("status", {})
    print(
        f"{args.output}/shards: {data['rows']:,} rows from {args.folder}: "
        f"{status.get('success', 0):,} success, {status.get('failed', 0):,} failed, "
        f"{status.get('skipped', 0):,} skipped "
        f"({summary['jobs_done']} shards imported now, {summary['jobs_skipped_already_done']} already done)"
    )
    print(f"manifest: {args.output}/manifest; next: curate annotate {args.output}")
    return 0

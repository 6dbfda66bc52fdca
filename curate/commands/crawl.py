"""`curate crawl INPUT... -o MANIFEST_DIR`: image + alt-text pairs from WARC/WAT archives.

See docs/FORMAT.md#crawl.
"""

from __future__ import annotations

import argparse

from curate.commands._common import add_executor_args

NAME = "crawl"
HELP = "extract image URL + alt text pairs from Common Crawl WARC/WAT files into a manifest"
ORDER = 15


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(NAME, help=HELP, description=HELP)
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="WARC/WAT file, folder, glob, fsspec URL (s3://, https://) or a warc.paths.gz / "
        "wat.paths.gz listing",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="MANIFEST_DIR",
        help="folder for part-<file>-<chunk>.parquet, per-file stats and summary.json",
    )
    parser.add_argument(
        "--min-alt-chars",
        type=int,
        default=1,
        help="shortest alt text kept, after whitespace collapsing (default 1)",
    )
    parser.add_argument(
        "--prefix", help="base URL of the files a listing names (default https://data.commoncrawl.org/)"
    )
    parser.add_argument("--limit", type=int, help="crawl only the first N archive files")
    parser.add_argument(
        "--rows-per-part", type=int, default=100_000, help="pairs per output part (default 100000)"
    )
    parser.add_argument(
        "--max-record-mb",
        type=float,
        default=16.0,
        help="records larger than this are skipped and counted as too_large (default 16)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a crawl already in MANIFEST_DIR")
    add_executor_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate import storage
    from curate.crawl import SUMMARY, crawl
    from curate.dataset import sidecar

    s = crawl(
        args.inputs,
        args.output,
        executor=args.executor,
        workers=args.workers,
        min_alt_chars=args.min_alt_chars,
        prefix=args.prefix,
        limit=args.limit,
        rows_per_part=args.rows_per_part,
        max_record_bytes=int(args.max_record_mb * (1 << 20)),
        retries=args.retries,
        overwrite=args.overwrite,
    )
    rate = f" ({s['pages_per_second']:,} pages/s)" if s["pages_per_second"] else ""
    print(
        f"read {s['files_done']:,} of {s['inputs']:,} file(s): "
        f"{s['records']:,} records, {s['pages']:,} pages, "
        f"{s['images_seen']:,} <img> in {s['seconds']:.1f} s{rate}"
    )
    print(
        f"wrote {s['pairs_written']:,} pairs in {s['parts']} part(s) to {args.output} "
        f"({s['duplicates_across_files']:,} repeats across files dropped)"
    )
    skipped = ", ".join(f"{k} {v:,}" for k, v in s["skipped"].items() if v)
    print(f"skipped: {skipped or 'nothing'}")
    errors = ", ".join(f"{k} {v:,}" for k, v in s["errors"].items() if v)
    if errors:
        print(f"damaged input (counted, the rest of each file was read): {errors}")
    for key, why in s["files_failed"].items():
        print(f"FAILED file {key}: {why.splitlines()[0]}")
    print(f"summary: {sidecar(args.output, SUMMARY)}; per-file stats: {storage.join(args.output, '_crawl')}/")
    return 1 if s["files_failed"] else 0

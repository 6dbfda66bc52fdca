"""`curate manifest INPUT... -o OUT_DIR`: normalise URL lists into manifest parts.

See docs/FORMAT.md#manifest.
"""

from __future__ import annotations

import argparse

NAME = "manifest"
HELP = "normalise URL lists (txt/csv/tsv/json/jsonl/parquet, .gz, folders, globs, URLs) into a manifest"
ORDER = 10


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(NAME, help=HELP, description=HELP)
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="file, folder, glob or fsspec URL")
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT_DIR", help="folder for part-NNNNN.parquet"
    )
    parser.add_argument(
        "--format",
        default="auto",
        choices=["auto", "txt", "csv", "tsv", "json", "jsonl", "parquet"],
        help="input format (default: by extension, .gz looked through)",
    )
    parser.add_argument("--url-col", help="column holding the image URL (default: detected, e.g. url, URL)")
    parser.add_argument(
        "--caption-col", help="column holding the caption (default: detected, e.g. caption, TEXT)"
    )
    parser.add_argument(
        "--keep-cols",
        default="",
        metavar="A,B",
        help="comma-separated source columns to carry along with their types (e.g. WIDTH,similarity)",
    )
    parser.add_argument(
        "--rows-per-part", type=int, default=10_000, help="rows per output part (default 10000)"
    )
    parser.add_argument("--takedown", metavar="FILE", help="takedown.parquet whose requests are honoured")
    parser.add_argument("--overwrite", action="store_true", help="replace a manifest already in OUT_DIR")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curate import storage
    from curate.dataset import sidecar
    from curate.errors import CurateError
    from curate.manifest import SUMMARY, build_manifest

    if args.takedown and not storage.exists(args.takedown):
        raise CurateError(f"--takedown {args.takedown}: no such file")
    keep = tuple(c.strip() for c in args.keep_cols.split(",") if c.strip())
    s = build_manifest(
        args.inputs,
        args.output,
        fmt=args.format,
        url_col=args.url_col,
        caption_col=args.caption_col,
        keep_cols=keep,
        rows_per_part=args.rows_per_part,
        takedown=args.takedown,
        overwrite=args.overwrite,
    )
    status = ", ".join(f"{k} {v:,}" for k, v in s["status"].items())
    print(
        f"read {s['rows_read']:,} rows from {len(s['inputs'])} file(s) in {s['seconds']:.1f} s "
        f"({s['rows_per_second'] or 0:,} rows/s)"
    )
    print(f"wrote {s['rows_written']:,} rows in {s['parts']} part(s) to {args.output}: {status}")
    print(
        f"left out: {s['duplicates']:,} duplicate (url, caption) rows, {s['takedown_skipped']:,} taken down"
    )
    counts = s["malformed"]["counts"]
    if counts:
        print("malformed input: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        for ex in s["malformed"]["examples"][:5]:
            where = (
                f"{ex['file']}:{ex['line']}"
                if ex["line"]
                else ex["file"] + (f" row {ex['row']}" if ex["row"] else "")
            )
            print(f"  {where}: {ex['kind']}: {ex['message']}")
    print(f"summary: {sidecar(args.output, SUMMARY)}")
    return 0

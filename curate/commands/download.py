"""`curate download MANIFEST -o DATASET`: images into Parquet shards (see curate.download)."""

from __future__ import annotations

import argparse

from curate.commands._common import add_executor_args

NAME = "download"
HELP = "download every manifest row's image into DATASET/shards (fast, polite, safe, resumable)"
ORDER = 20


# Flags of earlier versions -> the setting's one name now.
RENAMED_FLAGS = {
    "--timeout": "--total-timeout",
    "--ignore-robots-txt": "--no-respect-robots-txt",
    "--allow-network": "--allow-networks",
}
# Help sections: the DownloadConfig field each one starts at.
_SECTIONS = {"image_size": "images", "allow_networks": "network safety and politeness", "threads": "run"}


def register(sub: argparse._SubParsersAction) -> None:
    from curate.download.config import DownloadConfig
    from curate.settings import add_options

    p = sub.add_parser(
        NAME,
        help=HELP,
        description=HELP + ". Rerun the same command to resume. Each option "
        "is also a key of a recipe's [download] table (--max-bytes: max_bytes).",
    )
    p.add_argument("manifest", help="manifest folder, dataset folder, manifest parquet, or a raw URL list")
    p.add_argument(
        "-o", "--output", required=True, metavar="DATASET", help="dataset folder (local or s3://...)"
    )
    p.add_argument(
        "--engine",
        choices=["curate", "img2dataset"],
        default="curate",
        help="download engine (img2dataset needs: pip install 'curate[img2dataset]')",
    )
    add_options(p, DownloadConfig, _SECTIONS)
    run = p.add_argument_group("retry")
    run.add_argument(
        "--retry-failed",
        action="store_true",
        help="re-fetch only failed rows of finished shards and rewrite those shards",
    )
    run.add_argument(
        "--error-class",
        default=None,
        help="with --retry-failed: comma-separated classes to retry (default: transient ones)",
    )
    for old, new in RENAMED_FLAGS.items():
        p.add_argument(old, nargs="?", action=_Renamed, new=new, help=argparse.SUPPRESS)
    add_executor_args(p)
    p.set_defaults(func=run_command)


class _Renamed(argparse.Action):
    """An old flag: stop with the new name rather than guess (a value it took may now mean otherwise)."""

    def __init__(self, *args, new: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        key = self.new[2:].replace("-", "_").removeprefix("no_")
        parser.error(f"{option_string} is now {self.new} (one name per setting; the recipe key is {key})")


def run_command(args: argparse.Namespace) -> int:
    from curate.download.config import DownloadConfig
    from curate.errors import CurateError
    from curate.settings import from_args

    config = from_args(DownloadConfig, args)
    classes = [c.strip() for c in args.error_class.split(",") if c.strip()] if args.error_class else None
    if classes and not args.retry_failed:
        raise CurateError("--error-class only applies with --retry-failed")
    if args.engine == "img2dataset":
        from curate.download.img2dataset_engine import download_with_img2dataset

        summary = download_with_img2dataset(args.manifest, args.output, config, workers=args.workers)
    else:
        from curate.download import download

        summary = download(
            args.manifest,
            args.output,
            config,
            executor=args.executor,
            workers=args.workers,
            retry_failed=args.retry_failed,
            error_classes=classes,
            retries=args.retries,
        )
    data = summary.stats.get("dataset", {})
    status = data.get("status", {})
    rows = data.get("rows", 0)
    print(
        f"{args.output}/shards: {rows:,} rows, {status.get('success', 0):,} success, "
        f"{status.get('failed', 0):,} failed, {status.get('skipped', 0):,} skipped "
        f"({summary.done} shards done now, {summary.skipped} already done, {len(summary.failed)} failed) "
        f"in {summary.seconds:.1f}s"
    )
    top = sorted(data.get("error_class", {}).items(), key=lambda kv: -kv[1])[:6]
    if top:
        print("  errors: " + ", ".join(f"{k} {v:,}" for k, v in top))
    if summary.stats.get("diagnosis"):
        print(f"  note: {summary.stats['diagnosis']}")
    if summary.failed:
        key, error = next(iter(summary.failed.items()))
        print(
            f"  {len(summary.failed)} shard(s) failed (first, {key}: {error.splitlines()[0]}); "
            "finished shards "
            "are kept: fix the cause (disk space, permissions) and rerun the same command to finish"
        )
        return 1
    return 0

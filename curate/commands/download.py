"""`curate download MANIFEST -o DATASET`: images into Parquet shards (see curate.download)."""

from __future__ import annotations

import argparse

from curate.commands._common import add_executor_args

NAME = "download"
HELP = "download every manifest row's image into DATASET/shards (fast, polite, safe, resumable)"
ORDER = 20


def register(sub: argparse._SubParsersAction) -> None:
    from curate.download.config import ENCODE_FORMATS, RESIZE_MODES, DownloadConfig

    d = DownloadConfig()
    p = sub.add_parser(NAME, help=HELP, description=HELP + ". Rerun the same command to resume.")
    p.add_argument("manifest", help="manifest folder, dataset folder, manifest parquet, or a raw URL list")
    p.add_argument("-o", "--output", required=True, metavar="DATASET", help="dataset folder (local or s3://...)")
    p.add_argument("--engine", choices=["curate", "img2dataset"], default="curate",
                   help="download engine (img2dataset needs: pip install 'curate[img2dataset]')")
    img = p.add_argument_group("images")
    img.add_argument("--image-size", type=int, default=d.image_size)
    img.add_argument("--resize-mode", choices=RESIZE_MODES, default=d.resize_mode,
                     help="img2dataset's meanings: border pads to a square, keep_ratio sets the shorter side, "
                          "center_crop crops a square, no keeps the size")
    img.add_argument("--resize-only-if-bigger", action="store_true")
    img.add_argument("--encode-format", choices=ENCODE_FORMATS, default=d.encode_format)
    img.add_argument("--encode-quality", type=int, default=d.encode_quality,
                     help="JPEG/WebP quality; for PNG a compression level 0-9")
    img.add_argument("--no-reencode", action="store_true",
                     help="store the original bytes unchanged (no resize; metadata is NOT stripped)")
    img.add_argument("--keep-exif", action="store_true", help="keep EXIF (may include GPS) and ICC metadata")
    img.add_argument("--min-image-size", type=int, default=d.min_image_size)
    img.add_argument("--max-aspect-ratio", type=float, default=d.max_aspect_ratio)
    img.add_argument("--max-pixels", type=int, default=d.max_pixels, help="decompression-bomb guard")
    img.add_argument("--decode-pixel-budget", type=int, default=d.decode_pixel_budget,
                     help="decoded pixels in flight per worker process (bounds decode memory, 12 B each; "
                          "0 = no limit)")
    net = p.add_argument_group("network safety and politeness")
    net.add_argument("--allow-network", action="append", default=[], metavar="CIDR",
                     help="a network that is not public but may be reached, e.g. an internal mirror 10.1.0.0/16 "
                          "or a local server 127.0.0.1/32 (repeatable); link-local and cloud-metadata addresses "
                          "only when named one by one (a /32 or /128)")
    net.add_argument("--allow-private-network", action="store_true",
                     help="deprecated shorthand for --allow-network of loopback and the private ranges "
                          "(never link-local or cloud-metadata addresses); name the networks instead")
    net.add_argument("--ca-file", default=None, help="CA bundle to trust for HTTPS (e.g. an internal mirror)")
    net.add_argument("--max-bytes", type=int, default=d.max_bytes, help="largest body read; larger is dropped")
    net.add_argument("--max-redirects", type=int, default=d.max_redirects)
    net.add_argument("--timeout", type=float, default=d.total_timeout,
                     help="total seconds of one row's exchange: connect, each redirect hop, headers, body")
    net.add_argument("--connect-timeout", type=float, default=d.connect_timeout)
    net.add_argument("--read-timeout", type=float, default=d.read_timeout)
    net.add_argument("--user-agent-token", default=d.user_agent_token,
                     help="product token sent in User-Agent and matched in robots.txt")
    net.add_argument("--contact-url", default=d.contact_url, help="URL in the User-Agent where site owners reach you")
    net.add_argument("--max-connections-per-host", type=int, default=d.max_connections_per_host,
                     help="per worker process")
    net.add_argument("--ignore-robots-txt", action="store_true", help="do not fetch or honour robots.txt")
    net.add_argument("--x-robots-tag-block", default=",".join(d.x_robots_tag_block),
                     help="comma-separated X-Robots-Tag directives that refuse an image (default: %(default)s)")
    net.add_argument("--request-retries", type=int, default=d.retries, help="retries of a 429/503 answer")
    net.add_argument("--max-backoff", type=float, default=d.max_backoff,
                     help="longest wait for Retry-After; longer requests are recorded as failed")
    net.add_argument("--host-failure-limit", type=int, default=d.host_failure_limit,
                     help="consecutive connect/timeout failures before a host is cut off (0: never)")
    net.add_argument("--opt-out", action="append", default=[], metavar="FILE",
                     help="file of domains and URL prefixes to skip (repeatable); DATASET/takedown.parquet "
                          "is always honoured")
    run = p.add_argument_group("run")
    run.add_argument("--threads", type=int, default=d.threads, help="fetch threads per worker process")
    run.add_argument("--retry-failed", action="store_true",
                     help="re-fetch only failed rows of finished shards and rewrite those shards")
    run.add_argument("--error-class", default=None,
                     help="with --retry-failed: comma-separated classes to retry (default: transient ones)")
    add_executor_args(p)
    p.set_defaults(func=run_command)


def _config(args: argparse.Namespace):
    from curate.download.config import DownloadConfig

    return DownloadConfig(
        image_size=args.image_size, resize_mode=args.resize_mode, resize_only_if_bigger=args.resize_only_if_bigger,
        encode_format=args.encode_format, encode_quality=args.encode_quality, reencode=not args.no_reencode,
        keep_exif=args.keep_exif, min_image_size=args.min_image_size, max_aspect_ratio=args.max_aspect_ratio,
        max_pixels=args.max_pixels, decode_pixel_budget=args.decode_pixel_budget,
        allow_private_network=args.allow_private_network,
        allow_networks=tuple(args.allow_network), ca_file=args.ca_file,
        max_redirects=args.max_redirects, max_bytes=args.max_bytes, connect_timeout=args.connect_timeout,
        read_timeout=args.read_timeout, total_timeout=args.timeout, user_agent_token=args.user_agent_token,
        contact_url=args.contact_url, max_connections_per_host=args.max_connections_per_host,
        respect_robots_txt=not args.ignore_robots_txt,
        x_robots_tag_block=tuple(t.strip() for t in args.x_robots_tag_block.split(",") if t.strip()),
        retries=args.request_retries, max_backoff=args.max_backoff, host_failure_limit=args.host_failure_limit,
        threads=args.threads,
    )


def run_command(args: argparse.Namespace) -> int:
    from curate.errors import CurateError

    config = _config(args)
    classes = [c.strip() for c in args.error_class.split(",") if c.strip()] if args.error_class else None
    if classes and not args.retry_failed:
        raise CurateError("--error-class only applies with --retry-failed")
    if args.engine == "img2dataset":
        from curate.download.img2dataset_engine import download_with_img2dataset

        summary = download_with_img2dataset(args.manifest, args.output, config, workers=args.workers)
    else:
        from curate.download import download

        summary = download(args.manifest, args.output, config, executor=args.executor, workers=args.workers,
                           retry_failed=args.retry_failed, error_classes=classes, retries=args.retries,
                           optout_files=tuple(args.opt_out))
    data = summary.stats.get("dataset", {})
    status = data.get("status", {})
    rows = data.get("rows", 0)
    print(f"{args.output}/shards: {rows:,} rows, {status.get('success', 0):,} success, "
          f"{status.get('failed', 0):,} failed, {status.get('skipped', 0):,} skipped "
          f"({summary.done} shards done now, {summary.skipped} already done, {len(summary.failed)} failed) "
          f"in {summary.seconds:.1f}s")
    top = sorted(data.get("error_class", {}).items(), key=lambda kv: -kv[1])[:6]
    if top:
        print("  errors: " + ", ".join(f"{k} {v:,}" for k, v in top))
    if summary.stats.get("diagnosis"):
        print(f"  note: {summary.stats['diagnosis']}")
    if summary.failed:
        key, error = next(iter(summary.failed.items()))
        print(f"  {len(summary.failed)} shard(s) failed (first, {key}: {error.splitlines()[0]}); finished shards "
              "are kept: fix the cause (disk space, permissions) and rerun the same command to finish")
        return 1
    return 0

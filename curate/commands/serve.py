"""`curate serve`: run the synthetic web in the foreground, to try the other commands against it."""

from __future__ import annotations

import argparse
import threading

from curate.errors import CurateError

NAME = "serve"
HELP = "serve a synthetic web (photos, pages, near-duplicates, faults) on 127.0.0.1 until Ctrl-C"
ORDER = 8


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(NAME, help=HELP, description=HELP)
    parser.add_argument("--images", type=int, default=200, help="number of images (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="content seed (default 0)")
    parser.add_argument(
        "--near-duplicates",
        type=float,
        default=0.2,
        help="fraction of images that are transformed copies of others (default 0.2)",
    )
    parser.add_argument("--no-faults", action="store_true", help="serve a valid image at every fault URL")
    parser.add_argument(
        "--prerender",
        action="store_true",
        help="render every image before serving (in all CPUs) instead of on first request",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    parser.add_argument(
        "--write-url-list",
        metavar="PATH",
        help="write the URL list (.parquet, .csv, .tsv, .jsonl, .json, .txt; text may end .gz)",
    )
    parser.add_argument("--write-warc", metavar="PATH", help="write the pages as a gzipped WARC file")
    parser.add_argument(
        "--write-wat",
        metavar="PATH",
        help="write a WAT (Common Crawl's JSON metadata) of the pages; its offsets point into "
        "the --write-warc file when both are given",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Serve until Ctrl-C (or until `stop` is set, for callers that embed it)."""
    from curate.synthweb import SyntheticWeb

    try:
        web = SyntheticWeb(
            n_images=args.images,
            seed=args.seed,
            near_duplicates=args.near_duplicates,
            faults=not args.no_faults,
            host=args.host,
            port=args.port,
        )
        if args.prerender:
            web.prerender()
        web.start()
    except ValueError as exc:
        raise CurateError(str(exc)) from exc
    except OSError as exc:
        raise CurateError(f"cannot listen on {args.host}:{args.port} ({exc}); choose another --port") from exc
    try:  # Ctrl-C at any moment after this point is a normal stop
        print(
            f"synthetic web: {len(web.images)} images on {len(web.pages)} pages at {web.base_url}/",
            flush=True,
        )
        print(f"  faults {'off' if args.no_faults else 'on'}: {', '.join(web.fault_urls)}", flush=True)
        try:
            if args.write_url_list:
                print(f"  URL list: {web.write_url_list(args.write_url_list)}", flush=True)
            if args.write_wat:  # writes the WARC too, so the WAT's offsets point into it
                print(f"  WAT: {web.write_wat(args.write_wat, warc_path=args.write_warc)}", flush=True)
            elif args.write_warc:
                web.write_warc(args.write_warc)
            if args.write_warc:
                print(f"  WARC: {args.write_warc}", flush=True)
        except (ValueError, OSError) as exc:
            raise CurateError(str(exc)) from exc
        print("press Ctrl-C to stop", flush=True)
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        served = len(web.request_log)
        web.stop()
    print(f"stopped after {served} requests", flush=True)
    return 0

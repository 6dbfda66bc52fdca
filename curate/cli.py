"""The `curate` command: thin subcommands over documented functions.

Each module in curate.commands defines NAME, HELP, ORDER and register(subparsers); this file finds
them, so adding a command never touches a shared list.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from curate import __version__, commands
from curate.errors import CurateError
from curate.extras import MissingExtraError


def _command_modules() -> list:
    mods = [
        importlib.import_module(f"curate.commands.{m.name}") for m in pkgutil.iter_modules(commands.__path__)
    ]
    mods = [m for m in mods if hasattr(m, "register")]
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 100), m.NAME))


def build_parser() -> argparse.ArgumentParser:
    mods = _command_modules()
    width = max(len(m.NAME) for m in mods)
    overview = "\n".join(f"  {m.NAME:<{width}}  {m.HELP}" for m in mods)
    parser = argparse.ArgumentParser(
        prog="curate",
        description="Build web-scale image-text datasets and train CLIP on them.",
        epilog=f"commands:\n{overview}\n\nRun 'curate COMMAND --help' for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"curate {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", help="one of the commands below")
    for mod in mods:
        mod.register(sub)
    sub._choices_actions.clear()  # the epilog lists the commands, one line each, unwrapped
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (CurateError, MissingExtraError) as exc:
        print(f"curate {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # Full disk, unwritable or vanished output: finished shards were written atomically and are intact.
        print(
            f"curate {args.command}: error: {exc}. Finished outputs are intact: free space or fix the "
            "path's permissions, then rerun the same command to resume.",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(f"curate {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

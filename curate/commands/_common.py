"""Options that several commands share."""

from __future__ import annotations

import argparse


def add_executor_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("execution")
    group.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="local process pool (default) or a Ray cluster (RAY_ADDRESS, else a local Ray)",
    )
    group.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count)")
    group.add_argument(
        "--retries", type=int, default=2, help="retries of a failing shard before it is reported"
    )

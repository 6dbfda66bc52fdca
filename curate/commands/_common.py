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


def add_partition_args(parser: argparse.ArgumentParser, task_holds: str) -> None:
    """The global stages' options: one process, or partitioned tasks each holding `task_holds`."""
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="threads for the hash search (default 2); partitioned: the CPUs of a local Ray "
        "(when RAY_ADDRESS is not set) or the local pool's processes",
    )
    parser.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="local: one process (default); ray: partitioned tasks on a Ray cluster "
        f"(RAY_ADDRESS, else a local Ray), each holding {task_holds} (docs/SCALE.md)",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=None,
        metavar="N",
        help="partitioned run in N partitions (uid ranges; default: from --memory-budget)",
    )
    parser.add_argument(
        "--memory-budget",
        type=byte_size,
        default=None,
        metavar="BYTES",
        help="partitioned run with partitions sized for this much memory per task "
        "(e.g. 2G, 512M; default 1G)",
    )


def byte_size(text: str) -> int:
    """'2G', '512M', '1500000' -> bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().removesuffix("B")
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size: bytes, or a number with K, M, G, T"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the memory budget must be positive")
    return int(value)

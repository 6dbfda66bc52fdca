"""Job functions for tests/test_executor.py, importable by worker processes (local pool and Ray).

Every call appends the job key to OUT/calls.log (O_APPEND writes of one short line are atomic), so
tests can count how often each job really ran. Run as a module to execute a batch of slow jobs:

    python -m executor_jobs OUT_DIR N_JOBS SLEEP_S     (with tests/ on PYTHONPATH)
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pyarrow as pa

from curate import storage
from curate.executor import Job, execute


def shard_table(key: str, rows: int) -> pa.Table:
    """The output a job must produce: deterministic in its key."""
    base = int(key.rsplit("-", 1)[1]) * 1000
    return pa.table({"key": [key] * rows, "value": list(range(base, base + rows))})


def write_shard(job: Job) -> dict:
    p = job.payload
    with open(Path(p["out"]) / "calls.log", "a") as log:
        log.write(job.key + "\n")
    calls = (Path(p["out"]) / "calls.log").read_text().split().count(job.key)
    if (p.get("kill_first") and calls == 1) or p.get("kill_always"):
        os.kill(os.getpid(), signal.SIGKILL)
    if calls <= p.get("fail_times", 0):
        raise RuntimeError(f"planned failure {calls} of {job.key}")
    time.sleep(p.get("sleep", 0))
    storage.write_parquet_atomic(
        shard_table(job.key, p.get("rows", 5)), storage.join(p["out"], f"{job.key}.parquet")
    )
    return {"rows": p.get("rows", 5), "nested": {"shards": 1}}


def jobs(out: str | Path, n: int, **payload) -> list[Job]:
    return [
        Job(
            key=f"shard-{i:03d}",
            stats_path=storage.join(str(out), f"shard-{i:03d}.stats.json"),
            payload={"out": str(out), **payload},
        )
        for i in range(n)
    ]


def main(argv: list[str]) -> None:
    out, n, sleep = argv[0], int(argv[1]), float(argv[2])
    Path(out).mkdir(parents=True, exist_ok=True)
    summary = execute(
        write_shard,
        jobs(out, n, sleep=sleep),
        workers=2,
        retries=0,
        summary_path=storage.join(out, "summary.json"),
    )
    print(summary.to_dict())


if __name__ == "__main__":
    from executor_jobs import main as imported_main  # pickle the job function by its importable name

    imported_main(sys.argv[1:])

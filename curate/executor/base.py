"""Jobs, completion markers, retries and the merged run summary (datatrove executor/base.py style)."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from curate import storage
from curate.errors import CurateError

log = logging.getLogger(__name__)

JobFn = Callable[["Job"], dict]


@dataclass(frozen=True)
class Job:
    """One unit of work: one input shard mapped to one output.

    `stats_path` is written by the executor after `fn(job)` returns; its presence means the job is
    done, so a rerun skips it. `payload` carries the job's arguments (must pickle).
    """

    key: str
    stats_path: str
    payload: Any = None
    resources: dict[str, float] | None = None  # Ray task options, e.g. {"num_gpus": 0.25}; local ignores them


@dataclass
class RunSummary:
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "jobs_total": self.total,
            "jobs_done": self.done,
            "jobs_skipped_already_done": self.skipped,
            "jobs_failed": self.failed,
            "seconds": round(self.seconds, 3),
            "stats": self.stats,
        }


def merge_stats(total: dict, part: dict) -> dict:
    """Sum numbers key by key, recursing into dicts; other values keep the last seen."""
    for key, value in part.items():
        if isinstance(value, bool):
            total[key] = value
        elif isinstance(value, (int, float)):
            total[key] = total.get(key, 0) + value
        elif isinstance(value, dict):
            total[key] = merge_stats(dict(total.get(key) or {}), value)
        else:
            total[key] = value
    return total


def run_job(fn: JobFn, job: Job) -> tuple[str, dict | str]:
    """Run in the worker: call fn, then write the completion marker. Never raises."""
    start = time.perf_counter()
    try:
        stats = dict(fn(job) or {})
        stats.setdefault("seconds", round(time.perf_counter() - start, 4))
        storage.write_json_atomic({"key": job.key, **stats}, job.stats_path)
        return "ok", stats
    except Exception as exc:  # noqa: BLE001 - the driver retries, then reports the shard
        return "error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"


def pending(jobs: list[Job]) -> tuple[list[Job], list[Job]]:
    """Split jobs into (to run, already done) by their completion markers."""
    todo, done = [], []
    for job in jobs:
        (done if storage.exists(job.stats_path) else todo).append(job)
    return todo, done


def execute(
    fn: JobFn,
    jobs: list[Job],
    *,
    executor: str = "local",
    workers: int | None = None,
    retries: int = 2,
    desc: str = "shards",
    summary_path: str | None = None,
    strict: bool = False,
) -> RunSummary:
    """Run `fn` over the jobs that are not done yet; merge their stats; write the run summary.

    A job that keeps failing after `retries` retries is reported in the summary and the run goes on;
    with `strict` a failed job raises CurateError at the end.
    """
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError("job keys must be unique")
    start = time.perf_counter()
    todo, done = pending(jobs)
    summary = RunSummary(total=len(jobs), skipped=len(done))
    if done:
        log.info("%d of %d %s already done, skipping them", len(done), len(jobs), desc)
    for job in done:
        try:
            merge_stats(summary.stats, _marker_stats(job))
        except (OSError, ValueError):
            pass
    if todo:
        if executor == "local":
            from curate.executor.local import run_local

            results = run_local(fn, todo, workers=workers, retries=retries, desc=desc)
        elif executor == "ray":
            from curate.executor.ray import run_ray

            results = run_ray(fn, todo, workers=workers, retries=retries, desc=desc)
        else:
            raise CurateError(f"unknown executor {executor!r}: use 'local' or 'ray'")
        for key, (state, value) in results.items():
            if state == "ok":
                summary.done += 1
                merge_stats(summary.stats, value)
            else:
                summary.failed[key] = str(value)
                log.error("%s %s failed after %d retries: %s", desc, key, retries, str(value).splitlines()[0])
    summary.seconds = time.perf_counter() - start
    if summary_path:
        storage.write_json_atomic(summary.to_dict(), summary_path)
    if strict and summary.failed:
        first = next(iter(summary.failed.items()))
        raise CurateError(
            f"{len(summary.failed)} {desc} failed; first: {first[0]}: {first[1].splitlines()[0]}"
        )
    return summary


def _marker_stats(job: Job) -> dict:
    stats = storage.read_json(job.stats_path)
    stats.pop("key", None)
    return stats

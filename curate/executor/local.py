"""Local executor: a process pool that survives crashed workers and retries failed shards; its workers
die with the driver (curate.executor.lifeline) and hold the dataset's lock with it (curate.runlock)."""

from __future__ import annotations

import copy
import logging
import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import fsspec.config
from tqdm import tqdm

from curate import runlock
from curate.executor.base import Job, JobFn, run_job
from curate.executor.lifeline import bind_to_driver

log = logging.getLogger(__name__)


def _init_worker(environ: dict[str, str], fsspec_conf: dict, driver_pid: int) -> None:
    """Give each worker the driver's environment and storage settings as they are now, tie its life to
    the driver's, and record it in the dataset's lock.

    A forkserver is started once per process and keeps the environment of that moment; credentials or
    endpoints set later (AWS_*, an fsspec endpoint) would otherwise never reach the workers.
    """
    bind_to_driver(driver_pid)
    os.environ.update(environ)
    fsspec.config.conf.clear()
    fsspec.config.conf.update(fsspec_conf)
    runlock.join(environ.get(runlock.ENV_VAR))  # the driver's, not a value a long-lived fork server kept


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def run_local(
    fn: JobFn, jobs: list[Job], *, workers: int | None, retries: int, desc: str, unit: str = "shard"
) -> dict[str, tuple[str, object]]:
    """Run jobs; return {key: ("ok", stats) | ("error", message)}.

    workers == 1 runs in this process (easy to debug and profile). Otherwise a process pool; when a
    worker dies (OOM killer, SIGKILL) the pool is replaced, and the jobs that were in flight are rerun
    one at a time, so only a job that kills its worker itself uses up its attempts.
    """
    workers = workers or default_workers()
    results: dict[str, tuple[str, object]] = {}
    attempts = {job.key: 0 for job in jobs}
    bar = tqdm(total=len(jobs), desc=desc, unit=unit, dynamic_ncols=True, leave=False)
    try:
        if workers <= 1:
            for job in jobs:
                while True:
                    attempts[job.key] += 1
                    state, value = run_job(fn, job)
                    if state == "ok" or attempts[job.key] > retries:
                        results[job.key] = (state, value)
                        break
                    log.warning("%s %s failed (attempt %d), retrying", desc, job.key, attempts[job.key])
                bar.update(1)
            return results
        pool = _Pool(fn, workers, retries, attempts, results, bar, desc)
        queue = list(jobs)
        while queue:
            lost, queue = pool.run(queue, isolate=False)
            # A dead worker takes every job in flight with it, and the pool cannot say whose fault it
            # was: run each lost job alone, so that only the one that kills its worker is charged.
            for job in lost:
                while job.key not in results:
                    pool.run([job], isolate=True)
        return results
    finally:
        bar.close()


class _Pool:
    """Process pools for one run; `run` uses a fresh pool, since a crashed worker breaks a pool for good."""

    def __init__(
        self,
        fn: JobFn,
        workers: int,
        retries: int,
        attempts: dict[str, int],
        results: dict[str, tuple[str, object]],
        bar: tqdm,
        desc: str,
    ) -> None:
        self.fn, self.workers, self.retries, self.desc = fn, workers, retries, desc
        self.attempts, self.results, self.bar = attempts, results, bar
        self.ctx = mp.get_context("spawn" if os.environ.get("CURATE_SPAWN") else "forkserver")
        if self.ctx.get_start_method() == "forkserver":
            # The job's module (and Pillow, pyarrow... it imports) loads once in the fork server, not once
            # per worker: workers start in milliseconds instead of a third of a second of imports each.
            self.ctx.set_forkserver_preload([fn.__module__])

    def run(self, queue: list[Job], *, isolate: bool) -> tuple[list[Job], list[Job]]:
        """Run jobs until all are done or the pool breaks; return (jobs lost with a worker, jobs not started).

        With `isolate` one job runs at a time in a one-worker pool, so a crash is that job's attempt.
        """
        waiting = list(queue)
        by_future: dict[Future, Job] = {}
        lost: list[Job] = []
        limit = 1 if isolate else self.workers * 2
        with ProcessPoolExecutor(
            max_workers=1 if isolate else self.workers,
            mp_context=self.ctx,
            initializer=_init_worker,
            initargs=(dict(os.environ), copy.deepcopy(fsspec.config.conf), os.getpid()),
        ) as pool:

            def fill() -> None:
                while waiting and len(by_future) < limit:
                    try:
                        future = pool.submit(run_job, self.fn, waiting[0])
                    except BrokenProcessPool:  # a worker died since the last wait(): its future tells whose
                        return
                    job = waiting.pop(0)
                    self.attempts[job.key] += 1
                    by_future[future] = job

            fill()
            while by_future:
                finished, _ = wait(by_future, return_when=FIRST_COMPLETED)
                broken = False
                for future in finished:
                    job = by_future.pop(future)
                    try:
                        state, value = future.result()
                    except BrokenProcessPool:
                        broken = True
                        if not isolate:
                            self.attempts[job.key] -= 1  # not known to be its fault: it is retried alone
                            lost.append(job)
                            continue
                        state, value = "error", "worker process died (killed or out of memory)"
                    except Exception as exc:  # noqa: BLE001 - e.g. a payload that does not pickle
                        state, value = "error", f"{type(exc).__name__}: {exc}"
                    if state == "ok" or self.attempts[job.key] > self.retries:
                        self.results[job.key] = (state, value)
                        self.bar.update(1)
                    elif broken:
                        log.warning(
                            "%s %s killed its worker (attempt %d), retrying",
                            self.desc,
                            job.key,
                            self.attempts[job.key],
                        )
                        lost.append(job)
                    else:
                        log.warning(
                            "%s %s failed (attempt %d), retrying", self.desc, job.key, self.attempts[job.key]
                        )
                        waiting.insert(0, job)
                if broken:
                    for job in by_future.values():  # the rest of the jobs in flight died with the pool
                        self.attempts[job.key] -= 1
                        lost.append(job)
                    by_future.clear()
                else:
                    fill()
        return lost, waiting

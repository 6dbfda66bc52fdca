"""Local executor: a process pool that survives crashed workers and retries failed shards."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from tqdm import tqdm

from curate.executor.base import Job, JobFn, run_job

log = logging.getLogger(__name__)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def run_local(
    fn: JobFn, jobs: list[Job], *, workers: int | None, retries: int, desc: str
) -> dict[str, tuple[str, object]]:
    """Run jobs; return {key: ("ok", stats) | ("error", message)}.

    workers == 1 runs in this process (easy to debug and profile). Otherwise a pool whose broken
    state (a worker killed by the OOM killer or SIGKILL) is repaired by starting a new pool and
    resubmitting the jobs in flight, each such loss counting as one attempt.
    """
    workers = workers or default_workers()
    results: dict[str, tuple[str, object]] = {}
    attempts = {job.key: 0 for job in jobs}
    bar = tqdm(total=len(jobs), desc=desc, unit="shard", dynamic_ncols=True, leave=False)
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
        queue = list(jobs)
        while queue:
            queue = _run_pool(fn, queue, workers, retries, attempts, results, bar, desc)
        return results
    finally:
        bar.close()


def _run_pool(fn, queue, workers, retries, attempts, results, bar, desc) -> list[Job]:
    """Run the queue on one pool; return the jobs to resubmit if the pool broke."""
    ctx = mp.get_context("spawn" if os.environ.get("CURATE_SPAWN") else "forkserver")
    by_future: dict[Future, Job] = {}
    resubmit: list[Job] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        waiting = list(queue)

        def submit(job: Job) -> None:
            attempts[job.key] += 1
            by_future[pool.submit(run_job, fn, job)] = job

        for _ in range(min(len(waiting), workers * 2)):
            submit(waiting.pop(0))
        while by_future:
            finished, _ = wait(by_future, return_when=FIRST_COMPLETED)
            for future in finished:
                job = by_future.pop(future)
                try:
                    state, value = future.result()
                except BrokenProcessPool:
                    state, value = "error", "worker process died (killed or out of memory)"
                    broken = True
                else:
                    broken = False
                if state == "ok" or attempts[job.key] > retries:
                    results[job.key] = (state, value)
                    bar.update(1)
                elif broken:
                    log.warning("%s %s lost with its worker (attempt %d), will retry", desc, job.key, attempts[job.key])
                    resubmit.append(job)
                else:
                    log.warning("%s %s failed (attempt %d), retrying", desc, job.key, attempts[job.key])
                    waiting.insert(0, job)
                if not broken:
                    while waiting and len(by_future) < workers * 2:
                        try:
                            submit(waiting.pop(0))
                        except BrokenProcessPool:
                            break
            if resubmit:
                # The pool is unusable: collect everything still in flight and start over.
                for future, job in list(by_future.items()):
                    if job.key not in results and job not in resubmit:
                        resubmit.append(job)
                by_future.clear()
                return resubmit + waiting
    return resubmit + waiting

"""Ray executor: the same `run_job` as the local pool, as Ray tasks.

Connects to the cluster named by RAY_ADDRESS when set, else starts a local Ray with `workers` CPUs
(and stops it afterwards). Worker crashes are retried by Ray; job errors are retried here.
"""

from __future__ import annotations

import logging
import os

from tqdm import tqdm

from curate.executor.base import Job, JobFn, run_job
from curate.extras import require

log = logging.getLogger(__name__)


def run_ray(
    fn: JobFn, jobs: list[Job], *, workers: int | None, retries: int, desc: str
) -> dict[str, tuple[str, object]]:
    ray = require("ray", "ray")
    started_here = not ray.is_initialized()
    if started_here:
        address = os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(max_retries=retries)(run_job)
        gpus = ray.cluster_resources().get("GPU", 0)
        if not gpus and any((job.resources or {}).get("num_gpus") for job in jobs):
            log.info("the Ray cluster has no GPU: GPU-capable jobs run on CPUs")

        def submit(job: Job):
            options = task_options(job.resources, gpus)
            return (remote.options(**options) if options else remote).remote(fn, job)

        attempts = {job.key: 1 for job in jobs}
        in_flight = {submit(job): job for job in jobs}
        results: dict[str, tuple[str, object]] = {}
        with tqdm(total=len(jobs), desc=desc, unit="shard", dynamic_ncols=True, leave=False) as bar:
            while in_flight:
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in ready:
                    job = in_flight.pop(ref)
                    try:
                        state, value = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - task lost beyond Ray's own retries
                        state, value = "error", f"{type(exc).__name__}: {exc}"
                    if state != "ok" and attempts[job.key] <= retries:
                        attempts[job.key] += 1
                        log.warning(
                            "%s %s failed (attempt %d), retrying", desc, job.key, attempts[job.key] - 1
                        )
                        in_flight[submit(job)] = job
                        continue
                    results[job.key] = (state, value)
                    bar.update(1)
        return results
    finally:
        if started_here:
            ray.shutdown()


def task_options(resources: dict[str, float] | None, cluster_gpus: float) -> dict[str, float]:
    """A job's resource request as Ray task options. A GPU request is dropped where the cluster has none: the
    job then runs on CPUs (it picks its device from what it sees) instead of waiting forever."""
    options = dict(resources or {})
    if not cluster_gpus:
        options.pop("num_gpus", None)
    return options

"""Run one per-shard function over many shards, locally (process pool) or on Ray.

The executor is a choice, not a different code path: both call the same `run_job` in the worker,
which runs the job function and then writes the job's stats JSON, the completion marker.
"""

from curate.executor.base import Job, RunSummary, execute, merge_stats

__all__ = ["Job", "RunSummary", "execute", "merge_stats"]

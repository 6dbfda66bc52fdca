"""`curate demo --compare`: DataComp and DFN in miniature on a noisy synthetic web.

The same model is trained for the same steps, with several seeds, on four pools cut from one dataset:

  raw        every downloaded sample
  rules      the demo recipe (language, caption, size, NSFW, exact and near-duplicate rules)
  rules+dfn  rules, then the best `top_fraction` of the pool by CLIP score, where the scoring CLIP (the
             data filtering network) was trained on a small trusted subset only: `trusted` samples of the
             rule-kept pool whose alt text describes its image (the web's ground truth stands in for the
             people who would check a few hundred pairs by hand)
  rules+sem  rules, then semantic dedup (`curate dedup --semantic`) over the filter model's embeddings

Each pool is exported and trained like the demo's own run; zero-shot top-1 on the synthetic benchmark
is reported as mean and standard deviation over the seeds.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from curate import storage
from curate.errors import CurateError
from curate.executor.base import Job
from curate.schema import DECISIONS_SCHEMA, make_uid
from curate.synthweb.noise import DESCRIBES

log = logging.getLogger(__name__)

TRUSTED_NAME = "dfn-trusted"


def compare_pools(
    recipe: dict,
    dataset: str,
    benchmark: Path,
    images: list,
    *,
    seeds: tuple[int, ...],
    trusted: int,
    top_fraction: float,
    eps: float,
) -> dict:
    """Train and evaluate every pool; returns per-pool samples, per-seed accuracies, mean and sd."""
    from curate.annotate.stage import annotate
    from curate.dedup import dedup

    start = time.perf_counter()
    rules = recipe["filter"]
    describes = frozenset(make_uid(img.url, img.caption) for img in images if img.caption_kind == DESCRIBES)
    filter_run, trusted_samples = train_filter_model(recipe, dataset, describes, trusted)
    annotate(dataset, signals=["clip"], clip_checkpoint=filter_run, device="cpu", workers=1)
    semantic = dedup(dataset, semantic_eps=eps)["semantic"]  # every pool sees the same clusters
    pools = {
        "raw": {},
        "rules": rules,
        "rules+dfn": {**rules, "clip_score_top_fraction": top_fraction},
        "rules+sem": {**rules, "drop_semantic_duplicates": True},
    }
    cut = {name: _cut_pool(dataset, name, table) for name, table in pools.items()}
    same_as = first_equal_pool({name: kept for name, (kept, _) in cut.items()})
    trained = {name: cut[name][1] for name in cut if same_as[name] == name}
    scores = _train_pools(recipe, dataset, benchmark, trained, seeds)
    results = {
        name: _pool_result(len(kept), len(kept & describes), scores[same_as[name]])
        for name, (kept, _) in cut.items()
    }
    for name, first in same_as.items():
        if first != name:
            results[name]["same_pool_as"] = first
    return {
        "pools": results,
        "seeds": list(seeds),
        "steps": recipe["train"]["steps"],
        "filter_model": {"run": filter_run, "trusted_samples": trusted_samples, "top_fraction": top_fraction},
        "semantic_dedup": semantic,
        "seconds": round(time.perf_counter() - start, 1),
    }


def train_filter_model(
    recipe: dict,
    dataset: str,
    describes: frozenset,
    trusted: int,
    *,
    name: str = TRUSTED_NAME,
    out: str | None = None,
) -> tuple[str, int]:
    """Train the data filtering network on `trusted` rule-kept samples whose alt text describes the image
    (fewer where the pool holds fewer), recorded as the decisions `name`; returns its run folder (`out`,
    default run-dfn-filter beside the demo's run) and how many samples it saw."""
    from curate.export.stage import export
    from curate.filter import decisions_path
    from curate.run import train_from_table

    kept = storage.read_parquet(decisions_path(dataset, recipe["name"]), columns=["uid", "keep"])
    pool = sorted(
        u
        for u, k in zip(kept.column("uid").to_pylist(), kept.column("keep").to_pylist(), strict=True)
        if k and u in describes
    )
    chosen = set(pool[:: max(1, len(pool) // trusted)][:trusted])  # an even spread over the uid order
    uids = kept.column("uid").to_pylist()
    table = pa.table(
        {
            "uid": uids,
            "keep": [u in chosen for u in uids],
            "reasons": [[] if u in chosen else ["not_trusted"] for u in uids],
        },
        schema=DECISIONS_SCHEMA,
    )
    storage.write_parquet_atomic(table, decisions_path(dataset, name))
    exported = export(dataset, {"name": name, "filter": {}}, fmt="webdataset", samples_per_shard=256)
    out = out or str(Path(recipe["train"]["out_dir"]).with_name("run-dfn-filter"))
    train_from_table(_spec(recipe, seed=0), exported["out"], out)
    log.info("filter model trained on %d trusted samples: %s", len(chosen), out)
    return out, len(chosen)


def first_equal_pool(kept: dict[str, frozenset]) -> dict[str, str]:
    """Each pool's first pool (in order) with the same samples; itself when none came before.

    A pool equal to an earlier one (semantic dedup whose pairs the rules had already dropped) is not
    trained again: every run is seeded and deterministic, so its scores would be the earlier pool's.
    """
    first: dict[frozenset, str] = {}
    return {name: first.setdefault(uids, name) for name, uids in kept.items()}


def _cut_pool(dataset: str, name: str, table: dict) -> tuple[frozenset, str]:
    """Decide and export one pool; returns its kept uids and its exported shards' folder."""
    from curate.export.stage import export
    from curate.filter import decisions_path, filter_dataset

    rcp = {"name": _pool_name(name), "description": f"demo --compare pool: {name}", "filter": table}
    filter_dataset(dataset, rcp)
    decided = storage.read_parquet(decisions_path(dataset, rcp["name"]), columns=["uid", "keep"])
    kept = frozenset(decided.filter(decided.column("keep")).column("uid").to_pylist())
    return kept, export(dataset, rcp, fmt="webdataset", samples_per_shard=256)["out"]


def _train_pools(
    recipe: dict, dataset: str, benchmark: Path, pools: dict[str, str], seeds: tuple[int, ...]
) -> dict[str, list[float]]:
    """Every (pool, seed) training, side by side: each runs on one intra-op thread, so the machine's cores
    take one each (the results are those of a one-at-a-time run: every run is seeded and single-threaded).
    """
    from curate.executor.local import run_local

    runs = Path(recipe["train"]["out_dir"]).parent
    jobs = [
        Job(
            key=f"{name}/{seed}",
            stats_path=str(runs / f"run-{_pool_name(name)}-seed{seed}" / "compare.json"),
            payload={
                "spec": {**_spec(recipe, seed), "progress": False},
                "data": data,
                "benchmark": str(benchmark),
                "dataset": dataset,
            },
        )
        for name, data in pools.items()
        for seed in seeds
    ]
    threads = max(1, int(recipe["train"].get("threads") or 1))
    workers = min(len(jobs), max(1, (os.cpu_count() or 1) // threads))
    results = run_local(_train_and_score, jobs, workers=workers, retries=0, desc="compare: train", unit="run")
    failed = {key: value for key, (state, value) in results.items() if state != "ok"}
    if failed:
        for key, why in failed.items():
            log.debug("compare %s failed: %s", key, why)
        first_lines = "; ".join(f"{key}: {str(why).splitlines()[0]}" for key, why in failed.items())
        raise CurateError(f"compare training failed: {first_lines}")
    scores: dict[str, list[float]] = {name: [] for name in pools}
    for job in jobs:
        name, seed = job.key.rsplit("/", 1)
        scores[name].append(results[job.key][1]["zero_shot_top1"])
        log.info("compare %s seed %s: zero-shot top-1 %.3f", name, seed, scores[name][-1])
    return scores


def _train_and_score(job: Job) -> dict:
    """Worker: train one pool with one seed, then measure zero-shot top-1 on the benchmark."""
    from curate.demo import _evaluate
    from curate.run import train_from_table

    task = job.payload
    trained = train_from_table(task["spec"], task["data"], str(Path(job.stats_path).parent))
    return _evaluate(trained, Path(task["benchmark"]), task["dataset"])


def _pool_result(samples: int, describes: int, runs: list[float]) -> dict:
    """One pool's line: its size, how many of its alt texts describe their image (the web's ground truth)
    and its zero-shot top-1 per seed with their mean and sd."""
    return {
        "samples": samples,
        "describes": describes,
        "zero_shot_top1": runs,
        "mean": round(statistics.fmean(runs), 4),
        "sd": round(statistics.stdev(runs), 4) if len(runs) > 1 else 0.0,
    }


def _pool_name(name: str) -> str:
    return f"compare-{name.replace('+', '-')}"


def _spec(recipe: dict, seed: int) -> dict[str, Any]:
    return {**{k: v for k, v in recipe["train"].items() if k != "out_dir"}, "seed": seed}

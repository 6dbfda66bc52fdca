"""Seed-to-seed spread of the `curate demo --compare` training, schedule by schedule, on one exported pool.

A compare folder (`curate demo -o CMP --compare`) keeps every pool's export under CMP/dataset/export/.
This retrains one of them with the schedules given, seed by seed, and scores each run on CMP/benchmark
the way the compare does. Every run is deterministic (seeded, single intra-op thread), so a figure here
equals the compare's own run with the same schedule and seed.

`--cross` also trains with the seed of the initial weights and the seed of the data order crossed
(weights i with data order j for every i != j), to tell which of the two a weak seed comes from.

    python benchmarks/compare_schedule.py CMP --pool compare-rules \\
        --schedule 160:1e-3:16 --schedule 160:5e-4:16 --schedule 320:5e-4:32 --seeds 0,1,2 --jobs 2

A schedule is STEPS:LR:WARMUP[:BATCH] (batch 64 unless given). Prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context


def _parse_schedule(text: str) -> dict:
    parts = text.split(":")
    if len(parts) not in (3, 4):
        raise argparse.ArgumentTypeError(f"{text!r}: give STEPS:LR:WARMUP[:BATCH], e.g. 320:5e-4:32")
    steps, lr, warmup = int(parts[0]), float(parts[1]), int(parts[2])
    batch = int(parts[3]) if len(parts) == 4 else 64
    return {"steps": steps, "lr": lr, "warmup_steps": warmup, "batch_size": batch}


def _train_one(
    compare_dir: str, pool: str, schedule: dict, weights_seed: int, data_seed: int, out: str
) -> dict:
    """One training in a fresh process; the data order's seed is set apart from the weights' when crossed."""
    import curate.train.train as trainer
    from curate.run import train_from_table
    from curate.train.data import ShardStream
    from curate.train.evaluate import load_checkpoint, zero_shot

    def seeded_stream(*args, **kwargs):  # wraps the class itself: a pool worker runs several tasks
        return ShardStream(*args, **{**kwargs, "seed": data_seed})

    trainer.ShardStream = seeded_stream
    spec = {
        "model": "tiny",
        **schedule,
        "save_every": schedule["steps"],
        "log_every": max(1, schedule["steps"] // 10),
        "workers": 1,
        "threads": 1,
        "progress": False,
        "seed": weights_seed,
    }
    start = time.perf_counter()
    trained = train_from_table(spec, os.path.join(compare_dir, "dataset", "export", pool), out)
    top1 = zero_shot(load_checkpoint(trained["checkpoint"]), os.path.join(compare_dir, "benchmark"))["top1"]
    return {
        "pool": pool,
        **schedule,
        "weights_seed": weights_seed,
        "data_seed": data_seed,
        "zero_shot_top1": round(top1, 4),
        "final_loss": round(trained["loss"], 4),
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("compare_dir", help="a `curate demo --compare` output folder")
    ap.add_argument("--pool", default="compare-rules", help="an export under COMPARE_DIR/dataset/export/")
    ap.add_argument("--schedule", type=_parse_schedule, action="append", required=True)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--cross", action="store_true", help="also cross weights' and data order's seeds")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="trainings side by side")
    ap.add_argument("--work", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "_work"))
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    pairs = [(s, s) for s in seeds]
    if args.cross:
        pairs += [(i, j) for i, j in itertools.product(seeds, seeds) if i != j]
    tasks = []
    for n, schedule in enumerate(args.schedule):
        for weights_seed, data_seed in pairs:
            out = os.path.join(args.work, "compare_schedule", f"{args.pool}-{n}-w{weights_seed}-d{data_seed}")
            if os.path.isdir(out):
                raise SystemExit(f"{out} exists: remove it or give another --work")
            tasks.append((args.compare_dir, args.pool, schedule, weights_seed, data_seed, out))
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        for result in pool.map(_train_one, *zip(*tasks, strict=True)):
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

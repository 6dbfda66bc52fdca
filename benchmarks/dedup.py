"""Near-duplicate search and clustering: curate's multi-index hashing beside all-pairs, in one run.

Input: uniformly random 64-bit hashes (the hard case for banding: no structure to exploit) plus
planted near copies (1% of N, each with 0..k random bits flipped). Each measurement runs in a fresh
subprocess so that its peak RSS is its own. Checks that every planted pair is found.

    python benchmarks/dedup.py                       # 100k all-pairs anchor; 1M and 10M at k = 4, 6, 10
    python benchmarks/dedup.py --sizes 1000000 --ks 10 --workers 2
    python benchmarks/dedup.py --stage 1000000       # also the whole `curate dedup` stage on files
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np


def planted_hashes(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n random hashes + n // 100 copies with <= k flipped bits; returns (hashes, src idx, copy idx)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**64, n, dtype=np.uint64)
    m = n // 100
    src = rng.choice(n, m, replace=False)
    flips = np.zeros(m, dtype=np.uint64)
    counts = rng.integers(0, k + 1, m)
    for f in range(k):
        bit = rng.integers(0, 64, m).astype(np.uint64)
        flips ^= np.where(counts > f, np.uint64(1) << bit, np.uint64(0))  # a repeated bit can cancel: still <= k
    copies = base[src] ^ flips
    return np.concatenate([base, copies]), src, np.arange(n, n + m)


def run_one(n: int, k: int, method: str, workers: int, bucketings: int | None) -> dict:
    from curate.dedup import clusters, mih

    h, src, cp = planted_hashes(n, k)
    values, inverse = np.unique(h, return_inverse=True)
    t0 = time.perf_counter()
    if method == "all_pairs":
        plan = mih.Plan(k=k, all_pairs=True)
    else:
        plan = mih.plan(len(values) * (len(values) - 1) / 2, len(values), k)
    extrapolated = None
    if bucketings and not plan.all_pairs and math.comb(plan.bands, plan.shared) > bucketings:
        # time a prefix of the bucketings and scale: the remaining ones cost the same on random hashes
        masks = plan.masks()[:bucketings]
        idx_bits = max(1, int(len(values) - 1).bit_length())
        t = time.perf_counter()
        for mask in masks:
            mih._bucket_self(values, mask, k, idx_bits)
        per = (time.perf_counter() - t) / len(masks)
        extrapolated = per * math.comb(plan.bands, plan.shared) / max(1, workers)
        return {"n": n, "k": k, "method": method, "plan": plan.describe(), "seconds": None,
                "extrapolated_seconds": round(extrapolated, 1), "timed_bucketings": len(masks),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    a, b, _ = mih.self_pairs(values, k, workers=workers, search=plan)
    t_search = time.perf_counter() - t0
    labels = clusters.components(len(values), a, b)
    node_labels = labels[inverse]
    rep = clusters.representatives(node_labels, np.zeros(len(h), np.int64), np.arange(len(h)))
    seconds = time.perf_counter() - t0
    found = float(np.mean(node_labels[src] == node_labels[cp]))
    return {"n": n, "hashes": len(h), "k": k, "method": method, "plan": plan.describe(),
            "seconds": round(seconds, 2), "search_seconds": round(t_search, 2), "pairs": len(a),
            "duplicates": int(len(h) - len(np.unique(rep))),
            "planted_pairs_found": found,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def run_stage(n: int, k: int, workers: int) -> dict:
    """The whole `curate dedup` stage: DuckDB reads signals + shard columns, search, clusters, write."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.dedup import dedup

    root = os.path.join(os.path.dirname(__file__), "_work", f"dedup_stage_{n}")
    h, _, _ = planted_hashes(n, k)
    if not os.path.exists(os.path.join(root, "shards")):
        per = 100_000
        for s in range(0, len(h), per):
            part = h[s:s + per]
            uid = [f"{i:032x}" for i in range(s, s + len(part))]
            sha = [f"{(i * 2654435761) % (1 << 61):064x}" for i in range(s, s + len(part))]
            os.makedirs(f"{root}/shards", exist_ok=True)
            os.makedirs(f"{root}/signals/hashes", exist_ok=True)
            key = f"{s // per:05d}"
            pq.write_table(pa.table({"uid": uid, "url": [f"https://x.example/{i}.jpg" for i in range(s, s + len(part))],
                                     "status": ["success"] * len(part), "width": pa.array(np.full(len(part), 256, np.int32)),
                                     "height": pa.array(np.full(len(part), 256, np.int32))}), f"{root}/shards/{key}.parquet")
            pq.write_table(pa.table({"uid": uid, "sha256": sha, "phash": pa.array(part.view(np.int64))}),
                           f"{root}/signals/hashes/{key}.parquet")
    t = time.perf_counter()
    summary = dedup(root, max_distance=k, workers=workers)
    return {"n": len(h), "k": k, "method": "curate dedup stage", "plan": summary["search"],
            "seconds": round(time.perf_counter() - t, 2), "duplicates": summary["duplicates"],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--ks", type=int, nargs="+", default=[4, 6, 10])
    ap.add_argument("--anchor", type=int, default=100_000, help="all-pairs size (0: skip)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-seconds", type=float, default=150.0,
                    help="runs the cost model expects to exceed this are timed on a prefix and extrapolated")
    ap.add_argument("--stage", type=int, default=0, help="also time the whole stage on this many samples")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        spec = json.loads(args.child)
        out = run_stage(**spec) if spec.pop("stage", False) else run_one(**spec)
        print(json.dumps(out))
        return

    from curate.dedup import mih

    jobs = []
    if args.anchor:
        for k in args.ks:
            jobs.append({"n": args.anchor, "k": k, "method": "all_pairs", "workers": 1, "bucketings": None})
            jobs.append({"n": args.anchor, "k": k, "method": "mih", "workers": args.workers, "bucketings": None})
    for n in args.sizes:
        for k in args.ks:
            p = mih.plan(n * n / 2, n, k)
            est = mih._NS_PER_SORTED_ITEM * n * math.comb(p.bands, p.shared) / 1e9 / args.workers
            jobs.append({"n": n, "k": k, "method": "mih", "workers": args.workers,
                         "bucketings": 40 if est > args.max_seconds else None})
    if args.stage:
        jobs.append({"n": args.stage, "k": min(args.ks), "workers": args.workers, "stage": True})
    print(f"# {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.2f}")
    for job in jobs:
        res = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], capture_output=True, text=True, check=False)
        if res.returncode:
            print(json.dumps({"job": job, "error": res.stderr[-2000:]}))
        else:
            print(res.stdout.strip().splitlines()[-1], flush=True)
    print(f"# load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

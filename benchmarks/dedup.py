"""Near-duplicate clustering: curate's searches beside all-pairs, in one run, each in a fresh process.

Data: N photo-like 8x8 RGB thumbnails (smooth random colour fields + noise, so distinct images
correlate as photos do, not as white noise) with random 64-bit pHashes, plus planted near copies (1%
of N): the source's thumbnail plus noise (correlation >= ~0.95) and its pHash with 0..10 bits flipped.
The rule is the annotate stage's: pHash distance <= 14 AND thumbnail correlation >= 0.94.
The pHashes here are independent of the thumbnails, so pHash bits separate distinct samples better
than on real photos (whose pHashes follow their layouts); the LSH plan measures that on each dataset.

  rule, all-pairs    every pair's popcount, then thumbnails of those within 14 bits (the anchor)
  rule, curate       SimHash LSH candidates (thumbnail and pHash key bits), then the rule (`curate dedup`)
  pHash k, curate    exact multi-index hashing on pHashes alone (signals without thumbnails)

    python benchmarks/dedup.py                                  # the figures in docs/PERFORMANCE.md
    python benchmarks/dedup.py --sizes 1000000 --phash-ks 4 6 --anchor 0
    python benchmarks/dedup.py --sizes --phash-ks --anchor 0 --stage 1000000   # the stage on files only
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

K, SIM = 14, 0.94


def photo_thumbs(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 192) uint8: 3x3 colour grids bilinearly upsampled to 8x8, plus noise."""
    x = np.linspace(0, 2, 8)
    lo = np.clip(np.floor(x).astype(int), 0, 1)
    w = x - lo
    up = np.zeros((8, 3))
    up[np.arange(8), lo] += 1 - w
    up[np.arange(8), lo + 1] += w
    out = np.empty((n, 192), np.uint8)
    for s in range(0, n, 500_000):
        m = min(500_000, n - s)
        grid = rng.uniform(0, 255, (m, 3, 3, 3)).astype(np.float32)  # (m, gy, gx, rgb)
        img = np.einsum("yi,xj,mijc->myxc", up, up, grid, optimize=True)
        img += rng.normal(0, 12, img.shape).astype(np.float32)
        out[s : s + m] = np.clip(img, 0, 255).reshape(m, 192)
    return out


def dataset(n: int, seed: int = 0):
    """(phash uint64, thumbs, src, copy) with the planted copies appended after the n originals."""
    rng = np.random.default_rng(seed)
    phash = rng.integers(0, 2**64, n, dtype=np.uint64)
    thumbs = photo_thumbs(n, rng)
    m = n // 100
    src = rng.choice(n, m, replace=False)
    flips = np.zeros(m, np.uint64)
    counts = rng.integers(0, 11, m)
    for f in range(10):
        bit = rng.integers(0, 64, m).astype(np.uint64)
        flips ^= np.where(counts > f, np.uint64(1) << bit, np.uint64(0))
    copy_thumbs = np.clip(thumbs[src].astype(np.float32) + rng.normal(0, 6, (m, 192)), 0, 255).astype(
        np.uint8
    )
    return (
        np.concatenate([phash, phash[src] ^ flips]),
        np.vstack([thumbs, copy_thumbs]),
        src,
        np.arange(n, n + m),
    )


def run(n: int, method: str, k: int, workers: int, timed_bucketings: int | None) -> dict:
    from curate.dedup import clusters, hashing, mih, near

    phash, thumbs, src, cp = dataset(n)
    out = {"n": n, "hashes": len(phash), "method": method}
    t0 = time.perf_counter()
    if method == "rule_all_pairs":
        a, b, _ = mih.self_pairs(phash, K, workers=1, search=mih.Plan(k=K, all_pairs=True))
        ok, _ = hashing.near(phash, phash, thumbs, thumbs, a, b, K, SIM)
        a, b, desc = a[ok], b[ok], "all-pairs popcount, then thumbnails"
    elif method == "rule_curate":
        a, b, desc = near.near_edges(
            phash.view(np.int64).view(np.uint64), np.ones(len(phash), bool), thumbs, K, SIM, workers
        )
    else:
        values = np.unique(phash)
        search = mih.plan(len(values) ** 2 / 2, len(values), k)
        desc = search.describe()
        total = math.comb(search.bands, search.shared) if not search.all_pairs else 0
        if timed_bucketings and total > timed_bucketings:
            idx_bits = max(1, int(len(values) - 1).bit_length())
            t = time.perf_counter()
            for mask in search.masks()[:timed_bucketings]:
                mih._bucket_self(values, mask, k, idx_bits)
            per = (time.perf_counter() - t) / timed_bucketings
            return {
                **out,
                "k": k,
                "search": desc,
                "seconds": None,
                "timed_bucketings": timed_bucketings,
                "extrapolated_seconds": round(per * total / workers, 1),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        a, b, _ = near.near_edges(phash, np.ones(len(phash), bool), None, k, SIM, workers)
        out["k"] = k
    labels = clusters.components(len(phash), a, b)
    rep = clusters.representatives(labels, np.zeros(len(phash), np.int64), np.arange(len(phash)))
    seconds = time.perf_counter() - t0
    return {
        **out,
        "search": desc,
        "seconds": round(seconds, 2),
        "edges": len(a),
        "duplicates": int(len(phash) - len(np.unique(rep))),
        "planted_found": round(float(np.mean(labels[src] == labels[cp])), 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def run_stage(n: int, workers: int) -> dict:
    """The whole `curate dedup` stage on files: shards (no images) + hash signals with thumbnails."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.dedup import dedup

    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_work", f"dedup_stage_{n}")
    if not os.path.exists(os.path.join(root, "signals", "hashes")):
        phash, thumbs, _, _ = dataset(n)
        per = 100_000
        os.makedirs(f"{root}/shards"), os.makedirs(f"{root}/signals/hashes")
        for s in range(0, len(phash), per):
            m = min(per, len(phash) - s)
            uid = [f"{i:032x}" for i in range(s, s + m)]
            key = f"{s // per:05d}"
            pq.write_table(
                pa.table(
                    {
                        "uid": uid,
                        "url": [f"https://x.example/{i}.jpg" for i in range(s, s + m)],
                        "status": ["success"] * m,
                        "width": pa.array(np.full(m, 256, np.int32)),
                        "height": pa.array(np.full(m, 256, np.int32)),
                    }
                ),
                f"{root}/shards/{key}.parquet",
            )
            pq.write_table(
                pa.table(
                    {
                        "uid": uid,
                        "sha256": [f"{i:064x}" for i in range(s, s + m)],
                        "phash": pa.array(phash[s : s + m].view(np.int64)),
                        "thumb": pa.FixedSizeBinaryArray.from_buffers(
                            pa.binary(192), m, [None, pa.py_buffer(thumbs[s : s + m].tobytes())]
                        ),
                    }
                ),
                f"{root}/signals/hashes/{key}.parquet",
            )
    t = time.perf_counter()
    summary = dedup(root, workers=workers)
    return {
        "n": n,
        "method": "curate dedup stage (files)",
        "search": summary["search"],
        "seconds": round(time.perf_counter() - t, 2),
        "duplicates": summary["duplicates"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000])
    ap.add_argument("--anchor", type=int, default=100_000, help="size of the all-pairs anchor (0: skip)")
    ap.add_argument("--phash-ks", type=int, nargs="*", default=[4, 6, 14])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--stage", type=int, default=0, help="also time the whole stage on files of this size")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(run_stage(spec["n"], spec["workers"]) if spec.pop("stage", False) else run(**spec)))
        return
    jobs = []
    if args.anchor:
        jobs += [
            {"n": args.anchor, "method": m, "k": K, "workers": args.workers, "timed_bucketings": None}
            for m in ("rule_all_pairs", "rule_curate")
        ]
    for n in args.sizes:
        jobs.append(
            {"n": n, "method": "rule_curate", "k": K, "workers": args.workers, "timed_bucketings": None}
        )
        jobs += [
            {"n": n, "method": "phash_mih", "k": k, "workers": args.workers, "timed_bucketings": 20}
            for k in args.phash_ks
        ]
    if args.stage:
        jobs.append({"n": args.stage, "workers": args.workers, "stage": True})
    print(
        f"# {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.2f}"
    )
    for job in jobs:
        res = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(job)],
            capture_output=True,
            text=True,
            check=False,
        )
        print(
            res.stdout.strip().splitlines()[-1]
            if res.returncode == 0
            else json.dumps({"job": job, "error": res.stderr[-1500:]}),
            flush=True,
        )
    print(f"# load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

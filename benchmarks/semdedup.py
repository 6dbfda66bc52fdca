"""Semantic dedup (`curate dedup --semantic`): k-means-restricted pair search beside all-pairs, in one run.

Data: N unit 512-d embeddings, float16 as the clip signal stores them, in uneven topical clusters
(2,000 centres, log-normal sizes, cosine ~0.8 to the centre: two members of a topic are ~0.64 apart, as
CLIP embeddings of different photos of one subject are), plus planted near copies (5% of N, cosine 0.995
to their source: a re-encoded or re-cropped upload). Files: signals/clip Parquet shards of 100k rows
under benchmarks/_work/semdedup/ (generated once, reused).

  curate     load_embeddings (Parquet -> float16 matrix) + semantic_edges (k-means, pairs), in a fresh
             process: wall time, peak RSS, recall of the planted pairs, precision of the pairs found
  all-pairs  the exact blocked product over an S-row subset (the anchor), beside curate on that subset

  ray        with --executor ray: the partitioned search (curate.dedup.semantic_partitioned.find_pairs)
             on a local Ray of --workers CPUs in --partitions partitions, in a fresh driver process: wall,
             CPU of the driver and of the tasks, the driver's peak RSS and each step's largest task
             peak RSS; its pairs are compared with curate's

    python benchmarks/semdedup.py                      # the figures in docs/PERFORMANCE.md (N=1M, S=30k)
    python benchmarks/semdedup.py --n 200000 --subset 20000
    python benchmarks/semdedup.py --executor ray --partitions 8 --subset 0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DIM, CENTRES, COPY_SHARE, COPY_COSINE, EPS = 512, 2000, 0.05, 0.995, 0.01
WORK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_work", "semdedup-zstd")
ROWS_PER_FILE = 100_000


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def embeddings(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, DIM) float16 unit rows and the planted (source, copy) index pairs (copies are the last rows)."""
    rng = np.random.default_rng(seed)
    n_copies = int(n * COPY_SHARE)
    n_orig = n - n_copies
    centres = _unit(rng.normal(size=(CENTRES, DIM)).astype(np.float32))
    share = rng.lognormal(0, 1, CENTRES)
    topic = rng.choice(CENTRES, n_orig, p=share / share.sum())
    out = np.empty((n, DIM), np.float16)
    for s in range(0, n_orig, 100_000):
        t = topic[s : s + 100_000]
        out[s : s + len(t)] = _unit(
            centres[t] + rng.normal(0, 0.75 / DIM**0.5, (len(t), DIM)).astype(np.float32)
        )
    src = rng.choice(n_orig, n_copies, replace=False)
    for s in range(0, n_copies, 100_000):
        v = out[src[s : s + 100_000]].astype(np.float32)
        v = _unit(v)
        other = rng.normal(size=v.shape).astype(np.float32)
        other = _unit(other - (other * v).sum(1, keepdims=True) * v)
        out[n_orig + s : n_orig + s + len(v)] = COPY_COSINE * v + (1 - COPY_COSINE**2) ** 0.5 * other
    return out, np.stack([src, np.arange(n_orig, n)], axis=1)


def write_signals(n: int) -> str:
    """benchmarks/_work/semdedup/N/signals/clip/*.parquet in the clip signal's schema (once per N)."""
    root = os.path.join(WORK, str(n))
    done = os.path.join(root, "planted.npy")
    if os.path.exists(done):
        return root
    x, planted = embeddings(n)
    os.makedirs(os.path.join(root, "signals", "clip"), exist_ok=True)
    for s in range(0, n, ROWS_PER_FILE):
        part = x[s : s + ROWS_PER_FILE]
        table = pa.table(
            {
                "uid": pa.array([f"{i:032x}" for i in range(s, s + len(part))]),
                "clip_score": pa.array(np.full(len(part), 0.3, np.float32)),
                "image_embedding": pa.FixedSizeListArray.from_arrays(pa.array(part.ravel()), DIM),
            }
        )
        # as `curate annotate` writes the clip signal (storage.write_parquet_atomic: zstd)
        pq.write_table(
            table,
            os.path.join(root, "signals", "clip", f"{s // ROWS_PER_FILE:05d}.parquet"),
            compression="zstd",
        )
    np.save(done, planted)
    return root


def run_curate(root: str, n: int) -> dict:
    """In this (fresh) process: load the signal files and search; figures as JSON."""
    from curate.dataset import Dataset
    from curate.dedup.semantic import load_embeddings, semantic_edges

    start = time.perf_counter()
    uids = pa.array([f"{i:032x}" for i in range(n)])
    t0 = time.perf_counter()
    emb = load_embeddings(Dataset(root), uids)
    t1 = time.perf_counter()
    a, b, info = semantic_edges(emb.vectors, emb.valid, EPS)
    t2 = time.perf_counter()
    planted = np.load(os.path.join(root, "planted.npy"))
    np.save(os.path.join(root, "pairs-single.npy"), np.stack([a, b], axis=1))
    hits = _hits(root, a, b)
    cos = (emb.vectors[a].astype(np.float32) * emb.vectors[b].astype(np.float32)).sum(1)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "n": n,
        "load_s": round(t1 - t0, 2),
        "search_s": round(t2 - t1, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "total_s": round(t2 - start, 2),
        "peak_rss_mb": usage.ru_maxrss // 1024,
        "pairs": len(a),
        "planted": len(planted),
        "planted_found": hits,
        "pairs_above_threshold": int((cos > 1 - EPS).sum()),
        **{f"info_{k}": v for k, v in info.items()},
    }


def _hits(root: str, a: np.ndarray, b: np.ndarray) -> int:
    planted = np.load(os.path.join(root, "planted.npy"))
    found = set(zip(a.tolist(), b.tolist(), strict=True))
    return sum((int(min(p)), int(max(p))) in found for p in planted)


def run_ray(root: str, n: int, parts: int, workers: int) -> dict:
    """In this (fresh) driver process: the partitioned search on a local Ray; figures as JSON."""
    import shutil

    from curate.dataset import Dataset
    from curate.dedup.partitioned import _ray_session, _Run
    from curate.dedup.semantic_partitioned import find_pairs, uid_ranges

    work = os.path.join(root, "_ray_work")
    shutil.rmtree(work, ignore_errors=True)
    files = sorted(
        os.path.join(root, "signals", "clip", f) for f in os.listdir(os.path.join(root, "signals", "clip"))
    )
    runner = _Run(work, parts, 0, 0.0, {"executor": "ray", "workers": workers, "retries": 0})
    t0 = time.perf_counter()
    with _ray_session("ray", workers):
        t1 = time.perf_counter()
        splitters, starts = uid_ranges(work, pa.array([f"{i:032x}" for i in range(n)]), parts)
        info, sources = find_pairs(runner, Dataset(root), files, splitters, starts, EPS, None)
        t2 = time.perf_counter()
        tasks_cpu = _children_cpu()
    edges = [
        pq.read_table(os.path.join(work, "edges", s, f"{j}.parquet")) for s in sources for j in range(parts)
    ]
    a = np.concatenate([e.column("a").to_numpy() for e in edges])
    b = np.concatenate([e.column("b").to_numpy() for e in edges])
    a, b = a[a < b], b[a < b]
    order = np.lexsort((b, a))
    single = np.load(os.path.join(root, "pairs-single.npy"))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "n": n,
        "partitions": parts,
        "workers": workers,
        "ray_start_s": round(t1 - t0, 2),
        "search_s": round(t2 - t1, 2),
        "driver_cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "tasks_cpu_s": tasks_cpu,
        "driver_peak_rss_mb": usage.ru_maxrss // 1024,
        "task_peak_rss_mb_by_step": runner.peaks,
        "seconds_by_step": runner.seconds,
        "pairs": len(a),
        "same_pairs_as_single": bool(np.array_equal(np.stack([a[order], b[order]], axis=1), single)),
        "planted_found": _hits(root, a, b),
        **{f"info_{k}": v for k, v in info.items()},
    }


def _children_cpu() -> float:
    """CPU seconds of the Ray worker processes under this driver (before Ray stops them)."""
    import psutil

    total = 0.0
    for proc in psutil.Process().children(recursive=True):
        try:
            if "ray::" in " ".join(proc.cmdline()) or "default_worker" in " ".join(proc.cmdline()):
                t = proc.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            continue
    return round(total, 1)


def anchor(n: int, subset: int) -> dict:
    """Exact all-pairs over `subset` rows (float32 blocked product) beside curate's search on those rows."""
    from curate.dedup.semantic import semantic_edges

    x, _ = embeddings(n)
    rng = np.random.default_rng(1)
    rows = np.sort(np.concatenate([rng.choice(n, subset // 2, replace=False), np.arange(n - subset // 2, n)]))
    x = x[np.unique(rows)]  # half random rows, half the last rows (planted copies, some with their source)
    t0 = time.perf_counter()
    x32 = x.astype(np.float32)
    exact = set()
    for r0 in range(0, len(x), 4096):
        i, j = np.nonzero(x32[r0 : r0 + 4096] @ x32[r0:].T > 1 - EPS)
        keep = j > i
        exact |= set(zip((i[keep] + r0).tolist(), (j[keep] + r0).tolist(), strict=True))
    t1 = time.perf_counter()
    a, b, info = semantic_edges(x, np.ones(len(x), bool), EPS)
    t2 = time.perf_counter()
    found = set(zip(a.tolist(), b.tolist(), strict=True))
    return {
        "rows": len(x),
        "all_pairs_s": round(t1 - t0, 2),
        "curate_s": round(t2 - t1, 2),
        "exact_pairs": len(exact),
        "curate_pairs": len(found),
        "curate_missed": len(exact - found),
        "curate_extra": len(found - exact),
        "clusters": info["clusters"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--subset", type=int, default=30_000, help="rows for the all-pairs anchor (0: skip)")
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--partitions", type=int, default=8, help="with --executor ray (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="with --executor ray: Ray CPUs (default 2)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ray-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_curate(args.child, args.n)))
        return
    if args.ray_child:
        print(json.dumps(run_ray(args.ray_child, args.n, args.partitions, args.workers)))
        return
    print(f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    t0 = time.perf_counter()
    root = write_signals(args.n)
    print(
        f"data: {args.n:,} x {DIM} float16 in {root} ({time.perf_counter() - t0:.1f} s, reused when present)"
    )
    out = subprocess.run(
        [sys.executable, __file__, "--n", str(args.n), "--child", root],
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ).stdout
    curate = json.loads(out.strip().splitlines()[-1])
    print(json.dumps({"curate": curate}, indent=1))
    print(f"load after curate: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.executor == "ray":
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--n",
                str(args.n),
                "--ray-child",
                root,
                "--partitions",
                str(args.partitions),
                "--workers",
                str(args.workers),
            ],
            check=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ).stdout
        print(json.dumps({"ray": json.loads(out.strip().splitlines()[-1])}, indent=1))
        print(f"load after ray: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.subset:
        print(json.dumps({"anchor": anchor(args.n, args.subset)}, indent=1))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"machine: {os.cpu_count()} cores {platform.machine()}, load {load}, numpy {np.__version__}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


if __name__ == "__main__":
    main()

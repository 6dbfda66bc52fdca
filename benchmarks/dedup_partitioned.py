"""Partitioned dedup on a local 2-CPU Ray beside the single-process `curate dedup`, on the same files.

Data: N synthetic samples as a dataset on disk (shards without image bytes + hash signals with
thumbnails): benchmarks/dedup.py's photo-like thumbnails and pHashes with 1% planted near copies, plus
0.5% byte-identical copies (same sha256, pHash and thumbnail) and 0.2% samples sharing another's URL;
image sizes vary, so representatives are chosen by size. Each path runs in a fresh process: the
single-process stage, then the partitioned one with a per-task memory budget (default: half the single
process's peak). The two clusters.parquet files are compared row by row (DuckDB), and the report gives
wall time, the driver's peak RSS and the largest peak RSS of any Ray worker (a worker's peak is that of
the largest task it ran), and CPU seconds: the driver's own (the whole single-process run) and, for the
partitioned run, its tasks' per step (summary `cpu_seconds_by_step`), which load on a shared machine
does not inflate as it does wall time.

    python benchmarks/dedup_partitioned.py --rows 1000000
    python benchmarks/dedup_partitioned.py --rows 2000000 --budget 1G
    python benchmarks/dedup_partitioned.py --rows 2000000 --partitioned-only   # reuse the single run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PER_SHARD = 100_000


def make(n: int, root: str) -> None:
    """Write the dataset once (reused by later runs of the same size)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, HERE)
    from dedup import dataset  # benchmarks/dedup.py: thumbnails, pHashes, planted near copies

    phash, thumbs, _, _ = dataset(n)
    total = len(phash)
    rng = np.random.default_rng(1)
    hexes = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")
    uid = hexes[rng.integers(0, 256, (total, 16), dtype=np.uint8)].view("S32").ravel()
    sha = hexes[rng.integers(0, 256, (total, 32), dtype=np.uint8)].view("S64").ravel()
    url = np.char.add(
        b"https://img.example/", hexes[rng.integers(0, 256, (total, 8), dtype=np.uint8)].view("S16").ravel()
    )
    src, dst = rng.choice(total, (2, total // 200), replace=False)
    sha[dst], phash[dst], thumbs[dst] = sha[src], phash[src], thumbs[src]  # byte copies
    src, dst = rng.choice(total, (2, total // 500), replace=False)
    url[dst] = url[src]
    side = rng.integers(64, 1024, (total, 2)).astype(np.int32)
    if os.path.exists(root):
        shutil.rmtree(root)
    os.makedirs(f"{root}/shards"), os.makedirs(f"{root}/signals/hashes")
    for s in range(0, total, PER_SHARD):
        e, key = min(total, s + PER_SHARD), f"{s // PER_SHARD:05d}"
        uids = pa.array(uid[s:e]).cast(pa.string())
        pq.write_table(
            pa.table(
                {
                    "uid": uids,
                    "url": pa.array(url[s:e]).cast(pa.string()),
                    "status": pa.array(["success"] * (e - s)),
                    "width": side[s:e, 0],
                    "height": side[s:e, 1],
                }
            ),
            f"{root}/shards/{key}.parquet",
        )
        pq.write_table(
            pa.table(
                {
                    "uid": uids,
                    "sha256": pa.array(sha[s:e]).cast(pa.string()),
                    "phash": pa.array(phash[s:e].view(np.int64)),
                    "thumb": pa.FixedSizeBinaryArray.from_buffers(
                        pa.binary(192), e - s, [None, pa.py_buffer(thumbs[s:e].tobytes())]
                    ),
                }
            ),
            f"{root}/signals/hashes/{key}.parquet",
        )


def child(spec: dict) -> dict:
    root = spec["root"]
    clusters = f"{root}/signals/dedup/clusters.parquet"
    t = time.perf_counter()
    if spec["path"] == "single":
        from curate.dedup import dedup

        summary = dedup(root, workers=2)
        shutil.copy(clusters, f"{root}/single.parquet")
    else:
        from curate.dedup.partitioned import dedup_partitioned

        summary = dedup_partitioned(
            root,
            partitions=spec.get("partitions"),
            memory_budget=spec.get("budget"),
            executor=spec.get("executor", "ray"),
            workers=2,
        )
    return {
        "path": spec["path"],
        "seconds": round(time.perf_counter() - t, 1),
        "driver_peak_mb": round(_own_peak_mb()),
        "driver_cpu_s": round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), 1),
        "summary": {k: v for k, v in summary.items() if k not in ("seconds", "search")},
    }


def _own_peak_mb() -> float:
    """This process's peak RSS since exec (VmHWM): getrusage would also count the parent's peak, which a
    child inherits across fork and exec."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmHWM:"))


def compare(root: str) -> int:
    """Rows whose cluster, representative, kind or distance differ between the two runs."""
    import duckdb

    cols = [
        "cluster_id",
        "representative_uid",
        "is_representative",
        "duplicate_kind",
        "distance_to_representative",
    ]
    differ = " OR ".join(f"a.{c} IS DISTINCT FROM b.{c}" for c in cols)
    return duckdb.sql(f"""SELECT count(*) FROM '{root}/single.parquet' a
                          FULL OUTER JOIN '{root}/signals/dedup/clusters.parquet' b USING (uid)
                          WHERE {differ}""").fetchall()[0][0]


def _bytes(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="originals (planted copies are added)")
    ap.add_argument(
        "--budget", type=_bytes, default=None, help="per-task budget (default: half the single peak)"
    )
    ap.add_argument("--partitions", type=int, default=None, help="fix the partition count instead")
    ap.add_argument(
        "--partitioned-only",
        action="store_true",
        help="compare with the last run's single-process result and files instead of running it again",
    )
    ap.add_argument(
        "--executor",
        choices=["ray", "local"],
        default="ray",
        help="run the partitioned tasks on a local 2-CPU Ray (default) or the local process pool",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--make", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make:
        make(int(args.make[0]), args.make[1])
        return
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    root = os.path.join(HERE, "_work", f"dedup_partitioned_{args.rows}")
    if not os.path.exists(f"{root}/signals/hashes"):  # in a child, so that this process stays small
        subprocess.run([sys.executable, __file__, "--make", str(args.rows), root], check=True)
    print(
        f"# {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )

    def run(spec: dict) -> dict:
        res = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps({"root": root, **spec})],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode:
            sys.exit(f"{spec['path']} failed:\n{res.stderr[-3000:]}")
        out = json.loads(res.stdout.strip().splitlines()[-1])
        print(json.dumps(out), flush=True)
        return out

    if args.partitioned_only and os.path.exists(f"{root}/single.json"):
        with open(f"{root}/single.json") as fh:
            single = json.load(fh)
        print(f"# single path from the last run: {json.dumps(single)}", flush=True)
    else:
        single = run({"path": "single"})
        with open(f"{root}/single.json", "w") as fh:
            json.dump(single, fh)
    budget = args.budget or single["driver_peak_mb"] * (1 << 20) // 2
    part = run(
        {
            "path": "partitioned",
            "budget": None if args.partitions else budget,
            "partitions": args.partitions,
            "executor": args.executor,
        }
    )
    task = part["summary"]["partitions"]["peak_task_rss_mb"]
    print(
        json.dumps(
            {
                "rows": single["summary"]["samples"],
                "differing_rows": compare(root),
                "same_summary": {k: v for k, v in part["summary"].items() if k != "partitions"}
                == single["summary"],
                "budget_mb": round(budget / (1 << 20)),
                "largest_task_mb": task,
                "single_peak_mb": single["driver_peak_mb"],
                "task_vs_single": round(task / single["driver_peak_mb"], 2),
                "time_vs_single": round(part["seconds"] / single["seconds"], 2),
            }
        )
    )
    print(f"# load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

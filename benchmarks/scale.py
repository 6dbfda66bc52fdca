"""Benchmark: a manifest of N rows through download -> annotate -> dedup -> filter, per stage, on 2 cores.

    python benchmarks/scale.py [--rows 50000 200000] [--executor local ray]

The images are the download benchmark's 5,000 photo-like JPEGs (benchmarks/download.py generates them),
served by nginx on 127.0.0.1; row i asks for image i % 5000 with a distinct query string, so every URL is
distinct while the server stays fast. Each stage runs as its own `curate` command; reported per stage:
wall seconds, CPU seconds and the peak summed RSS of the command's process tree. Memory must stay flat
as N grows (compare the peaks at 50k and 200k). Annotation computes image, hashes, language and caption
signals (the NSFW model is measured on its own in benchmarks/nsfw.py: at its rate it would dominate).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from download import WORK as DOWNLOAD_WORK
from download import make_images, measure, start_nginx

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "_work" / "scale"
CURATE = [sys.executable, "-m", "curate", "-q"]


def stages(urls: Path, ds: Path, executor: str) -> dict[str, list[str]]:
    ex = ["--executor", executor, "--workers", "2"]
    return {
        "manifest": [*CURATE, "manifest", str(urls), "-o", str(ds / "manifest"), "--rows-per-part", "10000"],
        "download": [
            *CURATE,
            "download",
            str(ds / "manifest"),
            "-o",
            str(ds),
            "--allow-networks",
            "127.0.0.1/32",
            *ex,
        ],
        "annotate": [*CURATE, "annotate", str(ds), "--signals", "image,hashes,language,caption", *ex],
        "dedup": [*CURATE, "dedup", str(ds)],
        "filter": [*CURATE, "filter", str(ds), "--recipe", "datacomp_basic"],
    }


def run(rows: int, executor: str, port: int, n_images: int) -> dict:
    ds = WORK / f"ds-{rows}-{executor}"
    shutil.rmtree(ds, ignore_errors=True)
    urls = WORK / f"urls-{rows}.parquet"
    pq.write_table(
        pa.table(
            {
                "url": [f"http://127.0.0.1:{port}/{i % n_images:05d}.jpg?r={i}" for i in range(rows)],
                "caption": [f"a photo of object number {i} on a table" for i in range(rows)],
            }
        ),
        urls,
    )
    out = {}
    for name, cmd in stages(urls, ds, executor).items():
        r = measure(cmd)
        r.pop("log_tail")
        out[name] = {k: round(v, 2) for k, v in r.items()}
        print(
            f"  {rows:>7} {executor:<5} {name:<9} {r['wall_s']:8.1f} s  cpu {r['cpu_s']:8.1f} s  "
            f"peak {r['peak_rss_mb']:7.0f} MB",
            flush=True,
        )
    shutil.rmtree(ds, ignore_errors=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--executor", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    img_dir = DOWNLOAD_WORK / "images"
    n_images = len(make_images(5000, img_dir))
    nginx, port = start_nginx(img_dir, WORK)
    results = {
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
        "machine": f"{os.cpu_count()} cores {platform.machine()}, Python {platform.python_version()}",
        "load_before": os.getloadavg(),
        "runs": {},
    }
    try:
        for executor in args.executor:
            for rows in args.rows:
                results["runs"][f"{rows}-{executor}"] = run(rows, executor, port, n_images)
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
    results["load_after"] = os.getloadavg()
    (WORK / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

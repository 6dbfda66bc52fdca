"""Benchmark: peak memory of `curate download` on decompression-heavy images, with and without a pixel budget.

    python -m benchmarks.decode_memory [--images 64] [--unbounded-threads 4]

Each image is a 7000x7000 RGBA PNG of about 200 KB (one colour: zlib shrinks 196 MB of pixels 1000-fold),
which costs about 600 MB to decode, flatten onto white and resize. 64 copies are served by Python's
http.server on 127.0.0.1 (stopped by PID at the end) and downloaded by the real `curate download` command
(one run per setting, in the same session). Reported: peak summed RSS of the command's whole process tree
(psutil, sampled every 0.1 s), wall time and rows stored.

Both runs use 2 worker processes. Without a budget every fetch thread may decode at once, so the peak
grows with the thread count: the unbounded run gets `--unbounded-threads` threads per worker (the default
32 would hold all 64 images, about 38 GB, at once). The budgeted run uses the defaults (32 threads,
decode_pixel_budget 64,000,000).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from benchmarks.download import measure
from curate.download import DownloadConfig
from curate.schema import MANIFEST_SCHEMA, make_uid

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "_work" / "decode_memory"
SIDE = 7000


def make_png(path: Path) -> int:
    """The 7000x7000 RGBA PNG (cached); returns its size in bytes."""
    if not path.exists():
        buf = io.BytesIO()
        Image.new("RGBA", (SIDE, SIDE), (30, 140, 220, 160)).save(buf, "PNG", compress_level=9)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buf.getvalue())
    return path.stat().st_size


def serve(folder: Path) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("http.server did not start")


def write_manifest(folder: Path, urls: list[str], parts: int = 2) -> None:
    """Two manifest parts, so that both worker processes of a 2-worker run get images."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for p in range(parts):
        sel = urls[p::parts]
        rows = {
            "uid": [make_uid(u, "") for u in sel],
            "url": sel,
            "caption": [""] * len(sel),
            "status": ["ok"] * len(sel),
        }
        pq.write_table(pa.table(rows, schema=MANIFEST_SCHEMA), folder / f"part-{p:05d}.parquet")


def run(manifest: Path, out: Path, args: list[str]) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "curate",
        "-q",
        "download",
        str(manifest),
        "-o",
        str(out),
        "--allow-networks",
        "127.0.0.1/32",
        *args,
    ]
    res = measure(cmd)
    stored = sum(
        pq.read_table(p, columns=["status"]).column("status").to_pylist().count("success")
        for p in sorted((out / "shards").glob("[0-9]*.parquet"))
    )
    return {**res, "stored": stored, "args": " ".join(args)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--unbounded-threads", type=int, default=4)
    opts = ap.parse_args()

    png = WORK / "big.png"
    size = make_png(png)
    site = WORK / "site"
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    for i in range(opts.images):
        os.link(png, site / f"{i:03d}.png")
    server, port = serve(site)
    try:
        manifest = WORK / "manifest"
        write_manifest(manifest, [f"http://127.0.0.1:{port}/{i:03d}.png" for i in range(opts.images)])
        budget = DownloadConfig().decode_pixel_budget
        runs = {
            "no budget": run(
                manifest,
                WORK / "ds-unbounded",
                ["--decode-pixel-budget", "0", "--workers", "2", "--threads", str(opts.unbounded_threads)],
            ),
            "budget (defaults)": run(manifest, WORK / "ds-budget", ["--workers", "2", "--threads", "32"]),
        }
    finally:
        server.kill()
        server.wait()
    print(
        f"{opts.images} x {SIDE}x{SIDE} RGBA PNG ({size / 1000:.0f} KB each, "
        f"{SIDE * SIDE * 4 / 2**20:.0f} MiB of pixels); decode_pixel_budget default {budget:,}"
    )
    print(
        f"machine: {os.cpu_count()} cores {platform.machine()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    print(f"{'setting':<20} {'curate download args':<48} {'peak RSS':>10} {'wall':>8} {'stored':>7}")
    for name, r in runs.items():
        print(
            f"{name:<20} {r['args']:<48} {r['peak_rss_mb']:>7.0f} MB {r['wall_s']:>6.1f} s {r['stored']:>7}"
        )


if __name__ == "__main__":
    main()

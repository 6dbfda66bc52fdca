"""Benchmark: `curate download` beside img2dataset on the same 5,000 photo-like JPEGs served by nginx.

    python benchmarks/download.py [--images 5000] [--skip-img2dataset]

Both tools get the same settings (256 px, border, JPEG quality 95, parquet output, 2 processes) in the same
run. Images are crops of curate.synthweb photos (200-1200 px, median about 80 KB), generated once under
benchmarks/_work/. nginx (Debian's package) serves them on 127.0.0.1 and is stopped by PID at the end.
img2dataset runs from its own venv (benchmarks/_work/i2d-venv: `pip install img2dataset` there) so its pins
never touch the project's venv. Reported: images/s, the ratio, CPU seconds per image, peak memory of the
whole process tree, fetch-only requests/s of curate's HTTP client, and output quality (PSNR against a
full-resolution decode + Lanczos reference).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "_work" / "download"
I2D_PYTHON = ROOT / "benchmarks" / "_work" / "i2d-venv" / "bin" / "python"
SETTINGS = {"image_size": 256, "resize_mode": "border", "encode_quality": 95, "processes": 2}


# -- data ---------------------------------------------------------------------------------------------
def make_images(n: int, folder: Path) -> list[int]:
    """n JPEG crops (200-1200 px) of synthweb photos; returns their byte sizes. Cached between runs."""
    marker = folder / f".done-{n}"
    if marker.exists():
        return [p.stat().st_size for p in sorted(folder.glob("*.jpg"))][:n]
    from curate.synthweb import CLASSES, make_photo

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    bases = [np.asarray(make_photo(CLASSES[i % len(CLASSES)], i, (1200, 1200))) for i in range(48)]
    sizes = []
    for i in range(n):
        base = bases[i % len(bases)]
        w, h = (int(v) for v in rng.integers(200, 1201, 2))
        x, y = int(rng.integers(0, 1201 - w)), int(rng.integers(0, 1201 - h))
        crop = base[y : y + h, x : x + w].astype(np.int16) + rng.integers(-6, 7, (h, w, 3), dtype=np.int16)
        buf = io.BytesIO()
        Image.fromarray(crop.clip(0, 255).astype(np.uint8)).save(
            buf, "JPEG", quality=int(rng.integers(80, 93))
        )
        (folder / f"{i:05d}.jpg").write_bytes(buf.getvalue())
        sizes.append(len(buf.getvalue()))
    marker.touch()
    return sizes


# -- nginx --------------------------------------------------------------------------------------------
def start_nginx(root: Path, work: Path) -> tuple[subprocess.Popen, int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    prefix = work / "nginx"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 60;
    types {{ image/jpeg jpg; text/plain txt; }}
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
""")
    (prefix / "tmp").mkdir(exist_ok=True)
    proc = subprocess.Popen(
        ["nginx", "-c", str(conf), "-p", str(prefix), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"nginx did not start: {proc.stderr.read().decode()[:500]}")


# -- measuring a command ------------------------------------------------------------------------------
def measure(cmd: list[str], env: dict | None = None) -> dict:
    """Wall time, CPU seconds and peak summed RSS of a command's whole process tree.

    The tree is sampled every 0.1 s (psutil): RUSAGE_CHILDREN misses workers that a forkserver or
    multiprocessing pool leaves unreaped, so CPU is summed from the last sample of every pid seen.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    peak = [0]
    cpu: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while not stop.wait(0.1):
            try:
                procs = [root] + root.children(recursive=True)
            except psutil.Error:
                continue
            rss = 0
            for p in procs:
                try:
                    with p.oneshot():
                        rss += p.memory_info().rss
                        t = p.cpu_times()
                        cpu[p.pid] = t.user + t.system
                except psutil.Error:
                    continue
            peak[0] = max(peak[0], rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}):\n{out.decode(errors='replace')[-3000:]}")
    return {
        "wall_s": wall,
        "cpu_s": sum(cpu.values()),
        "peak_rss_mb": peak[0] / 2**20,
        "log_tail": out.decode(errors="replace")[-600:],
    }


I2D_RUNNER = """
import sys, img2dataset
if __name__ == "__main__":  # img2dataset's pool spawns processes that import this file
    url_list, out, size, mode, quality, procs, per_shard = sys.argv[1:8]
    img2dataset.download(url_list=url_list, output_folder=out, input_format="parquet", url_col="url",
        caption_col="caption", output_format="parquet", image_size=int(size), resize_mode=mode,
        encode_quality=int(quality), encode_format="jpg", processes_count=int(procs), thread_count=256,
        number_sample_per_shard=int(per_shard), timeout=10, retries=0, enable_wandb=False,
        distributor="multiprocessing")
"""


def run_img2dataset(urls: Path, out: Path, per_shard: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    s = SETTINGS
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}  # no network check at import
    runner = WORK / "i2d_runner.py"
    runner.write_text(I2D_RUNNER)
    res = measure(
        [
            str(I2D_PYTHON),
            str(runner),
            str(urls),
            str(out),
            str(s["image_size"]),
            s["resize_mode"],
            str(s["encode_quality"]),
            str(s["processes"]),
            str(per_shard),
        ],
        env=env,
    )
    table = pa.concat_tables([pq.read_table(p) for p in sorted(out.glob("*.parquet"))])
    res["rows"] = table.num_rows
    res["success"] = sum(1 for v in table.column("status").to_pylist() if v == "success")
    res["images"] = {
        u: b
        for u, b, st in zip(
            table.column("url").to_pylist(),
            table.column("jpg").to_pylist(),
            table.column("status").to_pylist(),
            strict=False,
        )
        if st == "success"
    }
    return res


CURATE_RUNNER = """
import sys
from curate.download import DownloadConfig, download
from curate.manifest import build_manifest
if __name__ == "__main__":  # the executor's worker processes import this file
    url_list, out, per_part, size, mode, quality, procs, cap = sys.argv[1:9]
    build_manifest([url_list], out + "/manifest", rows_per_part=int(per_part))
    cfg = DownloadConfig(image_size=int(size), resize_mode=mode, encode_quality=int(quality),
                         allow_networks=("127.0.0.1/32",), max_connections_per_host=int(cap))
    summary = download(out, out, cfg, workers=int(procs))
    assert not summary.failed, summary.failed
"""


def run_curate(urls: Path, out: Path, per_shard: int, cap: int) -> dict:
    """curate through its Python API (like img2dataset above): manifest + download, same settings."""
    shutil.rmtree(out, ignore_errors=True)
    s = SETTINGS
    runner = WORK / "curate_runner.py"
    runner.write_text(CURATE_RUNNER)
    res = measure(
        [
            sys.executable,
            str(runner),
            str(urls),
            str(out),
            str(per_shard),
            str(s["image_size"]),
            s["resize_mode"],
            str(s["encode_quality"]),
            str(s["processes"]),
            str(cap),
        ]
    )
    rows = []
    for p in sorted((out / "shards").glob("[0-9]*.parquet")):
        rows += pq.read_table(p, columns=["url", "status", "image"]).to_pylist()
    res["rows"] = len(rows)
    res["success"] = sum(r["status"] == "success" for r in rows)
    res["images"] = {r["url"]: r["image"] for r in rows if r["status"] == "success"}
    return res


def cli_startup_s() -> float:
    """Wall seconds of `curate --help`: the fixed cost a CLI run adds (it imports every command)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "curate", "--help"], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def fetch_only(urls: list[str], cap: int, threads: int) -> float:
    """Requests/s of curate's HTTP client alone (one process, no image processing)."""
    from curate.download.config import DownloadConfig
    from curate.download.fetch import Fetcher

    fetcher = Fetcher(
        DownloadConfig(allow_networks=("127.0.0.1/32",), max_connections_per_host=cap, threads=threads)
    )
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        n = sum(1 for r in pool.map(fetcher.fetch, urls) if r.body)
    elapsed = time.perf_counter() - start
    fetcher.close()
    return n / elapsed


def quality(images: dict[str, bytes], folder: Path, sample: int = 300) -> dict:
    """PSNR of outputs against full decode + Lanczos to 256 (border), and mean output bytes."""
    psnrs = []
    urls = sorted(images)[:sample]
    for url in urls:
        src = Image.open(folder / url.rsplit("/", 1)[1]).convert("RGB")
        w, h = src.size
        scale = 256 / max(w, h)
        tw, th = max(1, round(w * scale)), max(1, round(h * scale))
        ref = Image.new("RGB", (256, 256), (255, 255, 255))
        ref.paste(src.resize((tw, th), Image.Resampling.LANCZOS), ((256 - tw) // 2, (256 - th) // 2))
        out = Image.open(io.BytesIO(images[url])).convert("RGB")
        if out.size != (256, 256):
            continue
        mse = np.mean((np.asarray(out, float) - np.asarray(ref, float)) ** 2)
        psnrs.append(10 * np.log10(255**2 / max(mse, 1e-9)))
    return {
        "psnr_db": float(np.median(psnrs)),
        "mean_kb": float(np.mean([len(images[u]) for u in urls]) / 1024),
        "compared": len(psnrs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--skip-img2dataset", action="store_true")
    parser.add_argument(
        "--rounds", type=int, default=2, help="interleaved rounds; the best of each tool counts"
    )
    args = parser.parse_args()
    if not args.skip_img2dataset and not I2D_PYTHON.exists():
        print(
            f"img2dataset venv missing: python -m venv {I2D_PYTHON.parents[1]} && "
            f"{I2D_PYTHON.parent}/pip install img2dataset   (or pass --skip-img2dataset)",
            file=sys.stderr,
        )
        return 2
    WORK.mkdir(parents=True, exist_ok=True)
    img_dir = WORK / "images"
    sizes = make_images(args.images, img_dir)
    print(
        f"{len(sizes)} images, median {np.median(sizes) / 1024:.0f} KB, "
        f"p10-p90 {np.percentile(sizes, 10) / 1024:.0f}-{np.percentile(sizes, 90) / 1024:.0f} KB"
    )
    nginx, port = start_nginx(img_dir, WORK)
    results: dict = {
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
        "machine": f"{os.cpu_count()} cores {platform.machine()}, Python {platform.python_version()}",
        "load_before": os.getloadavg(),
        "images": len(sizes),
        "median_kb": float(np.median(sizes) / 1024),
        "settings": SETTINGS,
    }
    try:
        base = f"http://127.0.0.1:{port}"
        urls = [f"{base}/{i:05d}.jpg" for i in range(len(sizes))]
        url_file = WORK / "urls.parquet"
        pq.write_table(pa.table({"url": urls, "caption": [f"photo {i}" for i in range(len(urls))]}), url_file)
        per_shard = (len(urls) + 1) // 2  # two shards, so that both tools can use both processes
        # Interleaved rounds, best of each: on a shared machine the load drifts during a run.
        runs: dict = {}
        for round_ in range(args.rounds):
            trial = {}
            if not args.skip_img2dataset:
                trial["img2dataset"] = run_img2dataset(url_file, WORK / "out-i2d", per_shard)
            trial["curate"] = run_curate(url_file, WORK / "out-curate", per_shard, cap=2)
            if round_ == 0:
                trial["curate (16 conns/host)"] = run_curate(
                    url_file, WORK / "out-curate16", per_shard, cap=16
                )
            for name, r in trial.items():
                print(
                    f"round {round_ + 1} {name}: {r['success'] / r['wall_s']:.0f} images/s, "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
                r["rounds_images_per_s"] = runs.get(name, {}).get("rounds_images_per_s", []) + [
                    round(r["success"] / r["wall_s"], 1)
                ]
                if name not in runs or r["wall_s"] < runs[name]["wall_s"]:
                    runs[name] = r
                else:
                    runs[name]["rounds_images_per_s"] = r["rounds_images_per_s"]
        for _name, r in runs.items():
            q = quality(r.pop("images"), img_dir)
            r.update(
                q,
                images_per_s=r["success"] / r["wall_s"],
                cpu_ms_per_image=1000 * r["cpu_s"] / max(1, r["success"]),
            )
            r.pop("log_tail")
        results["runs"] = runs
        results["fetch_only_rps"] = {
            "cap 2, 32 threads": fetch_only(urls[:2000], 2, 32),
            "cap 16, 32 threads": fetch_only(urls[:2000], 16, 32),
        }
        results["cli_startup_s"] = cli_startup_s()
        results["load_after"] = os.getloadavg()
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
    anchor = results["runs"].get("img2dataset", {}).get("images_per_s")
    print(f"\n{results['date']}  {results['machine']}  load before {results['load_before'][0]:.2f}")
    print(
        "| engine | images/s (best) | each round | vs img2dataset | success | CPU ms/image | peak RSS MB "
        "| PSNR dB | KB/image |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results["runs"].items():
        ratio = f"{r['images_per_s'] / anchor:.2f}x" if anchor else "-"
        rounds = ", ".join(f"{v:.0f}" for v in r["rounds_images_per_s"])
        print(
            f"| {name} | {r['images_per_s']:.0f} | {rounds} | {ratio} | {r['success']}/{r['rows']} "
            f"| {r['cpu_ms_per_image']:.2f} | "
            f"{r['peak_rss_mb']:.0f} | {r['psnr_db']:.1f} | {r['mean_kb']:.1f} |"
        )
    if anchor:
        cpu_ratio = (
            results["runs"]["img2dataset"]["cpu_ms_per_image"] / results["runs"]["curate"]["cpu_ms_per_image"]
        )
        print(f"CPU per image, img2dataset / curate: {cpu_ratio:.2f}x")
    print(
        f"`curate --help` startup: {results['cli_startup_s']:.2f} s; "
        f"load after {results['load_after'][0]:.2f}"
    )
    for name, rps in results["fetch_only_rps"].items():
        print(f"fetch only ({name}): {rps:.0f} requests/s")
    out = WORK / "results.json"
    out.write_text(json.dumps(results, indent=2, default=float))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark `curate manifest` on a generated 10M-row csv.gz and parquet, beside the ad-hoc anchor.

The anchor is what one-off scripts do: read the whole file with pyarrow (pandas is not installed
here; pandas.read_csv holds even more) and write it back as Parquet: no uid, status or dedupe,
and memory that grows with the file. Each run is a subprocess; its peak RSS comes from wait4().

    python benchmarks/manifest.py              # 10M rows; data kept under benchmarks/_work/
    python benchmarks/manifest.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from curate.dataset import sidecar
from curate.manifest import SUMMARY

WORK = Path(__file__).resolve().parent / "_work"
CHUNK = 1_000_000
WORDS = np.array(
    [
        "a",
        "photo",
        "of",
        "the",
        "red",
        "blue",
        "small",
        "large",
        "dog",
        "cat",
        "house",
        "tree",
        "car",
        "city",
        "beach",
        "sunset",
        "portrait",
        "vintage",
        "modern",
        "kitchen",
        "garden",
        "mountain",
        "river",
        "street",
        "night",
    ]
)

ANCHOR = """
import sys, pyarrow.csv as c, pyarrow.parquet as pq
src, dst = sys.argv[1], sys.argv[2]
t = pq.read_table(src) if src.endswith(".parquet") else c.read_csv(src)
pq.write_table(t, dst, compression="zstd")
print(t.num_rows)
"""


def _chunk(start: int, n: int, rng: np.random.Generator) -> pa.Table:
    """n LAION-like rows: ~1% repeats of earlier rows, 0.1% empty and 0.1% scheme-less URLs."""
    ids = np.arange(start, start + n)
    repeat = rng.random(n) < 0.01
    ids[repeat] = rng.integers(0, start + 1, repeat.sum())
    host = pc.cast(pa.array(ids % 5000), pa.string())
    idx = pc.cast(pa.array(ids), pa.string())
    url = pc.binary_join_element_wise("https://img", host, ".example.com/images/", idx, ".jpg", "")
    kind = rng.random(n)
    url = pc.if_else(pa.array(kind < 0.001), "", url)
    url = pc.if_else(
        pa.array((kind >= 0.001) & (kind < 0.002)),
        pc.binary_join_element_wise("www.example.com/", idx, ".jpg", ""),
        url,
    )
    words = WORDS[(ids[:, None] * np.array([7, 13, 29, 31, 37, 41]) // 3) % len(WORDS)]
    caption = pc.binary_join_element_wise(*[pa.array(words[:, j]) for j in range(6)], idx, " ")
    return pa.table(
        {
            "URL": url,
            "TEXT": caption,
            "WIDTH": pa.array(256 + ids % 1024, pa.int64()),
            "similarity": pa.array((ids % 1000) / 1000.0 * 0.2 + 0.25),
        }
    )


def generate(rows: int) -> tuple[Path, Path]:
    """The csv.gz and parquet inputs, reused when already there."""
    WORK.mkdir(parents=True, exist_ok=True)
    csv_path, pq_path = WORK / f"urls_{rows}.csv.gz", WORK / f"urls_{rows}.parquet"
    if csv_path.exists() and pq_path.exists():
        return csv_path, pq_path
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    tmp_csv, tmp_pq = csv_path.with_suffix(".tmp"), pq_path.with_suffix(".tmp")
    with pa.CompressedOutputStream(str(tmp_csv), "gzip") as out:
        writer, pq_writer = None, None
        for first in range(0, rows, CHUNK):
            table = _chunk(first, min(CHUNK, rows - first), rng)
            if writer is None:
                writer = pacsv.CSVWriter(out, table.schema)
                pq_writer = pq.ParquetWriter(tmp_pq, table.schema, compression="zstd")
            writer.write_table(table)
            pq_writer.write_table(table, row_group_size=100_000)
        writer.close()
        pq_writer.close()
    tmp_csv.rename(csv_path)
    tmp_pq.rename(pq_path)
    print(f"generated {rows:,} rows in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return csv_path, pq_path


def measure(cmd: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MiB) of one subprocess, from its own rusage (wait4).

    CPU seconds (user + system, all threads) say more than wall time on a shared, loaded machine."""
    start = time.perf_counter()
    with open(WORK / "stderr.log", "w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        if status:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed:\n{err.read()}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def run_curate(src: Path, rows: int) -> dict:
    out = WORK / f"out_{src.name.replace('.', '_')}"
    shutil.rmtree(out, ignore_errors=True)
    seconds, cpu, rss = measure(
        [
            sys.executable,
            "-m",
            "curate",
            "-q",
            "manifest",
            str(src),
            "-o",
            str(out),
            "--keep-cols",
            "WIDTH,similarity",
        ]
    )
    summary = json.loads(Path(sidecar(str(out), SUMMARY)).read_text())
    shutil.rmtree(out, ignore_errors=True)
    return {
        "input": src.name,
        "rows": rows,
        "size_mib": round(src.stat().st_size / 2**20),
        "curate_seconds": round(seconds, 1),
        "curate_cpu_seconds": round(cpu, 1),
        "curate_rows_per_s": round(rows / seconds),
        "curate_rows_per_cpu_s": round(rows / cpu),
        "curate_peak_rss_mib": round(rss),
        "duplicates": summary["duplicates"],
        "status": summary["status"],
        "dedupe_index_mib": round(summary["dedupe_index_bytes"] / 2**20),
    }


def run_anchor(src: Path, rows: int) -> dict:
    out = WORK / "anchor.parquet"
    seconds, cpu, rss = measure([sys.executable, "-c", ANCHOR, str(src), str(out)])
    out.unlink()
    return {
        "anchor_seconds": round(seconds, 1),
        "anchor_cpu_seconds": round(cpu, 1),
        "anchor_rows_per_s": round(rows / seconds),
        "anchor_rows_per_cpu_s": round(rows / cpu),
        "anchor_peak_rss_mib": round(rss),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument(
        "--small-rows",
        type=int,
        default=1_000_000,
        help="also run curate on this many rows, to show how memory grows with the input",
    )
    args = parser.parse_args()
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    seconds, cpu, rss = measure([sys.executable, "-m", "curate", "--help"])
    print(
        json.dumps(
            {
                "cli_startup": "python -m curate --help",
                "seconds": round(seconds, 1),
                "cpu_seconds": round(cpu, 1),
                "peak_rss_mib": round(rss),
            }
        ),
        flush=True,
    )
    for rows in filter(None, (args.small_rows, args.rows)):
        for src in generate(rows):
            result = run_curate(src, rows)
            if rows == args.rows:
                result.update(run_anchor(src, rows))
            print(json.dumps(result), flush=True)
    print(f"# done, load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

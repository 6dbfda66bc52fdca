"""Benchmark the inspect layer (`curate stats`, a GROUP BY through `curate sql` views) at 1M and 10M rows.

A dataset with the full layout is generated (manifest, shards without image bytes, five signal sets,
clusters, one recipe's decisions) by DuckDB COPY ... PARTITION_BY, 10k rows per shard as `curate
download` writes them. Each measurement runs in a fresh subprocess (peak RSS from wait4); the query
time excludes interpreter start-up, the CLI time includes it; CPU seconds (user + system, all threads)
are reported beside wall time because the shared development machine is rarely idle. Anchors in the same
run: the same GROUP BY with DuckDB reading the shard files directly (no views, no read-only filesystem), and
with pyarrow (read two columns, Table.group_by). (Not named inspect.py: a script of that name would
shadow the standard library's `inspect` module for everything it imports.)

    # 1M and 10M rows; data kept under benchmarks/_work/
    python benchmarks/inspect_views.py
    python benchmarks/inspect_views.py --rows 1000000 --threads 2
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

from curate.dataset import stats_path

WORK = Path(__file__).resolve().parent / "_work"
GROUP_BY = "SELECT status, error_class, count(*) AS n FROM samples GROUP BY ALL ORDER BY n DESC"

_ROWS = """SELECT i, md5(i::VARCHAR) AS uid, lpad((i // {rps})::VARCHAR, 5, '0') AS shard,
                  'https://img' || (hash(i) % 5000) || '.example.com/images/' || i || '.jpg' AS url,
                  'a photo of the ' || ['red', 'blue', 'old', 'small'][i % 4 + 1] || ' ' ||
                      ['dog', 'cat', 'house', 'tree', 'car', 'beach', 'street'][i % 7 + 1] || ' ' ||
                      i AS caption,
                  CASE WHEN i % 100 < 78 THEN 'success' WHEN i % 100 < 98 THEN 'failed' ELSE 'skipped' END
                      AS status,
                  (64 + hash(i) % 900)::INTEGER AS width, (64 + hash(i * 7) % 700)::INTEGER AS height
           FROM range({rows}) t(i)"""

TABLES = {
    "manifest": "SELECT shard, uid, url, caption, 'ok' AS status FROM r",
    "shards": """SELECT shard, uid, url, caption, status,
                   CASE status WHEN 'failed'
                                   THEN ['http_4xx', 'timeout', 'dns', 'connect', 'not_an_image'][i % 5 + 1]
                               WHEN 'skipped' THEN 'opted_out' END AS error_class,
                   NULL::VARCHAR AS error_message,
                   CASE WHEN status = 'success' THEN 200 END::INTEGER AS http_status,
                   NULL::VARCHAR AS final_url, 'image/jpeg' AS content_type, NULL::BLOB AS image,
                   CASE WHEN status = 'success' THEN width END AS width,
                   CASE WHEN status = 'success' THEN height END AS height,
                   CASE WHEN status = 'success' THEN width END AS original_width,
                   CASE WHEN status = 'success' THEN height END AS original_height,
                   CASE WHEN status = 'success' THEN 'jpeg' END AS image_format,
                   CASE WHEN status = 'success' THEN md5(uid) || md5(url) END AS sha256,
                   CASE WHEN status = 'success' THEN (width * height // 8)::BIGINT END AS bytes,
                   TIMESTAMPTZ '2026-11-23 00:00:00+00' AS fetched_at FROM r""",
    "signals/image": """SELECT shard, uid, width, height,
                          (greatest(width, height) / least(width, height))::FLOAT AS aspect,
                          (width * height // 8)::BIGINT AS bytes, 'jpeg' AS format, i % 500 = 0 AS is_blank
                        FROM r WHERE status = 'success'""",
    "signals/hashes": "SELECT shard, uid, md5(uid) || md5(url) AS sha256, (hash(i) >> 1)::BIGINT AS phash "
    "FROM r WHERE status = 'success'",
    "signals/language": """SELECT shard, uid,
                             ['en', 'en', 'en', 'de', 'fr', 'es', 'ja', 'zh', 'ru', 'pt'][i % 10 + 1]
                             AS language, (0.3 + (hash(i) % 70) / 100)::FLOAT AS language_score,
                             'fasttext' AS language_backend FROM r""",
    "signals/nsfw": """SELECT shard, uid, ((hash(i) % 1000) / 1000)::FLOAT AS nsfw_image,
                         ((hash(i * 3) % 100) / 1000)::FLOAT AS nsfw_text,
                         []::VARCHAR[] AS nsfw_text_terms FROM r""",
    "signals/caption": """SELECT shard, uid, length(caption)::INTEGER AS caption_chars, 6 AS caption_words,
                            false AS caption_is_filename, false AS caption_is_url, false AS caption_has_html,
                            i % 200 = 0 AS caption_is_boilerplate FROM r""",
    "decisions": """SELECT uid, status = 'success' AND i % 10 < 3 AS keep,
                      CASE WHEN status <> 'success' THEN ['download_failed']
                           WHEN i % 10 >= 3 THEN ['language', 'image_too_small'][1:1 + i % 2] ELSE [] END
                      AS reasons
                    FROM r""",
    "clusters": """SELECT uid, (CASE WHEN i % 33 = 1 THEN i - 1 ELSE i END)::BIGINT AS cluster_id,
                     CASE WHEN i % 33 = 1 THEN md5((i - 1)::VARCHAR) ELSE uid END AS representative_uid,
                     i % 33 <> 1 AS is_representative, CASE WHEN i % 33 = 1 THEN 'near' END AS duplicate_kind,
                     (CASE WHEN i % 33 = 1 THEN 3 ELSE 0 END)::SMALLINT AS distance_to_representative,
                     NULL::VARCHAR AS against_dataset FROM r WHERE status = 'success'""",
}

DRIVER = r"""
import json, sys, time
mode, ds, threads, query = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
t0 = time.perf_counter()
if mode == "curate-stats":
    from curate.inspect.stats import compute_stats
    t1 = time.perf_counter()
    s = compute_stats(ds, threads=threads)
    out = {"rows": s["download"]["rows"]}
elif mode in ("curate-sql", "curate-sql-trusted"):
    from curate.inspect import sql
    t1 = time.perf_counter()
    trusted = mode == "curate-sql-trusted"  # as `curate sql` opens it: native reads, only the views named
    con, _ = sql.open_views(
        ds, threads=threads, trusted=trusted, views=sql.referenced_views(query) if trusted else None
    )
    out = {"result_rows": len(con.sql(query).fetchall())}
    sql.close(con)
elif mode == "duckdb-direct":
    import duckdb
    t1 = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    q = query.replace("FROM samples", f"FROM read_parquet('{ds}/shards/*.parquet')")
    out = {"result_rows": len(con.sql(q).fetchall())}
else:  # pyarrow
    import glob, pyarrow as pa, pyarrow.parquet as pq
    pa.set_cpu_count(threads); pa.set_io_thread_count(threads)
    t1 = time.perf_counter()
    t = pq.read_table(sorted(glob.glob(f"{ds}/shards/*.parquet")), columns=["status", "error_class"])
    out = {"result_rows": t.group_by(["status", "error_class"]).aggregate([("status", "count")]).num_rows}
out["import_seconds"] = round(t1 - t0, 3)
out["seconds"] = round(time.perf_counter() - t1, 3)
print(json.dumps(out))
"""


def generate(rows: int, rows_per_shard: int) -> Path:
    """The dataset for `rows` under benchmarks/_work (reused when complete)."""
    import duckdb

    root = WORK / f"inspect-{rows}"
    if (root / "COMPLETE").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    start = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"CREATE TEMP VIEW r AS {_ROWS.format(rows=rows, rps=rows_per_shard)}")
    for name, select in TABLES.items():
        if name in ("decisions", "clusters"):
            target = root / (
                "decisions/bench.parquet" if name == "decisions" else "signals/dedup/clusters.parquet"
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            con.execute(f"COPY ({select}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
            continue
        tmp = root / f".tmp-{name.replace('/', '-')}"
        con.execute(f"COPY ({select}) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (shard))")
        final = root / name
        final.mkdir(parents=True, exist_ok=True)
        for part in sorted(
            tmp.iterdir()
        ):  # shard=00012/data_0.parquet -> 00012.parquet (part-00012 in manifest)
            key = part.name.split("=", 1)[1]
            name_out = f"part-{key}.parquet" if name == "manifest" else f"{key}.parquet"
            (part / os.listdir(part)[0]).rename(final / name_out)
        shutil.rmtree(tmp)
    per_shard: dict[str, dict[str, int]] = {}
    for key, status, n in con.execute("SELECT shard, status, count(*) FROM r GROUP BY 1, 2").fetchall():
        per_shard.setdefault(key, {})[status] = n
    for key, counts in per_shard.items():
        stats = {"key": key, "rows": sum(counts.values()), "status": counts}
        marker = Path(stats_path(str(root / "shards"), key))
        marker.parent.mkdir(exist_ok=True)
        marker.write_text(json.dumps(stats))
    (root / "COMPLETE").write_text(f"{time.perf_counter() - start:.1f} s\n")
    print(f"generated {rows:,} rows in {root} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return root


def measure(argv: list[str]) -> dict:
    """Run argv in a subprocess; wall seconds, peak RSS (MB) and its JSON output (if any)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out, err = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed: {err[-2000:]}")
    result = {
        "wall_seconds": round(wall, 3),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }
    try:
        result.update(json.loads(out.strip().splitlines()[-1]))
    except (json.JSONDecodeError, IndexError):
        pass
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--rows-per-shard", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is reported")
    args = parser.parse_args()
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load": os.getloadavg(),
        "threads": args.threads,
        "group_by": GROUP_BY,
        "runs": {},
    }
    for rows in args.rows:
        ds = str(generate(rows, args.rows_per_shard))
        runs = {
            "curate stats (in process)": [
                sys.executable,
                "-c",
                DRIVER,
                "curate-stats",
                ds,
                str(args.threads),
                "",
            ],
            "curate stats --json (CLI)": [
                sys.executable,
                "-m",
                "curate",
                "stats",
                ds,
                "--json",
                "--threads",
                str(args.threads),
            ],
            "sql.connect() GROUP BY (read-only fs)": [
                sys.executable,
                "-c",
                DRIVER,
                "curate-sql",
                ds,
                str(args.threads),
                GROUP_BY,
            ],
            "curate sql GROUP BY (in process)": [
                sys.executable,
                "-c",
                DRIVER,
                "curate-sql-trusted",
                ds,
                str(args.threads),
                GROUP_BY,
            ],
            "curate sql GROUP BY (CLI)": [
                sys.executable,
                "-m",
                "curate",
                "sql",
                ds,
                GROUP_BY,
                "--threads",
                str(args.threads),
            ],
            "anchor: duckdb on the shard files": [
                sys.executable,
                "-c",
                DRIVER,
                "duckdb-direct",
                ds,
                str(args.threads),
                GROUP_BY,
            ],
            "anchor: pyarrow read + group_by": [
                sys.executable,
                "-c",
                DRIVER,
                "pyarrow",
                ds,
                str(args.threads),
                "",
            ],
        }
        for label, argv in runs.items():
            best = min(
                (measure(argv) for _ in range(args.repeat)), key=lambda r: r.get("seconds", r["wall_seconds"])
            )
            best.pop("rows", None)
            results["runs"][f"{rows:,} rows: {label}"] = best
            print(f"{rows:>11,} rows  {label:<36} {json.dumps(best)}", file=sys.stderr)
    results["load_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""The whole chain on object storage and on Ray, interrupted runs, unwritable outputs, concurrent runs.

Everything is real: a synthetic web on 127.0.0.1, moto's S3 server on 127.0.0.1, a local 2-CPU Ray.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from curate.dataset import Dataset, stats_files, stats_path
from curate.demo import to_toml
from curate.run import run_pipeline
from curate.synthweb import SyntheticWeb

pytestmark = pytest.mark.slow

STAGES = ["ingest", "download", "annotate", "dedup", "filter", "export"]


@pytest.fixture(scope="module")
def web():
    with SyntheticWeb(n_images=48, seed=3, faults=False) as served:
        yield served


def _recipe(urls: Path, **download) -> dict:
    return {
        "name": "scaletest",
        "input": {"urls": [str(urls)], "rows_per_part": 12},
        "download": {"allow_networks": ["127.0.0.1/32"], "image_size": 96, **download},
        "annotate": {"signals": ["image", "hashes", "language", "caption"]},
        "filter": {
            "languages": ["en", "de", "fr", "es"],
            "min_caption_words": 2,
            "drop_near_duplicates": True,
        },
        "export": {"format": "parquet", "samples_per_shard": 20},
    }


def _outcome(root: str) -> dict:
    """What must not depend on where or how the run happened: rows, statuses, signals, decisions."""
    ds = Dataset(root)
    con = duckdb.connect()
    if "://" in root:
        import fsspec

        con.register_filesystem(fsspec.filesystem("s3"))

    def rows(query: str) -> list:
        return con.sql(query).fetchall()

    return {
        "shards": rows(
            f"SELECT uid, status, error_class, sha256, width, height FROM '{ds.shards_dir}/*.parquet' "
            "ORDER BY uid"
        ),
        "hashes": rows(f"SELECT uid, phash FROM '{ds.signals_dir('hashes')}/*.parquet' ORDER BY uid"),
        "language": rows(f"SELECT uid, language FROM '{ds.signals_dir('language')}/*.parquet' ORDER BY uid"),
        "decisions": rows(
            f"SELECT uid, keep, reasons FROM '{ds.decisions_dir}/scaletest.parquet' ORDER BY uid"
        ),
    }


@pytest.fixture(scope="module")
def local_run(web, tmp_path_factory):
    base = tmp_path_factory.mktemp("local")
    web.write_url_list(base / "urls.parquet")
    root = str(base / "ds")
    run_pipeline(_recipe(base / "urls.parquet"), dataset=root, stages=STAGES, workers=2)
    return base, _outcome(root)


def test_local_run_keeps_every_row(web, local_run):
    _, outcome = local_run
    assert len(outcome["shards"]) == len(web.manifest_rows())
    assert len({uid for uid, *_ in outcome["shards"]}) == len(outcome["shards"])
    assert {status for _, status, *_ in outcome["shards"]} == {"success"}
    assert len(outcome["decisions"]) == len(outcome["shards"])


def test_run_on_s3_matches_local(web, local_run, s3_endpoint):
    base, expected = local_run
    root = "s3://curate-test/scale-ds"
    result = run_pipeline(_recipe(base / "urls.parquet"), dataset=root, stages=STAGES, workers=2)
    assert _outcome(root) == expected
    assert result.stages["export"]["samples"] == sum(keep for _, keep, _ in expected["decisions"])


def test_run_on_ray_matches_local(web, local_run, tmp_path):
    pytest.importorskip("ray")
    base, expected = local_run
    root = str(tmp_path / "ray-ds")
    os.environ.pop("RAY_ADDRESS", None)
    run_pipeline(_recipe(base / "urls.parquet"), dataset=root, stages=STAGES, executor="ray", workers=2)
    assert _outcome(root) == expected


def _curate(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "curate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_interrupted_run_resumes_to_the_same_result(web, local_run, tmp_path):
    base, expected = local_run
    # Slow fetches (one connection per host, a thread each) leave time to kill the run mid-download.
    recipe = _recipe(base / "urls.parquet", max_connections_per_host=1, threads=1)
    recipe_path = tmp_path / "recipe.toml"
    recipe_path.write_text(to_toml(recipe))
    root = tmp_path / "ds"
    proc = _curate(
        "run", str(recipe_path), "--dataset", str(root), "--stages", ",".join(STAGES), "--workers", "1"
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(stats_files(str(root / "shards"))) < 1:
        time.sleep(0.05)
    done_before_kill = len(stats_files(str(root / "shards")))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 1 <= done_before_kill < 4, "the run should have been killed mid-download"
    for shard in (root / "shards").glob("[0-9]*.parquet"):  # a killed run leaves no truncated shard
        assert pq.read_metadata(shard).num_rows > 0
    (root / ".lock").unlink(
        missing_ok=True
    )  # the killed process held it; a rerun would also clear it as stale
    rerun = _curate(
        "run", str(recipe_path), "--dataset", str(root), "--stages", ",".join(STAGES), "--workers", "1"
    )
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert _outcome(str(root)) == expected


def test_unwritable_output_is_a_clear_error(local_run, tmp_path):
    base, _ = local_run
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the dataset folder should be")
    proc = _curate("manifest", str(base / "urls.parquet"), "-o", str(blocker / "manifest"))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in err
    assert "not-a-folder" in err


def test_second_run_on_the_same_dataset_is_refused(local_run, tmp_path):
    base, _ = local_run
    ds = Dataset(str(tmp_path / "ds"))
    with ds.lock("download"):  # this process is the first run, holding the dataset
        proc = _curate(
            "download", str(base / "urls.parquet"), "-o", ds.root, "--allow-networks", "127.0.0.1/32"
        )
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "in use by another run" in err and "Traceback" not in err
    assert not Path(ds.shards_dir).exists() or not list(Path(ds.shards_dir).glob("*.parquet"))


def test_output_that_runs_out_of_space_keeps_finished_shards_and_resumes(web, tmp_path):
    """A disk that fills up mid-run. A real full filesystem needs root to mount; the kernel's per-process
    file-size limit (RLIMIT_FSIZE) makes the same writes fail the same way (the write syscall errors)."""
    import resource

    web.write_url_list(tmp_path / "urls.parquet")
    manifest = _curate(
        "manifest", str(tmp_path / "urls.parquet"), "-o", str(tmp_path / "manifest"), "--rows-per-part", "30"
    )
    assert manifest.wait(timeout=120) == 0
    args = (
        "download",
        str(tmp_path / "manifest"),
        "-o",
        str(tmp_path / "ds"),
        "--allow-networks",
        "127.0.0.1/32",
        "--image-size",
        "96",
        "--workers",
        "1",
        "--retries",
        "0",
    )

    def small_disk() -> None:  # larger than the 8-row shard, smaller than the 30-row ones
        resource.setrlimit(resource.RLIMIT_FSIZE, (70_000, 70_000))

    out, err = _curate(*args, preexec_fn=small_disk).communicate(timeout=180)
    shards = tmp_path / "ds" / "shards"
    done = sorted(p.name for p in shards.glob("[0-9]*.parquet"))
    assert "Traceback" not in err and "File too large" in out and "rerun the same command" in out
    assert done == ["00002.parquet"] and Path(stats_path(str(shards), "00002")).exists()
    assert pq.read_metadata(shards / "00002.parquet").num_rows == 8  # the finished shard is intact
    written = [*shards.iterdir(), *(shards / ".curate").iterdir()]
    partial = [p for p in written if p.name != ".curate" and (p.name.startswith(".") or "tmp" in p.name)]
    assert not partial  # no partial files, beside the shards or among their stats

    out, err = _curate(*args).communicate(timeout=180)
    assert "Traceback" not in err, err

    def uids(paths) -> list[str]:
        return [uid for p in sorted(paths) for uid in pq.read_table(p, columns=["uid"])["uid"].to_pylist()]

    rows = uids(shards.glob("[0-9]*.parquet"))
    assert len(rows) == len(set(rows)) and sorted(rows) == sorted(
        uids((tmp_path / "manifest").glob("part-*.parquet"))
    )

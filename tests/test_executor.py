"""Executors: markers, resume, retries, crashed workers, a killed run, and Ray giving the same outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from executor_jobs import jobs, shard_table, write_shard

from curate.errors import CurateError
from curate.executor import execute

TESTS = Path(__file__).resolve().parent


def calls(out: Path) -> list[str]:
    return (out / "calls.log").read_text().split() if (out / "calls.log").exists() else []


def outputs(out: Path) -> dict[str, list]:
    """Finished shard outputs (temporary files excluded), as {key: rows}."""
    return {p.stem: pq.read_table(p).to_pylist() for p in sorted(out.glob("shard-*.parquet"))}


def expected(n: int, rows: int = 5) -> dict[str, list]:
    return {f"shard-{i:03d}": shard_table(f"shard-{i:03d}", rows).to_pylist() for i in range(n)}


@pytest.mark.parametrize("workers", [1, 2])
def test_runs_all_jobs_and_writes_markers(tmp_path, workers):
    summary = execute(
        write_shard, jobs(tmp_path, 6, rows=3), workers=workers, summary_path=str(tmp_path / "run.json")
    )
    assert outputs(tmp_path) == expected(6, rows=3)
    for i in range(6):
        marker = json.loads((tmp_path / f"shard-{i:03d}.stats.json").read_text())
        assert marker["key"] == f"shard-{i:03d}" and marker["rows"] == 3 and marker["seconds"] >= 0
    assert (summary.total, summary.done, summary.skipped, summary.failed) == (6, 6, 0, {})
    assert summary.stats["rows"] == 18 and summary.stats["nested"] == {"shards": 6}
    assert json.loads((tmp_path / "run.json").read_text())["jobs_done"] == 6
    assert sorted(calls(tmp_path)) == [f"shard-{i:03d}" for i in range(6)]


def test_rerun_skips_finished_jobs(tmp_path):
    execute(write_shard, jobs(tmp_path, 5), workers=2)
    (tmp_path / "shard-003.stats.json").unlink()
    (tmp_path / "shard-003.parquet").unlink()
    (tmp_path / "calls.log").unlink()
    summary = execute(write_shard, jobs(tmp_path, 5), workers=2)
    assert calls(tmp_path) == ["shard-003"]
    assert (summary.done, summary.skipped) == (1, 4)
    assert summary.stats["rows"] == 25  # finished jobs' stats come from their markers
    assert outputs(tmp_path) == expected(5)


@pytest.mark.parametrize("workers", [1, 2])
def test_failing_job_is_retried_then_reported_while_others_finish(tmp_path, workers):
    todo = jobs(tmp_path, 4)
    todo[1] = type(todo[1])(todo[1].key, todo[1].stats_path, {**todo[1].payload, "fail_times": 99})
    todo[2] = type(todo[2])(todo[2].key, todo[2].stats_path, {**todo[2].payload, "fail_times": 1})
    summary = execute(write_shard, todo, workers=workers, retries=2)
    assert list(summary.failed) == ["shard-001"]
    assert "RuntimeError: planned failure 3 of shard-001" in summary.failed["shard-001"]
    assert calls(tmp_path).count("shard-001") == 3  # first try + 2 retries
    assert calls(tmp_path).count("shard-002") == 2  # failed once, then succeeded
    assert not (tmp_path / "shard-001.stats.json").exists()
    assert set(outputs(tmp_path)) == {"shard-000", "shard-002", "shard-003"}
    assert summary.done == 3
    with pytest.raises(CurateError, match="1 shards failed; first: shard-001"):
        execute(write_shard, todo, workers=workers, retries=0, strict=True)


def test_worker_killed_by_sigkill_is_recovered(tmp_path):
    todo = jobs(tmp_path, 6, sleep=0.05)
    todo[2] = type(todo[2])(todo[2].key, todo[2].stats_path, {**todo[2].payload, "kill_first": True})
    summary = execute(write_shard, todo, workers=2, retries=2)
    assert summary.failed == {} and summary.done == 6
    assert calls(tmp_path).count("shard-002") == 2
    assert outputs(tmp_path) == expected(6)


def test_job_that_always_kills_its_worker_is_reported_and_spares_the_others(tmp_path):
    todo = jobs(tmp_path, 5, sleep=0.2)
    bad = todo[0]
    todo[0] = type(bad)(bad.key, bad.stats_path, {**bad.payload, "kill_always": True})
    summary = execute(write_shard, todo, workers=2, retries=1)
    assert list(summary.failed) == ["shard-000"]
    assert "worker process died" in summary.failed["shard-000"]
    # lost once with the shared pool (not charged), then charged for each of its 2 runs alone
    assert calls(tmp_path).count("shard-000") == 3
    assert outputs(tmp_path) == {k: v for k, v in expected(5).items() if k != "shard-000"}
    assert summary.done == 4


@pytest.mark.slow
def test_resume_after_killing_the_whole_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "executor_jobs", str(tmp_path), "20", "0.25"]
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("shard-*.stats.json"))) < 5:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, mid-run
        proc.wait()
    # Count finished markers only: a killed run may leave .tmp-* files, which readers ignore.
    done_before = {p.name.split(".")[0] for p in tmp_path.glob("shard-*.stats.json")}
    assert 5 <= len(done_before) < 20
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["jobs_skipped_already_done"] == len(done_before)
    assert summary["jobs_done"] == 20 - len(done_before) and summary["jobs_failed"] == {}
    assert outputs(tmp_path) == expected(20)  # every shard exactly once, with its content
    log = calls(tmp_path)
    assert all(log.count(key) == 1 for key in done_before)  # finished shards were not redone
    assert sorted(set(log)) == sorted(expected(20))


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(TESTS)}},
    )
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_gives_the_same_outputs_as_local(tmp_path, local_ray):
    local_dir, ray_dir = tmp_path / "local", tmp_path / "ray"
    local_dir.mkdir()
    ray_dir.mkdir()
    faults = {"shard-004": {"fail_times": 1}, "shard-006": {"kill_first": True}}

    def with_failure(out):
        return [  # one job raises once, one kills its worker once
            type(j)(j.key, j.stats_path, {**j.payload, **faults.get(j.key, {})}) for j in jobs(out, 8, rows=7)
        ]

    local = execute(write_shard, with_failure(local_dir), executor="local", workers=2, retries=2)
    remote = execute(write_shard, with_failure(ray_dir), executor="ray", workers=2, retries=2)
    assert local_ray.is_initialized()  # the executor reused the running Ray and left it running
    assert outputs(ray_dir) == outputs(local_dir) == expected(8, rows=7)
    assert (remote.done, remote.failed, remote.stats["rows"]) == (
        local.done,
        local.failed,
        local.stats["rows"],
    )
    assert calls(ray_dir).count("shard-004") == 2  # raised, then retried by the executor
    assert calls(ray_dir).count("shard-006") == calls(local_dir).count("shard-006") == 2  # worker died, rerun
    for i in range(8):
        a = json.loads((local_dir / f"shard-{i:03d}.stats.json").read_text())
        b = json.loads((ray_dir / f"shard-{i:03d}.stats.json").read_text())
        a.pop("seconds"), b.pop("seconds")
        assert a == b

"""A `kill -9` of the driver ends its worker processes, and a dataset lock is taken over only once no
process of the old run is alive (real `curate download` runs against a slow loopback server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from download_server import FaultServer
from test_download import write_manifest

from curate.dataset import Dataset
from curate.errors import CurateError

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to see processes")


def running(pid: int) -> bool:
    """Whether `pid` exists and has not exited (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def lock_workers(lock: Path) -> list[int]:
    if not lock.exists():
        return []
    return [
        int(line.rpartition(":")[2]) for line in lock.read_text().splitlines() if line.startswith("worker ")
    ]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_kill_9_of_the_driver_ends_its_workers_and_frees_the_lock(tmp_path):
    ds = tmp_path / "ds"
    lock = ds / ".lock"
    workers: list[int] = []
    with FaultServer() as server:
        urls = [server.url(f"/img/{i}.jpg?delay=30") for i in range(16)]  # every response takes 30 s
        manifest = write_manifest(tmp_path / "m", urls, parts=4)
        cmd = [
            sys.executable,
            "-m",
            "curate",
            "-q",
            "download",
            str(manifest),
            "-o",
            str(ds),
            "--allow-networks",
            "127.0.0.1/32",
            "--workers",
            "2",
            "--threads",
            "2",
            "--total-timeout",
            "60",
            "--read-timeout",
            "60",
        ]
        driver = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        try:
            wait_for(
                lambda: len(lock_workers(lock)) == 2 and server.active >= 2 or driver.poll() is not None,
                60,
                "the workers never started downloading",
            )
            assert driver.poll() is None, driver.stderr.read().decode()
            workers = lock_workers(lock)
            assert all(running(pid) for pid in workers)
            os.kill(driver.pid, signal.SIGKILL)  # the driver only: its workers are left to notice
            driver.wait()
            wait_for(lambda: not any(running(pid) for pid in workers), 5, "workers outlived their driver")
        finally:
            kill_all([driver.pid, *workers])
            driver.wait()
            driver.stderr.close()
    assert lock.exists()  # the killed run's lock stays behind; no process of that run is alive
    with Dataset(str(ds)).lock("download"):
        assert lock.read_text().split(":")[1] == str(os.getpid())


def test_a_lock_whose_worker_still_runs_is_not_taken_over(tmp_path):
    ds = Dataset(str(tmp_path))
    lock = tmp_path / ".lock"
    # A driver that takes the lock and stays, and a worker of its run that joins the lock as pool workers do.
    driver = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import time
        from curate.dataset import Dataset
        with Dataset({str(tmp_path)!r}).lock("download"):
            print("locked", flush=True)
            time.sleep(120)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    worker = None
    try:
        assert driver.stdout.readline().strip() == "locked"
        join = "import sys, time; from curate import runlock; runlock.join(sys.argv[1]); print('joined')"
        worker = subprocess.Popen(
            [sys.executable, "-u", "-c", join + "; time.sleep(120)", str(lock)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert worker.stdout.readline().strip() == "joined"
        assert lock_workers(lock) == [worker.pid]
        driver.kill()
        driver.wait()
        with pytest.raises(CurateError, match=rf"in use by another run .*workers .*:{worker.pid}"):
            with ds.lock("download"):
                pass
        assert lock.read_text().startswith(f"{os.uname().nodename}:{driver.pid}:")  # left as it was
        worker.kill()
        worker.wait()
        with ds.lock("annotate"):
            assert lock.read_text().split(":")[1] == str(os.getpid())
    finally:
        for proc in (driver, worker):
            if proc is not None:
                proc.kill()
                proc.wait()
                proc.stdout.close()


def test_a_lock_whose_driver_pid_runs_is_not_taken_over_even_without_its_flock(tmp_path):
    # A lock whose holder recorded a live pid but holds no flock (written by hand, or by an older curate).
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (tmp_path / ".lock").write_text(f"{os.uname().nodename}:{sleeper.pid}:download\n")
        with pytest.raises(CurateError, match=f"still running: .*:{sleeper.pid}"):
            with Dataset(str(tmp_path)).lock("download"):
                pass
    finally:
        sleeper.kill()
        sleeper.wait()

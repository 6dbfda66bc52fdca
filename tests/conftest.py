"""Shared fixtures: the real-data reference folder and reference wheels.

Each is skipped with a reason where absent.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Real crawl files, URL lists and multilingual sentences that some tests read. They are not part of the
# project: point CURATE_REFERENCE_DATA at a folder holding data/ and reference/ (default: `shared` beside
# the clone); tests that need it skip with a reason where it is absent.
REFERENCE_DATA = Path(os.environ.get("CURATE_REFERENCE_DATA", ROOT.parent / "shared"))
REFERENCE_WHEELS = ROOT / ".cache" / "reference"
OPEN_CLIP_WHEEL = "open_clip_torch==3.3.0"


def shared_path(*parts: str) -> Path:
    """A file of the real-data reference folder, or skip the test saying why."""
    path = REFERENCE_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (set CURATE_REFERENCE_DATA to the real-data reference folder)")
    return path


def open_clip_wheel_path() -> Path:
    """open_clip's PyPI wheel, the reference implementation several tests compare against.

    It is never installed (its torchvision does not import beside the CPU torch); tests load single modules
    from it. Fetched once from the package registry into .cache/reference, or the test skips saying why.
    """
    pattern = str(REFERENCE_WHEELS / "open_clip_torch-3.3.0-*.whl")
    if not glob.glob(pattern):
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--dest",
            str(REFERENCE_WHEELS),
            OPEN_CLIP_WHEEL,
        ]
        try:
            subprocess.run(command, check=True, timeout=300, capture_output=True)
        except (subprocess.SubprocessError, OSError) as error:
            pytest.skip(f"open_clip's wheel could not be fetched ({error}): run {' '.join(command[1:])}")
    wheels = sorted(glob.glob(pattern))
    if not wheels:
        pytest.skip(f"no {OPEN_CLIP_WHEEL} wheel in {REFERENCE_WHEELS}")
    return Path(wheels[-1])


@pytest.fixture(scope="session")
def open_clip_wheel() -> Path:
    return open_clip_wheel_path()


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3-compatible server (moto's server mode) on 127.0.0.1, with fsspec pointed at it.

    Yields the endpoint URL; the bucket `curate-test` exists. The server process is stopped by PID.
    """
    import os
    import socket
    import subprocess
    import sys
    import time

    import requests

    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("moto")
    pytest.importorskip("s3fs")
    import fsspec

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                requests.get(endpoint, timeout=0.5)
                break
            except requests.RequestException:  # not up yet, or (under load) slow to answer its first request
                time.sleep(0.05)
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "FSSPEC_S3_ENDPOINT_URL": endpoint,
        }
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        fsspec.config.conf.setdefault("s3", {})["endpoint_url"] = endpoint
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="curate-test")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        fsspec.config.conf.get("s3", {}).pop("endpoint_url", None)
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs for one test module, shut down after it."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()

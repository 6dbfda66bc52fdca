"""Shared fixtures: paths to ../shared data (skipped with a reason where absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or skip the test saying why."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared real-data folder is not beside this clone)")
    return path


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
            except requests.ConnectionError:
                time.sleep(0.05)
        env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
               "FSSPEC_S3_ENDPOINT_URL": endpoint}
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

"""Atomic writes, the dataset layout and its lock, on a local disk and on a real S3 server (moto)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pyarrow as pa
import pytest

from curate import storage
from curate.dataset import Dataset
from curate.errors import CurateError
from curate.schema import make_uid


def test_uid_is_stable_and_distinguishes_fields():
    assert make_uid("http://a/x.jpg", "a cat") == make_uid("http://a/x.jpg", "a cat")
    assert len(make_uid("http://a/x.jpg", "a cat")) == 32
    # The documented formula (docs/FORMAT.md), computed independently: changing it breaks joins across runs.
    documented = hashlib.blake2b(b"http://a/x.jpg\x1fa cat", digest_size=16).hexdigest()
    assert make_uid("http://a/x.jpg", "a cat") == documented
    assert make_uid("http://a/x.jpg", "a cat") != make_uid("http://a/x.jpg", "a dog")
    assert make_uid("http://a/x.jpgx", "") != make_uid("http://a/x.jpg", "x")
    assert make_uid("http://a/x.jpg", None) == make_uid("http://a/x.jpg", "")


def test_uid_same_in_another_process():
    code = "from curate.schema import make_uid; print(make_uid('https://h/ü.png', 'caption ü'))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == make_uid("https://h/ü.png", "caption ü")


def test_atomic_parquet_write_leaves_no_temp_files(tmp_path):
    path = str(tmp_path / "shards" / "00000.parquet")
    storage.write_parquet_atomic(pa.table({"a": [1, 2, 3]}), path)
    storage.write_parquet_atomic(pa.table({"a": [4]}), path)
    assert storage.read_parquet(path).column("a").to_pylist() == [4]
    assert os.listdir(tmp_path / "shards") == ["00000.parquet"]


def test_list_files_ignores_temporary_names(tmp_path):
    (tmp_path / "00001.parquet").write_bytes(b"x")
    (tmp_path / ".tmp-abc-00002.parquet").write_bytes(b"x")
    assert storage.list_files(str(tmp_path), ".parquet") == [f"{tmp_path}/00001.parquet"]


def test_lock_refuses_a_second_writer_and_clears_stale_locks(tmp_path):
    ds = Dataset(str(tmp_path))
    with ds.lock("download"), pytest.raises(CurateError, match="in use by another run"), ds.lock("annotate"):
        pass
    assert not (tmp_path / ".lock").exists()
    # A lock left by a process that no longer exists is stale and is taken over.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    (tmp_path / ".lock").write_text(f"{socket.gethostname()}:{dead.pid}:download")
    with ds.lock("download"):
        assert (tmp_path / ".lock").read_text().split(":")[1] == str(os.getpid())


def test_storage_on_a_real_s3_server(s3_endpoint):
    root = "s3://curate-test/storage-test"
    storage.write_parquet_atomic(pa.table({"uid": ["a", "b"]}), storage.join(root, "shards", "00000.parquet"))
    storage.write_json_atomic({"rows": 2}, storage.join(root, "shards", "00000.stats.json"))
    ds = Dataset(root)
    assert ds.shard_paths() == [f"{root}/shards/00000.parquet"]
    assert storage.read_json(f"{root}/shards/00000.stats.json") == {"rows": 2}
    with ds.lock("x"), pytest.raises(CurateError), ds.lock("y"):
        pass
    assert not storage.exists(f"{root}/.lock")

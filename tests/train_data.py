"""Small labelled image-text shards for the trainer's tests (photo-like images from curate.synthweb)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from curate.synthweb.photos import CLASSES, encode, make_photo

TEMPLATES = ("a photo of a {}", "a {} in the picture", "{} on a background", "my {}")


def samples(n: int, size: int = 72, seed: int = 0, classes=CLASSES) -> list[dict]:
    """n rows cycling through `classes`: uid, caption naming the class, JPEG bytes, label."""
    rows = []
    for i in range(n):
        label = classes[i % len(classes)]
        img = make_photo(label, seed=seed * 100_003 + i, size=size)
        rows.append(
            {
                "uid": f"s{seed}-{i:05d}",
                "caption": TEMPLATES[i % len(TEMPLATES)].format(label),
                "image": encode(img, "jpeg", quality=90),
                "label": label,
            }
        )
    return rows


def write_parquet_shards(out: Path, rows: list[dict], n_shards: int) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in range(n_shards):
        part = rows[s::n_shards]
        table = pa.table({k: [r[k] for r in part] for k in ("uid", "caption", "image", "label")})
        path = out / f"{s:05d}.parquet"
        pq.write_table(table, path, row_group_size=8)
        paths.append(str(path))
    return paths


def write_tar_shards(out: Path, rows: list[dict], n_shards: int) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in range(n_shards):
        path = out / f"{s:05d}.tar"
        with tarfile.open(path, "w") as tar:
            for r in rows[s::n_shards]:
                for ext, data in (
                    ("jpg", r["image"]),
                    ("txt", r["caption"].encode()),
                    ("json", json.dumps({"uid": r["uid"]}).encode()),
                ):
                    info = tarfile.TarInfo(f"{r['uid']}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        paths.append(str(path))
    return paths


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread (import this fixture into a test module): on a shared 2-core machine a second
    OpenMP thread makes every step wait for a descheduled thread, several times slower than one."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)

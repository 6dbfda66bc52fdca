"""WebDataset tar shards: write samples, and rewrite a tar without some samples.

The reader rules (webdataset / open_clip): a sample is the run of consecutive members sharing a key,
the key being the file name up to its first dot, so keys hold no dots and members of one sample are
written together: KEY.jpg (or .png / .webp, by image format), KEY.txt (caption), KEY.json (metadata).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterable

from curate import storage

IMAGE_EXTENSIONS = {
    "jpeg": "jpg",
    "jpg": "jpg",
    "png": "png",
    "webp": "webp",
    "gif": "gif",
    "bmp": "bmp",
    "tiff": "tiff",
}


def image_extension(image_format: str | None) -> str:
    """File extension for a shard's image_format (unknown formats keep their own name, jpeg -> jpg)."""
    fmt = (image_format or "jpeg").lower()
    return IMAGE_EXTENSIONS.get(fmt, fmt)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # byte-identical tars for identical input
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_tar(path: str, samples: Iterable[dict]) -> int:
    """Write samples {key, image, image_format, caption, meta} as one tar shard; returns the count."""
    n = 0
    with _atomic_local(path) as tmp, tarfile.open(tmp, "w") as tar:
        for s in samples:
            key = s["key"]
            if "." in key or "/" in key:
                raise ValueError(f"WebDataset keys cannot contain '.' or '/': {key!r}")
            _add(tar, f"{key}.{image_extension(s.get('image_format'))}", s["image"])
            _add(tar, f"{key}.txt", (s.get("caption") or "").encode("utf-8"))
            _add(
                tar, f"{key}.json", json.dumps(s["meta"], ensure_ascii=False, sort_keys=True).encode("utf-8")
            )
            n += 1
    return n


def filter_tar(path: str, drop_keys: set[str]) -> tuple[int, int]:
    """Rewrite a tar without the samples whose key is in `drop_keys`; returns (removed, kept) samples."""
    fs, inner = storage.url_to_fs(path)
    removed, kept = set(), set()
    with (
        fs.open(inner, "rb") as src,
        tarfile.open(fileobj=src, mode="r|") as tin,
        _atomic_local(path) as tmp,
        tarfile.open(tmp, "w") as tout,
    ):
        for member in tin:
            key = member.name.rpartition("/")[2].split(".", 1)[0]
            if key in drop_keys:
                removed.add(key)
                continue
            kept.add(key)
            data = tin.extractfile(member).read() if member.isfile() else b""
            _add(tout, member.name, data)
    return len(removed), len(kept)


class _atomic_local:
    """A local temporary file that replaces `path` (local or remote) when the block succeeds."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fs, self.inner = storage.url_to_fs(path)
        local = storage.is_local(self.fs)
        directory = os.path.dirname(self.inner) if local else None
        if directory:
            os.makedirs(directory, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".tar", dir=directory)
        os.close(fd)
        self.local = local

    def __enter__(self) -> str:
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                if self.local:
                    os.replace(self.tmp, self.inner)
                else:
                    self.fs.put_file(self.tmp, self.inner)  # one PUT: visible all at once
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)

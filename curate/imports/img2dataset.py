"""Read an img2dataset output folder: its shards, each as one table of samples with their image bytes.

img2dataset names shard N `NNNNN` (zero-padded) and writes, whatever the output format, `NNNNN_stats.json`
and a Parquet file with one row per input sample, failures included:

- `parquet`: `NNNNN.parquet` holds the samples and their images (column `jpg`, null for a failure;
  `txt` repeats the caption);
- `webdataset`: `NNNNN.tar` holds `KEY.jpg` (the image), `KEY.txt` (caption), `KEY.json` (metadata) of
  each success, and `NNNNN.parquet` the metadata of every sample;
- `files`: the folder `NNNNN/` holds the same three files per success, `NNNNN.parquet` the metadata.

The metadata columns: `url`, `caption` (when img2dataset had a caption column), `key`, `status`
(`success`, `failed_to_download`, `failed_to_resize`), `error_message`, `width`, `height`,
`original_width`, `original_height`, `exif`, `sha256`, and the `save_additional_columns`. The image is
stored under `.jpg` whatever its encoding (img2dataset's `encode_format`).
"""

from __future__ import annotations

import logging
import tarfile
from dataclasses import dataclass

import pyarrow as pa

from curate import storage
from curate.errors import CurateError
from curate.schema import KEPT_COLUMN_PREFIX

log = logging.getLogger(__name__)

FORMATS = ("parquet", "webdataset", "files")
IMAGE_COLUMN = "jpg"  # the Parquet format's image column, and the tar / files image extension
IMAGE_EXTENSIONS = ("jpg", "png", "webp")  # what an image member may be called, by encode_format
REQUIRED = ("url", "key", "status")


@dataclass(frozen=True)
class Shard:
    """One img2dataset shard: its id, its Parquet file, and where its images are."""

    key: str  # "00012"
    parquet: str  # NNNNN.parquet
    fmt: str  # one of FORMATS
    images: str | None  # NNNNN.tar or the NNNNN/ folder; None for the parquet format


def find_shards(folder: str) -> list[Shard]:
    """The shards of the img2dataset output at `folder`, in id order; an error names what is missing."""
    fs, inner = storage.url_to_fs(folder)
    if not fs.isdir(inner):
        raise CurateError(f"{folder} is not a folder: pass the output_folder of an img2dataset run")
    names = {p.rstrip("/").rpartition("/")[2]: p for p in fs.ls(inner, detail=False)}
    keys = sorted(n.removesuffix(".parquet") for n in names if n.endswith(".parquet") and n[:-8].isdigit())
    if not keys:
        tars = sorted(n for n in names if n.endswith(".tar"))
        hint = (
            f" ({len(tars)} tar files but no NNNNN.parquet beside them: img2dataset writes one per shard)"
            if tars
            else ""
        )
        raise CurateError(f"{folder} holds no img2dataset shard (NNNNN.parquet){hint}")
    shards = []
    for key in keys:
        parquet = storage.join(folder, f"{key}.parquet")
        if f"{key}.tar" in names:
            shards.append(Shard(key, parquet, "webdataset", storage.join(folder, f"{key}.tar")))
        elif key in names and fs.isdir(names[key]):
            shards.append(Shard(key, parquet, "files", storage.join(folder, key)))
        else:
            shards.append(Shard(key, parquet, "parquet", None))
    return shards


def read_shard(shard: Shard) -> pa.Table:
    """The shard's samples in img2dataset's order, with the image bytes in column `image` (null when
    there is none) and img2dataset's own copies (`jpg`, `txt`) dropped."""
    table = storage.read_parquet(shard.parquet)
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise CurateError(
            f"{shard.parquet} has no column {', '.join(missing)}: not an img2dataset shard "
            f"(its columns: {', '.join(table.column_names)})"
        )
    if shard.fmt == "parquet":
        if IMAGE_COLUMN not in table.column_names:
            raise CurateError(
                f"{shard.parquet} holds no images (no {IMAGE_COLUMN!r} column) and has no "
                f"{shard.key}.tar or {shard.key}/ beside it"
            )
        images = table.column(IMAGE_COLUMN)
    else:
        wanted = {
            k
            for k, s in zip(table.column("key").to_pylist(), table.column("status").to_pylist(), strict=True)
            if s == "success"
        }
        found = (
            _tar_images(shard.images, wanted)
            if shard.fmt == "webdataset"
            else _file_images(shard.images, wanted)
        )
        images = pa.array([found.get(k) for k in table.column("key").to_pylist()], pa.binary())
    table = table.drop_columns([c for c in (IMAGE_COLUMN, "txt") if c in table.column_names])
    # an additional column that img2dataset carried under the name "image" keeps its values, renamed
    table = table.rename_columns(
        [f"{KEPT_COLUMN_PREFIX}{c}" if c == "image" else c for c in table.column_names]
    )
    return table.append_column("image", images.cast(pa.binary()))


def _tar_images(path: str, wanted: set[str]) -> dict[str, bytes]:
    """KEY -> bytes of the `KEY.jpg` members of a tar, read as a stream."""
    fs, inner = storage.url_to_fs(path)
    found: dict[str, bytes] = {}
    with fs.open(inner, "rb") as fh, tarfile.open(fileobj=fh, mode="r|*") as tar:
        for member in tar:
            key, _, ext = member.name.rpartition("/")[2].rpartition(".")
            if member.isfile() and ext.lower() in IMAGE_EXTENSIONS and key in wanted:
                found[key] = tar.extractfile(member).read()  # type: ignore[union-attr]
    return found


def _file_images(folder: str, wanted: set[str]) -> dict[str, bytes]:
    """KEY -> bytes of the `KEY.jpg` files of a `files`-format shard folder."""
    fs, inner = storage.url_to_fs(folder)
    found: dict[str, bytes] = {}
    for path in fs.ls(inner, detail=False):
        key, _, ext = path.rpartition("/")[2].rpartition(".")
        if ext.lower() in IMAGE_EXTENSIONS and key in wanted:
            with fs.open(path, "rb") as fh:
                found[key] = fh.read()
    return found


def stored_format(data: bytes | None) -> str | None:
    """The stored image's format in the shard's vocabulary (`jpg`, `png`, `webp`), from its first bytes."""
    if not data:
        return None
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None

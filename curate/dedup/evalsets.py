"""Evaluation sets for `curate overlap`: a folder of images, a Parquet with image bytes, or a dataset.

Each source yields (eval_id, label, caption, image bytes or a precomputed hash). eval_id is the relative
file path (folders), the row index (Parquet) or the uid (curate datasets), so that evaluation code can
join its own predictions to the overlap flags.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import storage
from curate.dataset import Dataset
from curate.errors import CurateError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
_CAPTION_COLUMNS = ("caption", "text", "alt_text")
_IMAGE_COLUMNS = ("image", "jpg", "png", "img", "image_bytes")


@dataclass
class EvalBatch:
    """A batch of evaluation items: images to hash, or hashes already computed."""

    ids: list[str]
    labels: list[str | None]
    captions: list[str | None]
    images: list[bytes] | None = None
    hashes: list[int | None] | None = None
    thumbs: list[bytes | None] | None = None
    errors: list[str | None] = field(default_factory=list)


def kind_of(path: str) -> str:
    """'dataset', 'parquet' or 'folder', or a clear error naming the accepted kinds."""
    fs, inner = storage.url_to_fs(path)
    if not fs.exists(inner):
        raise CurateError(f"benchmark path {path} does not exist")
    if fs.isdir(inner):
        return "dataset" if fs.exists(storage.join(inner, "shards")) else "folder"
    if inner.endswith(".parquet"):
        return "parquet"
    raise CurateError(f"benchmark {path} is neither a folder of images, a .parquet file nor a curate dataset")


def read(path: str, batch_size: int = 512) -> Iterator[EvalBatch]:
    kind = kind_of(path)
    return {"folder": _folder, "parquet": _parquet, "dataset": _dataset}[kind](path, batch_size)


def _folder(path: str, batch_size: int) -> Iterator[EvalBatch]:
    """Images anywhere under `path`; the first sub-folder names the class (ImageNet/ImageFolder layout)."""
    fs, inner = storage.url_to_fs(path)
    files = sorted(p for p in fs.find(inner) if p.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise CurateError(f"benchmark folder {path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    root = inner.rstrip("/") + "/"
    for s in range(0, len(files), batch_size):
        rel = [f[len(root) :] for f in files[s : s + batch_size]]
        labels = [r.split("/", 1)[0] if "/" in r else None for r in rel]
        images = [fs.cat_file(f) for f in files[s : s + batch_size]]
        yield EvalBatch(ids=rel, labels=labels, captions=[None] * len(rel), images=images)


def _parquet(path: str, batch_size: int) -> Iterator[EvalBatch]:
    """Rows of a Parquet file: an image column (bytes, or HF-style struct with `bytes`), label, caption."""
    fs, inner = storage.url_to_fs(path)
    pf = pq.ParquetFile(fs.open(inner, "rb"))
    names = pf.schema_arrow.names
    image_col = next((c for c in _IMAGE_COLUMNS if c in names), None)
    if image_col is None:
        raise CurateError(f"benchmark {path} has no image column: name one of {', '.join(_IMAGE_COLUMNS)}")
    caption_col = next((c for c in _CAPTION_COLUMNS if c in names), None)
    label_col = "label" if "label" in names else None
    start = 0
    for batch in pf.iter_batches(
        batch_size=batch_size, columns=[c for c in (image_col, caption_col, label_col) if c]
    ):
        col = batch.column(image_col)
        if pa.types.is_struct(col.type):
            col = col.field("bytes")
        n = batch.num_rows
        labels = batch.column(label_col).to_pylist() if label_col else [None] * n
        yield EvalBatch(
            ids=[str(start + i) for i in range(n)],
            labels=[None if v is None else str(v) for v in labels],
            captions=batch.column(caption_col).to_pylist() if caption_col else [None] * n,
            images=col.to_pylist(),
        )
        start += n


def _dataset(path: str, batch_size: int) -> Iterator[EvalBatch]:
    """Another curate dataset: its downloaded samples, hashed already when it has hash signals."""
    ds = Dataset(path)
    hash_files = storage.list_files(ds.signals_dir("hashes"), ".parquet")
    for shard in ds.shard_paths():
        key = Dataset.shard_key(shard)
        hash_path = storage.join(ds.signals_dir("hashes"), f"{key}.parquet")
        use_hashes = hash_path in hash_files
        cols = ["uid", "caption", "status"] + ([] if use_hashes else ["image"])
        table = storage.read_parquet(shard, columns=cols)
        table = table.filter(pc.equal(table.column("status"), "success"))
        if use_hashes:
            hashes = storage.read_parquet(hash_path)
            lookup = dict(
                zip(hashes.column("uid").to_pylist(), hashes.column("phash").to_pylist(), strict=False)
            )
            thumbs = (
                dict(zip(hashes.column("uid").to_pylist(), hashes.column("thumb").to_pylist(), strict=False))
                if "thumb" in hashes.column_names
                else None
            )
        for s in range(0, table.num_rows, batch_size):
            part = table.slice(s, batch_size)
            uids = part.column("uid").to_pylist()
            yield EvalBatch(
                ids=uids,
                labels=[None] * len(uids),
                captions=part.column("caption").to_pylist(),
                images=None if use_hashes else part.column("image").to_pylist(),
                hashes=[lookup.get(u) for u in uids] if use_hashes else None,
                thumbs=[thumbs.get(u) for u in uids] if use_hashes and thumbs else None,
            )

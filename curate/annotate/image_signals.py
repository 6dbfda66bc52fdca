"""The `image` and `hashes` signals: sizes, format, blank flag, sha256 and perceptual hash per uid.

Both come from the shard's image bytes decoded at reduced size (curate.annotate.decode), never from a
full decode. Rows without an image (failed or skipped downloads) get nulls, not a missing row.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.annotate.decode import DECODE_ERRORS, small_array
from curate.annotate.options import Options
from curate.annotate.phash import hash_images
from curate.schema import HASHES_SCHEMA, IMAGE_SCHEMA

log = logging.getLogger(__name__)

# An image is blank (placeholder, spacer, solid fill) when every RGB channel of its <=64 px thumbnail
# has a standard deviation under 3 grey levels (of 255). The thumbnail averages away JPEG noise and
# grain, so a flat colour with compression artefacts or sensor noise stays blank (std 0-1.2), while a
# white page with one line of text (std 12), a small logo (29) or a gentle gradient (12) does not.
BLANK_STD = 3.0
THUMB_SIDE = 64
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as PIL's convert("L")


IMAGE_COLUMNS = (
    "uid",
    "image",
    "width",
    "height",
    "original_width",
    "original_height",
    "bytes",
    "image_format",
)
HASHES_COLUMNS = ("uid", "image", "sha256")


def image_signal(shard: pa.Table, opts: Options) -> tuple[pa.Table, dict]:
    images = shard.column("image").to_pylist()
    n = len(images)
    mean = np.full(n, np.nan, np.float32)
    std = np.full(n, np.nan, np.float32)
    chan_std = np.full(n, np.nan, np.float32)
    errors = 0
    for i, data in enumerate(images):
        if data is None:
            continue
        try:
            rgb = small_array(data, "RGB", THUMB_SIDE).astype(np.float32)
        except DECODE_ERRORS as exc:
            errors += 1
            log.debug("image signal: cannot decode %s: %s", shard.column("uid")[i], exc)
            continue
        luma = rgb @ _LUMA
        mean[i], std[i] = luma.mean(), luma.std()
        chan_std[i] = rgb.reshape(-1, 3).std(axis=0).max()
    decoded = ~np.isnan(mean)
    width = shard.column("width").cast(pa.int32())
    height = shard.column("height").cast(pa.int32())
    # The aspect of the picture, not of the stored file: the downloader's border / center_crop modes
    # store squares, so the original (orientation-corrected) size decides, the stored one if it is absent.
    ow = pc.coalesce(shard.column("original_width").cast(pa.int32()), width)
    oh = pc.coalesce(shard.column("original_height").cast(pa.int32()), height)
    long_side = pc.max_element_wise(ow, oh).cast(pa.float32())
    short_side = pc.min_element_wise(ow, oh).cast(pa.float32())
    aspect = pc.if_else(pc.greater(short_side, 0), pc.divide(long_side, short_side), None)
    blank = pa.array(chan_std < BLANK_STD, mask=~decoded)
    table = pa.table(
        {
            "uid": shard.column("uid"),
            "width": width,
            "height": height,
            "aspect": aspect,
            "bytes": shard.column("bytes").cast(pa.int64()),
            "format": shard.column("image_format"),
            "original_width": shard.column("original_width").cast(pa.int32()),
            "original_height": shard.column("original_height").cast(pa.int32()),
            "mean_luma": pa.array(mean, mask=~decoded),
            "luma_std": pa.array(std, mask=~decoded),
            "is_blank": blank,
        },
        schema=IMAGE_SCHEMA,
    )
    stats = {
        "rows": n,
        "decoded": int(decoded.sum()),
        "decode_errors": errors,
        "blank": int(np.sum(chan_std[decoded] < BLANK_STD)),
    }
    return table, stats


def hashes_signal(shard: pa.Table, opts: Options) -> tuple[pa.Table, dict]:
    images = shard.column("image").to_pylist()
    sha = shard.column("sha256").to_pylist()
    computed = 0
    for i, data in enumerate(images):
        if sha[i] is None and data is not None:  # e.g. a shard written by another engine
            sha[i] = hashlib.sha256(data).hexdigest()
            computed += 1
    hashes, thumbs, valid = hash_images(images)  # one batched DCT for the whole batch of rows
    present = sum(d is not None for d in images)
    table = pa.table(
        {
            "uid": shard.column("uid"),
            "sha256": pa.array(sha, pa.string()),
            "phash": pa.array(hashes, mask=~valid),
            "thumb": pa.array(
                [t.tobytes() if ok else None for t, ok in zip(thumbs, valid, strict=False)], pa.binary(192)
            ),
        },
        schema=HASHES_SCHEMA,
    )
    stats = {
        "rows": len(images),
        "phash": int(valid.sum()),
        "decode_errors": int(present - valid.sum()),
        "sha256_computed": computed,
    }
    return table, stats

"""The perceptual hash of image bytes, as stored in signals/hashes (int64 bit pattern of 64 bits).

`curate annotate` owns the hash (curate.annotate.phash); overlap must hash evaluation images with the
very same function, so it is used whenever it is installed. Without it, imagehash.phash (the reference
implementation) is used, bits packed row-major with the first bit most significant.
"""

from __future__ import annotations

import io
import logging

import numpy as np

log = logging.getLogger(__name__)


def _reference_phash(data: bytes) -> int:
    import imagehash
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        bits = imagehash.phash(img).hash.flatten()
    value = int("".join("1" if b else "0" for b in bits), 2)
    return value - (1 << 64) if value >= 1 << 63 else value


def _annotate_phash():
    try:
        from curate.annotate import phash
    except ImportError:
        return None
    return phash


def phash_images(images: list[bytes]) -> tuple[np.ndarray, list[str | None]]:
    """(int64 hashes, error per image or None); an undecodable image gets hash 0 and its error."""
    hashes = np.zeros(len(images), dtype=np.int64)
    errors: list[str | None] = [None] * len(images)
    batch_fn = _annotate_phash()
    if batch_fn is not None:
        try:
            return np.asarray(batch_fn(images), dtype=np.int64), errors
        except Exception as exc:  # noqa: BLE001 - one bad image: hash one by one to find it
            log.debug("batch phash failed (%s); hashing images one by one", exc)
    for i, data in enumerate(images):
        try:
            hashes[i] = int(np.asarray(batch_fn([data]), dtype=np.int64)[0]) if batch_fn else _reference_phash(data)
        except Exception as exc:  # noqa: BLE001 - recorded per image, never a traceback
            errors[i] = f"{type(exc).__name__}: {exc}"
    return hashes, errors

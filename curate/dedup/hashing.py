"""The perceptual hash of image bytes, as stored in signals/hashes (int64 bit pattern of 64 bits).

`curate annotate` owns the hash (curate.annotate.phash.phash_bytes); overlap must hash evaluation
images with the very same function, so it is used whenever it is installed. Without it, imagehash.phash
(the reference implementation it follows) is used, bits row-major with the first bit most significant.
"""

from __future__ import annotations

import io

import numpy as np


def _reference_phash(data: bytes) -> int:
    import imagehash
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        bits = imagehash.phash(img).hash.flatten()
    value = int("".join("1" if b else "0" for b in bits), 2)
    return value - (1 << 64) if value >= 1 << 63 else value


def phash_images(images: list[bytes | None]) -> tuple[np.ndarray, list[str | None]]:
    """(int64 hashes, error per image or None); an undecodable image gets hash 0 and an error."""
    try:
        from curate.annotate.phash import phash_bytes
    except ImportError:
        phash_bytes = None
    if phash_bytes is not None:
        hashes, valid = phash_bytes(list(images))
        return np.asarray(hashes, dtype=np.int64), [None if v else "cannot decode the image" for v in valid]
    hashes = np.zeros(len(images), dtype=np.int64)
    errors: list[str | None] = [None] * len(images)
    for i, data in enumerate(images):
        try:
            hashes[i] = _reference_phash(data or b"")
        except Exception as exc:  # noqa: BLE001 - recorded per image, never a traceback
            errors[i] = f"cannot decode the image ({type(exc).__name__}: {exc})"
    return hashes, errors

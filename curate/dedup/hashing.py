"""The annotate stage's near-duplicate rule, applied to pairs of samples.

`curate annotate` owns the perceptual hash and the rule (curate.annotate.phash): two images are near
duplicates when their 64-bit pHashes differ in at most DEFAULT_NEAR_DUP_DISTANCE bits AND their 8x8
RGB thumbnails correlate at DEFAULT_NEAR_DUP_SIMILARITY or more. Signals written without thumbnails
fall back to the pHash distance alone. Evaluation images are hashed with the same function.
"""

from __future__ import annotations

import numpy as np

from curate.annotate.phash import (
    DEFAULT_NEAR_DUP_DISTANCE,
    DEFAULT_NEAR_DUP_SIMILARITY,
    hash_images,
    similarity,
)

_VERIFY_CHUNK = 500_000


def default_max_distance() -> int:
    return int(DEFAULT_NEAR_DUP_DISTANCE)


def default_similarity() -> float:
    return float(DEFAULT_NEAR_DUP_SIMILARITY)


def hash_eval_images(images: list[bytes | None]) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """(int64 pHashes, (N, 192) uint8 thumbnails, error per image or None)."""
    hashes, thumbs, valid = hash_images(list(images))
    return np.asarray(hashes, np.int64), thumbs, [None if v else "cannot decode the image" for v in valid]


def near(a_hash: np.ndarray, b_hash: np.ndarray, a_thumb: np.ndarray | None, b_thumb: np.ndarray | None,
         k: int, min_similarity: float) -> tuple[np.ndarray, np.ndarray]:
    """(ok mask, distances) of paired rows: pHash distance <= k and (with thumbnails) correlation >= min."""
    dist = np.bitwise_count(np.asarray(a_hash).view(np.uint64) ^ np.asarray(b_hash).view(np.uint64))
    ok = dist <= k
    if a_thumb is not None and ok.any():
        rows = np.flatnonzero(ok)
        for s in range(0, len(rows), _VERIFY_CHUNK):
            r = rows[s:s + _VERIFY_CHUNK]
            ok[r] = similarity(a_thumb[r], b_thumb[r]) >= min_similarity
    return ok, dist

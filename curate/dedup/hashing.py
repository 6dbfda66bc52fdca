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

_VERIFY_CHUNK = 16_384


def default_max_distance() -> int:
    return int(DEFAULT_NEAR_DUP_DISTANCE)


def default_similarity() -> float:
    return float(DEFAULT_NEAR_DUP_SIMILARITY)


def hash_eval_images(images: list[bytes | None]) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """(int64 pHashes, (N, 192) uint8 thumbnails, error per image or None)."""
    hashes, thumbs, valid = hash_images(list(images))
    return np.asarray(hashes, np.int64), thumbs, [None if v else "cannot decode the image" for v in valid]


def near(
    hash_a: np.ndarray,
    hash_b: np.ndarray,
    thumbs_a: np.ndarray | None,
    thumbs_b: np.ndarray | None,
    a: np.ndarray,
    b: np.ndarray,
    k: int,
    min_similarity: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(ok mask, pHash distances) of the pairs (hash_a[a[i]], hash_b[b[i]]): distance <= k and, with
    thumbnails, correlation >= min_similarity. Thumbnails are gathered only for pairs within k."""
    dist = np.bitwise_count(np.asarray(hash_a).view(np.uint64)[a] ^ np.asarray(hash_b).view(np.uint64)[b])
    ok = dist <= k
    if thumbs_a is not None and ok.any():
        rows = np.flatnonzero(ok)
        for s in range(0, len(rows), _VERIFY_CHUNK):
            r = rows[s : s + _VERIFY_CHUNK]
            ok[r] = similarity(thumbs_a[a[r]], thumbs_b[b[r]]) >= min_similarity
    return ok, dist

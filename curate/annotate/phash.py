"""A fast DCT perceptual hash (pHash), bit-compatible in spirit with imagehash.phash.

imagehash.phash: full decode -> greyscale -> Lanczos resize to 32x32 -> 2-D DCT-II -> keep the 8x8
lowest frequencies -> bit = coefficient > their median. Here the same steps run cheaper:
- decode at reduced size (libjpeg DCT scaling, curate.annotate.decode: a 256 px JPEG decodes straight
  to its 32x32 block means; other sizes get an antialiased bilinear resize), most of imagehash's cost;
- only the 8x8 low-frequency block of the DCT is needed, so the transform is two small matrix products
  with a precomputed 8x32 DCT matrix, D @ X @ D.T, done for a whole batch of images at once.
The scale of the DCT does not matter (bits compare against a median), so the matrix is unnormalised.

The 64 bits, row-major over the 8x8 block with the first bit most significant (imagehash's order), are
stored as a signed int64 with the same bit pattern: `format(h & 0xFFFFFFFFFFFFFFFF, "016x")` is the
hex string `str(imagehash.phash(img))` prints. The Hamming distance between two hashes is
`popcount(a ^ b)` (`hamming`).
"""

from __future__ import annotations

import logging

import numpy as np

from curate.annotate.decode import DECODE_ERRORS, square

log = logging.getLogger(__name__)

HASH_SIDE = 32  # imagehash.phash(hash_size=8, highfreq_factor=4): a 32x32 input
LOW = 8  # 8x8 low-frequency coefficients -> 64 bits
THUMB = 8  # 8x8 RGB thumbnail kept beside the hash to verify candidate pairs
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as PIL's convert("L")

# The near-duplicate rule, measured by benchmarks/near_dup_quality.py on 5,000 distinct photo-like images
# (curate.synthweb), each with one copy resized 0.5x-2x, re-encoded at JPEG quality 30-95, cropped up to
# 5% per side, brightness +-10% and a small text overlay, all at once (docs/PERFORMANCE.md, "signals"):
# two images are near-duplicates when their pHashes differ in at most DEFAULT_NEAR_DUP_DISTANCE bits
# (the candidate radius) AND their 8x8 thumbnails correlate at DEFAULT_NEAR_DUP_SIMILARITY or more.
#   pHash <= 14 alone:             recall 0.991, precision 0.350 (9,212 false pairs of 50M)
#   pHash <= 14 and thumb >= 0.94: recall 0.984, precision 0.999 (4 false pairs)
#   pHash <= 12 and thumb >= 0.94: recall 0.965, precision 0.999
#   pHash <= 6 alone:              recall 0.57, precision 0.99
# 64 bits alone cannot reach recall 0.95 and precision 0.99 together on this data: crops move the
# low frequencies by up to 12 bits (p95), while distinct scenes of the same kind share layouts.
DEFAULT_NEAR_DUP_DISTANCE = 14
DEFAULT_NEAR_DUP_SIMILARITY = 0.94


def _dct_matrix(n: int, k: int) -> np.ndarray:
    """Rows 0..k-1 of the (unnormalised) DCT-II matrix of size n: cos(pi * u * (2x + 1) / (2n))."""
    u = np.arange(k)[:, None]
    x = np.arange(n)[None, :]
    return np.cos(np.pi * u * (2 * x + 1) / (2 * n)).astype(np.float32)


_DCT = _dct_matrix(HASH_SIDE, LOW)


def phash_arrays(gray: np.ndarray) -> np.ndarray:
    """int64 pHashes of a batch of (B, 32, 32) greyscale images."""
    if gray.ndim != 3 or gray.shape[1:] != (HASH_SIDE, HASH_SIDE):
        raise ValueError(f"expected (B, {HASH_SIDE}, {HASH_SIDE}) greyscale images, got {gray.shape}")
    low = (_DCT @ gray.astype(np.float32, copy=False) @ _DCT.T).reshape(len(gray), LOW * LOW)  # (B, 64)
    bits = low > np.median(low, axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64).view(np.int64)


def phash_bytes(images: list[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
    """(pHashes int64, valid bool) for encoded images; None or undecodable bytes give valid=False."""
    hashes, _, valid = hash_images(images)
    return hashes, valid


def hash_images(images: list[bytes | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pHashes int64, 8x8 RGB thumbnails uint8 (B, 192), valid bool) for encoded images.

    One reduced-size RGB decode per image feeds both; None or undecodable bytes give valid=False.
    """
    rgb = np.zeros((len(images), HASH_SIDE, HASH_SIDE, 3), np.uint8)
    valid = np.zeros(len(images), bool)
    for i, data in enumerate(images):
        if data is None:
            continue
        try:
            rgb[i] = square(data, "RGB", HASH_SIDE)
            valid[i] = True
        except DECODE_ERRORS as exc:
            log.debug("cannot decode image %d for pHash: %s", i, exc)
    pixels = rgb.astype(np.float32)
    hashes = phash_arrays(pixels @ _LUMA)
    hashes[~valid] = 0
    return hashes, thumbnails(pixels), valid


def thumbnails(rgb: np.ndarray) -> np.ndarray:
    """(B, 32, 32, 3) float32 -> (B, 192) uint8: 8x8 RGB block means, the near-duplicate verifier's input."""
    b, step = len(rgb), HASH_SIDE // THUMB
    rows = rgb.reshape(b, THUMB, step, HASH_SIDE * 3).sum(axis=2)  # summing contiguous runs: 3x faster
    blocks = rows.reshape(b, THUMB, THUMB, step, 3).sum(axis=3) / (step * step)
    return np.rint(blocks).astype(np.uint8).reshape(b, THUMB * THUMB * 3)


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of paired thumbnails (rows of a and b), in [-1, 1]; 0 for flat images.

    Brightness and contrast changes cancel out (each thumbnail is centred and scaled), while the
    colour layout at 8x8 is kept: what the 64 pHash bits quantise away.
    """
    x = np.atleast_2d(a).astype(np.float32)
    y = np.atleast_2d(b).astype(np.float32)
    x -= x.mean(axis=1, keepdims=True)
    y -= y.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
    return np.where(norm > 0, (x * y).sum(axis=1) / np.maximum(norm, 1e-12), 0.0)


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bitwise Hamming distance between int64 hashes (broadcasting)."""
    x = np.bitwise_xor(np.asarray(a, np.int64), np.asarray(b, np.int64))
    return np.bitwise_count(x.view(np.uint64)).astype(np.int64)


def to_hex(h: int) -> str:
    """imagehash's hex string of an int64 hash."""
    return format(int(h) & 0xFFFFFFFFFFFFFFFF, "016x")


def near_duplicate(
    hash_a: np.ndarray,
    hash_b: np.ndarray,
    thumb_a: np.ndarray,
    thumb_b: np.ndarray,
    *,
    max_distance: int = DEFAULT_NEAR_DUP_DISTANCE,
    min_similarity: float = DEFAULT_NEAR_DUP_SIMILARITY,
) -> np.ndarray:
    """The measured near-duplicate rule for paired rows: pHash within the radius and thumbnails alike."""
    return (hamming(hash_a, hash_b) <= max_distance) & (similarity(thumb_a, thumb_b) >= min_similarity)

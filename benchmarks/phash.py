"""Perceptual-hash throughput from shard bytes, one core: curate vs imagehash.phash with decode, same run.

Images are curate.synthweb photos stored as a download shard stores them by default (256 px JPEG,
quality 95; other qualities with --quality). Measured in this process (one core):
- decode floor: the reduced-size JPEG decode curate does (libjpeg-turbo DCT scaling to >= 32 px), alone;
- curate: curate.annotate.phash.hash_images (pHash + 8x8 thumbnail) in batches of 512;
- imagehash: imagehash.phash(Image.open(bytes)) (full decode, Lanczos, scipy DCT), the anchor.
Also prints the mean Hamming distance between the two hashes of each image. Rates are per CPU-second
of this process (time.process_time), so other work on a shared machine inflates them less than wall time.

    python benchmarks/phash.py --unique 500 --repeat 4 --quality 95 85
"""

from __future__ import annotations

import argparse
import io
import os
import time

import imagehash
import numpy as np
from PIL import Image

from curate.annotate.decode import small_array
from curate.annotate.phash import hash_images, to_hex
from curate.synthweb.photos import CLASSES, make_photo


def rate(fn, items, reps: int = 1) -> float:
    """Items per second of fn over items, best of `reps` passes."""
    best = float("inf")
    for _ in range(reps):
        start = time.process_time()
        fn(items)
        best = min(best, time.process_time() - start)
    return len(items) / best


def decode_only(data: list[bytes]) -> None:
    for d in data:
        small_array(d, "RGB", 32)


def curate_hashes(data: list[bytes]) -> None:
    for start in range(0, len(data), 512):
        hash_images(data[start : start + 512])


def imagehash_hashes(data: list[bytes]) -> list:
    return [imagehash.phash(Image.open(io.BytesIO(d))) for d in data]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--unique", type=int, default=500, help="distinct photos")
    ap.add_argument(
        "--repeat", type=int, default=4, help="times the photos are repeated for the curate timing"
    )
    ap.add_argument("--quality", type=int, nargs="+", default=[95, 85])
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    photos = [make_photo(CLASSES[i % len(CLASSES)], 7000 + i, args.size) for i in range(args.unique)]
    print(f"load before: {os.getloadavg()[0]:.2f}")
    for quality in args.quality:
        data = []
        for p in photos:
            buf = io.BytesIO()
            p.save(buf, "JPEG", quality=quality)
            data.append(buf.getvalue())
        many = data * args.repeat
        floor = rate(decode_only, many, 2)
        ours = rate(curate_hashes, many, 2)
        anchor = rate(imagehash_hashes, data)
        hashes, _, _ = hash_images(data)
        ref = imagehash_hashes(data)
        ham = np.mean([imagehash.hex_to_hash(to_hex(h)) - r for h, r in zip(hashes, ref, strict=False)])
        kb = np.mean([len(d) for d in data]) / 1024
        print(
            f"{args.size}px JPEG q{quality} ({kb:.1f} KiB): decode floor {floor:,.0f}/s "
            f"| curate {ours:,.0f}/s | "
            f"imagehash {anchor:,.0f}/s | speed-up {ours / anchor:.1f}x | mean Hamming to imagehash {ham:.2f}"
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

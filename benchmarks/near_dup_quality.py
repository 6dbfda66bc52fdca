"""Near-duplicate quality of the annotate pHash (+ thumbnail check) on N distinct photo-like images.

Each of N curate.synthweb photos (256 px, JPEG q95 as a download shard stores them) gets one copy that
is cropped up to 5% per side, resized 0.5x-2x, brightened/darkened up to 10%, stamped with a small text
and re-encoded at JPEG quality 30-95, all at once (curate.annotate.nearcopy). Over all pairs of the 2N
images, (original, its copy) is a true pair and every other pair is distinct. Prints recall / false
pairs / precision per Hamming radius k, alone and with the thumbnail-correlation check, and the
distance histograms; also the mean distance under each transform alone.

    python benchmarks/near_dup_quality.py --n 5000
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from curate.annotate.nearcopy import near_copy, separation
from curate.annotate.phash import (
    DEFAULT_NEAR_DUP_DISTANCE,
    DEFAULT_NEAR_DUP_SIMILARITY,
    hamming,
    hash_images,
    similarity,
)
from curate.synthweb.photos import CLASSES, make_photo

SINGLE = {
    "crop <=5%/side": {"scale": (1, 1), "quality": (95, 95), "brightness": 0, "overlay": False},
    "resize 0.5-2x": {"crop": 0, "quality": (95, 95), "brightness": 0, "overlay": False},
    "JPEG q30-95": {"crop": 0, "scale": (1, 1), "brightness": 0, "overlay": False},
    "brightness +-10%": {"crop": 0, "scale": (1, 1), "quality": (95, 95), "overlay": False},
    "text overlay": {"crop": 0, "scale": (1, 1), "quality": (95, 95), "brightness": 0},
    "all at once": {},
}


def _make(args: tuple[int, int]) -> tuple[bytes, bytes, dict[str, bytes]]:
    """(original JPEG, copy with every transform, one copy per single transform) for photo i."""
    i, seed = args
    img = make_photo(CLASSES[i % len(CLASSES)], seed + i, 256)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    rng = np.random.default_rng([seed, i])
    singles = {name: near_copy(img, rng, **kw) for name, kw in SINGLE.items() if kw} if i < 1000 else {}
    return buf.getvalue(), near_copy(img, rng), singles


def verified_counts(hashes: np.ndarray, thumbs: np.ndarray, n: int, k: int, taus: list[float]) -> dict:
    """True/false reported pairs with pHash distance <= k and thumbnail similarity >= tau (all pairs)."""
    u = hashes.view(np.uint64)
    out = {tau: [0, 0] for tau in taus}
    for start in range(0, len(u), 1024):
        d = np.bitwise_count(u[start : start + 1024, None] ^ u[None, :])
        i, j = np.nonzero(d <= k)
        i = i + start
        keep = j > i
        i, j = i[keep], j[keep]
        sim = similarity(thumbs[i], thumbs[j])
        true = (j - i == n) & (i < n)
        for tau in taus:
            ok = sim >= tau
            out[tau][0] += int((ok & true).sum())
            out[tau][1] += int((ok & ~true).sum())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/_work/near_dup_quality.json")
    args = ap.parse_args()
    t0 = time.time()
    with ProcessPoolExecutor(args.workers) as pool:
        made = list(pool.map(_make, [(i, args.seed) for i in range(args.n)], chunksize=32))
    originals = [m[0] for m in made]
    copies = [m[1] for m in made]
    print(f"made {args.n} photos and copies in {time.time() - t0:.0f}s")
    ho, to, vo = hash_images(originals)
    hc, tc, vc = hash_images(copies)
    assert vo.all() and vc.all()
    sep = separation(ho, hc)
    n = args.n
    pairs = (2 * n) * (2 * n - 1) // 2
    print(f"\n{n} true pairs, {pairs - n:,} distinct pairs")
    print("\npHash alone: k | recall | false pairs | precision")
    for k in range(0, 21, 2):
        print(f"{k:2d} | {sep.recall(k):.4f} | {sep.false_pairs(k):,} | {sep.precision(k):.4f}")
    taus = [0.85, 0.9, 0.92, 0.93, 0.94, 0.95]
    verified = {}
    print("\npHash <= k and thumbnail similarity >= tau: k | tau | recall | false pairs | precision")
    for k in (10, 12, 14, 16):
        counts = verified_counts(np.concatenate([ho, hc]), np.concatenate([to, tc]), n, k, taus)
        for tau, (true, false) in counts.items():
            verified[f"{k}/{tau}"] = (true, false)
            print(f"{k:2d} | {tau:.2f} | {true / n:.4f} | {false:,} | {true / max(1, true + false):.4f}")
    print("\ncopy distance histogram (even distances 0..24):", sep.copies[:25:2].tolist())
    print("distinct distance histogram (even distances 0..24):", sep.distinct[:25:2].tolist())
    singles = {}
    print("\nsingle transforms (first 1,000 photos): mean / p95 / max Hamming distance to the original")
    for name in (s for s, kw in SINGLE.items() if kw):
        h, _, _ = hash_images([m[2][name] for m in made[:1000]])
        d = hamming(ho[:1000], h)
        singles[name] = [float(d.mean()), float(np.quantile(d, 0.95)), int(d.max())]
        print(f"  {name}: {d.mean():.2f} / {np.quantile(d, 0.95):.0f} / {d.max()}")
    d = hamming(ho, hc)
    print(f"  all at once: {d.mean():.2f} / {np.quantile(d, 0.95):.0f} / {d.max()}")
    k, tau = DEFAULT_NEAR_DUP_DISTANCE, DEFAULT_NEAR_DUP_SIMILARITY
    print(
        f"\ndefaults: k={k}, tau={tau}: "
        + (
            f"recall {verified[f'{k}/{tau}'][0] / n:.4f}"
            if f"{k}/{tau}" in verified
            else "(not in the table)"
        )
    )
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(
            {
                "n": n,
                "copies_hist": sep.copies.tolist(),
                "distinct_hist": sep.distinct.tolist(),
                "verified": verified,
                "singles": singles,
            },
            fh,
        )


if __name__ == "__main__":
    main()

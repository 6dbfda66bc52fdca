"""The download's image step (decode -> resize -> border -> JPEG encode) with three libraries, same images.

curate's Pillow path (libjpeg-turbo DCT-scaled decode via draft mode + antialiased bilinear) beside libvips
(pyvips with the pyvips-binary wheel: `thumbnail_buffer` shrink-on-load + its SIMD reduce kernels) and
OpenCV (`IMREAD_REDUCED_*` decode + `INTER_AREA`, what img2dataset's resizer does). Every engine gets the
benchmark images of benchmarks/download.py (200-1200 px JPEG crops of synthweb photos), makes the same
256 px `border` output at JPEG quality 95, and is measured in CPU time per image on one thread
(time.thread_time, so other load on the machine does not count) and in PSNR against a full decode +
Lanczos reference. The adoption rule: an engine replaces Pillow only if it cuts the image work by >= 1.3x
at no loss of PSNR.

    pip install pyvips pyvips-binary opencv-python-headless   # the two candidates; not curate dependencies
    python benchmarks/image_engines.py [--images 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import math
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("VIPS_CONCURRENCY", "1")  # one thread per image, like curate's download threads
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks.download import WORK, make_images  # noqa: E402
from curate.download.config import DownloadConfig  # noqa: E402
from curate.download.process import process_image  # noqa: E402

SIZE = 256
QUALITY = 95


def curate_pillow() -> Callable[[bytes], bytes]:
    cfg = DownloadConfig(image_size=SIZE, resize_mode="border", encode_quality=QUALITY, encode_format="jpg")
    return lambda data: process_image(data, cfg).data


def libvips() -> Callable[[bytes], bytes]:
    import pyvips

    pyvips.cache_set_max(0)

    def run(data: bytes) -> bytes:
        # thumbnail_buffer picks the JPEG shrink-on-load factor itself and finishes with a reduce.
        img = pyvips.Image.thumbnail_buffer(data, SIZE, height=SIZE, size="down")
        if img.hasalpha():
            img = img.flatten(background=[255, 255, 255])
        img = img.gravity("centre", SIZE, SIZE, extend="background", background=[255, 255, 255])
        # 4:2:0 chroma like Pillow's and OpenCV's encoders (libvips keeps full chroma at Q >= 90 by default).
        return img.jpegsave_buffer(Q=QUALITY, strip=True, subsample_mode="on")

    return run


def opencv() -> Callable[[bytes], bytes]:
    import cv2

    cv2.setNumThreads(1)
    reduced = {
        1: cv2.IMREAD_COLOR,
        2: cv2.IMREAD_REDUCED_COLOR_2,
        4: cv2.IMREAD_REDUCED_COLOR_4,
        8: cv2.IMREAD_REDUCED_COLOR_8,
    }

    def run(data: bytes) -> bytes:
        buf = np.frombuffer(data, np.uint8)
        w, h = Image.open(io.BytesIO(data)).size  # header only, as img2dataset does not know the size either
        scale = SIZE / max(w, h)
        factor = 1
        while factor < 8 and max(w, h) / (factor * 2) >= SIZE:
            factor *= 2
        img = cv2.imdecode(buf, reduced[factor])
        tw, th = max(1, round(w * scale)), max(1, round(h * scale))
        interpolation = cv2.INTER_AREA if tw < img.shape[1] else cv2.INTER_LANCZOS4
        img = cv2.resize(img, (tw, th), interpolation=interpolation)
        top, left = (SIZE - th) // 2, (SIZE - tw) // 2
        img = cv2.copyMakeBorder(
            img, top, SIZE - th - top, left, SIZE - tw - left, cv2.BORDER_CONSTANT, value=(255, 255, 255)
        )
        ok, out = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
        if not ok:
            raise ValueError("OpenCV could not encode")
        return out.tobytes()

    return run


def reference(data: bytes) -> np.ndarray:
    """Full decode + Lanczos to 256 (border): what every engine approximates."""
    src = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = src.size
    scale = SIZE / max(w, h)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    ref = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    ref.paste(src.resize((tw, th), Image.Resampling.LANCZOS), ((SIZE - tw) // 2, (SIZE - th) // 2))
    return np.asarray(ref, float)


def psnr(out: bytes, ref: np.ndarray) -> float:
    img = np.asarray(Image.open(io.BytesIO(out)).convert("RGB"), float)
    if img.shape != ref.shape:
        return float("nan")
    mse = float(np.mean((img - ref) ** 2))
    return 10 * math.log10(255**2 / max(mse, 1e-9))


def cpu_ms_per_image(run: Callable[[bytes], bytes], images: list[bytes]) -> float:
    """CPU milliseconds per image on this thread, for one pass over the images."""
    start = time.thread_time()
    for data in images:
        run(data)
    return (time.thread_time() - start) * 1000 / len(images)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--psnr-sample", type=int, default=200)
    args = parser.parse_args()

    folder = WORK / "images"
    make_images(max(args.images, 5000), folder)
    images = [p.read_bytes() for p in sorted(folder.glob("*.jpg"))[: args.images]]
    refs = [reference(d) for d in images[: args.psnr_sample]]
    engines = {"curate (Pillow + libjpeg-turbo)": curate_pillow}
    for name, factory in (("libvips (pyvips)", libvips), ("OpenCV", opencv)):
        try:
            engines[name] = factory
            factory()
        except ImportError as exc:
            del engines[name]
            print(f"{name}: not installed ({exc}); pip install pyvips pyvips-binary opencv-python-headless")

    print(
        f"{len(images)} images, {SIZE} px border, JPEG q{QUALITY}, one thread, best of {args.repeat}; "
        f"load {os.getloadavg()[0]:.2f}"
    )
    print("| engine | CPU ms/image | vs curate | PSNR dB (median) | mean output KB |")
    print("| --- | --- | --- | --- | --- |")
    runs = {name: factory() for name, factory in engines.items()}
    for run in runs.values():
        run(images[0])  # warm-up: library initialisation is not per-image work
    # Rounds interleave the engines, so a change of load on the machine hits each of them alike.
    rounds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeat):
        for name, run in runs.items():
            rounds[name].append(cpu_ms_per_image(run, images))
    base = None
    for name, run in runs.items():
        ms = min(rounds[name])
        outs = [run(d) for d in images[: args.psnr_sample]]
        quality = statistics.median(psnr(o, r) for o, r in zip(outs, refs, strict=True))
        kb = sum(len(o) for o in outs) / len(outs) / 1024
        base = base or ms
        print(f"| {name} | {ms:.2f} | {base / ms:.2f}x | {quality:.1f} | {kb:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

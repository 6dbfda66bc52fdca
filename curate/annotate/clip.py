"""The `clip` signal: CLIP image-text cosine and normalized embeddings from a checkpoint the user names.

One model per worker process (loaded on first use, kept for every shard the worker gets). Rows are
decoded and tokenized in a thread pool while the model runs on earlier batches (PIL and torch release the
GIL), so decoding costs little beyond the forward pass. Rows are batched by caption length and each text
batch is cut after its longest caption's end-of-text token: the text tower is causal and pools at that
token, so the padding after it cannot change the result, and most alt texts are far shorter than 77 tokens.

Rows without a usable image (a failed download, bytes that do not decode) keep their uid with null values;
a row with an image but no caption gets its image embedding and a null score.
"""

from __future__ import annotations

import functools
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from curate.annotate.decode import DECODE_ERRORS
from curate.annotate.options import Options
from curate.errors import CurateError
from curate.extras import require
from curate.schema import clip_schema

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

CLIP_COLUMNS = ("uid", "status", "image", "caption")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")  # auto: fp16 on a GPU, fp32 on the CPU
META_MODEL, META_SHA256, META_CHECKPOINT, META_PRECISION = (
    b"curate.clip.model",
    b"curate.clip.checkpoint_sha256",
    b"curate.clip.checkpoint",
    b"curate.clip.precision",
)


@dataclass
class Prepared:
    """One model batch, decoded and tokenized in a worker thread."""

    rows: np.ndarray  # positions in the shard batch of the rows with a decoded image
    pixels: np.ndarray  # (B, S, S, 3) uint8
    tokens: torch.Tensor  # (B, T) long, already cut after the longest caption's end-of-text
    has_caption: np.ndarray  # (B,) bool
    decode_errors: int
    seconds: float


class Scorer:
    """A loaded CLIP, its tokenizer and preprocessing, on one device, with a decode thread pool."""

    def __init__(
        self,
        checkpoint: str,
        name: str | None,
        tokenizer: str | None,
        device: str,
        precision: str,
        threads: int | None,
    ):
        self.torch = torch = require("torch", "train")
        from curate.train.preprocess import ImageTransform
        from curate.train.pretrained import load_pretrained

        if threads:
            torch.set_num_threads(threads)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise CurateError("--device cuda: torch sees no CUDA device here; use --device cpu or auto")
        if precision == "auto":
            precision = "fp16" if device == "cuda" else "fp32"
        if precision == "int8" and device != "cpu":
            raise CurateError("--clip-precision int8 (dynamic quantization) runs on the CPU only")
        loaded = load_pretrained(checkpoint, name, tokenizer)
        self.name, self.tokenizer, self.device, self.precision = (
            loaded.name,
            loaded.tokenizer,
            device,
            precision,
        )
        self.dim = loaded.model.config.embed_dim
        self.transform = ImageTransform(loaded.model.config.image_size)
        model = loaded.model
        if precision == "int8":
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model = model.to(device)
        self.autocast = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="clip-decode")
        log.info("clip: %s on %s (%s)", self.name, device, precision)

    def prepare(self, images: list[bytes | None], captions: list[str | None], rows: np.ndarray) -> Prepared:
        start = time.perf_counter()
        kept, pixels, errors = [], [], 0
        for i in rows:
            try:
                pixels.append(self.transform.pixels_from_bytes(images[i]))
                kept.append(i)
            except DECODE_ERRORS as exc:
                errors += 1
                log.debug("clip: cannot decode image of row %d: %s", i, exc)
        texts = [captions[i] or "" for i in kept]
        tokens = self.tokenizer(texts) if texts else self.torch.zeros((0, 1), dtype=self.torch.long)
        if len(texts):
            tokens = tokens[:, : int(tokens.argmax(dim=-1).max()) + 1]
        stacked = np.stack(pixels) if pixels else np.zeros((0, 1, 1, 3), np.uint8)
        has_caption = np.array([captions[i] is not None for i in kept], bool)
        return Prepared(
            np.array(kept, np.int64), stacked, tokens, has_caption, errors, time.perf_counter() - start
        )

    def embed(self, prepared: Prepared) -> tuple[np.ndarray, np.ndarray]:
        """Normalized (B, D) fp32 image and text embeddings."""
        torch = self.torch
        with (
            torch.inference_mode(),
            torch.autocast(self.device, dtype=self.autocast) if self.autocast else nullcontext(),
        ):
            image = self.transform.normalize(prepared.pixels, self.device)
            img = self.model.encode_image(image).float()
            txt = self.model.encode_text(prepared.tokens.to(self.device)).float()
            img = torch.nn.functional.normalize(img, dim=-1)
            txt = torch.nn.functional.normalize(txt, dim=-1)
        return img.cpu().numpy(), txt.cpu().numpy()

    def score(
        self, images: list[bytes | None], captions: list[str | None], usable: np.ndarray, batch_size: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Per row: score (NaN when not scored), image and text embeddings (fp32), whether it was embedded."""
        n = len(images)
        scores = np.full(n, np.nan, np.float32)
        img_emb = np.zeros((n, self.dim), np.float32)
        txt_emb = np.zeros((n, self.dim), np.float32)
        embedded = np.zeros(n, bool)
        candidates = np.flatnonzero(usable)
        # Captions of similar length share a batch, so each batch's text cut (after its longest caption) is
        # shorter; UTF-8 bytes stand in for tokens. Results go back to their rows, so the order is free.
        lengths = [len((captions[i] or "").encode()) for i in candidates]
        candidates = candidates[np.argsort(lengths, kind="stable")]
        futures: list[Future[Prepared]] = [
            self.pool.submit(self.prepare, images, captions, candidates[i : i + batch_size])
            for i in range(0, len(candidates), batch_size)
        ]
        stats = {"decode_errors": 0, "seconds_decode": 0.0, "seconds_forward": 0.0, "seconds_waiting": 0.0}
        for future in futures:
            waited = time.perf_counter()
            prepared = future.result()
            started = time.perf_counter()
            stats["seconds_waiting"] += started - waited
            stats["decode_errors"] += prepared.decode_errors
            stats["seconds_decode"] += prepared.seconds
            if len(prepared.rows):
                img, txt = self.embed(prepared)
                rows = prepared.rows
                img_emb[rows], txt_emb[rows], embedded[rows] = img, txt, True
                cos = np.einsum("bd,bd->b", img, txt)
                scores[rows] = np.where(prepared.has_caption, cos, np.nan)
                progress().update(len(rows))
            stats["seconds_forward"] += time.perf_counter() - started
        return scores, img_emb, txt_emb, embedded, stats


@functools.lru_cache(maxsize=1)
def scorer(
    checkpoint: str, name: str | None, tokenizer: str | None, device: str, precision: str, threads: int | None
) -> Scorer:
    """The worker's model, loaded once for every shard it annotates."""
    return Scorer(checkpoint, name, tokenizer, device, precision, threads)


@functools.lru_cache(maxsize=1)
def progress():
    """One images/s bar per worker process, across its shards."""
    from tqdm import tqdm

    return tqdm(desc="clip", unit="img", dynamic_ncols=True, leave=False)


def check_options(
    checkpoint: str | None, name: str | None, tokenizer: str | None, device: str, precision: str
) -> str:
    """Validate the clip settings once in the driver; returns the checkpoint's sha256 (recorded per file)."""
    if device not in DEVICES:
        raise CurateError(f"unknown device {device!r}: use one of {', '.join(DEVICES)}")
    if precision not in PRECISIONS:
        raise CurateError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if not checkpoint:
        raise CurateError(
            "the clip signal needs weights: --clip-checkpoint FILE_OR_RUN_FOLDER "
            "(and --clip-model NAME unless it is a curate run)"
        )
    require("torch", "train")
    from curate.train.pretrained import check, file_sha256

    check(checkpoint, name, tokenizer)
    return file_sha256(checkpoint)


def scorer_for(opts: Options) -> Scorer:
    if not opts.clip_checkpoint:
        raise CurateError("the clip signal needs weights: --clip-checkpoint FILE (and --clip-model NAME)")
    return scorer(
        opts.clip_checkpoint,
        opts.clip_model,
        opts.clip_tokenizer,
        opts.clip_device,
        opts.clip_precision,
        opts.clip_threads,
    )


def output_schema(opts: Options) -> pa.Schema:
    """This run's schema: the model's embedding width; model and checkpoint in the file metadata."""
    s = scorer_for(opts)
    return clip_schema(
        s.dim,
        {
            META_MODEL: s.name.encode(),
            META_SHA256: opts.clip_sha256.encode(),
            META_CHECKPOINT: str(opts.clip_checkpoint).encode(),
            META_PRECISION: s.precision.encode(),
        },
    )


def job_resources(opts: Options) -> dict[str, float] | None:
    """A GPU share per job on Ray (several small models fit one GPU); none when the user chose the CPU."""
    if opts.clip_device == "cpu":
        return None
    name = opts.clip_model or ""
    return {"num_gpus": 1.0 if "ViT-H" in name else 0.5 if "ViT-L" in name else 0.25}


def _fixed_list(values: np.ndarray, valid: np.ndarray, dim: int) -> pa.Array:
    flat = pa.array(values.astype(np.float16).ravel(), pa.float16())
    return pa.FixedSizeListArray.from_arrays(flat, dim, mask=pa.array(~valid))


def clip_signal(shard: pa.Table, opts: Options) -> tuple[pa.Table, dict]:
    s = scorer_for(opts)
    images = shard.column("image").to_pylist()
    captions = shard.column("caption").to_pylist()
    ok = np.array([st == "success" for st in shard.column("status").to_pylist()], bool)
    usable = ok & np.array([im is not None for im in images], bool)
    scores, img, txt, embedded, timing = s.score(images, captions, usable, opts.clip_batch_size)
    scored = ~np.isnan(scores)
    with_text = embedded & np.array([c is not None for c in captions], bool)
    table = pa.table(
        {
            "uid": shard.column("uid"),
            "clip_score": pa.array(scores, pa.float32(), mask=~scored),
            "image_embedding": _fixed_list(img, embedded, s.dim),
            "text_embedding": _fixed_list(txt, with_text, s.dim),
        },
        schema=output_schema(opts),
    )
    stats = {
        "rows": len(images),
        "images_scored": int(embedded.sum()),
        "not_downloaded": int((~ok).sum()),
        "no_caption": int((embedded & ~with_text).sum()),
        **timing,
    }
    return table, stats

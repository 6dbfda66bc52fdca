"""The training loop: one config dataclass, one visible loop, checkpoints that say everything about the run.

Single process:   curate train DATA -o RUN_DIR --model tiny --steps 500
Multi-GPU / CPU:  torchrun --nproc_per_node N -m curate train DATA -o RUN_DIR ...   (nccl on GPU, gloo on CPU)

RUN_DIR/config.json        the full TrainConfig, model config, world size, versions (written at start)
RUN_DIR/tokenizer.json     the BPE trained on the captions (absent when --tokenizer names a vocabulary)
RUN_DIR/metrics.jsonl      one JSON row per logged step
RUN_DIR/checkpoints/step_NNNNNNN.pt   weights (open_clip key names), optimizer, data position, config,
                                      tokenizer
RUN_DIR/summary.json       final metrics and checkpoint path (written at the end)
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import platform
import time
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from curate import publish
from curate.errors import CurateError
from curate.train.configs import TrainConfig
from curate.train.data import (
    LoaderState,
    ShardStream,
    count_samples,
    iter_captions,
    list_shards,
    make_loader,
    normalize,
)
from curate.train.loss import backward_scale, contrastive_loss, gather_features, replicated
from curate.train.model import CLIP, CLIPConfig, get_config, num_params
from curate.train.pretrained import load_into, read_weights
from curate.train.tokenizer import BytePairTokenizer, Tokenizer, from_spec, load_file

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = "curate-clip-checkpoint/1"
# Fields that must not change on --resume: they decide which samples each step sees, or the model's shape.
RESUME_FIXED = (
    "model",
    "tokenizer",
    "vocab_size",
    "image_size",
    "batch_size",
    "accum_steps",
    "workers",
    "shuffle_buffer",
    "seed",
    "loss",
)


def init_distributed(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); under torchrun joins the process group (nccl on GPU, gloo on CPU)."""
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
        atexit.register(dist.destroy_process_group)
    rank = dist.get_rank() if dist.is_initialized() else 0
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu" if device == "auto" else device)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only.

    Not on gains, biases, embeddings, logit_scale/bias (as CLIP/open_clip).
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exempt = p.ndim < 2 or "embedding" in name or "logit_" in name
        (no_decay if exempt else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: int, cfg: TrainConfig, total: int) -> float:
    """Linear warmup to cfg.lr, then cosine decay to 0 at `total` steps."""
    warmup = min(cfg.warmup_steps, total)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * progress))


def train_step(
    model,
    raw: CLIP,
    micro: list[tuple[torch.Tensor, torch.Tensor]],
    optimizer,
    loss_kind: str = "clip",
    grad_clip: float | None = None,
    autocast=contextlib.nullcontext,
) -> float:
    """One optimizer step over micro-batches with the negatives of the whole global batch.

    With several micro-batches, features of all of them are first computed without gradients; each
    micro-batch is then recomputed with gradients and the loss taken over the full batch, the others
    entering as constants (open_clip's accumulation). The per-micro-batch gradients sum to the exact
    full-batch gradient. Returns the loss of the global batch.
    """
    bias = getattr(raw, "logit_bias", None)
    cached = []
    if len(micro) > 1:
        with torch.no_grad(), autocast():
            cached = [model(images, texts)[:2] for images, texts in micro]
    for j, (images, texts) in enumerate(micro):
        sync = j == len(micro) - 1 or not hasattr(model, "no_sync")
        with contextlib.nullcontext() if sync else model.no_sync():
            with autocast():
                img, txt, scale = model(images, texts)
            if cached:
                img = torch.cat([c[0] for c in cached[:j]] + [img] + [c[0] for c in cached[j + 1 :]])
                txt = torch.cat([c[1] for c in cached[:j]] + [txt] + [c[1] for c in cached[j + 1 :]])
            loss = contrastive_loss(
                loss_kind,
                gather_features(img),
                gather_features(txt),
                replicated(scale, len(micro)),
                None if bias is None else replicated(bias, len(micro)),
            )
            (loss * backward_scale()).backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(raw.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    raw.clamp_logit_scale()
    return loss.item()


def load_pretrained(model: CLIP, path: str, kind: str) -> None:
    """Load pretrained weights in any format curate.train.pretrained reads (OpenAI TorchScript, open_clip
    state_dicts and checkpoints, .safetensors); every key or shape that differs is named. `kind` is kept for
    the CLI's --init-kind: the file says what it is."""
    weights = read_weights(path)
    load_into(model, weights.state_dict, f"--init {path} --init-kind {kind}")


def checkpoint_paths(out_dir: str | Path) -> list[Path]:
    return sorted(Path(out_dir, "checkpoints").glob("step_*.pt"))


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_json(obj, path: Path) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def _build_tokenizer(cfg: TrainConfig, shards: list[str], rank: int, out: Path, context: int) -> Tokenizer:
    if cfg.tokenizer:
        if not Path(cfg.tokenizer).is_file():
            raise CurateError(f"--tokenizer {cfg.tokenizer} does not exist")
        return load_file(cfg.tokenizer, context)
    if cfg.init:
        raise CurateError(
            "--init loads CLIP weights, which need CLIP's vocabulary: "
            "add --tokenizer path/to/bpe_simple_vocab_16e6.txt.gz"
        )
    path = out / "tokenizer.json"
    if rank == 0:
        tok = BytePairTokenizer.train(iter_captions(shards), cfg.vocab_size, context)
        tok.save(str(path))
    if dist.is_initialized():
        dist.barrier()
    return load_file(str(path), context)


def _check_resume(cfg: TrainConfig, saved: dict, world: int, saved_world: int) -> None:
    diffs = [
        f"{k}: {saved.get(k)!r} -> {getattr(cfg, k)!r}"
        for k in RESUME_FIXED
        if saved.get(k) != getattr(cfg, k)
    ]
    if saved_world != world:
        diffs.append(f"world size: {saved_world} -> {world}")
    if diffs:
        raise CurateError(
            "cannot resume exactly with changed settings (" + "; ".join(diffs) + "); "
            "use the original settings, or start a new run directory"
        )


def _normalize_config(cfg: TrainConfig) -> TrainConfig:
    """JSON round trip turns tuples into lists; make the live config look like a saved one for comparison."""
    return TrainConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))


def train(config: TrainConfig) -> dict:
    """Train (or resume) a CLIP model; returns the final metrics and the last checkpoint's path."""
    cfg = _normalize_config(config)
    # Before the ranks meet: no rank has created anything yet when each one checks the run folder.
    publish.check_replaceable(str(cfg.out_dir), "train")
    rank, world, device = init_distributed(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    if rank == 0:
        publish.mark(str(out), "train")
    shards = list_shards(cfg.data)
    existing = checkpoint_paths(out)
    if existing and not cfg.resume:
        raise CurateError(
            f"{out} already holds checkpoints; pass --resume to continue it, or choose a new -o"
        )
    ckpt = (
        torch.load(existing[-1], map_location="cpu", weights_only=False) if cfg.resume and existing else None
    )
    if ckpt:
        _check_resume(cfg, ckpt["config"], world, ckpt["world_size"])

    steps = cfg.steps
    if steps is None:
        n = count_samples(shards) if cfg.epochs else None
        if n is None:
            raise CurateError("say how long to train: --steps N (or --epochs E with Parquet shards)")
        steps = max(1, math.ceil(cfg.epochs * n / cfg.batch_size))
    if cfg.batch_size % (world * cfg.accum_steps):
        raise CurateError(
            f"--batch-size {cfg.batch_size} must divide evenly over {world} ranks x "
            f"{cfg.accum_steps} accumulation steps"
        )
    micro_bs = cfg.batch_size // (world * cfg.accum_steps)

    base = get_config(cfg.model)
    tok = (
        from_spec(ckpt["tokenizer"])
        if ckpt
        else _build_tokenizer(cfg, shards, rank, out, base.context_length)
    )
    # OpenAI's weights were trained with QuickGELU: with exact GELU every activation would be quietly off.
    quick_gelu = base.quick_gelu or bool(cfg.init and cfg.init_kind == "openai")
    mcfg = dataclasses.replace(
        base,
        vocab_size=tok.vocab_size,
        siglip=cfg.loss == "siglip",
        image_size=cfg.image_size or base.image_size,
        quick_gelu=quick_gelu,
    )
    torch.manual_seed(cfg.seed)
    raw = CLIP(mcfg)
    if cfg.init and not ckpt:
        load_pretrained(raw, cfg.init, cfg.init_kind)
    raw.set_grad_checkpointing(cfg.grad_checkpointing)
    raw.to(device)
    optimizer = torch.optim.AdamW(
        param_groups(raw, cfg.weight_decay),
        lr=cfg.lr,
        betas=tuple(cfg.betas),
        eps=cfg.eps,
        fused=device.type == "cuda",
        foreach=device.type != "cuda",
    )
    step = 0
    if ckpt:
        raw.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step = ckpt["step"]
        log.info("resumed %s at step %d", existing[-1], step)
    model = torch.compile(raw) if cfg.compile else raw
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    state = LoaderState(**ckpt["data"][rank]) if ckpt else None
    stream = ShardStream(
        shards,
        tok,
        mcfg.image_size,
        micro_bs,
        rank=rank,
        world_size=world,
        workers=cfg.workers,
        seed=cfg.seed,
        shuffle_buffer=cfg.shuffle_buffer,
        state=state,
    )
    state = stream.state
    batches = iter(make_loader(stream, pin_memory=device.type == "cuda"))

    metrics_path = out / "metrics.jsonl"
    if rank == 0:
        _write_json(
            {
                "train_config": dataclasses.asdict(cfg),
                "model_config": dataclasses.asdict(mcfg),
                "num_params": num_params(raw),
                "world_size": world,
                "steps": steps,
                "micro_batch": micro_bs,
                "shards": len(shards),
                "tokenizer": tok.to_spec()["kind"],
                "torch": torch.__version__,
                "python": platform.python_version(),
                "device": str(device),
                "bf16": bf16,
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            out / "config.json",
        )
        _truncate_metrics(metrics_path, step)
    bar = tqdm(total=steps, initial=step, desc="train", unit="step", disable=rank != 0 or not cfg.progress)
    row, last_ckpt, t0, t_samples = {}, (existing[-1] if ckpt else None), time.perf_counter(), 0
    while step < steps:
        lr = lr_at(step, cfg, steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        micro, keys = [], []
        for _ in range(cfg.accum_steps):
            batch = next(batches)
            state.update(batch)
            micro.append((normalize(batch["images"], device), batch["texts"].to(device, non_blocking=True)))
            keys += batch["keys"]
        loss = train_step(model, raw, micro, optimizer, cfg.loss, cfg.grad_clip, autocast)
        step += 1
        t_samples += cfg.batch_size
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")
        if step % cfg.log_every == 0 or step == steps:
            elapsed = time.perf_counter() - t0
            row = {
                "step": step,
                "samples": step * cfg.batch_size,
                "loss": loss,
                "lr": lr,
                "logit_scale": raw.logit_scale.exp().item(),
                "samples_per_s": t_samples / elapsed,
                "bad_samples": _all_ranks_bad(state.bad_total()),
                "batch_sha1": hashlib.sha1("\n".join(keys).encode()).hexdigest()[:16],
                "time": time.time(),
            }
            t0, t_samples = time.perf_counter(), 0
            if rank == 0:
                with open(metrics_path, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
        if step % cfg.save_every == 0 or step == steps:
            last_ckpt = save_checkpoint(out, raw, optimizer, step, cfg, tok, state, world, row, rank)
    bar.close()
    if (
        last_ckpt is None or int(Path(last_ckpt).stem.split("_")[1]) != step
    ):  # e.g. --steps 0: just wrap the weights
        last_ckpt = save_checkpoint(out, raw, optimizer, step, cfg, tok, state, world, row, rank)
    result = {"checkpoint": str(last_ckpt), "step": step, **{k: v for k, v in row.items() if k != "time"}}
    if rank == 0:
        _write_json(result, out / "summary.json")
    return result


def _all_ranks_bad(bad: dict[str, int]) -> dict[str, int]:
    """Bad-sample counts summed over ranks (every rank must call this at the same step)."""
    if not dist.is_initialized():
        return bad
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, bad)
    total: dict[str, int] = {}
    for part in parts:
        for k, v in part.items():
            total[k] = total.get(k, 0) + v
    return total


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop rows logged after the checkpoint we resume from, so the file reads as one uninterrupted run."""
    if not path.exists():
        return
    rows = [
        line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step
    ]
    path.write_text("".join(r + "\n" for r in rows))


def save_checkpoint(
    out: Path,
    raw: CLIP,
    optimizer,
    step: int,
    cfg: TrainConfig,
    tok: Tokenizer,
    state: LoaderState,
    world: int,
    metrics: dict,
    rank: int,
) -> Path:
    """Atomically write step_NNNNNNN.pt with everything needed to resume exactly or to evaluate.

    Keep the newest few.
    """
    states = [dataclasses.asdict(state)]
    if dist.is_initialized():
        states = [None] * world
        dist.all_gather_object(states, dataclasses.asdict(state))
    path = out / "checkpoints" / f"step_{step:07d}.pt"
    if rank == 0:
        _atomic_save(
            {
                "format": CHECKPOINT_FORMAT,
                "step": step,
                "config": dataclasses.asdict(cfg),
                "model_name": cfg.model,
                "model_config": dataclasses.asdict(raw.config),
                "state_dict": raw.state_dict(),
                "optimizer": optimizer.state_dict(),
                "tokenizer": tok.to_spec(),
                "data": states,
                "world_size": world,
                "metrics": metrics,
            },
            path,
        )
        for old in checkpoint_paths(out)[: -cfg.keep_checkpoints]:
            old.unlink()
    if dist.is_initialized():
        dist.barrier()
    return path


def model_from_checkpoint(ckpt: dict) -> CLIP:
    model = CLIP(CLIPConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model

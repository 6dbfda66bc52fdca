"""Evaluate a CLIP checkpoint: zero-shot classification, image-text retrieval, and overlap-aware accuracy.

Zero-shot (CLIP section 3.1.2): each class name is put into prompt templates, the text embeddings are
averaged into one classifier weight per class, an image is assigned the class of highest cosine similarity.
Overlap-aware (CLIP section 5): with `curate overlap`'s per-image flags for the benchmark, accuracy is
reported on All images, on the Clean ones (no near-duplicate in training) and on the Overlap ones; the
headline All - Clean says how much contamination inflated the result.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from curate.dedup import evalsets
from curate.errors import CurateError
from curate.train.data import DECODE_ERRORS, eval_image, iter_eval, list_shards, normalize
from curate.train.model import CLIP
from curate.train.tokenizer import Tokenizer, from_spec
from curate.train.train import CHECKPOINT_FORMAT, checkpoint_paths, model_from_checkpoint

log = logging.getLogger(__name__)

TEMPLATES = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a {} in the picture.",
    "a close-up photo of a {}.",
    "a {}.",
)


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[CLIP, Tokenizer, dict]:
    """(model in eval mode, its tokenizer, the checkpoint dict).

    From a .pt file or a run directory (its latest checkpoint).
    """
    path = Path(path)
    if path.is_dir():
        found = checkpoint_paths(path)
        if not found:
            raise CurateError(
                f"{path} has no checkpoints/step_*.pt; point at a checkpoint file or a run directory"
            )
        path = found[-1]
    if not path.is_file():
        raise CurateError(f"checkpoint {path} does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CurateError(
            f"{path} is not a curate checkpoint; wrap OpenAI/open_clip weights into one with `curate "
            "train DATA -o RUN --model ViT-B-32 --init CKPT --tokenizer VOCAB --steps 0`"
        )
    ckpt["path"] = str(path)
    model = model_from_checkpoint(ckpt).to(device).eval()
    return model, from_spec(ckpt["tokenizer"]), ckpt


def _autocast(device: str):
    return (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if str(device).startswith("cuda")
        else torch.autocast("cpu", enabled=False)
    )


@torch.no_grad()
def embed_images(model: CLIP, images: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, E) unit vectors (float32, on CPU)."""
    with _autocast(device):
        return model.encode_image(normalize(torch.from_numpy(images), device), normalize=True).float().cpu()


@torch.no_grad()
def embed_texts(
    model: CLIP, tokenizer: Tokenizer, texts: list[str], device: str = "cpu", batch_size: int = 256
) -> torch.Tensor:
    out = []
    for s in range(0, len(texts), batch_size):
        with _autocast(device):
            ids = tokenizer(texts[s : s + batch_size]).to(device)
            out.append(model.encode_text(ids, normalize=True).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, model.config.embed_dim)


def classifier(
    model: CLIP, tokenizer: Tokenizer, classes: list[str], templates=TEMPLATES, device: str = "cpu"
) -> torch.Tensor:
    """(C, E): per class, the renormalised mean of its prompt embeddings."""
    texts = [t.format(c) for c in classes for t in templates]
    emb = embed_texts(model, tokenizer, texts, device).view(len(classes), len(templates), -1).mean(1)
    return torch.nn.functional.normalize(emb, dim=-1)


def _labelled_images(data: str, image_size: int):
    """(eval_ids, labels, (B, H, W, 3) uint8) batches.

    From a class-folder tree or a Parquet with a label column.
    """
    for batch in evalsets.read(data, batch_size=128):
        if batch.images is None:
            raise CurateError(f"{data}: zero-shot evaluation needs images, not a curate dataset")
        ids, labels, images = [], [], []
        for eid, label, img in zip(batch.ids, batch.labels, batch.images, strict=False):
            if label is None:
                raise CurateError(
                    f"{data}: item {eid} has no label (use class sub-folders or a 'label' column)"
                )
            try:
                images.append(eval_image(img, image_size))
            except (*DECODE_ERRORS, TypeError):
                log.warning("skipping undecodable image %s", eid)
                continue
            ids.append(eid)
            labels.append(label)
        if ids:
            yield ids, labels, np.stack(images)


def zero_shot(
    checkpoint, data: str, templates=TEMPLATES, classes: list[str] | None = None, device: str = "cpu"
) -> dict:
    """Top-1/top-5 accuracy on labelled images; classes default to the labels present (sorted).

    `checkpoint` is a path or an already loaded (model, tokenizer, ckpt) triple. The result holds
    per-image predictions under "predictions" (eval_id, label, predicted, correct) for overlap_aware().
    """
    model, tok, _ = load_checkpoint(checkpoint, device) if isinstance(checkpoint, (str, Path)) else checkpoint
    ids, labels, feats = [], [], []  # embeddings, not pixels, are kept: ImageNet's 50k images fit in 100 MB
    for batch_ids, batch_labels, images in tqdm(
        _labelled_images(data, model.config.image_size), desc="zero-shot", unit="batch", leave=False
    ):
        feats.append(embed_images(model, images, device))
        ids += batch_ids
        labels += batch_labels
    if not ids:
        raise CurateError(f"{data} holds no decodable labelled images")
    present = sorted(set(labels))
    classes = list(classes or present)
    unknown = sorted(set(present) - set(classes))
    if unknown:
        raise CurateError(f"labels {unknown[:5]} are not among the given classes")
    weights = classifier(model, tok, [c.replace("_", " ") for c in classes], templates, device)
    k = min(5, len(classes))
    best = (torch.cat(feats) @ weights.t()).topk(k, dim=-1).indices  # (N, k)
    index = {c: i for i, c in enumerate(classes)}
    target = torch.tensor([index[lab] for lab in labels])
    hit1 = best[:, 0] == target
    hitk = (best == target[:, None]).any(-1)
    preds = [
        {"eval_id": i, "label": lab, "predicted": classes[int(p)], "correct": bool(h)}
        for i, lab, p, h in zip(ids, labels, best[:, 0], hit1, strict=False)
    ]
    n = len(ids)
    return {
        "n": n,
        "classes": len(classes),
        "top1": float(hit1.float().mean()),
        f"top{k}": float(hitk.float().mean()),
        "chance_top1": 1 / len(classes),
        "templates": list(templates),
        "predictions": preds,
    }


def overlap_aware(result: dict, flags_path: str) -> dict:
    """Accuracy on All, Clean and Overlap subsets.

    Predictions are joined to `curate overlap`'s eval flags by eval_id.
    """
    if not Path(flags_path).is_file():
        raise CurateError(
            f"overlap flags {flags_path} do not exist; run `curate overlap DATASET --benchmark ...` first"
        )
    table = pq.read_table(flags_path, columns=["eval_id", "overlapping"])
    eval_ids = table.column("eval_id").to_pylist()
    flags = dict(zip(eval_ids, table.column("overlapping").to_pylist(), strict=False))
    preds = result["predictions"]
    matched = [p for p in preds if p["eval_id"] in flags]
    if not matched:
        raise CurateError(
            f"no eval_id in {flags_path} matches the evaluated images (ids look like "
            f"{preds[0]['eval_id']!r} here and {next(iter(flags), None)!r} there): was overlap run "
            "on the same benchmark folder or Parquet?"
        )

    def acc(rows):
        return sum(r["correct"] for r in rows) / len(rows) if rows else None

    clean = [p for p in matched if not flags[p["eval_id"]]]
    over = [p for p in matched if flags[p["eval_id"]]]
    out = {
        "all": acc(matched),
        "clean": acc(clean),
        "overlap": acc(over),
        "n_all": len(matched),
        "n_clean": len(clean),
        "n_overlap": len(over),
        "unmatched": len(preds) - len(matched),
    }
    out["all_minus_clean"] = out["all"] - out["clean"] if clean else None
    out["overlap_minus_clean"] = out["overlap"] - out["clean"] if clean and over else None
    return out


@torch.no_grad()
def retrieval(checkpoint, data: str, device: str = "cpu", ks=(1, 5, 10)) -> dict:
    """Image->text and text->image recall@K on a captioned Parquet (or shard folder).

    Row i's caption is its match.
    """
    model, tok, _ = load_checkpoint(checkpoint, device) if isinstance(checkpoint, (str, Path)) else checkpoint
    img, txt = [], []
    for _, captions, images in iter_eval(list_shards(data), model.config.image_size, batch_size=128):
        img.append(embed_images(model, images, device))
        txt.append(embed_texts(model, tok, [c or "" for c in captions], device))
    if not img:
        raise CurateError(f"{data} holds no decodable captioned images")
    sim = torch.cat(img) @ torch.cat(txt).t()  # (N, N)
    truth = torch.arange(sim.shape[0])
    # rank of the true match = how many candidates score strictly higher
    i2t = (sim > sim[truth, truth][:, None]).sum(1)
    t2i = (sim.t() > sim[truth, truth][:, None]).sum(1)
    out = {"n": int(sim.shape[0])}
    for k in ks:
        out[f"image_to_text_R@{k}"] = float((i2t < k).float().mean())
        out[f"text_to_image_R@{k}"] = float((t2i < k).float().mean())
    return out

"""Contrastive losses over the global batch: CLIP's symmetric InfoNCE and SigLIP's pairwise sigmoid.

Under DDP every rank all-gathers the features of all ranks and computes the loss over the whole global
batch; gradients flow only into its own (local) slice, as in open_clip's ClipLoss. Summed over ranks
those slices give exactly the single-process gradient; DDP however *averages* gradients, so the loss that
is back-propagated is multiplied by the world size (`backward_scale`) and DDP training equals
single-process training on the same global batch (parameters used whole on every rank, the temperature
and bias, go through `replicated`). The same identity makes gradient accumulation exact:
features of the other micro-batches enter as constants (see train.py).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def gather_features(local: torch.Tensor) -> torch.Tensor:
    """(B, E) on each rank -> (world*B, E) in rank order; only this rank's slice carries gradients."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local
    parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, local.detach().contiguous())
    parts[dist.get_rank()] = local
    return torch.cat(parts)


def backward_scale() -> int:
    """Factor that undoes DDP's gradient averaging for a loss whose gradient reaches only local features."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def replicated(param: torch.Tensor, micro_batches: int = 1) -> torch.Tensor:
    """A parameter used whole in every rank's and micro-batch's loss (logit_scale, logit_bias).

    Same value, gradient divided by the number of copies.

    Its gradient is already complete in each of those losses; summed over micro-batches and, after
    `backward_scale`, averaged by DDP, it would otherwise be world x micro-batches times too large.
    """
    copies = backward_scale() * micro_batches
    return param if copies == 1 else param / copies + (param * (1 - 1 / copies)).detach()


def clip_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy over (N, N) similarities; pair i is the positive of row and column i."""
    logits = logit_scale * image @ text.t()  # (N, N)
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def siglip_loss(
    image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, logit_bias: torch.Tensor
) -> torch.Tensor:
    """Every (image, text) pair is a binary problem: +1 on the diagonal, -1 elsewhere; summed per image."""
    logits = logit_scale * image @ text.t() + logit_bias  # (N, N)
    signs = 2 * torch.eye(logits.shape[0], device=logits.device, dtype=logits.dtype) - 1
    return -F.logsigmoid(signs * logits).sum() / logits.shape[0]


def contrastive_loss(
    kind: str,
    image: torch.Tensor,
    text: torch.Tensor,
    logit_scale: torch.Tensor,
    logit_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """The loss of the whole (already gathered) batch, in at least float32 whatever the autocast dtype."""
    dtype = torch.promote_types(image.dtype, torch.float32)
    image, text, logit_scale = image.to(dtype), text.to(dtype), logit_scale.to(dtype)
    if kind == "clip":
        return clip_loss(image, text, logit_scale)
    if kind == "siglip":
        if logit_bias is None:
            raise ValueError("the sigmoid loss needs a model built with siglip=True (it owns logit_bias)")
        return siglip_loss(image, text, logit_scale, logit_bias.to(dtype))
    raise ValueError(f"unknown loss {kind!r}; choose clip or siglip")

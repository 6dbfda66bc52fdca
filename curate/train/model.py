"""CLIP: a ViT image tower and a causal Transformer text tower trained to agree (Radford et al. 2021).

Parameter names and shapes follow open_clip's `CLIP` exactly (its model_configs/*.json),
so OpenAI/open_clip checkpoints load here and checkpoints saved here load there. The blocks are the
pre-LN residual blocks of the paper; attention keeps nn.MultiheadAttention's packed in_proj layout but
runs through F.scaled_dot_product_attention (the causal text mask is `is_causal`, not a buffer).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from curate.train.configs import CLIPConfig, get_config

__all__ = ["CLIP", "CLIPConfig", "QuickGELU", "get_config", "num_params"]  # get_config: the architectures


class Attention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameter layout (in_proj_*, out_proj)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).split(C, dim=-1)
        q, k, v = (
            t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v)
        )  # (B, H, T, D)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))


class QuickGELU(nn.Module):
    """The sigmoid approximation of GELU that OpenAI's CLIP was trained with; its weights need it back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """Pre-LN block: x + attn(ln_1(x)), then x + mlp(ln_2(x)), exact GELU or QuickGELU as in open_clip."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, quick_gelu: bool = False):
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.ln_1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        act = QuickGELU() if quick_gelu else nn.GELU()
        self.mlp = nn.Sequential(
            OrderedDict(
                [("c_fc", nn.Linear(width, hidden)), ("gelu", act), ("c_proj", nn.Linear(hidden, width))]
            )
        )

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), causal)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(
        self, width: int, layers: int, heads: int, mlp_ratio: float, causal: bool, quick_gelu: bool = False
    ):
        super().__init__()
        self.causal = causal
        self.grad_checkpointing = False
        self.resblocks = nn.ModuleList(
            [ResidualAttentionBlock(width, heads, mlp_ratio, quick_gelu) for _ in range(layers)]
        )
        # open_clip's init: attention and MLP scaled by width and depth.
        proj_std = width**-0.5 * (2 * layers) ** -0.5
        for block in self.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=width**-0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * width) ** -0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        for block in self.resblocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, self.causal, use_reentrant=False)
            else:
                x = block(x, self.causal)
        return x


class VisionTransformer(nn.Module):
    """Patchify with a bias-free conv, prepend a class token, add positions, pool the class token."""

    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        width, grid = cfg.vision_width, cfg.image_size // cfg.patch_size
        scale = width**-0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=cfg.patch_size, stride=cfg.patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(
            width, cfg.vision_layers, cfg.vision_heads, cfg.mlp_ratio, causal=False, quick_gelu=cfg.quick_gelu
        )
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, cfg.embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, E)
        x = self.conv1(x).flatten(2).transpose(1, 2)  # (B, grid*grid, C)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0]) @ self.proj


class CLIP(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.config = cfg
        # Registration order reproduces open_clip's state_dict order.
        self.positional_embedding = nn.Parameter(torch.empty(cfg.context_length, cfg.text_width))
        self.text_projection = nn.Parameter(torch.empty(cfg.text_width, cfg.embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0 if cfg.siglip else 1 / 0.07)))
        if cfg.siglip:
            self.logit_bias = nn.Parameter(torch.tensor(-10.0))
        self.visual = VisionTransformer(cfg)
        self.transformer = Transformer(
            cfg.text_width,
            cfg.text_layers,
            cfg.text_heads,
            cfg.mlp_ratio,
            causal=True,
            quick_gelu=cfg.quick_gelu,
        )
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.text_width)
        self.ln_final = nn.LayerNorm(cfg.text_width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=cfg.text_width**-0.5)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.visual.transformer.grad_checkpointing = enable
        self.transformer.grad_checkpointing = enable

    def encode_image(self, image: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        x = self.visual(image)
        return F.normalize(x, dim=-1) if normalize else x

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """(B, T) token ids -> (B, E), pooled at the end-of-text token (the highest id, as in CLIP)."""
        x = self.token_embedding(text) + self.positional_embedding[: text.shape[1]].to(
            self.token_embedding.weight.dtype
        )
        x = self.ln_final(self.transformer(x))  # (B, T, C)
        x = x[torch.arange(x.shape[0], device=x.device), text.argmax(dim=-1)] @ self.text_projection
        return F.normalize(x, dim=-1) if normalize else x

    def forward(
        self, image: torch.Tensor, text: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """L2-normalised image and text features, and exp(logit_scale)."""
        return (
            self.encode_image(image, normalize=True),
            self.encode_text(text, normalize=True),
            self.logit_scale.exp(),
        )

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        """Keep the temperature at or below 100, as CLIP does after every optimizer step."""
        self.logit_scale.clamp_(0, math.log(100))


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

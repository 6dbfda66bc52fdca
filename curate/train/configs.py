"""The trainer's settings and the CLIP architectures by name: importable without torch (the CLI builds its
options from TrainConfig's fields, curate.settings)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class CLIPConfig:
    embed_dim: int
    image_size: int
    patch_size: int
    vision_width: int
    vision_layers: int
    vision_heads: int
    text_width: int
    text_layers: int
    text_heads: int
    context_length: int = 77
    vocab_size: int = 49408
    mlp_ratio: float = 4.0
    siglip: bool = False  # adds a learnable logit_bias (open_clip's init_logit_bias) for the sigmoid loss
    quick_gelu: bool = False  # x * sigmoid(1.702 x): what OpenAI, MetaCLIP and DFN weights were trained with


CONFIGS: dict[str, CLIPConfig] = {
    # For tests and CPU demos: 64 px images, 8 px patches (64 tokens), narrow towers.
    "tiny": CLIPConfig(
        embed_dim=128,
        image_size=64,
        patch_size=8,
        vision_width=192,
        vision_layers=4,
        vision_heads=3,
        text_width=128,
        text_layers=3,
        text_heads=2,
        vocab_size=4096,
    ),
    # open_clip's model_configs/<name>.json (vision heads = width / head_width: 64 unless the JSON says).
    "ViT-B-32": CLIPConfig(512, 224, 32, 768, 12, 12, 512, 12, 8),
    "ViT-B-16": CLIPConfig(512, 224, 16, 768, 12, 12, 512, 12, 8),
    "ViT-L-14": CLIPConfig(768, 224, 14, 1024, 24, 16, 768, 12, 12),
    "ViT-H-14": CLIPConfig(1024, 224, 14, 1280, 32, 16, 1024, 24, 16),
}
# The `-quickgelu` variants differ only in the MLP activation (open_clip's `"quick_gelu": true`).
CONFIGS.update(
    {
        f"{name}-quickgelu": replace(CONFIGS[name], quick_gelu=True)
        for name in ("ViT-B-32", "ViT-B-16", "ViT-L-14")
    }
)


def get_config(name: str, **overrides) -> CLIPConfig:
    if name not in CONFIGS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(CONFIGS)}")
    return replace(CONFIGS[name], **overrides)


def _setting(default: Any, help: str, **meta: Any) -> Any:
    """A field with its CLI/recipe help (curate.settings builds `--flag` and reads the recipe key from it)."""
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class TrainConfig:
    data: list[str] | str  # shard files or folders (the command's DATA arguments)
    out_dir: str  # the run directory (the command's -o RUN_DIR)
    model: str = _setting("tiny", "architecture", choices=tuple(CONFIGS))
    tokenizer: str | None = _setting(
        None,
        "a saved tokenizer.json or CLIP's bpe_simple_vocab_16e6.txt.gz "
        "(default: train a byte-level BPE on the captions)",
        metavar="PATH",
    )
    vocab_size: int = _setting(4096, "size of the BPE trained on the captions")
    image_size: int | None = _setting(None, "override the model's input size")
    batch_size: int = _setting(64, "global batch: over all ranks and accumulation micro-batches")
    accum_steps: int = _setting(1, "micro-batches per step (exact full-batch loss)")
    steps: int | None = _setting(None, "optimizer steps")
    epochs: float | None = _setting(None, "passes over the data instead of --steps (Parquet shards only)")
    lr: float = _setting(5e-4, "peak learning rate (linear warmup, cosine decay)")
    weight_decay: float = _setting(0.2, "AdamW weight decay on matrices")
    betas: tuple[float, ...] = _setting((0.9, 0.98), "AdamW betas, comma-separated")
    eps: float = _setting(1e-6, "AdamW epsilon")
    warmup_steps: int = _setting(100, "linear warmup steps")
    grad_clip: float | None = _setting(1.0, "max gradient norm (0: off)")
    loss: str = _setting("clip", "clip (softmax) or siglip (sigmoid)", choices=("clip", "siglip"))
    precision: str = _setting(
        "auto", "auto: bf16 autocast on GPU, fp32 on CPU", choices=("auto", "bf16", "fp32")
    )
    grad_checkpointing: bool = _setting(False, "recompute activations to save memory")
    compile: bool = _setting(False, "torch.compile the model")
    workers: int = _setting(2, "data loader processes per rank (0: main process)")
    shuffle_buffer: int = _setting(1000, "samples in the streaming shuffle buffer")
    seed: int = _setting(0, "seed of the data order and the initialization")
    save_every: int = _setting(500, "checkpoint every N steps")
    keep_checkpoints: int = _setting(2, "checkpoints kept in RUN_DIR/checkpoints")
    log_every: int = _setting(10, "log metrics every N steps")
    init: str | None = _setting(
        None,
        "fine-tune from pretrained weights (a state_dict file, or an OpenAI "
        "TorchScript archive with --init-kind openai); needs --tokenizer CLIP_VOCAB",
        metavar="CHECKPOINT",
    )
    init_kind: str = _setting(
        "open_clip",
        "open_clip: open_clip key names; openai: TorchScript or state_dict with OpenAI's extra keys",
        choices=("open_clip", "openai"),
    )
    resume: bool = _setting(False, "continue RUN_DIR from its latest checkpoint, exactly")
    device: str = _setting("auto", "auto, cpu, cuda")
    threads: int | None = _setting(None, "CPU threads for the model (default: torch's; 1 on a busy machine)")
    progress: bool = _setting(True, "show a progress bar")
    extra: dict = field(default_factory=dict)  # free-form notes stored with the run

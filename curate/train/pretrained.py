"""Load CLIP weights that users bring, in every format they come in, into curate's CLIP, exactly.

Formats, detected from the file itself:
- OpenAI's TorchScript archive (ViT-B-32.pt...): a zip with `code/` and `constants.pkl`; its state_dict is
  open_clip's layout plus three scalar entries. OpenAI trained with QuickGELU, so these run as `-quickgelu`.
- a state_dict (.pt/.bin via torch.load with `weights_only`, or .safetensors), keys as open_clip names them;
- an open_clip training checkpoint (`{"state_dict": ..., "epoch": ...}`, `module.` prefixes from DDP);
- a curate run folder (its newest checkpoints/step_*.pt) or one of its checkpoint files: the model config and
  the tokenizer come with it.
Nothing is downloaded: a missing file is an error, and so is a key or shape that does not fit the model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import pickle
import warnings
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from curate.errors import CurateError
from curate.extras import require
from curate.train.configs import CONFIGS, CLIPConfig
from curate.train.model import CLIP
from curate.train.tokenizer import Tokenizer, from_spec, load_file

log = logging.getLogger(__name__)

OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")  # scalars in OpenAI's archives
CLIP_VOCAB = "bpe_simple_vocab_16e6.txt.gz"


@dataclass(frozen=True)
class Weights:
    """A checkpoint's tensors and what the file says about itself."""

    state_dict: dict[str, torch.Tensor]
    kind: str  # torchscript | safetensors | state_dict | open_clip_checkpoint | curate
    path: Path  # the file read (for a run folder: its newest checkpoint)
    model_config: dict | None = None  # curate checkpoints only
    model_name: str | None = None  # curate checkpoints only
    tokenizer_spec: dict | None = None  # curate checkpoints only


@dataclass
class Pretrained:
    model: CLIP
    name: str  # the config it runs as (e.g. ViT-B-32-quickgelu)
    tokenizer: Tokenizer
    kind: str
    path: Path


def checkpoint_file(path: str | Path) -> Path:
    """The weights file a user named: the file itself, or a curate run folder's newest checkpoint."""
    p = Path(path)
    if p.is_dir():
        found = sorted(p.glob("checkpoints/step_*.pt"))
        if not found:
            raise CurateError(
                f"{p} is a folder without checkpoints/step_*.pt: name a weights file or a curate "
                "run folder (`curate train -o FOLDER`)"
            )
        return found[-1]
    if not p.is_file():
        raise CurateError(
            f"checkpoint {p} does not exist (curate never downloads weights: name a local file)"
        )
    return p


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(checkpoint_file(path), "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in zf.namelist())


def read_weights(path: str | Path) -> Weights:
    """Read any supported checkpoint into fp32 tensors with open_clip's key names."""
    file = checkpoint_file(path)
    meta: dict = {}
    if file.suffix == ".safetensors":
        state, kind = require("safetensors.torch", "train").load_file(str(file)), "safetensors"
    elif _is_torchscript(file):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript deprecation notices
            state, kind = torch.jit.load(str(file), map_location="cpu").state_dict(), "torchscript"
    else:
        try:
            # mmap: tensors are read when used, so checking shapes costs no I/O and loading reads once
            obj = torch.load(file, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(file))
        except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
            raise CurateError(
                f"{file} is not a checkpoint curate can read safely ({str(exc).splitlines()[0]}): "
                "save its state_dict with torch.save(model.state_dict(), path) "
                "or use .safetensors"
            ) from exc
        kind = "state_dict"
        if isinstance(obj, dict) and "model_config" in obj and "state_dict" in obj:
            kind = "curate"
            meta = {
                "model_config": obj["model_config"],
                "model_name": obj.get("model_name"),
                "tokenizer_spec": obj.get("tokenizer"),
            }
        elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            kind = "open_clip_checkpoint"
        state = obj["state_dict"] if kind != "state_dict" else obj
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CurateError(f"{file} holds no state_dict of tensors (found {type(state).__name__})")
    state = {
        k.removeprefix("module."): v.float() if v.is_floating_point() else v
        for k, v in state.items()
        if k not in OPENAI_EXTRA_KEYS
    }
    return Weights(state, kind, file, **meta)


def load_into(model: CLIP, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a state_dict that fits exactly; otherwise name the missing, unexpected and misshapen keys."""
    check_keys(model, state, source)
    model.load_state_dict(state)


def check_keys(model: CLIP, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise CurateError naming every key the model lacks or does not expect, and every shape that differs."""
    own = model.state_dict()
    shapes = [
        f"{k}: {tuple(state[k].shape)} in the file vs {tuple(v.shape)} in the model"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    missing = [f"missing {k}" for k in own if k not in state]
    unexpected = [f"unexpected {k}" for k in state if k not in own]
    problems = (
        shapes[:3] + missing[:3] + unexpected[:3]
    )  # a few of each kind, shapes first: they say the most
    if problems:
        counts = f"{len(shapes)} shapes differ, {len(missing)} keys missing, {len(unexpected)} unexpected"
        shown = f"{counts}: " + "; ".join(problems)
        raise CurateError(
            f"{source} does not fit the model: {shown}. Check the model name (open_clip's "
            f"names: {', '.join(n for n in CONFIGS if n != 'tiny')})"
        )


def model_config(name: str | None, weights: Weights) -> tuple[str, CLIPConfig]:
    """The config to run: a curate checkpoint's own, else the named one (with QuickGELU for OpenAI's)."""
    if weights.kind == "curate":
        cfg = CLIPConfig(**weights.model_config)
        return name or weights.model_name or "curate", cfg
    if not name:
        raise CurateError(
            f"{weights.path} does not say which model it is: name it with --clip-model "
            f"(one of {', '.join(n for n in CONFIGS if n != 'tiny')})"
        )
    if name not in CONFIGS:
        raise CurateError(f"unknown model {name!r}: choose one of {', '.join(CONFIGS)}")
    cfg = CONFIGS[name]
    if weights.kind == "torchscript" and not cfg.quick_gelu:
        # open_clip does the same: OpenAI's weights were trained with QuickGELU, whatever the name says.
        log.warning(
            "%s is an OpenAI TorchScript archive, trained with QuickGELU: running %s with QuickGELU",
            weights.path,
            name,
        )
        name, cfg = (
            f"{name}-quickgelu" if f"{name}-quickgelu" in CONFIGS else name,
            replace(cfg, quick_gelu=True),
        )
    return name, cfg


def clip_tokenizer(path: str | None) -> Tokenizer:
    """CLIP's BPE vocabulary: the file named, else the one in an installed open_clip (found, not imported)."""
    if path:
        if not Path(path).is_file():
            raise CurateError(f"tokenizer file {path} does not exist")
        return load_file(path)
    spec = importlib.util.find_spec("open_clip")
    if spec and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            if (Path(folder) / CLIP_VOCAB).is_file():
                return load_file(str(Path(folder) / CLIP_VOCAB))
    raise CurateError(
        f"pretrained CLIP weights need CLIP's vocabulary: pass --clip-tokenizer PATH/{CLIP_VOCAB} "
        "(shipped inside the open_clip_torch and openai-clip packages)"
    )


def check(checkpoint: str | Path, name: str | None = None, tokenizer: str | None = None) -> str:
    """Fail early, without building the model: the weights fit `name` and a tokenizer is at hand. Returns the
    name the model runs as."""
    weights = read_weights(checkpoint)
    name, cfg = model_config(name, weights)
    with torch.device("meta"):
        check_keys(CLIP(cfg), weights.state_dict, f"{weights.path} ({weights.kind})")
    if not weights.tokenizer_spec:
        clip_tokenizer(tokenizer)
    return name


def load_pretrained(
    checkpoint: str | Path, name: str | None = None, tokenizer: str | None = None
) -> Pretrained:
    """An eval-mode fp32 CLIP on the CPU with its tokenizer, from any supported checkpoint."""
    weights = read_weights(checkpoint)
    name, cfg = model_config(name, weights)
    with torch.device("meta"):
        model = CLIP(cfg)
    model = model.to_empty(device="cpu")
    load_into(model, weights.state_dict, f"{weights.path} ({weights.kind})")
    if weights.tokenizer_spec:
        tok = from_spec(weights.tokenizer_spec)
    else:
        tok = clip_tokenizer(tokenizer)
    if tok.vocab_size > cfg.vocab_size:
        raise CurateError(f"tokenizer has {tok.vocab_size} ids but {name} embeds only {cfg.vocab_size}")
    log.info("loaded %s from %s (%s)", name, weights.path, weights.kind)
    return Pretrained(model.eval(), name, tok, weights.kind, weights.path)

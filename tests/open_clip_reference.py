"""open_clip's own modules, loaded from its PyPI wheel: the reference the CLIP equivalence tests and the
scoring benchmark compare curate against.

The wheel is never installed: its package __init__ imports torchvision, which does not load beside the CPU
torch used here. Its folder is extracted and mounted as a package under another name, so `model.py`,
`transformer.py`, `openai.py` and `tokenizer.py` import each other as they do in open_clip. Only one
torchvision name is reached on that path: `utils.py` imports `torchvision.ops.misc.FrozenBatchNorm2d`,
used by ResNet towers (never built here). That name is stubbed while the modules load, and the stub is
removed again afterwards.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
import zipfile
from pathlib import Path

PACKAGE = "open_clip_reference"


class _NoFrozenBatchNorm:
    """Stands in for torchvision's FrozenBatchNorm2d, which only ResNet towers use."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("torchvision is not available: ResNet towers cannot be built from the reference")


def load(wheel: Path, folder: Path) -> types.SimpleNamespace:
    """model, openai, tokenizer modules and a `config(name)` reader, from `wheel` extracted into `folder`."""
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(folder, [n for n in zf.namelist() if n.startswith("open_clip/")])
    stubs = {
        name: types.ModuleType(name) for name in ("torchvision", "torchvision.ops", "torchvision.ops.misc")
    }
    stubs["torchvision.ops.misc"].FrozenBatchNorm2d = _NoFrozenBatchNorm
    added = [name for name in stubs if name not in sys.modules]
    sys.modules.update({name: stubs[name] for name in added})
    package = types.ModuleType(PACKAGE)
    package.__path__ = [str(folder / "open_clip")]
    sys.modules[PACKAGE] = package
    try:
        modules = {
            name: importlib.import_module(f"{PACKAGE}.{name}") for name in ("model", "openai", "tokenizer")
        }
    finally:
        for name in added:
            del sys.modules[name]
    configs = folder / "open_clip" / "model_configs"
    return types.SimpleNamespace(
        **modules,
        vocab=folder / "open_clip" / "bpe_simple_vocab_16e6.txt.gz",
        config=lambda name: json.loads((configs / f"{name}.json").read_text()),
    )

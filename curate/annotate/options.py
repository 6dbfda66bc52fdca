"""Settings that change what the signals contain (and so are recorded in each shard's stats marker)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from curate.schema import OPT_IN_SIGNALS, SIGNAL_NAMES

__all__ = ["LANGUAGE_BACKENDS", "OPT_IN_SIGNALS", "SIGNAL_NAMES", "Options"]

LANGUAGE_BACKENDS = ("fasttext", "langdetect")


@dataclass(frozen=True)
class Options:
    language_backend: str = "fasttext"
    language_model: str | None = None  # a lid.176 file for the fasttext backend (None: the bundled .ftz)
    batch_size: int = 512  # shard rows read, decoded and scored together (bounds memory per worker)
    nsfw_batch_size: int = 32  # images per onnxruntime call
    nsfw_threads: int | None = None  # onnxruntime intra-op threads per worker (None: its default)
    clip_model: str | None = None  # an open_clip config name (curate.train.configs.CONFIGS)
    clip_checkpoint: str | None = None  # weights file or curate run folder (curate.train.pretrained)
    clip_sha256: str = ""  # of the checkpoint file, computed once by the driver
    clip_tokenizer: str | None = None  # CLIP's bpe_simple_vocab_16e6.txt.gz for non-curate weights
    clip_device: str = "auto"
    clip_precision: str = "auto"
    clip_batch_size: int = 64  # images per forward pass
    clip_threads: int | None = None  # torch intra-op threads per worker
    concept_entries: str | None = None  # entry list file for the concepts signal (None: the packaged default)
    concept_entries_sha256: str = ""  # of the normalized list, computed once by the driver

    def fingerprint(self, signal: str) -> str:
        """What, besides the shard itself, a signal's values depend on."""
        if signal == "concepts":
            return f"entries={self.concept_entries_sha256}"
        if signal == "clip":
            return f"model={self.clip_model};sha256={self.clip_sha256};precision={self.clip_precision}"
        if signal != "language":
            return ""
        model = f" model={os.path.basename(self.language_model)}" if self.language_model else ""
        return f"backend={self.language_backend}{model}"

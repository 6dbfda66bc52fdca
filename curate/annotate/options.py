"""Settings that change what the signals contain (and so are recorded in each shard's stats marker)."""

from __future__ import annotations

import os
from dataclasses import dataclass

LANGUAGE_BACKENDS = ("fasttext", "langdetect")
SIGNAL_NAMES = ("image", "hashes", "language", "caption", "nsfw", "concepts")  # run.SIGNALS, in its order
# computed only when named: concepts matches an entry list (or the default)
OPT_IN_SIGNALS = ("concepts",)


@dataclass(frozen=True)
class Options:
    language_backend: str = "fasttext"
    language_model: str | None = None  # a lid.176 file for the fasttext backend (None: the bundled .ftz)
    batch_size: int = 512  # shard rows read, decoded and scored together (bounds memory per worker)
    nsfw_batch_size: int = 32  # images per onnxruntime call
    nsfw_threads: int | None = None  # onnxruntime intra-op threads per worker (None: its default)
    concept_entries: str | None = None  # entry list file for the concepts signal (None: the packaged default)
    concept_entries_sha256: str = ""  # of the normalized list, computed once by the driver

    def fingerprint(self, signal: str) -> str:
        """What, besides the shard itself, a signal's values depend on."""
        if signal == "concepts":
            return f"entries={self.concept_entries_sha256}"
        if signal != "language":
            return ""
        model = f" model={os.path.basename(self.language_model)}" if self.language_model else ""
        return f"backend={self.language_backend}{model}"

"""Text -> fixed-length token ids, as CLIP does it: [start] + BPE(clean(text)) + [end], padded with 0 to 77.

Two vocabularies behind one interface:
- `BytePairTokenizer` (default): a byte-level BPE trained on the run's own captions with HF `tokenizers`,
  saved with the run. The start/end tokens are added after training so that end-of-text has the highest
  id, which is what CLIP's pooling (argmax over token ids) relies on.
- `ClipBPETokenizer`: CLIP's own `bpe_simple_vocab_16e6.txt.gz` given by path, for fine-tuning
  OpenAI/open_clip weights. The BPE algorithm is reimplemented here; its cleaning is CLIP's exactly (ftfy's
  mojibake repair included), and tests/test_train_clip_tokenizer.py checks the ids against open_clip's own
  tokenizer.
"""

from __future__ import annotations

import functools
import gzip
import html
import itertools
import json

import ftfy
import regex
import torch

CONTEXT_LENGTH = 77


def clean(text: str) -> str:
    """CLIP's cleaning minus ftfy.

    HTML entities decoded (twice, as CLIP does), whitespace collapsed, lower case.
    """
    text = html.unescape(html.unescape(text or ""))
    return regex.sub(r"\s+", " ", text).strip().lower()


def clip_clean(text: str) -> str:
    """CLIP's own cleaning, step for step: ftfy's text repair, HTML entities decoded twice, whitespace
    collapsed (str.split's notion of whitespace), lower case. Token ids of pretrained weights depend on it."""
    text = html.unescape(html.unescape(ftfy.fix_text(text or ""))).strip()
    return " ".join(text.split()).lower()


class Tokenizer:
    """Shared encode-to-tensor logic; subclasses supply encode/decode and the special ids."""

    sot_id: int
    eot_id: int
    vocab_size: int

    def __init__(self, context_length: int = CONTEXT_LENGTH):
        self.context_length = context_length

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: list[int]) -> str:
        raise NotImplementedError

    def to_spec(self) -> dict:
        """A JSON-able description that `from_spec` turns back into this tokenizer (stored in checkpoints)."""
        raise NotImplementedError

    def __call__(self, texts: str | list[str], context_length: int | None = None) -> torch.Tensor:
        """(N, context_length) int64 ids.

        Too-long texts are cut and still end with the end token, as in CLIP.
        """
        texts = [texts] if isinstance(texts, str) else texts
        n_ctx = context_length or self.context_length
        out = torch.zeros(len(texts), n_ctx, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = [self.sot_id] + self.encode(text)[: n_ctx - 2] + [self.eot_id]
            out[i, : len(ids)] = torch.tensor(ids)
        return out


class BytePairTokenizer(Tokenizer):
    SOT, EOT = "<start_of_text>", "<end_of_text>"

    def __init__(self, tokenizer_json: str, context_length: int = CONTEXT_LENGTH):
        super().__init__(context_length)
        from tokenizers import Tokenizer as HFTokenizer

        self.json = tokenizer_json
        self.hf = HFTokenizer.from_str(tokenizer_json)
        self.sot_id = self.hf.token_to_id(self.SOT)
        self.eot_id = self.hf.token_to_id(self.EOT)
        self.vocab_size = self.hf.get_vocab_size()
        if self.sot_id is None or self.eot_id != self.vocab_size - 1:
            raise ValueError("tokenizer JSON lacks curate's start/end tokens (end must be the last id)")

    @classmethod
    def train(
        cls, captions, vocab_size: int = 4096, context_length: int = CONTEXT_LENGTH
    ) -> BytePairTokenizer:
        """Learn a byte-level BPE of `vocab_size` ids from an iterable of captions.

        The 2 special tokens are included in `vocab_size`.
        """
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size - 2,
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        hf.train_from_iterator((clean(c) for c in captions), trainer)
        hf.add_special_tokens([cls.SOT, cls.EOT])  # appended after the learned ids: end-of-text is the max id
        return cls(hf.to_str(), context_length)

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(clean(text), add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.hf.decode([i for i in ids if i not in (self.sot_id, self.eot_id)])

    def to_spec(self) -> dict:
        return {"kind": "bpe", "json": self.json, "context_length": self.context_length}

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.json)


@functools.lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """CLIP/GPT-2's reversible byte -> printable character map (printable Latin-1 bytes map to themselves).

    The order matters: it is the order of the first 256 vocabulary ids (printable bytes first, then the others
    mapped to chr(256 + n)), so it must match CLIP's for pretrained token embeddings to line up.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    others = [b for b in range(256) if b not in table]
    table.update({b: chr(256 + n) for n, b in enumerate(others)})
    return table


class ClipBPETokenizer(Tokenizer):
    """CLIP's BPE over its merges file: 256 bytes, 256 word-final bytes, the merges, then start/end tokens."""

    SOT, EOT = "<|startoftext|>", "<|endoftext|>"
    N_MERGES = 49152 - 256 - 2  # CLIP reads merges lines 1 .. 48894 of the file (line 0 is a version header)
    PATTERN = regex.compile(
        r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
        regex.IGNORECASE,
    )

    def __init__(self, merges_text: str, context_length: int = CONTEXT_LENGTH, source: str = ""):
        super().__init__(context_length)
        self.merges_text, self.source = merges_text, source
        lines = merges_text.split("\n")[1 : self.N_MERGES + 1]
        merges = [tuple(line.split()) for line in lines if line.strip()]
        if any(len(m) != 2 for m in merges):
            raise ValueError(
                f"{source or 'merges file'}: every line after the header must be two symbols 'a b'"
            )
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        vocab = list(self.byte_encoder.values())
        vocab += [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + [self.SOT, self.EOT]
        self.encoder = {tok: i for i, tok in enumerate(vocab)}
        self.decoder = dict(enumerate(vocab))
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.sot_id, self.eot_id = self.encoder[self.SOT], self.encoder[self.EOT]
        self.vocab_size = len(vocab)
        self.cache: dict[str, list[str]] = {}

    @classmethod
    def from_file(cls, path: str, context_length: int = CONTEXT_LENGTH) -> ClipBPETokenizer:
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rb") as fh:
            return cls(fh.read().decode("utf-8"), context_length, source=str(path))

    def bpe(self, word: str) -> list[str]:
        """Merge the symbols of one pre-token, lowest-ranked pair first, until no known pair remains."""
        if word in self.cache:
            return self.cache[word]
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        while len(symbols) > 1:
            pairs = set(itertools.pairwise(symbols))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(symbols):
                if i < len(symbols) - 1 and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        self.cache[word] = symbols
        return symbols

    def encode(self, text: str) -> list[int]:
        ids = []
        for piece in self.PATTERN.findall(clip_clean(text)):
            word = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[s] for s in self.bpe(word))
        return ids

    def decode(self, ids: list[int]) -> str:
        text = "".join(self.decoder[i] for i in ids if i not in (self.sot_id, self.eot_id))
        raw = bytearray(self.byte_decoder[c] for c in text)
        return raw.decode("utf-8", errors="replace").replace("</w>", " ").strip()

    def to_spec(self) -> dict:
        return {
            "kind": "clip",
            "merges": self.merges_text,
            "source": self.source,
            "context_length": self.context_length,
        }


def from_spec(spec: dict) -> Tokenizer:
    if spec["kind"] == "bpe":
        return BytePairTokenizer(spec["json"], spec.get("context_length", CONTEXT_LENGTH))
    if spec["kind"] == "clip":
        return ClipBPETokenizer(
            spec["merges"], spec.get("context_length", CONTEXT_LENGTH), spec.get("source", "")
        )
    raise ValueError(f"unknown tokenizer kind {spec['kind']!r}")


def load_file(path: str, context_length: int = CONTEXT_LENGTH) -> Tokenizer:
    """A saved curate tokenizer (.json) or CLIP's merges file (bpe_simple_vocab_16e6.txt[.gz])."""
    if str(path).endswith(".json"):
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        json.loads(text)  # fail early with a JSON error on a damaged file
        return BytePairTokenizer(text, context_length)
    return ClipBPETokenizer.from_file(path, context_length)

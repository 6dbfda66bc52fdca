"""curate's ClipBPETokenizer against open_clip's own tokenizer, on CLIP's real vocabulary and real alt texts.

The reference is the open_clip_torch wheel from PyPI (fetched once into .cache/reference/ by the
`open_clip_wheel` fixture). Its tokenizer module is loaded from the wheel by path: importing the open_clip
package would import torchvision, which does not load beside the CPU torch used here.
"""

from __future__ import annotations

import importlib.util
import sys
import zipfile

import pyarrow.parquet as pq
import pytest
import torch
from conftest import REFERENCE_DATA

from curate.train.tokenizer import ClipBPETokenizer

TRICKY = [
    "a photo of a cat",
    "A Photo of a DOG!!",
    "hello   world,\tit's 2026\n",
    "naïve café déjà vu",
    "Fish &amp;amp; chips &lt;b&gt;",
    "Ã©tÃ© Ã  Paris",
    "東京タワーの夜景",
    "Москва, Красная площадь",
    "emoji 🐱🐶 time",
    "IMG_1234.JPG",
    "100% of 3.5kg",
    "",
    "   ",
    "we'll they're I'M it'S",
    "x\u00a0y\u2009z",
    "a\x1cb\x1dc",
    "ﬁne ligature",
    "straße STRASSE",
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, open_clip_wheel):
    pytest.importorskip("ftfy")
    folder = tmp_path_factory.mktemp("open_clip")
    with zipfile.ZipFile(open_clip_wheel) as wheel:
        for name in ("open_clip/tokenizer.py", "open_clip/bpe_simple_vocab_16e6.txt.gz"):
            wheel.extract(name, folder)
    spec = importlib.util.spec_from_file_location(
        "open_clip_reference_tokenizer", folder / "open_clip" / "tokenizer.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    vocab = str(folder / "open_clip" / "bpe_simple_vocab_16e6.txt.gz")
    return module.SimpleTokenizer(vocab), ClipBPETokenizer.from_file(vocab)


def _real_alt_texts(n: int) -> list[str]:
    path = REFERENCE_DATA / "data" / "url-lists" / "test_10000.parquet"
    if not path.exists():
        return []
    table = pq.read_table(path)
    column = next(c for c in ("caption", "TEXT", "text", "alt") if c in table.column_names)
    return [t for t in table.column(column).to_pylist()[:n] if t is not None]


def test_token_ids_equal_open_clip_on_tricky_and_real_captions(reference):
    theirs, ours = reference
    texts = TRICKY + _real_alt_texts(3000)
    mismatches = [(t, theirs.encode(t), ours.encode(t)) for t in texts if theirs.encode(t) != ours.encode(t)]
    assert not mismatches, f"{len(mismatches)} of {len(texts)} differ, first: {mismatches[0]}"
    assert ours.encode("a photo of a cat") == [320, 1125, 539, 320, 2368]  # the ids CLIP's README shows


def test_padded_batches_equal_open_clip_including_truncation(reference):
    theirs, ours = reference
    texts = ["a photo of a cat", "word " * 100, "", "Fish &amp; chips"]
    expected = theirs(texts)
    got = ours(texts)
    assert got.dtype == torch.long and got.shape == expected.shape == (4, 77)
    assert torch.equal(got, expected)
    assert got[1, -1].item() == ours.eot_id == 49407  # a long caption is cut and still ends with end-of-text


def test_decode_gives_what_open_clip_decodes(reference):
    theirs, ours = reference
    ids = ours.encode("A photo of a cat on the beach, 2026")
    assert ours.decode(ids) == theirs.decode(ids).strip() == "a photo of a cat on the beach , 2 0 2 6"

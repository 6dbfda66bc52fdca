"""Synthetic web noise: alt texts that do not describe their image, and near-duplicate bursts."""

from __future__ import annotations

from collections import Counter

import pytest

from curate.synthweb.captions import _NP
from curate.synthweb.content import BURST_SIZE, build_specs
from curate.synthweb.noise import DESCRIBES, NOISE_KINDS
from curate.synthweb.photos import CLASSES


def test_about_thirty_percent_of_alt_texts_do_not_describe_their_image():
    specs, _ = build_specs(2000, 0, 0.2, 6, 0.06, caption_noise=0.3)
    kinds = Counter(s.caption_kind for s in specs)
    noisy = sum(kinds[k] for k in NOISE_KINDS)
    assert 0.27 < noisy / len(specs) < 0.33
    assert all(kinds[k] > 0.08 * noisy for k in NOISE_KINDS)
    for s in specs:
        if s.caption_kind == "other_object" and s.lang == "en":  # fluent, but about another class
            named = [c for c, np_ in zip(CLASSES, _NP["en"], strict=True) if np_.lower() in s.caption.lower()]
            assert named and s.label not in named, s
        elif s.caption_kind == DESCRIBES and s.lang == "en":
            assert _NP["en"][CLASSES.index(s.label)].lower() in s.caption.lower(), s
        elif s.caption_kind in ("click_here", "seo_keywords", "file_name"):
            assert s.lang is None  # in no language: the language rule may catch them, nothing says so


def test_bursts_are_runs_of_copies_of_one_original():
    specs, _ = build_specs(600, 0, 0.2, 6, 0.06, bursts=0.1)
    burst = [s for s in specs if s.burst]
    assert len(burst) == round(600 * 0.1) // (BURST_SIZE - 1) * (BURST_SIZE - 1)
    for s in burst:
        src = specs[s.source]
        assert src.source is None and not src.burst and s.label == src.label and s.seed == src.seed
        assert 0 < s.index - src.index < BURST_SIZE and min(s.transform.crop) >= 0.05


def test_default_web_has_no_noise_and_options_are_checked():
    specs, _ = build_specs(600, 0, 0.2, 6, 0.06)
    assert {s.caption_kind for s in specs} == {DESCRIBES, "junk"} and not any(s.burst for s in specs)
    noisy, _ = build_specs(600, 0, 0.2, 6, 0.06, caption_noise=0.3)
    # noise draws from its own stream: the images (and clean captions) of the web stay the same
    assert [(s.path, s.seed, s.label) for s in noisy] == [(s.path, s.seed, s.label) for s in specs]
    assert all(
        a.caption == b.caption
        for a, b in zip(specs, noisy, strict=True)
        if b.caption_kind in (DESCRIBES, "junk")
    )
    with pytest.raises(ValueError, match="fractions"):
        build_specs(10, 0, 0.2, 6, 0.06, caption_noise=1.5)


def test_a_rebuilt_web_tells_the_ground_truth_of_every_url_the_served_one_gave():
    from curate.synthweb import SyntheticWeb

    with SyntheticWeb(n_images=60, seed=0, faults=True, caption_noise=0.3) as served:
        images, faults = served.images, list(served.fault_urls.values())
    rebuilt = SyntheticWeb(n_images=60, seed=0, faults=True, caption_noise=0.3)  # never started: another port
    assert [rebuilt.caption_kind_of(img.url) for img in images] == [img.caption_kind for img in images]
    assert {img.caption_kind for img in images} - {DESCRIBES, "junk"}, "a noisy web has other kinds"
    assert any("%" in img.url for img in images), "percent-encoded paths are looked up decoded"
    assert [rebuilt.caption_kind_of(url) for url in faults] == [None] * len(faults)

"""The noise of the real web's alt texts, for webs that model it (`SyntheticWeb(caption_noise=...)`).

On the open web a large share of alt texts do not describe their image: a caption written for another
photo on the page, "click here", keyword lists stuffed for search engines, the file name. They read as
ordinary text, so rules over the caption alone catch only some of them; a model that looks at the image
and the text together (a CLIP score) can catch the rest. Each noisy caption records its kind, so tests and
experiments know the ground truth.
"""

from __future__ import annotations

import numpy as np

from curate.synthweb.captions import caption_for
from curate.synthweb.photos import BACKGROUNDS, CLASSES

# Kind -> share among noisy captions.
NOISE_KINDS: dict[str, float] = {
    "other_object": 0.55,
    "click_here": 0.15,
    "seo_keywords": 0.15,
    "file_name": 0.15,
}
DESCRIBES = "describes"  # the caption kind of an alt text that describes its image

_CLICK_HERE = (
    "click here",
    "Click here to enlarge",
    "read more",
    "view gallery",
    "see full image",
    "Buy now",
    "learn more about our products",
)
_SEO_WORDS = (
    "free",
    "download",
    "hd",
    "wallpaper",
    "best",
    "cheap",
    "4k",
    "images",
    "photos",
    "stock",
    "background",
    "top",
    "2024",
    "design",
    "ideas",
    "vector",
    "png",
    "clipart",
    "art",
    "sale",
)
_FILE_NAMES = ("IMG_{n:04d}.jpg", "DSC_{n:04d}.JPG", "photo-{n}.png", "upload_{n}_final.jpg", "{n}.webp")


def noisy_caption(label: str, lang: str, rng: np.random.Generator) -> tuple[str, str]:
    """(caption, kind) of an alt text that does not describe an image of `label`."""
    kinds = list(NOISE_KINDS)
    kind = kinds[int(rng.choice(len(kinds), p=np.array(list(NOISE_KINDS.values()))))]
    if kind == "other_object":  # a fluent description of a different object, in the page's language
        other = CLASSES[(CLASSES.index(label) + int(rng.integers(1, len(CLASSES)))) % len(CLASSES)]
        return caption_for(other, BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], lang, rng), kind
    if kind == "click_here":
        return _CLICK_HERE[int(rng.integers(len(_CLICK_HERE)))], kind
    if kind == "seo_keywords":
        words = rng.choice(len(_SEO_WORDS), size=int(rng.integers(5, 10)), replace=False)
        return " ".join(_SEO_WORDS[w] for w in words), kind
    return _FILE_NAMES[int(rng.integers(len(_FILE_NAMES)))].format(n=int(rng.integers(1, 99999))), kind

"""A small real dataset for the inspect tests (sql, stats, why, report).

Shards and signals are written in the documented schemas with real encoded photos (tests/curation_data.py);
then the real stages run on it: `curate takedown`, `curate dedup`, `curate overlap` against a folder
benchmark, and `curate filter` with the shipped datacomp_basic and strict recipes. It holds what the
inspect views must show: failures of several classes and hosts, exact and near duplicates, several
languages, an NSFW-scored sample, a benchmark match, a takedown, and a caption and URLs that try to
inject script into the HTML report.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from curation_data import Sample, encode, make_photo, transformed_copy, write_dataset

from curate.dataset import stats_path
from curate.schema import MANIFEST_SCHEMA

HOSTILE_CAPTION = (
    '<script>document.title="pwned"</script><img src=x onerror="document.title=\'pwned\'">'
    '<a href="javascript:alert(1)">click</a> a hostile caption'
)
HOSTILE_URL = 'https://evil.example/"><script>alert(1)</script>.jpg'
HOSTILE_LINK = "javascript:document.title='pwned'"
PER_SHARD = 20
KEPT_SIZES = ((224, 300), (300, 224))
BENCH_SEED = 304
RECIPES = ("datacomp_basic", "strict")


def build_samples() -> dict[str, list[Sample]]:
    """Samples grouped by what they are for, so tests can pick uids by role."""
    rng = np.random.default_rng(7)
    langs = ["en"] * 14 + ["de", "fr", "es", "ja"]
    kept = [
        Sample(
            f"https://photos{i % 3}.example/{i}.jpg",
            f"a photo of a colourful thing number {i}",
            encode(make_photo(100 + i, KEPT_SIZES[i % 2])),
            language=langs[i],
            language_score=0.9 if langs[i] == "en" else 0.8,
        )
        for i in range(len(langs))
    ]
    groups = {
        "kept": kept,
        "exact_dup": [Sample("https://mirror.example/copy0.jpg", "the same photo of thing 0", kept[0].image)],
        "near_dup": [
            Sample(
                "https://mirror.example/near1.jpg",
                "a resized copy of thing 1",
                transformed_copy(make_photo(101, KEPT_SIZES[1]), rng),
            )
        ],
        "small": [
            Sample(
                "https://photos0.example/tiny.png",
                "a tiny picture of a thing",
                encode(make_photo(300, (64, 48)), "PNG"),
            )
        ],
        "nsfw": [
            Sample(
                "https://adult.example/x.jpg",
                "an explicit picture of a thing",
                encode(make_photo(301, (240, 240))),
                nsfw_image=0.93,
                nsfw_text=0.6,
            )
        ],
        "short": [
            Sample("https://photos1.example/img.jpg", "IMG_1234.jpg", encode(make_photo(302, (220, 220))))
        ],
        "hostile": [Sample(HOSTILE_URL, HOSTILE_CAPTION, encode(make_photo(303, (230, 210))))],
        "bench": [
            Sample(
                "https://leak.example/eval.jpg",
                "a photo that is also a benchmark image",
                encode(make_photo(BENCH_SEED, (256, 256))),
            )
        ],
        "taken_down": [
            Sample(
                "https://gone.example/mine.jpg",
                "a photo its owner asked to remove",
                encode(make_photo(305, (240, 240))),
            )
        ],
        "failed": [
            Sample(
                f"https://dead{i % 2}.example/{i}.jpg",
                f"a missing photo {i}",
                None,
                error_class=cls,
                language=None,
                nsfw_image=None,
            )
            for i, cls in enumerate(["http_4xx", "http_4xx", "timeout", "dns", "not_an_image"])
        ]
        + [
            Sample(
                HOSTILE_LINK,
                "a javascript: link as the image URL",
                None,
                error_class="invalid_url",
                language=None,
                nsfw_image=None,
            )
        ],
    }
    return groups


_BUILT: dict[str, dict] = {}


def shared_dataset(tmp_path_factory) -> dict:
    """The dataset built once per test session (several test modules read it; none writes it)."""
    if "ds" not in _BUILT:
        _BUILT["ds"] = build(str(tmp_path_factory.mktemp("inspect") / "ds"))
    return _BUILT["ds"]


def build(root: str) -> dict:
    """Write the dataset under `root` and run the real global stages on it; returns its roles and paths."""
    from curate.dedup import dedup
    from curate.dedup.overlap import overlap
    from curate.filter import filter_dataset
    from curate.takedown.stage import takedown

    groups = build_samples()
    samples = [s for group in groups.values() for s in group]
    write_dataset(root, samples, per_shard=PER_SHARD)
    _write_manifest_and_stats(root, samples)
    bench = _write_benchmark(os.path.join(os.path.dirname(root), "bench"))
    takedown(root, domains=["gone.example"], reason="owner request")
    dedup(root, workers=1)
    overlap(root, {"shapes": bench}, workers=1)
    for recipe in RECIPES:
        filter_dataset(root, recipe, threads=1)
    return {
        "root": root,
        "roles": {k: [s.uid for s in v] for k, v in groups.items()},
        "samples": samples,
        "bench": bench,
    }


def _write_manifest_and_stats(root: str, samples: list[Sample]) -> None:
    """Manifest parts and the per-shard stats JSON that `curate download` writes beside each shard."""
    os.makedirs(f"{root}/manifest", exist_ok=True)
    for s0 in range(0, len(samples), PER_SHARD):
        key = f"{s0 // PER_SHARD:05d}"
        chunk = samples[s0 : s0 + PER_SHARD]
        rows = [{"uid": s.uid, "url": s.url, "caption": s.caption, "status": "ok"} for s in chunk]
        pq.write_table(
            pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), f"{root}/manifest/part-{key}.parquet"
        )
        status = Counter("success" if s.image is not None else "failed" for s in chunk)
        errors = Counter(s.error_class for s in chunk if s.image is None)
        marker = stats_path(f"{root}/shards", key)
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        with open(marker, "w") as fh:
            json.dump(
                {"key": key, "rows": len(chunk), "status": dict(status), "error_class": dict(errors)}, fh
            )


def _write_benchmark(folder: str) -> str:
    """A folder benchmark (class sub-folders).

    Holds a re-encoded copy of the `bench` sample and three clean images.
    """
    os.makedirs(f"{folder}/circle", exist_ok=True)
    os.makedirs(f"{folder}/square", exist_ok=True)
    leaked = make_photo(BENCH_SEED, (256, 256)).resize((224, 224))
    with open(f"{folder}/circle/0007.jpg", "wb") as fh:
        fh.write(encode(leaked, "JPEG", 80))
    for i in range(3):
        with open(f"{folder}/square/{i:04d}.jpg", "wb") as fh:
            fh.write(encode(make_photo(900 + i, (224, 224)), "JPEG", 80))
    return folder

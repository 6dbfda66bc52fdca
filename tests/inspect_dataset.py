"""A small real dataset for the inspect tests (sql, stats, why, report, notebooks).

Shards and signals are written in the documented schemas with real encoded photos (tests/curation_data.py);
duplicate clusters come from the real `curate.dedup`. It holds what the inspect views must show:
failures of several classes and hosts, exact and near duplicates, several languages, an NSFW-scored
sample, a benchmark match with its eval image, two recipes' decisions, a takedown, and a caption and
URL that try to inject script into the HTML report.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from curation_data import Sample, encode, make_photo, transformed_copy, write_dataset

from curate.schema import DECISIONS_SCHEMA, MANIFEST_SCHEMA, TAKEDOWN_SCHEMA

HOSTILE_CAPTION = ('<script>document.title="pwned"</script><img src=x onerror="document.title=\'pwned\'">'
                   '<a href="javascript:alert(1)">click</a> a hostile caption')
HOSTILE_URL = 'https://evil.example/"><script>alert(1)</script>.jpg'
HOSTILE_LINK = "javascript:document.title='pwned'"
PER_SHARD = 20


def build_samples() -> dict[str, list[Sample]]:
    """Samples grouped by what they are for, so tests can pick uids by role."""
    rng = np.random.default_rng(7)
    langs = ["en"] * 14 + ["de", "fr", "es", "ja"]
    kept = [Sample(f"https://photos{i % 3}.example/{i}.jpg", f"a photo of a colourful thing number {i}",
                   encode(make_photo(100 + i, (256, 192) if i % 2 else (200, 300))), language=langs[i],
                   language_score=0.9 if langs[i] == "en" else 0.8)
            for i in range(len(langs))]
    groups = {
        "kept": kept,
        "exact_dup": [Sample("https://mirror.example/copy0.jpg", "the same photo of thing 0", kept[0].image)],
        "near_dup": [Sample("https://mirror.example/near1.jpg", "a resized copy of thing 1",
                            transformed_copy(make_photo(101, (256, 192)), rng))],
        "small": [Sample("https://photos0.example/tiny.png", "a tiny picture of a thing", encode(
            make_photo(300, (64, 48)), "PNG"))],
        "nsfw": [Sample("https://adult.example/x.jpg", "an explicit picture of a thing",
                        encode(make_photo(301, (240, 240))), nsfw_image=0.93, nsfw_text=0.6)],
        "short": [Sample("https://photos1.example/img.jpg", "IMG_1234.jpg", encode(make_photo(302, (220, 220))))],
        "hostile": [Sample(HOSTILE_URL, HOSTILE_CAPTION, encode(make_photo(303, (230, 210))))],
        "bench": [Sample("https://leak.example/eval.jpg", "a photo that is also a benchmark image",
                         encode(make_photo(304, (256, 256))))],
        "failed": [Sample(f"https://dead{i % 2}.example/{i}.jpg", f"a missing photo {i}", None,
                          error_class=cls, language=None, nsfw_image=None)
                   for i, cls in enumerate(["http_4xx", "http_4xx", "timeout", "dns", "not_an_image"])]
                  + [Sample(HOSTILE_LINK, "a javascript: link as the image URL", None, error_class="invalid_url",
                            language=None, nsfw_image=None)],
    }
    return groups


_BUILT: dict[str, dict] = {}


def shared_dataset(tmp_path_factory) -> dict:
    """The dataset built once per test session (several test modules read it; none writes it)."""
    if "ds" not in _BUILT:
        _BUILT["ds"] = build(str(tmp_path_factory.mktemp("inspect") / "ds"))
    return _BUILT["ds"]


def build(root: str) -> dict:
    """Write the whole dataset under `root`; returns {"root", "roles": role -> uids, "eval_image": bytes}."""
    groups = build_samples()
    samples = [s for group in groups.values() for s in group]
    write_dataset(root, samples, per_shard=PER_SHARD)
    _write_manifest_and_stats(root, samples)

    from curate.dedup import dedup

    dedup(root, workers=1)
    eval_image = encode(make_photo(304, (256, 256)).resize((224, 224)), "JPEG", 80)
    _write_overlap(root, groups["bench"][0].uid, eval_image)
    _write_decisions(root, groups)
    _write_takedown(root)
    return {"root": root, "roles": {k: [s.uid for s in v] for k, v in groups.items()}, "eval_image": eval_image,
            "samples": samples}


def _write_manifest_and_stats(root: str, samples: list[Sample]) -> None:
    import json

    os.makedirs(f"{root}/manifest", exist_ok=True)
    for s0 in range(0, len(samples), PER_SHARD):
        key = f"{s0 // PER_SHARD:05d}"
        chunk = samples[s0:s0 + PER_SHARD]
        rows = [{"uid": s.uid, "url": s.url, "caption": s.caption, "status": "ok"} for s in chunk]
        pq.write_table(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), f"{root}/manifest/part-{key}.parquet")
        status: dict[str, int] = {}
        errors: dict[str, int] = {}
        for s in chunk:
            st = "success" if s.image is not None else "failed"
            status[st] = status.get(st, 0) + 1
            if s.image is None:
                errors[s.error_class] = errors.get(s.error_class, 0) + 1
        with open(f"{root}/shards/{key}.stats.json", "w") as fh:
            json.dump({"key": key, "rows": len(chunk), "status": status, "error_class": errors}, fh)


def _write_overlap(root: str, uid: str, eval_image: bytes) -> None:
    os.makedirs(f"{root}/signals/overlap", exist_ok=True)
    pq.write_table(pa.table({"uid": [uid], "benchmark": ["shapes"], "eval_id": ["test/0007"],
                             "distance": pa.array([3], pa.int16()), "match_kind": ["image"]}),
                   f"{root}/signals/overlap/shapes.parquet")
    others = [encode(make_photo(900 + i, (224, 224)), "JPEG", 80) for i in range(3)]
    pq.write_table(pa.table({"eval_id": ["test/0007", "test/0001", "test/0002", "test/0003"],
                             "image": [eval_image, *others], "label": ["thing", "a", "b", "c"]}),
                   f"{root}/signals/overlap/shapes.eval.parquet")


def _write_decisions(root: str, groups: dict[str, list[Sample]]) -> None:
    import duckdb

    clusters = duckdb.sql(f"SELECT uid, duplicate_kind FROM '{root}/signals/dedup/clusters.parquet' "
                          "WHERE NOT is_representative").fetchall()
    dup_kind = dict(clusters)
    reasons_of = {"small": ["image_too_small"], "nsfw": ["nsfw_image", "nsfw_text"],
                  "short": ["caption_too_short"], "bench": ["benchmark_overlap:shapes/test/0007"],
                  "failed": ["download_failed"]}
    rows, strict = [], []
    for role, group in groups.items():
        for s in group:
            reasons = list(reasons_of.get(role, []))
            if s.language not in (None, "en"):
                reasons.append("language:not_in_keep_list")
            if s.uid in dup_kind:
                reasons.append("exact_duplicate" if dup_kind[s.uid] == "exact" else "near_duplicate")
            rows.append({"uid": s.uid, "keep": not reasons, "reasons": reasons})
            strict_reasons = reasons + (["caption_too_short"] if len(s.caption.split()) < 8 and not reasons else [])
            strict.append({"uid": s.uid, "keep": not strict_reasons, "reasons": strict_reasons})
    os.makedirs(f"{root}/decisions", exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=DECISIONS_SCHEMA), f"{root}/decisions/basic.parquet")
    pq.write_table(pa.Table.from_pylist(strict, schema=DECISIONS_SCHEMA), f"{root}/decisions/strict.parquet")


def _write_takedown(root: str) -> None:
    pq.write_table(pa.Table.from_pylist([{"kind": "domain", "value": "gone.example", "reason": "owner request",
                                          "requested_at": datetime(2026, 11, 23, tzinfo=timezone.utc),
                                          "uids_purged": 0}], schema=TAKEDOWN_SCHEMA), f"{root}/takedown.parquet")


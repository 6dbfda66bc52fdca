"""curate dedup: multi-index hashing is exact, clusters and representatives on real images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from curation_data import Sample, encode, make_photo, transformed_copy, write_dataset

from curate.annotate.phash import similarity
from curate.dataset import sidecar
from curate.dedup import dedup, default_max_distance, mih, simhash
from curate.errors import CurateError


def _reference_pairs(h: np.ndarray, k: int) -> set[tuple[int, int]]:
    """Independent all-pairs check with Python integers."""
    vals = [int(x) for x in h]
    return {
        (i, j)
        for i in range(len(vals))
        for j in range(i + 1, len(vals))
        if (vals[i] ^ vals[j]).bit_count() <= k
    }


def _planted(n: int, k: int, seed: int) -> np.ndarray:
    """Random 64-bit hashes plus copies of some of them with 0..k bits flipped."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**64, n, dtype=np.uint64)
    copies = base[rng.integers(0, n, n // 4)].copy()
    for t in range(len(copies)):
        for bit in rng.choice(64, int(rng.integers(0, k + 1)), replace=False):
            copies[t] ^= np.uint64(1) << np.uint64(int(bit))
    return np.unique(np.concatenate([base, copies]))


@pytest.mark.parametrize("shared", [1, 2, 3])
def test_multi_index_search_finds_exactly_the_pairs_within_k(shared):
    k = 6
    h = _planted(1500, k, seed=shared)
    a, b, d = mih.self_pairs(h, k, search=mih.Plan(k=k, bands=k + shared, shared=shared))
    assert {(int(x), int(y)) for x, y in zip(a, b, strict=False)} == _reference_pairs(h, k)
    assert len(a) > 300  # the planted copies are there to be found
    assert np.array_equal(d, np.bitwise_count(h[a] ^ h[b]))


def test_cross_search_matches_brute_force_and_plan_avoids_all_pairs_at_scale():
    k = 5
    h = _planted(3000, k, seed=7)
    q = h[:200] ^ np.uint64(0b10101)  # 3 bits flipped: every query has its source within k
    qi, hj, _ = mih.cross_pairs(q, h, k, search=mih.Plan(k=k, bands=k + 2, shared=2))
    found = {(int(x), int(y)) for x, y in zip(qi, hj, strict=False)}
    expected = {
        (i, j) for i in range(len(q)) for j in range(len(h)) if (int(q[i]) ^ int(h[j])).bit_count() <= k
    }
    assert found == expected and all((i, i) in found for i in range(len(q)))
    assert not mih.plan(1e6 * 1e6 / 2, 1_000_000, 8).all_pairs
    assert mih.plan(100 * 99 / 2, 100, 8).all_pairs


def _clusters(root: str) -> dict[str, dict]:
    rows = duckdb.sql(f"SELECT * FROM '{root}/signals/dedup/clusters.parquet'").fetchall()
    cols = [
        "uid",
        "cluster_id",
        "representative_uid",
        "is_representative",
        "duplicate_kind",
        "distance_to_representative",
        "against_dataset",
    ]
    return {r[0]: dict(zip(cols, r, strict=False)) for r in rows}


@pytest.fixture(scope="module")
def dup_dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("dedup") / "ds")
    rng = np.random.default_rng(3)
    photos = [make_photo(i) for i in range(60)]
    samples = [
        Sample(f"https://site.example/p{i}.jpg", f"photo number {i}", encode(p)) for i, p in enumerate(photos)
    ]
    # exact byte copy of photo 0 on another site
    samples.append(Sample("https://mirror.example/a.jpg", "mirror of zero", samples[0].image))
    # the same URL as photo 1 with another caption (and bytes re-encoded by the server)
    samples.append(Sample(samples[1].url, "another caption for one", encode(photos[1], quality=70)))
    # transformed re-uploads of photos 10..29; photo 10's copy is twice as large:
    # it must be the representative
    for i in range(10, 30):
        data = transformed_copy(photos[i], rng) if i != 10 else encode(photos[i].resize((512, 512)))
        samples.append(Sample(f"https://reupload.example/{i}.jpg", f"reupload {i}", data))
    samples.append(Sample("https://gone.example/x.jpg", "a failed download", None))
    write_dataset(root, samples, per_shard=40)
    return root, samples


def test_dedup_clusters_exact_url_and_near_duplicates_with_deterministic_representatives(dup_dataset):
    root, samples = dup_dataset
    summary = dedup(root)  # the annotate stage's measured default radius
    k = summary["max_distance"]
    assert k == default_max_distance()
    c = _clusters(root)
    assert len(c) == len(samples) - 1  # every downloaded sample has a row; the failed one has none
    assert samples[-1].uid not in c
    mirror, same_url = samples[60], samples[61]
    rep_uid = min(samples[0].uid, mirror.uid)  # same bytes, same size: the smallest uid represents
    other_uid = max(samples[0].uid, mirror.uid)
    assert c[rep_uid]["is_representative"] and c[other_uid]["representative_uid"] == rep_uid
    assert c[other_uid]["duplicate_kind"] == "exact" and c[other_uid]["distance_to_representative"] == 0
    follower = max(samples[1].uid, same_url.uid)  # different bytes, same URL
    assert c[follower]["representative_uid"] == min(samples[1].uid, same_url.uid)
    assert c[follower]["duplicate_kind"] == "url"
    reuploads = samples[62:82]
    found = sum(
        c[r.uid]["cluster_id"] == c[samples[10 + t].uid]["cluster_id"] for t, r in enumerate(reuploads)
    )
    assert found / len(reuploads) >= 0.95
    big = reuploads[0]
    assert c[big.uid]["is_representative"] and c[samples[10].uid]["representative_uid"] == big.uid
    assert c[samples[10].uid]["duplicate_kind"] == "near"
    assert c[samples[10].uid]["distance_to_representative"] <= k
    # distinct photos are never merged with each other (precision)
    distinct_clusters = {c[s.uid]["cluster_id"] for s in samples[:60]}
    assert len(distinct_clusters) == 60
    reps = [r for r in c.values() if r["is_representative"]]
    assert all(r["representative_uid"] == r["uid"] and r["duplicate_kind"] is None for r in reps)
    assert summary["duplicates"] == len(c) - len(reps) == summary["samples"] - len(reps)
    assert summary["duplicates_by_kind"]["exact"] >= 1 and summary["duplicates_by_kind"]["near"] >= 19
    on_disk = json.loads(Path(sidecar(f"{root}/signals/dedup", "summary.json")).read_text())
    assert on_disk["duplicates"] == summary["duplicates"]
    # deterministic: a rerun writes the same clusters
    dedup(root)
    assert _clusters(root) == c


def test_dedup_against_a_built_dataset_marks_copies_of_its_samples(dup_dataset, tmp_path):
    old_root, old = dup_dataset
    rng = np.random.default_rng(11)
    new = [
        Sample(f"https://new.example/{i}.jpg", f"new photo {i}", encode(make_photo(1000 + i)))
        for i in range(15)
    ]
    copies = [
        Sample(f"https://new.example/copy{i}.jpg", f"copy {i}", transformed_copy(make_photo(i), rng))
        for i in range(40, 50)
    ]
    root = str(tmp_path / "new")
    write_dataset(root, new + copies)
    summary = dedup(root, against=[old_root])
    c = _clusters(root)
    old_uids = {s.uid for s in old}
    matched = [c[s.uid] for s in copies if c[s.uid]["against_dataset"] == old_root]
    assert len(matched) >= 9
    assert all(m["representative_uid"] in old_uids and not m["is_representative"] for m in matched)
    assert all(c[s.uid]["is_representative"] and c[s.uid]["against_dataset"] is None for s in new)
    assert summary["duplicates_of_against"] == len(matched)


def test_dedup_without_hash_signals_names_the_annotate_stage(tmp_path, dup_dataset):
    root = tmp_path / "ds"
    (root / "shards").mkdir(parents=True)
    with pytest.raises(CurateError, match="curate annotate"):
        dedup(str(root))
    other = tmp_path / "renamed"
    shutil.copytree(dup_dataset[0], other)
    for f in (other / "signals" / "hashes").iterdir():  # signal files named for shards that do not exist
        f.rename(f.with_name("9" + f.name))
    with pytest.raises(CurateError, match="no shard of .* has hash signals.*curate annotate"):
        dedup(str(other))


def _pairs_at_threshold(seed: int):
    """Random thumbnails plus copies correlating at 0.94-0.95 with their source, and pHashes: random for the
    sources, the source's with exactly 14 bits flipped (the rule's radius, the worst case) for the copies."""
    rng = np.random.default_rng(seed)
    n, copies = 3000, 4000
    base = rng.integers(0, 256, (n, simhash.THUMB_VALUES)).astype(np.float32)
    src = rng.integers(0, n, copies)
    centred = base[src] - base[src].mean(axis=1, keepdims=True)
    noise = rng.normal(0, 1, (copies, simhash.THUMB_VALUES)).astype(np.float32)
    scale = rng.uniform(0.30, 0.40, (copies, 1)) * np.linalg.norm(centred, axis=1, keepdims=True) / 14
    thumbs = np.clip(np.vstack([base, base[src] + noise * scale]), 0, 255).astype(np.uint8)
    hashes = rng.integers(0, 2**64, n, dtype=np.uint64)
    flips = [sum(1 << int(b) for b in rng.choice(64, 14, replace=False)) for _ in range(copies)]
    hashes = np.concatenate([hashes, hashes[src] ^ np.array(flips, np.uint64)])
    sims = similarity(thumbs[src], thumbs[n:])
    at_threshold = np.flatnonzero((sims >= 0.94) & (sims < 0.95))
    assert len(at_threshold) >= 300
    return n, src, thumbs, hashes, at_threshold


@pytest.mark.parametrize("hash_bits", [None, 4])
def test_thumbnail_lsh_finds_pairs_at_the_correlation_threshold(hash_bits):
    """The stated recall (0.99 for pairs exactly at the threshold and, with pHash bits in the keys, at the
    pHash radius) holds empirically: pairs at 0.94-0.95 whose pHashes differ in exactly 14 bits."""
    n, src, thumbs, hashes, at_threshold = _pairs_at_threshold(4)
    assert np.all(np.bitwise_count(hashes[src] ^ hashes[n:]) == 14)
    codes = simhash.simhash(thumbs)
    if hash_bits is None:
        search = simhash.plan(codes, 0.94)
        assert search.hash_bits == 0
        radius_args = {}
    else:
        search = simhash.plan(codes, 0.94, hashes=hashes, radius=14, hash_bits=hash_bits)
        assert search.hash_bits == hash_bits and "4 pHash bits" in search.describe()
        radius_args = {"radius": 14}
        # a plan keyed on pHash bits cannot run without the pHashes
        with pytest.raises(ValueError, match="pHashes"):
            simhash.self_candidates(codes, search)
    a, b = simhash.self_candidates(codes, search, hashes=hashes, **radius_args)
    found = set(zip(a.tolist(), b.tolist(), strict=False))
    hits = [(min(int(src[t]), n + t), max(int(src[t]), n + t)) in found for t in at_threshold]
    assert np.mean(hits) >= 0.97  # 0.99 expected; slack for the sample size
    assert len(found) < 0.01 * len(thumbs) ** 2 / 2  # unrelated thumbnails rarely share a bucket
    if radius_args:  # the radius is applied inside the tables
        assert np.all(np.bitwise_count(hashes[a] ^ hashes[b]) <= 14)
    qi, hj = simhash.cross_candidates(
        codes[n:], codes[:n], search, q_hashes=hashes[n:], hashes=hashes[:n], **radius_args
    )
    cross = set(zip(qi.tolist(), hj.tolist(), strict=False))
    assert np.mean([(int(t), int(src[t])) in cross for t in at_threshold]) >= 0.97


def test_bucket_pairs_are_every_pair_with_equal_keys_within_the_radius():
    """Buckets of every size (up to ~60 members), checked against a brute-force grouping."""
    rng = np.random.default_rng(8)
    n, idx_bits = 6000, 13
    keys = np.concatenate([rng.integers(0, 5000, n - 300), rng.integers(0, 5, 300)]).astype(np.uint64)
    hashes = rng.integers(0, 2**64, n, dtype=np.uint64)
    hashes[rng.random(n) < 0.5] &= np.uint64(0xFFFF)  # half of them close to each other
    words = mih.bucketed(keys.copy(), idx_bits)
    bucket = {}
    for w in words.tolist():
        bucket.setdefault(w >> idx_bits, []).append(w & ((1 << idx_bits) - 1))
    every = {(a, b) for members in bucket.values() for a in members for b in members if a < b}
    assert max(len(m) for m in bucket.values()) >= 50
    a, b = simhash.bucket_pairs_within(words, idx_bits, None, None)
    assert np.all(a < b) and len(a) == len(every) and set(zip(a.tolist(), b.tolist(), strict=False)) == every
    a, b = simhash.bucket_pairs_within(words, idx_bits, hashes, 10)
    within = {(x, y) for x, y in every if (int(hashes[x]) ^ int(hashes[y])).bit_count() <= 10}
    found = set(zip(a.tolist(), b.tolist(), strict=False))
    assert len(within) > 1000 and found == within and len(a) == len(within)


def test_signals_without_thumbnails_fall_back_to_the_phash_radius(dup_dataset, tmp_path, caplog):
    old_root, samples = dup_dataset
    root = tmp_path / "nothumbs"
    shutil.copytree(old_root, root)
    for f in (root / "signals" / "hashes").iterdir():
        pq.write_table(pq.read_table(f).drop_columns(["thumb"]), f)
    summary = dedup(str(root), max_distance=10)
    assert "rerun `curate annotate`" in caplog.text and summary["min_thumbnail_similarity"] is None
    c = _clusters(str(root))
    assert summary["search"].startswith("multi-index hashing") or summary["search"].startswith("all-pairs")
    assert c[samples[10].uid]["representative_uid"] == samples[62].uid  # the 2x re-upload still wins


def test_partly_annotated_dataset_warns_and_clusters_the_annotated_shards(dup_dataset, tmp_path, caplog):
    old_root, samples = dup_dataset
    root = tmp_path / "partial"
    shutil.copytree(old_root, root)
    hash_files = sorted((root / "signals" / "hashes").iterdir())
    assert len(hash_files) >= 2
    hash_files[-1].unlink()  # as if `curate annotate` were stopped before the last shard
    summary = dedup(str(root))
    assert f"1 shard(s) have no hash signals yet (first: {hash_files[-1].stem})" in caplog.text
    assert f"curate annotate {root}" in caplog.text
    left_out = set(
        pq.read_table(next((root / "shards").glob(f"{hash_files[-1].stem}.parquet")))
        .column("uid")
        .to_pylist()
    )
    c = _clusters(str(root))
    hashed = {s.uid for s in samples if s.image is not None} - left_out
    assert set(c) == hashed and summary["samples"] == len(hashed)


def test_exact_copies_share_their_first_copys_near_duplicates(tmp_path):
    """Only the first of byte-identical copies joins the near search; the clusters are as if all had."""
    rng = np.random.default_rng(5)
    photo = make_photo(7)
    original = encode(photo)
    samples = [Sample(f"https://a.example/{i}.jpg", f"copy {i}", original) for i in range(3)]
    samples.append(Sample("https://b.example/edited.jpg", "edited", transformed_copy(photo, rng)))
    samples += [
        Sample(f"https://c.example/{i}.jpg", f"other {i}", encode(make_photo(100 + i))) for i in range(5)
    ]
    root = str(tmp_path / "ds")
    write_dataset(root, samples)
    summary = dedup(root)
    c = _clusters(root)
    group = {c[s.uid]["cluster_id"] for s in samples[:4]}
    assert len(group) == 1 and summary["duplicates_by_kind"] == {"exact": 2, "url": 0, "near": 1}
    assert c[samples[3].uid]["duplicate_kind"] == "near" or c[samples[3].uid]["is_representative"]
    assert len({c[s.uid]["cluster_id"] for s in samples[4:]} | group) == 6


def test_same_fold_groups_identical_codes_under_their_first_row():
    rng = np.random.default_rng(12)
    codes = rng.integers(0, 2**64, (500, simhash.WORDS), dtype=np.uint64)
    codes[rng.integers(0, 500, 200)] = codes[rng.integers(0, 500, 200)]  # rows copied over other rows
    heads, members, head = simhash.same_fold(codes)
    _, first, inverse = np.unique(codes, axis=0, return_index=True, return_inverse=True)
    assert np.array_equal(heads, np.sort(first))
    expected = np.setdiff1d(np.arange(500), first)
    assert len(expected) > 50 and np.array_equal(np.sort(members), expected)
    assert np.array_equal(head, first[inverse.ravel()[members]])

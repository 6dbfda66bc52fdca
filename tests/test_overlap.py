"""curate overlap: planted transformed copies of evaluation images are found; caption matches too."""

from __future__ import annotations

import glob

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from curation_data import Sample, encode, make_photo, transformed_copy, write_dataset

from curate.dedup.overlap import caption_keys, format_table, overlap
from curate.errors import CurateError


@pytest.fixture(scope="module")
def contaminated(tmp_path_factory):
    """A training set of 160 photos, 50 of which are transformed copies of evaluation images."""
    base = tmp_path_factory.mktemp("overlap")
    rng = np.random.default_rng(5)
    eval_dir = base / "bench"
    planted = {}
    for i in range(80):  # eval images 0..49 leak into training; 50..79 stay clean
        cls = ["cat", "dog", "car", "tree"][i % 4]
        (eval_dir / cls).mkdir(parents=True, exist_ok=True)
        (eval_dir / cls / f"{i:03d}.jpg").write_bytes(encode(make_photo(5000 + i)))
        if i < 50:
            planted[f"{cls}/{i:03d}.jpg"] = i
    train = [
        Sample(f"https://web.example/{i}.jpg", f"an ordinary web photo {i}", encode(make_photo(i)))
        for i in range(110)
    ]
    copies = [
        Sample(
            f"https://leak.example/{i}.jpg",
            f"a reposted image {i}",
            transformed_copy(make_photo(5000 + i), rng),
        )
        for i in range(50)
    ]
    root = str(base / "ds")
    write_dataset(root, train + copies, per_shard=64)
    return root, str(eval_dir), planted, copies, train


def test_planted_transformed_eval_copies_are_found_with_high_recall(contaminated):
    root, eval_dir, planted, copies, _train = contaminated
    results = overlap(root, {"bench": eval_dir})  # the annotate stage's rule: pHash radius + thumbnails
    r = results["bench"]
    evals = {
        row["eval_id"]: row
        for row in duckdb.sql(f"SELECT * FROM '{root}/signals/overlap/bench.eval.parquet'")
        .to_arrow_table()
        .to_pylist()
    }
    assert len(evals) == r["eval_images"] == 80
    assert evals["cat/000.jpg"]["label"] == "cat" and evals["dog/001.jpg"]["label"] == "dog"
    recall = sum(evals[e]["overlapping"] for e in planted) / len(planted)
    assert recall >= 0.95
    false_eval = [e for e, row in evals.items() if row["overlapping"] and e not in planted]
    assert false_eval == []
    matches = duckdb.sql(
        f"SELECT uid, eval_id, distance, match_kind FROM '{root}/signals/overlap/bench.parquet'"
    ).fetchall()
    copy_of = {c.uid: i for i, c in enumerate(copies)}
    k = r["max_distance"]
    assert all(
        uid in copy_of and eid.endswith(f"/{copy_of[uid]:03d}.jpg") and d <= k and kind == "image"
        for uid, eid, d, kind in matches
    )
    assert r["training_flagged"] == len({m[0] for m in matches}) >= 48
    assert r["overlap_pct"] == pytest.approx(100 * r["eval_overlapping"] / 80, abs=0.01)
    table = format_table(results)
    assert "bench" in table.splitlines()[2] and f"{r['overlap_pct']:.2f}%" in table


def test_parquet_benchmark_with_captions_and_a_dataset_benchmark(contaminated, tmp_path):
    root, _, _, copies, train = contaminated
    images = [encode(make_photo(9000 + i)) for i in range(5)] + [b"not an image"]
    captions = ["An ordinary web photo 7!", "zebra", None, "x", "y", "broken"]
    path = tmp_path / "captioned.parquet"
    pq.write_table(
        pa.table(
            {
                "image": pa.array([{"bytes": b, "path": None} for b in images]),
                "caption": captions,
                "label": [1, 2, 3, 4, 5, 6],
            }
        ),
        path,
    )
    other = str(tmp_path / "other")
    write_dataset(other, [copies[0], Sample("https://x.example/z.jpg", "unrelated", encode(make_photo(777)))])
    results = overlap(root, {"captioned": str(path), "other_ds": other})

    rows = (
        duckdb.sql(f"SELECT * FROM '{root}/signals/overlap/captioned.parquet'").to_arrow_table().to_pylist()
    )
    assert [(r["uid"], r["eval_id"], r["match_kind"], r["distance"]) for r in rows] == [
        (train[7].uid, "0", "caption", None)
    ]
    ev = pq.read_table(f"{root}/signals/overlap/captioned.eval.parquet").to_pylist()
    assert ev[5]["error"] and not ev[5]["overlapping"] and ev[0]["label"] == "1"
    assert results["captioned"]["eval_unreadable"] == 1 and results["captioned"]["eval_overlapping"] == 1
    assert results["other_ds"]["eval_images"] == 2 and results["other_ds"]["eval_overlapping"] == 1
    keys = caption_keys(
        duckdb.connect(), ["  An ORDINARY, web-photo 7!", "नमस्ते दुनिया", "Café — déjà vu", None]
    )
    assert keys == ["an ordinary web photo 7", "नमस्ते दुनिया", "café déjà vu", ""]


def test_overlap_errors_name_the_problem(contaminated, tmp_path):
    root = contaminated[0]
    with pytest.raises(CurateError, match="does not exist"):
        overlap(root, {"b": str(tmp_path / "nope")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(CurateError, match="no image files"):
        overlap(root, {"b": str(tmp_path / "empty")})
    with pytest.raises(CurateError, match="benchmark name"):
        overlap(root, {"../x": str(tmp_path)})


def test_filter_drops_the_flagged_training_samples(contaminated):
    from curate.filter import filter_dataset

    root, eval_dir, _, _copies, train = contaminated
    overlap(root, {"bench": eval_dir})
    files = [f for f in glob.glob(f"{root}/signals/overlap/*.parquet") if not f.endswith(".eval.parquet")]
    flagged = {u for (u,) in duckdb.sql(f"SELECT uid FROM read_parquet({files})").fetchall()}
    assert len(files) >= 1 and len(flagged) >= 48  # every benchmark's matches count (earlier tests add some)
    summary = filter_dataset(root, {"name": "clean", "filter": {"drop_benchmark_overlap": True}})
    d = dict(duckdb.sql(f"SELECT uid, reasons FROM '{root}/decisions/clean.parquet'").fetchall())
    assert {u for u, r in d.items() if r == ["benchmark_overlap"]} == flagged
    assert all(d[s.uid] == [] for s in train if s.uid not in flagged) and summary["dropped_by_reason"][
        "benchmark_overlap"
    ] == len(flagged)

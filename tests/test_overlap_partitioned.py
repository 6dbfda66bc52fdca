"""The partitioned `curate overlap` (curate.dedup.overlap_partitioned) on a local 2-CPU Ray: the same
matches, eval flags and summary as the single-process path, for any partition count."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from curation_data import Sample, encode, make_photo, transformed_copy, write_dataset
from PIL import Image

from curate.cli import main
from curate.dedup.overlap import overlap


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """A training pool over six shards (one without hash signals) holding transformed copies of eval
    images (two copies of some), a flat image that is also in the eval set, captions that repeat eval
    captions, and a failed download; three benchmarks: a folder, a captioned Parquet and a dataset."""
    base = tmp_path_factory.mktemp("overlap_partitioned")
    rng = np.random.default_rng(7)
    flat = encode(Image.new("RGB", (64, 64), (120, 120, 120)))
    bench = base / "bench"
    for i in range(40):  # eval images 0..24 leak into training
        cls = ["cat", "dog"][i % 2]
        (bench / cls).mkdir(parents=True, exist_ok=True)
        (bench / cls / f"{i:03d}.jpg").write_bytes(encode(make_photo(7000 + i)))
    (bench / "cat" / "flat.jpg").write_bytes(flat)
    train = [
        Sample(f"https://web.example/{i}.jpg", f"an ordinary web photo {i}", encode(make_photo(i)))
        for i in range(50)
    ]
    train += [
        Sample(
            f"https://leak.example/{i}/{c}.jpg",
            f"a reposted image {i} {c}",
            transformed_copy(make_photo(7000 + i), rng),
        )
        for i in range(25)
        for c in range(1 + (i % 3 == 0))
    ]
    train += [
        Sample("https://flat.example/a.png", "grey", flat),
        Sample("https://gone.example/x.jpg", "a failed download", None),
    ]
    order = rng.permutation(len(train))
    root = str(base / "ds")
    write_dataset(root, [train[i] for i in order], per_shard=16)
    os.remove(f"{root}/signals/hashes/00002.parquet")  # its captions still count, its images do not
    captioned = base / "captioned.parquet"
    unhashed = pq.read_table(f"{root}/shards/00002.parquet").to_pylist()
    in_unhashed = next(r["caption"] for r in unhashed if r["status"] == "success" and len(r["caption"]) > 12)
    pq.write_table(
        pa.table(
            {
                "image": pa.array(
                    [{"bytes": encode(make_photo(7000 + i)), "path": None} for i in (3, 30)]
                    + [{"bytes": b"not an image", "path": None}] * 2
                ),
                "caption": ["An ordinary web photo 7!", "zebra", in_unhashed.upper(), None],
            }
        ),
        captioned,
    )
    other = str(base / "other")
    write_dataset(other, [train[50], Sample("https://x.example/z.jpg", "unrelated", encode(make_photo(777)))])
    return root, {"bench": str(bench), "captioned": str(captioned), "other_ds": other}


def _outputs(root: str, results: dict) -> dict:
    files = {
        name: (
            pq.read_table(f"{root}/signals/overlap/{name}.parquet").to_pylist(),
            pq.read_table(f"{root}/signals/overlap/{name}.eval.parquet").to_pylist(),
        )
        for name in results
    }
    rows = {
        name: {k: v for k, v in r.items() if k not in ("seconds", "partitions")}
        for name, r in results.items()
    }
    return {"files": files, "rows": rows}


def test_partitioned_overlap_on_ray_equals_the_single_process_path(pool, local_ray):
    root, benchmarks = pool
    expected = _outputs(root, overlap(root, benchmarks))
    rows = expected["rows"]
    assert rows["bench"]["image_matches"] > rows["bench"]["eval_overlapping"] >= 15  # some have two copies
    assert rows["captioned"]["caption_matches"] == 2 and rows["captioned"]["image_matches"] >= 1
    assert rows["other_ds"]["eval_overlapping"] == 1  # the pool exercises every kind of match
    for parts in (1, 3):
        results = overlap(root, benchmarks, executor="ray", partitions=parts)
        assert _outputs(root, results) == expected  # same rows, same order, same table
        assert all(r["partitions"]["count"] == parts for r in results.values())
        assert results["bench"]["partitions"]["peak_task_rss_mb"] > 0
        assert not os.listdir(f"{root}/signals/overlap/_work")  # work files removed with the result


def test_without_thumbnails_both_paths_search_the_phash_radius(pool, tmp_path, local_ray):
    """Older signals carry no thumbnails: both paths fall back to multi-index hashing on the pHash."""
    root, benchmarks = pool
    bare = str(tmp_path / "bare")
    shutil.copytree(root, bare, ignore=shutil.ignore_patterns("overlap"))
    for path in Path(bare, "signals", "hashes").glob("*.parquet"):
        t = pq.read_table(path)
        pq.write_table(t.drop_columns(["thumb"]), path)
    expected = _outputs(bare, overlap(bare, {"bench": benchmarks["bench"]}))
    assert expected["rows"]["bench"]["eval_overlapping"] >= 15
    got = overlap(bare, {"bench": benchmarks["bench"]}, executor="local", partitions=2, workers=2)
    assert _outputs(bare, got) == expected


def test_cli_runs_the_partitioned_overlap(pool, local_ray, capsys):
    root, benchmarks = pool
    expected = _outputs(root, overlap(root, {"bench": benchmarks["bench"]}))
    assert main(["overlap", root, "--benchmark", f"bench={benchmarks['bench']}", "--executor", "ray"]) == 0
    assert "partitioned: 1 partitions" in capsys.readouterr().out
    got = pq.read_table(f"{root}/signals/overlap/bench.parquet").to_pylist()
    assert got == expected["files"]["bench"][0]


def test_cli_refuses_a_partition_count_below_one(pool, capsys):
    root, benchmarks = pool
    assert main(["overlap", root, "--benchmark", f"bench={benchmarks['bench']}", "--partitions", "0"]) != 0
    assert "--partitions must be at least 1" in capsys.readouterr().err

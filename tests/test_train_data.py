"""The training data stream.

Shard splitting over ranks and workers, bad samples, tars, crops, resume state.
"""

from __future__ import annotations

import io
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from train_data import samples, write_parquet_shards, write_tar_shards

from curate.errors import CurateError
from curate.synthweb.photos import make_photo
from curate.train.data import (
    LoaderState,
    ShardStream,
    count_samples,
    eval_image,
    iter_records,
    list_shards,
    make_loader,
    random_box,
    train_image,
)
from curate.train.tokenizer import BytePairTokenizer


@pytest.fixture(scope="module")
def rows():
    return samples(48, size=48)


@pytest.fixture(scope="module")
def tok(rows):
    return BytePairTokenizer.train([r["caption"] for r in rows], vocab_size=300)


def _epoch0_keys(stream: ShardStream) -> list[str]:
    """Keys of epoch 0 as delivered by a real DataLoader, read until every worker has moved on to epoch 1."""
    loader = iter(make_loader(stream))
    keys, done = [], set()
    while len(done) < stream.workers:
        batch = next(loader)
        keys += [k for k, e in zip(batch["keys"], batch["epochs"].tolist(), strict=False) if e == 0]
        if batch["epochs"][-1] >= 1:
            done.add(batch["worker"])
    return keys


def test_no_sample_twice_across_two_ranks_and_two_workers(tmp_path, rows, tok):
    shards = write_parquet_shards(tmp_path, rows, n_shards=8)
    seen = []
    for rank in range(2):
        stream = ShardStream(
            shards, tok, 32, batch_size=5, rank=rank, world_size=2, workers=2, seed=7, shuffle_buffer=6
        )
        seen += _epoch0_keys(stream)
    assert len(seen) == len(set(seen)) == len(rows)
    assert set(seen) == {r["uid"] for r in rows}


def test_shuffle_is_seeded(tmp_path, rows, tok):
    shards = write_parquet_shards(tmp_path, rows, n_shards=4)

    def first(seed):
        return next(iter(make_loader(ShardStream(shards, tok, 32, 8, seed=seed, shuffle_buffer=10))))

    a, b, c = first(1), first(1), first(2)
    assert a["keys"] == b["keys"] and np.array_equal(a["images"], b["images"])
    assert a["keys"] != c["keys"]
    assert a["images"].shape == (8, 32, 32, 3) and a["images"].dtype.is_floating_point is False
    assert a["texts"].shape == (8, 77)


def test_bad_images_are_skipped_and_counted(tmp_path, rows, tok):
    good = rows[:10]
    bad = [
        {
            "uid": "broken",
            "caption": "a broken file",
            "image": b"\xff\xd8\xff\xe0 not really a jpeg",
            "label": "x",
        },
        {"uid": "empty", "caption": "no image", "image": None, "label": "x"},
        {"uid": "nocap", "caption": None, "image": rows[0]["image"], "label": "x"},
        {"uid": "truncated", "caption": "cut", "image": rows[1]["image"][:200], "label": "x"},
    ]
    table = pa.table({k: [r[k] for r in bad + good] for k in ("uid", "caption", "image", "label")})
    pq.write_table(table, tmp_path / "00000.parquet")
    stream = ShardStream([str(tmp_path / "00000.parquet")], tok, 32, batch_size=10, shuffle_buffer=1)
    batch = next(iter(make_loader(stream)))
    assert sorted(batch["keys"]) == sorted(r["uid"] for r in good)
    assert batch["bad"] == {"decode_error": 2, "missing_image": 1, "missing_caption": 1}


def test_download_shards_yield_only_successes(tmp_path, rows, tok):
    status = ["success", "failed"] * 5
    table = pa.table(
        {
            "uid": [r["uid"] for r in rows[:10]],
            "caption": [r["caption"] for r in rows[:10]],
            "image": [r["image"] if s == "success" else None for r, s in zip(rows, status, strict=False)],
            "status": status,
        }
    )
    pq.write_table(table, tmp_path / "00000.parquet")
    recs = list(iter_records(str(tmp_path / "00000.parquet")))
    assert [k for k, _, _ in recs] == [r["uid"] for r, s in zip(rows, status, strict=False) if s == "success"]


def test_webdataset_tars_stream_like_parquet(tmp_path, rows, tok):
    tars = write_tar_shards(tmp_path / "tar", rows[:12], n_shards=3)
    recs = [r for path in tars for r in iter_records(path)]
    by_key = {r["uid"]: r for r in rows[:12]}
    assert len(recs) == 12
    for key, caption, image in recs:
        assert caption == by_key[key]["caption"] and image == by_key[key]["image"]
    assert list_shards(str(tmp_path / "tar")) == tars
    assert count_samples(tars) is None
    batch = next(iter(make_loader(ShardStream(tars, tok, 32, 6, workers=0))))
    assert len(batch["keys"]) == 6


def test_an_img2dataset_webdataset_folder_trains_from_its_tars_not_its_metadata_parquets(tmp_path, rows, tok):
    # img2dataset's webdataset output: NNNNN.tar beside NNNNN.parquet metadata (no image column).
    tars = write_tar_shards(tmp_path / "i2d", rows[:12], n_shards=2)
    for tar in tars:
        meta = pa.table({"key": ["0"], "url": ["http://example.org/a.jpg"], "status": ["success"]})
        pq.write_table(meta, tar.removesuffix(".tar") + ".parquet")
    assert list_shards(str(tmp_path / "i2d")) == tars
    batch = next(iter(make_loader(ShardStream(list_shards(str(tmp_path / "i2d")), tok, 32, 6, workers=0))))
    assert len(batch["keys"]) == 6


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, **kw)
    return buf.getvalue()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def _pil_crop(data: bytes, seed: int, size: int, draft: tuple[int, int] | None = None) -> np.ndarray:
    """The reference.

    PIL decode (optionally DCT-scaled), then PIL's bilinear resize of the same random box.
    """
    img = Image.open(io.BytesIO(data))
    w, h = img.size
    box = random_box(w, h, random.Random(seed))
    if draft:
        img.draft("RGB", draft)
    img = img.convert("RGB")
    sx, sy = img.size[0] / w, img.size[1] / h
    # curate cuts whole decoded pixels
    box = tuple(round(v * s) for v, s in zip(box, (sx, sy, sx, sy), strict=False))
    return np.asarray(img.resize((size, size), Image.BILINEAR, box=box))


def test_crops_and_reduced_decoding():
    img = Image.new("RGB", (640, 480), (200, 10, 10))
    img.paste((10, 10, 200), (320, 0, 640, 480))  # right half blue
    data = _jpeg(img)
    out = train_image(data, 64, random.Random(0))
    assert out.shape == (64, 64, 3) and out.dtype == torch.uint8
    centre = eval_image(data, 64)
    assert centre[32, 4, 0] > 150 and centre[32, 60, 2] > 150  # red on the left, blue on the right
    x0, y0, x1, y1 = random_box(640, 480, random.Random(1))
    assert 0.9 * 640 * 480 * 0.99 <= (x1 - x0) * (y1 - y0) <= 640 * 480 and x1 <= 640 and y1 <= 480


def test_train_crops_match_pil_bilinear_reference():
    """simplejpeg decode + torch's uint8 antialiased resize.

    Compared against PIL decode + PIL bilinear on the same box.
    """
    for seed, photo in enumerate(samples(6, size=256)):
        got = train_image(photo["image"], 224, random.Random(seed)).numpy()
        assert _psnr(got, _pil_crop(photo["image"], seed, 224)) > 55
    big = make_photo("red circle", seed=3, size=(1024, 768))
    data = _jpeg(big)  # a 224 crop of it spans >= 2x224 pixels: decoded at 1/2 scale, as PIL's draft does
    got = train_image(data, 224, random.Random(5)).numpy()
    assert _psnr(got, _pil_crop(data, 5, 224, draft=(512, 384))) > 55
    assert _psnr(got, _pil_crop(data, 5, 224)) > 40  # and still close to the full-resolution decode


def test_non_rgb_jpegs_and_other_formats_decode_to_rgb_crops():
    photo = make_photo("pink heart", seed=1, size=(96, 80))
    buf = io.BytesIO()
    photo.save(buf, "PNG")
    variants = {
        "png": buf.getvalue(),
        "gray": _jpeg(photo.convert("L")),
        "cmyk": _jpeg(photo.convert("CMYK")),
    }
    for name, data in variants.items():
        got = train_image(data, 48, random.Random(0))  # under 2x smaller: a full decode
        assert got.shape == (48, 48, 3) and got.dtype == torch.uint8, name
        ref = _pil_crop(data, 0, 48)
        assert _psnr(got.numpy(), ref) > 45, name  # CMYK goes through PIL, the rest as JPEG/PNG decoders do
        if name == "gray":
            assert torch.equal(got[..., 0], got[..., 1]) and torch.equal(got[..., 0], got[..., 2])


def test_loader_state_resume_replays_exactly(tmp_path, rows, tok):
    shards = write_parquet_shards(tmp_path, rows, n_shards=4)
    kwargs = {"batch_size": 4, "workers": 2, "seed": 3, "shuffle_buffer": 5}
    full = ShardStream(shards, tok, 32, **kwargs)
    loader = iter(make_loader(full))
    batches = [next(loader) for _ in range(9)]
    state = LoaderState(workers=2)
    for b in batches[:5]:
        state.update(b)
    resumed = iter(make_loader(ShardStream(shards, tok, 32, state=LoaderState(**vars(state)), **kwargs)))
    for expected in batches[5:]:
        got = next(resumed)
        assert got["keys"] == expected["keys"] and np.array_equal(got["images"], expected["images"])


def test_too_few_shards_and_missing_data_are_clear_errors(tmp_path, rows, tok):
    shards = write_parquet_shards(tmp_path, rows, n_shards=2)
    with pytest.raises(CurateError, match="lower --workers"):
        make_loader(ShardStream(shards, tok, 32, 4, rank=0, world_size=2, workers=2))
    with pytest.raises(CurateError, match="does not exist"):
        list_shards(str(tmp_path / "nope"))
    pq.write_table(pa.table({"uid": ["a"], "text_only": ["b"]}), tmp_path / "odd.parquet")
    with pytest.raises(CurateError, match="no image column"):
        list(iter_records(str(tmp_path / "odd.parquet")))


def test_decompression_bombs_are_refused_before_decoding(monkeypatch):
    data = _jpeg(make_photo("pink heart", seed=1, size=(96, 80)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 96 * 80 // 4)  # the image is over twice the limit
    with pytest.raises(Image.DecompressionBombError):
        train_image(data, 48, random.Random(0))

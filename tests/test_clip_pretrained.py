"""curate.train.pretrained reads every checkpoint format into the same tensors, and refuses clearly."""

from __future__ import annotations

import importlib.util
import pickle
import sys
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from train_data import one_thread, samples, write_parquet_shards  # noqa: F401  (one_thread: autouse fixture)

from curate.cli import main
from curate.errors import CurateError
from curate.train.model import CLIP, get_config
from curate.train.preprocess import ImageTransform
from curate.train.pretrained import checkpoint_file, clip_tokenizer, load_into, read_weights


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return CLIP(get_config("tiny")).state_dict()


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_every_format_gives_the_same_tensors(tmp_path, tiny_state):
    plain = tmp_path / "model.bin"
    torch.save(tiny_state, plain)
    training = tmp_path / "epoch_3.pt"  # open_clip's training checkpoint, saved from a DDP-wrapped model
    torch.save(
        {
            "epoch": 3,
            "name": "run",
            "state_dict": {f"module.{k}": v for k, v in tiny_state.items()},
            "optimizer": {"state": {}, "param_groups": []},
        },
        training,
    )
    half = tmp_path / "half.pt"  # weights stored in fp16 are read back as fp32
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in tiny_state.items()}, half)
    read = {p.name: read_weights(p) for p in (plain, training)}
    assert read["model.bin"].kind == "state_dict" and read["epoch_3.pt"].kind == "open_clip_checkpoint"
    assert all(_same(w.state_dict, tiny_state) for w in read.values())
    rounded = {k: v.half().float() for k, v in tiny_state.items()}
    assert _same(read_weights(half).state_dict, rounded)
    safetensors = pytest.importorskip("safetensors.torch")
    st = tmp_path / "model.safetensors"
    safetensors.save_file(tiny_state, st)
    assert read_weights(st).kind == "safetensors" and _same(read_weights(st).state_dict, tiny_state)


def test_loaded_model_computes_what_the_source_computes(tmp_path, tiny_state):
    path = tmp_path / "model.pt"
    torch.save(tiny_state, path)
    model = CLIP(get_config("tiny"))
    load_into(model, read_weights(path).state_dict, str(path))
    source = CLIP(get_config("tiny"))
    source.load_state_dict(tiny_state)
    image, text = torch.randn(2, 3, 64, 64), torch.randint(0, 4095, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(image), source.encode_image(image), rtol=0, atol=0)
        torch.testing.assert_close(model.encode_text(text), source.encode_text(text), rtol=0, atol=0)


def test_files_that_cannot_be_read_are_refused_with_the_reason(tmp_path, tiny_state):
    with pytest.raises(CurateError, match="does not exist .*never downloads"):
        checkpoint_file(tmp_path / "ViT-B-32.pt")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(CurateError, match="without checkpoints/step_"):
        checkpoint_file(tmp_path / "empty_run")
    code = tmp_path / "pickled.pt"  # a pickle that would run code when fully unpickled
    code.write_bytes(pickle.dumps({"state_dict": np.zeros(3)}))
    with pytest.raises(CurateError, match="not a checkpoint curate can read safely"):
        read_weights(code)
    nested = tmp_path / "nested.pt"
    torch.save({"weights": [1, 2, 3]}, nested)
    with pytest.raises(CurateError, match="holds no state_dict of tensors"):
        read_weights(nested)


def test_key_and_shape_errors_name_the_keys(tiny_state):
    state = dict(tiny_state)
    state.pop("ln_final.weight")
    state["visual.extra"] = torch.zeros(1)
    state["text_projection"] = torch.zeros(3, 3)
    with pytest.raises(CurateError) as err:
        load_into(CLIP(get_config("tiny")), state, "weights.pt")
    message = str(err.value)
    assert "1 shapes differ, 1 keys missing, 1 unexpected" in message
    assert "text_projection: (3, 3) in the file vs (128, 128) in the model" in message
    assert "missing ln_final.weight" in message and "unexpected visual.extra" in message


def test_preprocessing_is_short_side_bicubic_then_centre_crop():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (200, 320, 3), dtype=np.uint8))  # 320 wide, 200 high
    pixels = ImageTransform(224).pixels(image)
    # torchvision's Resize(224): short side 224, long side int(224 * 320 / 200) = 358; crop left round(67.0)
    expected = np.asarray(image.resize((358, 224), Image.Resampling.BICUBIC).crop((67, 0, 291, 224)))
    assert pixels.shape == (224, 224, 3) and np.array_equal(pixels, expected)
    x = ImageTransform(224).normalize(pixels[None])
    assert x.shape == (1, 3, 224, 224) and x.dtype == torch.float32
    assert torch.allclose(
        x[0, 0, 0, 0], (torch.tensor(float(pixels[0, 0, 0])) / 255 - 0.48145466) / 0.26862954
    )
    rgba = Image.fromarray(rng.integers(0, 256, (224, 224, 4), dtype=np.uint8), "RGBA")
    assert ImageTransform(224).pixels(rgba).shape == (
        224,
        224,
        3,
    )  # alpha dropped after resizing, as open_clip


@pytest.mark.parametrize(("kind", "quick"), [("openai", True), ("open_clip", False)])
def test_fine_tuning_openai_weights_runs_them_with_quickgelu(tmp_path, open_clip_wheel, kind, quick):
    with zipfile.ZipFile(open_clip_wheel) as wheel:
        vocab = wheel.extract("open_clip/bpe_simple_vocab_16e6.txt.gz", tmp_path)
    torch.manual_seed(0)
    weights = tmp_path / "weights.pt"
    torch.save(CLIP(get_config("tiny", vocab_size=49408, image_size=32)).state_dict(), weights)
    write_parquet_shards(tmp_path / "data", samples(8, size=40), n_shards=1)
    run = tmp_path / "run"
    argv = [
        "train",
        str(tmp_path / "data"),
        "-o",
        str(run),
        "--model",
        "tiny",
        "--image-size",
        "32",
        "--init",
        str(weights),
        "--init-kind",
        kind,
        "--tokenizer",
        vocab,
        "--batch-size",
        "8",
        "--steps",
        "1",
        "--workers",
        "0",
        "--threads",
        "1",
        "--save-every",
        "1",
    ]
    assert main(argv) == 0
    ckpt = torch.load(sorted(run.glob("checkpoints/step_*.pt"))[-1], map_location="cpu", weights_only=True)
    assert ckpt["model_config"]["quick_gelu"] is quick


def test_clip_vocabulary_comes_from_the_file_named_or_an_installed_open_clip(
    tmp_path, monkeypatch, open_clip_wheel
):
    if importlib.util.find_spec("open_clip") is None:
        with pytest.raises(CurateError, match="--clip-tokenizer PATH/bpe_simple_vocab_16e6.txt.gz"):
            clip_tokenizer(None)
    with pytest.raises(CurateError, match="tokenizer file .*missing.txt.gz does not exist"):
        clip_tokenizer(str(tmp_path / "missing.txt.gz"))
    site = tmp_path / "site"  # an installed open_clip package: found by its files, never imported
    with zipfile.ZipFile(open_clip_wheel) as wheel:
        wheel.extractall(site, [n for n in wheel.namelist() if n.startswith("open_clip/")])
    monkeypatch.syspath_prepend(str(site))
    tok = clip_tokenizer(None)
    assert tok.encode("a photo of a cat") == [320, 1125, 539, 320, 2368] and tok.vocab_size == 49408
    assert "open_clip" not in sys.modules

"""curate's CLIP equals open_clip's own encode_image / encode_text with the same weights (fp32, 1e-5).

The weights are random (initialised by open_clip's own CLIP) and saved in the layouts users bring: an
open_clip state_dict file, and an OpenAI-style TorchScript archive (fp16 weights plus OpenAI's three scalar
entries) that open_clip reads with its own `load_openai_model`. curate's side is the signal's real path
(curate.annotate.clip.Scorer: loader, decode, preprocessing, tokenizer, text cut); both sides see the same
pixels, since open_clip's transforms need torchvision, which is absent here.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from open_clip_reference import load
from train_data import one_thread  # noqa: F401  (autouse fixture: one intra-op thread)

from curate.annotate.clip import Scorer
from curate.synthweb.photos import CLASSES, make_photo

CAPTIONS = ["a photo of a red circle", "", "word " * 100, "Fish &amp; chips on the beach, 2026"]
ATOL = 1e-5


def _images() -> list[bytes]:
    """Non-square sizes (resize and crop both matter), one smaller than the model input, four formats."""
    out = []
    for i, (size, fmt, mode) in enumerate(
        [
            ((320, 200), "JPEG", "RGB"),
            ((200, 300), "PNG", "RGBA"),
            ((150, 120), "WEBP", "RGB"),
            ((224, 224), "PNG", "P"),
        ]
    ):
        buf = io.BytesIO()
        make_photo(CLASSES[i], seed=i, size=size).convert(mode).save(buf, fmt)
        out.append(buf.getvalue())
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory, open_clip_wheel):
    pytest.importorskip("ftfy")
    return load(open_clip_wheel, tmp_path_factory.mktemp("open_clip"))


@pytest.fixture(scope="module")
def weights(reference, tmp_path_factory):
    """Random ViT-B-32 weights from open_clip's own initialisation, saved as an open_clip state_dict."""
    torch.manual_seed(0)
    model = reference.model.CLIP(**reference.config("ViT-B-32-quickgelu")).eval()
    path = tmp_path_factory.mktemp("weights") / "vit-b-32.pt"
    torch.save(model.state_dict(), path)
    return path, model


def _ours(path, name, vocab) -> tuple[np.ndarray, np.ndarray, np.ndarray, Scorer]:
    scorer = Scorer(str(path), name, str(vocab), device="cpu", precision="fp32", threads=None)
    images = _images()
    prepared = scorer.prepare(images, CAPTIONS, np.arange(len(images)))
    img, txt = scorer.embed(prepared)
    return img, txt, prepared.pixels, scorer


def _theirs(model, reference, scorer: Scorer, pixels) -> tuple[np.ndarray, np.ndarray]:
    tokens = reference.tokenizer.SimpleTokenizer(str(reference.vocab))(CAPTIONS)
    with torch.no_grad():
        img = model.encode_image(scorer.transform.normalize(pixels), normalize=True)
        txt = model.encode_text(tokens, normalize=True)
    return img.numpy(), txt.numpy()


def _assert_equal(ours, theirs) -> None:
    (oi, ot), (ti, tt) = ours, theirs
    np.testing.assert_allclose(oi, ti, atol=ATOL, rtol=0)
    np.testing.assert_allclose(ot, tt, atol=ATOL, rtol=0)
    np.testing.assert_allclose((oi * ot).sum(1), (ti * tt).sum(1), atol=ATOL, rtol=0)  # the clip_score


def test_state_dict_file_gives_open_clips_embeddings_with_gelu_and_quickgelu(reference, weights):
    path, quick = weights
    exact = reference.model.CLIP(**reference.config("ViT-B-32")).eval()  # the same weights with exact GELU
    exact.load_state_dict(quick.state_dict())
    results = {}
    for name, model in (("ViT-B-32", exact), ("ViT-B-32-quickgelu", quick)):
        img, txt, pixels, scorer = _ours(path, name, reference.vocab)
        assert scorer.name == name and scorer.model.config.quick_gelu == name.endswith("quickgelu")
        results[name] = (img, txt), _theirs(model, reference, scorer, pixels)
        _assert_equal(*results[name])
    # The two activations really differ on these weights, so the comparison can tell them apart.
    with pytest.raises(AssertionError):
        _assert_equal(results["ViT-B-32"][0], results["ViT-B-32-quickgelu"][1])


class _OpenAIArchive(torch.nn.Module):
    """A module whose state_dict is OpenAI's released layout: open_clip's keys plus three scalars."""

    def __init__(self, clip: torch.nn.Module):
        super().__init__()
        for name, param in clip.named_parameters(recurse=False):
            self.register_parameter(name, param)
        for name, child in clip.named_children():
            setattr(self, name, child)
        for name, value in (("input_resolution", 224), ("context_length", 77), ("vocab_size", 49408)):
            self.register_buffer(name, torch.tensor(value))
        self._clip = [clip]  # not a submodule: its parameters are registered above under their own names

    def forward(self, image: torch.Tensor, text: torch.Tensor):
        return self._clip[0].encode_image(image), self._clip[0].encode_text(text)


@pytest.mark.slow
def test_openai_torchscript_archive_gives_open_clips_embeddings(reference, weights, tmp_path):
    _, quick = weights
    with torch.no_grad():
        traced = torch.jit.trace(
            _OpenAIArchive(quick), (torch.zeros(1, 3, 224, 224), torch.zeros(1, 77).long()), check_trace=False
        )
    halves = (".in_proj_weight", ".in_proj_bias", "text_projection", "visual.proj")
    for name, param in traced.named_parameters():  # OpenAI ships linear/conv/attention weights in fp16
        if name.endswith(halves) or any(f".{m}." in name for m in ("c_fc", "c_proj", "out_proj", "conv1")):
            param.data = param.data.half()
    archive = tmp_path / "ViT-B-32.pt"
    torch.jit.save(traced, archive)
    assert (
        json.dumps(sorted({str(v.dtype) for v in torch.jit.load(archive).state_dict().values()}))
        == '["torch.float16", "torch.float32", "torch.int64"]'
    )

    theirs_model = reference.openai.load_openai_model(str(archive), precision="fp32", device="cpu")
    # Named without -quickgelu, as users do: OpenAI's weights run with QuickGELU regardless (as in open_clip).
    img, txt, pixels, scorer = _ours(archive, "ViT-B-32", reference.vocab)
    assert scorer.name == "ViT-B-32-quickgelu"
    _assert_equal((img, txt), _theirs(theirs_model, reference, scorer, pixels))


@pytest.mark.parametrize(
    "name",
    [
        "ViT-B-32",
        "ViT-B-32-quickgelu",
        "ViT-B-16",
        "ViT-B-16-quickgelu",
        "ViT-L-14",
        "ViT-L-14-quickgelu",
        "ViT-H-14",
    ],
)
def test_configs_build_open_clips_parameters_and_activation(reference, name):
    from curate.train.model import CLIP, QuickGELU, get_config

    with torch.device("meta"):
        theirs = reference.model.CLIP(**reference.config(name))
        ours = CLIP(get_config(name))
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }
    assert (
        type(ours.visual.transformer.resblocks[0].mlp.gelu).__name__
        == type(theirs.visual.transformer.resblocks[0].mlp.gelu).__name__
        == ("QuickGELU" if "quick" in name else "GELU")
    )
    assert ours.transformer.resblocks[0].attn.heads == theirs.transformer.resblocks[0].attn.num_heads
    assert (
        ours.visual.transformer.resblocks[0].attn.heads
        == theirs.visual.transformer.resblocks[0].attn.num_heads
    )
    x = torch.linspace(-6, 6, 101)
    torch.testing.assert_close(QuickGELU()(x), x * torch.sigmoid(1.702 * x))

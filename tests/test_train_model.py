"""CLIP model, tokenizers and losses: open_clip compatibility, CLIP's BPE, and one step checked by hand."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest
import torch
from conftest import shared_path
from train_data import one_thread  # noqa: F401  (autouse fixture)

from curate.errors import CurateError
from curate.train.loss import contrastive_loss
from curate.train.model import CLIP, get_config, num_params
from curate.train.tokenizer import BytePairTokenizer, ClipBPETokenizer, clean, load_file
from curate.train.train import load_pretrained, train_step


@pytest.mark.parametrize("name", ["ViT-B-32", "ViT-B-16", "ViT-L-14"])
def test_state_dict_matches_open_clip_reference(name):
    ref = json.loads(shared_path("reference", "open_clip", f"{name}.json").read_text())
    with torch.device("meta"):
        model = CLIP(get_config(name))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(ours) == list(ref["state_dict"])  # same keys, in open_clip's order
    assert ours == ref["state_dict"]
    assert num_params(model) == ref["num_params"]
    if name == "ViT-B-32":
        assert num_params(model) == 151_277_313
    assert not any("attn_mask" in k for k in ours)


def test_tiny_forward_shapes_and_temperature():
    torch.manual_seed(0)
    model = CLIP(get_config("tiny", vocab_size=300))
    text = torch.zeros(3, 77, dtype=torch.long)
    text[:, :4] = torch.tensor([298, 5, 6, 299])
    img, txt, scale = model(torch.randn(3, 3, 64, 64), text)
    assert img.shape == txt.shape == (3, 128)
    assert torch.allclose(img.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert scale.item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        model.logit_scale.fill_(7.0)
    model.clamp_logit_scale()
    assert model.logit_scale.exp().item() == pytest.approx(100.0, rel=1e-5)
    # EOT pooling: tokens after the end token do not change the text feature (causal mask + argmax pooling)
    changed = text.clone()
    changed[:, 10] = 17
    assert torch.allclose(model.encode_text(text), model.encode_text(changed), atol=1e-6)


def test_load_pretrained_open_clip_and_openai_layouts(tmp_path):
    torch.manual_seed(1)
    src = CLIP(get_config("tiny", vocab_size=300))
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "oc.pt")
    dst = CLIP(get_config("tiny", vocab_size=300))
    load_pretrained(dst, str(tmp_path / "oc.pt"), "open_clip")
    pairs = zip(src.state_dict().values(), dst.state_dict().values(), strict=False)
    assert all(torch.equal(a, b) for a, b in pairs)
    openai = dict(src.state_dict(), input_resolution=torch.tensor(64), context_length=torch.tensor(77))
    torch.save(openai, tmp_path / "openai.pt")
    load_pretrained(CLIP(get_config("tiny", vocab_size=300)), str(tmp_path / "openai.pt"), "openai")
    with pytest.raises(CurateError, match="token_embedding.weight"):
        load_pretrained(CLIP(get_config("tiny", vocab_size=400)), str(tmp_path / "oc.pt"), "open_clip")


def test_byte_bpe_round_trip_and_specials():
    captions = [
        "A red circle on the grass",
        "a blue square in the snow",
        "Ein roter Kreis auf der Wiese",
        "赤い丸 on a wooden table",
    ] * 20
    tok = BytePairTokenizer.train(captions, vocab_size=400)
    assert (
        tok.eot_id == tok.vocab_size - 1 and tok.sot_id == tok.vocab_size - 2
    )  # argmax pooling finds the end
    for text in ["A  red circle\n on the GRASS!", "Ein roter Kreis &amp; 赤い丸", "unseen words: zebra 42"]:
        assert tok.decode(tok.encode(text)) == clean(text)
    ids = tok(["a red circle", "x " * 200])
    assert ids.shape == (2, 77)
    assert ids[0, 0] == tok.sot_id and ids[0].argmax() == len(tok.encode("a red circle")) + 1
    assert ids[1, -1] == tok.eot_id  # truncated text still ends with the end token
    again = load_file_roundtrip(tok)
    assert again.encode("a blue square") == tok.encode("a blue square")


def load_file_roundtrip(tok: BytePairTokenizer):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        tok.save(f"{d}/tokenizer.json")
        return load_file(f"{d}/tokenizer.json")


def test_clip_bpe_on_hand_made_vocabulary(tmp_path):
    # Byte-level ids: printable ASCII '!'..'~' come first, so 'a' = 64 and 'a</w>' = 256 + 64.
    merges = "#version: 0.2\nt h\nth e</w>\nc a\nca t</w>\na t</w>\n"
    path = tmp_path / "bpe_simple_vocab_16e6.txt.gz"
    path.write_bytes(gzip.compress(merges.encode()))
    tok = load_file(str(path))
    assert isinstance(tok, ClipBPETokenizer)
    assert tok.vocab_size == 512 + 5 + 2
    the, cat, at = 512 + 1, 512 + 3, 512 + 4  # 'the</w>', 'cat</w>', 'at</w>' (merge order)
    s = ord("s") - ord("!")  # 's' as a word-initial byte
    comma_end = 256 + ord(",") - ord("!")
    assert tok.encode("The  CAT, sat") == [the, cat, comma_end, s, at]
    assert tok.decode(tok.encode("the cat sat")) == "the cat sat"
    ids = tok("the cat")
    assert ids[0, :4].tolist() == [tok.sot_id, the, cat, tok.eot_id] and tok.eot_id == tok.vocab_size - 1
    assert tok.encode("don't") == tok.encode("don") + tok.encode("'t")  # CLIP's contraction split


def test_one_step_matches_hand_computation():
    """Loss and SGD update of visual.proj and logit_scale for a 2-sample batch, computed with numpy."""
    torch.manual_seed(3)
    model = CLIP(get_config("tiny", vocab_size=50, image_size=32)).double()
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    texts = torch.zeros(2, 77, dtype=torch.long)
    texts[0, :4] = torch.tensor([48, 3, 7, 49])
    texts[1, :3] = torch.tensor([48, 9, 49])
    seen = {}
    model.visual.ln_post.register_forward_hook(
        lambda m, i, o: seen.__setitem__("h_img", o.detach().numpy().copy())
    )
    model.ln_final.register_forward_hook(lambda m, i, o: seen.__setitem__("h_txt", o.detach().numpy().copy()))
    P_v = model.visual.proj.detach().numpy().copy()
    P_t = model.text_projection.detach().numpy().copy()
    s = model.logit_scale.item()

    lr = 0.1
    loss = train_step(model, model, [(images, texts)], torch.optim.SGD(model.parameters(), lr=lr))

    h_img = seen["h_img"]  # (2, width)
    h_txt = seen["h_txt"][[0, 1], [3, 2]]  # pooled at the end tokens
    z, u = h_img @ P_v, h_txt @ P_t
    f = z / np.linalg.norm(z, axis=1, keepdims=True)
    t = u / np.linalg.norm(u, axis=1, keepdims=True)
    logits = math.exp(s) * f @ t.T
    row = np.exp(logits - logits.max(1, keepdims=True))
    row /= row.sum(1, keepdims=True)
    col = np.exp(logits - logits.max(0, keepdims=True))
    col /= col.sum(0, keepdims=True)
    expected = 0.5 * (-np.log(np.diag(row)).mean() - np.log(np.diag(col)).mean())
    assert loss == pytest.approx(expected, rel=1e-9)

    G = ((row - np.eye(2)) + (col - np.eye(2))) / 4  # dL/dlogits
    grad_s = (G * logits).sum()
    dL_df = math.exp(s) * G @ t
    dL_dz = np.stack(
        [
            (np.eye(len(fi)) - np.outer(fi, fi)) @ g / np.linalg.norm(zi)
            for fi, g, zi in zip(f, dL_df, z, strict=False)
        ]
    )
    grad_Pv = h_img.T @ dL_dz
    np.testing.assert_allclose(model.visual.proj.detach().numpy(), P_v - lr * grad_Pv, rtol=1e-9, atol=1e-12)
    assert model.logit_scale.item() == pytest.approx(s - lr * grad_s, rel=1e-9)


def test_siglip_loss_by_hand():
    img = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2], [0.1, 1.0]]), dim=-1)
    txt = torch.nn.functional.normalize(torch.tensor([[0.9, 0.1], [0.3, 1.0]]), dim=-1)
    scale, bias = torch.tensor(10.0), torch.tensor(-5.0)
    got = contrastive_loss("siglip", img, txt, scale, bias)
    z = (scale * img @ txt.T + bias).numpy()
    sign = np.array([[1, -1], [-1, 1]])
    expected = np.log1p(np.exp(-sign * z)).sum() / 2
    assert got.item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="logit_bias"):
        contrastive_loss("siglip", img, txt, scale)


def test_gradient_checkpointing_and_bf16_autocast_keep_the_step():
    """Checkpointed activations give the same gradients.

    A bf16-autocast step (the GPU path) runs and stays close.
    """
    torch.manual_seed(4)
    images, texts = torch.randn(4, 3, 32, 32), torch.randint(0, 48, (4, 77))
    texts[:, 6] = 49
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(5)
        model = CLIP(get_config("tiny", vocab_size=50, image_size=32))
        model.set_grad_checkpointing(ckpt)
        img, txt, scale = model(images, texts)
        contrastive_loss("clip", img, txt, scale).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
    torch.manual_seed(5)
    model = CLIP(get_config("tiny", vocab_size=50, image_size=32))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    fp32 = train_step(model, model, [(images, texts)], opt)
    bf16 = train_step(
        model, model, [(images, texts)], opt, autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    )
    assert math.isfinite(bf16) and bf16 == pytest.approx(fp32, rel=0.05)

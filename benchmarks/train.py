"""Benchmark the trainer: data loader samples/s per core, tiny CLIP training samples/s, open_clip beside it.

    python benchmarks/train.py                 # CPU: loader (256 px shards -> 224 crops) and tiny training
    python benchmarks/train.py --gpu           # also ViT-B-32 bf16 train-step samples/s and MFU on a GPU

Loader anchor: the transform open_clip's training pipeline applies (torchvision RandomResizedCrop on the fully
decoded image, then ToTensor + Normalize in the worker), written with PIL because torchvision cannot be
imported here. open_clip's own trainer is installed into benchmarks/_work/open_clip with --no-deps and
tried; why it cannot run is recorded in the results. Data and results go under benchmarks/_work/.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import simplejpeg
import torch
from PIL import Image

from curate.synthweb.photos import CLASSES, encode, make_photo
from curate.train import data as D
from curate.train.tokenizer import BytePairTokenizer
from curate.train.train import TrainConfig, train

WORK = Path(__file__).resolve().parent / "_work" / "train"


def make_shards(out: Path, n: int, size: tuple[int, int], shards: int = 4) -> list[str]:
    """Photo-like JPEG shards (quality 90), as `curate export` writes them (uid, caption, image)."""
    paths = [out / f"{s:05d}.parquet" for s in range(shards)]
    if all(p.exists() for p in paths):
        return [str(p) for p in paths]
    out.mkdir(parents=True, exist_ok=True)
    for s, path in enumerate(paths):
        ids = range(s, n, shards)
        labels = [CLASSES[i % len(CLASSES)] for i in ids]
        images = [
            encode(make_photo(lab, seed=i, size=size), "jpeg", quality=90)
            for i, lab in zip(ids, labels, strict=False)
        ]
        pq.write_table(
            pa.table(
                {
                    "uid": [f"u{i:07d}" for i in ids],
                    "caption": [f"a photo of a {lab}" for lab in labels],
                    "image": images,
                }
            ),
            path,
            row_group_size=256,
        )
    return [str(p) for p in paths]


def _time(fn) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    n = fn()
    return n / (time.perf_counter() - w0), n / (time.process_time() - c0)


def bench_loader(shards: list[str], tok, batches: int) -> dict:
    """curate's stream in the main process (one core): samples/s by wall clock and per CPU-second."""
    stream = D.ShardStream(shards, tok, 224, 64, workers=0, shuffle_buffer=256)
    it = iter(D.make_loader(stream))
    next(it)  # fill the shuffle buffer outside the timing

    def run():
        for _ in range(batches):
            next(it)
        return batches * 64

    wall, cpu = _time(run)
    return {"samples_per_s_wall": wall, "samples_per_s_per_core": cpu}


def bench_anchor(shards: list[str], tok, samples: int) -> dict:
    """open_clip's transform path: full decode, crop + resize, float tensor normalised in the worker."""
    mean, std = torch.tensor(D.MEAN).view(3, 1, 1), torch.tensor(D.STD).view(3, 1, 1)
    rng = random.Random(0)

    def run():
        n = 0
        while n < samples:
            for path in shards:
                for _, caption, data in D.iter_records(path):
                    img = Image.open(io.BytesIO(data)).convert("RGB")
                    box = D.random_box(*img.size, rng)
                    img = img.resize((224, 224), Image.BILINEAR, box=box)
                    x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div(255)
                    _ = ((x - mean) / std, tok([caption]))
                    n += 1
                    if n >= samples:
                        return n
        return n

    wall, cpu = _time(run)
    return {"samples_per_s_wall": wall, "samples_per_s_per_core": cpu}


def bench_floor(shards: list[str], n: int) -> dict:
    """CPU ms per image of the C calls behind a crop: JPEG decode (PIL, simplejpeg), crop-resize to 224 (PIL
    bilinear, torch uint8 antialiased bilinear), and curate's whole `train_image`."""
    blobs = [data for _, _, data in D.iter_records(shards[0])][:n]
    boxes = [D.random_box(256, 256, random.Random(i)) for i in range(len(blobs))]

    def ms(fn) -> float:
        c0 = time.process_time()
        fn()
        return 1e3 * (time.process_time() - c0) / len(blobs)

    pil = [Image.open(io.BytesIO(data)).convert("RGB") for data in blobs]
    turbo = [simplejpeg.decode_jpeg(data, "RGB") for data in blobs]
    out = {
        "pil_decode_ms": ms(lambda: [Image.open(io.BytesIO(d)).convert("RGB") for d in blobs]),
        "simplejpeg_decode_ms": ms(lambda: [simplejpeg.decode_jpeg(d, "RGB") for d in blobs]),
        "pil_crop_resize_ms": ms(
            lambda: [im.resize((224, 224), Image.BILINEAR, box=b) for im, b in zip(pil, boxes, strict=False)]
        ),
        "torch_crop_resize_ms": ms(
            lambda: [D.resize(a[b[1] : b[3], b[0] : b[2]], 224) for a, b in zip(turbo, boxes, strict=False)]
        ),
        "curate_train_image_ms": ms(
            lambda: [D.train_image(d, 224, random.Random(i)) for i, d in enumerate(blobs)]
        ),
    }
    out["pil_floor_samples_per_s"] = 1e3 / (out["pil_decode_ms"] + out["pil_crop_resize_ms"])
    out["curate_image_bound_samples_per_s"] = 1e3 / out["curate_train_image_ms"]
    return out


def bench_quality(shards: list[str], n: int) -> dict:
    """PSNR (dB) of curate's crops against PIL's full decode + bilinear resize (the anchor's transform): on
    the box curate cuts (whole pixels of its DCT-scaled decode), and on the box before that rounding. At 256
    px both decode in full and the boxes are equal, so this isolates the resampler."""
    same, unrounded = [], []

    def psnr(a: np.ndarray, b: np.ndarray) -> float:
        mse = np.mean((a.astype(np.float64) - b) ** 2)
        return 99.0 if mse == 0 else float(10 * np.log10(255**2 / mse))

    for i, (_, _, data) in zip(range(n), (r for path in shards for r in D.iter_records(path)), strict=False):
        got = D.train_image(data, 224, random.Random(i)).numpy()
        img = Image.open(io.BytesIO(data)).convert("RGB")
        box = D.random_box(*img.size, random.Random(i))
        f = D.dct_factor(box, 224)
        sx, sy = math.ceil(img.size[0] / f) / img.size[0], math.ceil(img.size[1] / f) / img.size[1]
        cut = tuple(round(v * s) / s for v, s in zip(box, (sx, sy, sx, sy), strict=False))
        same.append(psnr(got, np.asarray(img.resize((224, 224), Image.BILINEAR, box=cut))))
        unrounded.append(psnr(got, np.asarray(img.resize((224, 224), Image.BILINEAR, box=box))))
    return {
        "images": len(same),
        "same_box_psnr_mean_db": float(np.mean(same)),
        "same_box_psnr_min_db": min(same),
        "unrounded_box_psnr_mean_db": float(np.mean(unrounded)),
        "unrounded_box_psnr_min_db": min(unrounded),
    }


def bench_train(shards: list[str], steps: int) -> dict:
    out = WORK / "run-tiny"
    shutil.rmtree(out, ignore_errors=True)
    c0 = time.process_time()
    train(
        TrainConfig(
            data=shards,
            out_dir=str(out),
            model="tiny",
            batch_size=64,
            steps=steps,
            workers=1,
            log_every=5,
            save_every=10_000,
            warmup_steps=5,
            vocab_size=1000,
            progress=False,
        )
    )
    cpu = time.process_time() - c0  # the training process only (the loader runs in its worker process)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][
        1:
    ]  # the first window holds start-up
    return {
        "model": "tiny",
        "image_size": 64,
        "batch_size": 64,
        "steps": steps,
        "threads": torch.get_num_threads(),
        "samples_per_s_wall": sum(r["samples_per_s"] for r in rows) / len(rows),
        "samples_per_cpu_s_incl_startup": steps * 64 / cpu,
    }


def bench_model_step(threads: int, steps: int = 4) -> dict:
    """tiny's train step alone on a fixed batch (64 x 64 px): separates the model's cost from the loader's."""
    from curate.train.model import CLIP, get_config
    from curate.train.train import train_step

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = CLIP(get_config("tiny", vocab_size=1000))
    opt = torch.optim.AdamW(model.parameters(), foreach=True)
    images, texts = torch.randn(64, 3, 64, 64), torch.randint(0, 998, (64, 77))
    texts[:, 12] = 999

    def run():
        for _ in range(steps):
            train_step(model, model, [(images, texts)], opt)
        return steps * 64

    train_step(model, model, [(images, texts)], opt)
    wall, cpu = _time(run)
    return {"threads": threads, "samples_per_s_wall": wall, "samples_per_cpu_s": cpu}


def try_open_clip() -> dict:
    """Install open_clip_torch (and torchvision, --no-deps) into a throwaway folder and try to import them."""
    base = WORK.parent / "open_clip"
    base.mkdir(parents=True, exist_ok=True)
    result = {}
    for name, spec in (("oc", "open_clip_torch"), ("tv", f"torchvision=={_matching_torchvision()}")):
        if not (base / name).exists():
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(base / name), spec],
                check=False,
                capture_output=True,
                text=True,
            )
            result[f"install {spec}"] = "ok" if proc.returncode == 0 else proc.stderr.strip().splitlines()[-1]
    env = dict(os.environ, PYTHONPATH=f"{base / 'oc'}:{base / 'tv'}")
    proc = subprocess.run(
        [sys.executable, "-c", "import open_clip, open_clip_train.main"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    result["import"] = "ok" if proc.returncode == 0 else proc.stderr.strip().splitlines()[-1]
    so = next(base.glob("tv/torchvision/_C*.so"), None)
    if so:
        ldd = subprocess.run(["ldd", str(so)], check=False, capture_output=True, text=True).stdout
        result["torchvision _C.so missing libraries"] = [
            ln.split()[0] for ln in ldd.splitlines() if "not found" in ln
        ]
    return result


def _matching_torchvision() -> str:
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return f"0.{int(minor) + 15}.0" if major == "2" else "0"


def bench_gpu(steps: int, peak_tflops: float) -> dict:
    """ViT-B-32 train steps on random inputs with bf16 autocast; MFU from counted FLOPs over the GPU's
    peak."""
    from torch.utils.flop_counter import FlopCounterMode

    from curate.train.loss import contrastive_loss
    from curate.train.model import CLIP, get_config

    dev = torch.device("cuda")
    model = CLIP(get_config("ViT-B-32")).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    bs = 256
    images = torch.randn(bs, 3, 224, 224, device=dev)
    texts = torch.randint(0, 49407, (bs, 77), device=dev)
    texts[:, 20] = 49407

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            img, txt, scale = model(images, texts)
        contrastive_loss("clip", img, txt, scale).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    return {
        "model": "ViT-B-32",
        "batch_size": bs,
        "samples_per_s": bs / dt,
        "tflops_per_step": flops / 1e12,
        "mfu": flops / dt / (peak_tflops * 1e12),
        "device": torch.cuda.get_device_name(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1024, help="images in the 256 px loader shards")
    ap.add_argument("--batches", type=int, default=30, help="loader batches of 64 to time")
    ap.add_argument("--train-steps", type=int, default=30)
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument(
        "--peak-tflops", type=float, default=989.0, help="bf16 dense peak for MFU (H100 SXM: 989)"
    )
    args = ap.parse_args()
    shards = make_shards(WORK / "shards256", args.images, (256, 256))
    large = make_shards(WORK / "shards1024x768", 128, (1024, 768))
    tok = BytePairTokenizer.train(D.iter_captions(shards), 1000)
    res = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores {platform.machine()}",
        "torch": torch.__version__,
        "load_before": os.getloadavg(),
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in DataLoader workers; idle OpenMP threads would otherwise spin on CPU time
    res["loader_256px"] = {
        "curate": bench_loader(shards, tok, args.batches),
        "open_clip_transform_anchor": bench_anchor(shards, tok, args.batches * 64),
    }
    res["floor_256px"] = bench_floor(shards, 256)
    res["quality_psnr"] = {"256px": bench_quality(shards, 128), "1024x768": bench_quality(large, 64)}
    res["loader_1024x768"] = {
        "curate": bench_loader(large, tok, 2),
        "open_clip_transform_anchor": bench_anchor(large, tok, 128),
    }
    torch.set_num_threads(threads)
    res["train_cpu"] = bench_train(shards, args.train_steps)
    res["model_step"] = [bench_model_step(1), bench_model_step(2)]
    torch.set_num_threads(threads)
    res["open_clip"] = try_open_clip()
    if args.gpu:
        res["gpu"] = bench_gpu(20, args.peak_tflops)
    res["load_after"] = os.getloadavg()
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "results.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

"""ViT-B-32 CLIP scoring on CPU, end to end from shards: curate's `clip` signal beside open_clip's own model.

Same weights, batch size and torch threads for both; rates per wall second and per CPU second of this
process (time.process_time over all its threads: steadier than wall time on a shared machine).

- Anchor: open_clip 3.3.0's `CLIP` (its model.py/transformer.py loaded from the PyPI wheel, see
  tests/open_clip_reference.py) scored as its README does: every image through `preprocess`, the captions
  through its tokenizer (77 tokens), `encode_image` / `encode_text` per batch, cosine. open_clip's
  `preprocess` is torchvision's Resize(224, bicubic), CenterCrop(224), RGB, ToTensor, Normalize; torchvision
  cannot load beside this torch, so those steps are written out below with PIL and torch exactly as
  torchvision runs them on PIL images (the stand-in), in the main thread, as a DataLoader without workers.
- curate: `curate.annotate.annotate(DS, signals="clip", workers=1)`: shard reading, decoding in its thread
  pool overlapped with the model, the text cut after end-of-text, writing signals/clip/NNNNN.parquet.
- Weights: random, from open_clip's own initialisation, saved as a state_dict (speed does not depend on the
  values); the scores of both must agree in fp32. Shards: curate.synthweb photos, 256 px JPEG q90 (the
  download default size), captions from its caption generator.

    python benchmarks/clip_score.py --images 128 --batch 32 --precisions fp32 bf16 int8
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the reference loader shared with the equivalence tests
from open_clip_reference import load  # noqa: E402

from curate.annotate import annotate  # noqa: E402
from curate.schema import SHARD_SCHEMA, make_uid  # noqa: E402
from curate.synthweb.captions import caption_for, choose_language  # noqa: E402
from curate.synthweb.photos import BACKGROUNDS, CLASSES, make_photo  # noqa: E402

WORK = ROOT / "benchmarks" / "_work" / "clip_score"
MEAN = torch.tensor((0.48145466, 0.4578275, 0.40821073)).view(3, 1, 1)  # open_clip.constants
STD = torch.tensor((0.26862954, 0.26130258, 0.27577711)).view(3, 1, 1)


def make_shards(root: Path, images: int, per_shard: int) -> None:
    """A curate dataset of `images` downloaded rows (synthweb photos, JPEG q90, 256 px short side)."""
    rng = np.random.default_rng(0)
    (root / "shards").mkdir(parents=True)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for s in range(0, images, per_shard):
        rows = []
        for i in range(s, min(images, s + per_shard)):
            label = CLASSES[i % len(CLASSES)]
            size = [(256, 256), (341, 256), (256, 384)][i % 3]
            background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
            buf = io.BytesIO()
            make_photo(label, seed=i, size=size, background=background).save(buf, "JPEG", quality=90)
            caption = caption_for(label, background, choose_language(rng), rng)
            url = f"https://img.example.org/{i}.jpg"
            rows.append(
                {
                    "uid": make_uid(url, caption),
                    "url": url,
                    "caption": caption,
                    "status": "success",
                    "image": buf.getvalue(),
                    "width": size[0],
                    "height": size[1],
                    "fetched_at": now,
                }
            )
        pq.write_table(
            pa.Table.from_pylist(rows, schema=SHARD_SCHEMA), root / "shards" / f"{s // per_shard:05d}.parquet"
        )


def open_clip_preprocess(image: Image.Image) -> torch.Tensor:
    """torchvision's Resize(224, BICUBIC), CenterCrop(224), RGB, ToTensor, Normalize on a PIL image."""
    w, h = image.size
    short, long = min(w, h), max(w, h)
    if short != 224:
        new_long = int(224 * long / short)
        image = image.resize((224, new_long) if w <= h else (new_long, 224), Image.Resampling.BICUBIC)
    w, h = image.size
    top, left = int(round((h - 224) / 2.0)), int(round((w - 224) / 2.0))
    image = image.crop((left, top, left + 224, top + 224)).convert("RGB")
    x = torch.from_numpy(np.array(image, np.uint8, copy=True)).view(224, 224, 3).permute(2, 0, 1).contiguous()
    return x.to(torch.float32).div(255).sub_(MEAN).div_(STD)


def anchor(ref, model, ds: Path, batch: int) -> tuple[dict[str, float], float, float, float]:
    """open_clip scoring from the shards: ({uid: score}, wall s, cpu s, preprocessing wall s)."""
    tokenizer = ref.tokenizer.SimpleTokenizer(str(ref.vocab))
    scores: dict[str, float] = {}
    prep = 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    for shard in sorted((ds / "shards").glob("*.parquet")):
        table = pq.read_table(shard, columns=["uid", "image", "caption"]).to_pydict()
        for i in range(0, len(table["uid"]), batch):
            start = time.perf_counter()
            images = torch.stack(
                [open_clip_preprocess(Image.open(io.BytesIO(b))) for b in table["image"][i : i + batch]]
            )
            tokens = tokenizer(table["caption"][i : i + batch])
            prep += time.perf_counter() - start
            with torch.no_grad():
                img = model.encode_image(images, normalize=True)
                txt = model.encode_text(tokens, normalize=True)
            scores.update(zip(table["uid"][i : i + batch], (img * txt).sum(-1).tolist(), strict=True))
    return scores, time.perf_counter() - wall, time.process_time() - cpu, prep


def curate_run(
    ds: Path, weights: Path, vocab: Path, batch: int, precision: str
) -> tuple[dict, float, float, dict]:
    """curate's scores ({uid: score}), wall and CPU seconds of the whole command, and its job stats."""
    wall, cpu = time.perf_counter(), time.process_time()
    summary = annotate(
        str(ds),
        signals="clip",
        clip_model="ViT-B-32",
        clip_checkpoint=str(weights),
        clip_tokenizer=str(vocab),
        device="cpu",
        clip_precision=precision,
        clip_batch_size=batch,
        workers=1,
        batch_size=512,
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if summary.failed:
        raise SystemExit(f"curate failed: {summary.failed}")
    files = sorted((ds / "signals" / "clip").glob("*.parquet"))
    table = pa.concat_tables(pq.read_table(f, columns=["uid", "clip_score"]) for f in files).to_pydict()
    return dict(zip(table["uid"], table["clip_score"], strict=True)), wall, cpu, summary.stats["clip"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--per-shard", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads for both")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8"])
    args = ap.parse_args()
    if args.threads != os.cpu_count():
        raise SystemExit("curate's single worker uses every core (threads = cores / workers): keep --threads")
    torch.set_num_threads(args.threads)
    shutil.rmtree(WORK, ignore_errors=True)
    ds = WORK / "ds"
    make_shards(ds, args.images, args.per_shard)
    wheels = sorted((ROOT / ".cache" / "reference").glob("open_clip_torch-3.3.0-*.whl"))
    if not wheels:
        raise SystemExit(
            "open_clip's wheel is missing: pip download open_clip_torch==3.3.0 --no-deps -d .cache/reference"
        )
    ref = load(wheels[-1], WORK / "open_clip")
    torch.manual_seed(0)
    model = ref.model.CLIP(**ref.config("ViT-B-32")).eval()
    weights = WORK / "vit-b-32.pt"
    torch.save(model.state_dict(), weights)
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.images} images, batch {args.batch}, {args.threads} threads; load before: "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )

    anchor_scores, wall, cpu, prep = anchor(ref, model, ds, args.batch)
    n = len(anchor_scores)
    print(
        f"open_clip (anchor): {n / wall:.2f} images/s wall, {n / cpu:.2f} per CPU-second; preprocessing "
        f"{prep:.1f} s of {wall:.1f} s = {prep / (wall - prep):.0%} of the forward time, not overlapped"
    )
    fp32 = None
    for precision in args.precisions:
        # The worker's model stays loaded between runs (one per process): load it outside the timing, as the
        # anchor's model is built before its clock starts. The timed command still checks and hashes the file.
        shutil.rmtree(WORK / "warm", ignore_errors=True)
        make_shards(WORK / "warm", 2, 2)
        curate_run(WORK / "warm", weights, ref.vocab, args.batch, precision)
        scores, c_wall, c_cpu, stats = curate_run(ds, weights, ref.vocab, args.batch, precision)
        diff = np.array([abs(scores[u] - anchor_scores[u]) for u in anchor_scores])
        forward = stats["seconds_forward"]
        line = (
            f"curate {precision}: {n / c_wall:.2f} images/s wall ({wall / c_wall:.2f}x), "
            f"{n / c_cpu:.2f} per CPU-second ({cpu / c_cpu:.2f}x); decoding {stats['seconds_decode']:.1f} s "
            f"in threads = {stats['seconds_decode'] / forward:.0%} of forward {forward:.1f} s, waited "
            f"{stats['seconds_waiting']:.2f} s ({stats['seconds_waiting'] / forward:.1%}); "
            f"|score - open_clip| max {diff.max():.1e} mean {diff.mean():.1e}"
        )
        if precision == "fp32":
            fp32 = scores
        elif fp32:
            line += f"; |score - curate fp32| max {max(abs(scores[u] - fp32[u]) for u in fp32):.1e}"
        print(line)
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

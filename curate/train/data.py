"""Stream (image, caption) batches from Parquet shards or WebDataset tars, never loading a shard whole.

Work is split by shard: each epoch the shard list is permuted with the seed, and global worker g of
G = world_size * workers takes shards g, g+G, ...; so no sample is seen twice in an epoch. Each worker
streams its shards through a seeded shuffle buffer, decodes (JPEG with libjpeg-turbo via simplejpeg, at
1/2, 1/4 or 1/8 scale when the crop allows), random-resize-crops in torch's uint8 antialiased bilinear
kernel (PIL's filter at half the CPU time) and batches into a preallocated uint8 tensor. Streams run epoch
after epoch without end, so every worker always has data, the DataLoader's round-robin over workers is
strict, and DDP ranks never fall out of step.

Sample-exact resume: a batch reports its worker's position (epoch, records consumed, bad counts). The
trainer keeps the latest position per worker and which worker is next (`LoaderState`); a resumed stream
replays its shard reading and shuffle without decoding up to that position, and worker ids are rotated so
that the DataLoader asks the right worker first. Augmentation randomness is seeded per record, so a
resumed run produces the very batches an uninterrupted run would have.
"""

from __future__ import annotations

import logging
import math
import random
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow.parquet as pq
import simplejpeg
import torch
import torch.nn.functional as F
from PIL import Image

from curate import storage
from curate.errors import CurateError
from curate.images import open_image

log = logging.getLogger(__name__)

MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's normalization constants
STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_EXTS = ("jpg", "jpeg", "webp", "png", "gif", "bmp", "tif", "tiff")
IMAGE_COLUMNS = ("image", "jpg", "png", "webp")
CAPTION_COLUMNS = ("caption", "txt", "text")
KEY_COLUMNS = ("uid", "key", "__key__")
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)
_JPEG_MAGIC = b"\xff\xd8\xff"

Record = tuple[str, str | None, bytes | None]  # (key, caption, image bytes)


def list_shards(data: str | list[str]) -> list[str]:
    """Shard files from a file, a folder of .tar (else .parquet) files, or a list of either.

    Local paths or fsspec URLs.
    """
    shards: list[str] = []
    for item in [data] if isinstance(data, str) else data:
        fs, inner = storage.url_to_fs(item)
        if fs.isdir(inner):
            tars = storage.list_files(item, ".tar")
            # Beside WebDataset tars, .parquet files are per-shard metadata (img2dataset's webdataset
            # output writes NNNNN.parquet next to NNNNN.tar), not samples.
            found = tars or storage.list_files(item, ".parquet")
            if not found:
                raise CurateError(f"{item} holds no .parquet or .tar shards; point at `curate export` output")
            shards += found
        elif fs.exists(inner):
            shards.append(item)
        else:
            raise CurateError(f"training data {item} does not exist")
    return shards


def count_samples(shards: list[str]) -> int | None:
    """Rows in Parquet shards from their footers.

    None when tars are present: counting those means reading them.
    """
    total = 0
    for path in shards:
        if not path.endswith(".parquet"):
            return None
        fs, inner = storage.url_to_fs(path)
        with fs.open(inner, "rb") as fh:
            total += pq.ParquetFile(fh).metadata.num_rows
    return total


def _pick(names: list[str], wanted: tuple[str, ...], what: str, path: str) -> str | None:
    found = next((c for c in wanted if c in names), None)
    if found is None and what != "key":
        raise CurateError(
            f"{path} has no {what} column (looked for {', '.join(wanted)}; it has {', '.join(names)})"
        )
    return found


def iter_parquet(path: str, batch_rows: int = 256) -> Iterator[Record]:
    """Rows of one Parquet shard, a few hundred at a time; download shards are reduced to their successes."""
    fs, inner = storage.url_to_fs(path)
    with fs.open(inner, "rb") as fh:
        pf = pq.ParquetFile(fh)
        names = pf.schema_arrow.names
        img_col = _pick(names, IMAGE_COLUMNS, "image", path)
        cap_col = _pick(names, CAPTION_COLUMNS, "caption", path)
        key_col = _pick(names, KEY_COLUMNS, "key", path)
        cols = [c for c in (key_col, cap_col, img_col, "status" if "status" in names else None) if c]
        row = 0
        for batch in pf.iter_batches(batch_size=batch_rows, columns=cols):
            data = batch.to_pydict()
            keys = data[key_col] if key_col else [f"{path}#{row + i}" for i in range(batch.num_rows)]
            status = data.get("status", [None] * batch.num_rows)
            for key, cap, img, st in zip(keys, data[cap_col], data[img_col], status, strict=False):
                if st is None or st == "success":
                    yield key, cap, img["bytes"] if isinstance(img, dict) else img  # HF's image struct
            row += batch.num_rows


def iter_tar(path: str) -> Iterator[Record]:
    """Samples of a WebDataset tar: consecutive members sharing a key (KEY.jpg, KEY.txt, KEY.json)."""
    fs, inner = storage.url_to_fs(path)
    with fs.open(inner, "rb") as fh, tarfile.open(fileobj=fh, mode="r|*") as tar:
        key, parts = None, {}
        for member in tar:
            if not member.isfile():
                continue
            head, _, base = member.name.rpartition("/")
            stem, _, ext = base.partition(".")
            this = f"{head}/{stem}" if head else stem
            if this != key and key is not None:
                yield _tar_record(key, parts)
                parts = {}
            key = this
            parts[ext.lower()] = tar.extractfile(member).read()
        if key is not None:
            yield _tar_record(key, parts)


def iter_captions(shards: list[str], limit: int = 200_000) -> Iterator[str]:
    """Up to `limit` captions (for training the tokenizer); Parquet shards are read without their images."""
    n = 0
    for path in shards:
        if path.endswith(".parquet"):
            fs, inner = storage.url_to_fs(path)
            with fs.open(inner, "rb") as fh:
                pf = pq.ParquetFile(fh)
                col = _pick(pf.schema_arrow.names, CAPTION_COLUMNS, "caption", path)
                captions = (
                    c
                    for b in pf.iter_batches(batch_size=4096, columns=[col])
                    for c in b.column(0).to_pylist()
                )
                captions = list(captions)
        else:
            captions = [cap for _, cap, _ in iter_tar(path)]
        for caption in captions:
            if caption:
                yield caption
                n += 1
                if n >= limit:
                    return


def _tar_record(key: str, parts: dict[str, bytes]) -> Record:
    image = next((parts[e] for e in IMAGE_EXTS if e in parts), None)
    caption = parts["txt"].decode("utf-8", errors="replace") if "txt" in parts else None
    return key, caption, image


def iter_records(path: str) -> Iterator[Record]:
    return iter_tar(path) if path.endswith(".tar") else iter_parquet(path)


def shuffled(records: Iterator[Record], buffer: int, rng: np.random.Generator) -> Iterator[Record]:
    """Approximate shuffle: keep `buffer` records, emit a random one as each new record arrives."""
    pool: list[Record] = []
    for rec in records:
        if len(pool) < buffer:
            pool.append(rec)
            continue
        j = int(rng.integers(len(pool)))
        yield pool[j]
        pool[j] = rec
    rng.shuffle(pool)
    yield from pool


def _decode(
    img: Image.Image, box: tuple[int, int, int, int], size: int
) -> tuple[Image.Image, tuple[float, ...]]:
    """Decode an opened image, asking JPEG for a reduced-size (DCT-scaled) decode when the crop `box` still
    covers `size` pixels at that scale; returns the RGB image and the box in its coordinates."""
    w, h = img.size
    want_w, want_h = w * size / (box[2] - box[0]), h * size / (box[3] - box[1])
    if img.format == "JPEG" and w >= 2 * want_w and h >= 2 * want_h:
        img.draft("RGB", (math.ceil(want_w), math.ceil(want_h)))
    img = img.convert("RGB")
    sx, sy = img.size[0] / w, img.size[1] / h
    return img, (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)


def record_rng(seed: int, epoch: int, worker: int, index: int) -> random.Random:
    """The augmentation randomness of one record, fixed by its place in the stream (so resume replays it);
    Python's Mersenne Twister seeds in a quarter of the time numpy's SeedSequence takes."""
    return random.Random(f"{seed}:{epoch}:{worker}:{index}")


def random_box(w: int, h: int, rng: random.Random, scale=(0.9, 1.0), ratio=(3 / 4, 4 / 3)) -> tuple[int, ...]:
    """A RandomResizedCrop box (x0, y0, x1, y1).

    Area fraction in `scale`, aspect ratio in `ratio` (log-uniform).
    """
    for _ in range(10):
        area = w * h * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            return x, y, x + cw, y + ch
    side = min(w, h)  # fall back to the central square
    return (w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG header, or None when simplejpeg cannot read one (other formats, junk)."""
    if data[:3] != _JPEG_MAGIC:
        return None
    try:
        h, w = simplejpeg.decode_jpeg_header(data)[:2]
    except ValueError:
        return None
    if w * h > 2 * Image.MAX_IMAGE_PIXELS:  # the limit PIL enforces, which this path bypasses
        raise Image.DecompressionBombError(f"{w}x{h} pixels exceed twice PIL's MAX_IMAGE_PIXELS")
    return w, h


def dct_factor(box: tuple[int, ...], size: int) -> int:
    """The largest of 8, 4, 2 by which libjpeg may shrink the decode while the crop `box` still spans `size`
    pixels a side; 1 when none can. The crop is then cut in whole pixels of the shrunk image."""
    shrink = min(box[2] - box[0], box[3] - box[1]) / size
    return next((f for f in (8, 4, 2) if f <= shrink), 1)


def _decode_crop(data: bytes, size: int, rng: random.Random) -> np.ndarray:
    """The random crop's pixels, (h, w, 3) uint8, from a decode no larger than the crop needs.

    JPEGs go through simplejpeg (libjpeg-turbo, a third less CPU time than PIL's decoder), DCT-scaled by 1/2,
    1/4 or 1/8 while the crop still spans `size` pixels (the same decode as PIL's `draft`; libjpeg's other
    factors, such as 7/8, decode slower than a full decode); other formats, and JPEGs it refuses (CMYK,
    damaged), go through PIL, which decodes what it can or raises.
    """
    header = _jpeg_size(data)
    if header:
        w, h = header
        box = random_box(w, h, rng)
        f = dct_factor(box, size)
        try:
            pixels = simplejpeg.decode_jpeg(
                data, "RGB", min_width=math.ceil(w / f), min_height=math.ceil(h / f)
            )
            return _cut(pixels, box, pixels.shape[1] / w, pixels.shape[0] / h)
        except ValueError:
            pass
    img = open_image(data)  # reads the header only; web formats only
    img, box = _decode(img, box if header else random_box(*img.size, rng), size)
    return _cut(np.array(img), box, 1.0, 1.0)  # a writable copy: torch.from_numpy warns on read-only arrays


def _cut(pixels: np.ndarray, box: tuple[float, ...], sx: float, sy: float) -> np.ndarray:
    """`box` scaled by (sx, sy) and rounded to whole pixels (at least one), as a view of `pixels`."""
    h, w = pixels.shape[:2]
    x0, x1 = min(round(box[0] * sx), w - 1), min(round(box[2] * sx), w)
    y0, y1 = min(round(box[1] * sy), h - 1), min(round(box[3] * sy), h)
    return pixels[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]


def resize(pixels: np.ndarray, size: int) -> torch.Tensor:
    """(h, w, 3) uint8 -> (size, size, 3) uint8, bilinear with antialiasing like PIL's resize.

    In torch's vectorised uint8 kernel (half PIL's CPU time, copy to channels-last included; no float copy
    of the image).
    """
    x = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).contiguous(memory_format=torch.channels_last)
    y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return y[0].permute(1, 2, 0)  # channels-last storage: this view is already (size, size, 3) contiguous


def train_image(data: bytes, size: int, rng: random.Random) -> torch.Tensor:
    """Random resized crop to (size, size, 3) uint8, decoding no more pixels than the crop needs."""
    return resize(_decode_crop(data, size, rng), size)


def eval_image(data: bytes, size: int) -> np.ndarray:
    """Resize the shorter side to `size` and center-crop (CLIP's eval transform), bicubic."""
    img = open_image(data)
    w, h = img.size
    side = min(w, h)
    x0, y0 = (w - side) // 2, (h - side) // 2
    img, box = _decode(img, (x0, y0, x0 + side, y0 + side), size)
    return np.asarray(img.resize((size, size), Image.BICUBIC, box=box))


def normalize(images: torch.Tensor, device: torch.device | str = "cpu", dtype=torch.float32) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) normalized floats on `device` (done there: 4x less to copy)."""
    x = images.to(device, non_blocking=True).permute(0, 3, 1, 2).to(dtype).div_(255)
    mean = torch.tensor(MEAN, device=x.device, dtype=dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device, dtype=dtype).view(1, 3, 1, 1)
    return (x - mean) / std


@dataclass
class LoaderState:
    """Where one rank's stream stands.

    Per logical worker [epoch, records consumed, bad counts], and who is next.
    """

    workers: int
    next_worker: int = 0
    positions: list = field(default_factory=list)

    def __post_init__(self):
        if not self.positions:
            self.positions = [[0, 0, {}] for _ in range(self.workers)]

    def update(self, batch: dict) -> None:
        self.positions[batch["worker"]] = [batch["epoch"], batch["position"], dict(batch["bad"])]
        self.next_worker = (batch["worker"] + 1) % self.workers

    def bad_total(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, _, bad in self.positions:
            for k, v in bad.items():
                out[k] = out.get(k, 0) + v
        return out


class ShardStream(torch.utils.data.IterableDataset):
    """Endless, seeded stream of training batches for one DDP rank (batching happens in the workers)."""

    def __init__(
        self,
        shards: list[str],
        tokenizer,
        image_size: int,
        batch_size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        workers: int = 0,
        seed: int = 0,
        shuffle_buffer: int = 1000,
        state: LoaderState | None = None,
    ):
        self.shards, self.tokenizer, self.image_size, self.batch_size = (
            shards,
            tokenizer,
            image_size,
            batch_size,
        )
        self.rank, self.world_size, self.num_workers = rank, world_size, workers
        self.workers = max(1, workers)  # logical workers: 0 means one stream in the main process
        self.seed, self.shuffle_buffer = seed, shuffle_buffer
        self.state = state or LoaderState(self.workers)
        if self.state.workers != self.workers:
            raise CurateError(
                f"the checkpoint's data position is for {self.state.workers} loader workers per rank; "
                f"resume with --workers {self.state.workers}"
            )

    def worker_records(self, global_id: int, epoch: int) -> Iterator[Record]:
        """The records global worker `global_id` reads in `epoch`, shuffled (deterministic; no decoding)."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.shards))
        total = self.world_size * self.workers
        mine = [self.shards[i] for i in order[global_id::total]]
        records = (rec for path in mine for rec in iter_records(path))
        return shuffled(records, self.shuffle_buffer, np.random.default_rng([self.seed, epoch, global_id, 1]))

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        physical = info.id if info else 0
        logical = (
            physical + self.state.next_worker
        ) % self.workers  # the worker the DataLoader asks first resumes
        global_id = self.rank * self.workers + logical
        epoch, skip, bad = self.state.positions[logical]
        bad = dict(bad)
        keys, captions, epochs = [], [], []
        images = torch.empty(self.batch_size, self.image_size, self.image_size, 3, dtype=torch.uint8)
        while True:
            for i, (key, caption, data) in enumerate(self.worker_records(global_id, epoch)):
                if i < skip:
                    continue
                reason = None if data else "missing_image"
                if caption is None:
                    reason = reason or "missing_caption"
                if reason is None:
                    try:
                        images[len(keys)] = train_image(
                            data, self.image_size, record_rng(self.seed, epoch, global_id, i)
                        )
                    except DECODE_ERRORS as exc:
                        reason = "decode_error"
                        log.debug("skipping undecodable image %s: %s", key, exc)
                if reason:
                    bad[reason] = bad.get(reason, 0) + 1
                    continue
                keys.append(key)
                captions.append(caption)
                epochs.append(epoch)
                if len(keys) == self.batch_size:
                    yield {
                        "images": images,
                        "texts": self.tokenizer(captions),
                        "keys": keys,
                        "epochs": torch.tensor(epochs),
                        "worker": logical,
                        "epoch": epoch,
                        "position": i + 1,
                        "bad": dict(bad),
                    }
                    keys, captions, epochs = [], [], []
                    images = torch.empty_like(images)  # the yielded batch is the consumer's now
            epoch, skip = epoch + 1, 0


def make_loader(stream: ShardStream, pin_memory: bool = False) -> torch.utils.data.DataLoader:
    if len(stream.shards) < stream.world_size * stream.workers:
        raise CurateError(
            f"{len(stream.shards)} shards cannot feed {stream.world_size} ranks x {stream.workers} "
            "workers (each worker streams whole shards); lower --workers or export more, smaller shards"
        )
    return torch.utils.data.DataLoader(
        stream,
        batch_size=None,
        num_workers=stream.num_workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if stream.num_workers else None,
    )


def iter_eval(
    shards: list[str], image_size: int, batch_size: int = 256
) -> Iterator[tuple[list, list, np.ndarray]]:
    """(keys, captions, (B, H, W, 3) uint8 images) in file order, center-cropped.

    Undecodable images are skipped.
    """
    keys, captions, images = [], [], []
    for path in shards:
        for key, caption, data in iter_records(path):
            try:
                images.append(eval_image(data, image_size))
            except (*DECODE_ERRORS, TypeError):
                log.warning("skipping undecodable image %s", key)
                continue
            keys.append(key)
            captions.append(caption)
            if len(keys) == batch_size:
                yield keys, captions, np.stack(images)
                keys, captions, images = [], [], []
    if keys:
        yield keys, captions, np.stack(images)

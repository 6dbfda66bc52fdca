"""Search a dataset's images with a trained CLIP: embed them once (cached as Parquet), rank by text or image.

The cache lives at <DATASET or shard folder>/.search/<tag>.parquet (uid, caption, shard, embedding), where
the tag names the checkpoint file and its version; its metadata lists the shards it covers with their size
and modification time, so a dataset that gained, lost or rewrote a shard (a takedown) is embedded again.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image
from tqdm import tqdm

from curate import publish, storage
from curate.dataset import Dataset
from curate.errors import CurateError
from curate.takedown import purge
from curate.train.data import DECODE_ERRORS, eval_image, iter_eval, iter_records, list_shards
from curate.train.evaluate import embed_images, embed_texts, load_checkpoint

log = logging.getLogger(__name__)
META_KEY = b"curate_search"
# Hidden: folder readers of an export (pandas, pyarrow, HF datasets) skip the cache beside its shards.
CACHE_FOLDER = ".search"


def source_shards(dataset: str) -> tuple[list[str], str]:
    """(shard files, folder for the cache): a curate dataset's download shards, or exported shards."""
    fs, inner = storage.url_to_fs(dataset)
    if fs.isdir(inner) and fs.exists(storage.join(inner, "shards")):
        shards = Dataset(dataset).shard_paths()
        if not shards:
            raise CurateError(f"dataset {dataset} has no downloaded shards yet; run `curate download` first")
        return shards, dataset
    shards = list_shards(dataset)
    return shards, dataset if fs.isdir(inner) else str(Path(dataset).parent)


def _tag(ckpt: dict) -> str:
    st = Path(ckpt["path"]).stat()
    digest = hashlib.sha1(
        f"{Path(ckpt['path']).resolve()}:{ckpt['step']}:{st.st_mtime_ns}:{st.st_size}".encode()
    )
    return f"{ckpt['model_name']}-step{ckpt['step']}-{digest.hexdigest()[:10]}"


def _versions(shards: list[str]) -> list[list]:
    """[name, size, modified] per shard: a rewritten shard (a takedown purged it) invalidates the cache."""
    out = []
    for shard in shards:
        fs, inner = storage.url_to_fs(shard)
        info = fs.info(inner)
        modified = info.get("mtime") or info.get("LastModified") or info.get("ETag") or info.get("etag") or ""
        out.append([shard.rpartition("/")[2], info.get("size"), str(modified)])
    return out


def embed_dataset(loaded, dataset: str, device: str = "cpu", batch_size: int = 256) -> tuple[pa.Table, str]:
    """(table of uid, caption, shard, embedding; its cache path).

    Embeddings are computed only when not cached.
    """
    model, _, ckpt = loaded
    shards, folder = source_shards(dataset)
    path = storage.join(folder, CACHE_FOLDER, f"{_tag(ckpt)}.parquet")
    names = [s.rpartition("/")[2] for s in shards]
    versions = _versions(shards)
    if storage.exists(path):
        table = storage.read_parquet(path)
        meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
        if meta.get("shards") == versions:
            return table, path
        log.info("shards changed since %s was written; embedding again", path)
    uids, captions, shard_col, emb = [], [], [], []
    for shard, name in zip(tqdm(shards, desc="embed", unit="shard"), names, strict=False):
        for keys, caps, images in iter_eval([shard], model.config.image_size, batch_size):
            emb.append(embed_images(model, images, device).numpy())
            uids += keys
            captions += caps
            shard_col += [name] * len(keys)
    if not uids:
        raise CurateError(f"{dataset} holds no decodable images to search")
    vectors = np.concatenate(emb).astype(np.float32)
    dim = vectors.shape[1]
    table = pa.table(
        {
            "uid": uids,
            "caption": captions,
            "shard": shard_col,
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim),
        }
    )
    meta = {"checkpoint": ckpt["path"], "step": ckpt["step"], "shards": versions}
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    storage.write_parquet_atomic(table, path)
    return table, path


def search(
    checkpoint,
    dataset: str,
    query: str | None = None,
    image: str | None = None,
    k: int = 10,
    device: str = "cpu",
) -> dict:
    """Top-k images of `dataset` for a text query or an image file.

    Returns {"hits": [...], "cache": path, "n": int}.
    """
    if (query is None) == (image is None):
        raise CurateError("give exactly one query: a text, or --image PATH")
    loaded = load_checkpoint(checkpoint, device) if isinstance(checkpoint, (str, Path)) else checkpoint
    model, tok, _ = loaded
    table, cache = embed_dataset(loaded, dataset, device)
    vectors = table.column("embedding").combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1)
    if query is not None:
        q = embed_texts(model, tok, [query], device)[0].numpy()
    else:
        if not Path(image).is_file():
            raise CurateError(f"query image {image} does not exist")
        try:
            pixels = eval_image(Path(image).read_bytes(), model.config.image_size)
        except DECODE_ERRORS as exc:
            raise CurateError(f"query image {image} cannot be decoded ({exc})") from None
        q = embed_images(model, np.array(pixels[None]), device)[0].numpy()  # a writable copy for torch
    scores = vectors @ q
    top = np.argsort(-scores, kind="stable")[:k]
    hits = [
        {
            "rank": r + 1,
            "score": float(scores[i]),
            "uid": table.column("uid")[int(i)].as_py(),
            "caption": table.column("caption")[int(i)].as_py(),
            "shard": table.column("shard")[int(i)].as_py(),
        }
        for r, i in enumerate(top)
    ]
    return {"hits": hits, "cache": cache, "n": table.num_rows}


def format_table(hits: list[dict], width: int = 70) -> str:
    lines = [f"{'rank':>4}  {'score':>6}  {'uid':<32}  caption"]
    for h in hits:
        cap = (h["caption"] or "").replace("\n", " ")
        lines.append(f"{h['rank']:>4}  {h['score']:>6.3f}  {h['uid']:<32}  {cap[:width]}")
    return "\n".join(lines)


def _thumbnails(dataset: str, hits: list[dict], side: int = 224) -> dict[str, str]:
    """uid -> JPEG data URI, reading only the shards that hold a hit."""
    shards, _ = source_shards(dataset)
    by_name = {s.rpartition("/")[2]: s for s in shards}
    wanted: dict[str, set] = {}
    for h in hits:
        wanted.setdefault(h["shard"], set()).add(h["uid"])
    out = {}
    for name, uids in wanted.items():
        for key, _, data in iter_records(by_name[name]):
            if key in uids:
                img = Image.open(io.BytesIO(data)).convert("RGB")
                img.thumbnail((side, side))
                buf = io.BytesIO()
                img.save(buf, "JPEG", quality=85)
                out[key] = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
                if len(uids - set(out)) == 0:
                    break
    return out


def write_html(result: dict, dataset: str, out: str, title: str) -> None:
    """A self-contained HTML grid of the hits (images inline, captions escaped); `out` is overwritten only
    when it is an earlier search page, and never inside the dataset's data (curate.publish)."""
    owner = _owning_dataset(dataset)
    publish.check_file_replaceable(out, "search page", owner)
    thumbs = _thumbnails(dataset, result["hits"])
    cells = []
    for h in result["hits"]:
        img = (
            f'<img src="{thumbs[h["uid"]]}" alt="">'
            if h["uid"] in thumbs
            else "<div>(image unavailable)</div>"
        )
        cells.append(
            f"<figure>{img}<figcaption><b>#{h['rank']}</b> {h['score']:.3f}<br>"
            f"{html.escape(h['caption'] or '')}<br><code>{html.escape(h['uid'])}</code></figcaption></figure>"
        )
    page = (
        f"<!doctype html><meta charset='utf-8'>{publish.file_signature('search page')}"
        "<title>curate search</title><style>body{font-family:sans-serif}"
        "main{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:12px}"
        "figure{margin:0}img{width:100%}figcaption{font-size:13px}</style>"
        f"<h1>{html.escape(title)}</h1><p>{result['n']} images searched</p><main>{''.join(cells)}</main>"
    )
    storage.write_bytes_atomic(page.encode(), out)
    if owner:
        purge.register(owner, "search page", out)  # a takedown deletes it if it shows the sample


def _owning_dataset(folder: str) -> str | None:
    """The dataset `folder` is (its download shards) or was exported from (its export marker), if any."""
    fs, inner = storage.url_to_fs(folder)
    if fs.exists(storage.join(inner, "shards")):
        return folder
    marker = storage.join(folder, publish.MARKER)
    return storage.read_json(marker).get("dataset") if storage.exists(marker) else None

"""Write `signals/clip/NNNNN.parquet` files in the clip signal's documented schema (docs/FORMAT.md).

The filter and semantic-dedup tests plant exact scores and embeddings this way, so that each decision
they assert follows from known inputs; the end-to-end DFN test writes the same files with the real
`curate annotate --signals clip`.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def clip_table(
    uids: list[str], scores: list[float], image: np.ndarray, text: np.ndarray | None = None
) -> pa.Table:
    """uid, clip_score (float32), unit-norm image/text embeddings as float16 fixed-size lists."""
    text = image if text is None else text
    dim = image.shape[1]

    def column(vectors: np.ndarray) -> pa.FixedSizeListArray:
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return pa.FixedSizeListArray.from_arrays(pa.array(unit.astype(np.float16).ravel()), dim)

    return pa.table(
        {
            "uid": pa.array(uids, pa.string()),
            "clip_score": pa.array(scores, pa.float32()),
            "image_embedding": column(image),
            "text_embedding": column(text),
        }
    )


def write_clip_signals(root: str, key: str, table: pa.Table) -> str:
    os.makedirs(f"{root}/signals/clip", exist_ok=True)
    path = f"{root}/signals/clip/{key}.parquet"
    pq.write_table(table.replace_schema_metadata({b"curate.clip_model": b"planted"}), path)
    return path


def unit(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length."""
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def near(v: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at exactly `cosine` from unit vector v."""
    other = rng.normal(size=v.shape)
    other = unit(other - (other @ v) * v)
    return cosine * v + np.sqrt(1 - cosine**2) * other

"""Hugging Face `datasets` features for a Parquet export, so that `load_dataset("parquet", ...)` sees images.

HF stores an image as `struct<bytes: binary, path: string>` and takes each column's feature from the
schema metadata key `huggingface` (`{"info": {"features": {...}}}`); without it an image loads as plain
bytes and must be cast by hand. Written here without importing `datasets`, which curate does not need.
"""

from __future__ import annotations

import json

import pyarrow as pa

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
METADATA_KEY = b"huggingface"
# Arrow names whose HF `Value` dtype is spelled differently.
_DTYPES = {"float": "float32", "double": "float64", "halffloat": "float16"}


def image_column(data: pa.Array | pa.ChunkedArray, paths: list[str | None]) -> pa.StructArray:
    """Encoded image bytes as HF's image struct; `path` names the file the bytes would be (for the format)."""
    data = data.combine_chunks() if isinstance(data, pa.ChunkedArray) else data
    return pa.StructArray.from_arrays(
        [data.cast(pa.binary()), pa.array(paths, pa.string())], fields=list(IMAGE_TYPE), mask=data.is_null()
    )


def _feature(arrow_type: pa.DataType) -> dict | None:
    """The HF feature of an Arrow type, or None when this module does not know it."""
    if arrow_type.equals(IMAGE_TYPE):
        return {"_type": "Image"}
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        inner = _feature(arrow_type.value_type)
        return None if inner is None else {"feature": inner, "_type": "Sequence"}
    if pa.types.is_nested(arrow_type) or pa.types.is_dictionary(arrow_type):
        return None
    name = str(arrow_type)
    return {"dtype": _DTYPES.get(name, name), "_type": "Value"}


def with_features(table: pa.Table) -> pa.Table:
    """`table` with the `huggingface` features metadata beside its other metadata (unchanged when a column
    has a type without a known feature: HF then infers every column, as it would anyway)."""
    features = {f.name: _feature(f.type) for f in table.schema}
    if any(v is None for v in features.values()):
        return table
    meta = dict(table.schema.metadata or {})
    meta[METADATA_KEY] = json.dumps({"info": {"features": features}}).encode()
    return table.replace_schema_metadata(meta)

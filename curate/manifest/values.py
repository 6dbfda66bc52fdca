"""Turning source values into manifest values: text for url/caption, stable types for kept columns.

Every conversion has a fast vectorised path and a per-value fallback that is only taken by the
block that needs it, so one bad value costs a null (and a recorded problem), never the whole file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

ArrowErrors = (pa.ArrowException, TypeError, ValueError, OverflowError)
# bad value handler: (index in the batch, message)
OnBad = Callable[[int, str], None]


def text_of(value: Any) -> str | None:
    """A JSON/Python value as manifest text: strings as is, other scalars and structures as JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return json.dumps(value, ensure_ascii=False)


def to_text(arr: pa.Array, on_bad: OnBad) -> pa.Array:
    """Any array as pa.string(); undecodable bytes become U+FFFD and are reported per value."""
    if pa.types.is_string(arr.type):
        return arr
    try:
        return pc.cast(arr, pa.string())
    except ArrowErrors:
        pass
    out = []
    for i, value in enumerate(arr.to_pylist()):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                on_bad(i, f"bytes that are not UTF-8 ({exc.reason} at byte {exc.start}); replaced by U+FFFD")
                value = value.decode("utf-8", "replace")
        out.append(text_of(value))
    return pa.array(out, pa.string())


def infer_type(arr: pa.Array) -> pa.DataType:
    """Type of a text column read from CSV/TSV: int64, else float64, else string (from its first block)."""
    if arr.null_count == len(arr):
        return pa.string()
    for candidate in (pa.int64(), pa.float64()):
        try:
            pc.cast(arr, candidate)
            return candidate
        except ArrowErrors:
            continue
    return pa.string()


def cast_lenient(arr: pa.Array, typ: pa.DataType, on_bad: OnBad) -> pa.Array:
    """Cast to `typ`; values that do not fit become null, each reported."""
    if arr.type == typ:
        return arr
    try:
        return pc.cast(arr, typ)
    except ArrowErrors:
        pass
    out = []
    for i in range(len(arr)):
        try:
            out.append(pc.cast(arr.slice(i, 1), typ)[0].as_py())
        except ArrowErrors as exc:
            out.append(None)
            on_bad(i, f"value {str(arr[i].as_py())[:60]!r} is not {typ} ({exc}); stored as null")
    return pa.array(out, typ)


def array_lenient(values: list[Any], typ: pa.DataType | None, on_bad: OnBad) -> pa.Array:
    """Arrow array from Python values (JSON rows) of `typ` (inferred when None); misfits become null."""
    try:
        return pa.array(values, typ) if typ is not None else pa.array(values)
    except ArrowErrors:
        if typ is None:
            return pa.array([text_of(v) for v in values], pa.string())
    out = []
    for i, value in enumerate(values):
        try:
            out.append(pa.scalar(value, typ).as_py())
        except ArrowErrors as exc:
            out.append(None)
            on_bad(i, f"value {str(value)[:60]!r} is not {typ} ({exc}); stored as null")
    return pa.array(out, typ)

"""Writing a query result as a text table, CSV, JSON lines or Parquet (for `curate sql`)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from curate.errors import CurateError

CELL_CHARS = 60


def write_result(
    table: pa.Table, fmt: str, output: str | None, *, max_table_rows: int, stdout: IO[str]
) -> None:
    """Write `table` in `fmt` to the file `output`, or to `stdout` when it is None."""
    repeated = sorted({n for n in table.column_names if table.column_names.count(n) > 1})
    if repeated and fmt in ("json", "parquet"):  # a JSON object or Parquet schema would keep one of them
        raise CurateError(
            f"the result has more than one column named {', '.join(map(repr, repeated))}: "
            f"--format {fmt} needs distinct names; rename them with AS"
        )
    if fmt == "parquet":
        pq.write_table(table, output)
        return
    if fmt == "csv":
        text = _csv(table)
    elif fmt == "json":
        text = "".join(
            json.dumps(row, default=_json_value, ensure_ascii=False) + "\n" for row in table.to_pylist()
        )
    else:
        text = format_table(table, max_rows=max_table_rows)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        stdout.write(text)


def _csv(table: pa.Table) -> str:
    """CSV with nested values as JSON and bytes as base64 (pyarrow's writer accepts neither)."""
    columns = []
    for _name, col in zip(table.column_names, table.columns, strict=False):
        if pa.types.is_nested(col.type) or pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
            col = pa.array(
                [
                    None
                    if v is None
                    else json.dumps(v, default=_json_value)
                    if not isinstance(v, bytes)
                    else base64.b64encode(v).decode()
                    for v in col.to_pylist()
                ],
                pa.string(),
            )
        columns.append(col)
    sink = pa.BufferOutputStream()
    pacsv.write_csv(pa.table(columns, names=table.column_names), sink)
    return sink.getvalue().to_pybytes().decode("utf-8")


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"<{len(value):,} bytes>"
    text = str(value).replace("\n", " ")
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def format_table(table: pa.Table, max_rows: int) -> str:
    """A plain aligned text table; long cells are cut and image bytes shown as their size."""
    names = table.column_names
    shown = table.slice(0, max_rows)
    # By column, not by row dicts: a result may repeat a name (`SELECT 1 AS a, 2 AS a`).
    rows = [[_cell(v) for v in row] for row in zip(*(col.to_pylist() for col in shown.columns), strict=True)]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(n.ljust(w) for n, w in zip(names, widths, strict=False)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) for r in rows]
    more = table.num_rows - len(rows)
    footer = f"({table.num_rows:,} row{'s' if table.num_rows != 1 else ''}"
    footer += f", {more:,} not shown: use --format csv or json)" if more > 0 else ")"
    return "\n".join(out + [footer]) + "\n"

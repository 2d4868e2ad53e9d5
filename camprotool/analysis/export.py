"""Write dataframes to csv, json lines or parquet, chosen by the file extension.

Every table keeps its columns and values; what differs between the formats is
how they hold the list and bytes columns (``docs/export.md`` has the table):

* **Parquet** keeps them typed: ``ids`` is ``list<string>``, ``statuses``
  ``list<struct<camera_id: string, online: bool>>``, ``data_conns``
  ``list<int64>`` and ``raw`` ``binary``, so ``pd.read_parquet`` (or Arrow,
  DuckDB, Spark) gives the lists back, not text to split again. The schema is
  the same whether a column holds values or only nulls, so files of one table
  always concatenate.
* **JSON lines** keeps them as arrays (``statuses`` as objects with
  ``camera_id`` and ``online``); ``raw`` becomes hex, JSON having no bytes.
* **CSV** has no lists, so they are flattened to their wire form: ``ids`` as
  ``A;B``, ``statuses`` as ``A;true|B;null``, ``data_conns`` as ``1;2``, and
  ``raw`` as hex. :func:`flatten` is that conversion.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, cast

import pandas as pd
import pyarrow as pa

FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}

#: Parquet types of the columns pandas would otherwise leave to inference (which
#: gives ``null`` for an all-null column, and cannot type bytes or tuples).
STATUS_TYPE = pa.struct([("camera_id", pa.string()), ("online", pa.bool_())])
ARROW_TYPES: dict[str, pa.DataType] = {
    "ids": pa.list_(pa.string()),
    "statuses": pa.list_(STATUS_TYPE),
    "data_conns": pa.list_(pa.int64()),
    "raw": pa.binary(),
}


def _is_null(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _status_text(value: object) -> str:
    return "null" if _is_null(value) else ("true" if value else "false")


def _pair(item: object) -> tuple[Any, Any]:
    """A (camera_id, online) pair: tuples from live logs, dicts from Arrow tables."""
    if isinstance(item, dict):
        return item["camera_id"], item["online"]
    cam, online = cast(tuple[Any, Any], item)
    return cam, online


def _online(value: object) -> bool | None:
    return None if _is_null(value) else bool(value)


# Per list/bytes column: its value in plain Python (lists, dicts, bytes) for Parquet and
# JSON, and its wire text for CSV. Each is called on non-null cells only.
_NATIVE: dict[str, Callable[[Any], Any]] = {
    "ids": lambda v: [str(i) for i in v],
    "statuses": lambda v: [{"camera_id": cam, "online": _online(s)}
                           for cam, s in map(_pair, v)],
    "data_conns": lambda v: [int(i) for i in v],
    "raw": bytes,
}
_TEXT: dict[str, Callable[[Any], str]] = {
    "ids": lambda v: ";".join(str(i) for i in v),
    "statuses": lambda v: "|".join(f"{cam};{_status_text(s)}" for cam, s in map(_pair, v)),
    "data_conns": lambda v: ";".join(str(i) for i in v),
    "raw": lambda v: bytes(v).hex(),
}


def _convert(df: pd.DataFrame, how: dict[str, Callable[[Any], Any]],
             dtype: str = "object") -> pd.DataFrame:
    out = df.copy()
    for name, fn in how.items():
        if name in out:
            out[name] = pd.Series([None if _is_null(v) else fn(v) for v in out[name]],
                                  index=out.index, dtype=dtype)
    return out


def flatten(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose list and bytes columns are plain text (what CSV gets)."""
    return _convert(df, _TEXT, "str")


def native(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose list and bytes columns hold plain Python lists, dicts
    and bytes (Arrow lists, NumPy arrays and tuples from live logs converted)."""
    return _convert(df, _NATIVE)


def to_arrow(df: pd.DataFrame) -> pa.Table:
    """``df`` as an Arrow table with the list/struct/binary columns typed (:data:`ARROW_TYPES`)."""
    # Columns already held by Arrow (``Capture.messages``' ids and statuses) are cast
    # there, column-wise; the others (Python lists, tuples, NumPy arrays) go through
    # Python values first.
    in_arrow = {name for name in ARROW_TYPES
                if name in df and isinstance(df[name].dtype, pd.ArrowDtype)}
    data = _convert(df, {k: fn for k, fn in _NATIVE.items() if k not in in_arrow})
    for name in in_arrow:
        data[name] = data[name].astype(pd.ArrowDtype(ARROW_TYPES[name]))
    schema = pa.Schema.from_pandas(data, preserve_index=False)
    for name, arrow_type in ARROW_TYPES.items():
        if name in data:
            i = schema.get_field_index(name)
            schema = schema.set(i, pa.field(name, arrow_type))
    table = pa.Table.from_pandas(data, schema=schema, preserve_index=False)
    if in_arrow and table.schema.metadata and b"pandas" in table.schema.metadata:
        # pandas records a nested Arrow dtype by a name it cannot parse back
        # ("list<item: string>[pyarrow]"): record these as the object columns they
        # read back as, or pd.read_parquet fails on the file.
        meta = json.loads(table.schema.metadata[b"pandas"])
        for column in meta.get("columns", []):
            if column.get("name") in in_arrow:
                column["numpy_type"] = "object"
        table = table.replace_schema_metadata(
            {**table.schema.metadata, b"pandas": json.dumps(meta).encode()})
    return table


def output_format(path: str | os.PathLike[str]) -> str:
    suffix = Path(path).suffix.lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        raise ValueError(
            f"{os.fspath(path)}: unknown output format {suffix or '(no extension)'!r}; "
            "use .csv, .json (json lines) or .parquet"
        ) from None


class FrameWriter:
    """Write a table chunk by chunk to csv, json lines or parquet (by extension).

    ``write_frame`` of the concatenated chunks gives the same file content;
    Parquet gets one row group per chunk under the first chunk's schema
    (category columns as ``dictionary<int32, string>``, so chunks with other
    categories still fit), so memory follows the chunk, not the table.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.format = output_format(path)
        self.rows = 0
        self._parquet: Any = None  # a pyarrow.parquet.ParquetWriter once the first rows come
        self._schema: pa.Schema | None = None
        self._file: TextIO | None = None

    def write(self, df: pd.DataFrame) -> None:
        first = self.rows == 0 and self._file is None and self._parquet is None
        if self.format == "parquet":
            self._write_parquet(df)
        else:
            if self._file is None:
                self._file = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
            if self.format == "csv":
                flatten(df).to_csv(self._file, index=False, header=first)
            elif len(df):
                _json_lines(df, self._file)
        self.rows += len(df)

    def _write_parquet(self, df: pd.DataFrame) -> None:
        import pyarrow.parquet as pq

        table = to_arrow(df)
        if self._schema is None:
            fields = [pa.field(f.name, pa.dictionary(pa.int32(), pa.string()))
                      if pa.types.is_dictionary(f.type) else f for f in table.schema]
            self._schema = pa.schema(fields, metadata=table.schema.metadata)
            self._parquet = pq.ParquetWriter(self.path, self._schema)
        self._parquet.write_table(table.cast(self._schema))

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        elif self.format == "parquet":  # no chunk came: an empty file of the table's schema
            raise ValueError("FrameWriter: no chunk written (write an empty frame first)")
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_lines(df: pd.DataFrame, out) -> None:
    data = native(df)
    if "raw" in data:  # JSON has no bytes
        data["raw"] = data["raw"].map(lambda v: v.hex(), na_action="ignore")
    data.to_json(out, orient="records", lines=True, date_format="iso", date_unit="ns",
                 force_ascii=False)


def write_frame(df: pd.DataFrame, path: str | os.PathLike[str]) -> str:
    """Write ``df`` in the format its extension names; returns the format."""
    fmt = output_format(path)
    if fmt == "csv":
        flatten(df).to_csv(path, index=False)
    elif fmt == "json":
        data = native(df)
        if "raw" in data:  # JSON has no bytes
            data["raw"] = data["raw"].map(lambda v: v.hex(), na_action="ignore")
        data.to_json(path, orient="records", lines=True, date_format="iso", date_unit="ns",
                     force_ascii=False)
    else:
        import pyarrow.parquet as pq

        pq.write_table(to_arrow(df), path)
    return fmt

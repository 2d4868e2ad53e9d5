"""One Arrow schema per table, and the way back to ``Capture``'s pandas dtypes.

Why fixed: a dataset is read as one table per kind across hundreds of files,
by pyarrow, Dask, DuckDB or Spark. If each file carried the types pandas
inferred from its own rows (an all-null column as ``null``, a category's
values as seen), the files would not concatenate. So every file of a table
has the schema built here from ``camprotool.analysis.schema`` (the dtypes
``Capture`` gives), whatever its rows hold:

* categories are ``dictionary<int32, string>``; reading gives them back with
  the fixed categories of :data:`CATEGORIES` first (every command of the
  catalogue, every rule, outcome, kind ...) and any other value seen after,
  sorted (an unknown command keeps its raw name);
* nullable counts, ports and statuses are Arrow's nullable ``int64``,
  ``uint16`` and ``bool``; times ``timestamp[ns, UTC]``, durations
  ``duration[ns]``; ``ids`` and ``statuses`` stay Arrow lists, ``data_conns``
  is ``list<int64>`` and ``raw`` binary.

Besides a table's own columns, every dataset table has ``capture_set`` and
``day`` (the partition keys), and ``messages`` has ``message``: its row label
in ``read_capture(set).messages``, which ``violations.message``,
``sync.request`` and the other references point at.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from camprotool.analysis import schema
from camprotool.analysis.frames import CHANNELS, COMMAND_CATEGORIES
from camprotool.analysis.tables import KINDS, OUTCOMES, SOURCES, STATUSES, STEP_OUTCOMES
from camprotool.protocol.rules import RULES

#: the tables a dataset holds, with ``Capture``'s dtypes
TABLES: dict[str, dict] = {
    "messages": schema.MESSAGES,
    "connections": schema.CONNECTIONS,
    "sessions": schema.SESSIONS,
    "sync": schema.SYNC,
    "transfers": schema.TRANSFERS,
    "status": schema.STATUS,
    "alarms": schema.ALARMS,
    "violations": schema.VIOLATIONS,
    "problems": schema.PROBLEMS,
}
#: the column whose UTC day a row is filed under (problems: see ``writer.row_days``)
TIME_COLUMN: dict[str, str | None] = {
    "messages": "ts", "connections": "start", "sessions": "start", "sync": "ts",
    "transfers": "start", "status": "ts", "alarms": "ts", "violations": "ts", "problems": None,
}
PARTITIONS = ("capture_set", "day")
#: columns a table has in a dataset besides its ``Capture`` columns (before the partitions)
EXTRA: dict[str, dict[str, str]] = {"messages": {"message": "int64"}}

_DIRECTIONS = ["c2s", "s2c"]
#: categories every file shares, by (table, column); other category columns (dialect,
#: close_reason, problems.kind) are open: their categories are the values seen, sorted
CATEGORIES: dict[tuple[str, str], list[str]] = {
    ("messages", "channel"): CHANNELS,
    ("messages", "direction"): _DIRECTIONS,
    ("messages", "command"): COMMAND_CATEGORIES,
    ("connections", "channel"): CHANNELS,
    ("sessions", "outcome"): OUTCOMES,
    ("sync", "kind"): KINDS,
    ("sync", "outcome"): STEP_OUTCOMES,
    ("transfers", "kind"): KINDS,
    ("transfers", "status"): STATUSES,
    ("status", "source"): SOURCES,
    ("violations", "rule"): list(RULES),
    ("problems", "direction"): _DIRECTIONS,
}
#: fixed columns whose values may go beyond the fixed categories
OPEN_EXTRAS = {("messages", "command")}

_OBJECT_TYPES = {"raw": pa.large_binary(), "data_conns": pa.large_list(pa.int64())}
_SIMPLE = {
    "int64": pa.int64(), "Int64": pa.int64(), "UInt16": pa.uint16(), "bool": pa.bool_(),
    "boolean": pa.bool_(), "float64": pa.float64(), "str": pa.large_string(),
    schema.UTC_NS: pa.timestamp("ns", tz="UTC"), "timedelta64[ns]": pa.duration("ns"),
    "category": pa.dictionary(pa.int32(), pa.string()),
}


def dtypes(name: str) -> dict[str, object]:
    """Pandas dtype of each column of table ``name`` in a dataset (partitions excluded)."""
    return {**TABLES[name], **EXTRA.get(name, {})}


def arrow_type(column: str, dtype: object) -> pa.DataType:
    if isinstance(dtype, pd.ArrowDtype):
        return dtype.pyarrow_dtype
    if dtype == "object":
        return _OBJECT_TYPES[column]
    return _SIMPLE[str(dtype)]


def arrow_schema(name: str) -> pa.Schema:
    """The schema of every Parquet file of table ``name`` (no partition columns)."""
    return pa.schema([(col, arrow_type(col, dt)) for col, dt in dtypes(name).items()])


def dataset_schema(name: str) -> pa.Schema:
    """:func:`arrow_schema` plus the partition columns, as a reader sees the table."""
    return pa.schema(list(arrow_schema(name)) + [(p, pa.string()) for p in PARTITIONS])


def to_arrow(df: pd.DataFrame, name: str) -> pa.Table:
    """``df`` (a table's columns and :data:`EXTRA`) as an Arrow table of the fixed schema."""
    target = arrow_schema(name)
    table = pa.Table.from_pandas(df[target.names], schema=target, preserve_index=False)
    return table.replace_schema_metadata(None)


def _mapper(t: pa.DataType) -> object:
    if pa.types.is_int64(t):
        return pd.Int64Dtype()
    if pa.types.is_uint16(t):
        return pd.UInt16Dtype()
    if pa.types.is_boolean(t):
        return pd.BooleanDtype()
    if pa.types.is_large_list(t) or pa.types.is_list(t):
        return pd.ArrowDtype(t)
    return None


def category_values(name: str, column: str, seen: list[str]) -> list[str]:
    """The categories a reader gives ``column``: the fixed ones, then other values, sorted."""
    fixed = CATEGORIES.get((name, column))
    if fixed is None:
        return sorted(set(seen))
    known = set(fixed)
    return list(fixed) + sorted({v for v in seen if v not in known})


def to_pandas(table: pa.Table, name: str) -> pd.DataFrame:
    """A dataset table (any of its columns, with or without the partitions) back in
    ``Capture``'s dtypes, with a RangeIndex."""
    types = dtypes(name)
    plain = [c for c in table.column_names if types.get(c) != "object"]
    df = table.select(plain).to_pandas(types_mapper=_mapper, ignore_metadata=True)
    df.index = pd.RangeIndex(len(df))
    out: dict[str, pd.Series] = {}
    for col in table.column_names:
        dtype = types.get(col)
        if dtype == "object":  # lists of ints, bytes: Python objects as in Capture
            out[col] = pd.Series(table.column(col).to_pylist(), index=df.index, dtype=object)
            continue
        series = df[col]
        if col in PARTITIONS:
            values = series.astype(str).to_numpy() if len(series) else np.array([], object)
            out[col] = pd.Series(pd.array(values, dtype="str"), index=df.index)
        elif dtype == "category":
            seen = [str(v) for v in series.cat.categories] if isinstance(
                series.dtype, pd.CategoricalDtype) else [str(v) for v in series.dropna()]
            cats = pd.Index(category_values(name, col, seen), dtype="str")
            values = series.astype("str") if not isinstance(series.dtype, pd.CategoricalDtype) \
                else series.cat.rename_categories([str(c) for c in series.cat.categories])
            out[col] = pd.Series(pd.Categorical(values, categories=cats), index=df.index)
        elif str(series.dtype) != str(dtype):
            out[col] = series.astype(dtype)
        else:
            out[col] = series
    return pd.DataFrame(out, index=df.index)


def empty(name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """A zero-row table in the dataset's dtypes (a Dask meta)."""
    table = dataset_schema(name).empty_table()
    if columns is not None:
        table = table.select(columns)
    return to_pandas(table, name)

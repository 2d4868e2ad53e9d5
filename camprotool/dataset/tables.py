"""A capture set's tables as a dataset holds them: keyed by set and day, dtypes fixed.

Why a module of its own: the dataset writer, ``camprotool.dask.read_captures``
and the tests all turn a :class:`~camprotool.analysis.capture.Capture` into the
same nine frames, so that a table read from Parquet, computed by Dask or
decoded in pandas is one thing. Building them runs every analysis (sessions,
sync, violations ...), which is why it happens where the capture is decoded:
on a Dask worker, not on the client.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from camprotool.analysis.capture import Capture, read_capture
from camprotool.capture.records import CaptureFormatError
from camprotool.dataset import columns
from camprotool.dataset.options import DecodeOptions
from camprotool.dataset.sets import CaptureSet

_NS_PER_DAY = 86_400 * 10**9
#: the day of rows that have no time and no message to borrow one from
UNKNOWN_DAY = "unknown"


def read_set(cset: CaptureSet, options: DecodeOptions, progress=None) -> Capture:
    """Decode a capture set: one file as itself, several as one capture
    (``read_capture(list)``: connections carry across the files)."""
    source = list(cset.paths) if len(cset.paths) > 1 else cset.paths[0]
    return read_capture(source, dialect=options.dialect, ports=options.ports,
                        reveal_passwords=options.reveal_passwords, progress=progress)


def _day_names(days: np.ndarray) -> np.ndarray:
    """Day numbers since 1970 -> ``YYYY-MM-DD`` (one strftime per distinct day)."""
    unique, inverse = np.unique(days, return_inverse=True)
    names = np.array([str(np.datetime64(int(d), "D")) for d in unique], dtype=object)
    return names[inverse] if len(days) else np.array([], dtype=object)


def _days_of(times: pd.Series, fallback: str) -> np.ndarray:
    values = times.to_numpy(dtype="datetime64[ns]").view(np.int64)
    missing = times.isna().to_numpy()
    out = _day_names(np.floor_divide(values, _NS_PER_DAY))
    if missing.any():
        out = out.copy()
        out[missing] = fallback
    return out


def row_days(tables: dict[str, pd.DataFrame]) -> dict[str, np.ndarray]:
    """The UTC day each row is filed under: its time column's day. A row without a
    time (a login before the capture, a problem) takes the day of the message nearest
    its frame, else the set's first day."""
    messages = tables["messages"]
    starts = pd.concat([messages["ts"], tables["connections"]["start"]]).dropna()
    first = _days_of(starts.iloc[:1], UNKNOWN_DAY)[0] if len(starts) else UNKNOWN_DAY
    out: dict[str, np.ndarray] = {}
    for name, df in tables.items():
        column = columns.TIME_COLUMN[name]
        if column is not None:
            out[name] = _days_of(df[column], first)
        else:
            out[name] = _problem_days(df, messages, first)
    return out


def _problem_days(problems: pd.DataFrame, messages: pd.DataFrame, first: str) -> np.ndarray:
    if not len(problems) or not len(messages):
        return np.full(len(problems), first, dtype=object)
    by_frame = messages[["frame", "ts"]].sort_values("frame", kind="stable")
    frames = by_frame["frame"].to_numpy()
    days = _days_of(by_frame["ts"], first)
    wanted = problems["frame"]
    at = np.searchsorted(frames, wanted.fillna(0).to_numpy(np.int64)).clip(0, len(frames) - 1)
    return np.where(wanted.isna().to_numpy(), first, days[at])


def conform(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """``df`` with the categories a dataset reader gives (fixed ones first) and the
    dataset's dtypes; ``capture_set``/``day`` as ``str``."""
    types = columns.dtypes(name)
    out = {}
    for col in df.columns:
        series = df[col]
        dtype = types.get(col)
        if dtype == "category":
            seen = [str(v) for v in series.cat.categories] if isinstance(
                series.dtype, pd.CategoricalDtype) else [str(v) for v in series.dropna()]
            cats = pd.Index(columns.category_values(name, col, seen), dtype="str")
            series = pd.Series(pd.Categorical(series.astype("str") if len(series) else [],
                                              categories=cats), index=df.index)
        elif col in columns.PARTITIONS:
            series = pd.Series(pd.array(series.to_numpy(dtype=object), dtype="str"),
                               index=df.index)
        out[col] = series
    return pd.DataFrame(out, index=df.index)


def keyed_tables(cap: Capture, set_name: str) -> dict[str, pd.DataFrame]:
    """The nine tables of ``cap`` with ``message`` (messages only), ``capture_set`` and
    ``day`` columns, a RangeIndex and the dataset's dtypes."""
    tables = {name: getattr(cap, name).reset_index(drop=True) for name in columns.TABLES}
    msgs = tables["messages"]
    tables["messages"] = msgs.assign(message=np.arange(len(msgs), dtype=np.int64))
    days = row_days(tables)
    out = {}
    for name, df in tables.items():
        df = df.assign(capture_set=np.full(len(df), set_name, dtype=object), day=days[name])
        out[name] = conform(df, name)
    return out


def bad_file_tables(cset: CaptureSet, error: Exception) -> dict[str, pd.DataFrame]:
    """The tables of a set none of whose files could be read: one ``bad_file`` problem
    row per file, every other table empty."""
    out = {name: columns.empty(name) for name in columns.TABLES}
    rows = pd.DataFrame({
        "frame": pd.array([None] * len(cset.paths), dtype="Int64"),
        "kind": ["bad_file"] * len(cset.paths),
        "conn": pd.array([None] * len(cset.paths), dtype="Int64"),
        "direction": pd.Categorical([None] * len(cset.paths), categories=["c2s", "s2c"]),
        "detail": [str(error) if path in str(error) else f"{path}: {error}"
                   for path in cset.paths],
        "capture_set": cset.name,
        "day": UNKNOWN_DAY,
    })
    rows["kind"] = rows["kind"].astype("category")
    out["problems"] = conform(rows, "problems")
    return out


def set_tables(cset: CaptureSet, options: DecodeOptions) -> dict[str, pd.DataFrame]:
    """:func:`keyed_tables` of a decoded set; a set that cannot be read at all (not a
    capture, unreadable) gives :func:`bad_file_tables` instead of raising."""
    try:
        cap = read_set(cset, options)
    except (CaptureFormatError, OSError) as exc:
        return bad_file_tables(cset, exc)
    return keyed_tables(cap, cset.name)

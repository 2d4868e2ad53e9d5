"""Write dataframes to csv, json lines or parquet, chosen by the file extension.

List-valued columns (``ids``, ``statuses``, ``data_conns``) are written in
their wire form (``A;B``, ``A;true|B;null``, ``1;2``) and raw frame bytes as hex, so every format
round-trips as plain text and columnar tools need no Python objects.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def _status_text(value: object) -> str:
    return "null" if value is None or value is pd.NA else ("true" if value else "false")


def _pair(item: object) -> tuple[object, object]:
    """A (camera_id, online) pair: tuples from live logs, dicts from Arrow tables."""
    if isinstance(item, dict):
        return item["camera_id"], item["online"]
    cam, online = item  # type: ignore[misc]
    return cam, online


def _statuses_text(value: object) -> str:
    return "|".join(f"{cam};{_status_text(s)}" for cam, s in map(_pair, value))


def flatten(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose object columns are plain text."""
    out = df.copy()
    if "ids" in out:
        out["ids"] = out["ids"].map(lambda v: ";".join(v) if v is not None else None,
                                    na_action="ignore").astype("str")
    if "statuses" in out:
        out["statuses"] = out["statuses"].map(_statuses_text, na_action="ignore").astype("str")
    if "data_conns" in out:  # Capture.sessions: ids of the session's data connections
        out["data_conns"] = out["data_conns"].map(
            lambda v: ";".join(str(i) for i in v), na_action="ignore").astype("str")
    if "raw" in out:
        out["raw"] = out["raw"].map(lambda v: bytes(v).hex(), na_action="ignore").astype("str")
    return out


def output_format(path: str | os.PathLike[str]) -> str:
    suffix = Path(path).suffix.lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        raise ValueError(
            f"{os.fspath(path)}: unknown output format {suffix or '(no extension)'!r}; "
            "use .csv, .json (json lines) or .parquet"
        ) from None


def write_frame(df: pd.DataFrame, path: str | os.PathLike[str]) -> str:
    """Write ``df`` in the format its extension names; returns the format."""
    fmt = output_format(path)
    flat = flatten(df)
    if fmt == "csv":
        flat.to_csv(path, index=False)
    elif fmt == "json":
        flat.to_json(path, orient="records", lines=True, date_format="iso", date_unit="ns",
                     force_ascii=False)
    else:
        flat.to_parquet(path, index=False)
    return fmt

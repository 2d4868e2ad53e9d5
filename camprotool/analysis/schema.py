"""One type map for every dataframe camprotool builds.

Like zat's log_to_dataframe: users get analysis-ready frames at once. Counts
are nullable ``Int64``, ports ``UInt16``, statuses nullable ``boolean``, times
``datetime64[ns, UTC]``, names ``category``, text pandas' ``str``; lists stay
Python objects.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from camprotool.protocol.catalogue import COMMANDS, Kind, Layout

UTC_NS = "datetime64[ns, UTC]"
#: list columns stay Arrow lists: no Python object per camera (``Capture.messages``)
IDS_DTYPE = pd.ArrowDtype(pa.large_list(pa.large_string()))
STATUSES_DTYPE = pd.ArrowDtype(pa.large_list(pa.struct(
    [("camera_id", pa.large_string()), ("online", pa.bool_())])))


def _field_dtype(name: str) -> str | pd.ArrowDtype:
    for spec in COMMANDS:
        for f in spec.fields:
            if f.name != name:
                continue
            if spec.layout is Layout.IDS:
                return IDS_DTYPE
            if spec.layout is Layout.STATUS_LIST:
                return STATUSES_DTYPE
            return {
                Kind.COUNT: "Int64",
                Kind.PORT: "UInt16",
                Kind.STATUS: "boolean",
            }.get(f.kind, "str")
    raise KeyError(name)


_FIELDS = [f.name for spec in COMMANDS for f in spec.fields]
FIELD_DTYPES: dict[str, str | pd.ArrowDtype] = {
    name: _field_dtype(name) for name in dict.fromkeys(_FIELDS)}

#: ``Capture.messages``: the Contract's columns first, then typed fields, then extras.
MESSAGES: dict[str, str | pd.ArrowDtype] = {
    "ts": UTC_NS,
    "conn": "int64",
    "channel": "category",
    "direction": "category",
    "client": "category",  # the connections' ip:port, sorted: a code a row, not a string
    "server": "category",
    "command": "category",
    "params": "str",
    "error": "str",
    **FIELD_DTYPES,
    "frame": "int64",
    "stream_offset": "int64",
    "raw": "object",
}

CONNECTIONS: dict[str, str] = {
    "conn": "int64",
    "channel": "category",
    "client": "str",
    "server": "str",
    "client_ip": "str",
    "client_port": "UInt16",
    "server_ip": "str",
    "server_port": "UInt16",
    "main_conn": "Int64",
    "announced": "boolean",
    "dialect": "category",
    "handshake_seen": "bool",
    "start": UTC_NS,
    "end": UTC_NS,
    "duration": "timedelta64[ns]",
    "close_reason": "category",
    "messages": "int64",
    "bytes_c2s": "int64",
    "bytes_s2c": "int64",
    "lost_c2s": "int64",
    "lost_s2c": "int64",
}

#: ``Capture.problems``: one row per loss or oddity (``camprotool.analysis.problems``);
#: ``conn`` and ``direction`` are missing for problems of the file or of a whole connection.
PROBLEMS: dict[str, str] = {"frame": "Int64", "kind": "category", "conn": "Int64",
                            "direction": "category", "detail": "str"}

# ------------------------------------------------------------- analysis tables
# (camprotool.analysis.tables and .violations; docs/analysis.md says what each column means)

#: ``Capture.sessions``: one row per login attempt on a main connection.
SESSIONS: dict[str, str] = {
    "session": "int64",
    "conn": "int64",
    "client": "str",
    "server": "str",
    "user": "str",
    "outcome": "category",
    "reason": "str",
    "camera_count": "Int64",
    "last_login_time": "str",
    "last_login_ip": "str",
    "data_conns": "object",
    "start": UTC_NS,
    "end": UTC_NS,
    "duration": "timedelta64[ns]",
    "heartbeats": "int64",
    "heartbeat_max_gap": "timedelta64[ns]",
    "message": "Int64",
    "answer": "Int64",
}

#: ``Capture.sync``: one row per upload/download step on a data connection.
SYNC: dict[str, str] = {
    "ts": UTC_NS,
    "session": "Int64",
    "conn": "int64",
    "kind": "category",
    "camera_id": "str",
    "current": "Int64",
    "total": "Int64",
    "synced": "Int64",
    "outcome": "category",
    "reason": "str",
    "online": "boolean",
    "request": "Int64",
    "answer": "Int64",
}

#: ``Capture.transfers``: one row per data connection (the Contract's columns first).
TRANSFERS: dict[str, str] = {
    "kind": "category",
    "client": "str",
    "data_client": "str",
    "server": "str",
    "total": "Int64",
    "completed": "int64",
    "conn": "int64",
    "main_conn": "Int64",
    "session": "Int64",
    "ok": "int64",
    "failed": "int64",
    "no_answer": "int64",
    "status": "category",
    "start": UTC_NS,
    "end": UTC_NS,
    "duration": "timedelta64[ns]",
    "cameras_per_s": "float64",
    "close_reason": "category",
}

#: ``Capture.status``: one row per observation of a camera's online status.
STATUS: dict[str, str] = {
    "ts": UTC_NS,
    "camera_id": "str",
    "online": "boolean",
    "source": "category",
    "conn": "int64",
    "session": "Int64",
    "message": "int64",
    "previous": "boolean",
    "changed": "bool",
    "time_in_previous": "timedelta64[ns]",
}

#: ``Capture.alarms``: one row per alarm push.
ALARMS: dict[str, str] = {
    "ts": UTC_NS,
    "camera_id": "str",
    "alarm_type": "str",
    "conn": "int64",
    "session": "Int64",
    "message": "int64",
    "online": "boolean",
}

#: ``Capture.violations``: one row per PROTOCOL.md section 5 breach.
VIOLATIONS: dict[str, str] = {
    "rule": "category",
    "message": "int64",
    "conn": "int64",
    "ts": UTC_NS,
    "command": "str",
    "detail": "str",
}

#: ``Capture.notes``: what the session machines found odd but no rule covers.
NOTES: dict[str, str] = {
    "message": "int64",
    "conn": "int64",
    "ts": UTC_NS,
    "command": "str",
    "detail": "str",
}


def empty_frame(schema: dict[str, str]) -> pd.DataFrame:
    """A zero-row frame with the schema's columns and dtypes."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in schema.items()})


def conform(df: pd.DataFrame, schema: dict[str, str]) -> pd.DataFrame:
    """Order ``df``'s columns as the schema says and give each its dtype.

    A frame that conforms already is returned as it is: a builder that makes each
    column in its dtype (``messages_frame``) pays one look at the dtypes, not a
    new frame of every column."""
    if list(df.columns) == list(schema) and all(
            str(have) == str(want) for have, want in zip(df.dtypes, schema.values(), strict=True)):
        return df
    out = {}
    for name, dtype in schema.items():
        col = df[name] if name in df else pd.Series(pd.NA, index=df.index, dtype="object")
        if dtype == UTC_NS and not isinstance(col.dtype, pd.DatetimeTZDtype):
            col = pd.to_datetime(col, utc=True)
        elif str(col.dtype) != str(dtype):
            col = col.astype(dtype)
        out[name] = col
    return pd.DataFrame(out, index=df.index, copy=False)

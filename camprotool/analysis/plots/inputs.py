"""What each plot takes, and a clear error when it is handed the wrong table.

Every plot takes a table of a :class:`~camprotool.analysis.capture.Capture`
(so a filtered frame plots as well) or the whole capture. Handing it another
table is an easy slip in a notebook (``plots.sync_progress(cap.messages)``);
pandas would answer ``KeyError: 'outcome'``. :func:`require` says instead
which table it was given, which one it needs and how to call the plot.
"""

from __future__ import annotations

import pandas as pd

from camprotool.analysis.capture import Capture

#: columns each plot reads, by the table they come from
NEEDS: dict[str, tuple[str, ...]] = {
    "messages": ("ts", "conn", "channel", "direction", "client", "server", "command", "params"),
    "sync": ("ts", "conn", "kind", "current", "total", "outcome"),
    "transfers": ("conn", "kind", "total", "completed"),
    "alarms": ("ts", "camera_id", "alarm_type"),
    "status": ("ts", "camera_id", "online"),
    "sessions": ("session", "conn", "message", "data_conns", "user", "outcome"),
    "connections": ("conn", "channel", "client", "server", "start", "end", "close_reason"),
    "violations": ("rule", "message"),
}

#: what each table is, for the error message
WHAT = {
    "messages": "one row per decoded message",
    "sync": "one row per upload/download step",
    "transfers": "one row per data connection",
    "alarms": "one row per alarm",
    "status": "one row per camera status observation",
    "sessions": "one row per login",
    "connections": "one row per TCP connection",
    "violations": "one row per protocol-rule breach",
}

#: columns only one table has, to name the table a caller passed by mistake
SIGNATURES = [  # messages first: its typed columns (alarm_type, online...) overlap others
    ("messages", {"command", "direction", "params"}),
    ("sync", {"outcome", "request", "answer"}),
    ("transfers", {"completed", "data_client", "cameras_per_s"}),
    ("sessions", {"heartbeats", "camera_count", "data_conns"}),
    ("connections", {"bytes_c2s", "handshake_seen"}),
    ("violations", {"rule", "detail"}),
    ("problems", {"kind", "detail"}),
    ("alarms", {"alarm_type"}),
    ("status", {"source", "changed"}),
]


def guess_table(df: pd.DataFrame) -> str | None:
    """The ``Capture`` attribute ``df`` looks like, or None."""
    columns = set(df.columns)
    for name, signature in SIGNATURES:
        if signature <= columns:
            return name
    return None


def require(df: object, table: str, plot: str, call: str) -> pd.DataFrame:
    """``df`` when it has the columns ``plot`` reads from ``cap.<table>``, else a clear error.

    A frame with those columns is still refused when it is recognisably another
    table: ``cap.messages`` has ``ts``, ``camera_id``, ``online`` and
    ``alarm_type`` columns too, and would draw nonsense as alarms or status.
    A hand-made frame of just the needed columns (the client panel's) passes.
    ``call`` is how the plot is meant to be called (``plots.sync_progress(cap.sync,
    cap.transfers)``); it goes into the message, with the Capture alternative.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{plot}() takes cap.{table} ({WHAT[table]}) or a Capture, not "
                        f"{type(df).__name__}: call {call} or plots.{plot}(cap)")
    missing = [c for c in NEEDS[table] if c not in df.columns]
    got = guess_table(df)
    if missing:
        given = f"cap.{got}" if got and got != table else "a table"
        raise ValueError(
            f"{plot}() draws cap.{table} ({WHAT[table]}) but was given {given} without the "
            f"column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}: "
            f"call {call}, or plots.{plot}(cap) with the Capture")
    if got is not None and got != table:
        raise ValueError(
            f"{plot}() draws cap.{table} ({WHAT[table]}) but was given cap.{got}: "
            f"call {call}, or plots.{plot}(cap) with the Capture")
    return df


def optional(df: object, table: str, plot: str, call: str) -> pd.DataFrame | None:
    """:func:`require` for a table a plot can do without (None stays None)."""
    return None if df is None else require(df, table, plot, call)


def capture_end(cap: Capture) -> pd.Timestamp | None:
    """The last time a capture saw: its last connection end or message (UTC)."""
    ends = [cap.connections["end"].max(), cap.messages["ts"].max()]
    ends = [e for e in ends if e is not None and not pd.isna(e)]
    return max(ends) if ends else None

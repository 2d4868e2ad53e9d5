"""Logged messages -> the ``messages`` dataframe of the Contract.

The columns and their meaning are those of ``Capture.messages`` (DESIGN.md):
``ts`` (datetime64[ns, UTC]), ``conn``, ``channel``, ``direction``, ``client``,
``server``, ``command``, ``params``, ``error``, then one typed column per field
name of the catalogue (``user``, ``camera_id``, ``current``, ``online``, ...).
Dtypes come from the project's one schema map (``camprotool.analysis.schema``),
so a live table and one read from a capture have the same dtypes; only the
capture-only columns (``frame``, ``stream_offset``, ``raw``) are absent.

Passwords (the catalogue's secret fields) are replaced with ``***`` in their
columns and at their positions inside ``params`` unless revealed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from camprotool.protocol.catalogue import COMMANDS, FIELD_NAMES, Kind
from camprotool.protocol.messages import MASK, Message, masked_params

if TYPE_CHECKING:
    import pandas as pd

    from camprotool.net.recording import LoggedMessage

BASE_COLUMNS = ("ts", "conn", "channel", "direction", "client", "server", "command", "params",
                "error")
#: Columns of ``Capture.messages`` that only a capture has (packet number, ...).
_CAPTURE_ONLY = ("frame", "stream_offset", "raw")


def mask_params(msg: Message) -> str:
    """``params`` with every secret field's text replaced by ``***`` (as ``repr`` shows it)."""
    return masked_params(msg)


def messages_frame(rows: Sequence[LoggedMessage], *, reveal_passwords: bool = False
                   ) -> pd.DataFrame:
    """Build the dataframe column by column (never row by row)."""
    import pandas as pd

    cols: dict[str, list[Any]] = {name: [] for name in BASE_COLUMNS}
    fields: dict[str, list[Any]] = {name: [] for name in FIELD_NAMES}
    secret = {f.name for s in COMMANDS for f in s.fields if f.kind is Kind.SECRET}
    for row in rows:
        msg = row.message
        cols["ts"].append(row.ts_ns)
        cols["conn"].append(row.conn)
        cols["channel"].append(row.channel)
        cols["direction"].append(row.direction)
        cols["client"].append(row.client)
        cols["server"].append(row.server)
        cols["command"].append(msg.command)
        cols["params"].append(msg.params if reveal_passwords else mask_params(msg))
        cols["error"].append(msg.error)
        values = msg.fields
        for name, column in fields.items():
            value = values.get(name)
            if value is not None and name in secret and not reveal_passwords:
                value = MASK
            column.append(value)
    from camprotool.analysis.schema import MESSAGES, conform

    schema = {k: v for k, v in MESSAGES.items() if k not in _CAPTURE_ONLY}
    data: dict[str, Any] = {
        "ts": pd.to_datetime(pd.Series(cols["ts"], dtype="int64"), unit="ns", utc=True),
        "channel": pd.Categorical(cols["channel"], categories=["main", "data", "unknown"]),
        "direction": pd.Categorical(cols["direction"], categories=["c2s", "s2c"]),
    }
    for name in ("conn", "client", "server", "command", "params", "error"):
        data[name] = pd.Series(cols[name], dtype="object")
    for name, column in fields.items():
        data[name] = pd.Series(column, dtype="object")
    frame = conform(pd.DataFrame(data), schema)
    # Rows are appended as bytes arrive; a stable sort keeps stream order for ties.
    return frame.sort_values("ts", kind="stable", ignore_index=True)

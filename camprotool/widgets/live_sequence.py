"""The client panel's conversation as a sequence diagram, drawn from its live log.

``plots.sequence_diagram`` spaces arrows by real time and puts each data
connection in a lane of its own when it knows which main connection a data
connection belongs to. A capture knows that from ``cap.connections``; a
live client log has no such table, but its own history says it: a client
opens a data connection only after its main connection asked for the port,
so each data connection belongs to the last main connection opened before
it. :func:`live_connections` writes that down as the few
``cap.connections`` columns the diagram reads.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

#: messages drawn: the latest ones (a long session would make a very tall figure)
LAST = 60


def live_connections(messages: pd.DataFrame) -> pd.DataFrame:
    """One row per connection of a client log: ``conn``, ``channel``, ``client``,
    ``server``, ``main_conn`` (a data connection's main); ``start``, ``end`` and
    ``close_reason`` are unknown (NaT/None): the log sees messages, not TCP, so the
    diagram draws no opening or close it did not see."""
    if not len(messages):
        return pd.DataFrame(columns=["conn", "channel", "client", "server", "main_conn",
                                     "start", "end", "close_reason"])
    g = messages.groupby("conn", sort=True)
    conns = pd.DataFrame({
        "conn": g["conn"].first().astype(int),
        "channel": g["channel"].first().astype(str),
        "client": g["client"].first().astype(str),
        "server": g["server"].first().astype(str),
    }).reset_index(drop=True)
    conns["start"] = conns["end"] = pd.Series(pd.NaT, index=conns.index,
                                              dtype="datetime64[ns, UTC]")
    mains: list[int | None] = []
    last_main: int | None = None
    for conn, channel in zip(conns["conn"], conns["channel"], strict=True):
        if channel == "main":
            last_main = int(conn)
            mains.append(None)
        else:
            mains.append(last_main)
    conns["main_conn"] = pd.array(mains, dtype="Int64")
    conns["close_reason"] = pd.Series([None] * len(conns), dtype="object")
    return conns


def draw(messages: pd.DataFrame, zone: dt.tzinfo, last: int = LAST) -> Any:
    """The latest ``last`` messages' sequence diagram: their first main connection
    with its data connections (raises ``ValueError`` with nothing to draw)."""
    from camprotool.analysis.plots import sequence_diagram

    if not len(messages):
        raise ValueError("no messages yet: connect and send something first")
    recent = messages.tail(last)
    mains = recent.loc[recent["channel"].astype(str) == "main", "conn"]
    conn = int(mains.iloc[-1]) if len(mains) else int(recent["conn"].iloc[-1])
    return sequence_diagram(recent, conn, zone, connections=live_connections(messages))

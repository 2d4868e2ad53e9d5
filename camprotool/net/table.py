"""Logged messages -> the ``messages`` dataframe of the Contract, by capture decoding's builder.

The columns and their meaning are those of ``Capture.messages`` (DESIGN.md):
``ts`` (datetime64[ns, UTC]), ``conn``, ``channel``, ``direction``, ``client``,
``server``, ``command``, ``params``, ``error``, then one typed column per field
name of the catalogue (``user``, ``camera_id``, ``current``, ``online``, ...).
Only the capture-only columns (``frame``, ``stream_offset``, ``raw``) are absent.

There is one messages-table builder and one masking rule: the logged messages
become rows of the decoder's Arrow schema
(:func:`camprotool.protocol.bulk.rows_to_table`, the decoder's own assembler)
and go through :func:`camprotool.analysis.frames.messages_frame`, which masks
them with :func:`camprotool.analysis.masking.mask_table` unless revealed. So a
live table and one read from a capture have the same dtypes, categories and
masking by construction, not by a second copy kept in step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from camprotool.protocol.messages import Message, masked_params

if TYPE_CHECKING:
    import pandas as pd

    from camprotool.net.recording import LoggedMessage

#: Columns of ``Capture.messages`` that only a capture has (packet number, ...).
_CAPTURE_ONLY = ("frame", "stream_offset", "raw")


class _Conn(NamedTuple):
    """What the builder reads of a connection (a capture's ``ConnectionRecord`` has more)."""

    conn: int
    channel: str
    client: str
    server: str


def mask_params(msg: Message) -> str:
    """``params`` with every secret field's text replaced by ``***`` (the one masking rule,
    :func:`camprotool.protocol.masking.mask_params`, as ``repr`` shows it)."""
    return masked_params(msg)


def messages_frame(rows: Sequence[LoggedMessage], *, reveal_passwords: bool = False
                   ) -> pd.DataFrame:
    """The ``messages`` table of logged rows, in time order (ties in log order)."""
    import numpy as np
    import pyarrow as pa

    from camprotool.analysis.frames import messages_frame as build
    from camprotool.protocol.bulk import rows_to_table

    table = rows_to_table([(0, row.message) for row in rows])
    n = len(rows)
    ts = np.fromiter((row.ts_ns for row in rows), np.int64, n)
    table = (table.append_column("conn", pa.array([row.conn for row in rows], pa.int64()))
             .append_column("direction", pa.array([row.direction for row in rows],
                                                  pa.string()))
             .append_column("ts_ns", pa.array(ts))
             .append_column("frame", pa.array(np.zeros(n, np.int64))))
    conns: dict[int, _Conn] = {}
    for row in rows:
        if row.conn not in conns:
            conns[row.conn] = _Conn(row.conn, row.channel, row.client, row.server)
    frame = build(table, list(conns.values()),  # type: ignore[arg-type]
                  reveal_passwords=reveal_passwords,
                  order=np.argsort(ts, kind="stable"))
    return frame.drop(columns=list(_CAPTURE_ONLY))

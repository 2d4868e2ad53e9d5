"""How packets read: a hexdump a Wireshark user recognises, as text and as HTML, and
the command line that opens the capture at a packet in Wireshark.

:class:`PacketList` is what :meth:`Capture.packets <camprotool.analysis.capture.Capture.packets>`
and :meth:`~camprotool.analysis.capture.Capture.follow` return: the packets as a
DataFrame (``.df``, one row per packet) plus the hex view (``repr`` in a
terminal, HTML in Jupyter). Bytes hidden by password masking are shown as
``**`` in the hex column and ``*`` in the text column, so a hidden byte never
passes for a real ``0x2a``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["PacketList", "hexdump_lines", "wireshark_command"]

#: bytes per hexdump line, as Wireshark's packet bytes pane
WIDTH = 16
#: packets a repr shows in full (the DataFrame has them all)
#: the packets table's columns (the explorer's packets view too)
COLUMNS = ["frame", "ts", "conn", "direction", "src", "dst", "tcp_flags", "rel_seq", "rel_ack",
           "window", "len", "analysis", "messages"]
SHOWN = 20


def wireshark_command(source: Any, frame: int) -> str | None:
    """``wireshark -r FILE -g FRAME``: open the capture at that packet (None: no file).

    A capture set (a list of files) is numbered as ``mergecap`` merges it, so
    the line merges the files first.
    """
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        if isinstance(path, str) and path != "<memory>":
            return f"wireshark -r {shlex.quote(path)} -g {int(frame)}"
        return None
    if isinstance(source, Sequence) and not isinstance(source, bytes | bytearray) and source:
        if len(source) == 1:  # a set of one file is that file, numbered alike
            return wireshark_command(source[0], frame)
        files = " ".join(shlex.quote(os.fspath(p)) for p in source)
        return f"mergecap -w merged.pcapng {files} && wireshark -r merged.pcapng -g {int(frame)}"
    return None


def hexdump_lines(data: bytes, hidden: np.ndarray | None = None) -> list[str]:
    """``0000  53 6f 63 6b ...  Sock...`` lines; ``hidden`` marks masked bytes."""
    lines = []
    for off in range(0, len(data), WIDTH):
        chunk = data[off:off + WIDTH]
        mask = hidden[off:off + WIDTH] if hidden is not None else None
        hexes, text = [], []
        for i, b in enumerate(chunk):
            if mask is not None and mask[i]:
                hexes.append("**")
                text.append("*")
            else:
                hexes.append(f"{b:02x}")
                text.append(chr(b) if 0x20 <= b < 0x7F else ".")
        left = " ".join(hexes[:8])
        right = " ".join(hexes[8:])
        lines.append(f"{off:04x}  {left:<23}  {right:<23}  {''.join(text)}")
    return lines


class PacketList:
    """Packets of a capture: ``df`` (a DataFrame, one row per packet) and a hex view.

    ``hidden`` holds, per row, which payload bytes password masking hid
    (None: nothing hidden). ``source`` is what the capture was read from (for
    :meth:`wireshark`); ``what`` says which packets these are, for the header.
    """

    def __init__(self, df: pd.DataFrame, hidden: list[np.ndarray | None], *,
                 source: Any, what: str) -> None:
        if len(hidden) != len(df):
            raise ValueError(f"{len(hidden)} masks for {len(df)} packets")
        self.df = df
        self.hidden = hidden
        self.source = source
        self.what = what

    def __len__(self) -> int:
        return len(self.df)

    def __iter__(self) -> Iterator[Any]:
        return self.df.itertuples(index=False)

    @property
    def frames(self) -> list[int]:
        return [int(f) for f in self.df["frame"]]

    def wireshark(self, frame: int | None = None) -> str | None:
        """The command line that opens the capture at ``frame`` (default: the first packet)."""
        if frame is None:
            if not len(self.df):
                return None
            frame = int(self.df["frame"].iloc[0])
        return wireshark_command(self.source, frame)

    # -- text ---------------------------------------------------------------
    def header(self, i: int) -> str:
        """One packet's summary line: frame, time, ends, flags, numbers, lengths, notes."""
        r = self.df.iloc[i]
        if pd.isna(r["src"]):
            return f"frame {r['frame']}  {_time(r['ts'])}  {r['analysis']}"
        where = "" if pd.isna(r["conn"]) else f"conn {r['conn']} {r['direction']}  "
        if pd.isna(r["rel_seq"]):
            numbers = f"seq={r['seq']} ack={r['ack']} (raw)"
        else:
            numbers = f"seq={r['rel_seq']}" + ("" if pd.isna(r["rel_ack"]) else
                                               f" ack={r['rel_ack']}")
        notes = [] if not r["analysis"] else [str(r["analysis"])]
        if len(r["messages"]):
            notes.append("completes message " + ", ".join(str(m) for m in r["messages"]))
        tail = "  · " + "; ".join(notes) if notes else ""
        return (f"frame {r['frame']}  {_time(r['ts'])}  {where}{r['src']} → {r['dst']}  "
                f"[{r['tcp_flags']}] {numbers} win={r['window']} len={r['len']}{tail}")

    def hexdump(self, limit: int | None = None) -> str:
        """Every packet (or the first ``limit``): its header line and its payload bytes."""
        n = len(self.df) if limit is None else min(limit, len(self.df))
        blocks = []
        for i in range(n):
            payload = self.df["payload"].iloc[i]
            lines = [self.header(i)]
            lines += ["  " + line for line in hexdump_lines(payload or b"", self.hidden[i])]
            blocks.append("\n".join(lines))
        if n < len(self.df):
            blocks.append(f"... {len(self.df) - n:,} more packets (all in .df)")
        return "\n\n".join(blocks)

    def _title(self) -> str:
        n = len(self.df)
        hidden = sum(int(h.sum()) for h in self.hidden if h is not None)
        masked = f"; {hidden:,} payload bytes hidden (passwords masked)" if hidden else ""
        return f"{n:,} packet{'s' if n != 1 else ''} of {self.what}{masked}"

    def __repr__(self) -> str:
        parts = [self._title()]
        if len(self.df):
            parts.append(self.hexdump(SHOWN))
            cmd = self.wireshark()
            if cmd:
                parts.append(f"in Wireshark: {cmd}")
        return "\n\n".join(parts)

    # -- HTML ---------------------------------------------------------------
    def to_html(self, limit: int = SHOWN) -> str:
        """A table of the packets (frame cells with their Wireshark line), the hex view of
        the first ``limit`` with password bytes hidden, and the command that opens the
        first: through the one HTML path (:mod:`camprotool.analysis.render`), as the
        explorer shows it."""
        from camprotool.analysis import render

        df = self.df
        shown = df[COLUMNS].head(limit).copy()
        shown["ts"] = shown["ts"].map(lambda t: pd.Timestamp(t).strftime("%H:%M:%S.%f"))
        table = render.frame_table(shown, max_rows=limit, source=self.source,
                                   flavour="widget", empty=None, box_style="overflow-x:auto")
        if len(df) > limit:
            table += render.fragment("note", render.Markup(
                "<small>first {} of {:,} packets (all in <code>.df</code>)</small>").format(
                    limit, len(df)))
        return render.fragment("packets", self._title(), " (UTC)" if len(df) else "", table,
                               self.hexdump(limit), self.wireshark() or "")

    def _repr_html_(self) -> str:
        return self.to_html()



def _time(ts: Any) -> str:
    """``2025-11-28 11:02:05.123456 UTC``: the packet times, to the microsecond."""
    return pd.Timestamp(ts).strftime("%Y-%m-%d %H:%M:%S.%f UTC")

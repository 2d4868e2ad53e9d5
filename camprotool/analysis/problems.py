"""``Capture.problems``: every loss or oddity the reader saw, one row per problem, by frame.

Two sources, so both decoding engines agree by construction:

- the rows the decoder recorded as it went (reader: ``truncated_file``,
  ``snaplen``, ``bad_block``...; reassembler: ``conflicting_retransmission``,
  ``out_of_window``...; detection: ``dialect_not_found``), kept as they are;
- rows derived here from what the decoder already keeps in its tables:
  ``lost_bytes`` (one per connection direction whose ``connections.lost_c2s``
  / ``lost_s2c`` is not zero), ``mid_stream`` (a connection whose handshake
  was not captured) and ``dialect_failed`` (a connection whose every frame
  failed to decode: the dialect is likely wrong).

Why derive instead of recording in the engines: the totals and the error
rows are already exact and identical in every engine; counting the same
losses a second time inside each engine would be two more places to keep
in step.

:func:`warning_lines` turns the table into one line per kind (count, first
frame, first detail), as ``camprotool decode`` and ``report`` print them.
"""

from __future__ import annotations

import re
import sys
from typing import TextIO

import numpy as np
import pandas as pd

from camprotool.analysis import schema

__all__ = ["KINDS", "MessageDigest", "build_problems", "derived_rows", "print_warnings",
           "warning_lines"]

#: What each kind means, for people: used by the report and the warnings.
KINDS = {
    "lost_bytes": "TCP bytes the capture missed: the messages around them are cut",
    "mid_stream": "the connection began before the capture: its login and first frame "
                  "may be missing",
    "dialect_failed": "every frame of a connection failed to decode: the dialect is likely "
                      "wrong",
    "dialect_not_found": "a connection names commands but no dialect frames it",
    "truncated_file": "the file ends inside a record: the capture was cut short",
    "bad_file": "a file of a capture set could not be read at all (missing, empty, not a "
                "capture): it was skipped",
    "snaplen": "packets were captured cut short (snapshot length): their tail is lost",
    "bad_block": "a record of the file is damaged",
    "bad_timestamp": "a packet's timestamp is out of range",
    "unsupported_linktype": "packets of a link type the reader does not know were skipped",
    "conflicting_retransmission": "a retransmission carries different bytes than the "
                                  "original",
}

_CONN = re.compile(r"connection (\d+): (?:(c2s|s2c): )?")
_AFTER_LOSS = ("follows lost bytes", "after lost bytes")
_LOSS_ERRORS = ("lost bytes", "stream position lost", "stream ended inside a frame")
_WAY = {"c2s": "client→server", "s2c": "server→client"}

Row = tuple[int | None, str, int | None, str | None, str]


def build_problems(raw: list[tuple[int | None, str, str]], connections: pd.DataFrame,
                   messages: pd.DataFrame | MessageDigest) -> pd.DataFrame:
    """The problems table: ``raw`` (the decoder's (frame, kind, detail) rows) plus
    :func:`derived_rows`, ordered by frame (rows without a frame last).

    ``messages``: ``Capture.messages``, or a :class:`MessageDigest` of it (what a
    streamed decode keeps instead of the messages)."""
    rows: list[Row] = []
    for frame, kind, detail in raw:
        hit = _CONN.match(detail)
        conn = int(hit.group(1)) if hit else None
        direction = hit.group(2) if hit else None
        rows.append((None if frame is None else int(frame), kind, conn, direction, detail))
    rows += derived_rows(connections, messages)
    if not rows:
        return schema.empty_frame(schema.PROBLEMS)
    df = pd.DataFrame(rows, columns=["frame", "kind", "conn", "direction", "detail"])
    df["frame"] = df["frame"].astype("Int64")
    df["conn"] = df["conn"].astype("Int64")
    df = df.sort_values("frame", kind="stable", na_position="last").reset_index(drop=True)
    df["direction"] = pd.Categorical(df["direction"], categories=["c2s", "s2c"])
    return schema.conform(df, schema.PROBLEMS)


class MessageDigest:
    """What the derived rows need from the messages, in memory per connection, not per
    message: so a streamed decode can feed it chunk by chunk (:meth:`add`).

    Per connection: first and last frame, rows, error rows, error rows caused by a
    loss (a cut frame, the tail after lost bytes); per connection direction: the
    first error row after lost bytes and the first frame cut by them, as
    (stream offset, frame).
    """

    def __init__(self) -> None:
        # per-chunk aggregates wait in _parts and are merged when they outgrow the total
        # (each add costs its chunk, not every connection seen so far)
        self._parts: list[pd.DataFrame] = []
        self._part_rows = 0
        self._per_conn = pd.DataFrame(
            {"first": pd.Series(dtype="int64"), "last": pd.Series(dtype="int64"),
             "rows": pd.Series(dtype="int64"), "errors": pd.Series(dtype="int64"),
             "loss_errors": pd.Series(dtype="int64")})
        self.first_error: dict[int, str] = {}  # conn -> its first error text
        #: (conn, direction, "after" | "cut") -> (stream offset, frame)
        self.marks: dict[tuple[int, str, str], tuple[int, int]] = {}

    @property
    def per_conn(self) -> pd.DataFrame:
        """Per connection id: ``first``, ``last`` (frames), ``rows``, ``errors``,
        ``loss_errors``."""
        if self._parts:
            self._consolidate()
        return self._per_conn

    def _consolidate(self) -> None:
        both = pd.concat([self._per_conn, *self._parts])
        self._parts, self._part_rows = [], 0
        g = both.groupby(level=0)
        self._per_conn = pd.DataFrame({"first": g["first"].min(), "last": g["last"].max(),
                                       "rows": g["rows"].sum(), "errors": g["errors"].sum(),
                                       "loss_errors": g["loss_errors"].sum()})

    @classmethod
    def of(cls, messages: pd.DataFrame) -> MessageDigest:
        digest = cls()
        digest.add(messages)
        return digest

    def add(self, messages: pd.DataFrame) -> None:
        """Take one more table of messages (``conn``, ``direction``, ``frame``, ``error``,
        ``stream_offset``), in any order."""
        if not len(messages):
            return
        error = messages["error"]
        is_error = error.notna().to_numpy()
        bad = messages.loc[is_error, ["conn", "direction", "frame", "error", "stream_offset"]]
        text = bad["error"].astype(str)
        loss = text.map(_loss_error).to_numpy(bool) if len(bad) else np.zeros(0, bool)
        loss_all = np.zeros(len(messages), np.int64)
        loss_all[np.flatnonzero(is_error)[loss]] = 1
        chunk = pd.DataFrame({"conn": messages["conn"].to_numpy(np.int64),
                              "frame": messages["frame"].to_numpy(np.int64),
                              "errors": is_error.astype(np.int64), "loss_errors": loss_all})
        g = chunk.groupby("conn")
        part = pd.DataFrame({"first": g["frame"].min(), "last": g["frame"].max(),
                             "rows": g.size(), "errors": g["errors"].sum(),
                             "loss_errors": g["loss_errors"].sum()})
        self._parts.append(part)
        self._part_rows += len(part)
        if self._part_rows > 2 * len(self._per_conn) + 100_000:
            self._consolidate()
        if not len(bad):
            return
        ordered = bad.assign(text=text).sort_values(["stream_offset", "frame"])
        for c, e in ordered.groupby("conn", sort=False)["text"].first().items():
            self.first_error.setdefault(int(c), e)
        after = ordered["text"].map(lambda e: any(t in e for t in _AFTER_LOSS))
        cut = ordered["text"].str.contains("frame cut", regex=False)
        for name, mask in (("after", after), ("cut", cut)):
            firsts = ordered[mask.to_numpy(bool)].groupby(
                ["conn", ordered["direction"].astype(str)[mask.to_numpy(bool)]],
                sort=False)[["stream_offset", "frame"]].first()
            for (c, d), (off, f) in firsts.iterrows():
                key = (int(c), str(d), name)
                mark = (int(off), int(f))
                if key not in self.marks or mark < self.marks[key]:
                    self.marks[key] = mark


def derived_rows(connections: pd.DataFrame,
                 messages: pd.DataFrame | MessageDigest) -> list[Row]:
    """``lost_bytes``, ``mid_stream`` and ``dialect_failed`` rows, from the connections
    table (``conn``, ``handshake_seen``, ``lost_c2s``, ``lost_s2c``, ``dialect``) and the
    messages or their :class:`MessageDigest`."""
    if not len(connections):
        return []
    digest = messages if isinstance(messages, MessageDigest) else MessageDigest.of(messages)
    per = digest.per_conn
    # only the connections with something to say go through the Python loop below
    ids = connections["conn"].to_numpy(np.int64)
    stats = per.reindex(ids)
    all_errors = ((stats["rows"] > 0) & (stats["errors"] == stats["rows"])
                  & (stats["loss_errors"] < stats["rows"])).to_numpy(dtype=bool, na_value=False)
    odd = ((connections["lost_c2s"].to_numpy() != 0) | (connections["lost_s2c"].to_numpy() != 0)
           | ~connections["handshake_seen"].to_numpy(dtype=bool) | all_errors)
    rows: list[Row] = []
    for rec in connections[odd].itertuples(index=False):
        c = int(rec.conn)
        known = c in per.index
        for direction in ("c2s", "s2c"):
            lost = int(getattr(rec, f"lost_{direction}"))
            if lost:
                last = int(per.at[c, "last"]) if known else None
                rows.append(_lost_row(c, direction, lost, digest, last))
        if not bool(rec.handshake_seen):
            f = int(per.at[c, "first"]) if known else None
            where = f"its first message is at frame {f}" if f is not None else \
                "no message decoded"
            rows.append((f, "mid_stream", c, None,
                         f"connection {c}: began before the capture (no TCP handshake seen); "
                         f"{where}; a cut first frame is an error row"))
        if not known:
            continue
        n, errors, loss = (int(per.at[c, k]) for k in ("rows", "errors", "loss_errors"))
        if n and errors == n and loss < n:
            dialect = rec.dialect if isinstance(rec.dialect, str) else "its dialect"
            first = _short(digest.first_error.get(c, ""))
            rows.append((int(per.at[c, "first"]), "dialect_failed", c, None,
                         f"connection {c}: every frame failed to decode as {dialect}; try "
                         f"dialect='auto' ({n} error row{'s' * (n != 1)}, the first: "
                         f"{first})"))
    return rows


def _loss_error(error: str) -> bool:
    return any(text in error for text in _LOSS_ERRORS)


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _lost_row(conn: int, direction: str, lost: int, digest: MessageDigest,
              last: int | None) -> Row:
    """Where the loss is: the first error row after it, else the frame it cut, else only
    the connection's last frame."""
    head = (f"connection {conn}: {lost:,} byte{'s' * (lost != 1)} lost {_WAY[direction]} "
            f"({direction})")
    after = digest.marks.get((conn, direction, "after"))
    if after is not None:
        f = after[1]
        return f, "lost_bytes", conn, direction, f"{head}; frame {f} is the first after the loss"
    cut = digest.marks.get((conn, direction, "cut"))
    if cut is not None:
        f = cut[1]
        return (f, "lost_bytes", conn, direction,
                f"{head}; frame {f} holds the start of the frame the loss cut")
    if last is None:
        return None, "lost_bytes", conn, direction, f"{head}; no message locates it"
    return (last, "lost_bytes", conn, direction,
            f"{head}; frame {last} is the connection's last (no error row locates the loss)")


def warning_lines(problems: pd.DataFrame) -> list[str]:
    """One line per kind: ``warning: KIND: COUNT (first at frame F): DETAIL``, kinds in the
    order of their first frame."""
    if not len(problems):
        return []
    lines = []
    kinds = problems["kind"].astype(str)
    for kind in dict.fromkeys(kinds.tolist()):
        rows = problems[kinds == kind]
        frames = rows["frame"].dropna()
        where = f" (first at frame {int(frames.iloc[0])})" if len(frames) else ""
        detail = str(rows["detail"].iloc[0])
        more = f"; and {len(rows) - 1} more like it" if len(rows) > 1 else ""
        lines.append(f"warning: {kind}: {len(rows)}{where}: {detail}{more}")
    return lines


def print_warnings(problems: pd.DataFrame, file: TextIO | None = None) -> int:
    """Print :func:`warning_lines` (default: on stderr); return how many were printed."""
    lines = warning_lines(problems)
    out = sys.stderr if file is None else file
    for line in lines:
        print(line, file=out)
    if lines:
        out.flush()
    return len(lines)

"""Replay's plan: a recording read into connections of re-encoded messages, each reply
paired with its request and each data connection linked to its announcement."""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from camprotool.protocol import Dialect, LocalProtocolError, Message, encode
from camprotool.protocol.catalogue import ANSWERS as CATALOGUE_ANSWERS
from camprotool.protocol.catalogue import Direction, spec_for
from camprotool.protocol.linking import Announcement, announcing
from camprotool.protocol.messages import build_message
from camprotool.protocol.pairing import Pairing

if TYPE_CHECKING:
    from camprotool.capture.decode import DecodedCapture

log = logging.getLogger("camprotool.net.replay")

#: What each client request is answered with: the catalogue's (one table, not spelt here).
ANSWERS = CATALOGUE_ANSWERS
#: Upper bound on live-only DownLoadCaramer requests (a server that never ends).
MAX_EXTRA_DOWNLOADS = 10_000

# ====================================================================== the recording


@dataclass(eq=False)
class _Rec:
    """One recorded message, re-encoded for the replay's dialect."""

    pos: int  # row label in Capture.messages
    ts: int  # ns since the epoch
    conn: int
    channel: str
    direction: str
    message: Message
    data: bytes
    request: _Rec | None = None  # a reply: the request it answers
    reply: _Rec | None = None  # a request: its recorded answer

    @property
    def command(self) -> str:
        return self.message.command

    @property
    def is_push(self) -> bool:
        spec = self.message.spec
        return spec is not None and spec.direction is Direction.PUSH

    @property
    def is_reply(self) -> bool:
        return self.direction == "s2c" and not self.is_push


@dataclass(eq=False)
class _RecConn:
    conn: int
    channel: str
    main_conn: int | None
    start: int
    end: int | None
    server_port: int
    messages: list[_Rec] = field(default_factory=list)
    data_conns: list[_RecConn] = field(default_factory=list)
    announcement: _Rec | None = None  # data: the ReturnDataSocketPort that announced it
    data_for: dict[int, _RecConn] = field(default_factory=dict)  # main: announcement pos -> data

    @property
    def requests(self) -> list[_Rec]:
        return [m for m in self.messages if m.direction == "c2s"]


@dataclass
class _Plan:
    source: str
    dialect: Dialect
    mains: list[_RecConn]
    conns: dict[int, _RecConn]
    notes: list[str]


def _load(capture: Any) -> DecodedCapture:
    """The decoded rows of a recording: a ``Capture``'s (``DecodedCapture.messages`` has
    the values as decoded, real passwords included, even after ``Capture.messages``
    masked its rows' ``params``: replay needs them) or a capture file's."""
    from camprotool.analysis.capture import Capture
    from camprotool.capture.decode import decode_file

    if isinstance(capture, Capture):
        return capture.decoded
    if not isinstance(capture, str | os.PathLike):
        raise TypeError(f"expected a Capture or a capture path, not {type(capture).__name__}")
    return decode_file(capture, dialect="auto")


def _capture_dialect(names: Iterable[Any]) -> Dialect:
    """One dialect for the replayed connections: the framing they share, GBK if any is GBK.

    Connections with only ASCII text cannot tell UTF-8 from GBK, so one GBK
    connection decides for all of them (a server speaks one dialect).
    """
    found = []
    for name in names:
        if isinstance(name, str) and name and name != "auto":
            with contextlib.suppress(LocalProtocolError):
                found.append(Dialect.parse(name))
    if not found:
        return Dialect()
    framings = sorted({d.framing for d in found})
    if len(framings) > 1:
        raise ValueError(f"the replayed connections use different framings "
                         f"({', '.join(framings)}): pass dialect= to choose one")
    gbk = any(d.encoding == "gbk" for d in found)
    return Dialect.parse(framings[0] + (":gbk" if gbk else ""))


def _plan(capture: Any, conns: int | Iterable[int] | None, dialect: str | Dialect | None
          ) -> _Plan:
    decoded = _load(capture)
    notes: list[str] = []
    records: dict[int, _RecConn] = {}
    dialects: dict[int, Any] = {}
    for rec in decoded.connections:
        records[rec.conn] = _RecConn(
            conn=rec.conn, channel=rec.channel, main_conn=rec.main_conn,
            start=rec.start_ns or 0, end=rec.end_ns, server_port=rec.server_port)
        dialects[rec.conn] = rec.dialect
    mains = [c for c in records.values() if c.channel == "main"]
    if conns is None:
        chosen = {c.conn for c in mains}
    else:
        wanted = [conns] if isinstance(conns, int) else [int(c) for c in conns]
        known = ", ".join(str(c.conn) for c in mains) or "none"
        for c in wanted:
            if c not in records or records[c].channel != "main":
                raise ValueError(f"no main connection {c} in the capture (main connections: "
                                 f"{known})")
        chosen = set(wanted)
    if not chosen:
        raise ValueError(f"{decoded.source}: the capture has no main connection to replay")
    selected = {n: records[n] for n in chosen}
    for rc in records.values():
        if rc.channel == "data" and rc.main_conn in chosen:
            selected[rc.conn] = rc
        elif rc.channel == "data" and rc.main_conn is None:
            notes.append(f"data connection {rc.conn}: no recorded ReturnDataSocketPort "
                         "announced it: not replayed")
        elif rc.channel not in ("main", "data"):
            notes.append(f"connection {rc.conn}: channel {rc.channel}: not replayed")
    live_dialect = (Dialect.parse(dialect) if dialect is not None
                    else _capture_dialect(dialects[n] for n in selected))

    # The decoder's rows in time order (pos: the row's label in Capture.messages).
    rows = decoded.messages
    columns = [rows[name].to_pylist() for name in ("conn", "direction", "command", "params",
                                                  "error", "ts_ns")]
    for pos, (conn, direction, command, params, error, ts) in enumerate(zip(*columns,
                                                                            strict=True)):
        found = selected.get(conn)
        if found is None:
            continue
        rc = found
        command = command or ""
        params = params or ""
        spec = spec_for(command)
        if spec is None and error is not None:
            notes.append(f"connection {conn}: unreadable frame not replayed ({error})")
            continue
        message = build_message(spec, command, params, error=error)
        try:
            data = encode(spec if spec is not None else command, params, live_dialect)
        except LocalProtocolError as exc:
            notes.append(f"connection {conn}: {command} not replayed: {exc}")
            continue
        rc.messages.append(_Rec(pos, ts, conn, rc.channel, direction, message, data))
    for rc in selected.values():
        _pair(rc)
    _link_data(selected, notes)
    mains_sel = sorted((rc for rc in selected.values() if rc.channel == "main"),
                       key=lambda c: (c.start, c.conn))
    plan_conns = {n: rc for n, rc in selected.items()
                  if rc.channel == "main" or rc.announcement is not None}
    return _Plan(decoded.source, live_dialect, mains_sel, plan_conns, notes)


def _pair(rc: _RecConn) -> None:
    """Pair each recorded reply with its request, by the one pairing rule
    (:class:`~camprotool.protocol.pairing.Pairing`: the catalogue's answers, in order)."""
    pairing = Pairing()
    by_pos = {m.pos: m for m in rc.messages}
    for m in rc.messages:
        if m.direction == "c2s":
            pairing.request(m.pos, m.message)
        elif m.is_reply:
            paired = pairing.answer(m.message)
            if paired.request is not None:
                req = by_pos[paired.request.index]
                req.reply, m.request = m, req


def _link_data(conns: dict[int, _RecConn], notes: list[str]) -> None:
    """Find, for each data connection, the ReturnDataSocketPort that announced its port.

    The capture linked it to its main connection; the announcement is the one the
    one linking rule names (:func:`camprotool.protocol.linking.announcing`: the
    latest usable one naming the port when it opened) among that main connection's
    announcements no earlier data connection took: a live port opens one connection,
    so each is replayed once. One just after the opening stands in when clocks
    disagree."""
    used: set[int] = set()
    for rc in sorted(conns.values(), key=lambda c: (c.start, c.conn)):
        if rc.channel != "data" or rc.main_conn is None:
            continue
        main = conns.get(rc.main_conn)
        if main is None:
            continue
        opened = rc.start or (rc.messages[0].ts if rc.messages else 0)
        ports = [m for m in main.messages if m.command == "ReturnDataSocketPort"
                 and m.pos not in used]
        by_pos = {m.pos: m for m in ports}
        found = announcing(rc.server_port, opened, [
            Announcement(getattr(m.message, "port", None), m.pos, m.ts, main.conn)
            for m in ports])
        ann = by_pos[found.message] if found is not None else next(
            (m for m in ports if m.ts > opened
             and getattr(m.message, "port", None) == rc.server_port), None)
        if ann is None:
            notes.append(f"data connection {rc.conn}: no ReturnDataSocketPort {rc.server_port} "
                         f"on main connection {main.conn}: not replayed")
            continue
        used.add(ann.pos)
        rc.announcement = ann
        main.data_conns.append(rc)
        main.data_for[ann.pos] = rc


def _check_speed(speed: float) -> float:
    speed = float(speed)
    if not (speed >= 0 and math.isfinite(speed)):
        raise ValueError(f"speed must be a finite number >= 0 (0: as fast as possible), "
                         f"got {speed}")
    return speed



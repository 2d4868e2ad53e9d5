"""Replay a recorded conversation: client playback and server playback.

The question replay answers is "does this server still answer as the recorded
one did?" (client playback), and "what does this client do when the server
answers as recorded?" (server playback). Recordings are pcapng/pcap files, or
a :class:`~camprotool.analysis.capture.Capture` already read.

Client playback (:func:`replay_client`), like mitmproxy's ``clientplayback``
------------------------------------------------------------------------------

Every recorded *main* connection becomes a new connection to the target, and
its client messages are sent again, in the recorded order:

* One timeline holds, across the replayed connections, each connection's
  opening, each client message, each recorded server reply and each close,
  ordered by recorded time. The driver walks it once, so a message is sent
  only after every reply that was recorded before it has arrived live (or
  been given up as missing). That keeps the causal order between connections
  too: a download recorded after another connection's upload is replayed
  after the live upload was answered.
* Delays: the gap between a step and the previous one in the recording is
  kept, divided by ``speed``, counted from when the previous step happened
  *live* (for a reply: when the live reply arrived). So a client's "think
  time" is kept even when the live server is slower or faster; the server's
  own latency is not imitated. ``speed=0`` sends as fast as the answers come.
* Answers (PROTOCOL.md s.2): Login -> LoginOk/LoginError, CreatDataSocket ->
  ReturnDataSocketPort/LoginError, CheckCaramerOnlineStatus ->
  ReturnCaramerOnlineStatus/LoginError, UploadCaramer -> UploadSucess/Fail,
  DownLoadCaramer -> DownloadSucess/Fail. A live reply is paired with the
  oldest unanswered request it can answer on its connection; one that arrives
  after ``timeout`` is no longer paired (it shows as ``extra``).
* Data connections open to the port the *live* server just returned, from the
  main connection's local address (servers check it). No live port (an empty
  answer, a LoginError, no answer) means the data connection is not opened
  and its recorded replies are ``missing``, with the reason.
* Downloads echo the live server's ``current`` (the protocol's rule), not the
  recorded one, and stop when the live server says current == total or
  answers DownloadFail; recorded requests past that are not sent. If the
  recorded client completed its download but the live server has more
  cameras, replay keeps asking, as the client would: those replies are
  ``extra``.

The comparison has one row per recorded server message and per unexpected
live one: ``same``, ``different`` (``detail`` names the fields),
``missing`` (``detail`` says why) or ``extra``. Volatile fields are not
compared: ``LoginOk``'s last login time and IP by default (``volatile=``),
and a ``ReturnDataSocketPort``'s port only for presence (a port vs an empty
answer). Pushes (``kind == "push"``) come from events outside the
conversation (a camera going offline), which replay cannot cause, so they
are compared (as a multiset per connection) but left out of
:attr:`ReplayResult.ok`.

Server playback (:class:`ReplayServer`), like mitmproxy's ``serverplayback``
------------------------------------------------------------------------------

Each accepted main connection is given one recorded main connection, chosen
at its first request (the one whose requests match best; unused ones first;
``reuse=False`` serves each recording once). A request is answered with the
recorded reply of the first unused recorded request with the same command and
parameters, else the same command; a request with no such recorded request
is answered with nothing and reported in :attr:`ReplayServer.unanswered`
(heartbeats excepted). Pushes are sent at their recorded times relative to
the first request (divided by ``speed``). A replayed ``ReturnDataSocketPort``
is rewritten to a one-shot listener of the server's own (one connection, from
the main connection's address, within ``data_port_timeout``) that plays back
the data connection the recorded port announced.

Both record to pcapng with ``record=`` (through :mod:`camprotool.net.recording`)
and keep a live ``messages`` table with the columns of ``Capture.messages``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from camprotool.net.addresses import format_endpoint, parse_endpoint
from camprotool.net.listening import (
    DEFAULT_MAX_PER_ADDRESS,
    PEER_GONE,
    ListeningService,
    check_max_per_address,
)
from camprotool.net.loop import LoopThread
from camprotool.net.recording import MessageLog
from camprotool.net.stream import MessageStream
from camprotool.net.table import mask_params
from camprotool.protocol import Dialect, LocalProtocolError, Message, encode
from camprotool.protocol.catalogue import Direction, Kind, Layout, spec_for
from camprotool.protocol.messages import build_message

if TYPE_CHECKING:
    import pandas as pd

    from camprotool.analysis.capture import Capture

log = logging.getLogger("camprotool.net.replay")

__all__ = [
    "ANSWERS",
    "DEFAULT_VOLATILE",
    "MATCHES",
    "ReplayResult",
    "ReplayServer",
    "compare_replies",
    "replay_client",
    "replay_client_async",
]

#: What each client request is answered with (PROTOCOL.md s.2); others get no answer.
ANSWERS: dict[str, tuple[str, ...]] = {
    "Login": ("LoginOk", "LoginError"),
    "CreatDataSocket": ("ReturnDataSocketPort", "LoginError"),
    "CheckCaramerOnlineStatus": ("ReturnCaramerOnlineStatus", "LoginError"),
    "UploadCaramer": ("UploadSucess", "UploadFail"),
    "DownLoadCaramer": ("DownloadSucess", "DownloadFail"),
}
#: Fields that legitimately differ between two runs and are not compared.
DEFAULT_VOLATILE: dict[str, tuple[str, ...]] = {
    "LoginOk": ("last_login_time", "last_login_ip"),
}
#: The values of the comparison's ``match`` column.
MATCHES = ("same", "different", "missing", "extra")
#: Upper bound on live-only DownLoadCaramer requests (a server that never ends).
MAX_EXTRA_DOWNLOADS = 10_000
#: Rows :attr:`ReplayServer.unanswered` keeps (the newest); older ones are counted only.
MAX_UNANSWERED = 10_000
#: Seconds between two "no recorded answer" warnings (the ones between go to debug).
UNANSWERED_WARNING_INTERVAL = 10.0

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


def _load(capture: Any) -> Capture:
    from camprotool.analysis.capture import Capture, read_capture

    if isinstance(capture, Capture):
        # Replay needs the real passwords: re-wrap the decoded capture, unmasked.
        return capture if capture.reveal_passwords else Capture(capture.decoded,
                                                               reveal_passwords=True)
    if not isinstance(capture, str | os.PathLike):
        raise TypeError(f"expected a Capture or a capture path, not {type(capture).__name__}")
    return read_capture(capture, dialect="auto", reveal_passwords=True)


def _ns(value: Any) -> int | None:
    import pandas as pd

    return None if value is None or pd.isna(value) else int(pd.Timestamp(value).value)


def _opt_int(value: Any) -> int | None:
    import pandas as pd

    return None if value is None or pd.isna(value) else int(value)


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
    cap = _load(capture)
    cx, msgs = cap.connections, cap.messages
    notes: list[str] = []
    records: dict[int, _RecConn] = {}
    dialects: dict[int, Any] = {}
    for row in cx.itertuples(index=False):
        start = _ns(row.start)
        records[int(row.conn)] = _RecConn(
            conn=int(row.conn), channel=str(row.channel), main_conn=_opt_int(row.main_conn),
            start=start if start is not None else 0, end=_ns(row.end),
            server_port=int(row.server_port))
        dialects[int(row.conn)] = row.dialect
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
        raise ValueError(f"{cap.source}: the capture has no main connection to replay")
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

    columns = [msgs[name].tolist() for name in ("conn", "direction", "command", "params",
                                                "error")]
    stamps = msgs["ts"].astype("int64").tolist()
    for pos, (conn, direction, command, params, error) in enumerate(zip(*columns,
                                                                        strict=True)):
        rc = selected.get(int(conn))
        if rc is None:
            continue
        command = str(command)
        params = "" if params is None or params != params else str(params)
        error = None if error is None or error != error else str(error)
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
        rc.messages.append(_Rec(pos, stamps[pos], int(conn), rc.channel, str(direction),
                                message, data))
    for rc in selected.values():
        _pair(rc)
    _link_data(selected, notes)
    mains_sel = sorted((rc for rc in selected.values() if rc.channel == "main"),
                       key=lambda c: (c.start, c.conn))
    plan_conns = {n: rc for n, rc in selected.items()
                  if rc.channel == "main" or rc.announcement is not None}
    return _Plan(cap.source, live_dialect, mains_sel, plan_conns, notes)


def _pair(rc: _RecConn) -> None:
    """Pair each recorded reply with the oldest unanswered request it answers."""
    outstanding: list[_Rec] = []
    for m in rc.messages:
        if m.direction == "c2s":
            if m.command in ANSWERS:
                outstanding.append(m)
        elif m.is_reply:
            for i, req in enumerate(outstanding):
                if m.command in ANSWERS[req.command]:
                    del outstanding[i]
                    req.reply, m.request = m, req
                    break


def _link_data(conns: dict[int, _RecConn], notes: list[str]) -> None:
    """Find, for each data connection, the ReturnDataSocketPort that announced its port."""
    used: set[int] = set()
    for rc in sorted(conns.values(), key=lambda c: (c.start, c.conn)):
        if rc.channel != "data" or rc.main_conn is None:
            continue
        main = conns.get(rc.main_conn)
        if main is None:
            continue
        opened = rc.start or (rc.messages[0].ts if rc.messages else 0)
        candidates = [m for m in main.messages
                      if m.command == "ReturnDataSocketPort" and m.pos not in used
                      and getattr(m.message, "port", None) == rc.server_port]
        before = [m for m in candidates if m.ts <= opened]
        ann = (before or candidates or [None])[-1 if before else 0]
        if ann is None:
            notes.append(f"data connection {rc.conn}: no ReturnDataSocketPort {rc.server_port} "
                         f"on main connection {main.conn}: not replayed")
            continue
        used.add(ann.pos)
        rc.announcement = ann
        main.data_conns.append(rc)
        main.data_for[ann.pos] = rc


# ====================================================================== comparing


def _fmt(kind: Kind | None, value: Any) -> str:
    if value is None and kind is Kind.STATUS:
        return "null"
    if value is None or value == "":
        return "empty"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def compare_replies(recorded: Message, live: Message,
                    volatile: Mapping[str, Iterable[str]] | None = None,
                    reveal_passwords: bool = False) -> tuple[str, str]:
    """``("same" | "different", detail)`` for a recorded server message and a live one.

    ``detail`` names each differing field (``camera_count: 3 -> 1``); for
    ``same`` it lists the volatile fields that differed (``ignored: port``).
    Passwords are named, not shown, unless ``reveal_passwords``.
    """
    volatile = DEFAULT_VOLATILE if volatile is None else volatile
    if recorded.command != live.command:
        shown = live.params if reveal_passwords else mask_params(live)
        return "different", f"command {recorded.command} -> {live.command} {shown}".rstrip()
    spec = recorded.spec
    if spec is None or recorded.error or live.error:
        if recorded.params == live.params:
            return "same", ""
        a = recorded.params if reveal_passwords else mask_params(recorded)
        b = live.params if reveal_passwords else mask_params(live)
        return "different", f"params {a!r} -> {b!r}"
    ignored = set(volatile.get(spec.name, ()))
    diffs: list[str] = []
    skipped: list[str] = []
    for f in spec.fields:
        a, b = getattr(recorded, f.name), getattr(live, f.name)
        if a == b:
            continue
        if f.name in ignored:
            skipped.append(f.name)
        elif f.kind is Kind.PORT and (a is None) == (b is None):
            skipped.append(f.name)  # a port number is the server's choice; presence is not
        elif f.kind is Kind.PORT:
            diffs.append(f"{f.name}: {_fmt(f.kind, a)} -> {_fmt(f.kind, b)}"
                         + (" (no free data port)" if b is None else ""))
        elif f.kind is Kind.SECRET and not reveal_passwords:
            diffs.append(f"{f.name} differs")
        elif spec.layout is Layout.STATUS_LIST:
            diffs.extend(_status_diffs(a or (), b or ()))
        else:
            diffs.append(f"{f.name}: {_fmt(f.kind, a)} -> {_fmt(f.kind, b)}")
    if diffs:
        return "different", "; ".join(diffs)
    return "same", ("ignored: " + ", ".join(skipped)) if skipped else ""


def _status_diffs(a: Iterable[tuple[str, Any]], b: Iterable[tuple[str, Any]]) -> list[str]:
    left, right = dict(a), dict(b)
    out = []
    for cid in dict.fromkeys([*left, *right]):
        if cid not in right:
            out.append(f"{cid}: not answered")
        elif cid not in left:
            out.append(f"{cid}: {_fmt(Kind.STATUS, right[cid])} (not in the recording)")
        elif left[cid] != right[cid]:
            out.append(f"{cid}: {_fmt(Kind.STATUS, left[cid])} -> "
                       f"{_fmt(Kind.STATUS, right[cid])}")
    return out


# ====================================================================== client playback


@dataclass
class ReplayResult:
    """What :func:`replay_client` saw.

    ``messages``: every live message, sent and received (``Capture.messages``
    columns). ``comparison``: one row per recorded server message and per
    unexpected live one (see the module docs). ``conn_map``: recorded
    connection id -> live connection id (in ``messages``). ``replayed``: the
    recorded main connections replayed. ``notes``: what could not be replayed
    and why. ``elapsed``: seconds the replay took.
    """

    messages: pd.DataFrame
    comparison: pd.DataFrame
    conn_map: dict[int, int]
    replayed: list[int]
    notes: list[str]
    elapsed: float
    target: tuple[str, int]
    source: str = ""

    @property
    def replies(self) -> pd.DataFrame:
        """The comparison rows for replies (pushes left out)."""
        return self.comparison[self.comparison["kind"] == "reply"]

    @property
    def ok(self) -> bool:
        """Whether every recorded reply came back the same (and nothing extra came)."""
        return bool((self.replies["match"] == "same").all())

    @property
    def counts(self) -> dict[str, int]:
        """Reply rows per match value."""
        values = self.replies["match"].astype(str).value_counts()
        return {m: int(values.get(m, 0)) for m in MATCHES}

    def summary(self) -> str:
        counts = self.counts
        pushes = self.comparison[self.comparison["kind"] == "push"]["match"].astype(str)
        text = (f"{sum(counts.values())} replies: "
                + ", ".join(f"{n} {m}" for m, n in counts.items()))
        if len(pushes):
            pc = pushes.value_counts()
            text += f"; {len(pushes)} pushes: " + ", ".join(
                f"{int(pc[m])} {m}" for m in MATCHES if m in pc)
        return text

    def __repr__(self) -> str:
        return (f"<ReplayResult {self.source or 'capture'} -> {format_endpoint(self.target)}: "
                f"{self.summary()}>")


@dataclass(eq=False)
class _Pending:
    rec: _Rec | None  # None: a request only the replay sends (a download past the recording)
    command: str
    expects: tuple[str, ...]
    future: asyncio.Future
    sent: float
    params: str | None = None  # as shown in the comparison (passwords masked)


@dataclass
class _Outcome:
    live: Message | None = None
    ts: int | None = None
    at: float | None = None
    why: str = ""


class _LiveConn:
    def __init__(self, rec: _RecConn) -> None:
        self.rec = rec
        self.stream: MessageStream | None = None
        self.reader: asyncio.Task | None = None
        self.dead: str | None = None  # why nothing more is sent
        self.closing = False
        self.outstanding: list[_Pending] = []
        self.by_request: dict[int, _Pending] = {}
        self.sent: list[_Pending] = []
        self.skipped: dict[int, str] = {}
        self.unsolicited: list[tuple[int, Message]] = []
        self.pushes: list[tuple[int, Message]] = []
        self.download_current: int | None = None
        self.download_end: str | None = None
        self.received = 0
        self.timeouts = 0


@dataclass
class _Step:
    ts: float
    phase: int
    seq: int
    kind: str
    conn: _RecConn
    rec: _Rec | None = None


class _ClientReplay:
    def __init__(self, plan: _Plan, target: tuple[str, int], *, speed: float, timeout: float,
                 connect_timeout: float, record: Any, reveal_passwords: bool,
                 volatile: Mapping[str, Iterable[str]] | None) -> None:
        self.plan = plan
        self.target = target
        self.speed = speed
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.reveal = reveal_passwords
        self.volatile = volatile
        self.log = MessageLog(plan.dialect, record=record, reveal_passwords=reveal_passwords)
        self.live = {n: _LiveConn(rc) for n, rc in plan.conns.items()}
        self.notes = list(plan.notes)
        self.rows: list[dict[str, Any]] = []
        self.resolved: dict[int, _Outcome] = {}
        self.connected_once = False
        self.last_download_reply = {
            rc.conn: max((m.pos for m in rc.messages
                          if m.is_reply and m.request is not None
                          and m.request.command == "DownLoadCaramer"), default=-1)
            for rc in plan.conns.values()}

    # ---------------------------------------------------------------- timeline
    def timeline(self) -> list[_Step]:
        steps: list[_Step] = []
        for rc in self.plan.conns.values():
            first = rc.messages[0].ts if rc.messages else rc.start
            opened = min(rc.start or first, first)
            if rc.announcement is not None:  # never before the port was announced
                opened = max(opened, rc.announcement.ts)
            steps.append(_Step(opened, 0, -1, "open", rc))
            for m in rc.messages:
                if m.direction == "c2s":
                    steps.append(_Step(m.ts, 1, m.pos, "send", rc, m))
                elif m.is_reply and m.request is not None:
                    steps.append(_Step(m.ts, 1, m.pos, "expect", rc, m))
            last = rc.messages[-1].ts if rc.messages else opened
            end = rc.end if rc.end is not None and rc.end >= last else math.inf
            steps.append(_Step(end, 2, rc.conn, "close", rc))
        steps.sort(key=lambda s: (s.ts, s.phase, s.seq))
        return steps

    async def run(self) -> ReplayResult:
        loop = asyncio.get_running_loop()
        began = loop.time()
        prev_ts: float | None = None
        prev_at = began
        try:
            for step in self.timeline():
                finite = math.isfinite(step.ts)
                if (step.kind != "expect" and self.speed > 0 and finite
                        and prev_ts is not None):
                    delay = (step.ts - prev_ts) / 1e9 / self.speed - (loop.time() - prev_at)
                    if delay > 0:
                        await asyncio.sleep(delay)
                at = await self.do(step)
                if finite:
                    prev_ts, prev_at = step.ts, max(prev_at, at)
        finally:
            await self.close_all()
            self.log.close()
        elapsed = loop.time() - began
        return self.result(elapsed)

    async def do(self, step: _Step) -> float:
        loop = asyncio.get_running_loop()
        live = self.live[step.conn.conn]
        if step.kind == "open":
            if step.conn.channel == "main":
                await self.open_main(live)
            else:
                await self.open_data(live)
        elif step.kind == "send":
            assert step.rec is not None
            await self.send(live, step.rec)
        elif step.kind == "expect":
            assert step.rec is not None
            outcome = await self.resolve(step.rec)
            self.add_reply_row(step.rec, outcome)
            if step.rec.pos == self.last_download_reply.get(live.rec.conn):
                await self.continue_download(live, step.rec, outcome)
            return outcome.at if outcome.at is not None else loop.time()
        else:
            await self.close(live)
        return loop.time()

    # ---------------------------------------------------------------- connections
    async def connect(self, port: int, local: tuple[str, int] | None) -> tuple[
            asyncio.StreamReader, asyncio.StreamWriter]:
        where = format_endpoint((self.target[0], port))
        try:
            async with asyncio.timeout(self.connect_timeout):
                return await asyncio.open_connection(self.target[0], port, local_addr=local)
        except TimeoutError:
            raise TimeoutError(f"connecting to {where} timed out") from None
        except ConnectionRefusedError:
            raise ConnectionRefusedError(f"cannot connect to {where}: connection refused"
                                         ) from None
        except OSError as exc:
            raise OSError(f"cannot connect to {where}: {exc.strerror or exc}") from None

    def attach(self, live: _LiveConn, reader: asyncio.StreamReader,
               writer: asyncio.StreamWriter) -> None:
        live.stream = MessageStream(reader, writer, self.log, live.rec.channel, "client")
        live.reader = asyncio.create_task(self.read(live))

    async def open_main(self, live: _LiveConn) -> None:
        try:
            reader, writer = await self.connect(self.target[1], None)
        except OSError as exc:
            if not self.connected_once:
                raise
            live.dead = str(exc)
            self.notes.append(f"main connection {live.rec.conn}: {exc}")
            return
        self.connected_once = True
        self.attach(live, reader, writer)

    async def open_data(self, live: _LiveConn) -> None:
        rc = live.rec
        main = self.live[rc.main_conn] if rc.main_conn is not None else None
        assert rc.announcement is not None and main is not None
        outcome = await self.resolve(rc.announcement)
        reply = outcome.live
        if reply is None:
            live.dead = f"no live data port ({outcome.why})"
        elif reply.command != "ReturnDataSocketPort":
            live.dead = f"no live data port (the server answered {reply.command} {reply.params})"
        elif getattr(reply, "port", None) is None:
            live.dead = "no live data port (the live ReturnDataSocketPort was empty)"
        if live.dead is None and (main.stream is None or main.dead):
            live.dead = f"the main connection is gone ({main.dead})"
        if live.dead is not None:
            self.notes.append(f"data connection {rc.conn}: not opened: {live.dead}")
            return
        assert main.stream is not None
        local = (main.stream.sockname[0], 0)
        try:
            reader, writer = await self.connect(reply.port, local)  # type: ignore[union-attr]
        except OSError as exc:
            live.dead = str(exc)
            self.notes.append(f"data connection {rc.conn}: {exc}")
            return
        self.attach(live, reader, writer)

    async def close(self, live: _LiveConn) -> None:
        live.closing = True
        if live.stream is not None:
            await live.stream.close()
        if live.reader is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                async with asyncio.timeout(1):
                    await asyncio.gather(live.reader, return_exceptions=True)
            live.reader.cancel()
            await asyncio.gather(live.reader, return_exceptions=True)
        live.dead = live.dead or "closed as recorded"

    async def close_all(self) -> None:
        order = sorted(self.live.values(), key=lambda lc: lc.rec.channel != "data")
        for live in order:
            if not live.closing:
                await self.close(live)

    # ---------------------------------------------------------------- live messages
    async def read(self, live: _LiveConn) -> None:
        stream = live.stream
        assert stream is not None
        loop = asyncio.get_running_loop()
        try:
            while True:
                msgs = await stream.receive()
                if msgs is None:
                    break
                ts, at = time.time_ns(), loop.time()
                for msg in msgs:
                    self.on_live(live, msg, ts, at)
        except (ConnectionError, OSError) as exc:
            log.debug("replay: %r ended: %s", stream, exc)
        finally:
            if not live.closing:
                live.dead = live.dead or "the server closed the connection"
            for p in live.outstanding:
                if not p.future.done():
                    p.future.set_result(None)
            live.outstanding.clear()

    def on_live(self, live: _LiveConn, msg: Message, ts: int, at: float) -> None:
        live.received += 1
        spec = msg.spec
        if spec is not None and spec.direction is Direction.PUSH:
            live.pushes.append((ts, msg))
            return
        for i, p in enumerate(live.outstanding):
            if msg.command in p.expects:
                del live.outstanding[i]
                if p.command == "DownLoadCaramer":
                    self.track_download(live, msg)
                if not p.future.done():
                    p.future.set_result((ts, at, msg))
                return
        live.unsolicited.append((ts, msg))

    def track_download(self, live: _LiveConn, msg: Message) -> None:
        if msg.command == "DownloadFail":
            live.download_end = f"the live server answered DownloadFail {msg.params}"
            return
        current, total = getattr(msg, "current", None), getattr(msg, "total", None)
        if msg.error or current is None or total is None:
            live.download_end = f"unreadable live DownloadSucess {self.shown(msg)!r}"
            return
        live.download_current = current
        if current >= total:
            live.download_end = f"the live download ended at {current}/{total}"

    # ---------------------------------------------------------------- sending
    async def send(self, live: _LiveConn, rec: _Rec) -> _Pending | None:
        if live.stream is None or live.dead:
            live.skipped[rec.pos] = live.dead or "the connection was not opened"
            return None
        data, shown = rec.data, self.shown(rec.message)
        if rec.command == "DownLoadCaramer":
            if live.download_end:
                live.skipped[rec.pos] = live.download_end
                return None
            current = live.download_current  # echo the live server's current
            if current is not None and getattr(rec.message, "downloaded", None) != current:
                data = encode("DownLoadCaramer", {"downloaded": current}, self.plan.dialect)
                shown = str(current)
        return await self.write(live, rec, rec.command, data, shown)

    async def write(self, live: _LiveConn, rec: _Rec | None, command: str, data: bytes,
                    shown: str | None) -> _Pending | None:
        loop = asyncio.get_running_loop()
        assert live.stream is not None
        pending = None
        expects = ANSWERS.get(command, ())
        if expects:  # registered before writing: the answer may beat us back
            pending = _Pending(rec, command, expects, loop.create_future(), loop.time(), shown)
            live.outstanding.append(pending)
            live.sent.append(pending)
            if rec is not None:
                live.by_request[rec.pos] = pending
        try:
            live.stream.send_bytes(data)
            await live.stream.drain(self.timeout)
        except (ConnectionError, OSError) as exc:  # TimeoutError included
            live.dead = f"sending failed: {exc or type(exc).__name__}"
            if pending is not None and not pending.future.done():
                pending.future.set_result(None)
        return pending

    async def wait(self, live: _LiveConn, pending: _Pending) -> _Outcome:
        loop = asyncio.get_running_loop()
        remaining = pending.sent + self.timeout - loop.time()
        try:
            async with asyncio.timeout(max(0.0, remaining)):
                got = await asyncio.shield(pending.future)
        except TimeoutError:
            with contextlib.suppress(ValueError):
                live.outstanding.remove(pending)
            live.timeouts += 1
            return _Outcome(why=f"no answer within {self.timeout:g} s")
        if got is None:
            return _Outcome(why=live.dead or "the connection ended before the answer")
        ts, at, msg = got
        return _Outcome(msg, ts, at)

    async def resolve(self, reply: _Rec) -> _Outcome:
        """The live counterpart of a recorded reply (waited for once, then remembered)."""
        done = self.resolved.get(reply.pos)
        if done is not None:
            return done
        req = reply.request
        assert req is not None
        live = self.live[reply.conn]
        pending = live.by_request.get(req.pos)
        if pending is None:
            why = live.skipped.get(req.pos) or live.dead or "the request was not sent"
            outcome = _Outcome(why=f"not sent: {why}")
        else:
            outcome = await self.wait(live, pending)
        self.resolved[reply.pos] = outcome
        return outcome

    async def continue_download(self, live: _LiveConn, last: _Rec, outcome: _Outcome) -> None:
        """The recorded client finished its download; the live server has more: keep asking."""
        recorded = last.message
        complete = (recorded.command == "DownloadSucess" and not recorded.error
                    and getattr(recorded, "current", None) is not None
                    and recorded.current >= recorded.total)  # type: ignore[attr-defined]
        if not complete or outcome.live is None:
            return
        for _ in range(MAX_EXTRA_DOWNLOADS):
            if live.download_end or live.dead or live.download_current is None:
                return
            asked = live.download_current
            data = encode("DownLoadCaramer", {"downloaded": asked}, self.plan.dialect)
            pending = await self.write(live, None, "DownLoadCaramer", data, str(asked))
            if pending is None:
                return
            got = await self.wait(live, pending)
            if got.live is None:
                self.notes.append(f"data connection {live.rec.conn}: download beyond the "
                                  f"recording stopped: {got.why}")
                return
            self.rows.append(self.row(live.rec, "reply", "extra", "beyond the recording",
                                      request=("DownLoadCaramer", str(asked)),
                                      live=(got.ts, got.live), order=last.ts))
        self.notes.append(f"data connection {live.rec.conn}: gave up after "
                          f"{MAX_EXTRA_DOWNLOADS} downloads beyond the recording")

    # ---------------------------------------------------------------- the comparison
    def shown(self, msg: Message | None) -> str | None:
        if msg is None:
            return None
        return msg.params if self.reveal else mask_params(msg)

    def row(self, rc: _RecConn, kind: str, match: str, detail: str, *,
            request: tuple[str, str | None] | None = None, recorded: _Rec | None = None,
            live: tuple[int | None, Message] | None = None, order: float = math.inf
            ) -> dict[str, Any]:
        stream = self.live[rc.conn].stream
        return {
            "conn": rc.conn, "channel": rc.channel, "kind": kind,
            "live_conn": stream.id if stream is not None else None,
            "request": request[0] if request else None,
            "request_params": request[1] if request else None,
            "recorded_ts": recorded.ts if recorded else None,
            "recorded_command": recorded.command if recorded else None,
            "recorded_params": self.shown(recorded.message) if recorded else None,
            "live_ts": live[0] if live else None,
            "live_command": live[1].command if live else None,
            "live_params": self.shown(live[1]) if live else None,
            "match": match, "detail": detail,
            "_order": recorded.ts if recorded else order,
        }

    def add_reply_row(self, rec: _Rec, outcome: _Outcome) -> None:
        req = rec.request
        request = (req.command, self.shown(req.message)) if req is not None else None
        pending = self.live[rec.conn].by_request.get(req.pos) if req is not None else None
        if pending is not None:
            request = (pending.command, pending.params)  # as sent (a download's live current)
        if outcome.live is None:
            self.rows.append(self.row(self.plan.conns[rec.conn], "reply", "missing",
                                      outcome.why, request=request, recorded=rec))
            return
        match, detail = compare_replies(rec.message, outcome.live, self.volatile, self.reveal)
        self.rows.append(self.row(self.plan.conns[rec.conn], "reply", match, detail,
                                  request=request, recorded=rec,
                                  live=(outcome.ts, outcome.live)))

    def extras(self) -> None:
        for live in self.live.values():
            rc = live.rec
            for p in live.sent:
                if p.rec is None or p.rec.reply is not None or not p.future.done():
                    continue
                got = p.future.result()
                if got is not None:
                    self.rows.append(self.row(rc, "reply", "extra", "no recorded answer",
                                              request=(p.command, p.params),
                                              live=(got[0], got[2]), order=p.rec.ts))
            recorded = [m for m in rc.messages if m.is_reply and m.request is None]
            for i, rec in enumerate(recorded):
                if i < len(live.unsolicited):
                    ts, msg = live.unsolicited[i]
                    match, detail = compare_replies(rec.message, msg, self.volatile,
                                                    self.reveal)
                    self.rows.append(self.row(rc, "reply", match, detail, recorded=rec,
                                              live=(ts, msg)))
                else:
                    self.rows.append(self.row(rc, "reply", "missing",
                                              "no unsolicited live answer", recorded=rec))
            for ts, msg in live.unsolicited[len(recorded):]:
                self.rows.append(self.row(rc, "reply", "extra", "answers no request",
                                          live=(ts, msg)))
            self.push_rows(live)

    def push_rows(self, live: _LiveConn) -> None:
        rc = live.rec
        recorded = [m for m in rc.messages if m.is_push]
        pending = list(live.pushes)
        unmatched: list[_Rec] = []
        results: dict[int, dict[str, Any]] = {}
        for rec in recorded:  # exact matches first
            hit = next((i for i, (_, msg) in enumerate(pending)
                        if msg.command == rec.command and msg.params == rec.message.params),
                       None)
            if hit is None:
                unmatched.append(rec)
                continue
            ts, msg = pending.pop(hit)
            results[rec.pos] = self.row(rc, "push", "same", "", recorded=rec, live=(ts, msg))
        for rec in unmatched:  # then the same camera's push with another value
            cid = getattr(rec.message, "camera_id", None)
            hit = next((i for i, (_, msg) in enumerate(pending)
                        if msg.command == rec.command
                        and getattr(msg, "camera_id", None) == cid), None)
            if hit is None:
                results[rec.pos] = self.row(
                    rc, "push", "missing",
                    "not pushed live (pushes follow events outside the conversation)",
                    recorded=rec)
                continue
            ts, msg = pending.pop(hit)
            match, detail = compare_replies(rec.message, msg, self.volatile, self.reveal)
            results[rec.pos] = self.row(rc, "push", match, detail, recorded=rec,
                                        live=(ts, msg))
        self.rows.extend(results[r.pos] for r in recorded)
        for ts, msg in pending:
            self.rows.append(self.row(rc, "push", "extra", "not in the recording",
                                      live=(ts, msg)))

    def result(self, elapsed: float) -> ReplayResult:
        self.extras()
        for live in self.live.values():
            if live.rec.channel == "main" and live.timeouts and not live.received:
                self.notes.append(
                    f"main connection {live.rec.conn}: the server never answered; does it "
                    f"speak {self.plan.dialect.name}? (choose with dialect=/--dialect)")
        conn_map = {n: lc.stream.id for n, lc in self.live.items() if lc.stream is not None}
        return ReplayResult(messages=self.log.dataframe(), comparison=_comparison_frame(self.rows),
                            conn_map=conn_map, replayed=[rc.conn for rc in self.plan.mains],
                            notes=self.notes, elapsed=elapsed,
                            target=self.target, source=self.plan.source)


COMPARISON_COLUMNS = ("conn", "channel", "kind", "live_conn", "request", "request_params",
                      "recorded_ts", "recorded_command", "recorded_params", "live_ts",
                      "live_command", "live_params", "match", "detail")


def _comparison_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    rows = sorted(rows, key=lambda r: r["_order"])  # stable: extras stay after their kin
    data: dict[str, Any] = {}
    for name in COMPARISON_COLUMNS:
        values = [r[name] for r in rows]
        if name in ("conn", "live_conn"):
            data[name] = pd.array(values, dtype="Int64")
        elif name.endswith("_ts"):
            data[name] = pd.to_datetime(pd.Series(values, dtype="Int64"), unit="ns", utc=True)
        elif name == "match":
            data[name] = pd.Categorical(values, categories=list(MATCHES))
        elif name == "kind":
            data[name] = pd.Categorical(values, categories=["reply", "push"])
        elif name == "channel":
            data[name] = pd.Categorical(values, categories=["main", "data", "unknown"])
        else:
            data[name] = pd.Series(values, dtype="object")
    return pd.DataFrame(data)


def _target(target: str | tuple) -> tuple[str, int]:
    host, port = (parse_endpoint(target) if isinstance(target, str)
                  else (str(target[0]), int(target[1])))
    if not 0 < port <= 65535:
        raise ValueError(f"bad address {format_endpoint((host, port))}: the port must be "
                         "1-65535")
    return host, port


def _check_speed(speed: float) -> float:
    speed = float(speed)
    if not (speed >= 0 and math.isfinite(speed)):
        raise ValueError(f"speed must be a finite number >= 0 (0: as fast as possible), "
                         f"got {speed}")
    return speed


async def replay_client_async(
    capture_or_path: Any,
    target: str | tuple = ("127.0.0.1", 9000),
    *,
    dialect: str | Dialect | None = None,
    speed: float = 1.0,
    conns: int | Iterable[int] | None = None,
    timeout: float = 10.0,
    connect_timeout: float | None = None,
    record: str | Path | IO[bytes] | None = None,
    reveal_passwords: bool = False,
    volatile: Mapping[str, Iterable[str]] | None = None,
) -> ReplayResult:
    """:func:`replay_client` for asyncio code (runs on the caller's loop)."""
    target_ = _target(target)
    speed = _check_speed(speed)
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0, got {timeout}")
    plan = _plan(capture_or_path, conns, dialect)
    replay = _ClientReplay(plan, target_, speed=speed, timeout=timeout,
                           connect_timeout=connect_timeout or timeout, record=record,
                           reveal_passwords=reveal_passwords, volatile=volatile)
    return await replay.run()


def replay_client(
    capture_or_path: Any,
    target: str | tuple = ("127.0.0.1", 9000),
    *,
    dialect: str | Dialect | None = None,
    speed: float = 1.0,
    conns: int | Iterable[int] | None = None,
    timeout: float = 10.0,
    connect_timeout: float | None = None,
    record: str | Path | IO[bytes] | None = None,
    reveal_passwords: bool = False,
    volatile: Mapping[str, Iterable[str]] | None = None,
) -> ReplayResult:
    """Send what the recorded client(s) sent to a live server; compare the answers.

    ``capture_or_path``: a pcap/pcapng path or a ``Capture`` (passwords are
    needed: a masked ``Capture`` is re-read unmasked). ``target``: ``(host,
    port)`` or ``"host:port"`` of the live server's main port. ``dialect``:
    the live server's (default: the recorded connections'). ``speed``: 1.0
    keeps the recorded delays, 10 is ten times faster, 0 as fast as possible.
    ``conns``: which recorded *main* connections (``Capture.connections.conn``;
    default all), with their data connections. ``timeout``: seconds to wait
    for each answer. ``record``: a pcapng path for the live conversation.
    ``volatile``: ``{command: fields}`` not compared (default
    :data:`DEFAULT_VOLATILE`). Blocks (on a private event loop in a thread,
    so it works in a notebook); raises ``OSError`` when the first connection
    cannot be made.
    """
    target_ = _target(target)
    speed = _check_speed(speed)
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0, got {timeout}")
    plan = _plan(capture_or_path, conns, dialect)  # file errors surface here, in the caller
    thread = LoopThread("camprotool-replay")
    thread.start()
    try:
        replay = _ClientReplay(plan, target_, speed=speed, timeout=timeout,
                               connect_timeout=connect_timeout or timeout, record=record,
                               reveal_passwords=reveal_passwords, volatile=volatile)
        return thread.run(replay.run())
    finally:
        thread.stop()


# ====================================================================== server playback


class _Playback:
    """The recorded requests of one recorded connection, handed out once each."""

    def __init__(self, rc: _RecConn | None) -> None:
        self.rec = rc
        self.requests = rc.requests if rc is not None else []
        self.used = [False] * len(self.requests)

    def take(self, msg: Message) -> _Rec | None:
        """The first unused recorded request with the same command and params, else command."""
        same = [i for i, r in enumerate(self.requests)
                if not self.used[i] and r.command == msg.command]
        exact = [i for i in same if self.requests[i].message.params == msg.params]
        pick = (exact or same or [None])[0]
        if pick is None:
            return None
        self.used[pick] = True
        return self.requests[pick]


class ReplayServer(ListeningService):
    """Answer clients with a recording's server side (mitmproxy's server playback).

    ``capture_or_path``: a pcap/pcapng path or a ``Capture``. ``listen``:
    ``(host, port)`` or ``"host:port"`` (port 0 picks a free one:
    ``srv.port``). ``conns``: which recorded main connections to serve
    (default all). ``dialect``: default the recorded connections'. ``speed``
    scales the push times (0: all at once). ``reuse``: serve a recorded
    connection again once every one was used (True). ``record``: pcapng.
    ``heartbeat_timeout``: seconds of silence after which a main connection
    is closed (90; ``None``: never), ``data_idle_timeout`` the same for data
    connections (30). ``max_connections`` (1000) and ``max_per_address``
    (100 from one IP address; ``None``: no limit) cap the connections open at once.
    Same forms as :class:`~camprotool.net.EmulatorServer`: ``start()``/
    ``stop()``/``with``, ``async with``, ``await serve()``.
    """

    _thread_name = "camprotool-replay-server"
    _what = "replay server"

    def __init__(
        self,
        capture_or_path: Any,
        listen: str | tuple = ("127.0.0.1", 0),
        *,
        conns: int | Iterable[int] | None = None,
        dialect: str | Dialect | None = None,
        speed: float = 1.0,
        reuse: bool = True,
        record: str | Path | IO[bytes] | None = None,
        reveal_passwords: bool = False,
        data_port_timeout: float = 10.0,
        data_idle_timeout: float = 30.0,
        heartbeat_timeout: float | None = 90.0,
        max_connections: int = 1000,
        max_per_address: int | None = DEFAULT_MAX_PER_ADDRESS,
    ) -> None:
        if heartbeat_timeout is not None and not heartbeat_timeout > 0:
            raise ValueError(f"heartbeat_timeout must be > 0 or None, got {heartbeat_timeout}")
        super().__init__(record, reveal_passwords)
        self.listen = (parse_endpoint(listen, default_host="127.0.0.1")
                       if isinstance(listen, str) else (str(listen[0]), int(listen[1])))
        self.speed = _check_speed(speed)
        self.plan = _plan(capture_or_path, conns, dialect)
        self.reuse = reuse
        self.data_port_timeout = data_port_timeout
        self.data_idle_timeout = data_idle_timeout
        self.heartbeat_timeout = heartbeat_timeout
        self.max_connections = max_connections
        self.max_per_address = check_max_per_address(max_per_address)  # None: no limit
        self._uses: dict[int, int] = {rc.conn: 0 for rc in self.plan.mains}
        self._unanswered: deque[tuple[Any, ...]] = deque(maxlen=MAX_UNANSWERED)
        #: unanswered requests no longer in :attr:`unanswered` (over ``MAX_UNANSWERED``)
        self.unanswered_dropped = 0
        self._quiet = 0  # warnings not logged since the last one
        self._warn_at = 0.0  # monotonic time the next warning may be logged

    # ---------------------------------------------------------------- properties
    @property
    def dialect(self) -> Dialect:
        return self.plan.dialect

    @property
    def notes(self) -> list[str]:
        return self.plan.notes

    @property
    def unanswered(self) -> pd.DataFrame:
        """Requests no recorded request matched: ts, conn, channel, client, command,
        params, recorded_conn (the recording it was served from, or NA), reason.
        The newest ``MAX_UNANSWERED`` (10 000); :attr:`unanswered_dropped` counts older."""
        import pandas as pd

        rows = list(self._unanswered)
        names = ["ts", "conn", "channel", "client", "command", "params", "recorded_conn",
                 "reason"]
        frame = pd.DataFrame(rows, columns=names) if rows else pd.DataFrame(
            {n: pd.Series([], dtype="object") for n in names})
        frame["ts"] = pd.to_datetime(frame["ts"].astype("int64"), unit="ns", utc=True)
        frame["recorded_conn"] = frame["recorded_conn"].astype("Int64")
        return frame

    def _describe(self) -> str:
        return f" {len(self.plan.mains)} recorded connection(s)"

    # ---------------------------------------------------------------- lifecycle
    def _started(self) -> None:
        log.info("replaying %s on %s", self.plan.source, format_endpoint(self.address))

    def _connection_failed(self, writer: asyncio.StreamWriter, exc: Exception) -> None:
        if isinstance(exc, PEER_GONE):
            log.debug("replay connection ended: %s", exc)
        else:
            log.exception("replay connection failed")

    # ---------------------------------------------------------------- choosing a recording
    def _choose(self, first: Message) -> _RecConn | None:
        def score(rc: _RecConn) -> tuple[int, int, int]:
            reqs = rc.requests
            head = reqs[0].message if reqs else None
            if head is not None and (head.command, head.params) == (first.command,
                                                                    first.params):
                s = 3
            elif any((r.command, r.message.params) == (first.command, first.params)
                     for r in reqs):
                s = 2
            elif head is not None and head.command == first.command:
                s = 1
            else:
                s = 0
            return s, int(self._uses[rc.conn] == 0), -self.plan.mains.index(rc)

        candidates = [rc for rc in self.plan.mains if self.reuse or self._uses[rc.conn] == 0]
        if not candidates:
            return None
        best = max(candidates, key=score)
        self._uses[best.conn] += 1
        return best

    def _report(self, stream: MessageStream, msg: Message, playback: _Playback | None,
                reason: str) -> None:
        params = msg.params if self._reveal else mask_params(msg)
        recorded = playback.rec.conn if playback is not None and playback.rec else None
        if len(self._unanswered) == self._unanswered.maxlen:
            self.unanswered_dropped += 1
        self._unanswered.append((time.time_ns(), stream.id, stream.conv.channel,
                                 stream.conv.client, msg.command, params, recorded, reason))
        now = time.monotonic()
        if now < self._warn_at:  # a flood of them: one warning per interval
            self._quiet += 1
            log.debug("%r: no recorded answer for %s %s (%s)", stream, msg.command, params,
                      reason)
            return
        more = f" (and {self._quiet} more since the last warning)" if self._quiet else ""
        log.warning("%r: no recorded answer for %s %s (%s)%s", stream, msg.command, params,
                    reason, more)
        self._quiet = 0
        self._warn_at = now + UNANSWERED_WARNING_INTERVAL

    # ---------------------------------------------------------------- connections
    async def _serve(self, stream: MessageStream,
                     handle: Callable[[Message], Awaitable[None]],
                     idle: float | None) -> None:
        while True:
            try:
                msgs = await stream.receive(idle)
            except TimeoutError:
                log.info("%r: idle for %.3g s: closing", stream, idle)
                return
            if msgs is None:
                return
            for msg in msgs:
                if msg.spec is None and msg.error is not None:
                    log.warning("%r: unreadable frame (%s)", stream, msg.error)
                    continue
                await handle(msg)
            await stream.drain(self.data_idle_timeout)

    async def _on_main(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                       ) -> None:
        assert self.log is not None
        stream = MessageStream(reader, writer, self.log, "main", "server")
        state: dict[str, Any] = {"playback": None, "chosen": False}
        pushes: asyncio.Task | None = None

        async def handle(msg: Message) -> None:
            nonlocal pushes
            if not state["chosen"]:
                state["chosen"] = True
                rc = self._choose(msg)
                state["playback"] = _Playback(rc) if rc is not None else None
                if rc is not None:
                    log.info("%r: playing back recorded main connection %d", stream, rc.conn)
                    pushes = asyncio.create_task(self._push(stream, rc))
            playback: _Playback | None = state["playback"]
            await self._answer(stream, msg, playback)

        try:
            await self._serve(stream, handle, self.heartbeat_timeout)
        finally:
            if pushes is not None:
                pushes.cancel()
                await asyncio.gather(pushes, return_exceptions=True)
            await stream.close()

    async def _answer(self, stream: MessageStream, msg: Message, playback: _Playback | None
                      ) -> None:
        req = playback.take(msg) if playback is not None else None
        if req is None:
            if msg.command != "Heartbeat":
                why = ("no recorded connection left to serve" if playback is None else
                       f"no recorded {msg.command} left" if playback.rec is not None else
                       "no recorded data connection for this port")
                self._report(stream, msg, playback, why)
            return
        reply = req.reply
        if reply is None:
            return  # recorded without an answer: none now either
        data = reply.data
        port = getattr(reply.message, "port", None)
        if reply.command == "ReturnDataSocketPort" and port is not None:
            assert playback is not None and playback.rec is not None
            local = await self._open_data(stream, playback.rec.data_for.get(reply.pos))
            data = encode(reply.message.spec, {"port": local}, self.dialect)
        stream.send_bytes(data)

    async def _push(self, stream: MessageStream, rc: _RecConn) -> None:
        """Send the recorded pushes (and unsolicited answers) at their recorded offsets."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        reqs = rc.requests
        t0 = reqs[0].ts if reqs else rc.start
        for m in rc.messages:
            if not (m.is_push or (m.is_reply and m.request is None)):
                continue
            if self.speed > 0:
                delay = began + max(0, m.ts - t0) / 1e9 / self.speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            try:
                stream.send_bytes(m.data)
                await stream.drain(self.data_idle_timeout)
            except (ConnectionError, OSError):
                return

    async def _open_data(self, main: MessageStream, rc: _RecConn | None) -> int | None:
        """A one-shot listener playing back ``rc``; its port (None when none can be opened)."""

        async def play(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert self.log is not None
            stream = MessageStream(reader, writer, self.log, "data", "server")
            playback = _Playback(rc)
            try:
                await self._serve(stream, lambda msg: self._answer(stream, msg, playback),
                                  self.data_idle_timeout)
            finally:
                await stream.close()

        def refused(peer: tuple) -> None:
            log.warning("replay data port: connection from %s refused", format_endpoint(peer))

        try:
            return await self._open_one_shot(main.peer_host, self.data_port_timeout, play,
                                             refused)
        except OSError as exc:
            log.warning("cannot open a data port: %s", exc)
            return None

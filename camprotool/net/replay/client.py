"""Client playback: send what the recorded client sent to a live server, compare the answers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from camprotool.net.addresses import format_endpoint, parse_endpoint
from camprotool.net.loop import LoopThread
from camprotool.net.recording import MessageLog
from camprotool.net.replay.compare import ReplayResult, _comparison_frame, compare_replies
from camprotool.net.replay.plan import (
    ANSWERS,
    MAX_EXTRA_DOWNLOADS,
    _check_speed,
    _Plan,
    _plan,
    _Rec,
    _RecConn,
)
from camprotool.net.stream import MessageStream, open_stream
from camprotool.net.table import mask_params
from camprotool.protocol import Dialect, Message, encode
from camprotool.protocol.conversation import Answer, MessageEvent, Push, Request
from camprotool.protocol.typed_messages import DownloadSucess, ReturnDataSocketPort

if TYPE_CHECKING:

    pass

log = logging.getLogger("camprotool.net.replay")

@dataclass(eq=False)
class _Pending:
    rec: _Rec | None  # None: a request only the replay sends (a download past the recording)
    command: str
    future: asyncio.Future
    sent: float
    params: str | None = None  # as shown in the comparison (passwords masked)
    index: int | None = None  # the request's index in the live conversation


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
        #: live requests waiting, by their index in the live conversation (the answer's
        #: Answer event names it: the pairing is the conversation layer's)
        self.waiting: dict[int, _Pending] = {}
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
        return await open_stream(self.target[0], port, local=local,
                                 timeout=self.connect_timeout)

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
        port: int | None = None
        if reply is None:
            live.dead = f"no live data port ({outcome.why})"
        elif not isinstance(reply, ReturnDataSocketPort):
            live.dead = f"no live data port (the server answered {reply.command} {reply.params})"
        elif reply.port is None:
            live.dead = "no live data port (the live ReturnDataSocketPort was empty)"
        else:
            port = reply.port
        if live.dead is None and (main.stream is None or main.dead):
            live.dead = f"the main connection is gone ({main.dead})"
        if live.dead is not None:
            self.notes.append(f"data connection {rc.conn}: not opened: {live.dead}")
            return
        assert main.stream is not None and port is not None
        local = (main.stream.sockname[0], 0)
        try:
            reader, writer = await self.connect(port, local)
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
                events = await stream.receive_events()
                if events is None:
                    break
                ts, at = time.time_ns(), loop.time()
                for event in events:
                    if isinstance(event, MessageEvent):
                        self.on_live(live, event, ts, at)
        except (ConnectionError, OSError) as exc:
            log.debug("replay: %r ended: %s", stream, exc)
        finally:
            if not live.closing:
                live.dead = live.dead or "the server closed the connection"
            for p in live.outstanding:
                if not p.future.done():
                    p.future.set_result(None)
            live.outstanding.clear()
            live.waiting.clear()

    def on_live(self, live: _LiveConn, event: MessageEvent, ts: int, at: float) -> None:
        msg = event.message
        live.received += 1
        if isinstance(event, Push):
            live.pushes.append((ts, msg))
            return
        served: list[_Pending] = []
        if isinstance(event, Answer) and event.request is not None:
            # the answer and the retries it serves; a request given up on is no longer
            # waiting, so its late answer is unsolicited (it shows as extra)
            for w in (*event.retries, event.request):
                p = live.waiting.pop(w.index, None)
                if p is not None:
                    served.append(p)
        if not served:
            live.unsolicited.append((ts, msg))
            return
        for p in served:
            with contextlib.suppress(ValueError):
                live.outstanding.remove(p)
            if not p.future.done():
                p.future.set_result((ts, at, msg))
        if served[-1].command == "DownLoadCaramer":
            self.track_download(live, msg)

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
        if command in ANSWERS:  # the catalogue says an answer will come
            pending = _Pending(rec, command, loop.create_future(), loop.time(), shown)
            live.outstanding.append(pending)
            live.sent.append(pending)
            if rec is not None:
                live.by_request[rec.pos] = pending
        try:
            events = live.stream.send_bytes(data)
            # registered before any await: the answer may beat us back
            for e in events:
                if isinstance(e, Request) and pending is not None:
                    pending.index = e.index
                    live.waiting[e.index] = pending
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
            if pending.index is not None:
                live.waiting.pop(pending.index, None)
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
        complete = (isinstance(recorded, DownloadSucess) and not recorded.error
                    and recorded.current is not None and recorded.total is not None
                    and recorded.current >= recorded.total)
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


def _target(target: str | tuple) -> tuple[str, int]:
    host, port = (parse_endpoint(target) if isinstance(target, str)
                  else (str(target[0]), int(target[1])))
    if not 0 < port <= 65535:
        raise ValueError(f"bad address {format_endpoint((host, port))}: the port must be "
                         "1-65535")
    return host, port


def _replay(capture_or_path: Any, target: str | tuple, *, dialect: str | Dialect | None,
            speed: float, conns: int | Iterable[int] | None, timeout: float,
            connect_timeout: float | None, record: str | Path | IO[bytes] | None,
            reveal_passwords: bool, volatile: Mapping[str, Iterable[str]] | None
            ) -> _ClientReplay:
    """The checked arguments and the plan (file errors surface here, in the caller)."""
    target_ = _target(target)
    speed = _check_speed(speed)
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0, got {timeout}")
    plan = _plan(capture_or_path, conns, dialect)
    return _ClientReplay(plan, target_, speed=speed, timeout=timeout,
                         connect_timeout=connect_timeout or timeout, record=record,
                         reveal_passwords=reveal_passwords, volatile=volatile)


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
    replay = _replay(capture_or_path, target, dialect=dialect, speed=speed, conns=conns,
                     timeout=timeout, connect_timeout=connect_timeout, record=record,
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
    replay = _replay(capture_or_path, target, dialect=dialect, speed=speed, conns=conns,
                     timeout=timeout, connect_timeout=connect_timeout, record=record,
                     reveal_passwords=reveal_passwords, volatile=volatile)
    thread = LoopThread("camprotool-replay")
    thread.start()
    try:
        return thread.run(replay.run())
    finally:
        thread.stop()

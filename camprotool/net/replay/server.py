"""Server playback: answer live clients with a recording's server side."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from camprotool.net.addresses import format_endpoint, parse_endpoint
from camprotool.net.listening import (
    DEFAULT_MAX_PER_ADDRESS,
    PEER_GONE,
    KeptLimits,
    ListeningService,
    check_max_per_address,
)
from camprotool.net.replay.plan import _check_speed, _plan, _Rec, _RecConn
from camprotool.net.stream import MessageStream
from camprotool.net.table import mask_params
from camprotool.protocol import Dialect, Message, encode
from camprotool.protocol.typed_messages import ReturnDataSocketPort

if TYPE_CHECKING:
    import pandas as pd


log = logging.getLogger("camprotool.net.replay")

#: Rows :attr:`ReplayServer.unanswered` keeps (the newest); older ones are counted only.
MAX_UNANSWERED = 10_000
#: Seconds between two "no recorded answer" warnings (the ones between go to debug).
UNANSWERED_WARNING_INTERVAL = 10.0

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
        candidates = exact or same
        if not candidates:
            return None
        pick = candidates[0]
        self.used[pick] = True
        return self.requests[pick]


class ReplayServer(KeptLimits, ListeningService):
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
        self._main_address = (parse_endpoint(listen, default_host="127.0.0.1")
                       if isinstance(listen, str) else (str(listen[0]), int(listen[1])))
        self.speed = _check_speed(speed)
        self.plan = _plan(capture_or_path, conns, dialect)
        self.reuse = reuse
        self.data_port_timeout = data_port_timeout
        self.data_idle_timeout = data_idle_timeout
        self.heartbeat_timeout = heartbeat_timeout
        self._max_connections = max_connections
        self._max_per_address = check_max_per_address(max_per_address)  # None: no limit
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
        recorded = reply.message
        if isinstance(recorded, ReturnDataSocketPort) and recorded.port is not None:
            assert playback is not None and playback.rec is not None
            local = await self._open_data(stream, playback.rec.data_for.get(reply.pos))
            data = encode(recorded.SPEC, {"port": local}, self.dialect)
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


"""``Proxy``: a recording man-in-the-middle between a real client and a real server.

Bytes are forwarded unchanged in both directions and decoded on the way, with
one exception: ``ReturnDataSocketPort``. The client would otherwise open its
data connection straight to the server and the proxy would miss the sync, so
for each announced port the proxy opens a one-shot listener of its own,
rewrites the port in that one frame (keeping the name exactly as the server
spelled it) and, when the client connects, connects to the real data port and
relays. Like the emulator, the listener accepts one connection, only from the
client's address, within ``data_port_timeout`` seconds.

A client that half-closes (shuts down its sending side after its last
request) still gets its answers: the proxy passes the half-close on to the
server and keeps relaying the server's side until the server closes, for at
most ``half_close_timeout`` seconds.

To rewrite a frame it must not have been forwarded yet, so on the server's
main stream the proxy holds back the bytes of an incomplete frame until it is
complete (the decoder's buffer); everything else goes through at once.

Both directions go through the connection's sans-I/O conversation
(:mod:`camprotool.protocol.conversation`), so the proxy also judges what it
relays: ``proxy.violations`` holds the rules either end broke (``direction``
says which: ``c2s`` the client).

What the proxy records (``proxy.messages``, ``record=`` pcapng) is the
conversation *as if the proxy were not there*: each message once, as its
sender wrote it, between the real client's address and the real server's
(so the recorded ``ReturnDataSocketPort`` is the server's real port and the
recorded data connection goes to it). That is what a sniffer between the two
would have seen, and it reads back through ``read_capture`` consistently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from camprotool.net.addresses import format_endpoint, parse_endpoint
from camprotool.net.breaches import Breaches
from camprotool.net.listening import (
    DEFAULT_MAX_PER_ADDRESS,
    KeptLimits,
    ListeningService,
    check_max_per_address,
)
from camprotool.net.recording import Conversation
from camprotool.net.stream import READ_SIZE, abort_writer
from camprotool.protocol import Dialect
from camprotool.protocol.conversation import Event, MessageEvent
from camprotool.protocol.typed_messages import ReturnDataSocketPort

if TYPE_CHECKING:
    import pandas as pd

Filter = Callable[..., Awaitable[bytes]]

log = logging.getLogger("camprotool.net.proxy")


def rewrite_port(raw: bytes, dialect: Dialect, port: int) -> bytes:
    """``raw`` (one whole ReturnDataSocketPort frame) with its parameter set to ``port``."""
    if dialect.is_line:
        body = raw.rstrip(b"\r\n")
        ending = raw[len(body):]
    else:
        body, ending = raw[4:], b""
    name = body.partition(b"|")[0]
    new = name + b"|" + str(port).encode("ascii")
    if dialect.is_line:
        return new + ending
    return len(new).to_bytes(4, dialect.byteorder) + new


def _endpoint(value: str | tuple) -> tuple[str, int]:
    if isinstance(value, tuple):
        return str(value[0]), int(value[1])
    return parse_endpoint(value)


class Proxy(KeptLimits, ListeningService):
    """Forward ``listen`` -> ``upstream``, decoding and recording both ways.

    ``listen``/``upstream`` are ``(host, port)`` or ``"host:port"``; listen
    port 0 picks a free one (``proxy.port``). Same notebook/asyncio forms as
    :class:`~camprotool.net.EmulatorServer`: ``start()``/``stop()``/``with``,
    ``async with``, ``await serve()``. ``max_connections`` (1000) and
    ``max_per_address`` (100 from one IP address; ``None``: no limit) cap the
    client connections open at once, as on the emulator.
    """

    _thread_name = "camprotool-proxy"
    _what = "proxy"

    def __init__(
        self,
        listen: str | tuple = ("127.0.0.1", 0),
        upstream: str | tuple = ("127.0.0.1", 9000),
        *,
        dialect: str | Dialect = "line",
        record: str | Path | IO[bytes] | None = None,
        reveal_passwords: bool = False,
        data_port_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        half_close_timeout: float = 10.0,
        max_connections: int = 1000,
        max_per_address: int | None = DEFAULT_MAX_PER_ADDRESS,
    ) -> None:
        super().__init__(record, reveal_passwords)
        self._main_address = _endpoint(listen)
        self.upstream = _endpoint(upstream)
        if self.upstream[1] == 0:
            raise ValueError("the upstream port must not be 0")
        self._dialect = Dialect.parse(dialect)
        self.data_port_timeout = data_port_timeout
        self.connect_timeout = connect_timeout
        self.half_close_timeout = half_close_timeout
        self._max_connections = max_connections
        self._breaches = Breaches(log, reveal_passwords)
        self._max_per_address = check_max_per_address(max_per_address)  # None: no limit

    @property
    def dialect(self) -> Dialect:
        return self._dialect

    def _describe(self) -> str:
        return f" -> {format_endpoint(self.upstream)}"

    @property
    def violations(self) -> pd.DataFrame:
        """Protocol rules either end broke, as relayed: ts, conn, channel, client,
        direction (``c2s``: the client), rule, command, detail (passwords masked)."""
        return self._breaches.frame()

    def judge(self, conv: Conversation, direction: str, data: bytes) -> list[Event]:
        """Log ``data`` and keep the violations it commits; its events."""
        events = conv.feed_events(direction, data)
        self._breaches.add(conv, events)
        return events

    # ------------------------------------------------------------ lifecycle
    def _started(self) -> None:
        log.info("proxy %s -> %s", format_endpoint(self.address), format_endpoint(self.upstream))

    def _connection_failed(self, writer: asyncio.StreamWriter, exc: Exception) -> None:
        log.exception("proxy connection failed")

    async def _connect(self, host: str, port: int, local_host: str | None = None
                       ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            async with asyncio.timeout(self.connect_timeout):
                return await asyncio.open_connection(
                    host, port, local_addr=(local_host, 0) if local_host else None)
        except (OSError, TimeoutError) as exc:
            log.warning("cannot connect upstream to %s: %s", format_endpoint((host, port)),
                        exc or "timeout")
            return None

    # ------------------------------------------------------------ main connections
    async def _on_main(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter
                       ) -> None:
        assert self.log is not None
        up = await self._connect(*self.upstream)
        if up is None:
            abort_writer(c_writer)
            return
        u_reader, u_writer = up
        client = c_writer.get_extra_info("peername")
        server = u_writer.get_extra_info("peername")
        conv = self.log.open("main", client, server)
        log.info("main %s -> %s", format_endpoint(client), format_endpoint(server))
        ctx = _MainContext(self, conv, client[0], u_writer.get_extra_info("sockname")[0])
        await self._relay(conv, c_reader, c_writer, u_reader, u_writer, ctx.s2c)

    async def _relay(self, conv: Conversation, c_reader: asyncio.StreamReader,
                     c_writer: asyncio.StreamWriter, u_reader: asyncio.StreamReader,
                     u_writer: asyncio.StreamWriter, s2c_filter: Filter | None = None) -> None:
        """Pump both directions until either side closes, then close both.

        When the client closes first (possibly only its sending side), the
        server is told so (EOF) and its answers still flow to the client until
        it closes, within ``half_close_timeout`` seconds.
        """

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       direction: str) -> str:
            while True:
                data = await reader.read(READ_SIZE)
                if not data:
                    if s2c_filter is not None and direction == "s2c":
                        rest = await s2c_filter(b"", final=True)
                        if rest:
                            writer.write(rest)
                    return direction
                if s2c_filter is not None and direction == "s2c":
                    out = await s2c_filter(data)
                else:
                    self.judge(conv, direction, data)
                    out = data
                if out:
                    writer.write(out)
                    await writer.drain()

        c2s = asyncio.create_task(pump(c_reader, u_writer, "c2s"))
        s2c = asyncio.create_task(pump(u_reader, c_writer, "s2c"))
        tasks = [c2s, s2c]
        first = "c2s"
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is None:
                    first = task.result()
                else:
                    log.debug("relay ended: %s", task.exception())
            if c2s in done and c2s.exception() is None and not s2c.done():
                with contextlib.suppress(OSError, RuntimeError):  # the client half-closed
                    if u_writer.can_write_eof():
                        u_writer.write_eof()
                await asyncio.wait([s2c], timeout=self.half_close_timeout)
                if s2c.done() and s2c.exception() is not None:
                    log.debug("relay ended: %s", s2c.exception())
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in (c_writer, u_writer):
                with contextlib.suppress(Exception):
                    w.close()
            for w in (c_writer, u_writer):
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2):
                        await w.wait_closed()
            self._breaches.add(conv, conv.close(by=first))

    # ------------------------------------------------------------ data connections
    async def open_data_relay(self, real_port: int, client_host: str, upstream_local: str
                              ) -> int | None:
        """Listen for the client's data connection; the proxy-side port, or None."""
        assert self.log is not None

        async def relay(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter
                        ) -> None:
            up = await self._connect(self.upstream[0], real_port, upstream_local)
            if up is None:
                abort_writer(c_writer)
                return
            u_reader, u_writer = up
            assert self.log is not None
            conv = self.log.open("data", c_writer.get_extra_info("peername"),
                                 u_writer.get_extra_info("peername"))
            await self._relay(conv, c_reader, c_writer, u_reader, u_writer)

        def refused(peer: tuple) -> None:
            log.warning("data relay for port %d: connection from %s refused", real_port,
                        format_endpoint(peer))

        try:
            return await self._open_one_shot(client_host, self.data_port_timeout, relay,
                                             refused)
        except OSError as exc:
            log.warning("cannot open a data relay listener: %s", exc)
            return None


class _MainContext:
    """The server-to-client side of one main connection: hold back, rewrite, forward."""

    def __init__(self, proxy: Proxy, conv: Conversation, client_host: str,
                 upstream_local: str) -> None:
        self.proxy = proxy
        self.conv = conv
        self.client_host = client_host
        self.upstream_local = upstream_local
        self.pending = bytearray()
        self.start = 0  # stream offset of pending[0]

    async def s2c(self, data: bytes, final: bool = False) -> bytes:
        if final:
            flushed, self.pending = bytes(self.pending), bytearray()
            return flushed
        self.pending += data
        pairs = [(e.end, e.message) for e in self.proxy.judge(self.conv, "s2c", data)
                 if isinstance(e, MessageEvent)]
        out = bytearray()
        cursor = self.start
        for end, msg in pairs:
            if not isinstance(msg, ReturnDataSocketPort) or msg.error or not msg.port:
                continue
            begin = end - len(msg.raw)
            if begin < cursor:  # cannot happen: held back; forward untouched if it does
                continue
            local = await self.proxy.open_data_relay(msg.port, self.client_host,
                                                     self.upstream_local)
            if local is None:
                continue
            log.info("data port %d announced; relaying through %d", msg.port, local)
            out += self.pending[cursor - self.start : begin - self.start]
            out += rewrite_port(msg.raw, self.proxy.dialect, local)
            cursor = end
        hold = self.conv.decoder("s2c").buffered
        until = max(cursor, self.start + len(self.pending) - hold)
        out += self.pending[cursor - self.start : until - self.start]
        del self.pending[: until - self.start]
        self.start = until
        return bytes(out)

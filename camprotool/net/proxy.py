"""``Proxy``: a recording man-in-the-middle between a real client and a real server.

Bytes are forwarded unchanged in both directions and decoded on the way, with
one exception: ``ReturnDataSocketPort``. The client would otherwise open its
data connection straight to the server and the proxy would miss the sync, so
for each announced port the proxy opens a one-shot listener of its own,
rewrites the port in that one frame (keeping the name exactly as the server
spelled it) and, when the client connects, connects to the real data port and
relays. Like the emulator, the listener accepts one connection, only from the
client's address, within ``data_port_timeout`` seconds.

To rewrite a frame it must not have been forwarded yet, so on the server's
main stream the proxy holds back the bytes of an incomplete frame until it is
complete (the decoder's buffer); everything else goes through at once.

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
from typing import IO, TYPE_CHECKING, Any

from camprotool.net.addresses import format_endpoint, parse_endpoint, same_host
from camprotool.net.recording import Conversation, MessageLog
from camprotool.net.service import BackgroundService
from camprotool.net.stream import READ_SIZE, abort_writer
from camprotool.protocol import Dialect

if TYPE_CHECKING:
    import pandas as pd

    from camprotool.net.client import Client

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
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


class Proxy(BackgroundService):
    """Forward ``listen`` -> ``upstream``, decoding and recording both ways.

    ``listen``/``upstream`` are ``(host, port)`` or ``"host:port"``; listen
    port 0 picks a free one (``proxy.port``). Same notebook/asyncio forms as
    :class:`~camprotool.net.EmulatorServer`: ``start()``/``stop()``/``with``,
    ``async with``, ``await serve()``.
    """

    _thread_name = "camprotool-proxy"

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
        max_connections: int = 1000,
    ) -> None:
        super().__init__()
        self.listen = _endpoint(listen)
        self.upstream = _endpoint(upstream)
        if self.upstream[1] == 0:
            raise ValueError("the upstream port must not be 0")
        self.dialect = Dialect.parse(dialect)
        self.data_port_timeout = data_port_timeout
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self._record = record
        self._reveal = reveal_passwords
        self.log: MessageLog | None = None
        self.port: int | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._listeners: set[asyncio.Server] = set()
        self._active = 0

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def address(self) -> tuple[str, int]:
        if self.port is None:
            raise RuntimeError("the proxy is not started")
        return self.listen[0], self.port

    @property
    def messages(self) -> pd.DataFrame:
        """Every message that went through, as ``Capture.messages`` (passwords masked)."""
        if self.log is None:
            from camprotool.net.table import messages_frame
            return messages_frame([])
        return self.log.dataframe()

    def __repr__(self) -> str:
        where = format_endpoint(self.address) if self.running else "stopped"
        return f"<Proxy {where} -> {format_endpoint(self.upstream)}>"

    def client(self, **kwargs: Any) -> Client:
        """A :class:`~camprotool.net.client.Client` connected through this proxy."""
        from camprotool.net.client import Client

        kwargs.setdefault("dialect", self.dialect)
        return Client(*self.address, **kwargs)

    # ------------------------------------------------------------ lifecycle
    async def start_async(self) -> Proxy:
        if self.running:
            raise RuntimeError("the proxy is already running")
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self.log = MessageLog(self.dialect, record=self._record, reveal_passwords=self._reveal)
        host, port = self.listen
        try:
            self._server = await asyncio.start_server(self._tracked(self._on_main), host, port,
                                                      backlog=1024, reuse_address=True)
        except OSError as exc:
            self.log.close()
            from camprotool.net.server import _bind_error
            raise _bind_error(exc, host, port) from None
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("proxy %s -> %s", format_endpoint(self.address), format_endpoint(self.upstream))
        return self

    async def stop_async(self) -> None:
        server, self._server = self._server, None
        for srv in [server, *self._listeners]:
            if srv is not None:
                srv.close()
        self._listeners.clear()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.log is not None:
            self.log.close()
        if self._stopped is not None:
            self._stopped.set()

    def _tracked(self, handler: Handler) -> Handler:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if self._active >= self.max_connections:
                log.warning("connection limit reached: refusing %s",
                            format_endpoint(writer.get_extra_info("peername")))
                abort_writer(writer)
                return
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            self._active += 1
            try:
                await handler(reader, writer)
            except asyncio.CancelledError:
                abort_writer(writer)
                raise
            except Exception:
                log.exception("proxy connection failed")
                abort_writer(writer)
            finally:
                self._active -= 1
                self._tasks.discard(task)

        return run

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
        """Pump both directions until either side closes, then close both."""

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
                    conv.feed(direction, data)
                    out = data
                if out:
                    writer.write(out)
                    await writer.drain()

        tasks = [asyncio.create_task(pump(c_reader, u_writer, "c2s")),
                 asyncio.create_task(pump(u_reader, c_writer, "s2c"))]
        first = "c2s"
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is None:
                    first = task.result()
                else:
                    log.debug("relay ended: %s", task.exception())
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
            conv.close(by=first)

    # ------------------------------------------------------------ data connections
    async def open_data_relay(self, real_port: int, client_host: str, upstream_local: str
                              ) -> int | None:
        """Listen for the client's data connection; the proxy-side port, or None."""
        assert self.log is not None
        accepted = asyncio.Event()
        holder: dict[str, asyncio.Server] = {}

        async def on_data(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter
                          ) -> None:
            peer = c_writer.get_extra_info("peername")
            if accepted.is_set() or not same_host(peer[0], client_host):
                log.warning("data relay for port %d: connection from %s refused", real_port,
                            format_endpoint(peer))
                abort_writer(c_writer)
                return
            accepted.set()
            self._close_listener(holder.get("srv"))
            up = await self._connect(self.upstream[0], real_port, upstream_local)
            if up is None:
                abort_writer(c_writer)
                return
            u_reader, u_writer = up
            assert self.log is not None
            conv = self.log.open("data", peer, u_writer.get_extra_info("peername"))
            await self._relay(conv, c_reader, c_writer, u_reader, u_writer)

        try:
            srv = await asyncio.start_server(self._tracked(on_data), self.listen[0], 0)
        except OSError as exc:
            log.warning("cannot open a data relay listener: %s", exc)
            return None
        holder["srv"] = srv
        self._listeners.add(srv)
        assert self._loop is not None
        self._loop.call_later(self.data_port_timeout,
                              lambda: accepted.is_set() or self._close_listener(srv))
        return srv.sockets[0].getsockname()[1]

    def _close_listener(self, srv: asyncio.Server | None) -> None:
        if srv is not None:
            srv.close()
            self._listeners.discard(srv)


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
            out, self.pending = bytes(self.pending), bytearray()
            return out
        self.pending += data
        pairs = self.conv.feed("s2c", data)
        out = bytearray()
        cursor = self.start
        for end, msg in pairs:
            if msg.command != "ReturnDataSocketPort" or msg.error or not getattr(msg, "port",
                                                                                 None):
                continue
            begin = end - len(msg.raw)
            if begin < cursor:  # cannot happen: held back; forward untouched if it does
                continue
            local = await self.proxy.open_data_relay(msg.port, self.client_host,  # type: ignore[attr-defined]
                                                     self.upstream_local)
            if local is None:
                continue
            log.info("data port %d announced; relaying through %d", msg.port, local)  # type: ignore[attr-defined]
            out += self.pending[cursor - self.start : begin - self.start]
            out += rewrite_port(msg.raw, self.proxy.dialect, local)
            cursor = end
        hold = self.conv.decoder("s2c").buffered
        until = max(cursor, self.start + len(self.pending) - hold)
        out += self.pending[cursor - self.start : until - self.start]
        del self.pending[: until - self.start]
        self.start = until
        return bytes(out)

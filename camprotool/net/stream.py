"""One protocol connection over asyncio streams: decode in, encode out, log both.

The client, the server's main and data handlers all talk through this class,
so every byte either way passes the same :class:`~camprotool.net.recording.
Conversation` tap and the message log can never miss a frame. That tap holds
the connection's sans-I/O :class:`~camprotool.protocol.conversation.Conversation`;
:attr:`MessageStream.peer` is our end of it: :meth:`~MessageStream.send`
checks a command is legal here and now before writing it, and
:meth:`~MessageStream.receive_events` hands over what the conversation made
of the peer's bytes (answers paired with their request, pushes, violations).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Mapping
from typing import Any

from camprotool.net.addresses import format_endpoint
from camprotool.net.recording import Conversation, MessageLog
from camprotool.protocol import Message, encode
from camprotool.protocol.conversation import Event, MessageEvent, Peer

READ_SIZE = 65536


class MessageStream:
    """A connection seen from ``side`` (``"client"`` or ``"server"``)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 log: MessageLog, channel: str, side: str) -> None:
        self.reader = reader
        self.writer = writer
        self.log = log
        self.dialect = log.dialect
        self.side = side
        self.sockname = _addr(writer.get_extra_info("sockname"))
        self.peername = _addr(writer.get_extra_info("peername"))
        client, server = ((self.sockname, self.peername) if side == "client"
                          else (self.peername, self.sockname))
        self.conv: Conversation = log.open(channel, client, server)
        self.peer = Peer(self.conv.protocol, side)
        self.incoming = self.peer.incoming
        self.outgoing = self.peer.outgoing
        self.closed_by: str | None = None
        #: bytes received since the last complete frame (garbage/oversize guard)
        self.unframed = 0

    @property
    def id(self) -> int:
        return self.conv.id

    @property
    def peer_host(self) -> str:
        return self.peername[0] if self.peername else ""

    def __repr__(self) -> str:
        return f"<{self.conv.channel} conn {self.id} {self.conv.client} -> {self.conv.server}>"

    async def receive(self, timeout: float | None = None) -> list[Message] | None:
        """The messages completed by the next chunk; ``None`` when the peer closed.

        Raises ``TimeoutError`` when nothing arrives within ``timeout``.
        """
        events = await self.receive_events(timeout)
        if events is None:
            return None
        return [e.message for e in events if isinstance(e, MessageEvent)]

    async def receive_events(self, timeout: float | None = None) -> list[Event] | None:
        """The conversation's events for the next chunk; ``None`` when the peer closed.

        Raises ``TimeoutError`` when nothing arrives within ``timeout``.
        """
        async with asyncio.timeout(timeout):
            data = await self.reader.read(READ_SIZE)
        if not data:
            self.closed_by = self.closed_by or self.incoming
            return None
        events = self.conv.feed_events(self.incoming, data)
        framed = any(isinstance(e, MessageEvent) for e in events)
        self.unframed = 0 if framed else self.unframed + len(data)
        return events

    def send(self, command: str, params: str | Mapping[str, Any] = "") -> bytes:
        """Check (legal here and now, see :class:`~camprotool.protocol.conversation.Peer`),
        encode and write one message; ``LocalProtocolError`` if it cannot be sent."""
        data = self.peer.prepare(command, params)
        self.send_bytes(data)
        return data

    def send_events(self, command: str, params: str | Mapping[str, Any] = "") -> list[Event]:
        """:meth:`send`, returning the conversation's events of what was sent (the
        :class:`~camprotool.protocol.conversation.Request` a caller waits on)."""
        return self.send_bytes(self.peer.prepare(command, params))

    def send_raw(self, command: str, params: str = "") -> bytes:
        """Encode and write any command the dialect can carry, unchecked."""
        data = encode(command, params, self.dialect)
        self.send_bytes(data)
        return data

    def send_bytes(self, data: bytes) -> list[Event]:
        """Write bytes as they are; the conversation's events of them."""
        if self.writer.is_closing():
            raise ConnectionResetError("the connection is closed")
        # Log first: once written, the peer may act on it (and a test may read
        # both logs) before this thread runs again.
        events = self.conv.feed_events(self.outgoing, data)
        self.writer.write(data)
        return events

    def write_buffer_size(self) -> int:
        transport = self.writer.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    async def drain(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self.writer.drain()

    def abort(self) -> None:
        """Close at once with a reset (for peers we refuse)."""
        self.closed_by = self.closed_by or self.outgoing
        transport = self.writer.transport
        if transport is not None:
            transport.abort()

    async def close(self) -> list[Event]:
        """Close the connection; the conversation's events of the close (frames left
        incomplete, ``incomplete_sync``, ...)."""
        self.closed_by = self.closed_by or self.outgoing
        with contextlib.suppress(Exception):
            self.writer.close()
            async with asyncio.timeout(2):
                await self.writer.wait_closed()
        return self.conv.close(by="c2s" if self.closed_by == "c2s" else "s2c")


async def open_stream(host: str, port: int, *, local: tuple[str, int] | None = None,
                      timeout: float | None = None, what: str = "",
                      timeout_error: type[TimeoutError] = TimeoutError
                      ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to ``host:port`` (from ``local``), failing with one clear sentence that
    names the address (``what``: "main", "data", ... shown in a timeout)."""
    where = format_endpoint((host, port))
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.open_connection(host, port, local_addr=local)
    except TimeoutError:
        raise timeout_error(f"connecting to {where}{f' ({what})' if what else ''} timed out"
                            ) from None
    except ConnectionRefusedError:
        raise ConnectionRefusedError(f"cannot connect to {where}: connection refused"
                                     ) from None
    except OSError as exc:
        raise OSError(f"cannot connect to {where}: {exc.strerror or exc}") from None


def _addr(addr: Any) -> tuple:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return (addr[0], addr[1])
    return ("0.0.0.0", 0)


def abort_writer(writer: asyncio.StreamWriter) -> None:
    """Reset a connection we will not serve (SO_LINGER 0 makes close() send RST)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport = writer.transport
    if transport is not None:
        transport.abort()

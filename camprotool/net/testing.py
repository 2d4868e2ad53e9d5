"""Wire a client to an emulated server over loopback, like h11's ``ConnectionPair``.

Used by the test suite and handy in a notebook::

    with LoopbackPair() as pair:
        pair.client.login("demo", "demo")
        pair.server.set_online("DEMO0002", True)

Defaults suit tests: port 0 everywhere, cheap password hashing, no client
heartbeats (so heartbeat-timeout behaviour is under the test's control).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from typing import Any

from camprotool.net.client import Client
from camprotool.net.server import EmulatorServer
from camprotool.protocol import Decoder, Dialect, Message, encode

FAST_SCRYPT_N = 1 << 10


class LoopbackPair:
    """An :class:`EmulatorServer` plus one connected :class:`Client` (more on demand)."""

    def __init__(self, *, dialect: str | Dialect = "line",
                 client_options: dict[str, Any] | None = None, **server_options: Any) -> None:
        server_options.setdefault("scrypt_n", FAST_SCRYPT_N)
        self.server = EmulatorServer(dialect=dialect, **server_options)
        self.client_options = {"heartbeat_interval": None, "timeout": 5.0,
                               **(client_options or {})}
        self.clients: list[Client] = []

    def new_client(self, **options: Any) -> Client:
        client = self.server.client(**{**self.client_options, **options})
        self.clients.append(client)
        client.connect()
        return client

    @property
    def client(self) -> Client:
        return self.clients[0]

    def __enter__(self) -> LoopbackPair:
        self.server.start()
        try:
            self.new_client()
        except BaseException:
            self.server.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                client.close()
        self.server.stop()


class RawConnection:
    """A plain blocking socket speaking a dialect: for tests that misbehave on purpose."""

    def __init__(self, address: tuple[str, int], dialect: str | Dialect = "line", *,
                 source: str | None = None, timeout: float = 5.0) -> None:
        self.dialect = Dialect.parse(dialect)
        self.sock = socket.create_connection(address, timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.decoder = Decoder(self.dialect)
        self.pending: list[Message] = []

    def send(self, command: str, params: str | dict = "") -> None:
        self.sock.sendall(encode(command, params, self.dialect))

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self, timeout: float = 5.0) -> Message:
        """The next message; ``ConnectionError`` when the peer closed first."""
        deadline = time.monotonic() + timeout
        while not self.pending:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionResetError("closed by the peer")
            self.pending.extend(self.decoder.feed(data))
        return self.pending.pop(0)

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """Whether the peer closes (EOF or reset) within ``timeout``, reading what comes."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.pending.extend(self.decoder.feed(data))
        except (ConnectionError, OSError) as exc:
            return not isinstance(exc, TimeoutError)
        return False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def refused(address: tuple[str, int], *, source: str | None = None,
            timeout: float = 3.0) -> bool:
    """Whether a connection to ``address`` is refused or reset within ``timeout``.

    On loopback the server's reset can beat ``connect()`` back to user space,
    so an error from the connect itself counts as refused too.
    """
    try:
        raw = RawConnection(address, source=source, timeout=timeout)
    except ConnectionError:
        return True
    with raw:
        return raw.closed_by_peer(timeout)


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, step: float = 0.01) -> Any:
    """Poll ``predicate`` until it returns something truthy; that value, or AssertionError.

    The deadline only guards against a hang (the wait ends as soon as the predicate
    holds), so it is generous: a loaded test machine can be many times slower.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)

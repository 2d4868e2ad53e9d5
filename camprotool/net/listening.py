"""What the emulator, the proxy and the replay server share: a listening port and its connections.

All three accept connections on a main port, hand each to a handler, record
what they see in a :class:`~camprotool.net.recording.MessageLog` and open
one-shot data ports for the clients they serve. The lifecycle around that
(bind, count and track connections so ``stop`` can cancel them, close the
recording) is the same for all three, so it lives here once and each
subclass keeps only what is its own:

* ``_on_main``: the handler of a main-port connection;
* ``_bind()``: which ports to open (default: the main port on ``listen``);
* ``_started()``: what to say (and start) once listening;
* ``_connection_refused``/``_connection_failed``: how to log a connection
  over ``max_connections`` (or over ``max_per_address`` from one address)
  and a handler's exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar, TypeVar

from camprotool.net.addresses import format_endpoint, same_host
from camprotool.net.recording import MessageLog
from camprotool.net.service import BackgroundService
from camprotool.net.stream import abort_writer
from camprotool.protocol import Dialect
from camprotool.protocol.catalogue import CATALOGUE, Catalogue

if TYPE_CHECKING:
    import pandas as pd

    from camprotool.net.client import Client

_log = logging.getLogger("camprotool.net")

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
L = TypeVar("L", bound="ListeningService")

# A peer that resets, times out or vanishes ends its connection; that is not a bug of ours.
PEER_GONE = (ConnectionError, TimeoutError, OSError)

#: Connections open at once from one IP address, for every listening service by default
#: (a tenth of the default ``max_connections``: one address cannot take every slot).
DEFAULT_MAX_PER_ADDRESS = 100


def check_max_per_address(value: int | None) -> int | None:
    """``value`` if it is None or >= 1; ``ValueError`` otherwise."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 1):
        raise ValueError(f"max_per_address must be >= 1 or None, got {value!r}")
    return value


class KeptLimits:
    """``listen``, ``max_connections`` and ``max_per_address`` for a service that keeps
    them itself (the proxy, the replay server; the emulator reads its frozen config).
    Listed first among the bases, its properties are the service's."""

    _main_address: tuple[str, int]
    _max_connections: int
    _max_per_address: int | None

    @property
    def listen(self) -> tuple[str, int]:
        return self._main_address

    @property
    def max_connections(self) -> int:
        return self._max_connections

    @property
    def max_per_address(self) -> int | None:
        return self._max_per_address


class ListeningService(BackgroundService):
    """A :class:`BackgroundService` that listens on ``listen`` and serves connections.

    A subclass sets ``listen`` (``(host, port)``, port 0 for a free one),
    ``dialect`` and ``max_connections`` (read-only properties) and
    implements ``_on_main``, ``_started`` and ``_connection_failed``.
    """

    _what: ClassVar[str] = "service"  # in "the <what> is not started"

    #: The commands the conversations know (a subclass may take an extended one).
    catalogue: Catalogue = CATALOGUE

    def __init__(self, record: str | Path | IO[bytes] | None = None,
                 reveal_passwords: bool = False) -> None:
        super().__init__()
        self._record = record
        self._reveal = reveal_passwords
        self.log: MessageLog | None = None
        self.port: int | None = None
        self._servers: list[asyncio.Server] = []  # the ports that make it "running"
        self._listeners: set[asyncio.Server] = set()  # one-shot data ports
        self._tasks: set[asyncio.Task] = set()
        self._active = 0
        self._per_address: dict[str, int] = {}

    # ------------------------------------------------------------ what each service provides
    @property
    @abstractmethod
    def listen(self) -> tuple[str, int]:
        """``(host, port)`` of the main port (port 0: a free one)."""

    @property
    @abstractmethod
    def dialect(self) -> Dialect:
        """The framing and encoding the service speaks."""

    @property
    @abstractmethod
    def max_connections(self) -> int:
        """Connections open at once; more are aborted."""

    @property
    def max_per_address(self) -> int | None:
        """Connections open at once from one IP address (None: only the global cap).
        Below ``max_connections``, it keeps one address from taking every slot."""
        return DEFAULT_MAX_PER_ADDRESS

    @abstractmethod
    async def _on_main(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                       ) -> None:
        """Serve one connection to the main port."""

    @abstractmethod
    def _started(self) -> None:
        """Called once every port is bound: log the listening line (and start extras)."""

    @abstractmethod
    def _connection_failed(self, writer: asyncio.StreamWriter, exc: Exception) -> None:
        """Log (and count) a handler's exception; the connection is aborted afterwards."""

    def _connection_refused(self, writer: asyncio.StreamWriter, per_address: bool = False
                            ) -> None:
        """A connection over ``max_connections`` (``per_address``: over
        ``max_per_address``), about to be aborted: logged as a warning."""
        peer = format_endpoint(writer.get_extra_info("peername"))
        if per_address:
            _log.warning("%s: per-address limit (%s connections) reached: refusing %s",
                         self._what, self.max_per_address, peer)
        else:
            _log.warning("%s: connection limit (%d) reached: refusing %s", self._what,
                         self.max_connections, peer)

    async def _bind(self) -> None:
        """Open the listening ports (via :meth:`_listen`); default: the main port."""
        host, port = self.listen
        main = await self._listen(host, port, self._on_main)
        self.port = main.sockets[0].getsockname()[1]

    # ------------------------------------------------------------ properties
    @property
    def running(self) -> bool:
        return bool(self._servers)

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` of the main port (once started)."""
        if self.port is None:
            raise RuntimeError(f"the {self._what} is not started")
        return self.listen[0], self.port

    @property
    def messages(self) -> pd.DataFrame:
        """Every message seen, as ``Capture.messages`` (passwords masked unless revealed)."""
        if self.log is None:
            from camprotool.net.table import messages_frame
            return messages_frame([])
        return self.log.dataframe()

    def _describe(self) -> str:
        """The tail of ``repr``, after the address."""
        return ""

    def __repr__(self) -> str:
        where = format_endpoint(self.address) if self.running else "stopped"
        return f"<{type(self).__name__} {where}{self._describe()}>"

    def client(self, **kwargs: Any) -> Client:
        """A :class:`~camprotool.net.client.Client` for this address, same dialect and
        catalogue."""
        from camprotool.net.client import Client

        kwargs.setdefault("dialect", self.dialect)
        kwargs.setdefault("catalogue", self.catalogue)
        return Client(*self.address, **kwargs)

    # ------------------------------------------------------------ lifecycle (asyncio)
    async def start_async(self: L) -> L:
        """Start listening on the running loop; returns once every port is bound."""
        if self.running:
            raise RuntimeError(f"the {self._what} is already running")
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self.log = MessageLog(self.dialect, record=self._record, reveal_passwords=self._reveal,
                              catalogue=self.catalogue)
        try:
            await self._bind()
        except BaseException:
            await _wait_closed(self._close_listeners())
            self.log.close()
            raise
        self._started()
        return self

    async def _listen(self, host: str, port: int, handler: Handler) -> asyncio.Server:
        """Bind one port that counts as "running"; a one-line ``OSError`` if it cannot."""
        try:
            srv = await asyncio.start_server(self._tracked(handler), host, port, backlog=1024,
                                             reuse_address=True)
        except OSError as exc:
            raise _bind_error(exc, host, port) from None
        self._servers.append(srv)
        return srv

    async def stop_async(self) -> None:
        """Stop listening, close every connection, flush the recording."""
        servers = self._close_listeners()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await _wait_closed(servers)
        if self.log is not None:
            self.log.close()
        if self._stopped is not None:
            self._stopped.set()

    def _close_listeners(self) -> list[asyncio.Server]:
        """Stop accepting on every port; the main ones, to wait for once connections end."""
        servers, self._servers = self._servers, []
        for srv in [*servers, *self._listeners]:
            srv.close()
        self._listeners.clear()
        return servers

    # ------------------------------------------------------------ connections
    def _tracked(self, handler: Handler) -> Handler:
        """Wrap a connection handler: the limit, task tracking, and no exception escapes."""

        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if self._active >= self.max_connections:
                self._connection_refused(writer)
                abort_writer(writer)
                return
            peer = writer.get_extra_info("peername")
            host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            limit = self.max_per_address
            if limit is not None and self._per_address.get(host, 0) >= limit:
                self._connection_refused(writer, per_address=True)
                abort_writer(writer)
                return
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            self._active += 1
            self._per_address[host] = self._per_address.get(host, 0) + 1
            try:
                await handler(reader, writer)
            except asyncio.CancelledError:
                # stop() cancels open connections. Do not re-raise: asyncio's done
                # callback for connection tasks (3.11) logs a cancelled task as an error.
                abort_writer(writer)
                return
            except Exception as exc:
                self._connection_failed(writer, exc)
                abort_writer(writer)
            finally:
                self._active -= 1
                left = self._per_address.pop(host, 1) - 1
                if left > 0:
                    self._per_address[host] = left
                self._tasks.discard(task)

        return run

    async def _open_one_shot(self, client_host: str, timeout: float, handler: Handler,
                             refused: Callable[[Any], object]) -> int:
        """Listen on a free port for one connection, from ``client_host``, within ``timeout`` s.

        A data port handed to one client must not serve anyone else, twice or
        forever. ``refused(peer)`` is told of every other connection (which is
        aborted). Returns the port; ``OSError`` when none can be opened.
        """
        accepted = asyncio.Event()
        srv: asyncio.Server | None = None

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                             ) -> None:
            peer = writer.get_extra_info("peername")
            if accepted.is_set() or not same_host(peer[0], client_host):
                refused(peer)
                abort_writer(writer)
                return
            accepted.set()
            self._close_listener(srv)
            await handler(reader, writer)

        srv = await asyncio.start_server(self._tracked(on_connect), self.listen[0], 0)
        self._listeners.add(srv)
        assert self._loop is not None

        def give_up() -> None:  # nobody came within the timeout
            if not accepted.is_set():
                self._close_listener(srv)

        self._loop.call_later(timeout, give_up)
        return srv.sockets[0].getsockname()[1]

    def _close_listener(self, srv: asyncio.Server | None) -> None:
        if srv is not None:
            srv.close()
            self._listeners.discard(srv)


async def _wait_closed(servers: Iterable[asyncio.Server]) -> None:
    # after the connections are cancelled: since Python 3.12 this waits for them to end
    for srv in servers:
        with contextlib.suppress(Exception):
            await srv.wait_closed()


def _bind_error(exc: OSError, host: str, port: int) -> OSError:
    """A one-line reason (no ``[Errno 98]`` prefix); ``errno`` is kept as an attribute."""
    where = format_endpoint((host, port))
    if exc.errno == errno.EADDRINUSE:
        text = f"{where} is already in use"
    elif exc.errno == errno.EACCES:
        text = f"no permission to listen on {where}"
    elif exc.errno == errno.EADDRNOTAVAIL:
        text = f"{host} is not an address of this machine"
    else:
        text = f"cannot listen on {where}: {exc.strerror or exc}"
    err = OSError(text)
    err.errno = exc.errno
    return err

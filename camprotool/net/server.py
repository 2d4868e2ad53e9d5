"""``EmulatorServer``: the protocol's server side, for tests, demos and notebooks.

It listens on a main port and a pool of data ports and behaves as described
in :mod:`camprotool.net.handlers`, over an SQLite :class:`~camprotool.net.store.Store`
loaded from a scenario (the Contract's demo data by default).

Two ways to run it:

* blocking-free from a notebook or a script: ``srv = EmulatorServer();
  srv.start()`` runs it on an event loop in a background thread and returns
  once it listens (``srv.port``, ``srv.data_ports`` are the real ports when
  0 / a count was asked for); ``srv.stop()`` or ``with EmulatorServer() as srv:``;
* inside your own asyncio program: ``async with EmulatorServer() as srv:`` or
  ``await srv.serve()`` (runs until cancelled).

Robustness is part of the job: a peer can send anything. Limits are on by
default (connections, frame size, bytes without a frame, bad frames, login
failures, silence, an unread push backlog); a misbehaving connection is
logged and closed, never the server. Account passwords are hashed in worker
threads (at most ``hash_workers`` at once) so a login flood cannot stall the
event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import socket
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from camprotool.net.addresses import format_endpoint
from camprotool.net.brake import BrakeConfig, LoginBrake
from camprotool.net.breaches import Breaches
from camprotool.net.handlers import HANDLERS, DataSession, Handler, MainSession
from camprotool.net.listening import PEER_GONE, ListeningService
from camprotool.net.ports import DataPortPool, parse_data_ports
from camprotool.net.scenario import Scenario, load_scenario
from camprotool.net.store import BindOutcome, Camera, LoginInfo, Store
from camprotool.net.stream import MessageStream, abort_writer
from camprotool.protocol import Dialect
from camprotool.protocol.catalogue import CATALOGUE, Catalogue, Direction
from camprotool.protocol.conversation import Event, MessageEvent

log = logging.getLogger("camprotool.net.server")

DEFAULT_MAX_FRAME = 64 * 1024  # the longest real message is well under 1 KiB


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Every knob of the emulator; see :class:`EmulatorServer` for the meaning."""

    host: str = "127.0.0.1"
    port: int = 0
    data_ports: tuple[int, ...] | int = 20
    dialect: Dialect = field(default_factory=Dialect)
    heartbeat_timeout: float = 90.0
    data_port_timeout: float = 10.0
    data_idle_timeout: float = 30.0
    max_connections: int = 1000
    max_per_address: int | None = 100
    login_timeout: float | None = 20.0
    max_login_failures: int = 5
    max_before_login: int | None = 10
    max_status_ids: int | None = 20
    require_login: bool = True
    reply_delay: float = 0.0
    max_write_buffer: int = 1 << 20
    hash_workers: int = 2
    simulate: float | None = None
    seed: int | None = 0


class EmulatorServer(ListeningService):
    """An emulated camera-sync server.

    Parameters (all keyword, with defaults fit for a notebook):

    ``host``/``port``
        where the main port listens; ``port=0`` picks a free port.
    ``data_ports``
        ``"9001-9020"``, a list of ports, or a count of free ports to pick
        (default 20). ``0`` means no data port at all: every
        ``CreatDataSocket`` gets an empty ``ReturnDataSocketPort``.
    ``scenario``
        a JSON/TOML path, a dict or a :class:`Scenario`; default the demo.
    ``db``
        an SQLite file to keep accounts and bindings in (default: memory).
        A file that already holds data gets only the explicit ``scenario``
        added to it (never the demo). The server closes the file when it
        stops and opens it again when it starts.
    ``store``
        an existing :class:`Store` (then ``scenario``/``db`` are not used);
        it stays the caller's to close.
    ``dialect``
        wire dialect, e.g. ``"lp32le:gbk"``.
    ``heartbeat_timeout``
        seconds of silence after which a main connection is dropped (90).
    ``data_port_timeout``
        seconds a handed-out data port waits for its connection (10).
    ``data_idle_timeout``
        seconds of silence after which a data connection is closed (30).
    ``max_connections``, ``max_frame``, ``max_login_failures``, ``max_status_ids``
        limits (1000 connections, 64 KiB frames, 5 failed logins per
        connection, 20 ids answered per status query).
    ``max_per_address``
        connections open at once from one IP address (100; ``None``: no
        limit). Kept below ``max_connections`` so one address (1,000 idle
        sockets) cannot take every slot: other addresses still get in.
    ``login_timeout``
        seconds a main connection has to log in (20); then it is closed, so
        idle or trickling sockets cannot hold slots. ``None``: no deadline.
        Not applied with ``require_login=False``.
    ``max_before_login``
        messages other than ``Login`` (heartbeats, unknown commands, requests
        refused for want of a login) a main connection may send before it
        logs in (10); one more closes it. ``None``: no limit.
    ``require_login``
        refuse ``CreatDataSocket``/status queries before ``LoginOk`` (True).
    ``catalogue``, ``handlers``
        the commands spoken (default the protocol's; an extended
        :class:`~camprotool.protocol.catalogue.Catalogue` adds commands) and
        ``{command: handler}`` added to, or replacing, the emulator's dispatch
        table (:data:`camprotool.net.handlers.HANDLERS`): a new request/answer
        command is a catalogue entry and one handler.
    ``brake``
        the brute-force brake on failed logins, per address and per account
        (:mod:`camprotool.net.brake`): ``True`` its defaults, a
        :class:`~camprotool.net.brake.BrakeConfig`, or ``False`` for none.
    ``simulate``, ``seed``
        random status flips and alarms, ``simulate`` events per second,
        reproducible with ``seed``.
    ``reply_delay``
        seconds to wait before each answer (a slow server, for tests).
    ``record``
        a pcapng path (or binary file) to record every connection to.
    """

    _thread_name = "camprotool-server"
    _what = "server"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        data_ports: str | int | Iterable[int] | None = 20,
        *,
        scenario: str | Path | dict | Scenario | None = None,
        db: str | Path | None = None,
        store: Store | None = None,
        dialect: str | Dialect = "line",
        heartbeat_timeout: float = 90.0,
        data_port_timeout: float = 10.0,
        data_idle_timeout: float = 30.0,
        max_connections: int = 1000,
        max_per_address: int | None = 100,
        login_timeout: float | None = 20.0,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_login_failures: int = 5,
        max_before_login: int | None = 10,
        max_status_ids: int | None = 20,
        require_login: bool = True,
        reply_delay: float = 0.0,
        hash_workers: int = 2,
        simulate: float | None = None,
        seed: int | None = 0,
        record: str | Path | IO[bytes] | None = None,
        reveal_passwords: bool = False,
        scrypt_n: int | None = None,
        brake: LoginBrake | BrakeConfig | bool = True,
        catalogue: Catalogue = CATALOGUE,
        handlers: Mapping[str, Handler] | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} is outside 0-65535")
        for name, value in (("heartbeat_timeout", heartbeat_timeout),
                            ("data_port_timeout", data_port_timeout),
                            ("data_idle_timeout", data_idle_timeout)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if login_timeout is not None and not (login_timeout > 0 and math.isfinite(login_timeout)):
            raise ValueError(f"login_timeout must be > 0 seconds or None, got {login_timeout}")
        if max_per_address is not None and max_per_address < 1:
            raise ValueError(f"max_per_address must be >= 1 or None, got {max_per_address}")
        if max_before_login is not None and max_before_login < 0:
            raise ValueError(f"max_before_login must be >= 0 or None, got {max_before_login}")
        if simulate is not None and not (simulate > 0 and math.isfinite(simulate)):
            raise ValueError(f"simulate must be a rate > 0 events per second, got {simulate}")
        parsed_ports = parse_data_ports(data_ports)
        base = Dialect.parse(dialect)
        self.config = ServerConfig(
            host=host, port=port,
            data_ports=tuple(parsed_ports) if isinstance(parsed_ports, list) else parsed_ports,
            dialect=Dialect.parse(base, max_frame=max_frame),
            heartbeat_timeout=heartbeat_timeout, data_port_timeout=data_port_timeout,
            data_idle_timeout=data_idle_timeout, max_connections=max_connections,
            max_per_address=max_per_address, login_timeout=login_timeout,
            max_login_failures=max_login_failures, max_before_login=max_before_login,
            max_status_ids=max_status_ids,
            require_login=require_login, reply_delay=reply_delay,
            hash_workers=max(1, hash_workers), simulate=simulate, seed=seed,
        )
        super().__init__(record, reveal_passwords)
        self._own_store = store is None
        if store is None:
            kwargs = {} if scrypt_n is None else {"scrypt_n": scrypt_n}
            store = Store(db or ":memory:", **kwargs)
            if scenario is not None or store.is_empty():
                store.load(load_scenario(scenario))
        elif scenario is not None:
            store.load(load_scenario(scenario))
        self.store = store
        self.stats: Counter[str] = Counter()
        self.brake = LoginBrake.from_option(brake)
        self.catalogue = catalogue
        self.handlers: dict[str, Handler] = {**HANDLERS, **(handlers or {})}
        for name in self.handlers:
            spec = catalogue.by_name.get(name)
            if spec is None:
                raise ValueError(f"a handler for {name!r}, which is not in the catalogue")
            if spec.direction is not Direction.C2S:
                raise ValueError(f"a handler for {name!r}, which the server sends: handlers "
                                 "answer client commands")
        #: rule breaches by clients (see :attr:`violations`)
        self._breaches = Breaches(log, reveal_passwords)
        self.data_ports: list[int] = []
        self._pool: DataPortPool | None = None
        self._mains: set[MainSession] = set()
        self._hash_gate: asyncio.Semaphore | None = None
        self._sim_task: asyncio.Task | None = None

    # ------------------------------------------------------------ properties
    @property
    def host(self) -> str:
        return self.config.host

    @property
    def dialect(self) -> Dialect:
        return self.config.dialect

    @property
    def listen(self) -> tuple[str, int]:
        """``(host, port)`` as configured (port 0: a free one, see :attr:`port`)."""
        return self.config.host, self.config.port

    @property
    def max_connections(self) -> int:
        return self.config.max_connections

    @property
    def max_per_address(self) -> int | None:
        return self.config.max_per_address

    def __repr__(self) -> str:
        state = (f"listening on {format_endpoint(self.address)}" if self.running
                 else "stopped")
        return f"<EmulatorServer {state} dialect={self.dialect.name}>"

    # ------------------------------------------------------------ lifecycle (asyncio)
    async def _bind(self) -> None:
        """The main port, then every data port (``port=0``/a count: free ones)."""
        cfg = self.config
        if self._own_store:
            self.store.reopen()  # closed by the last stop
        self._hash_gate = asyncio.Semaphore(cfg.hash_workers)
        self.data_ports = []
        host = _resolve(cfg.host)
        main = await self._listen(host, cfg.port, self._on_main)
        self.port = main.sockets[0].getsockname()[1]
        wanted = ([0] * cfg.data_ports if isinstance(cfg.data_ports, int)
                  else list(cfg.data_ports))
        for p in wanted:
            srv = await self._listen(host, p, self._on_data)
            self.data_ports.append(srv.sockets[0].getsockname()[1])

    def _started(self) -> None:
        cfg = self.config
        self._pool = DataPortPool(self.data_ports)
        if cfg.simulate:
            from camprotool.net.simulation import simulate
            rng = random.Random(cfg.seed)
            self._sim_task = asyncio.create_task(simulate(self, cfg.simulate, rng))
        log.info("listening on %s, data ports %s", format_endpoint((cfg.host, self.port)),
                 self.data_ports)

    async def stop_async(self) -> None:
        """Stop listening, close every connection, flush the recording."""
        if self._sim_task is not None:
            self._sim_task.cancel()
            self._sim_task = None
        if self._pool is not None:
            self._pool.cancel_all()
        await super().stop_async()
        if self._own_store and self.store.path != ":memory:":
            self.store.close()  # a file store of ours (a memory one would lose its data)
        log.info("stopped")

    # ------------------------------------------------------------ thread-safe API
    def set_online(self, camera_id: str, online: bool | None) -> int:
        """Set a camera's status; on a change push ``PrushCaramerOnlineStatus`` to
        every logged-in owner. Returns how many connections were told.
        ``KeyError`` for an unknown camera. Safe from any thread.
        """
        return self._run_on_loop(lambda: self._set_online(camera_id, online))

    def _set_online(self, camera_id: str, online: bool | None) -> int:
        if not self.store.set_online(camera_id, online):
            return 0
        return self._push(camera_id, "PrushCaramerOnlineStatus",
                          {"camera_id": camera_id, "online": online})

    def raise_alarm(self, camera_id: str, alarm_type: str = "motion") -> int:
        """Push ``PrushCaramerAlarmInfo id:alarm_type`` to every logged-in owner.

        Returns how many connections were told. ``KeyError`` for an unknown
        camera; ``ValueError`` for a type the dialect cannot carry.
        """
        if self.store.camera(camera_id) is None:
            raise KeyError(f"no camera {camera_id!r}")
        from camprotool.protocol import encode
        params = {"camera_id": camera_id, "alarm_type": str(alarm_type)}
        encode("PrushCaramerAlarmInfo", params, self.dialect)  # refuse early, in the caller
        return self._run_on_loop(lambda: self._push(camera_id, "PrushCaramerAlarmInfo", params))

    def _push(self, camera_id: str, command: str, params: dict) -> int:
        owners = set(self.store.owners(camera_id))
        sent = 0
        for session in list(self._mains):
            if session.user in owners and session.push(command, params):
                sent += 1
        self.stats["pushes"] += sent
        log.info("%s %s -> %d connection(s)", command, params, sent)
        return sent

    @property
    def violations(self) -> pd.DataFrame:
        """Protocol rules (PROTOCOL.md section 5) clients broke, as the conversation
        layer judged them: ts, conn, channel, client, direction, rule, command, detail
        (passwords masked). The newest 10 000 (:mod:`camprotool.net.breaches`)."""
        return self._breaches.frame()

    def _judged(self, stream: MessageStream, events: list[Event]) -> None:
        """Keep and log the violations in ``events`` that the client committed."""
        self.stats["violations"] += self._breaches.add(stream.conv, events,
                                                       by=stream.peer.incoming)

    def sessions(self) -> list[dict]:
        """The main connections now open: id, client address, logged-in user."""
        return self._run_on_loop(lambda: [
            {"conn": s.stream.id, "client": s.stream.conv.client, "user": s.user}
            for s in self._mains])

    # ------------------------------------------------------------ used by handlers
    async def check_password(self, user: str, password: str) -> bool:
        assert self._hash_gate is not None
        async with self._hash_gate:
            return await asyncio.get_running_loop().run_in_executor(
                None, self.store.check_password, user, password)

    async def login(self, user: str, password: str, ip: str) -> LoginInfo | None:
        assert self._hash_gate is not None
        async with self._hash_gate:
            return await asyncio.get_running_loop().run_in_executor(
                None, self.store.login, user, password, ip)

    async def bind(self, user: str, camera_id: str, password: str
                   ) -> tuple[BindOutcome, Camera | None]:
        return await asyncio.get_running_loop().run_in_executor(
            None, self.store.bind, user, camera_id, password)

    def reserve_data_port(self, host: str, user: str, main_conn: int) -> int | None:
        assert self._pool is not None and self._loop is not None
        res = self._pool.reserve(host, user, main_conn)
        if res is None:
            self.stats["data_ports_exhausted"] += 1
            log.warning("no free data port for %s (%d in the pool)", user, len(self.data_ports))
            return None
        res.timer = self._loop.call_later(self.config.data_port_timeout, self._expire, res.port)
        log.info("data port %d reserved for %s from %s", res.port, user, host)
        return res.port

    def _expire(self, port: int) -> None:
        if self._pool is not None and self._pool.expire(port):
            log.info("data port %d: nobody connected in time, back in the pool", port)

    # ------------------------------------------------------------ connections
    def _connection_refused(self, writer: asyncio.StreamWriter, per_address: bool = False
                            ) -> None:
        peer = format_endpoint(writer.get_extra_info("peername"))
        if per_address:
            self.stats["refused_per_address"] += 1
            log.warning("per-address limit (%d connections) reached: refusing %s",
                        self.max_per_address, peer)
            return
        self.stats["refused_limit"] += 1
        log.warning("connection limit (%d) reached: refusing %s", self.max_connections, peer)

    def _login_deadline(self, session: MainSession) -> None:
        if session not in self._mains:
            return
        if session.login_pending:
            # its Login waits at the brake (at most the brake's longest turn): it gets its
            # answer first, then the deadline is looked at again; never silence
            asyncio.get_running_loop().call_later(1.0, self._login_deadline, session)
            return
        if session.user is None:
            self.stats["login_timeouts"] += 1
            log.warning("%r: not logged in within %g s: closing", session.stream,
                        self.config.login_timeout)
            session.stream.abort()

    def _connection_failed(self, writer: asyncio.StreamWriter, exc: Exception) -> None:
        if isinstance(exc, PEER_GONE):
            log.debug("connection ended: %s", exc)
            return
        self.stats["handler_errors"] += 1
        log.exception("internal error on a connection from %s: closing it",
                      format_endpoint(writer.get_extra_info("peername")))

    async def _on_main(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self.log is not None
        self.stats["connections"] += 1
        stream = MessageStream(reader, writer, self.log, "main", "server")
        session = MainSession(self, stream)
        self._mains.add(session)
        log.debug("%r: connected", stream)
        cfg = self.config
        deadline = None
        if cfg.login_timeout is not None and cfg.require_login:
            deadline = asyncio.get_running_loop().call_later(cfg.login_timeout,
                                                             self._login_deadline, session)
        try:
            await self._pump(stream, session.handle, self.config.heartbeat_timeout,
                             "no heartbeat")
        finally:
            if deadline is not None:
                deadline.cancel()
            self._mains.discard(session)
            self._judged(stream, await stream.close())
            log.debug("%r: closed", stream)

    async def _on_data(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self.log is not None and self._pool is not None
        self.stats["connections"] += 1
        port = writer.get_extra_info("sockname")[1]
        peer = writer.get_extra_info("peername")
        res = self._pool.claim(port, peer[0])
        if res is None:
            self.stats["data_refused"] += 1
            log.warning("data port %d: connection from %s refused (port not handed out to "
                        "that address, or already in use)", port, format_endpoint(peer))
            abort_writer(writer)
            return
        stream = MessageStream(reader, writer, self.log, "data", "server")
        main = next((m for m in self._mains if m.stream.id == res.main_conn), None)
        if main is not None:  # the data connection joins its main connection's conversation
            main.conversation.accept_data(port, stream.conv.protocol)
        session = DataSession(self, stream, res.user)
        log.info("%r: data connection for %s (main conn %d)", stream, res.user, res.main_conn)
        try:
            await self._pump(stream, session.handle, self.config.data_idle_timeout, "idle")
        finally:
            self._pool.release(port)
            self._judged(stream, await stream.close())

    async def _pump(self, stream: MessageStream, handle: Callable, timeout: float,
                    why: str) -> None:
        """Read, hand each message to ``handle``, flush; stop on EOF, silence or a limit.

        The conversation has judged every message already: the client's rule
        breaches go to :attr:`violations` and the log, the message to its handler."""
        limit = 2 * self.dialect.max_frame + 8
        while True:
            try:
                events = await stream.receive_events(timeout)
            except TimeoutError:
                self.stats["timeouts"] += 1
                log.info("%r: %s for %.3g s: closing", stream, why, timeout)
                return
            if events is None:
                return
            self._judged(stream, events)
            if stream.unframed > limit:
                self.stats["bad_frames"] += 1
                log.warning("%r: %d bytes without a complete frame: closing", stream,
                            stream.unframed)
                return
            for event in events:
                if isinstance(event, MessageEvent) and event.direction == "c2s" \
                        and not await handle(event.message):
                    await stream.drain(5)
                    return
            await stream.drain(timeout)


def _resolve(host: str) -> str:
    """One address for ``host`` so port 0 gives one port, not one per address family."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    return str(infos[0][4][0])


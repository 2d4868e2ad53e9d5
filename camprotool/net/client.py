"""The protocol's client side: :class:`AsyncClient` (asyncio) and :class:`Client` (blocking).

``Client`` is the one for notebooks and scripts: it runs an ``AsyncClient``
on a private event loop in a background thread (see :mod:`camprotool.net.loop`),
so ``client.login("demo", "demo")`` simply returns, even inside a running
Jupyter kernel. ``AsyncClient`` is for asyncio programs.

The protocol has no request ids: answers come back in order on the main
connection, interleaved with server pushes. Which answer belongs to which
request is the conversation layer's job
(:class:`~camprotool.protocol.conversation.ClientConversation`, from the
catalogue's ``answers``): every byte read becomes events, and an
:class:`~camprotool.protocol.conversation.Answer` names the request it
answers. So one request is outstanding at a time (a lock), it waits for the
answer to *its* request, and pushes go to callbacks and a queue whatever
else is happening, including in the middle of a sync on a data connection.
A request given up on (timeout, cancel) still owes its answer; when it comes
it is paired with that request, not the next one, and dropped.

:meth:`AsyncClient.request` sends any request of the catalogue (an extended
one too: ``catalogue=``) and returns its answer, so a new request/answer
command needs no new client code.

Every byte either way, on main and data connections, is logged live
(``client.messages``) and can be recorded to pcapng (``record=``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from camprotool.net.addresses import format_endpoint, parse_endpoint
from camprotool.net.errors import (
    ConnectionLost,
    LoginFailed,
    NoDataPort,
    NotConnected,
    ReplyTimeout,
    SyncError,
)
from camprotool.net.loop import LoopThread
from camprotool.net.models import Camera, SyncResult, UploadResult, as_camera
from camprotool.net.recording import MessageLog
from camprotool.net.stream import MessageStream, open_stream
from camprotool.net.table import mask_params
from camprotool.protocol import Dialect, LocalProtocolError, Message, encode
from camprotool.protocol.catalogue import CATALOGUE, MAX_STATUS_IDS, Catalogue
from camprotool.protocol.conversation import (
    Answer,
    ClientConversation,
    Event,
    Other,
    Push,
    Request,
    ViolationEvent,
)
from camprotool.protocol.typed_messages import (
    DownloadSucess,
    LoginOk,
    ReturnCaramerOnlineStatus,
    ReturnDataSocketPort,
    UploadFail,
    UploadSucess,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("camprotool.net.client")

PushCallback = Callable[[Message], Any]
DEFAULT_PORT = 9000
_CLOSED = object()
_A = TypeVar("_A", bound=Message)


def _answer_as(reply: Message, cls: type[_A], request: str) -> _A:
    """``reply`` as the answer the code goes on with (the typed class, so its fields are
    checked); another answer, which the catalogue would not pair, is a server we cannot
    follow."""
    if not isinstance(reply, cls):
        raise SyncError(f"{request}: unexpected answer {mask_params(reply)!r}")
    return reply


def _address(host: str | tuple, port: int | None) -> tuple[str, int]:
    """``(host, port)``, ``"host:port"`` (port None) or a bare host (port 9000)."""
    if isinstance(host, tuple):
        return str(host[0]), int(host[1])
    if port is None:
        if ":" in host:
            return parse_endpoint(host)
        port = DEFAULT_PORT
    if not 0 < port <= 65535:
        raise ValueError(f"port {port} is outside 1-65535")
    return host, port


def _request_index(events: list[Event], command: str) -> int:
    """The conversation's index of the request just sent (its :class:`Request` event)."""
    for e in events:
        if isinstance(e, Request):
            return e.index
    raise LocalProtocolError(f"{command} expects no answer: nothing to wait for")


class _DataChannel:
    """One data connection of the client: send a request, wait for its answer."""

    def __init__(self, stream: MessageStream, timeout: float) -> None:
        self.stream = stream
        self.timeout = timeout
        self._pending: list[Event] = []

    async def request(self, command: str, params: Mapping[str, Any] | str) -> Message:
        index = _request_index(self.stream.send_events(command, params), command)
        await self.stream.drain(self.timeout)
        while True:
            while self._pending:
                event = self._pending.pop(0)
                if isinstance(event, Answer) and event.request is not None \
                        and event.request.index == index:
                    return event.message
                if isinstance(event, Answer):
                    log.warning("data connection: %s answers no request of ours: ignored",
                                event.command)
                elif isinstance(event, ViolationEvent) and event.direction == "s2c":
                    log.info("data connection: the server broke %s: %s", event.rule,
                             event.detail)
            try:
                events = await self.stream.receive_events(self.timeout)
            except TimeoutError:
                raise ReplyTimeout(f"no answer to {command} on the data connection within "
                                   f"{self.timeout} s") from None
            if events is None:
                raise SyncError(f"the server closed the data connection before answering "
                                f"{command}")
            self._pending.extend(events)


class AsyncClient:
    """Asyncio client. Use in ``async with AsyncClient(host, port) as c:``.

    ``timeout`` bounds every wait for an answer; ``heartbeat_interval`` (s)
    sends ``Heartbeat`` on the main connection while connected (``None``:
    never); ``max_status_ids`` is the query size :meth:`check_status` splits
    at; ``local_address`` binds the client's sockets (e.g. to test the
    server's data-port address check); ``reveal_passwords`` is the default for
    :attr:`messages`; ``record`` a pcapng path; ``catalogue`` the commands
    spoken (default the protocol's; an extended one adds commands that
    :meth:`request` can send).
    """

    def __init__(
        self,
        host: str | tuple = "127.0.0.1",
        port: int | None = None,
        *,
        dialect: str | Dialect = "line",
        timeout: float = 10.0,
        heartbeat_interval: float | None = 30.0,
        max_status_ids: int = MAX_STATUS_IDS,
        local_address: str | None = None,
        reveal_passwords: bool = False,
        record: str | Path | IO[bytes] | None = None,
        push_queue_size: int = 10_000,
        log_: MessageLog | None = None,
        catalogue: Catalogue = CATALOGUE,
    ) -> None:
        self.host, self.port = _address(host, port)
        self.dialect = Dialect.parse(dialect)
        self.timeout = timeout
        self.heartbeat_interval = heartbeat_interval
        self.max_status_ids = max(1, max_status_ids)
        self.local_address = local_address
        self.catalogue = catalogue
        self.log = log_ or MessageLog(self.dialect, record=record,
                                      reveal_passwords=reveal_passwords, catalogue=catalogue)
        self.conversation: ClientConversation | None = None
        self.user: str | None = None
        self._password: str | None = None
        self.login_ok: LoginOk | None = None
        self.server_camera_count: int | None = None
        self._main: MessageStream | None = None
        self._reader_task: asyncio.Task | None = None
        self._heartbeat_task: asyncio.Task | None = None
        self._request_lock: asyncio.Lock | None = None
        #: the request waiting for its answer: (its index in the conversation, future)
        self._waiter: tuple[int, asyncio.Future] | None = None
        self._callbacks: list[PushCallback] = []
        self._queue_size = push_queue_size
        self._queue: asyncio.Queue | None = None
        self._lost: Exception | None = None
        self.unsolicited: list[Message] = []

    # ---------------------------------------------------------------- state
    @property
    def connected(self) -> bool:
        return self._main is not None and self._lost is None

    @property
    def messages(self) -> pd.DataFrame:
        """Every message sent and received so far (``Capture.messages`` columns)."""
        return self.log.dataframe()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "not connected"
        who = f" as {self.user}" if self.user else ""
        return f"<{type(self).__name__} {format_endpoint((self.host, self.port))} {state}{who}>"

    # ---------------------------------------------------------------- connection
    async def connect(self) -> None:
        """Open the main connection (no-op when already connected)."""
        if self.connected:
            return
        await self._drop_main()  # what is left of a lost connection
        reader, writer = await self._open(self.port, "main")
        self._main = MessageStream(reader, writer, self.log, "main", "client")
        self.conversation = ClientConversation(self.dialect, catalogue=self.catalogue,
                                               main=self._main.conv.protocol)
        self._lost = None
        self._request_lock = asyncio.Lock()
        if self._queue is None:
            self._queue = asyncio.Queue(self._queue_size)
        else:  # keep unread pushes, not the old connection's end marker
            items = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
            for item in items:
                if item is not _CLOSED:
                    self._queue.put_nowait(item)
        self._reader_task = asyncio.create_task(self._read_main())
        if self.heartbeat_interval:
            self._heartbeat_task = asyncio.create_task(self._heartbeats())

    async def _open(self, port: int, what: str) -> tuple[asyncio.StreamReader,
                                                          asyncio.StreamWriter]:
        local = None
        if what == "data" and self._main is not None:
            local = (self._main.sockname[0], 0)  # the server checks the data peer's address
        elif self.local_address:
            local = (self.local_address, 0)
        return await open_stream(self.host, port, local=local, timeout=self.timeout,
                                 what=what, timeout_error=ReplyTimeout)

    async def close(self) -> None:
        """Close every connection, stop heartbeats, flush the recording."""
        await self._drop_main()
        self._fail(ConnectionLost("the client was closed"))
        self.log.close()

    async def _drop_main(self) -> None:
        """Stop the heartbeat and reader tasks and close the main connection, if any."""
        for task in (self._heartbeat_task, self._reader_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._heartbeat_task = self._reader_task = None
        if self._main is not None:
            await self._main.close()
            self._main = None

    async def __aenter__(self) -> AsyncClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---------------------------------------------------------------- reader
    async def _read_main(self) -> None:
        assert self._main is not None
        try:
            while True:
                events = await self._main.receive_events()
                if events is None:
                    self._fail(ConnectionLost("the server closed the main connection"))
                    return
                for event in events:
                    self._dispatch(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(ConnectionLost(f"main connection failed: {exc}"))

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, Push):
            self._deliver_push(event.message)
            return
        if isinstance(event, ViolationEvent):
            if event.direction == "s2c":
                log.info("the server broke %s: %s", event.rule, event.detail)
            return
        if isinstance(event, Other) and event.direction == "s2c":
            self._unsolicited(event.message)  # a server message we asked nothing for
            return
        if not isinstance(event, Answer):
            return
        msg = event.message
        waiter = self._waiter
        if event.request is not None and waiter is not None \
                and event.request.index == waiter[0]:
            self._waiter = None
            if not waiter[1].done():
                waiter[1].set_result(msg)
            else:  # the request is being given up on right now
                log.info("%s came as its request was given up on: dropped", msg.command)
            return
        if event.request is not None:  # answers in order: a request given up on
            log.info("late %s (to a request given up on) dropped", msg.command)
            return
        self._unsolicited(msg)

    def _unsolicited(self, msg: Message) -> None:
        log.info("unsolicited %s %s", msg.command, mask_params(msg))
        self.unsolicited.append(msg)
        del self.unsolicited[:-1000]

    def _deliver_push(self, msg: Message) -> None:
        q = self._queue
        if q is not None:
            if q.full():
                q.get_nowait()  # keep the newest pushes
                log.warning("push queue full: oldest push dropped")
            q.put_nowait(msg)
        for cb in list(self._callbacks):
            try:
                cb(msg)
            except Exception:
                log.exception("push callback %r failed", cb)

    def _fail(self, exc: Exception) -> None:
        if self._lost is None:
            self._lost = exc
        if self._waiter is not None and not self._waiter[1].done():
            self._waiter[1].set_exception(exc)
        if self._queue is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(_CLOSED)

    async def _heartbeats(self) -> None:
        assert self.heartbeat_interval
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            if not self.connected:
                return
            with contextlib.suppress(ConnectionError, NotConnected):
                await self.heartbeat()

    # ---------------------------------------------------------------- requests
    def _stream(self) -> MessageStream:
        if self._main is None:
            raise NotConnected("not connected: call connect() (or login()) first")
        if self._lost is not None:
            raise NotConnected(f"not connected: {self._lost}")
        return self._main

    async def request(self, command: str, fields: Mapping[str, Any] | str = "") -> Message:
        """Send any request of the catalogue on the main connection and return its answer
        (whichever the catalogue lists: check ``answer.command``). ``ReplyTimeout`` when
        none comes in time; ``LocalProtocolError`` for a command that is no request."""
        stream = self._stream()
        assert self._request_lock is not None
        async with self._request_lock:
            fut = asyncio.get_running_loop().create_future()
            index = _request_index(stream.send_events(command, fields), command)
            self._waiter = (index, fut)
            try:
                await stream.drain(self.timeout)
                async with asyncio.timeout(self.timeout):
                    return await fut
            except TimeoutError:
                raise ReplyTimeout(f"no answer to {command} within {self.timeout} s") from None
            finally:
                # Given up on (timeout, cancel): its answer, if it comes, is paired with
                # this request by the conversation and dropped (see _dispatch).
                if self._waiter is not None and self._waiter[0] == index:
                    self._waiter = None

    async def send_raw(self, command: str, params: str = "") -> None:
        """Send any command (full or short name) on the main connection, unchecked (to
        test a server's defences); no wait."""
        stream = self._stream()
        stream.send_raw(command, params)
        await stream.drain(self.timeout)

    async def heartbeat(self) -> None:
        await self.send_raw("Heartbeat", "")

    async def login(self, user: str, password: str) -> LoginOk:
        """Log in (connecting first if needed); the ``LoginOk`` message, or
        :class:`LoginFailed` carrying the server's reason."""
        if not self.connected:
            await self.connect()
        reply = await self.request("Login", {"user": user, "password": password})
        if reply.command == "LoginError":
            raise LoginFailed(reply.params)
        ok = _answer_as(reply, LoginOk, "Login")
        self.user, self._password = user, password
        self.login_ok = ok
        self.server_camera_count = ok.camera_count
        return ok

    async def create_data_socket(self) -> int:
        """Ask for a data port: the port, or :class:`NoDataPort` when the answer is empty."""
        if self.user is None or self._password is None:
            raise NotConnected("log in first: CreatDataSocket needs the account's credentials")
        reply = await self.request("CreatDataSocket",
                                   {"user": self.user, "password": self._password})
        if reply.command == "LoginError":
            raise LoginFailed(reply.params, "CreatDataSocket")
        port = _answer_as(reply, ReturnDataSocketPort, "CreatDataSocket").port
        if reply.error and reply.params.strip():
            raise SyncError(f"unusable ReturnDataSocketPort {reply.params!r}: {reply.error}")
        if port is None:
            raise NoDataPort()
        return port

    @contextlib.asynccontextmanager
    async def _data_channel(self) -> AsyncIterator[_DataChannel]:
        port = await self.create_data_socket()
        reader, writer = await self._open(port, "data")
        stream = MessageStream(reader, writer, self.log, "data", "client")
        if self.conversation is not None:  # judged as announced by the main connection
            self.conversation.open_data(port, time.time_ns(), stream.conv.protocol)
        try:
            yield _DataChannel(stream, self.timeout)
        finally:
            await stream.close()

    async def upload(self, cameras: Iterable[Any]) -> list[UploadResult]:
        """Upload cameras ``(id, password)`` on a data connection, one per message."""
        cams = [as_camera(c) for c in cameras]
        if not cams:
            return []
        total = len(cams)
        for i, cam in enumerate(cams, 1):  # refuse what cannot be sent before connecting
            encode("UploadCaramer", {"camera_id": cam.id, "camera_password": cam.password,
                                     "current": i, "total": total}, self.dialect)
        results = []
        async with self._data_channel() as data:
            for i, cam in enumerate(cams, 1):
                reply = await data.request(
                    "UploadCaramer", {"camera_id": cam.id, "camera_password": cam.password,
                                      "current": i, "total": total})
                if isinstance(reply, UploadSucess):
                    result = UploadResult(camera_id=reply.camera_id or cam.id, ok=True,
                                          online=reply.online, reason=None,
                                          synced=reply.synced, total=reply.total)
                else:
                    fail = _answer_as(reply, UploadFail, "UploadCaramer")
                    result = UploadResult(camera_id=fail.camera_id or cam.id, ok=False,
                                          online=None, reason=fail.reason,
                                          synced=fail.synced, total=fail.total)
                results.append(result)
                if result.synced is not None and result.synced >= total:
                    break
        return results

    async def download(self) -> list[Camera]:
        """Download the account's cameras; ``[]`` when the server answers ``DownloadFail``."""
        cams: list[Camera] = []
        async with self._data_channel() as data:
            done = 0
            while True:
                reply = await data.request("DownLoadCaramer", {"downloaded": done})
                if reply.command == "DownloadFail":
                    if done == 0:
                        log.info("download: %s", reply.params)
                        break
                    raise SyncError(f"download stopped after {done} cameras: {reply.params}")
                got = _answer_as(reply, DownloadSucess, "DownLoadCaramer")
                current, total = got.current, got.total
                cam_id, cam_password = got.camera_id, got.camera_password
                if (got.error or current is None or total is None or cam_id is None
                        or cam_password is None or current <= done):
                    raise SyncError(f"bad DownloadSucess {mask_params(got)!r}: "
                                    f"{got.error or 'current does not advance'}")
                cams.append(Camera(cam_id, cam_password, got.online))
                done = current
                if current >= total:
                    break
        self.server_camera_count = len(cams)
        return cams

    async def sync(self, local_cameras: Iterable[Any] = (), server_count: int | None = None
                   ) -> SyncResult:
        """Upload when the local list is longer than the server's count, download when
        shorter, nothing when equal (the source's rule). ``server_count`` defaults to
        the last ``LoginOk``'s."""
        local = [as_camera(c) for c in local_cameras]
        count = self.server_camera_count if server_count is None else server_count
        if count is None:
            raise NotConnected("log in first: sync compares with LoginOk's camera count")
        if len(local) > count:
            return SyncResult("upload", len(local), count, uploaded=await self.upload(local))
        if len(local) < count:
            return SyncResult("download", len(local), count, cameras=await self.download())
        return SyncResult("none", len(local), count)

    async def check_status(self, ids: Iterable[str]) -> dict[str, bool | None]:
        """Online status per id (``None``: the server has none), asking at most
        ``max_status_ids`` (20) ids per query and merging the answers."""
        wanted = list(dict.fromkeys(str(i) for i in ids))
        result: dict[str, bool | None] = {}
        for start in range(0, len(wanted), self.max_status_ids):
            chunk = wanted[start : start + self.max_status_ids]
            reply = await self.request("CheckCaramerOnlineStatus", {"ids": chunk})
            if reply.command == "LoginError":
                raise LoginFailed(reply.params, "CheckCaramerOnlineStatus")
            if reply.error:
                log.warning("status answer partly unreadable: %s", reply.error)
            statuses = _answer_as(reply, ReturnCaramerOnlineStatus, "CheckCaramerOnlineStatus")
            answered = dict(statuses.statuses or ())
            missing = [i for i in chunk if i not in answered]
            if missing:
                log.warning("the server did not answer for %d id(s): %s", len(missing),
                            ", ".join(missing[:5]))
            result.update(answered)
        return {i: result[i] for i in wanted if i in result}

    # ---------------------------------------------------------------- pushes
    def on_push(self, callback: PushCallback) -> PushCallback:
        """Call ``callback(message)`` for every push (on the client's loop; keep it quick)."""
        self._callbacks.append(callback)
        return callback

    def remove_push_callback(self, callback: PushCallback) -> None:
        with contextlib.suppress(ValueError):
            self._callbacks.remove(callback)

    async def next_push(self, timeout: float | None = None) -> Message | None:
        """The next push, or None after ``timeout`` seconds or when the connection ends."""
        if self._queue is None:
            self._queue = asyncio.Queue(self._queue_size)
        try:
            async with asyncio.timeout(timeout):
                item = await self._queue.get()
        except TimeoutError:
            return None
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # keep telling later readers
            return None
        return item

    async def pushes(self, timeout: float | None = None) -> AsyncIterator[Message]:
        """``async for push in client.pushes(timeout=5)``: ends after ``timeout`` s of quiet."""
        while (msg := await self.next_push(timeout)) is not None:
            yield msg


class Client:
    """Blocking client for notebooks and scripts (an :class:`AsyncClient` on a
    background loop). Same methods, same arguments, plain return values::

        with cpt.Client("127.0.0.1", 9000) as c:
            c.login("demo", "demo")
            c.download()
            c.messages

    Push callbacks run on the background thread; pushes also go to
    :attr:`push_queue` (a ``queue.Queue``) and :meth:`pushes`.
    """

    def __init__(self, host: str | tuple = "127.0.0.1", port: int | None = None,
                 **kwargs: Any) -> None:
        self._async = AsyncClient(host, port, **kwargs)
        self.push_queue: queue.Queue[Message] = queue.Queue(kwargs.get("push_queue_size",
                                                                       10_000))
        self._async.on_push(self._enqueue)
        self._thread = LoopThread("camprotool-client")  # started on first use

    def _enqueue(self, msg: Message) -> None:
        if self.push_queue.full():
            with contextlib.suppress(queue.Empty):
                self.push_queue.get_nowait()
        self.push_queue.put_nowait(msg)

    def _run(self, coro: Any) -> Any:
        if not self._thread.running:
            self._thread.start()
        return self._thread.run(coro)

    # state
    @property
    def host(self) -> str:
        return self._async.host

    @property
    def port(self) -> int:
        return self._async.port

    @property
    def user(self) -> str | None:
        return self._async.user

    @property
    def connected(self) -> bool:
        return self._async.connected

    @property
    def login_ok(self) -> LoginOk | None:
        return self._async.login_ok

    @property
    def server_camera_count(self) -> int | None:
        return self._async.server_camera_count

    @property
    def log(self) -> MessageLog:
        return self._async.log

    @property
    def conversation(self) -> ClientConversation | None:
        """The sans-I/O conversation of the main connection (state, pairing, rules)."""
        return self._async.conversation

    @property
    def messages(self) -> pd.DataFrame:
        """Every message sent and received so far (``Capture.messages`` columns)."""
        return self._async.messages

    def __repr__(self) -> str:
        return repr(self._async).replace("AsyncClient", "Client", 1)

    # connection
    def connect(self) -> Client:
        """Open the main connection; returns the client, for chaining."""
        self._run(self._async.connect())
        return self

    def close(self) -> None:
        if self._thread.running:
            with contextlib.suppress(RuntimeError):
                self._run(self._async.close())
            self._thread.stop()

    def __enter__(self) -> Client:
        try:
            return self.connect()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # requests
    def login(self, user: str, password: str) -> LoginOk:
        return self._run(self._async.login(user, password))

    def create_data_socket(self) -> int:
        return self._run(self._async.create_data_socket())

    def upload(self, cameras: Iterable[Any]) -> list[UploadResult]:
        return self._run(self._async.upload(list(cameras)))

    def download(self) -> list[Camera]:
        return self._run(self._async.download())

    def sync(self, local_cameras: Iterable[Any] = (), server_count: int | None = None
             ) -> SyncResult:
        return self._run(self._async.sync(list(local_cameras), server_count))

    def check_status(self, ids: Iterable[str]) -> dict[str, bool | None]:
        return self._run(self._async.check_status(list(ids)))

    def request(self, command: str, fields: Mapping[str, Any] | str = "") -> Message:
        """Any request of the catalogue; its answer (see :meth:`AsyncClient.request`)."""
        return self._run(self._async.request(command, fields))

    def send_raw(self, command: str, params: str = "") -> None:
        self._run(self._async.send_raw(command, params))

    def heartbeat(self) -> None:
        self._run(self._async.heartbeat())

    # pushes
    def on_push(self, callback: PushCallback) -> PushCallback:
        """Call ``callback(message)`` for every push, on the client's background thread."""
        return self._async.on_push(callback)

    def remove_push_callback(self, callback: PushCallback) -> None:
        self._async.remove_push_callback(callback)

    def next_push(self, timeout: float | None = None) -> Message | None:
        try:
            return self.push_queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def pushes(self, timeout: float | None = 1.0) -> Iterator[Message]:
        """Pushes as they come; ends after ``timeout`` seconds without one."""
        while (msg := self.next_push(timeout)) is not None:
            yield msg

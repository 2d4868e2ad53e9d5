"""The emulator's per-connection behaviour: what it answers on main and data connections.

Each client command has one handler, found in a dispatch table keyed by the
command's short name (:data:`HANDLERS`; ``EmulatorServer(handlers=...)``
adds or replaces entries, ``catalogue=`` adds commands). The connection's
sans-I/O conversation (:mod:`camprotool.protocol.conversation`) has already
decoded, typed and judged each message: what a request may be answered
with comes from the catalogue, and an answer the conversation does not
allow is refused before it is written. What is common to every command
(unreadable frames, the before-login budget and gate, misplaced commands)
is done here once, before the table is consulted, so a new request/answer
command is one catalogue entry and one handler.

Main connection (PROTOCOL.md sections 2-3, plus our decisions):

* ``Login`` -> ``LoginOk(count|previous time|previous ip)`` or ``LoginError``.
  After ``max_login_failures`` refusals in a row the connection is closed
  (a brute-force brake; the client may reconnect and retry).
* Before a successful login, every request other than ``Login`` whose
  catalogue answers include ``LoginError`` (``CreatDataSocket``,
  ``CheckCaramerOnlineStatus``) is answered ``LoginError(请先登录!)``
  ("please log in first"): the protocol has no other refusal on the main
  connection, and a client that shows LoginError to the user does the right
  thing. A request that cannot be answered so is ignored (and counted
  against ``max_before_login``). ``require_login=False`` accepts them when
  their own credentials are valid (``CreatDataSocket`` carries user|password).
* ``CreatDataSocket`` with credentials other than the logged-in account's ->
  ``LoginError(用户名或者密码错误!)``; otherwise a reserved data port, or an
  empty ``ReturnDataSocketPort`` when the pool is exhausted.
* ``CheckCaramerOnlineStatus`` -> one ``id;status`` per id, ``null`` for a
  camera the server does not know. More than ``max_status_ids`` (20) ids: only
  the first 20 are answered (the source asks clients to stay within 20 "to
  keep the data complete"; answering part shows a client what it did wrong
  without leaving it waiting). A query with no id that can be answered (none,
  or only ids holding a separator) gets ``LoginError(参数格式错误)``: an empty
  status list is not a well-formed answer (found by ``make fuzz``).
* ``Heartbeat`` (and any other bytes) resets the silence timer; nothing is
  answered. Unknown and misplaced commands are logged and ignored.
* Frames that cannot be read at all (garbage, oversize, bad encoding) count
  as bad frames; the third one closes the connection.
* Before login, every message other than ``Login`` (heartbeats, unknown
  commands, misplaced ones, requests refused for want of a login) counts
  against ``max_before_login`` (10); one more closes the connection with a
  log line (a peer that never logs in must not hold a connection, or the
  server's attention, by chattering).

Every request that is answered is answered with something the dialect can
carry: an answer that cannot be encoded as asked (an id holding a separator,
text the encoding cannot write) is sent again with the offending camera id
left empty and separators, line breaks and unwritable characters taken out of
the other texts, never dropped in silence.

Data connection: ``UploadCaramer`` binds one camera per message (the binding
is committed before the answer is sent); ``synced`` counts every camera
processed on this connection, failed ones included. An id holding a
separator (``|``, ``;``, ``:``) or a line break is malformed: ``UploadFail``
with an empty id and the ``bad_params`` reason. ``DownLoadCaramer(n)``
returns camera ``n+1`` of the account's list, snapshotted at ``n == 0`` so
concurrent uploads cannot shift positions mid-transfer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from camprotool.net.store import BindOutcome
from camprotool.net.stream import MessageStream
from camprotool.protocol import LocalProtocolError, Message
from camprotool.protocol.catalogue import BY_NAME, Channel, Direction, Kind
from camprotool.protocol.conversation import ServerConversation
from camprotool.protocol.typed_messages import (
    CheckCaramerOnlineStatus,
    CreatDataSocket,
    DownLoadCaramer,
    Login,
    UploadCaramer,
)

if TYPE_CHECKING:
    from camprotool.net.models import Camera
    from camprotool.net.server import EmulatorServer

log = logging.getLogger("camprotool.net.server")

#: Texts the emulator puts in reasons. The first four are the source's own
#: words; the rest are ours, in the same language. Change them to mimic a
#: particular deployment.
REASONS = {
    "login": "用户名或者密码错误!",  # wrong user name or password
    "mismatch": "ID和密码不匹配",  # camera id and password do not match
    "full": "该摄像头绑定账号已满",  # camera already bound to the maximum of accounts
    "no_cameras": "该账号下没有绑定任何摄像头",  # no camera bound to this account
    "not_logged_in": "请先登录!",  # please log in first
    "too_many_failures": "登录失败次数过多,连接已关闭",  # too many failures, connection closed
    "bad_params": "参数格式错误",  # malformed parameters
    "no_more": "没有更多摄像头",  # no more cameras (downloaded >= total)
}

BAD_FRAME_LIMIT = 3

#: What an echoed camera id or a reason must not hold: the field separators and
#: line breaks (which the ``line`` dialect cannot carry).
UNSAFE_CHARS = "|;:\r\n"
_DROP_UNSAFE = str.maketrans("", "", UNSAFE_CHARS)


def has_unsafe(text: str) -> bool:
    return any(c in text for c in UNSAFE_CHARS)


def safe_params(command: str, params: str | Mapping[str, Any], encoding: str
                ) -> str | dict[str, Any]:
    """``params`` made encodable: a camera id that cannot be echoed becomes empty,
    other texts lose separators, line breaks and what ``encoding`` cannot write."""

    def writable(text: str) -> str:
        return text.encode(encoding, "replace").decode(encoding)

    if isinstance(params, str):  # a list answer: keep its structure, drop line breaks
        return writable(params.replace("\r", "").replace("\n", ""))
    spec = BY_NAME.get(command)
    ids = {f.name for f in spec.fields if f.kind is Kind.CAMERA_ID} if spec else set()
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, str):
            if name in ids:
                value = "" if has_unsafe(value) or writable(value) != value else value
            else:
                value = writable(value.translate(_DROP_UNSAFE))
        out[name] = value
    return out


def _is_bad_frame(msg: Message) -> bool:
    """A frame no command could be read from (as opposed to a command with bad fields)."""
    return msg.error is not None and msg.spec is None


class _Handler:
    """What both connection kinds do alike: answer (after the configured delay,
    never failing on what a dialect cannot carry) and put up with a few
    unreadable frames before giving up on the peer."""

    server: EmulatorServer
    stream: MessageStream
    bad_frames: int

    async def reply(self, command: str, params: str | dict) -> None:
        cfg = self.server.config
        if cfg.reply_delay:
            await asyncio.sleep(cfg.reply_delay)
        try:
            self.stream.send(command, params)
            return
        except LocalProtocolError as exc:  # e.g. an id we cannot echo in this dialect
            log.warning("%r: cannot answer %s as asked (%s): answering without the "
                        "offending text", self.stream, command, exc)
        try:
            self.stream.send(command, safe_params(command, params, self.stream.dialect.encoding))
        except LocalProtocolError as exc:  # cannot happen with our texts; never silent
            log.error("%r: cannot answer %s at all: %s", self.stream, command, exc)

    def _tolerate_bad_frame(self, msg: Message) -> bool:
        """Count an unreadable frame; False once the peer sent too many."""
        self.bad_frames += 1
        self.server.stats["bad_frames"] += 1
        log.warning("%r: unreadable frame (%s)", self.stream, msg.error)
        return self.bad_frames < BAD_FRAME_LIMIT


class MainSession(_Handler):
    """State of one main connection: who is logged in, how many failures."""

    def __init__(self, server: EmulatorServer, stream: MessageStream) -> None:
        self.server = server
        self.stream = stream
        #: the main connection and the data connections handed out on it, sans-I/O
        self.conversation = ServerConversation(stream.dialect, catalogue=server.catalogue,
                                               main=stream.conv.protocol)
        self.user: str | None = None
        self.failures = 0
        self.login_pending = False  # a Login waits for its turn at the brake
        self.bad_frames = 0
        self.before_login = 0  # messages other than Login while not logged in

    def __repr__(self) -> str:
        return f"{self.stream!r} user={self.user}"

    def _over_budget(self, name: str) -> bool:
        """Count a message other than Login before login; True once over the budget."""
        limit = self.server.config.max_before_login
        if self.user is not None or limit is None:
            return False
        self.before_login += 1
        if self.before_login <= limit:
            return False
        self.server.stats["closed_before_login"] += 1
        log.warning("%r: %d messages before logging in (%s the last; limit %d): closing",
                    self.stream, self.before_login, name, limit)
        return True

    async def handle(self, msg: Message) -> bool:
        """Act on one message; False closes the connection."""
        if _is_bad_frame(msg):
            return self._tolerate_bad_frame(msg)
        spec = msg.spec
        name = spec.name if spec is not None else msg.command
        if name != "Login" and self._over_budget(name):
            return False
        if spec is None:
            log.info("%r: unknown command %r ignored", self.stream, msg.command)
            return True
        if spec.direction is not Direction.C2S or spec.channel is not Channel.MAIN:
            log.info("%r: %s is not a client command on the main connection: ignored",
                     self.stream, name)
            return True
        if self.user is None and self.server.config.require_login and spec.is_request \
                and name != "Login":
            return await self._refuse_before_login(name, spec.answers)
        return await _dispatch(self, msg)

    async def _refuse_before_login(self, name: str, answers: tuple[str, ...]) -> bool:
        if "LoginError" in answers:
            log.info("%r: %s before login refused", self.stream, name)
            await self.reply("LoginError", {"reason": REASONS["not_logged_in"]})
        else:
            log.info("%r: %s before login ignored (it cannot be answered LoginError)",
                     self.stream, name)
        return True

    async def _check(self, user: str | None, password: str | None) -> bool:
        if not user or password is None:
            return False
        return await self.server.check_password(user, password)

    # (HANDLERS dispatches by command, so each handler gets its command's class)
    async def _login(self, msg: Message) -> bool:
        assert isinstance(msg, Login)
        user, password = msg.user, msg.password
        info, locked = None, False
        if not msg.error and user:  # the brake (net/brake.py) may delay or refuse the check
            self.login_pending = True
            try:
                info, locked = await self.server.brake.login(
                    self.server.login, user, password or "", self.stream.peer_host)
            finally:
                self.login_pending = False
        if info is None:
            self.failures += 1
            self.server.stats["logins_failed"] += 1
            limit = self.server.config.max_login_failures
            last = locked or (limit and self.failures >= limit)
            log.info("%r: login %r refused (%d in a row)", self.stream, user, self.failures)
            await self.reply("LoginError",
                             {"reason": REASONS["too_many_failures" if last else "login"]})
            return not last
        self.failures = 0
        self.user = user
        self.server.stats["logins_ok"] += 1
        log.info("%r: %s logged in (%d cameras)", self.stream, user, info.camera_count)
        await self.reply("LoginOk", {"camera_count": info.camera_count,
                                     "last_login_time": info.last_login_time,
                                     "last_login_ip": info.last_login_ip})
        return True

    async def _data_socket(self, msg: Message) -> bool:
        assert isinstance(msg, CreatDataSocket)
        user, password = msg.user, msg.password
        if (user is None or (self.user is not None and user != self.user)
                or not await self._check(user, password)):
            log.info("%r: CreatDataSocket with wrong credentials", self.stream)
            await self.reply("LoginError", {"reason": REASONS["login"]})
            return True
        port = self.server.reserve_data_port(self.stream.peer_host, user, self.stream.id)
        await self.reply("ReturnDataSocketPort", {"port": port})
        return True

    async def _status(self, msg: Message) -> bool:
        assert isinstance(msg, CheckCaramerOnlineStatus)
        ids = list(msg.ids or ())
        limit = self.server.config.max_status_ids
        if limit and len(ids) > limit:
            log.warning("%r: status query for %d ids, answering the first %d", self.stream,
                        len(ids), limit)
            ids = ids[:limit]
        # what cannot be echoed in an answer: separators, and line breaks (line dialect)
        ids = [i for i in ids if not any(c in i for c in "|:\r\n")]
        if not ids:  # an empty status list is malformed: refuse in the only way main allows
            log.info("%r: status query without an id that can be answered", self.stream)
            await self.reply("LoginError", {"reason": REASONS["bad_params"]})
            return True
        statuses = self.server.store.statuses(ids)
        params = "|".join(
            f"{cid};{'null' if s is None else str(s).lower()}" for cid, s in statuses.items())
        await self.reply("ReturnCaramerOnlineStatus", params)
        return True

    def push(self, command: str, params: dict) -> bool:
        """Write a push now; False (and the connection reset) if the peer stopped reading."""
        stream = self.stream
        if stream.write_buffer_size() > self.server.config.max_write_buffer:
            log.warning("%r: not reading its pushes (%d bytes queued): closing", stream,
                        stream.write_buffer_size())
            stream.abort()
            return False
        try:
            stream.send(command, params)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("%r: push failed: %s", stream, exc)
            return False
        return True


class DataSession(_Handler):
    """One data connection: an upload or a download for ``user``."""

    def __init__(self, server: EmulatorServer, stream: MessageStream, user: str) -> None:
        self.server = server
        self.stream = stream
        self.user = user
        self.synced = 0
        self.snapshot: list[Camera] | None = None
        self.bad_frames = 0


    async def handle(self, msg: Message) -> bool:
        """Act on one message; False closes the connection."""
        if _is_bad_frame(msg):
            return self._tolerate_bad_frame(msg)
        spec = msg.spec
        if spec is None or spec.channel is not Channel.DATA \
                or spec.direction is not Direction.C2S:
            if msg.command != "Heartbeat":
                log.info("%r: %s ignored on a data connection", self.stream, msg.command)
            return True
        return await _dispatch(self, msg)

    async def _upload(self, msg: Message) -> bool:
        assert isinstance(msg, UploadCaramer)
        cid, pw = msg.camera_id, msg.camera_password
        total = msg.total if msg.total is not None else 0
        self.synced += 1
        if msg.error or cid is None or pw is None or has_unsafe(cid):
            log.info("%r: malformed UploadCaramer (%s)", self.stream,
                     msg.error or f"camera id {cid!r} holds a separator")
            await self.reply("UploadFail", {"camera_id": "" if cid is None or has_unsafe(cid)
                                            else cid,
                                            "reason": REASONS["bad_params"],
                                            "synced": self.synced, "total": total})
            return True
        outcome, cam = await self.server.bind(self.user, cid, pw)
        log.info("%r: upload %s for %s: %s", self.stream, cid, self.user, outcome.value)
        if outcome.ok:
            await self.reply("UploadSucess", {"camera_id": cid,
                                              "online": cam.online if cam else None,
                                              "synced": self.synced, "total": total})
        else:
            reason = REASONS["full" if outcome is BindOutcome.FULL else "mismatch"]
            await self.reply("UploadFail", {"camera_id": cid, "reason": reason,
                                            "synced": self.synced, "total": total})
        return True

    async def _download(self, msg: Message) -> bool:
        assert isinstance(msg, DownLoadCaramer)
        done = msg.downloaded
        if done is None:
            await self.reply("DownloadFail", {"reason": REASONS["bad_params"]})
            return True
        if self.snapshot is None or done == 0:
            self.snapshot = self.server.store.cameras_of(self.user)
        cams = self.snapshot
        if not cams:
            await self.reply("DownloadFail", {"reason": REASONS["no_cameras"]})
            return True
        if done >= len(cams):
            await self.reply("DownloadFail", {"reason": REASONS["no_more"]})
            return True
        cam = cams[done]
        live = self.server.store.camera(cam.id)
        online = live.online if live is not None else cam.online
        await self.reply("DownloadSucess", {"camera_id": cam.id, "camera_password": cam.password,
                                            "online": online, "current": done + 1,
                                            "total": len(cams)})
        return True


#: What a handler is: called with the connection's session (a :class:`MainSession`
#: or :class:`DataSession`) and a client message of its channel, after the common
#: checks; answers with ``session.reply(...)``; returns False to close the connection.
Handler = Callable[[Any, Message], Awaitable[bool]]

#: One handler per client command, keyed by short name: the emulator's behaviour.
#: Commands without one (the heartbeat) only count as activity.
HANDLERS: dict[str, Handler] = {
    "Login": MainSession._login,
    "CreatDataSocket": MainSession._data_socket,
    "CheckCaramerOnlineStatus": MainSession._status,
    "UploadCaramer": DataSession._upload,
    "DownLoadCaramer": DataSession._download,
}


async def _dispatch(session: MainSession | DataSession, msg: Message) -> bool:
    """Run the handler of ``msg``'s command (the server's table: :data:`HANDLERS`
    plus what ``EmulatorServer(handlers=...)`` added)."""
    handler = session.server.handlers.get(msg.command)
    if handler is None:
        if msg.spec is not None and msg.spec.is_request:
            log.warning("%r: no handler for the request %s: not answered", session.stream,
                        msg.command)
        return True
    return await handler(session, msg) is not False

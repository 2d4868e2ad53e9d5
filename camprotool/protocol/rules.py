################################################################
# Session rules: the main and data connection state machines
################################################################
#
# Rule 1: every protocol rule of PROTOCOL.md section 5 is defined here.
# Capture checking, the emulated server (judging what clients send) and our
# client (judging what servers send) all feed these machines, so a rule is
# written once. As much as possible is table data (MAIN_TRANSITIONS,
# DATA_TRANSITIONS); what does not fit a table (counting transfer progress,
# timing heartbeats) is plain code in this file. One exception, for speed:
# camprotool.analysis.fastrules computes these machines' findings for a whole
# capture column-wise. It is held to their exact rows by tests, says every
# sentence through the text_* functions below, and hands what it does not
# model back to the machines; a change of rule here needs the same change there.
#
# Rule 2: a peer's mistake is a value, never an exception. ``on_message``
# returns a list of ``Violation``; it raises only when the *caller* misuses
# the API (a direction that is not 'c2s'/'s2c', feeding a closed session).
#
# Rule 3: the machines judge both ends of one connection at once and do not
# know which end we are. A violation names the offending message; the caller
# knows who sent it (its direction), so the emulated server ignores s2c
# violations it caused itself and our client ignores c2s ones, or not.
#
# Rule 4: no cascades. After a breach the machine resynchronises on what was
# actually sent (a wrong ``current`` becomes the new position), and a field
# that could not be parsed is assumed to hold the value the sequence
# expected, so one bad message gives one violation, not one per message after it.
#
#
# Theory of operation
# ===================
#
# A main connection is one small automaton, keyed by (direction, command):
#
#   awaiting_login --Login(c2s)--> login_sent --LoginOk(s2c)--> logged_in
#         ^                            |                            |
#         +------LoginError(s2c)-------+-------LoginError(s2c)------+
#
# In awaiting_login/login_sent only Login/Heartbeat from the client and
# LoginOk/LoginError from the server are in the table; any other *known*
# command is ``before_login`` (whatever its channel or direction) and leaves
# the state alone. In logged_in every main-channel command in its own
# direction is in the table; anything else there is only a note. A session
# built with ``start_seen=False`` (the capture began after the login) starts
# in logged_in and so never reports ``before_login``.
#
# Beside the automaton, the main session keeps *effects* keyed the same way
# (the user and server camera count from Login/LoginOk, every
# ReturnDataSocketPort announcement) and the heartbeat clock: the time of the
# client's last message. Only client (c2s) messages reset the clock, because
# the heartbeat is the client's duty and server pushes are sporadic by nature.
#
# A data connection carries one transfer, upload or download, decided by its
# first transfer command:
#
#   idle --UploadCaramer / Upload* answer--> uploading <--> uploaded
#   idle --DownLoadCaramer / DownloadSucess--> downloading <--> downloaded
#   idle, downloading --DownloadFail--> download_failed --DownLoadCaramer--> downloading
#
# The event-triggered transitions are DATA_TRANSITIONS. One transition is
# state-triggered: after every message, an upload or download whose progress
# (``synced``) reached its ``total`` is uploaded/downloaded, otherwise
# uploading/downloading. The sequence rules are checked by one handler per
# (direction, command). Which request an answer answers is the one pairing
# rule (camprotool.protocol.pairing.Pairing, from the catalogue): upload
# requests wait in a FIFO until answered, so each answer is compared with the
# request it answers even if the client pipelines. Download requests cannot be
# pipelined (each echoes the previous answer; the catalogue marks them
# ``retries``), so a request repeated before its answer is a retry and one
# answer serves all requests waiting.
#
# Two rules look at single messages, on any connection: ``malformed_params``
# (a known command whose fields failed to parse) and ``check_too_many_ids``.
#
# Decisions where PROTOCOL.md is silent
# -------------------------------------
# * Unknown commands (and undecodable frames) are never judged by a sequence
#   rule or by before_login: the source document is truncated after command
#   15, so an unknown name may be a legitimate command we have never read.
#   They do count as client activity for the heartbeat clock. They are kept
#   as notes.
# * A command on the wrong channel (UploadCaramer on a main connection,
#   CheckCaramerOnlineStatus on a data connection) or in the wrong direction
#   is not a section-5 rule: it is a note and drives no state, except that
#   before LoginOk it is also ``before_login`` (it is not Login/Heartbeat).
#   Message-level rules (malformed_params, check_too_many_ids) still apply.
# * ``malformed_params`` is the field error alone: a known command whose only
#   problem is its text encoding or framing is a note, not this rule.
# * ``heartbeat_gap``: silence longer than (strictly) the timeout between two
#   client messages, or between ``opened_ns`` (the connection's start, when
#   the caller knows it) and the first client message. A connection that
#   closes after a silence is not reported: there is no later message to
#   attach it to, and a server dropping a silent client is the intended outcome.
# * ``upload_sequence`` also covers an UploadCaramer whose ``current`` exceeds
#   its ``total``. An answer whose ``synced`` is not the request's ``current``
#   is only a note, since deployments may count only successes (section 4).
# * ``download_sequence`` also judges the server, symmetric with uploads: a
#   DownloadSucess whose ``current`` is not the request's ``downloaded`` + 1,
#   exceeds its ``total``, or whose ``total`` changes, is attached to that answer.
#   A repeated request (``downloaded`` equal to the previous request) is allowed.
# * ``incomplete_sync``: reported when a data connection closes with the
#   transfer's total known and not reached, or with a request unanswered; a
#   DownloadFail ends a transfer without it (the server said why), and a
#   connection without a transfer command cannot be incomplete. Call
#   ``on_close`` only when the connection was seen to close: a capture that
#   stops while it is open cannot judge.
# * An answer with no request waiting for it (a lost packet, a capture started
#   mid-transfer) is a note, not a violation.
# * At most one violation per rule per message (several findings of the same
#   rule are joined in one detail); a message's violations come in RULES order.
"""Session rules: sans-I/O state machines that turn messages into violations.

>>> from camprotool.protocol.catalogue import BY_NAME
>>> from camprotool.protocol.messages import build_message
>>> m = lambda name, params="": build_message(BY_NAME[name], name, params)
>>> s = MainSession()
>>> [v.rule for v in s.on_message(0, "c2s", m("CreatDataSocket", "demo|demo"), 0)]
['before_login']
>>> s.on_message(1, "c2s", m("Login", "demo|demo"), 1), s.state
([], <MainState.LOGIN_SENT: 'login_sent'>)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from camprotool.protocol.catalogue import (
    COMMANDS,
    HEARTBEAT,
    MAX_STATUS_IDS,
    Channel,
    CommandSpec,
)
from camprotool.protocol.errors import LocalProtocolError
from camprotool.protocol.fields import parse_params
from camprotool.protocol.linking import Announcement, announcing
from camprotool.protocol.messages import Message
from camprotool.protocol.pairing import Pairing
from camprotool.protocol.typed_messages import (
    CheckCaramerOnlineStatus,
    DownLoadCaramer,
    DownloadSucess,
    Login,
    LoginOk,
    ReturnDataSocketPort,
    UploadCaramer,
    UploadFail,
    UploadSucess,
)

#: Every rule key (PROTOCOL.md section 5, a contract) and its one-line description.
RULES: dict[str, str] = {
    "before_login": "a command other than Login/Heartbeat (client) or LoginOk/LoginError "
    "(server) on a main connection before LoginOk",
    "check_too_many_ids": f"CheckCaramerOnlineStatus with more than {MAX_STATUS_IDS} camera ids",
    "upload_sequence": "UploadCaramer current not starting at 1, not rising by 1 or above "
    "total, total changing, or an answer naming another camera or total than its request",
    "download_sequence": "DownLoadCaramer not starting at 0 or not echoing the previous "
    "answer's current, or a DownloadSucess not answering the next camera",
    "unannounced_data_port": "a data connection to a port no ReturnDataSocketPort announced, "
    "or after an empty one",
    "incomplete_sync": "a data connection closed before synced/current reached total",
    "malformed_params": "a known command with the wrong number of fields, a non-integer "
    "count, a status other than true/false/null or a port outside 1-65535",
    "heartbeat_gap": "the client silent on a main connection for longer than the heartbeat "
    "timeout",
    # issue 12: found across connections by camprotool.analysis.dataports, not by a machine
    "data_port_hijack": "a data connection from an address other than the one its port was "
    "announced to, or a second connection to one announcement (data connections carry no "
    "credentials: another program may have taken the session)",
}
_RULE_ORDER = {rule: i for i, rule in enumerate(RULES)}

C2S = "c2s"
S2C = "s2c"
DEFAULT_HEARTBEAT_TIMEOUT_NS = 90 * 10**9


class Violation(NamedTuple):
    """One breach of a PROTOCOL.md section 5 rule."""

    rule: str  # a key of RULES
    message: int  # the caller's index of the offending message
    detail: str  # a sentence naming the values involved


class Note(NamedTuple):
    """Something odd that no section-5 rule covers (unknown command, wrong channel, ...)."""

    message: int
    detail: str


class MainState(StrEnum):
    AWAITING_LOGIN = "awaiting_login"
    LOGIN_SENT = "login_sent"
    LOGGED_IN = "logged_in"


class DataState(StrEnum):
    IDLE = "idle"
    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    DOWNLOAD_FAILED = "download_failed"


Key = tuple[str, str]  # (direction, command short name)

# ------------------------------------------------------------------ tables

_M = MainState

#: state -> {(direction, command): next state}. A known command missing from
#: the current state's row is before_login in the first two states, a note in
#: logged_in.
MAIN_TRANSITIONS: dict[MainState, dict[Key, MainState]] = {
    _M.AWAITING_LOGIN: {
        (C2S, "Login"): _M.LOGIN_SENT,
        (C2S, HEARTBEAT): _M.AWAITING_LOGIN,
        (S2C, "LoginOk"): _M.LOGGED_IN,  # unsolicited, but the server says we are in
        (S2C, "LoginError"): _M.AWAITING_LOGIN,
    },
    _M.LOGIN_SENT: {
        (C2S, "Login"): _M.LOGIN_SENT,  # a retry before the answer
        (C2S, HEARTBEAT): _M.LOGIN_SENT,
        (S2C, "LoginOk"): _M.LOGGED_IN,
        (S2C, "LoginError"): _M.AWAITING_LOGIN,
    },
    _M.LOGGED_IN: {
        # every main-channel command in its own direction keeps us logged in ...
        **{
            (spec.direction.wire, spec.name): _M.LOGGED_IN
            for spec in COMMANDS
            if spec.channel is Channel.MAIN
        },
        # ... except a refused (re-)login, which logs the connection out.
        (S2C, "LoginError"): _M.AWAITING_LOGIN,
    },
}
_PRE_LOGIN = frozenset({_M.AWAITING_LOGIN, _M.LOGIN_SENT})

_D = DataState
_UPLOAD_ROW: dict[Key, DataState] = {
    (C2S, "UploadCaramer"): _D.UPLOADING,
    (S2C, "UploadSucess"): _D.UPLOADING,
    (S2C, "UploadFail"): _D.UPLOADING,
}
_DOWNLOAD_ROW: dict[Key, DataState] = {
    (C2S, "DownLoadCaramer"): _D.DOWNLOADING,
    (S2C, "DownloadSucess"): _D.DOWNLOADING,
    (S2C, "DownloadFail"): _D.DOWNLOAD_FAILED,
}

#: state -> {(direction, command): next state}; after every step the
#: state-triggered rule moves uploading <-> uploaded, downloading <->
#: downloaded by whether progress reached total. Anything missing is a note.
DATA_TRANSITIONS: dict[DataState, dict[Key, DataState]] = {
    _D.IDLE: {**_UPLOAD_ROW, **_DOWNLOAD_ROW},
    _D.UPLOADING: _UPLOAD_ROW,
    _D.UPLOADED: _UPLOAD_ROW,
    _D.DOWNLOADING: _DOWNLOAD_ROW,
    # a refusal after the last camera (the client asked past the end) changes nothing
    _D.DOWNLOADED: {**_DOWNLOAD_ROW, (S2C, "DownloadFail"): _D.DOWNLOADED},
    # a retry after a refusal starts downloading again
    _D.DOWNLOAD_FAILED: _DOWNLOAD_ROW,
}
_UPLOAD_STATES = frozenset({_D.UPLOADING, _D.UPLOADED})
_DOWNLOAD_STATES = frozenset({_D.DOWNLOADING, _D.DOWNLOADED, _D.DOWNLOAD_FAILED})

# ------------------------------------------------------------------ engine


def _seconds(ns: int) -> str:
    return f"{ns / 1e9:.9g} s"


def _who(direction: str) -> str:
    return "the client" if direction == C2S else "the server"


# ------------------------------------------------------------------ sentences
# Every violation detail and note, written once. The machines below say them one
# message at a time; camprotool.analysis.fastrules, which judges a whole capture
# column-wise and must give the machines' exact rows, says them through these too.


def text_unknown(command: str, error: str | None) -> str:
    what = f"undecodable frame ({error})" if error else f"unknown command {command!r}"
    return f"{what}: not judged by the session rules"


def text_malformed(command: str, params: str, field_error: str) -> str:
    return f"{command} parameters {params[:80]!r}: {field_error}"


def text_not_a_param_error(command: str, error: str) -> str:
    return f"{command} decoded with an error that is not a parameter problem: {error}"


def text_too_many_ids(count: int) -> str:
    return (f"CheckCaramerOnlineStatus names {count} camera ids, more than the "
            f"{MAX_STATUS_IDS} allowed")


def text_before_login(name: str, direction: str, state: str) -> str:
    return f"{name} from {_who(direction)} before the login succeeded (state {state})"


def text_heartbeat_gap(silence_ns: int, since_index: int | None, timeout_ns: int) -> str:
    since = f"its message {since_index}" if since_index is not None else "the connection opened"
    return (f"the client was silent for {_seconds(silence_ns)} since {since}, longer than "
            f"the {_seconds(timeout_ns)} heartbeat timeout")


def text_unanswered(answer: str, request: str) -> str:
    """A note: an answer that finds no request waiting."""
    return f"{answer} answers no {request}"


def text_unannounced(port: object) -> str:
    where = f"port {port}" if port is not None else "its port"
    return f"first message of a data connection to {where}, which no ReturnDataSocketPort announced"


def text_not_expected(name: str, direction: str, state: str) -> str:
    return f"{name} from {_who(direction)} not expected in a data connection in state {state}"


def text_total_changed(command: str, old: int, new: int) -> str:
    return f"{command} total changed from {old} to {new}"


def text_exceeds_total(command: str, current: int, total: int) -> str:
    return f"{command} current {current} exceeds total {total}"


def text_upload_current(current: int, expected: int, first: bool) -> str:
    """``first``: no UploadCaramer came before this one."""
    why = "the first must be 1" if expected == 1 and first else f"the previous was {expected - 1}"
    return f"UploadCaramer current {current}, expected {expected} ({why})"


def text_upload_after_complete(current: int) -> str:
    return f"UploadCaramer {current} after the transfer was complete"


def text_upload_camera(name: str, camera: str, req_camera: str, req_index: int,
                       req_position: int) -> str:
    return (f"{name} names camera {camera!r} but answers UploadCaramer {req_camera!r} "
            f"(message {req_index}, current {req_position})")


def text_upload_total(name: str, total: int, req_total: int, req_index: int) -> str:
    return (f"{name} total {total} differs from total {req_total} of the UploadCaramer it "
            f"answers (message {req_index})")


def text_upload_synced(name: str, synced: int, position: int) -> str:
    return (f"{name} synced {synced} answers camera {position}: synced should count every "
            "camera processed (PROTOCOL.md section 4)")


def text_download_request(downloaded: int, expected: int, requests: int, answers: int) -> str:
    """``requests``/``answers``: transfer requests and answers seen before this request."""
    if not answers and not requests:
        why = "the first request must ask from 0"
    elif answers:
        why = f"it must echo the previous DownloadSucess current {expected}"
    else:
        why = f"no camera was received yet, so {expected}"
    return f"DownLoadCaramer {downloaded}, expected {expected} ({why})"


def text_download_past_end(downloaded: int, total: int | None) -> str:
    return f"DownLoadCaramer {downloaded} asks past the end (all {total} cameras received)"


def text_download_current(current: int, expected: int, req_position: int | None,
                          req_index: int | None) -> str:
    """``req_*``: the DownLoadCaramer answered, None when none was waiting."""
    asked = (f"it answers DownLoadCaramer {req_position} (message {req_index})"
             if req_position is not None else f"the previous current was {expected - 1}")
    return f"DownloadSucess current {current}, expected {expected} ({asked})"


def text_incomplete(kind: str, synced: int, total: int | None, pending: int,
                    first_pending: int | None) -> str:
    """``kind``: 'upload' or 'download'; ``first_pending``: the oldest unanswered request."""
    if total is not None:
        verb = "uploaded" if kind == "upload" else "downloaded"
        detail = f"the data connection closed after {synced} of {total} cameras were {verb}"
    else:
        detail = "the data connection closed before the total was known"
    if pending:
        what = "UploadCaramer" if kind == "upload" else "DownLoadCaramer"
        detail += (f"; {pending} {what} request(s) unanswered, the first at "
                   f"message {first_pending}")
    return detail


class _Findings:
    """Violations of one message, at most one per rule, in RULES order."""

    __slots__ = ("_by_rule", "index")

    def __init__(self, index: int) -> None:
        self.index = index
        self._by_rule: dict[str, list[str]] = {}

    def add(self, rule: str, detail: str) -> None:
        self._by_rule.setdefault(rule, []).append(detail)

    def violations(self) -> list[Violation]:
        return [
            Violation(rule, self.index, "; ".join(details))
            for rule, details in sorted(self._by_rule.items(), key=lambda i: _RULE_ORDER[i[0]])
        ]


class _Session(ABC):
    """What both sessions share: argument checks, message-level rules, notes."""

    def __init__(self) -> None:
        self.notes: list[Note] = []
        self.closed = False
        self.messages = 0  # messages fed so far
        self.last_index: int | None = None

    def on_message(self, index: int, direction: str, msg: Message, ts_ns: int) -> list[Violation]:
        """Feed the next message of the connection; return the violations it commits."""
        if self.closed:
            raise LocalProtocolError(f"message {index} fed to a session already closed")
        if direction not in (C2S, S2C):
            raise LocalProtocolError(f"direction must be 'c2s' or 's2c', not {direction!r}")
        if not isinstance(msg, Message):
            raise LocalProtocolError(f"expected a Message, got {type(msg).__name__}")
        found = _Findings(index)
        self._step(found, direction, msg, ts_ns)
        spec = msg.spec
        if spec is None:
            self.note(index, text_unknown(msg.command, msg.error))
        else:
            _message_rules(found, msg, spec, self)
        self.messages += 1
        self.last_index = index
        return found.violations()

    def note(self, index: int, detail: str) -> None:
        self.notes.append(Note(index, detail))

    @abstractmethod
    def on_close(self, last_index: int | None = None, ts_ns: int | None = None) -> list[Violation]:
        """The connection closed: the violations only its end shows."""

    @abstractmethod
    def _step(self, found: _Findings, direction: str, msg: Message, ts_ns: int) -> None:
        """Advance the connection's state machine by one known message."""


def _message_rules(found: _Findings, msg: Message, spec: CommandSpec, session: _Session) -> None:
    """The rules a single known message (of command ``spec``) breaks on its own, on any
    connection."""
    if msg.error is not None:
        _, field_error = parse_params(spec, msg.params)
        if field_error:
            found.add("malformed_params", text_malformed(msg.command, msg.params, field_error))
        else:
            session.note(found.index, text_not_a_param_error(msg.command, msg.error))
    if isinstance(msg, CheckCaramerOnlineStatus) and len(msg.ids or ()) > MAX_STATUS_IDS:
        found.add("check_too_many_ids", text_too_many_ids(len(msg.ids or ())))


# ------------------------------------------------------------------ main connection


class MainSession(_Session):
    """The rules of one main connection, fed its messages of both directions in order.

    ``start_seen=False`` says the connection began before what we see (a
    capture started after the login): the session starts logged in and never
    reports ``before_login``. ``heartbeat_timeout_ns`` (None disables
    ``heartbeat_gap``) is how long the client may stay silent; ``opened_ns``,
    if known, starts the heartbeat clock at the connection's opening instead
    of at the client's first message.

    Useful state for a peer: ``state`` / ``logged_in``, ``user`` (the account
    logged in), ``server_camera_count`` (from LoginOk), ``announced_ports``,
    and :meth:`allows`.
    """

    def __init__(
        self,
        *,
        start_seen: bool = True,
        heartbeat_timeout_ns: int | None = DEFAULT_HEARTBEAT_TIMEOUT_NS,
        opened_ns: int | None = None,
    ) -> None:
        super().__init__()
        if heartbeat_timeout_ns is not None and heartbeat_timeout_ns <= 0:
            raise LocalProtocolError(
                f"heartbeat_timeout_ns must be > 0 or None, not {heartbeat_timeout_ns}"
            )
        self.start_seen = start_seen
        self.heartbeat_timeout_ns = heartbeat_timeout_ns
        self.state: MainState = _M.AWAITING_LOGIN if start_seen else _M.LOGGED_IN
        self.user: str | None = None
        self.server_camera_count: int | None = None
        self.announced_ports: list[Announcement] = []
        self.pending_port_requests = 0  # CreatDataSocket not answered yet
        self.pending_status_queries = 0  # CheckCaramerOnlineStatus not answered yet
        self.last_client_ns: int | None = opened_ns  # the heartbeat clock
        self._last_client_index: int | None = None
        self._login_user: str | None = None

    @property
    def logged_in(self) -> bool:
        return self.state is _M.LOGGED_IN

    def allows(self, direction: str, command: str) -> bool:
        """Whether ``command`` from ``direction`` is expected in the current state."""
        return (direction, command) in MAIN_TRANSITIONS[self.state]

    def port_announced(self, port: int, ts_ns: int) -> bool:
        """Whether a data connection to ``port`` opened at ``ts_ns`` was announced here."""
        return data_port_announced(port, ts_ns, self.announced_ports)

    def on_close(self, last_index: int | None = None, ts_ns: int | None = None) -> list[Violation]:
        """The connection closed. No main-connection rule is judged at close (see above)."""
        self.closed = True
        return []

    # -- engine
    def _step(self, found: _Findings, direction: str, msg: Message, ts_ns: int) -> None:
        if direction == C2S:
            self._heartbeat(found, ts_ns)
        spec = msg.spec
        if spec is None:
            return
        key = (direction, spec.name)
        effect = _MAIN_EFFECTS.get(key)
        if effect is not None:
            effect(self, found.index, msg, ts_ns)
        nxt = MAIN_TRANSITIONS[self.state].get(key)
        if nxt is not None:
            self.state = nxt
            return
        if self.state in _PRE_LOGIN:
            found.add("before_login", text_before_login(spec.name, direction, self.state))
        odd = text_oddity(spec, direction, Channel.MAIN)
        if odd:  # in logged_in only a misplaced command can miss the table
            self.note(found.index, odd)

    def _heartbeat(self, found: _Findings, ts_ns: int) -> None:
        last = self.last_client_ns
        timeout = self.heartbeat_timeout_ns
        if last is not None and timeout is not None and ts_ns - last > timeout:
            found.add("heartbeat_gap",
                      text_heartbeat_gap(ts_ns - last, self._last_client_index, timeout))
        self.last_client_ns = ts_ns if last is None else max(last, ts_ns)
        self._last_client_index = found.index

    # -- effects: what a message records, whatever the state
    # (the tables below dispatch by command, so each effect gets its command's class)
    def _login(self, index: int, msg: Message, ts_ns: int) -> None:
        assert isinstance(msg, Login)
        self._login_user = msg.user

    def _login_ok(self, index: int, msg: Message, ts_ns: int) -> None:
        assert isinstance(msg, LoginOk)
        if self.state is _M.AWAITING_LOGIN and self.start_seen:
            self.note(index, text_unanswered("LoginOk", "Login"))
        self.user = self._login_user
        self.server_camera_count = msg.camera_count

    def _login_error(self, index: int, msg: Message, ts_ns: int) -> None:
        self.user = None
        self.server_camera_count = None

    def _creat_data_socket(self, index: int, msg: Message, ts_ns: int) -> None:
        self.pending_port_requests += 1

    def _return_data_socket_port(self, index: int, msg: Message, ts_ns: int) -> None:
        assert isinstance(msg, ReturnDataSocketPort)
        if self.pending_port_requests:
            self.pending_port_requests -= 1
        else:
            self.note(index, text_unanswered("ReturnDataSocketPort", "CreatDataSocket"))
        self.announced_ports.append(Announcement(msg.port, index, ts_ns))

    def _check_status(self, index: int, msg: Message, ts_ns: int) -> None:
        self.pending_status_queries += 1

    def _return_status(self, index: int, msg: Message, ts_ns: int) -> None:
        if self.pending_status_queries:
            self.pending_status_queries -= 1
        else:
            self.note(index, text_unanswered("ReturnCaramerOnlineStatus",
                                             "CheckCaramerOnlineStatus"))


_MAIN_EFFECTS: dict[Key, Callable[[MainSession, int, Message, int], None]] = {
    (C2S, "Login"): MainSession._login,
    (S2C, "LoginOk"): MainSession._login_ok,
    (S2C, "LoginError"): MainSession._login_error,
    (C2S, "CreatDataSocket"): MainSession._creat_data_socket,
    (S2C, "ReturnDataSocketPort"): MainSession._return_data_socket_port,
    (C2S, "CheckCaramerOnlineStatus"): MainSession._check_status,
    (S2C, "ReturnCaramerOnlineStatus"): MainSession._return_status,
}


def text_oddity(spec: CommandSpec, direction: str, channel: Channel) -> str | None:
    """Why a known command does not belong here at all, or None if it could."""
    if spec.channel is not channel:
        return f"{spec.name} is a {spec.channel} command, seen on a {channel} connection"
    if spec.direction.wire != direction:
        return f"{spec.name} travels {spec.direction.wire} but was sent by {_who(direction)}"
    return None


def data_port_announced(port: int, ts_ns: int, announcements: Iterable[Announcement]) -> bool:
    """Whether a data connection to ``port`` opened at ``ts_ns`` was announced: whether
    the one linking rule (:func:`camprotool.protocol.linking.announcing`) names an
    announcement for it. An announced port stays usable until an empty answer on
    the same main connection (``Announcement.conn``); an empty answer on another
    main connection of the same client IP clears nothing. Pass the announcements
    of the main connection(s) of the same client.
    """
    return announcing(port, ts_ns, announcements) is not None


# ------------------------------------------------------------------ data connection


@dataclass(frozen=True, slots=True)
class _Request:
    index: int
    camera_id: str | None  # uploads
    position: int  # upload: current (assumed if malformed); download: downloaded
    total: int | None


class DataSession(_Session):
    """The rules of one data connection, fed its messages of both directions in order.

    ``announced``: whether a ReturnDataSocketPort announced this connection's
    port (see :func:`data_port_announced`); False reports
    ``unannounced_data_port`` on the first message, None means we cannot tell
    (no main connection seen). ``start_seen=False`` (a capture began
    mid-transfer) skips the start checks of the first request. ``port`` only
    improves the detail of ``unannounced_data_port``. ``max_pending``: the
    unanswered requests kept (None: all; a live peer sets a bound so a flood
    nobody answers cannot grow its memory).

    Useful state for a peer: ``state``, ``kind`` ('upload'/'download'/None),
    ``total``, ``synced`` (progress: the server's synced for uploads, the last
    current for downloads), ``expected_current`` (the next UploadCaramer's
    current), ``expected_downloaded`` (the next DownLoadCaramer's value, None
    if unknown), ``completed``, ``failed`` (UploadFail + DownloadFail
    answers), ``pending`` (unanswered requests) and :meth:`allows`.
    """

    def __init__(
        self,
        *,
        announced: bool | None = True,
        start_seen: bool = True,
        port: int | None = None,
        max_pending: int | None = None,
    ) -> None:
        super().__init__()
        self.announced = announced
        self.start_seen = start_seen
        self.port = port
        self.state: DataState = _D.IDLE
        self.total: int | None = None
        self.synced = 0
        self.failed = 0
        self.expected_current = 1
        self.expected_downloaded: int | None = 0 if start_seen else None
        #: the transfer requests waiting for an answer, paired by the one pairing rule
        self.pairing = Pairing(limit=max_pending)
        self._requests_by_index: dict[int, _Request] = {}
        self._requests = 0  # transfer requests seen
        self._answers = 0  # transfer answers seen

    @property
    def pending(self) -> list[_Request]:
        """The transfer requests not answered yet, oldest first."""
        return [self._requests_by_index[w.index] for w in self.pairing.waiting]

    def _wait(self, request: _Request, msg: Message) -> None:
        self.pairing.request(request.index, msg)
        self._requests_by_index[request.index] = request
        if len(self._requests_by_index) > len(self.pairing):  # over the pairing's limit
            del self._requests_by_index[next(iter(self._requests_by_index))]

    def _settle(self, msg: Message) -> _Request | None:
        """The request ``msg`` answers (None: nothing waiting); retries it serves go too."""
        paired = self.pairing.answer(msg)
        for w in (*paired.dropped, *paired.retries):
            self._requests_by_index.pop(w.index, None)
        if paired.request is None:
            return None
        return self._requests_by_index.pop(paired.request.index)

    @property
    def kind(self) -> str | None:
        if self.state in _UPLOAD_STATES:
            return "upload"
        if self.state in _DOWNLOAD_STATES:
            return "download"
        return None

    @property
    def completed(self) -> bool:
        return self.state in (_D.UPLOADED, _D.DOWNLOADED)

    @property
    def incomplete(self) -> bool:
        """Whether closing now would be ``incomplete_sync``."""
        if self.kind is None or self.completed or self.state is _D.DOWNLOAD_FAILED:
            return False
        return bool(self.pending) or (self.total is not None and self.synced < self.total)

    def allows(self, direction: str, command: str) -> bool:
        """Whether ``command`` from ``direction`` is expected in the current state."""
        return (direction, command) in DATA_TRANSITIONS[self.state]

    def on_close(self, last_index: int | None = None, ts_ns: int | None = None) -> list[Violation]:
        """The connection closed: ``incomplete_sync`` on ``last_index`` (default: the last
        message fed) if the transfer stopped short. Closing twice reports nothing new."""
        if self.closed:
            return []
        self.closed = True
        if last_index is None:
            last_index = self.last_index
        kind = self.kind
        if last_index is None or kind is None or not self.incomplete:
            return []
        first = self.pending[0].index if self.pending else None
        detail = text_incomplete(kind, self.synced, self.total, len(self.pending), first)
        return [Violation("incomplete_sync", last_index, detail)]

    # -- engine
    def _step(self, found: _Findings, direction: str, msg: Message, ts_ns: int) -> None:
        if self.messages == 0 and self.announced is False:
            found.add("unannounced_data_port", text_unannounced(self.port))
        spec = msg.spec
        if spec is None:
            return
        key = (direction, spec.name)
        nxt = DATA_TRANSITIONS[self.state].get(key)
        if nxt is None:
            odd = text_oddity(spec, direction, Channel.DATA)
            self.note(found.index, odd or text_not_expected(spec.name, direction, self.state))
            return
        _DATA_HANDLERS[key](self, found, msg)
        self.state = nxt
        # the one state-triggered transition: has the transfer reached its total?
        done = self.total is not None and self.synced >= self.total
        if self.state in _UPLOAD_STATES:
            self.state = _D.UPLOADED if done else _D.UPLOADING
        elif self.state in (_D.DOWNLOADING, _D.DOWNLOADED):
            self.state = _D.DOWNLOADED if done else _D.DOWNLOADING

    def _check_total(self, found: _Findings, rule: str, command: str, total: int | None) -> None:
        if total is None:
            return
        if self.total is not None and total != self.total:
            found.add(rule, text_total_changed(command, self.total, total))
        self.total = total

    # -- uploads
    # (the table below dispatches by command, so each handler gets its command's class)
    def _upload_request(self, found: _Findings, msg: Message) -> None:
        assert isinstance(msg, UploadCaramer)
        expected = self.expected_current
        current = msg.current
        if current is None:
            current = expected  # malformed: assume the expected value
        elif current != expected and (self.start_seen or self._requests):
            found.add("upload_sequence",
                      text_upload_current(current, expected, first=not self._requests))
        self._check_total(found, "upload_sequence", "UploadCaramer", msg.total)
        if self.total is not None and current > self.total:
            found.add("upload_sequence", text_exceeds_total("UploadCaramer", current, self.total))
        if self.completed:
            self.note(found.index, text_upload_after_complete(current))
        self.expected_current = current + 1
        self._requests += 1
        self._wait(_Request(found.index, msg.camera_id, current, msg.total), msg)

    def _upload_answer(self, found: _Findings, msg: Message) -> None:
        assert isinstance(msg, UploadSucess | UploadFail)
        name = msg.command
        if name == "UploadFail":
            self.failed += 1
        self._answers += 1
        req = self._settle(msg)
        if req is None:
            self.note(found.index, text_unanswered(name, "UploadCaramer"))
        else:
            if msg.camera_id is not None and req.camera_id is not None \
                    and msg.camera_id != req.camera_id:
                found.add("upload_sequence", text_upload_camera(
                    name, msg.camera_id, req.camera_id, req.index, req.position))
            if msg.total is not None and req.total is not None and msg.total != req.total:
                found.add("upload_sequence",
                          text_upload_total(name, msg.total, req.total, req.index))
            if msg.synced is not None and msg.synced != req.position:
                self.note(found.index, text_upload_synced(name, msg.synced, req.position))
            self.synced = max(self.synced, req.position)
        if msg.synced is not None:
            self.synced = max(self.synced, msg.synced)
        if self.total is None and msg.total is not None:
            self.total = msg.total

    # -- downloads
    def _download_request(self, found: _Findings, msg: Message) -> None:
        assert isinstance(msg, DownLoadCaramer)
        expected = self.expected_downloaded
        downloaded = msg.downloaded
        if downloaded is None:  # malformed: assume the expected value
            downloaded = expected if expected is not None else self.synced
        elif expected is not None and downloaded != expected:
            found.add("download_sequence", text_download_request(
                downloaded, expected, self._requests, self._answers))
        if self.completed:
            self.note(found.index, text_download_past_end(downloaded, self.total))
        self.expected_downloaded = downloaded  # a repeat of this request is fine
        self._requests += 1
        self._wait(_Request(found.index, None, downloaded, None), msg)

    def _download_answer(self, found: _Findings, msg: Message) -> None:
        assert isinstance(msg, DownloadSucess)
        self._answers += 1
        req = self._settle(msg)  # the latest request waiting: earlier ones were retries
        expected = req.position + 1 if req is not None else self.synced + 1
        current = msg.current
        if req is None:
            self.note(found.index, text_unanswered("DownloadSucess", "DownLoadCaramer"))
        if current is None:
            current = expected  # malformed: assume the expected value
        elif current != expected and (req is not None or self.start_seen or self._answers > 1):
            found.add("download_sequence", text_download_current(
                current, expected, None if req is None else req.position,
                None if req is None else req.index))
        self._check_total(found, "download_sequence", "DownloadSucess", msg.total)
        if self.total is not None and current > self.total:
            found.add("download_sequence",
                      text_exceeds_total("DownloadSucess", current, self.total))
        self.synced = current
        self.expected_downloaded = current

    def _download_fail(self, found: _Findings, msg: Message) -> None:
        self.failed += 1
        self._answers += 1
        if self._settle(msg) is None:
            self.note(found.index, text_unanswered("DownloadFail", "DownLoadCaramer"))


_DATA_HANDLERS: dict[Key, Callable[[DataSession, _Findings, Message], None]] = {
    (C2S, "UploadCaramer"): DataSession._upload_request,
    (S2C, "UploadSucess"): DataSession._upload_answer,
    (S2C, "UploadFail"): DataSession._upload_answer,
    (C2S, "DownLoadCaramer"): DataSession._download_request,
    (S2C, "DownloadSucess"): DataSession._download_answer,
    (S2C, "DownloadFail"): DataSession._download_fail,
}

# ------------------------------------------------------------------ one-call helpers

Event = tuple[int, str, Message, int]  # (index, direction, message, ts_ns)


def _run(session: _Session, events: Iterable[Event], closed: bool) -> list[Violation]:
    out: list[Violation] = []
    last_ts: int | None = None
    for index, direction, msg, ts_ns in events:
        out += session.on_message(index, direction, msg, ts_ns)
        last_ts = ts_ns
    if closed:
        out += session.on_close(None, last_ts)
    return out


def check_main(
    events: Iterable[Event],
    *,
    start_seen: bool = True,
    heartbeat_timeout_ns: int | None = DEFAULT_HEARTBEAT_TIMEOUT_NS,
    opened_ns: int | None = None,
) -> list[Violation]:
    """The violations of a whole main conversation of ``(index, direction, msg, ts_ns)``."""
    session = MainSession(start_seen=start_seen, heartbeat_timeout_ns=heartbeat_timeout_ns,
                          opened_ns=opened_ns)
    return _run(session, events, closed=True)


def check_data(
    events: Iterable[Event],
    *,
    announced: bool | None = True,
    start_seen: bool = True,
    closed: bool = True,
    port: int | None = None,
) -> list[Violation]:
    """The violations of a whole data conversation; ``closed=False`` if it never closed."""
    session = DataSession(announced=announced, start_seen=start_seen, port=port)
    return _run(session, events, closed=closed)


__all__ = [
    "DATA_TRANSITIONS",
    "DEFAULT_HEARTBEAT_TIMEOUT_NS",
    "MAIN_TRANSITIONS",
    "RULES",
    "Announcement",
    "DataSession",
    "DataState",
    "MainSession",
    "MainState",
    "Note",
    "Violation",
    "announcing",
    "check_data",
    "check_main",
    "data_port_announced",
]

"""The command catalogue: the single source of truth for the protocol's commands.

Every other part of camprotool (codec, typed messages, session rules, the
dataframe schema, the generated docs, the Wireshark dissector) reads this
table instead of spelling command names or field layouts itself, so adding a
command is one entry here.

Names are kept exactly as the source document spells them, typos included
(``Caramer``, ``Sucess``, ``Prush``, ``Creat``, ``DownLoad`` vs ``Download``):
they are what real deployments put on the wire.

A command's parameter string has one of four *layouts*:

``pipe``
    fields joined with ``|``; the last field of a one-field command (a
    ``reason``) takes the whole string, ``|`` included.
``ids``
    camera ids joined with ``;`` (``CheckCaramerOnlineStatus``).
``status_list``
    ``id;status`` pairs joined with ``|`` (``ReturnCaramerOnlineStatus``).
``colon_pair``
    ``id:value`` (the two server pushes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Direction(StrEnum):
    """Who sends a command. ``push`` is server-to-client without a request."""

    C2S = "c2s"
    S2C = "s2c"
    PUSH = "push"

    @property
    def wire(self) -> str:
        """The direction as seen on the wire: pushes travel server to client."""
        return "c2s" if self is Direction.C2S else "s2c"


class Channel(StrEnum):
    MAIN = "main"
    DATA = "data"


class Kind(StrEnum):
    """How a field's text becomes a typed value."""

    TEXT = "text"  # kept as str
    SECRET = "secret"  # str, masked in tables unless revealed
    COUNT = "count"  # non-negative integer, ASCII digits only
    PORT = "port"  # integer 1-65535, or empty (None): "no free port"
    STATUS = "status"  # true / false / null -> True / False / None
    CAMERA_ID = "camera_id"  # str without the separators | ; :


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind
    doc: str = ""


class Layout(StrEnum):
    PIPE = "pipe"
    IDS = "ids"
    STATUS_LIST = "status_list"
    COLON_PAIR = "colon_pair"


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command of the protocol."""

    number: int  # position in the source document (0: our heartbeat assumption)
    group: str  # LoginCommand, NormalCommand, CaramCommand
    name: str  # short name, e.g. UploadCaramer
    direction: Direction
    channel: Channel
    layout: Layout
    fields: tuple[Field, ...]
    doc: str
    #: a request's possible answers, in the order the source lists them (empty:
    #: not a request, or one nobody answers, like the heartbeat)
    answers: tuple[str, ...] = ()
    #: a repeat of this request before its answer is a retry: the one answer that
    #: comes serves every copy waiting (a DownLoadCaramer echoes the last answer, so
    #: it cannot be pipelined); otherwise each answer takes the oldest request waiting
    retries: bool = False

    @property
    def is_request(self) -> bool:
        return bool(self.answers)

    @property
    def full_name(self) -> str:
        return f"SocketCommand.{self.group}.{self.name}"

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


def _f(name: str, kind: Kind, doc: str = "") -> Field:
    return Field(name, kind, doc)


USER = _f("user", Kind.TEXT, "account name")
PASSWORD = _f("password", Kind.SECRET, "account password")
CAMERA_ID = _f("camera_id", Kind.CAMERA_ID, "camera id")
CAMERA_PASSWORD = _f("camera_password", Kind.SECRET, "camera password")
ONLINE = _f("online", Kind.STATUS, "true online, false offline, null unknown")
CURRENT = _f("current", Kind.COUNT, "1-based position of this camera in the transfer")
TOTAL = _f("total", Kind.COUNT, "number of cameras in the transfer")
SYNCED = _f("synced", Kind.COUNT, "cameras processed so far, failed ones included")
REASON = _f("reason", Kind.TEXT, "human-readable reason")

HEARTBEAT = "Heartbeat"

COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(1, "LoginCommand", "Login", Direction.C2S, Channel.MAIN, Layout.PIPE,
                (USER, PASSWORD), "Log in to the account.",
                answers=("LoginOk", "LoginError")),
    CommandSpec(2, "LoginCommand", "LoginOk", Direction.S2C, Channel.MAIN, Layout.PIPE,
                (_f("camera_count", Kind.COUNT, "cameras bound to the account on the server"),
                 _f("last_login_time", Kind.TEXT, "previous login time, as the server writes it"),
                 _f("last_login_ip", Kind.TEXT, "previous login address")),
                "Login accepted; the client compares camera_count with its local list "
                "and then uploads (local > server) or downloads."),
    CommandSpec(3, "LoginCommand", "LoginError", Direction.S2C, Channel.MAIN, Layout.PIPE,
                (REASON,), "Login refused, usually 用户名或者密码错误! (wrong user or password)."),
    CommandSpec(4, "NormalCommand", "CreatDataSocket", Direction.C2S, Channel.MAIN, Layout.PIPE,
                (USER, PASSWORD), "Ask for a data connection.",
                answers=("ReturnDataSocketPort", "LoginError")),
    CommandSpec(5, "NormalCommand", "ReturnDataSocketPort", Direction.S2C, Channel.MAIN,
                Layout.PIPE, (_f("port", Kind.PORT, "data port; empty when none is free"),),
                "The data port to connect to, or empty when the server has no free port."),
    CommandSpec(6, "CaramCommand", "UploadCaramer", Direction.C2S, Channel.DATA, Layout.PIPE,
                (CAMERA_ID, CAMERA_PASSWORD, CURRENT, TOTAL),
                "Upload one camera; current starts at 1.",
                answers=("UploadSucess", "UploadFail")),
    CommandSpec(7, "CaramCommand", "UploadSucess", Direction.S2C, Channel.DATA, Layout.PIPE,
                (CAMERA_ID, ONLINE, SYNCED, TOTAL),
                "Camera bound; when synced == total the client may close."),
    CommandSpec(8, "CaramCommand", "UploadFail", Direction.S2C, Channel.DATA, Layout.PIPE,
                (CAMERA_ID, REASON, SYNCED, TOTAL),
                "Camera not bound: id/password mismatch, or bound to the maximum of accounts."),
    CommandSpec(9, "CaramCommand", "DownLoadCaramer", Direction.C2S, Channel.DATA, Layout.PIPE,
                (_f("downloaded", Kind.COUNT, "cameras downloaded so far (first request: 0)"),),
                "Ask for the next camera of the account.",
                answers=("DownloadSucess", "DownloadFail"), retries=True),
    CommandSpec(10, "CaramCommand", "DownloadSucess", Direction.S2C, Channel.DATA, Layout.PIPE,
                (CAMERA_ID, CAMERA_PASSWORD, ONLINE, CURRENT, TOTAL),
                "One camera of the account; the client echoes current until current == total."),
    CommandSpec(11, "CaramCommand", "DownloadFail", Direction.S2C, Channel.DATA, Layout.PIPE,
                (REASON,), "Download refused, usually: no camera bound to this account."),
    CommandSpec(12, "CaramCommand", "CheckCaramerOnlineStatus", Direction.C2S, Channel.MAIN,
                Layout.IDS, (_f("ids", Kind.CAMERA_ID, "camera ids joined with ;, at most 20"),),
                "Query the online status of up to 20 cameras.",
                answers=("ReturnCaramerOnlineStatus", "LoginError")),
    CommandSpec(13, "CaramCommand", "ReturnCaramerOnlineStatus", Direction.S2C, Channel.MAIN,
                Layout.STATUS_LIST,
                (_f("statuses", Kind.STATUS, "id;status pairs joined with |"),),
                "Status answer: true online, false offline, null unknown to the server."),
    CommandSpec(14, "CaramCommand", "PrushCaramerOnlineStatus", Direction.PUSH, Channel.MAIN,
                Layout.COLON_PAIR, (CAMERA_ID, ONLINE),
                "Server push on a camera status change; no reply."),
    CommandSpec(15, "CaramCommand", "PrushCaramerAlarmInfo", Direction.PUSH, Channel.MAIN,
                Layout.COLON_PAIR, (CAMERA_ID, _f("alarm_type", Kind.TEXT, "alarm type")),
                "Server push of an alarm, urgent; no reply."),
    CommandSpec(0, "NormalCommand", HEARTBEAT, Direction.C2S, Channel.MAIN, Layout.PIPE, (),
                "Keep-alive on the main connection (our assumption; the name is a dialect "
                "setting). No reply."),
)

BY_NAME: dict[str, CommandSpec] = {c.name: c for c in COMMANDS}
MAX_STATUS_IDS = 20

#: Every typed field name any command has, in catalogue order: the typed
#: columns of ``Capture.messages``.
FIELD_NAMES: tuple[str, ...] = tuple(
    dict.fromkeys(f.name for c in COMMANDS for f in c.fields)
)
SECRET_FIELDS: frozenset[str] = frozenset(
    f.name for c in COMMANDS for f in c.fields if f.kind is Kind.SECRET
)


def normalize_name(raw: str) -> str:
    """Strip whitespace around dots and at the ends: ``A. B`` -> ``A.B``."""
    if " " not in raw and "\t" not in raw:
        return raw
    return ".".join(part.strip() for part in raw.strip().split("."))


def spec_for(name: str, heartbeat_name: str | None = None) -> CommandSpec | None:
    """Look a command up by its full or short name, tolerating stray spaces.

    ``heartbeat_name`` is the dialect's name for the heartbeat (full or short);
    both it and our default name resolve to the heartbeat spec.
    """
    return _lookup(BY_NAME, name, heartbeat_name)


def _lookup(by_name: dict[str, CommandSpec], name: str,
            heartbeat_name: str | None) -> CommandSpec | None:
    name = normalize_name(name)
    short = name.rpartition(".")[2]
    spec = by_name.get(short)
    if spec is not None and (name == short or name == spec.full_name):
        return spec
    if heartbeat_name is not None:
        wanted = normalize_name(heartbeat_name)
        if name == wanted or name == wanted.rpartition(".")[2]:
            return by_name[HEARTBEAT]
    return None


class Catalogue:
    """A set of commands and which answers which: what a conversation is checked against.

    :data:`CATALOGUE` is the protocol's (the table above). A deployment or a
    test with a command of its own builds a bigger one with :meth:`extended`
    and hands it to the conversation layer (client, emulator, proxy): the
    request/answer pairing, the state rules and the emulator's dispatch all
    read it from here, so a new request/answer command is one entry.

    Answers arrive in request order on a connection; ``answers`` of each
    request spec say which commands may answer it (``LoginError`` also
    answers ``CreatDataSocket`` and ``CheckCaramerOnlineStatus`` sent before
    a login: the protocol has no other refusal on the main connection).
    """

    def __init__(self, commands: Iterable[CommandSpec]) -> None:
        self.commands: tuple[CommandSpec, ...] = tuple(commands)
        self.by_name: dict[str, CommandSpec] = {}
        for spec in self.commands:
            if spec.name in self.by_name:
                raise ValueError(f"command {spec.name} is in the catalogue twice")
            self.by_name[spec.name] = spec
        if HEARTBEAT not in self.by_name:
            raise ValueError(f"a catalogue needs the {HEARTBEAT} command")
        answered_by: dict[str, list[str]] = {}
        for spec in self.commands:
            for answer in spec.answers:
                other = self.by_name.get(answer)
                if other is None or other.direction is not Direction.S2C \
                        or spec.direction is not Direction.C2S:
                    raise ValueError(f"{spec.name} (a client request) must be answered by "
                                     f"server commands of the catalogue, not {answer!r}")
                answered_by.setdefault(answer, []).append(spec.name)
        #: request -> the commands that answer it
        self.answers: dict[str, tuple[str, ...]] = {
            s.name: s.answers for s in self.commands if s.answers}
        #: answer -> the requests it may answer
        self.answered_by: dict[str, tuple[str, ...]] = {
            k: tuple(v) for k, v in answered_by.items()}

    def extended(self, *specs: CommandSpec) -> Catalogue:
        """This catalogue plus ``specs`` (a new request and its answers, say)."""
        return Catalogue((*self.commands, *specs))

    def spec_for(self, name: str, heartbeat_name: str | None = None) -> CommandSpec | None:
        """:func:`spec_for` in this catalogue."""
        return _lookup(self.by_name, name, heartbeat_name)

    def is_answer(self, name: str) -> bool:
        return name in self.answered_by

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def __repr__(self) -> str:
        return f"<Catalogue of {len(self.commands)} commands>"


#: The protocol's catalogue (PROTOCOL.md section 2, with our heartbeat).
CATALOGUE = Catalogue(COMMANDS)
#: request -> the commands that answer it, for the protocol's catalogue
ANSWERS: dict[str, tuple[str, ...]] = CATALOGUE.answers

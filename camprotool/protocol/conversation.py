"""The conversation layer: one connection's whole protocol, sans-I/O (after h11's ``Connection``).

Why: which answer belongs to which request, which state allows which
command, which data connection a port announcement opens and which rule a
message breaks used to be written again by the client, the emulator, the
proxy, replay and the analysis. Here they are combined once, from the
catalogue (:mod:`~camprotool.protocol.catalogue`), the incremental decoder
(:mod:`~camprotool.protocol.codec`), the request/answer pairing
(:mod:`~camprotool.protocol.pairing`) and the session rules
(:mod:`~camprotool.protocol.rules`); the I/O code only feeds bytes in and
writes the bytes it is given out.

Three levels:

:class:`Conversation`
    one connection seen from outside (a proxy, a recorder, a capture): both
    directions are fed, ``feed(direction, data)`` returns events.
:class:`Peer`
    one end of a connection: ``receive_data(bytes)`` returns events,
    ``send(command, fields)`` returns the bytes to write after checking the
    command is legal here and now. A caller's mistake (a server command sent
    by the client, a command on the wrong channel, an answer nobody asked
    for, an upload on a download connection) raises :class:`LocalProtocolError`; a
    peer's mistake is an event (a :class:`ViolationEvent`, a :class:`Note`).
:class:`ClientConversation` / :class:`ServerConversation`
    one main connection and its data connections: a data connection opened
    to a port the main connection announced is judged as announced.

Events, in the order they happen: a :class:`MessageEvent` per message
(:class:`Request`, :class:`Answer` with the request it answers,
:class:`Push`, :class:`Other` for heartbeats, unknown commands and
unreadable frames), then the message's :class:`ViolationEvent`\\ s, its
:class:`NoteEvent`\\ s, and a :class:`StateChange` when it moved the
connection's state. Message indexes count the connection's messages from 0,
both directions together.

Time is the caller's: pass ``ts_ns`` (nanoseconds) to judge heartbeat gaps;
without it every message is at 0 and no gap is ever reported.

A client before its login may send any client command on the main
connection: a server may not require the login (the emulator's
``require_login=False``), and judging that is the server's job (it answers
``LoginError``). A server may push once the client said something: the rules
log a connection out on any ``LoginError`` (it may answer a ``CreatDataSocket``
with wrong credentials while the emulator keeps the account logged in), so
"logged in" is the emulator's to judge, and the rules still report a push
before ``LoginOk`` as ``before_login``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from camprotool.protocol.catalogue import CATALOGUE, Catalogue, Channel, CommandSpec, Direction
from camprotool.protocol.codec import Decoder, encode
from camprotool.protocol.dialect import LINE, Dialect
from camprotool.protocol.errors import LocalProtocolError
from camprotool.protocol.messages import Message, build_message
from camprotool.protocol.pairing import MAX_WAITING, Pairing, Waiting
from camprotool.protocol.rules import (
    C2S,
    DATA_TRANSITIONS,
    DEFAULT_HEARTBEAT_TIMEOUT_NS,
    S2C,
    DataSession,
    MainSession,
    Violation,
)

# ------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """A message of the connection (``direction`` 'c2s' or 's2c'); ``end`` is its stream
    offset just past its last byte, in its direction."""

    index: int
    direction: str
    message: Message
    end: int = 0

    @property
    def command(self) -> str:
        return self.message.command


@dataclass(frozen=True, slots=True)
class Request(MessageEvent):
    """A client request that expects an answer (the catalogue lists its answers)."""


@dataclass(frozen=True, slots=True)
class Answer(MessageEvent):
    """A server answer, paired with the request it answers (``request`` None: nothing was
    waiting). ``retries``: earlier copies of a retried request it also serves; ``dropped``:
    older requests it shows will never be answered (answers come in order)."""

    request: Waiting | None = None
    retries: tuple[Waiting, ...] = ()
    dropped: tuple[Waiting, ...] = ()


@dataclass(frozen=True, slots=True)
class Push(MessageEvent):
    """A server push: no request, no reply."""


@dataclass(frozen=True, slots=True)
class Other(MessageEvent):
    """A message that is neither request, answer nor push: a heartbeat, an unknown command,
    an unreadable frame, a command in the wrong direction."""


@dataclass(frozen=True, slots=True)
class ViolationEvent:
    """A breach of a PROTOCOL.md section 5 rule by the message at ``violation.message``.

    ``direction`` is that message's ('c2s': the client broke it), None when the
    connection had no message."""

    violation: Violation
    direction: str | None
    message: Message | None

    @property
    def rule(self) -> str:
        return self.violation.rule

    @property
    def index(self) -> int:
        return self.violation.message

    @property
    def detail(self) -> str:
        return self.violation.detail


@dataclass(frozen=True, slots=True)
class NoteEvent:
    """Something odd no section-5 rule covers (an unknown command, a misplaced one, an
    answer nobody asked for)."""

    index: int
    detail: str


@dataclass(frozen=True, slots=True)
class StateChange:
    """The connection's state moved (``awaiting_login`` -> ``logged_in``, ``idle`` ->
    ``uploading``, ...) on message ``index``."""

    index: int
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Closed:
    """The connection ended (after the frames left incomplete and the close's violations)."""

    state: str


Event = MessageEvent | ViolationEvent | NoteEvent | StateChange | Closed


# ------------------------------------------------------------------ one connection


class Conversation:
    """One connection's protocol, fed both directions (see the module doc).

    ``channel``: 'main' or 'data'. ``catalogue``: the commands (default the
    protocol's); a command the codec does not know but ``catalogue`` does is
    typed by ``catalogue``. The session keywords are those of
    :class:`~camprotool.protocol.rules.MainSession` (``start_seen``,
    ``heartbeat_timeout_ns``, ``opened_ns``) and
    :class:`~camprotool.protocol.rules.DataSession` (``announced``, ``port``).
    """

    def __init__(
        self,
        channel: Channel | str = Channel.MAIN,
        dialect: Dialect | str = LINE,
        *,
        catalogue: Catalogue = CATALOGUE,
        start_seen: bool = True,
        announced: bool | None = True,
        port: int | None = None,
        heartbeat_timeout_ns: int | None = DEFAULT_HEARTBEAT_TIMEOUT_NS,
        opened_ns: int | None = None,
    ) -> None:
        self.channel = Channel(channel)
        self.dialect = Dialect.parse(dialect)
        self.catalogue = catalogue
        self._decoders = {C2S: Decoder(self.dialect), S2C: Decoder(self.dialect)}
        self.session: MainSession | DataSession
        if self.channel is Channel.MAIN:
            self.session = MainSession(start_seen=start_seen,
                                       heartbeat_timeout_ns=heartbeat_timeout_ns,
                                       opened_ns=opened_ns)
        else:
            self.session = DataSession(announced=announced, start_seen=start_seen, port=port,
                                       max_pending=MAX_WAITING)
        self.pairing = Pairing(catalogue)
        self.messages = 0  # messages seen, both directions: the next message's index
        self.closed = False
        self._last: tuple[str, Message] | None = None  # the last message (for close)

    @property
    def state(self) -> str:
        return str(self.session.state)

    def decoder(self, direction: str) -> Decoder:
        return self._decoders[direction]

    def feed(self, direction: str, data: bytes, ts_ns: int = 0) -> list[Event]:
        """The events of ``data`` travelling in ``direction``."""
        decoder = self._direction(direction)
        out: list[Event] = []
        for end, msg in decoder.feed_with_ends(data):
            out += self.feed_message(direction, msg, ts_ns, end)
        return out

    def feed_message(self, direction: str, message: Message, ts_ns: int = 0, end: int = 0
                     ) -> list[Event]:
        """The events of one message already decoded (a table's row, a recording's)."""
        self._direction(direction)
        if self.closed:
            raise LocalProtocolError("message fed to a conversation already closed")
        message = self._typed(message)
        index = self.messages
        self.messages += 1
        self._last = (direction, message)
        session = self.session
        before = session.state
        violations = session.on_message(index, direction, message, ts_ns)
        out: list[Event] = [self._classify(index, direction, message, end)]
        out += [ViolationEvent(v, direction, message) for v in violations]
        out += self._notes()
        if session.state != before:
            out.append(StateChange(index, str(before), str(session.state)))
        return out

    def close(self, ts_ns: int = 0) -> list[Event]:
        """The connection ended: frames left incomplete, the close's violations, Closed."""
        if self.closed:
            return []
        out: list[Event] = []
        for direction, decoder in self._decoders.items():
            for end, msg in decoder.finish_with_ends():
                out += self.feed_message(direction, msg, ts_ns, end)
        self.closed = True
        last = self._last
        for v in self.session.on_close(None, ts_ns if self.messages else None):
            out.append(ViolationEvent(v, last[0] if last else None, last[1] if last else None))
        out += self._notes()
        self.pairing.clear()
        out.append(Closed(self.state))
        return out

    # -- internals
    def _direction(self, direction: str) -> Decoder:
        decoder = self._decoders.get(direction)
        if decoder is None:
            raise LocalProtocolError(f"direction must be 'c2s' or 's2c', not {direction!r}")
        return decoder

    def _typed(self, message: Message) -> Message:
        """A command the codec left unknown but an extended catalogue knows, typed by it."""
        if message.spec is not None or self.catalogue is CATALOGUE or not message.command:
            return message
        spec = self.catalogue.spec_for(message.command, self.dialect.heartbeat_name)
        if spec is None:
            return message
        return build_message(spec, spec.name, message.params, message.raw, message.error)

    def _classify(self, index: int, direction: str, message: Message, end: int
                  ) -> MessageEvent:
        spec = message.spec
        if spec is None:
            return Other(index, direction, message, end)
        if direction == C2S and spec.direction is Direction.C2S:
            if self.pairing.request(index, message):
                return Request(index, direction, message, end)
        elif direction == S2C and spec.direction is Direction.PUSH:
            return Push(index, direction, message, end)
        elif direction == S2C and self.pairing.is_answer(spec.name):
            paired = self.pairing.answer(message)
            return Answer(index, direction, message, end, paired.request, paired.retries,
                          paired.dropped)
        return Other(index, direction, message, end)

    def _notes(self) -> list[Event]:
        # Notes leave the session as events, so a long-lived connection keeps none.
        notes = self.session.notes
        if not notes:
            return []
        out: list[Event] = [NoteEvent(n.message, n.detail) for n in notes]
        notes.clear()
        return out


# ------------------------------------------------------------------ one end


class Peer:
    """One end (``side`` 'client' or 'server') of a :class:`Conversation`."""

    def __init__(self, conversation: Conversation, side: str) -> None:
        if side not in ("client", "server"):
            raise LocalProtocolError(f"side must be 'client' or 'server', not {side!r}")
        self.conversation = conversation
        self.side = side
        self.incoming = S2C if side == "client" else C2S
        self.outgoing = C2S if side == "client" else S2C

    @property
    def catalogue(self) -> Catalogue:
        return self.conversation.catalogue

    @property
    def session(self) -> MainSession | DataSession:
        return self.conversation.session

    @property
    def state(self) -> str:
        return self.conversation.state

    @property
    def pairing(self) -> Pairing:
        return self.conversation.pairing

    def receive_data(self, data: bytes, ts_ns: int = 0) -> list[Event]:
        """The events of bytes from the other end."""
        return self.conversation.feed(self.incoming, data, ts_ns)

    def receive_eof(self, ts_ns: int = 0) -> list[Event]:
        """The connection ended (either end closed)."""
        return self.conversation.close(ts_ns)

    def check_send(self, command: str | CommandSpec) -> CommandSpec:
        """The spec of ``command`` if this end may send it now; else LocalProtocolError."""
        conv = self.conversation
        spec = command if isinstance(command, CommandSpec) else conv.catalogue.spec_for(
            command, conv.dialect.heartbeat_name)
        if spec is None:
            raise LocalProtocolError(f"{command!r} is not a command of the catalogue "
                                     "(send_raw sends anything)")
        if conv.closed:
            raise LocalProtocolError(f"{spec.name}: the connection is closed")
        mine = (Direction.C2S,) if self.side == "client" else (Direction.S2C, Direction.PUSH)
        if spec.direction not in mine:
            raise LocalProtocolError(f"{spec.name} is sent by the "
                                     f"{'server' if self.side == 'client' else 'client'}, "
                                     f"not the {self.side}")
        if spec.channel is not conv.channel:
            raise LocalProtocolError(f"{spec.name} belongs on a {spec.channel} connection, "
                                     f"this is a {conv.channel} one")
        session = conv.session
        if spec.direction is Direction.PUSH and isinstance(session, MainSession) \
                and session.messages == 0:
            raise LocalProtocolError(f"{spec.name}: no push before the client said anything")
        if self.side == "server" and conv.catalogue.is_answer(spec.name) \
                and not conv.pairing.can_answer(spec.name):
            raise LocalProtocolError(f"{spec.name} answers no request waiting")
        if self.side == "client" and isinstance(session, DataSession) \
                and (self.outgoing, spec.name) in _DATA_KEYS \
                and not session.allows(self.outgoing, spec.name):
            raise LocalProtocolError(f"{spec.name} is not allowed on a data connection in "
                                     f"state {session.state}")
        return spec

    def prepare(self, command: str | CommandSpec,
                fields: Mapping[str, Any] | str | None = None) -> bytes:
        """The bytes of ``command`` if it may be sent now (checked, not yet sent: the I/O
        code writes them and feeds them back through :meth:`sent`)."""
        spec = self.check_send(command)
        return encode(spec, "" if fields is None else fields, self.conversation.dialect)

    def send(self, command: str | CommandSpec, fields: Mapping[str, Any] | str | None = None,
             ts_ns: int = 0) -> bytes:
        """Check, encode and account for one message; the bytes to write."""
        data = self.prepare(command, fields)
        self.sent(data, ts_ns)
        return data

    def send_raw(self, command: str, params: str = "", ts_ns: int = 0) -> bytes:
        """Any command the dialect can carry, unchecked (to test a peer's defences)."""
        data = encode(command, params, self.conversation.dialect)
        self.sent(data, ts_ns)
        return data

    def sent(self, data: bytes, ts_ns: int = 0) -> list[Event]:
        """Account for bytes this end wrote (they are judged like the other end's)."""
        return self.conversation.feed(self.outgoing, data, ts_ns)

    def by_peer(self, event: Event) -> bool:
        """Whether ``event`` (a violation) was committed by the other end."""
        return isinstance(event, ViolationEvent) and event.direction == self.incoming


_DATA_KEYS = frozenset(key for row in DATA_TRANSITIONS.values() for key in row)


# ------------------------------------------------------------------ main + data connections


class _Pair:
    side = "client"

    def __init__(self, dialect: Dialect | str = LINE, *, catalogue: Catalogue = CATALOGUE,
                 main: Conversation | None = None,
                 heartbeat_timeout_ns: int | None = DEFAULT_HEARTBEAT_TIMEOUT_NS) -> None:
        self.dialect = Dialect.parse(dialect)
        self.catalogue = catalogue
        conv = main or Conversation(Channel.MAIN, self.dialect, catalogue=catalogue,
                                    heartbeat_timeout_ns=heartbeat_timeout_ns)
        self.main = Peer(conv, self.side)
        self.data: list[Peer] = []

    def receive_data(self, data: bytes, ts_ns: int = 0) -> list[Event]:
        return self.main.receive_data(data, ts_ns)

    def send(self, command: str | CommandSpec, fields: Mapping[str, Any] | str | None = None,
             ts_ns: int = 0) -> bytes:
        return self.main.send(command, fields, ts_ns)

    def _data(self, conversation: Conversation | None, announced: bool | None,
              port: int | None) -> Peer:
        conv = conversation or Conversation(Channel.DATA, self.dialect,
                                            catalogue=self.catalogue, port=port)
        if conv.channel is not Channel.DATA:
            raise LocalProtocolError("a data connection needs a data conversation")
        session = conv.session
        assert isinstance(session, DataSession)
        session.announced, session.port = announced, port
        peer = Peer(conv, self.side)
        self.data = [p for p in self.data if not p.conversation.closed]
        self.data.append(peer)
        return peer


class ClientConversation(_Pair):
    """Our client's main connection and its data connections."""

    side = "client"

    def open_data(self, port: int, ts_ns: int = 0,
                  conversation: Conversation | None = None) -> Peer:
        """The data connection to ``port`` (judged as announced if the main connection's
        last ReturnDataSocketPort named it); ``conversation``: one the I/O already has."""
        session = self.main.session
        assert isinstance(session, MainSession)
        return self._data(conversation, session.port_announced(port, ts_ns), port)


class ServerConversation(_Pair):
    """The emulator's side of a main connection and the data connections it handed out."""

    side = "server"

    def accept_data(self, port: int | None = None,
                    conversation: Conversation | None = None) -> Peer:
        """A data connection the server accepted on a port it reserved for this client."""
        return self._data(conversation, True, port)


__all__ = [
    "Answer",
    "ClientConversation",
    "Closed",
    "Conversation",
    "Event",
    "MessageEvent",
    "NoteEvent",
    "Other",
    "Peer",
    "Push",
    "Request",
    "ServerConversation",
    "StateChange",
    "ViolationEvent",
]

"""Which answer belongs to which request: the one pairing rule, read from the catalogue.

The protocol has no request ids. What ties an answer to its request is the
order of a connection's messages and the catalogue's ``answers`` lists, so
the rule is written here once and everything that needs it (the
conversation layer that drives the client, the emulator, the proxy and
replay; the session rules; the analysis tables' vectorised twin, held to
this by property tests) asks :class:`Pairing`:

* An answer takes the *oldest* waiting request it can answer (the catalogue
  says which: ``LoginError`` answers ``Login``, ``CreatDataSocket`` and
  ``CheckCaramerOnlineStatus``).
* Requests waiting *before* that one are settled as never answered
  (``dropped``): answers come in request order, so a later request's answer
  shows an earlier one's will not come.
* A request whose spec has ``retries`` (``DownLoadCaramer``) repeated before
  its answer is a retry: the one answer serves every copy waiting, and is
  paired with the latest of them (the copies come back in ``retries``).
* An answer that finds nothing waiting (a capture started mid-transfer, a
  server talking out of turn) is paired with nothing: a value, not an error.

Sans-I/O: no sockets, clocks or tables; indexes are the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from camprotool.protocol.catalogue import CATALOGUE, Catalogue
from camprotool.protocol.messages import Message


@dataclass(frozen=True, slots=True)
class Waiting:
    """A request sent and not answered yet: the caller's index of it and the message."""

    index: int
    message: Message

    @property
    def command(self) -> str:
        return self.message.command


class Paired(NamedTuple):
    """What one answer settled."""

    request: Waiting | None  # the request it answers; None: nothing was waiting
    retries: tuple[Waiting, ...] = ()  # earlier copies of a retried request it also serves
    dropped: tuple[Waiting, ...] = ()  # older requests it shows will never be answered


#: Requests a connection may have waiting at once; past it the oldest is forgotten (a
#: peer flooding requests nobody answers must not grow a proxy's memory without bound).
MAX_WAITING = 4096


class Pairing:
    """The requests waiting on one connection, and the answers that settle them."""

    __slots__ = ("catalogue", "limit", "waiting")

    def __init__(self, catalogue: Catalogue = CATALOGUE, limit: int | None = MAX_WAITING
                 ) -> None:
        """``limit``: requests kept waiting at most (None: all, for a capture's judge)."""
        self.catalogue = catalogue
        self.limit = limit
        self.waiting: list[Waiting] = []

    def __len__(self) -> int:
        return len(self.waiting)

    def is_request(self, command: str) -> bool:
        return command in self.catalogue.answers

    def is_answer(self, command: str) -> bool:
        return command in self.catalogue.answered_by

    def request(self, index: int, message: Message) -> bool:
        """Remember ``message`` as waiting for an answer; False if it expects none."""
        if message.command not in self.catalogue.answers or message.spec is None:
            return False
        self.waiting.append(Waiting(index, message))
        if self.limit is not None and len(self.waiting) > self.limit:
            del self.waiting[0]
        return True

    def can_answer(self, command: str) -> bool:
        """Whether some waiting request may be answered by ``command``."""
        wanted = self.catalogue.answered_by.get(command, ())
        return any(w.command in wanted for w in self.waiting)

    def expects(self) -> tuple[str, ...]:
        """The commands that may answer the oldest waiting request (none: ``()``)."""
        if not self.waiting:
            return ()
        return self.catalogue.answers[self.waiting[0].command]

    def answer(self, message: Message) -> Paired:
        """Pair the answer ``message`` with the request it answers (see the module doc)."""
        wanted = self.catalogue.answered_by.get(message.command, ())
        waiting = self.waiting
        i = next((k for k, w in enumerate(waiting) if w.command in wanted), None)
        if i is None:
            return Paired(None)
        w = waiting[i]
        dropped = tuple(waiting[:i])
        spec = self.catalogue.by_name.get(w.command)
        end = i + 1
        if spec is not None and spec.retries:
            while end < len(waiting) and waiting[end].command == w.command:
                end += 1
        served = waiting[i:end]
        del waiting[:end]
        return Paired(served[-1], tuple(served[:-1]), dropped)

    def clear(self) -> list[Waiting]:
        """Forget every waiting request (the connection ended); they are returned."""
        out, self.waiting = self.waiting, []
        return out


__all__ = ["MAX_WAITING", "Paired", "Pairing", "Waiting"]

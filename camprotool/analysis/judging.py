"""What the column-wise rule checker works on, shared by ``fastrules`` and ``fastdata``.

``ConnInfo`` is what :class:`camprotool.analysis.violations.RuleCheck` would
tell each connection's machine (opening seen, port announced, closed), as
arrays indexed by connection id. ``Rows`` are the judged messages in capture
order, grouped by connection. A finding is ``(message, rank, rule, detail)``
and a note ``(message, rank, detail)``: sorted by (message, rank) they come
in the machines' order (a message's violations in ``RULES`` order, then
``incomplete_sync`` from the close; its notes as its machine writes them).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from camprotool.analysis import groups as g
from camprotool.protocol.catalogue import COMMANDS
from camprotool.protocol.rules import RULES

Found = tuple[int, int, str, str]  # (message, rank, rule, detail)
Noted = tuple[int, int, str]  # (message, rank, detail)

RANK = {rule: i for i, rule in enumerate(RULES)}
CLOSE_RANK = len(RULES)  # incomplete_sync from on_close comes after a message's own
MAIN, DATA = 0, 1  # ConnInfo.kind
CODE = {spec.name: i for i, spec in enumerate(COMMANDS)}  # command name -> spec code


class ConnInfo(NamedTuple):
    """What each connection's machine is told, in arrays indexed by connection id."""

    kind: np.ndarray  # MAIN, DATA, or -1: not judged
    start_seen: np.ndarray  # bool
    opened_ns: np.ndarray  # int64: the heartbeat clock's start where start_seen (main)
    announced: np.ndarray  # int8: 1, 0, or -1 for "cannot tell" (data)
    closed: np.ndarray  # bool: seen to close, so on_close is called
    port: dict[int, int | None]  # data connection id -> its server port (for the detail)


class Rows(NamedTuple):
    """Judged messages in capture order, grouped by connection, with what every check needs."""

    pos: np.ndarray  # message positions
    conn: np.ndarray
    c2s: np.ndarray
    ts: np.ndarray
    spec: np.ndarray  # index into COMMANDS, -1 for an unknown command
    error: np.ndarray  # bool: the decoder set an error
    first: np.ndarray  # per row, the index of its connection's first row

    def take(self, keep: np.ndarray) -> Rows:
        """The rows of whole connections where ``keep`` holds (groups renumbered)."""
        conn = self.conn[keep]
        return Rows(self.pos[keep], conn, self.c2s[keep], self.ts[keep], self.spec[keep],
                    self.error[keep], g.group_first(conn))

    def command(self, name: str, c2s: bool) -> np.ndarray:
        """Mask: the known command ``name`` sent in direction ``c2s``."""
        return (self.spec == CODE[name]) & (self.c2s if c2s else ~self.c2s)

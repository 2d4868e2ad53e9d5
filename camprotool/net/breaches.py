"""The rule breaches live connections committed, as the conversation layer judged them.

The emulator keeps those of its clients, the proxy those of both ends; both
show them as one ``violations`` dataframe and log each one, so a live run
says what ``Capture.violations`` would say about its recording.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from camprotool.protocol.conversation import Event, ViolationEvent
from camprotool.protocol.messages import masked_params

if TYPE_CHECKING:
    import pandas as pd

    from camprotool.net.recording import Conversation

#: Rows a table keeps (the newest).
MAX_VIOLATIONS = 10_000
COLUMNS = ("ts", "conn", "channel", "client", "direction", "rule", "command", "detail")


class Breaches:
    """A bounded table of rule breaches; ``reveal_passwords`` False masks them in details."""

    def __init__(self, log: logging.Logger, reveal_passwords: bool = False,
                 maxlen: int = MAX_VIOLATIONS) -> None:
        self.log = log
        self.reveal_passwords = reveal_passwords
        self.count = 0  # every breach added, kept or not
        self._rows: deque[tuple[Any, ...]] = deque(maxlen=maxlen)

    def add(self, conv: Conversation, events: Iterable[Event], by: str | None = None) -> int:
        """Keep the violations among ``events`` (only those of direction ``by`` if given);
        how many were added."""
        added = 0
        for e in events:
            if not isinstance(e, ViolationEvent) or (by is not None and e.direction != by):
                continue
            detail, msg = e.detail, e.message
            if not self.reveal_passwords and msg is not None and msg.params:
                detail = detail.replace(repr(msg.params[:80]), repr(masked_params(msg)[:80]))
            self._rows.append((time.time_ns(), conv.id, conv.channel, conv.client, e.direction,
                               e.rule, msg.command if msg is not None else None, detail))
            self.log.info("conn %d %s: %s: %s", conv.id, e.direction, e.rule, detail)
            added += 1
        self.count += added
        return added

    def frame(self) -> pd.DataFrame:
        """ts, conn, channel, client, direction (who broke it: c2s the client), rule,
        command, detail."""
        import pandas as pd

        rows = list(self._rows)
        frame = pd.DataFrame(rows, columns=list(COLUMNS)) if rows else pd.DataFrame(
            {n: pd.Series([], dtype="object") for n in COLUMNS})
        frame["ts"] = pd.to_datetime(frame["ts"].astype("int64"), unit="ns", utc=True)
        frame["conn"] = frame["conn"].astype("int64")
        return frame

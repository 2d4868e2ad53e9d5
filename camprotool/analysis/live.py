"""``LiveCapture``: the analysis tables of live traffic, as it is decoded (docs/live.md).

The capture layer's :class:`~camprotool.capture.live.LiveSource` runs dumpcap and
decodes in a thread, and hands snapshots of what it decoded as the
``DecodedCapture`` the file path hands to :class:`Capture`. This class is that
source plus the tables: ``messages`` and ``capture()`` build a :class:`Capture`
from a snapshot exactly as ``read_capture`` does (after ``stop()``, ``capture()``
equals ``read_capture(record)``), and ``on_message`` callbacks get the rows new
since their last call. It lives here, not in ``capture/``, because building
dataframes is the analysis layer's job (docs/architecture.md).

Threads: ``messages``/``capture()`` build the tables on the caller's thread from
a snapshot taken under the source's lock; ``on_message`` callbacks run on a
daemon thread of their own (``LiveCapture-notify``), at most every
``notify_interval`` seconds, with a frame of the rows that appeared since the
last call.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from camprotool.analysis.capture import Capture
from camprotool.capture.live import DEFAULT_SNAPLEN, LiveCaptureError, LiveSource
from camprotool.protocol.dialect import Dialect

__all__ = ["LiveCapture", "LiveCaptureError", "RowsCallback"]

log = logging.getLogger(__name__)

#: an ``on_message`` callback: gets a frame of new ``messages`` rows
RowsCallback = Callable[[pd.DataFrame], object]


class LiveCapture(LiveSource):
    """Decode the protocol from live traffic on ``interface`` into the ``Capture`` tables.

    ``ports``: capture and decode only TCP connections with an end on these
    ports (the capture filter is built from them); ``bpf``: a capture filter
    of your own (``and``-ed with the ports'). ``dialect``, ``reveal_passwords``:
    as for ``read_capture``. ``record``: also save the raw capture to this file
    (pcapng if its name ends in ``.pcapng``, else classic pcap), readable by
    ``read_capture`` at any time. ``snaplen``: bytes kept per packet.
    ``max_messages``: stop capturing once at least this many messages are
    decoded. ``program``: ``dumpcap`` (default), ``tshark`` or a path.
    ``notify_interval``: at most this often (seconds) ``on_message`` callbacks run.

    ``start()``, ``stop()``, a context manager; ``messages`` and ``capture()``
    give what is decoded so far; ``on_message(callback)`` pushes new rows.
    """

    def __init__(
        self,
        interface: str = "lo",
        *,
        ports: Iterable[int] | int | None = None,
        bpf: str | None = None,
        dialect: Dialect | str = "auto",
        reveal_passwords: bool = False,
        record: str | os.PathLike[str] | None = None,
        snaplen: int = DEFAULT_SNAPLEN,
        max_messages: int | None = None,
        program: str | None = None,
        start_timeout: float = 10.0,
        notify_interval: float = 0.1,
    ) -> None:
        super().__init__(interface, ports=ports, bpf=bpf, dialect=dialect,
                         reveal_passwords=reveal_passwords, record=record, snaplen=snaplen,
                         max_messages=max_messages, program=program,
                         start_timeout=start_timeout)
        self.notify_interval = notify_interval
        self._cached: tuple[int, Capture] | None = None
        self._callbacks: list[RowsCallback] = []
        self._notify_lock = threading.Lock()
        self._delivered = np.full(0, -1, np.int64)  # per (conn, direction): last end delivered

    # ------------------------------------------------------------------ tables
    @property
    def messages(self) -> pd.DataFrame:
        """What is decoded so far: exactly the columns and dtypes of ``Capture.messages``."""
        return self.capture().messages

    @property
    def connections(self) -> pd.DataFrame:
        return self.capture().connections

    def capture(self) -> Capture:
        """A :class:`~camprotool.analysis.capture.Capture` of everything decoded so far.

        Connections still open end, in it, at the last packet read (``end_of_capture``),
        as if the capture had stopped now; messages not yet complete are left out.
        Built once per ``version``: asking again before new packets costs nothing.
        """
        cached = self._cached
        if cached is not None and cached[0] == self.version:
            return cached[1]
        version, decoded = self.decoded()
        cap = Capture(decoded, reveal_passwords=self.reveal_passwords)
        with self._lock:
            if self.version == version:
                self._cached = (version, cap)
        return cap

    # ------------------------------------------------------------------ callbacks
    def on_message(self, callback: RowsCallback) -> RowsCallback:
        """Call ``callback(rows)`` with each batch of new ``messages`` rows (a DataFrame,
        labels as in ``messages`` at that moment), on a background thread; also a decorator.

        Rows decoded before the first callback was added are not passed.
        """
        with self._notify_lock:
            if not self._callbacks:
                self._delivered = self._ends_so_far(self.capture())
            self._callbacks.append(callback)
        return callback

    def remove_callback(self, callback: RowsCallback) -> None:
        with self._notify_lock:
            self._callbacks.remove(callback)

    def _extra_threads(self) -> list[tuple[Callable[[], None], str]]:
        return [(self._notify, "notify")]

    def _notify(self) -> None:
        """Hand new rows to the callbacks, at most every ``notify_interval`` seconds."""
        seen = -1
        while True:
            seen, done = self.wait_for_change(seen)
            with self._notify_lock:
                callbacks = list(self._callbacks)
            if callbacks:
                self._deliver(callbacks)
            if done:
                if self.version == seen:
                    return
                continue
            time.sleep(self.notify_interval)

    def _deliver(self, callbacks: list[RowsCallback]) -> None:
        cap = self.capture()
        with self._notify_lock:
            m = cap.messages
            if not len(m):
                return
            key = self._row_keys(cap)
            ends = m["stream_offset"].to_numpy()
            delivered = self._delivered
            if len(delivered) <= key.max():
                delivered = np.concatenate(
                    [delivered, np.full(key.max() + 1 - len(delivered), -1, np.int64)])
            new = ends > delivered[key]
            if not new.any():
                return
            np.maximum.at(delivered, key[new], ends[new])
            self._delivered = delivered
            rows = m[new]
        for callback in callbacks:
            try:
                callback(rows)
            except Exception:
                log.exception("LiveCapture.on_message callback %r failed", callback)

    @staticmethod
    def _row_keys(cap: Capture) -> np.ndarray:
        """Per message row: 2 * conn + the direction as the reassembler saw it (roles may swap
        as evidence comes in; a direction's messages come in stream order)."""
        m = cap.messages
        conn = m["conn"].to_numpy(np.int64)
        size = int(conn.max()) + 1 if len(conn) else 0
        swapped = np.zeros(size, bool)
        for rec in cap.decoded.connections:
            if rec.conn < size:
                swapped[rec.conn] = rec.swapped
        s2c = (m["direction"] == "s2c").to_numpy(bool)
        return 2 * conn + (s2c ^ swapped[conn])

    def _ends_so_far(self, cap: Capture) -> np.ndarray:
        m = cap.messages
        if not len(m):
            return np.full(0, -1, np.int64)
        key = self._row_keys(cap)
        delivered = np.full(int(key.max()) + 1, -1, np.int64)
        np.maximum.at(delivered, key, m["stream_offset"].to_numpy())
        return delivered

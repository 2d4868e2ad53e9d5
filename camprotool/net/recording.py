"""What the client, server and proxy saw: a live message log and a pcapng tap.

Every byte a component sends or receives passes through one
:class:`Conversation` (one per TCP connection), which

* decodes it with the same sans-I/O :class:`~camprotool.protocol.Decoder`
  that capture decoding uses, so ``client.messages`` and
  ``read_capture(...).messages`` agree on what a frame means;
* appends one row per message to the shared :class:`MessageLog` (bounded:
  the oldest rows go first, so a week-long emulator cannot eat the memory);
* writes the bytes, with real addresses and nanosecond timestamps, to a
  pcapng file through :mod:`camprotool.capture.writer` when recording.

A sent message is logged by decoding the bytes that were written, so the log
shows exactly what went on the wire, never what we meant to send.

Recordings are durable: the pcapng blocks are kept in memory for at most
``flush_interval`` seconds (0.5 by default; sooner once 256 KiB are pending)
and then written to the file whole, by a small background thread, so the
file is a valid capture at every moment (``read_capture`` and tshark read it
while it grows) and a process killed with ``kill -9`` leaves every packet up
to the last flush. Closing the log (every stop path of the server, proxy,
client and replay) flushes the rest; so does interpreter exit for a log
nobody closed.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from camprotool.capture.writer import PcapngWriter
from camprotool.net.addresses import format_endpoint
from camprotool.net.errors import NetError
from camprotool.protocol import Decoder, Dialect, Message
from camprotool.protocol.catalogue import CATALOGUE, Catalogue
from camprotool.protocol.conversation import Conversation as ProtocolConversation
from camprotool.protocol.conversation import Event, MessageEvent

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGES = 200_000
#: Seconds a recorded packet may wait in memory before it is written to the file.
DEFAULT_FLUSH_INTERVAL = 0.5
#: Pending bytes that are written at once, without waiting for the interval.
FLUSH_BYTES = 256 * 1024


class RecordingUnavailable(NetError, RuntimeError):
    """``record=`` was asked for but the pcapng writer cannot be used."""


class LoggedMessage(NamedTuple):
    ts_ns: int
    conn: int
    channel: str
    direction: str
    client: str
    server: str
    message: Message


class DurableFile:
    """The file a recording's ``PcapngWriter`` writes to: whole blocks, written out by flush.

    The writer hands over one whole pcapng block per ``write``; they wait in
    memory until :meth:`flush` writes them with ``os.write`` (a path: the file
    is opened unbuffered) or ``write`` + ``flush`` (a file object the caller
    gave). So what the file holds is always a run of complete blocks (bar a
    flush in progress), never a block cut by a userspace buffer.
    """

    def __init__(self, target: str | os.PathLike[str] | IO[bytes]) -> None:
        self._fd: int | None = None
        self._fh: IO[bytes] | None = None
        if isinstance(target, str | os.PathLike):
            self._fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            self.name = os.fspath(target)
        else:
            self._fh = target
            self.name = str(getattr(target, "name", "<file>"))
        self._pending = bytearray()
        self.closed = False

    @property
    def pending(self) -> int:
        return len(self._pending)

    def write(self, data: bytes) -> int:
        if self.closed:
            raise ValueError("write to a closed recording")
        self._pending += data
        return len(data)

    def flush(self) -> None:
        """Write every pending block to the file (the OS has them once this returns)."""
        if not self._pending or self.closed:
            return
        view = memoryview(self._pending)
        try:
            if self._fd is not None:
                done = 0
                while done < len(view):
                    done += os.write(self._fd, view[done:])
            else:
                assert self._fh is not None
                self._fh.write(view)
                self._fh.flush()
        finally:
            view.release()
        self._pending.clear()

    def close(self) -> None:
        """Flush, then close the file if we opened it (a caller's file object stays open)."""
        if self.closed:
            return
        try:
            self.flush()
        finally:
            self.closed = True
            if self._fd is not None:
                os.close(self._fd)


class DurablePcapngWriter(PcapngWriter):
    """A ``PcapngWriter`` over a :class:`DurableFile`, kept as ``durable`` so the log
    flushes it on its own schedule and closes it after the writer."""

    def __init__(self, durable: DurableFile) -> None:
        super().__init__(durable)
        self.durable = durable


def open_pcapng(record: str | Path | IO[bytes] | None) -> DurablePcapngWriter | None:
    """A ``PcapngWriter`` for ``record`` writing to a :class:`DurableFile`, or None.

    The file header is written at once, so the file is a valid (empty)
    capture from the start.
    """
    if record is None:
        return None
    try:
        out = DurableFile(record)
    except OSError as exc:
        raise OSError(f"cannot record to {record}: {exc.strerror or exc}") from None
    writer = DurablePcapngWriter(out)
    try:
        out.flush()
    except OSError as exc:
        out.close()
        raise OSError(f"cannot record to {record}: {exc.strerror or exc}") from None
    return writer


#: Every log with an open recording, flushed at interpreter exit if nobody closed it.
_OPEN_LOGS: weakref.WeakSet[MessageLog] = weakref.WeakSet()


@atexit.register
def _flush_open_logs() -> None:
    for log_ in list(_OPEN_LOGS):
        with contextlib.suppress(Exception):  # exiting anyway: flush the others
            log_.flush()


class Conversation:
    """One TCP connection as the log sees it: the protocol's conversation and a pcapng stream.

    The bytes go through one sans-I/O :class:`camprotool.protocol.conversation.
    Conversation` (decoder, pairing, session rules), so whoever holds this
    object (a client's, the emulator's or the proxy's stream) gets the same
    events; every message it yields becomes a log row.
    """

    def __init__(self, log_: MessageLog, conn: int, channel: str, client: tuple,
                 server: tuple, ts_ns: int) -> None:
        self.log = log_
        self.id = conn
        self.channel = channel
        self.client_addr = client
        self.server_addr = server
        self.client = format_endpoint(client)
        self.server = format_endpoint(server)
        self.protocol = ProtocolConversation(channel, log_.dialect, catalogue=log_.catalogue,
                                             opened_ns=ts_ns)
        self._pcap = log_.pcap_conversation(client, server, ts_ns)
        self.closed = False

    def feed(self, direction: str, data: bytes, ts_ns: int | None = None
             ) -> list[tuple[int, Message]]:
        """Log ``data`` travelling in ``direction``; return ``(stream end, message)`` pairs."""
        return [(e.end, e.message) for e in self.feed_events(direction, data, ts_ns)
                if isinstance(e, MessageEvent)]

    def feed_events(self, direction: str, data: bytes, ts_ns: int | None = None
                    ) -> list[Event]:
        """Log ``data`` travelling in ``direction``; return the conversation's events."""
        if not data or self.closed:
            return []
        ts = ts_ns if ts_ns is not None else time.time_ns()
        if self._pcap is not None:
            self.log.pcap_send(self._pcap, direction, bytes(data), ts)
        events = self.protocol.feed(direction, data, ts)
        self._log(events, ts)
        return events

    def _log(self, events: list[Event], ts: int) -> None:
        for e in events:
            if isinstance(e, MessageEvent):
                self.log.append(LoggedMessage(ts, self.id, self.channel, e.direction,
                                              self.client, self.server, e.message))

    def decoder(self, direction: str) -> Decoder:
        return self.protocol.decoder(direction)

    def close(self, ts_ns: int | None = None, by: str = "c2s") -> list[Event]:
        """Report frames left incomplete, end the pcapng conversation; the close's events.

        ``by`` is the side that closed first (``c2s``: the client), which the
        pcapng FIN exchange starts from.
        """
        if self.closed:
            return []
        self.closed = True
        ts = ts_ns if ts_ns is not None else time.time_ns()
        events = self.protocol.close(ts)
        self._log(events, ts)
        if self._pcap is not None:
            self.log.pcap_close(self._pcap, ts, by)
        return events


class MessageLog:
    """Thread-safe, bounded log of every message a component saw.

    ``reveal_passwords`` is the default for :meth:`dataframe`; listeners
    (``on_message``) are called on the component's loop thread for each row.
    ``flush_interval`` is how long (seconds) a recorded packet may stay in
    memory before it reaches the file. ``catalogue``: the commands the
    conversations know (default the protocol's).
    """

    def __init__(self, dialect: Dialect | str = "line", *, record: Any = None,
                 reveal_passwords: bool = False,
                 max_messages: int | None = DEFAULT_MAX_MESSAGES,
                 flush_interval: float = DEFAULT_FLUSH_INTERVAL,
                 catalogue: Catalogue = CATALOGUE) -> None:
        if not flush_interval > 0:
            raise ValueError(f"flush_interval must be > 0, got {flush_interval}")
        self.dialect = Dialect.parse(dialect)
        self.catalogue = catalogue
        self.reveal_passwords = reveal_passwords
        self._rows: deque[LoggedMessage] = deque(maxlen=max_messages)
        self._lock = threading.Lock()
        self._next_conn = 0
        self._listeners: list[Callable[[LoggedMessage], None]] = []
        self._writer = open_pcapng(record)
        self.record = record
        self.flush_interval = flush_interval
        self._flusher: threading.Thread | None = None
        self._stop_flusher = threading.Event()
        if self._writer is not None:
            _OPEN_LOGS.add(self)
            self._flusher = threading.Thread(target=self._flush_loop, daemon=True,
                                             name="camprotool-recording-flush")
            self._flusher.start()

    # -- connections
    def open(self, channel: str, client: tuple, server: tuple,
             ts_ns: int | None = None) -> Conversation:
        with self._lock:
            conn = self._next_conn
            self._next_conn += 1
        return Conversation(self, conn, channel, client, server,
                            ts_ns if ts_ns is not None else time.time_ns())

    # -- rows
    def append(self, row: LoggedMessage) -> None:
        with self._lock:
            self._rows.append(row)
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(row)
            except Exception:  # a listener's bug must not break the connection
                log.exception("message listener failed")

    def on_message(self, callback: Callable[[LoggedMessage], None]) -> None:
        with self._lock:
            self._listeners.append(callback)

    def rows(self) -> list[LoggedMessage]:
        with self._lock:
            return list(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def dataframe(self, reveal_passwords: bool | None = None) -> pd.DataFrame:
        from camprotool.net.table import messages_frame

        reveal = self.reveal_passwords if reveal_passwords is None else reveal_passwords
        return messages_frame(self.rows(), reveal_passwords=reveal)

    # -- pcapng
    def pcap_conversation(self, client: tuple, server: tuple, ts_ns: int) -> Any:
        if self._writer is None:
            return None
        with self._lock:
            try:
                return self._writer.tcp(client=(client[0], client[1]),
                                        server=(server[0], server[1]), ts_ns=ts_ns, rtt_ns=0)
            except (OSError, ValueError) as exc:
                log.warning("pcapng: cannot record %s <-> %s: %s",
                            format_endpoint(client), format_endpoint(server), exc)
                return None

    def pcap_send(self, conv: Any, direction: str, data: bytes, ts_ns: int) -> None:
        with self._lock:
            try:
                conv.send(direction, data, ts_ns)
                writer = self._writer
                if writer is not None and writer.durable.pending >= FLUSH_BYTES:
                    writer.durable.flush()
            except (OSError, ValueError) as exc:
                log.warning("pcapng: write failed: %s", exc)

    def pcap_close(self, conv: Any, ts_ns: int, by: str = "c2s") -> None:
        with self._lock:
            try:
                conv.close(ts_ns, by=by)
            except (OSError, ValueError) as exc:
                log.warning("pcapng: close failed: %s", exc)

    def flush(self) -> None:
        """Write what is recorded so far to the file (no-op when not recording)."""
        with self._lock:
            writer = self._writer
            if writer is None:
                return
            try:
                writer.durable.flush()
            except (OSError, ValueError) as exc:
                log.warning("pcapng: flush failed: %s", exc)

    def _flush_loop(self) -> None:
        # Event.wait, not sleep: close() ends this thread at once.
        while not self._stop_flusher.wait(self.flush_interval):
            self.flush()

    def close(self) -> None:
        """Flush and close the pcapng file (conversations still open are ended first)."""
        self._stop_flusher.set()
        flusher, self._flusher = self._flusher, None
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join()
        with self._lock:
            writer, self._writer = self._writer, None
            if writer is not None:
                _OPEN_LOGS.discard(self)
                try:
                    writer.close()  # flushes the DurableFile it was given
                finally:
                    writer.durable.close()

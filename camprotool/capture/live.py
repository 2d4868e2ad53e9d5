"""Live capture: ``dumpcap`` -> a pcap stream -> TCP segments -> messages, in a thread.

:class:`LiveSource` runs ``dumpcap`` (or ``tshark`` when dumpcap is not on
the PATH) as a subprocess writing the capture to its stdout (``-w -``), with a
capture filter built from ``ports`` or given as ``bpf``. A daemon thread reads
that pipe with :class:`~camprotool.capture.pcapstream.PcapStream` and pushes
each packet through the same path ``read_capture`` takes: the packet parser
(``iter_tcp_segments``, fast path included), the ``Reassembler`` and a
``MessageSink`` with the incremental engine, so a message appears as soon as
the packet completing it is read. :meth:`LiveSource.decoded` hands a snapshot
of what is decoded as a ``DecodedCapture``, the object the file path hands to
the analysis layer: ``camprotool.analysis.live.LiveCapture`` (``cpt.LiveCapture``)
builds its tables from it exactly as ``read_capture`` does, and ``cli/live.py``
prints and exports them. This layer builds no dataframe: capture sits below
analysis (docs/architecture.md).

Why not pyshark (the design first proposed "tshark via pyshark, in a thread"):

* pyshark has tshark dissect every packet and parses its PDML/JSON output in
  Python, about a thousand times the cost of reading the raw packet; the TCP
  payload would then come back as hex text to be turned into bytes again.
* Our decoder needs the raw TCP bytes, integer-nanosecond timestamps and its
  own reassembly (the one the file path uses, so live and file agree);
  Wireshark's dissection adds nothing it uses.
* pyshark drives tshark from an asyncio loop; in Jupyter, where a loop is
  already running, that needs ``nest_asyncio`` patches.
* ``dumpcap`` is what tshark itself runs to capture: the smallest privileged
  piece, the one usually given capture rights (the ``wireshark`` group).

When it is ready: dumpcap prints ``Capturing on 'lo'`` *before* it opens the
interface (measured: packets sent within ~5 ms of that line are not
captured), so ``start()`` waits for the file header on stdout, which dumpcap
(and tshark) write once the capture is open; the ``Capturing on`` line is
only used to tell a start-up failure from a slow start. dumpcap delivers
packets in batches (libpcap's buffer timeout): messages appear within about
a quarter of a second.

Threads: the reader thread owns the decoding; ``decoded()`` copies the
decoder's state under a lock (cheap: lists of Arrow tables) for the caller's
thread to build tables from; a subclass may add threads of its own
(``_extra_threads``: the analysis ``LiveCapture`` adds the one running its
``on_message`` callbacks), which ``wait_for_change`` lets sleep until new
packets are decoded. Nothing ever runs on the caller's event loop; only
``start()`` (until the capture is open, ~20 ms), ``stop()`` and ``wait()``
block, and briefly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import IO, Self

import pyarrow as pa

from camprotool.capture.connections import build_connections
from camprotool.capture.decode import DecodedCapture, _normalise_ports
from camprotool.capture.pcapstream import PcapStream
from camprotool.capture.readers import CaptureFormatError
from camprotool.capture.reassembly import Reassembler
from camprotool.capture.streams import ConnState, MessageSink
from camprotool.protocol.dialect import Dialect

__all__ = [
    "DEFAULT_SNAPLEN",
    "LiveCaptureError",
    "LiveSource",
    "capture_filter",
    "error_line",
    "find_program",
]

log = logging.getLogger(__name__)

DEFAULT_SNAPLEN = 262144  # dumpcap's own default: whole packets
#: below this many bytes per direction, detection is tried on every chunk (the file
#: path waits for 128 bytes, which a short line-dialect Login never reaches)
_EAGER_DETECT = 8192
_READ_SIZE = 1 << 16
_INSTALL_HINT = "install tshark: make sysdeps"
_NOISE = ("Capturing on", "File:", "Packets", "Running as user", "**", "See the User")


class LiveCaptureError(OSError):
    """dumpcap could not capture (missing, no permission, bad interface or filter, died).

    The message is one line: dumpcap's own words where it gave some.
    """


def capture_filter(ports: Iterable[int] | int | None = None, bpf: str | None = None) -> str | None:
    """The capture filter for ``ports`` (consecutive ports become a ``portrange``) and ``bpf``.

    >>> capture_filter([9000, 9002, *range(9010, 9021)], bpf="host 127.0.0.1")
    '(tcp port 9000 or tcp port 9002 or tcp portrange 9010-9020) and (host 127.0.0.1)'
    """
    wanted = _normalise_ports(ports)
    runs: list[list[int]] = []  # [first, last] of consecutive ports
    for port in sorted(wanted or ()):
        if runs and port == runs[-1][1] + 1:
            runs[-1][1] = port
        else:
            runs.append([port, port])
    parts: list[str] = []
    for first, last in runs:
        if last - first >= 2:
            parts.append(f"tcp portrange {first}-{last}")
        else:
            parts.extend(f"tcp port {p}" for p in range(first, last + 1))
    expr = " or ".join(parts) or None
    if bpf is not None and not isinstance(bpf, str):
        raise ValueError(f"bpf: {bpf!r} is not a capture filter string")
    if bpf and bpf.strip():
        expr = f"({expr}) and ({bpf.strip()})" if expr else bpf.strip()
    return expr


def find_program(program: str | None = None) -> str:
    """The capture program: ``program`` (a name or path), else dumpcap, else tshark."""
    for name in ([program] if program else ["dumpcap", "tshark"]):
        found = shutil.which(name)
        if found:
            return found
    what = program or "dumpcap"
    raise LiveCaptureError(f"{what} not found: {_INSTALL_HINT}")


def error_line(stderr: str, program: str = "dumpcap", returncode: int | None = None) -> str:
    """dumpcap's complaint on stderr as one line (its first paragraph, at most two lines)."""
    lines: list[str] = []
    for raw in stderr.replace("\r", "\n").split("\n"):
        line = raw.strip()
        if not line:
            if lines:
                break
            continue
        if not line.startswith(_NOISE):
            lines.append(line)
    name = os.path.basename(program)
    msg = " ".join(lines[:2])
    if not msg:
        msg = f"{name} exited with status {returncode}" if returncode is not None \
            else f"{name} stopped without a word"
    if "permission" in msg.lower():
        msg += (" (capturing needs root, or dumpcap with CAP_NET_RAW and CAP_NET_ADMIN, "
                "e.g. through the wireshark group: see docs/live.md)")
    return msg


def _live_sink(dialect: Dialect | str | None, ports: set[int] | None) -> MessageSink:
    """The incremental sink, made eager: detect a dialect as soon as one frame is complete
    and stamp every message at once."""
    return MessageSink(dialect, ports=ports, engine="incremental", batch_rows=1,
                       eager_detect_below=_EAGER_DETECT)


class LiveSource:
    """Decode the protocol from live traffic on ``interface``; see the module docstring.

    ``ports``: capture and decode only TCP connections with an end on these
    ports (the capture filter is built from them); ``bpf``: a capture filter
    of your own (``and``-ed with the ports'). ``dialect``, ``reveal_passwords``:
    as for ``read_capture``. ``record``: also save the raw capture to this file
    (pcapng if its name ends in ``.pcapng``, else classic pcap), readable by
    ``read_capture`` at any time. ``snaplen``: bytes kept per packet.
    ``max_messages``: stop capturing once at least this many messages are
    decoded. ``program``: ``dumpcap`` (default), ``tshark`` or a path.

    ``start()``, ``stop()``, a context manager; ``decoded()`` gives what is
    decoded so far, for the analysis layer's ``LiveCapture`` to build tables from.
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
    ) -> None:
        if not isinstance(interface, str) or not interface:
            raise ValueError(f"interface: {interface!r} is not an interface name")
        if isinstance(snaplen, bool) or not isinstance(snaplen, int) or snaplen <= 0:
            raise ValueError(f"snaplen: {snaplen!r} is not a positive number of bytes")
        if max_messages is not None and (isinstance(max_messages, bool)
                                         or not isinstance(max_messages, int)
                                         or max_messages <= 0):
            raise ValueError(f"max_messages: {max_messages!r} is not a positive count")
        self.interface = interface
        self.ports = _normalise_ports(ports)
        self.filter = capture_filter(self.ports, bpf)
        self.dialect = dialect if dialect in (None, "auto") else Dialect.parse(dialect)
        self.reveal_passwords = reveal_passwords
        self.record = os.fspath(record) if record is not None else None
        self.format = "pcapng" if self.record and self.record.lower().endswith(".pcapng") \
            else "pcap"
        self.snaplen = snaplen
        self.max_messages = max_messages
        self.program = program
        self.start_timeout = start_timeout
        self.error: str | None = None  # why the capture ended on its own, if it failed

        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._state = "new"  # new, running, finished
        self._proc: subprocess.Popen[bytes] | None = None
        self._program = ""  # the capture program's path, once started (for error lines)
        self._record_fh: IO[bytes] | None = None
        self._stderr: deque[str] = deque(maxlen=200)
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []
        self._stop_requested = False
        self._error_reported = False
        self._version = 0  # bumped per chunk read: the tables may have changed
        self._stream = PcapStream(f"live:{interface}")
        self._sink = _live_sink(self.dialect, self.ports)
        self._reassembler = Reassembler(self._sink)
        self._last_ts: int | None = None

    # ------------------------------------------------------------------ control
    @property
    def command(self) -> list[str]:
        """The capture command line (the program is looked up on the PATH)."""
        prog = find_program(self.program)
        cmd = [prog, "-i", self.interface, "-s", str(self.snaplen), "-q", "-w", "-"]
        if os.path.basename(prog).startswith("tshark"):
            cmd += ["-F", self.format]
        else:
            cmd.append("-P" if self.format == "pcap" else "-n")
        if self.filter:
            cmd += ["-f", self.filter]
        return cmd

    def start(self) -> Self:
        """Launch the capture; return once packets are being captured.

        Raises :class:`LiveCaptureError` (one line) when it cannot capture.
        """
        with self._lock:
            if self._state == "running":
                return self
            if self._state == "finished":
                raise LiveCaptureError("this LiveCapture has run; create a new one")
            cmd = self.command
            self._program = cmd[0]
            if self.record:
                self._record_fh = open(self.record, "wb")  # noqa: SIM115 (closed by the reader)
            try:
                self._proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, start_new_session=True)  # Ctrl-C is ours to pass on
            except OSError as exc:
                self._close_record()
                raise LiveCaptureError(f"cannot run {cmd[0]}: {exc.strerror or exc}") from None
            self._state = "running"
        weakref.finalize(self, _terminate, self._proc)
        for target, name in ((self._read_stderr, "stderr"), (self._read, "reader"),
                             *self._extra_threads()):
            thread = threading.Thread(target=target, name=f"LiveCapture-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()
        try:
            self._wait_ready(cmd[0])
        except BaseException:  # an error, or Ctrl-C while waiting: no capture left behind
            self._request_stop()
            self._join(2.0)
            self._error_reported = True
            raise
        return self

    def _wait_ready(self, program: str) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        while not self._ready.wait(0.01):
            if self._proc.poll() is not None or self._state == "finished":
                self._join(2.0)
                raise LiveCaptureError(self.error or error_line(
                    "\n".join(self._stderr), program, self._proc.returncode))
            if time.monotonic() > deadline:
                raise LiveCaptureError(
                    f"{os.path.basename(program)} did not start capturing on "
                    f"{self.interface!r} within {self.start_timeout:g} s")

    def stop(self, timeout: float = 5.0) -> Self:
        """Stop the capture and decode what is pending; idempotent.

        Raises :class:`LiveCaptureError` (once) if the capture had ended by
        itself with an error (``error``); what was decoded stays available.
        """
        if self._proc is not None:
            self._request_stop()
            self._join(timeout)
            if any(t.is_alive() for t in self._threads[1:2]):
                with contextlib.suppress(OSError):
                    self._proc.kill()
                self._join(timeout)
        with self._lock:
            self._state = "finished"
            error, report = self.error, not self._error_reported
            self._error_reported = True
        if error and report:
            raise LiveCaptureError(error)
        return self

    def wait(self, count: int | None = None, timeout: float | None = None) -> bool:
        """Block until ``count`` messages are decoded (default: until the capture ends).

        Returns whether that happened within ``timeout`` seconds (with ``count``:
        whether that many are decoded, also when the capture ended first).
        """
        if self._state == "new":
            return False
        with self._cond:
            ended = self._cond.wait_for(
                lambda: self._state == "finished"
                or (count is not None and self._sink.rows >= count), timeout)
            return ended if count is None else self._sink.rows >= count

    @property
    def running(self) -> bool:
        """Whether packets are still being read."""
        return self._state == "running"

    @property
    def pid(self) -> int | None:
        """The capture process's id (``None`` before ``start()``)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def packets(self) -> int:
        """Packets read so far."""
        return self._stream.frames

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.stop()
        else:
            with contextlib.suppress(LiveCaptureError):
                self.stop()

    def __repr__(self) -> str:
        state = self._state
        return (f"<{type(self).__name__} {self.interface!r} {state}: {self.packets} packets, "
                f"{self._sink.rows} messages>")

    def _extra_threads(self) -> list[tuple[Callable[[], None], str]]:
        """Threads a subclass runs beside the reader, as ``(target, name)``; started last,
        so the stderr and reader threads stay ``_threads[0]`` and ``_threads[1]``."""
        return []

    # ------------------------------------------------------------------ snapshots
    @property
    def version(self) -> int:
        """Bumped each time packets are read or the capture ends: the tables may have changed."""
        return self._version

    def decoded(self) -> tuple[int, DecodedCapture]:
        """A snapshot of everything decoded so far and the ``version`` it was taken at.

        Connections still open end, in it, at the last packet read (``end_of_capture``),
        as if the capture had stopped now; messages not yet complete are left out.
        The snapshot is the caller's own (``build_connections`` consumed copies).
        """
        with self._lock:
            version = self._version
            states = self._snapshot_states()
            stream, reassembler = self._stream, self._reassembler
            problems: list[tuple[int | None, str, str]] = [
                (p.frame, p.kind, p.detail) for p in stream.problems]
            problems += [(frame, kind, f"connection {conn}: {detail}")
                         for frame, conn, kind, detail in reassembler.problems]
            packets, fmt = stream.frames, stream.format
        records, table = build_connections(states)
        return version, DecodedCapture(source=f"live:{self.interface}", format=fmt,
                                       packets=packets, rows=table, connections=records,
                                       problems=problems)

    def wait_for_change(self, seen: int) -> tuple[int, bool]:
        """Block until ``version`` differs from ``seen`` or the capture has ended;
        return the version and whether it has ended (for threads that follow the capture)."""
        with self._cond:
            while self._version == seen and self._state != "finished":
                self._cond.wait()
            return self._version, self._state == "finished"

    def _snapshot_states(self) -> dict[int, ConnState]:
        """Copies of the decoding connections' states, for ``build_connections`` (which
        consumes the tables it is given); open connections end at the last packet."""
        sink, last_ts = self._sink, self._last_ts
        states: dict[int, ConnState] = {}
        for conn_id, state in sink.conns.items():
            if state.status != "decoding" and not state.empty:
                continue
            dirs = {}
            for name, d in state.dirs.items():
                if d.rows:  # messages ended by a gap wait for the next data: stamp them now
                    sink.stamp_pending(d)
                if len(d.tables) > 1:  # one table per message otherwise
                    d.tables = [pa.concat_tables(d.tables).combine_chunks()]
                dirs[name] = replace(d, tables=list(d.tables))
            if state.close_ts is None:
                state = replace(state, dirs=dirs, events=[], close_ts=last_ts,
                                close_reason="end_of_capture")
            else:
                state = replace(state, dirs=dirs, events=[])
            states[conn_id] = state
        return states

    # ------------------------------------------------------------------ threads
    def _join(self, timeout: float) -> None:
        me = threading.current_thread()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread is not me:
                thread.join(max(deadline - time.monotonic(), 0.01))

    def _request_stop(self) -> None:
        self._stop_requested = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)  # dumpcap then writes what it has and exits

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        fd = self._proc.stderr.fileno()
        pending = ""
        while True:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            pending += data.decode("utf-8", "replace")
            *lines, pending = pending.replace("\r", "\n").split("\n")
            self._stderr.extend(lines)
        if pending:
            self._stderr.append(pending)

    def _read(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        stream, add = self._stream, self._reassembler.add
        try:
            while True:
                data = os.read(fd, _READ_SIZE)
                if not data:
                    break
                self._ready.set()
                if self._record_fh is not None:
                    self._record_fh.write(data)
                    self._record_fh.flush()
                with self._cond:
                    for seg in stream.segments(data):
                        add(seg)
                        self._last_ts = seg.ts_ns
                    self._version += 1
                    self._cond.notify_all()
                    full = self.max_messages is not None and self._sink.rows >= self.max_messages
                if full and not self._stop_requested:
                    self._request_stop()
        except CaptureFormatError as exc:
            self.error = f"{os.path.basename(self._program)} did not write a capture: {exc}"
            self._request_stop()
        except Exception as exc:  # a bug: end the capture, say why, keep what was decoded
            log.exception("live capture reader failed")
            self.error = f"live capture failed: {type(exc).__name__}: {exc}"
            self._request_stop()
        finally:
            with contextlib.suppress(OSError):
                proc.stdout.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5.0)
            self._finish(proc)

    def _finish(self, proc: subprocess.Popen[bytes]) -> None:
        """End of the stream: close every connection and decode what is pending."""
        self._threads[0].join(1.0)  # stderr: dumpcap's last words
        self._close_record()
        with self._cond:
            self._stream.close()
            self._reassembler.finish()
            self._sink.flush()
            rc = proc.returncode
            if self.error is None and not self._stop_requested and rc not in (0, None):
                self.error = error_line("\n".join(self._stderr), self._program, rc)
            elif self.error is None and not self._stop_requested and rc is None:
                self.error = f"{os.path.basename(self._program)} closed its output"
            self._state = "finished"
            self._version += 1
            self._cond.notify_all()

    def _close_record(self) -> None:
        fh, self._record_fh = self._record_fh, None
        if fh is not None:
            with contextlib.suppress(OSError):
                fh.close()


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """At interpreter exit: do not leave dumpcap running (it is in its own session)."""
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.terminate()

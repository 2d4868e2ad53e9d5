"""Read a pcap or pcapng capture from a stream, chunk by chunk (a pipe, a socket).

:class:`~camprotool.capture.readers.CaptureFile` memory-maps a whole file; a
pipe from ``dumpcap -w -`` cannot be mapped and never ends while the capture
runs. :class:`PcapStream` takes the bytes as they come (``feed``) and returns
the packets completed so far, as the same ``RawPacket`` values, frame numbers,
timestamps and problems ``open_capture`` gives for the same bytes:

* classic pcap: the 24-byte file header (both byte orders, micro- or
  nanosecond magic), then 16-byte record headers;
* pcapng: sections (each with its own byte order), interface descriptions
  (``if_tsresol``, ``if_tsoffset``), enhanced, simple and obsolete packet
  blocks; other blocks are skipped.

A record cut by the end of the stream is reported by :meth:`PcapStream.close`
(``truncated_file``), exactly as the file reader reports a cut file. Packet
bytes are copied out of the stream (``RawPacket.data`` is a ``memoryview`` of
its own ``bytes``), so packets stay valid after later ``feed`` calls. Bytes
wait in a list until a whole record is there, so a large record arriving in
small chunks costs one join, not one copy per chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from camprotool.capture.packets import TcpSegment, iter_tcp_segments
from camprotool.capture.readers import SUPPORTED_LINKTYPES
from camprotool.capture.records import (
    MAX_RECORD,
    CaptureFormatError,
    RawPacket,
    RecordReader,
    capture_format,
)

__all__ = ["PcapStream"]


class PcapStream(RecordReader):
    """An incremental pcap/pcapng parser; see the module docstring.

    ``feed(data)`` returns the packets completed by ``data``; ``segments(data)``
    the TCP segments among them (through the packet layer's fast path). The
    attributes mirror ``CaptureFile``: ``format`` (``None`` until the first 4
    bytes), ``frames``, ``problems``, ``counts``, ``skipped``, ``snaplen``
    (classic pcap), plus ``bytes`` (fed so far). The records are read by
    ``RecordReader``, as the file reader reads them; this class only buffers
    the stream until a record is whole.
    """

    _noun = "stream"

    def __init__(self, name: str = "<stream>", *,
                 linktypes: frozenset[int] | None = SUPPORTED_LINKTYPES) -> None:
        self.name = name
        self.linktypes = linktypes
        self.format: str | None = None
        self.snaplen: int | None = None
        self.bytes = 0
        self.closed = False
        self._start()
        self._chunks: list[bytes] = []
        self._have = 0  # bytes in _chunks
        self._need = 4  # bytes needed before parsing can go on
        self._base = 0  # stream offset of _chunks[0]

    # ------------------------------------------------------------------ API
    def feed(self, data: bytes | bytearray | memoryview) -> list[RawPacket]:
        """Take the next bytes of the stream; return the packets they complete.

        Raises ``CaptureFormatError`` once, if the stream does not start as a
        pcap or pcapng capture.
        """
        if self.closed:
            raise ValueError(f"{self.name}: stream is closed")
        n = len(data)
        if not n:
            return []
        self.bytes += n
        if self._dead:
            return []
        self._chunks.append(bytes(data))
        self._have += n
        if self._have < self._need:
            return []
        buf = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        out: list[RawPacket] = []
        try:
            off = self._header(buf) if self.format is None else 0
            if off is not None and self.format is not None:
                off = self._records(buf, off, out)
        except CaptureFormatError:
            self._dead = True
            self._chunks, self._have = [], 0
            raise
        if off is None:  # header still incomplete
            self._chunks, self._have = [buf], len(buf)
            return out
        if self._dead:  # past a record that cannot be framed: nothing more is read
            self._chunks, self._have = [], 0
            return out
        rest = buf[off:]
        self._base += off
        self._chunks = [rest] if rest else []
        self._have = len(rest)
        return out

    def segments(self, data: bytes | bytearray | memoryview) -> Iterator[TcpSegment]:
        """The TCP segments of the packets ``data`` completes (problems go to ``problems``)."""
        return iter_tcp_segments(_Batch(self, self.feed(data)))

    def close(self) -> None:
        """End of stream: report a record cut short, as the file reader does."""
        if self.closed:
            return
        self.closed = True
        left, off = self._have, self._base
        self._chunks, self._have = [], 0
        if not left or self._dead:
            return
        if self.format is None or (self.format == "pcap" and self._pcap_record is None):
            self.add_problem(1, "truncated_file",
                             f"stream ends inside the file header ({left} bytes).")
        else:
            self._cut(off, left)

    # ------------------------------------------------------------ internals
    def _records(self, buf: bytes, off: int, out: list[RawPacket]) -> int:
        """Read the whole records of ``buf`` into ``out``; the offset of the first one left.

        A pipe never ends while the capture runs, so a record claiming more than
        ``MAX_RECORD`` bytes is refused at once, never buffered, however the bytes
        arrive: the loop sees at most that much past where it starts, so such a
        record never fits and ends the loop as a cut record does, which reports it.
        """
        records = self._pcap_records if self.format == "pcap" else self._pcapng_blocks
        reach = MAX_RECORD + 16 if self.format == "pcap" else MAX_RECORD
        cut, size = _Copies(buf), len(buf)
        while True:
            end = min(size, off + reach)
            out.extend(records(buf, cut, off, end, base=self._base, at_end=False))
            off = self._stop
            if end == size or self._dead:
                return off

    def _header(self, buf: bytes) -> int | None:
        """Recognise the format; the offset of the first record, or None for more bytes."""
        if capture_format(buf, self.name) == "pcap":
            if len(buf) < 24:
                self._need = 24
                return None
            self._read_pcap_header(buf)
            self.format = "pcap"
            self._need = 16
            return 24
        self.format = "pcapng"
        self._need = 12
        return 0

    def __repr__(self) -> str:
        return f"<PcapStream {self.name!r} {self.format or '?'} {self.frames} frames>"


class _Copies:
    """Cuts packet bytes out of a stream buffer as copies of their own.

    The record loops slice packets out of what they are given; for a file that
    is the map itself, but a stream's buffer is dropped after the next ``feed``
    and a packet must not keep a whole joined buffer alive.
    """

    __slots__ = ("_buf",)

    def __init__(self, buf: bytes) -> None:
        self._buf = buf

    def __getitem__(self, s: slice, /) -> memoryview:
        return memoryview(self._buf[s])


class _Batch:
    """Some packets of a stream, looking like a ``CaptureFile`` to ``iter_tcp_segments``."""

    __slots__ = ("add_problem", "packets")

    def __init__(self, stream: PcapStream, packets: Iterable[RawPacket]) -> None:
        self.packets = packets
        self.add_problem = stream.add_problem

    def __iter__(self) -> Iterator[RawPacket]:
        return iter(self.packets)

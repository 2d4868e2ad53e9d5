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

import math
import struct
from collections import Counter
from collections.abc import Iterable, Iterator

from camprotool.capture.packets import TcpSegment, iter_tcp_segments
from camprotool.capture.readers import (
    SUPPORTED_LINKTYPES,
    CaptureFile,
    CaptureFormatError,
    CaptureProblem,
    RawPacket,
)

__all__ = ["PcapStream"]

_U32LE = struct.Struct("<I")
_PCAP_MAGICS = {0xA1B2C3D4: ("<", False), 0xD4C3B2A1: (">", False),
                0xA1B23C4D: ("<", True), 0x4D3CB2A1: (">", True)}
_PCAPNG_SHB = 0x0A0D0D0A
_BOM = {0x1A2B3C4D: "<", 0x4D3C2B1A: ">"}
_MAX_RECORD = 1 << 26  # as the file reader: larger "packets" are corruption
_NS = 1_000_000_000
_BT_PB, _BT_SPB, _BT_EPB, _BT_IDB = 2, 3, 6, 1
# per byte order: block header, EPB fields (after the header), obsolete PB fields, u32
_STRUCTS = {bo: (struct.Struct(bo + "II"), struct.Struct(bo + "IIIII"),
                 struct.Struct(bo + "HHIIII"), struct.Struct(bo + "I"))
            for bo in "<>"}
#: an interface: (linktype, snaplen, mult, div, offset_ns, supported);
#: ts_ns = units * mult // div + offset_ns
_Interface = tuple[int, int, int, int, int, bool]


class PcapStream:
    """An incremental pcap/pcapng parser; see the module docstring.

    ``feed(data)`` returns the packets completed by ``data``; ``segments(data)``
    the TCP segments among them (through the packet layer's fast path). The
    attributes mirror ``CaptureFile``: ``format`` (``None`` until the first 4
    bytes), ``frames``, ``problems``, ``counts``, ``skipped``, ``snaplen``
    (classic pcap), plus ``bytes`` (fed so far).
    """

    max_problems_per_kind = CaptureFile.max_problems_per_kind
    # The file reader's bookkeeping, shared so problems read the same.
    add_problem = CaptureFile.add_problem
    _unsupported = CaptureFile._unsupported
    _snaplen = CaptureFile._snaplen

    def __init__(self, name: str = "<stream>", *,
                 linktypes: frozenset[int] | None = SUPPORTED_LINKTYPES) -> None:
        self.name = name
        self.linktypes = linktypes
        self.format: str | None = None
        self.snaplen: int | None = None
        self.frames = 0
        self.bytes = 0
        self.problems: list[CaptureProblem] = []
        self.counts: Counter[str] = Counter()
        self.skipped: Counter[int] = Counter()
        self.closed = False
        self._chunks: list[bytes] = []
        self._have = 0  # bytes in _chunks
        self._need = 4  # bytes needed before parsing can go on
        self._base = 0  # stream offset of _chunks[0]
        self._dead = False  # past a record that cannot be framed: nothing more is read
        # classic pcap
        self._rec: struct.Struct | None = None
        self._mult = 1000
        self._linktype = 0
        self._wanted = True
        # pcapng
        self._bo = "<"
        self._ifaces: list[_Interface] = []
        self._prev_ts = 0

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
            if self.format == "pcap" and off is not None:
                off = self._pcap(buf, off, out)
            elif self.format == "pcapng" and off is not None:
                off = self._pcapng(buf, off, out)
        except CaptureFormatError:
            self._dead = True
            self._chunks, self._have = [], 0
            raise
        if off is None:  # header still incomplete
            self._chunks, self._have = [buf], len(buf)
            return out
        rest = buf[off:]
        self._base += off
        self._chunks = [rest] if rest else []
        self._have = len(rest)
        if self._dead:
            self._chunks, self._have = [], 0
        return out

    def segments(self, data: bytes | bytearray | memoryview) -> Iterator[TcpSegment]:
        """The TCP segments of the packets ``data`` completes (problems go to ``problems``)."""
        return iter_tcp_segments(_Batch(self, self.feed(data)))  # type: ignore[arg-type]

    def close(self) -> None:
        """End of stream: report a record cut short, as the file reader does."""
        if self.closed:
            return
        self.closed = True
        left, off = self._have, self._base
        self._chunks, self._have = [], 0
        if not left or self._dead:
            return
        if self.format is None or (self.format == "pcap" and self._rec is None):
            self.add_problem(1, "truncated_file",
                             f"stream ends inside the file header ({left} bytes).")
        elif self.format == "pcap":
            if left < 16:
                self.add_problem(self.frames + 1, "truncated_file",
                                 f"stream ends inside a record header at byte {off} "
                                 f"({left} of 16 bytes).")
            else:
                self.frames += 1
                self.add_problem(self.frames, "truncated_file",
                                 f"stream ends inside a record at byte {off}: "
                                 f"{left - 16} of {self._need - 16} bytes present.")
        elif left < 12:
            self.add_problem(self.frames + 1, "truncated_file",
                             f"stream ends inside a block header at byte {off} ({left} bytes).")
        else:
            is_packet = self._pending_type in (_BT_EPB, _BT_SPB, _BT_PB)
            self.add_problem(self.frames + is_packet, "truncated_file",
                             f"stream ends inside a block (type {self._pending_type:#x}) at "
                             f"byte {off}: {left} of {self._need} bytes present.")

    # ------------------------------------------------------------ internals
    _pending_type = 0

    def _header(self, buf: bytes) -> int | None:
        """Recognise the format; the offset of the first record, or None for more bytes."""
        magic = _U32LE.unpack_from(buf, 0)[0]
        if magic in _PCAP_MAGICS:
            if len(buf) < 24:
                self._need = 24
                return None
            bo, nano = _PCAP_MAGICS[magic]
            major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(
                bo + "HHiIII", buf, 4)
            if major != 2:
                raise CaptureFormatError(f"{self.name}: unsupported pcap version {major}")
            self.format = "pcap"
            self._rec = struct.Struct(bo + "IIII")
            self._mult = 1 if nano else 1000
            self._linktype = network & 0xFFFF
            self._wanted = self.linktypes is None or self._linktype in self.linktypes
            self.snaplen = snaplen
            self._need = 16
            return 24
        if magic == _PCAPNG_SHB:
            self.format = "pcapng"
            self._need = 12
            return 0
        head = buf[:4]
        if head in (b"\xa1\xb2\xcd\x34", b"\x34\xcd\xb2\xa1"):
            raise CaptureFormatError(
                f"{self.name}: modified (Kuznetzov) pcap format is not supported")
        raise CaptureFormatError(
            f"{self.name}: not a pcap or pcapng capture (starts with {head.hex()})")

    def _pcap(self, buf: bytes, off: int, out: list[RawPacket]) -> int:
        v = memoryview(buf)
        size = len(buf)
        unpack = self._rec.unpack_from  # type: ignore[union-attr]
        mult, linktype, wanted = self._mult, self._linktype, self._wanted
        new, RP = tuple.__new__, RawPacket
        frame = self.frames
        try:
            while True:
                if off + 16 > size:
                    self._need = 16
                    break
                sec, frac, cap_len, orig_len = unpack(v, off)
                if cap_len > _MAX_RECORD:
                    frame += 1
                    self.add_problem(frame, "bad_block",
                                     f"record at byte {self._base + off} claims {cap_len} "
                                     "captured bytes; the rest of the stream cannot be read.")
                    self._dead = True
                    return size
                end = off + 16 + cap_len
                if end > size:
                    self._need = 16 + cap_len
                    break
                frame += 1
                if wanted:
                    if cap_len < orig_len:
                        self._snaplen(frame, cap_len, orig_len)
                    out.append(new(RP, (frame, sec * _NS + frac * mult, linktype,
                                        memoryview(buf[off + 16:end]), orig_len, cap_len)))
                else:
                    self._unsupported(frame, linktype)
                off = end
        finally:
            self.frames = frame
        return off

    def _pcapng(self, buf: bytes, off: int, out: list[RawPacket]) -> int:
        size = len(buf)
        new, RP = tuple.__new__, RawPacket
        hdr, epb, pb, u32 = _STRUCTS[self._bo]
        while True:
            if off + 12 > size:
                self._need = 12
                return off
            btype, blen = hdr.unpack_from(buf, off)
            if btype == _PCAPNG_SHB:
                bo = _BOM.get(_U32LE.unpack_from(buf, off + 8)[0])
                if bo is None:
                    if self.frames == 0 and off + self._base == 0:
                        raise CaptureFormatError(
                            f"{self.name}: pcapng section header has a bad byte-order magic")
                    return self._bad(off, size, "section header at byte {} has a bad "
                                     "byte-order magic; the rest of the stream cannot be read.")
                self._bo = bo
                hdr, epb, pb, u32 = _STRUCTS[bo]
                btype, blen = hdr.unpack_from(buf, off)
                self._ifaces = []
            if blen < 12 or blen & 3:
                return self._bad(off, size, "block at byte {} has an impossible length "
                                 f"{blen}; the rest of the stream cannot be read.")
            if blen > _MAX_RECORD:
                is_packet = btype in (_BT_EPB, _BT_SPB, _BT_PB)
                self.add_problem(self.frames + is_packet, "bad_block",
                                 f"block at byte {self._base + off} claims {blen} bytes; "
                                 "the rest of the stream cannot be read.")
                self._dead = True
                return size
            end = off + blen
            if end > size:
                self._need = blen
                self._pending_type = btype
                return off
            if u32.unpack_from(buf, end - 4)[0] != blen:
                return self._bad(off, size, "block at byte {}: trailing length does not "
                                 f"match {blen}; the rest of the stream cannot be read.")
            if btype == _BT_EPB:
                self.frames += 1
                frame = self.frames
                if blen < 32:
                    self.add_problem(frame, "bad_block",
                                     f"enhanced packet block at byte {self._base + off} "
                                     "is too short.")
                else:
                    iid, ts_hi, ts_lo, cap_len, orig_len = epb.unpack_from(buf, off + 8)
                    if cap_len > blen - 32 or iid >= len(self._ifaces):
                        self._bad_packet(frame, off, iid, cap_len)
                    else:
                        linktype, _snap, mult, div, offset_ns, supported = self._ifaces[iid]
                        if supported:
                            if cap_len < orig_len:
                                self._snaplen(frame, cap_len, orig_len)
                            ts = (ts_hi << 32 | ts_lo) * mult
                            if div != 1:
                                ts //= div
                            if offset_ns:
                                ts += offset_ns
                            self._prev_ts = ts
                            out.append(new(RP, (frame, ts, linktype,
                                                memoryview(buf[off + 28:off + 28 + cap_len]),
                                                orig_len, cap_len)))
                        else:
                            self._unsupported(frame, linktype)
            elif btype == _BT_SPB:
                self.frames += 1
                frame = self.frames
                if blen < 16 or not self._ifaces:
                    self.add_problem(frame, "bad_block",
                                     f"simple packet block at byte {self._base + off} is too "
                                     "short or precedes any interface description; "
                                     "packet skipped.")
                else:
                    linktype, snaplen, _m, _d, _o, supported = self._ifaces[0]
                    orig_len = u32.unpack_from(buf, off + 8)[0]
                    cap_len = min(orig_len, blen - 16)
                    if snaplen:
                        cap_len = min(cap_len, snaplen)
                    if supported:
                        if cap_len < orig_len:
                            self._snaplen(frame, cap_len, orig_len)
                        out.append(new(RP, (frame, self._prev_ts, linktype,
                                            memoryview(buf[off + 12:off + 12 + cap_len]),
                                            orig_len, cap_len)))
                    else:
                        self._unsupported(frame, linktype)
            elif btype == _BT_PB:
                self.frames += 1
                frame = self.frames
                if blen < 32:
                    self.add_problem(frame, "bad_block",
                                     f"packet block at byte {self._base + off} is too short.")
                else:
                    iid, _drops, ts_hi, ts_lo, cap_len, orig_len = pb.unpack_from(buf, off + 8)
                    if cap_len > blen - 32 or iid >= len(self._ifaces):
                        self._bad_packet(frame, off, iid, cap_len)
                    else:
                        linktype, _snap, mult, div, offset_ns, supported = self._ifaces[iid]
                        if supported:
                            if cap_len < orig_len:
                                self._snaplen(frame, cap_len, orig_len)
                            ts = (ts_hi << 32 | ts_lo) * mult // div + offset_ns
                            self._prev_ts = ts
                            out.append(new(RP, (frame, ts, linktype,
                                                memoryview(buf[off + 28:off + 28 + cap_len]),
                                                orig_len, cap_len)))
                        else:
                            self._unsupported(frame, linktype)
            elif btype == _BT_IDB:
                self._ifaces.append(self._idb(buf, off, blen))
            off = end

    def _bad(self, off: int, size: int, detail: str) -> int:
        self.add_problem(self.frames + 1, "bad_block", detail.format(self._base + off))
        self._dead = True
        return size

    def _bad_packet(self, frame: int, off: int, iid: int, cap_len: int) -> None:
        self.add_problem(
            frame, "bad_block",
            f"packet block at byte {self._base + off} is inconsistent (interface {iid} of "
            f"{len(self._ifaces)} described, captured length {cap_len}); packet skipped.")

    def _idb(self, buf: bytes, off: int, blen: int) -> _Interface:
        """An Interface Description Block, read as ``CaptureFile._parse_idb`` does."""
        frame = self.frames + 1
        bo = self._bo
        if blen < 20:
            self.add_problem(frame, "bad_block", f"interface description block at byte "
                             f"{self._base + off} is too short.")
            return (-1, 0, 1000, 1, 0, False)
        linktype, _res, snaplen = struct.unpack_from(bo + "HHI", buf, off + 8)
        mult, div, offset_ns = 1000, 1, 0
        opt, end = off + 16, off + blen - 4
        opt_hdr = struct.Struct(bo + "HH")
        while opt + 4 <= end:
            code, olen = opt_hdr.unpack_from(buf, opt)
            if code == 0:
                break
            val = opt + 4
            if val + olen > end:
                self.add_problem(frame, "bad_block", f"interface description block at byte "
                                 f"{self._base + off} has a bad option.")
                break
            if code == 9 and olen >= 1:  # if_tsresol
                r = buf[val]
                if r & 0x80:
                    mult, div = _NS, 1 << (r & 0x7F)
                else:
                    mult, div = (10 ** (9 - r), 1) if r <= 9 else (1, 10 ** (r - 9))
            elif code == 14 and olen >= 8:  # if_tsoffset
                offset_ns = struct.unpack_from(bo + "q", buf, val)[0] * _NS
            opt = val + ((olen + 3) & ~3)
        g = math.gcd(mult, div)
        supported = self.linktypes is None or linktype in self.linktypes
        return (linktype, snaplen, mult // g, div // g, offset_ns, supported)

    def __repr__(self) -> str:
        return f"<PcapStream {self.name!r} {self.format or '?'} {self.frames} frames>"


class _Batch:
    """Some packets of a stream, looking like a ``CaptureFile`` to ``iter_tcp_segments``."""

    __slots__ = ("add_problem", "packets")

    def __init__(self, stream: PcapStream, packets: Iterable[RawPacket]) -> None:
        self.packets = packets
        self.add_problem = stream.add_problem

    def __iter__(self) -> Iterator[RawPacket]:
        return iter(self.packets)

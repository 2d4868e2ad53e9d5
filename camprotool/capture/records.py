"""The pcap and pcapng record formats, read in one place for both capture readers.

Why a module of its own: :class:`~camprotool.capture.readers.CaptureFile` (a
memory-mapped file) and :class:`~camprotool.capture.pcapstream.PcapStream`
(bytes arriving from a pipe) must give the same packets, frame numbers,
timestamps and problems for the same bytes.  Two copies of the parser drift
apart, so the format knowledge lives here once, in :class:`RecordReader`: the
header magics, record and block layouts, ``if_tsresol``/``if_tsoffset``, the
timestamp arithmetic, what counts as damage and how each problem is worded.
The readers are subclasses that only decide where the bytes come from and when
they end.

The record loops are generators over one buffer.  They stop where the buffer
stops being whole: a file reader (``at_end=True``) then reports the cut record,
a stream keeps the tail and resumes from the state the loop left behind
(``frames``, the pcapng section's byte order, interfaces and last timestamp).
They keep the file reader's speed: every header is read with a precompiled
``struct.Struct``, the common enhanced packet block with a single call, and
nothing but locals is touched per packet.
"""

from __future__ import annotations

import math
import struct
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Protocol

__all__ = [
    "MAX_RECORD",
    "CaptureFormatError",
    "CaptureProblem",
    "PacketBytes",
    "RawPacket",
    "RecordReader",
    "bad_byte_order",
    "capture_format",
    "linktype_name",
    "section_byte_order",
]


#: packet times must fit a pandas datetime64[ns] (int64, NaT excluded)
_TS_MIN = -(2**63) + 1
_TS_MAX = 2**63 - 1


class CaptureFormatError(ValueError):
    """The file is not a capture we can read (raised by ``open_capture`` only)."""


class CaptureProblem(NamedTuple):
    """Something wrong found while reading; collected, never raised.

    ``frame`` is the number the affected packet has (or would have had);
    ``kind`` a short tag such as ``truncated_file``, ``snaplen``,
    ``unsupported_linktype``, ``bad_block``, ``bad_timestamp`` (a packet time outside
    64-bit nanoseconds: the packet keeps the previous packet's time); ``detail`` one
    sentence. ``frame`` is None for a capture set's file that could not be read at all
    (``bad_file``).
    """

    frame: int | None
    kind: str
    detail: str


class RawPacket(NamedTuple):
    """One captured packet as stored in the file.

    ``data`` is a ``memoryview`` into the file's map: copy it (``bytes(...)``)
    to keep it after the ``CaptureFile`` is closed.
    """

    frame: int  # 1-based, counts every packet record (as Wireshark does)
    ts_ns: int  # integer nanoseconds since the epoch
    linktype: int
    data: memoryview
    orig_len: int  # length on the wire
    cap_len: int  # length stored in the file (== len(data))


_new_raw = tuple.__new__  # tuple.__new__(RawPacket, (...)) skips the Python-level __new__

_LINKTYPE_NAMES = {
    0: "NULL", 1: "ETHERNET", 12: "RAW", 14: "RAW", 101: "RAW", 105: "IEEE802_11",
    108: "LOOP", 113: "LINUX_SLL", 127: "IEEE802_11_RADIOTAP", 228: "IPV4", 229: "IPV6",
    276: "LINUX_SLL2",
}


def linktype_name(linktype: int) -> str:
    """Human name of a link type for messages, e.g. ``'105 (IEEE802_11)'``."""
    name = _LINKTYPE_NAMES.get(linktype)
    return f"{linktype} ({name})" if name else str(linktype)


#: Larger "packets" are corruption, not data.  A file reader uses it only to word
#: the problem; a stream refuses such a record outright rather than buffer it.
MAX_RECORD = 1 << 26  # 64 MiB
_NS = 1_000_000_000
_U32LE = struct.Struct("<I")

# Classic pcap magics as read with a little-endian Struct: (byte order, nanoseconds).
_PCAP_MAGICS = {0xA1B2C3D4: ("<", False), 0xD4C3B2A1: (">", False),
                0xA1B23C4D: ("<", True), 0x4D3CB2A1: (">", True)}
_KUZNETZOV = (b"\xa1\xb2\xcd\x34", b"\x34\xcd\xb2\xa1")
_PCAPNG_SHB = 0x0A0D0D0A  # palindromic: same in both byte orders
_BYTE_ORDER_MAGICS = {0x1A2B3C4D: "<", 0x4D3C2B1A: ">"}

# pcapng block types
_BT_IDB = 1
_BT_PB = 2
_BT_SPB = 3
_BT_EPB = 6
_PACKET_BLOCKS = (_BT_EPB, _BT_SPB, _BT_PB)
_PACKET_BLOCK_NAMES = {_BT_EPB: "enhanced packet block", _BT_PB: "packet block"}

# pcapng option codes
_OPT_ENDOFOPT = 0
_OPT_IF_TSRESOL = 9
_OPT_IF_TSOFFSET = 14


class _Layouts(NamedTuple):
    """Every struct of the formats in one byte order, compiled once."""

    pcap_file: struct.Struct  # version, zone, sigfigs, snaplen, network (after the magic)
    pcap_record: struct.Struct  # seconds, fraction, captured length, original length
    block: struct.Struct  # pcapng block type and length
    epb: struct.Struct  # block header + the EPB fields, so a packet takes one call
    pb: struct.Struct  # obsolete packet block fields after the block header
    u32: struct.Struct
    idb: struct.Struct  # link type, reserved, snaplen
    option: struct.Struct  # option code and length
    i64: struct.Struct


_LAYOUTS = {
    bo: _Layouts(*(struct.Struct(bo + fmt) for fmt in (
        "HHiIII", "IIII", "II", "IIIIIII", "HHIIII", "I", "HHI", "HH", "q")))
    for bo in "<>"
}


class _Interface(NamedTuple):
    linktype: int
    snaplen: int
    mult: int  # ts_ns = ts_units * mult // div + offset_ns
    div: int
    offset_ns: int
    supported: bool


_BROKEN_INTERFACE = _Interface(-1, 0, 1000, 1, 0, False)


class PacketBytes(Protocol):
    """Where packet bytes are cut from: the mapped view itself, or a stand-in (a copying
    one; the fast engine's, which hands out ``(start, end)`` to index the map itself).
    What a cut gives becomes the packet's ``data``, untouched by the record loops."""

    def __getitem__(self, s: slice, /) -> Any: ...


def capture_format(head: bytes | memoryview, name: str) -> str:
    """``'pcap'`` or ``'pcapng'`` from the first 4 bytes; else ``CaptureFormatError``."""
    magic = _U32LE.unpack_from(head, 0)[0]
    if magic in _PCAP_MAGICS:
        return "pcap"
    if magic == _PCAPNG_SHB:
        return "pcapng"
    start = bytes(head[:4])
    if start in _KUZNETZOV:
        raise CaptureFormatError(f"{name}: modified (Kuznetzov) pcap format is not supported")
    raise CaptureFormatError(f"{name}: not a pcap or pcapng capture (starts with {start.hex()})")


def section_byte_order(buf: bytes | memoryview, off: int) -> str | None:
    """The byte order a section header at ``off`` declares (``None``: a bad magic)."""
    return _BYTE_ORDER_MAGICS.get(_U32LE.unpack_from(buf, off + 8)[0])


def bad_byte_order(name: str) -> CaptureFormatError:
    """The error for a capture whose very first section header is unreadable."""
    return CaptureFormatError(f"{name}: pcapng section header has a bad byte-order magic")


class RecordReader:
    """What both readers share: problem bookkeeping, format state and the record loops.

    A subclass sets ``name``, ``linktypes`` and ``format``, reads the pcap file
    header with :meth:`_read_pcap_header`, calls :meth:`_start` before a first
    record, then runs :meth:`_pcap_records` or :meth:`_pcapng_blocks` over each
    buffer.  After a loop, ``_stop`` is the offset it reached, ``_need`` the
    bytes the record there needs (``_pending_type`` its block type) and
    ``_dead`` says that nothing after it can be read.
    """

    #: At most this many problems of one kind are listed; ``counts`` has them all.
    max_problems_per_kind = 100
    #: The word problems use for the input ("file ends inside a record...").
    _noun = "file"

    name: str
    linktypes: frozenset[int] | None
    format: str | None
    snaplen: int | None
    frames: int
    problems: list[CaptureProblem]
    counts: Counter[str]
    #: packets skipped per unsupported link type
    skipped: Counter[int]
    # classic pcap, from the file header
    _pcap_record: struct.Struct | None = None
    _pcap_mult = 1000
    _pcap_linktype = 0
    _pcap_wanted = True
    # where the last loop stopped
    _stop = 0
    _need = 0
    _pending_type = 0
    _dead = False

    def _start(self) -> None:
        """Forget everything a previous pass over the records found."""
        self.problems = []
        self.counts = Counter()
        self.skipped = Counter()
        self.frames = 0
        self._dead = False
        # pcapng: the section's byte order (each section header sets it again),
        # its interfaces, and the timestamp a simple packet block reuses
        self._bo = "<"
        self._ifaces: list[_Interface] = []
        self._prev_ts = 0
        if self._pcap_record is not None:
            self._pcap_wanted = self._wants(self._pcap_linktype)

    def _wants(self, linktype: int) -> bool:
        return self.linktypes is None or linktype in self.linktypes

    # -- problems --------------------------------------------------------
    def add_problem(self, frame: int, kind: str, detail: str) -> None:
        """Record a problem; beyond ``max_problems_per_kind`` of a kind only count it."""
        counts = self.counts
        n = counts[kind] = counts[kind] + 1
        if n <= self.max_problems_per_kind:
            self.problems.append(CaptureProblem(frame, kind, detail))
        elif n == self.max_problems_per_kind + 1:
            self.problems.append(
                CaptureProblem(
                    frame, kind,
                    f"more than {self.max_problems_per_kind} '{kind}' problems; "
                    "the rest are only counted in CaptureFile.counts.",
                )
            )

    def _unsupported(self, frame: int, linktype: int) -> None:
        skipped = self.skipped
        skipped[linktype] += 1
        self.counts["unsupported_linktype"] += 1
        if skipped[linktype] == 1:
            self.problems.append(
                CaptureProblem(
                    frame, "unsupported_linktype",
                    f"link type {linktype_name(linktype)} is not supported; its packets "
                    "are skipped and counted in CaptureFile.skipped.",
                )
            )

    def _bad_timestamp(self, frame: int, ts: int, prev_ts: int) -> None:
        self.add_problem(
            frame, "bad_timestamp",
            f"timestamp {ts} ns is outside the range of 64-bit nanoseconds; the packet is "
            f"kept with the previous packet's timestamp ({prev_ts} ns).",
        )

    def _snaplen(self, frame: int, cap_len: int, orig_len: int) -> None:
        self.add_problem(
            frame, "snaplen",
            f"packet cut by the snapshot length: {cap_len} of {orig_len} bytes captured.",
        )

    def _fatal(self, frame: int, detail: str) -> None:
        """A record the rest cannot be framed after: report it, read nothing more."""
        self.add_problem(frame, "bad_block", f"{detail}; the rest of the {self._noun} "
                         "cannot be read.")
        self._dead = True

    def _bad_packet_block(
        self, frame: int, off: int, iid: int, cap_len: int, n_ifaces: int
    ) -> None:
        self.add_problem(
            frame, "bad_block",
            f"packet block at byte {off} is inconsistent (interface {iid} of {n_ifaces} "
            f"described, captured length {cap_len}); packet skipped.",
        )

    def _cut(self, off: int, have: int) -> None:
        """Report the record the input ends inside, at ``off`` with ``have`` of its bytes."""
        noun, need = self._noun, self._need
        if self.format == "pcap":
            if have < 16:
                self.add_problem(self.frames + 1, "truncated_file",
                                 f"{noun} ends inside a record header at byte {off} "
                                 f"({have} of 16 bytes).")
            else:
                self.frames += 1
                self.add_problem(self.frames, "truncated_file",
                                 f"{noun} ends inside a record at byte {off}: "
                                 f"{have - 16} of {need - 16} bytes present.")
        elif have < 12:
            self.add_problem(self.frames + 1, "truncated_file",
                             f"{noun} ends inside a block header at byte {off} ({have} bytes).")
        else:
            btype = self._pending_type
            self.add_problem(self.frames + (btype in _PACKET_BLOCKS), "truncated_file",
                             f"{noun} ends inside a block (type {btype:#x}) at byte {off}: "
                             f"{have} of {need} bytes present.")

    def _stopped(self, off: int, size: int, base: int, at_end: bool,
                 progress: Callable[[int], None] | None) -> None:
        """After a loop: report the record it stopped at if it can never be read, or is cut."""
        if not self._dead:
            need = self._need
            if self.format == "pcap":
                if need - 16 > MAX_RECORD:
                    self.frames += 1
                    self._fatal(self.frames, f"record at byte {base + off} claims "
                                f"{need - 16} captured bytes")
            elif need > MAX_RECORD:
                self._fatal(self.frames + (self._pending_type in _PACKET_BLOCKS),
                            f"block at byte {base + off} claims {need} bytes")
            if at_end and off < size and not self._dead:
                self._cut(base + off, size - off)
        if progress:
            progress(off)

    # -- classic pcap ----------------------------------------------------
    def _read_pcap_header(self, head: bytes | memoryview) -> None:
        """Take the byte order, time unit and link type from the 24-byte file header."""
        bo, nano = _PCAP_MAGICS[_U32LE.unpack_from(head, 0)[0]]
        layouts = _LAYOUTS[bo]
        major, _minor, _zone, _sigfigs, snaplen, network = layouts.pcap_file.unpack_from(head, 4)
        if major != 2:
            raise CaptureFormatError(f"{self.name}: unsupported pcap version {major}")
        self._pcap_record = layouts.pcap_record
        self._pcap_mult = 1 if nano else 1000
        self._pcap_linktype = network & 0xFFFF  # upper bits: FCS information
        self._pcap_wanted = self._wants(self._pcap_linktype)
        self.snaplen = snaplen

    def _pcap_records(
        self, v: bytes | memoryview, cut: PacketBytes, off: int, size: int, *, base: int = 0,
        at_end: bool, progress: Callable[[int], None] | None = None, step: int = sys.maxsize,
    ) -> Iterator[RawPacket]:
        """The whole classic pcap records in ``v[off:size]``.

        ``cut`` hands out the packet bytes, ``base`` is the input offset of
        ``v[0]`` (for messages), ``progress`` is called about every ``step`` bytes.
        """
        record = self._pcap_record
        assert record is not None  # _start() chose it for a pcap file
        unpack = record.unpack_from
        mult, linktype, wanted = self._pcap_mult, self._pcap_linktype, self._pcap_wanted
        new, RP = _new_raw, RawPacket
        mark = step
        frame = self.frames
        need = 16
        try:
            while off < size:
                if off + 16 > size:
                    break
                sec, frac, cap_len, orig_len = unpack(v, off)
                start = off + 16
                end = start + cap_len
                if end > size:
                    need = 16 + cap_len
                    break
                frame += 1
                off = end
                if wanted:
                    if cap_len < orig_len:
                        self._snaplen(frame, cap_len, orig_len)
                    yield new(RP, (frame, sec * 1_000_000_000 + frac * mult, linktype,
                                   cut[start:end], orig_len, cap_len))
                else:
                    self._unsupported(frame, linktype)
                if off >= mark:
                    mark = off + step
                    if progress is not None:
                        progress(off)
        finally:
            self.frames, self._stop, self._need = frame, off, need
        self._stopped(off, size, base, at_end, progress)

    # -- pcapng ----------------------------------------------------------
    def _pcapng_blocks(
        self, v: bytes | memoryview, cut: PacketBytes, off: int, size: int, *, base: int = 0,
        at_end: bool, progress: Callable[[int], None] | None = None, step: int = sys.maxsize,
    ) -> Iterator[RawPacket]:
        """The packets of the whole pcapng blocks in ``v[off:size]`` (as ``_pcap_records``)."""
        new, RP = _new_raw, RawPacket
        mark = step
        frame = self.frames
        prev_ts = self._prev_ts  # a simple packet block has no timestamp: it reuses this one
        ifaces = self._ifaces
        bo = self._bo
        lay = _LAYOUTS[bo]
        hdr, epb, pb, u32 = lay.block.unpack_from, lay.epb.unpack_from, lay.pb, lay.u32
        need, btype = 12, 0
        try:
            while off < size:
                if off + 12 > size:
                    break
                if off + 28 <= size:  # room for an EPB header: read it all at once
                    btype, blen, iid, ts_hi, ts_lo, cap_len, orig_len = epb(v, off)
                else:
                    btype, blen = hdr(v, off)
                if btype == _PCAPNG_SHB:
                    new_bo = section_byte_order(v, off)
                    if new_bo is None:
                        if base + off == 0:
                            raise bad_byte_order(self.name)
                        self._fatal(frame + 1, f"section header at byte {base + off} has a "
                                    "bad byte-order magic")
                        break
                    bo = new_bo
                    lay = _LAYOUTS[bo]
                    hdr, epb, pb, u32 = lay.block.unpack_from, lay.epb.unpack_from, lay.pb, lay.u32
                    btype, blen = hdr(v, off)
                    ifaces = []
                if blen < 12 or blen & 3:
                    self._fatal(frame + 1, f"block at byte {base + off} has an impossible "
                                f"length {blen}")
                    break
                end = off + blen
                if end > size:
                    need = blen
                    break
                if u32.unpack_from(v, end - 4)[0] != blen:
                    self._fatal(frame + 1, f"block at byte {base + off}: trailing length "
                                f"does not match {blen}")
                    break
                # Not ``in (...)``: two compares are measurably cheaper per block.
                if btype == _BT_EPB or btype == _BT_PB:  # noqa: SIM109
                    frame += 1
                    if blen < 32:
                        self.add_problem(frame, "bad_block", f"{_PACKET_BLOCK_NAMES[btype]} "
                                         f"at byte {base + off} is too short.")
                    else:
                        if btype == _BT_PB:  # obsolete: a 16-bit interface id, then as EPB
                            iid, _drops, ts_hi, ts_lo, cap_len, orig_len = pb.unpack_from(
                                v, off + 8)
                        if cap_len > blen - 32 or iid >= len(ifaces):
                            self._bad_packet_block(frame, base + off, iid, cap_len, len(ifaces))
                        else:
                            linktype, _snap, mult, div, offset_ns, supported = ifaces[iid]
                            if supported:
                                if cap_len < orig_len:
                                    self._snaplen(frame, cap_len, orig_len)
                                ts = (ts_hi << 32 | ts_lo) * mult
                                if div != 1:
                                    ts //= div
                                if offset_ns:
                                    ts += offset_ns
                                if _TS_MIN <= ts <= _TS_MAX:
                                    prev_ts = ts
                                else:
                                    self._bad_timestamp(frame, ts, prev_ts)
                                start = off + 28
                                yield new(RP, (frame, prev_ts, linktype,
                                               cut[start:start + cap_len], orig_len, cap_len))
                            else:
                                self._unsupported(frame, linktype)
                elif btype == _BT_SPB:
                    frame += 1
                    if blen < 16 or not ifaces:
                        self.add_problem(
                            frame, "bad_block",
                            f"simple packet block at byte {base + off} is too short or "
                            "precedes any interface description; packet skipped.",
                        )
                    else:
                        linktype, snaplen, _m, _d, _o, supported = ifaces[0]
                        orig_len = u32.unpack_from(v, off + 8)[0]
                        cap_len = min(orig_len, blen - 16)
                        if snaplen:
                            cap_len = min(cap_len, snaplen)
                        if supported:
                            if cap_len < orig_len:
                                self._snaplen(frame, cap_len, orig_len)
                            yield new(RP, (frame, prev_ts, linktype,
                                           cut[off + 12:off + 12 + cap_len], orig_len, cap_len))
                        else:
                            self._unsupported(frame, linktype)
                elif btype == _BT_IDB:
                    # A broken IDB still takes its interface number, so later ids stay right.
                    ifaces.append(self._interface(v, off, blen, bo, frame + 1, base))
                # Any other block type (statistics, name resolution, custom...) is skipped.
                off = end
                if off >= mark:
                    mark = off + step
                    if progress is not None:
                        progress(off)
        finally:
            self.frames, self._prev_ts, self._ifaces, self._bo = frame, prev_ts, ifaces, bo
            self._stop, self._need, self._pending_type = off, need, btype
        self._stopped(off, size, base, at_end, progress)

    def _interface(
        self, v: bytes | memoryview, off: int, blen: int, bo: str, frame: int, base: int
    ) -> _Interface:
        """Read an Interface Description Block (rare, so clarity over speed)."""
        if blen < 20:
            self.add_problem(frame, "bad_block",
                             f"interface description block at byte {base + off} is too short.")
            return _BROKEN_INTERFACE
        lay = _LAYOUTS[bo]
        linktype, _res, snaplen = lay.idb.unpack_from(v, off + 8)
        mult, div, offset_ns = 1000, 1, 0  # default resolution: microseconds
        opt = off + 16
        end = off + blen - 4
        while opt + 4 <= end:
            code, olen = lay.option.unpack_from(v, opt)
            if code == _OPT_ENDOFOPT:
                break
            val = opt + 4
            if val + olen > end:
                self.add_problem(frame, "bad_block", "interface description block at byte "
                                 f"{base + off} has a bad option.")
                break
            if code == _OPT_IF_TSRESOL and olen >= 1:
                r = v[val]
                if r & 0x80:  # 2^-n seconds
                    mult, div = _NS, 1 << (r & 0x7F)
                else:  # 10^-n seconds
                    mult, div = (10 ** (9 - r), 1) if r <= 9 else (1, 10 ** (r - 9))
            elif code == _OPT_IF_TSOFFSET and olen >= 8:
                offset_ns = lay.i64.unpack_from(v, val)[0] * _NS
            opt = val + ((olen + 3) & ~3)
        g = math.gcd(mult, div)
        return _Interface(linktype, snaplen, mult // g, div // g, offset_ns,
                          self._wants(linktype))

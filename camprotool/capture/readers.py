"""Classic pcap and pcapng readers behind one interface.

Why our own reader instead of dpkt/scapy/pyshark: decoding a long camera-sync
session must be fast and must never lose an exact timestamp.  So the file is
memory-mapped, every record header is read with a precompiled ``struct.Struct``,
packet bytes are handed out as ``memoryview`` slices of the map (no copy) and
timestamps are integer nanoseconds (a float loses the last digits of an epoch
time in ns).

Damage is data, not an exception: once a file has been recognised as a capture,
iterating it never raises.  A record cut by the end of the file, an impossible
block length or a packet on a link type we cannot decode is recorded in
``CaptureFile.problems`` and the reader goes on (or stops, when the rest of the
file cannot be found reliably).  Only ``open_capture`` raises, for files that
are not captures at all.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import struct
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from typing import NamedTuple

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_LOOP",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "SUPPORTED_LINKTYPES",
    "CaptureFile",
    "CaptureFormatError",
    "CaptureProblem",
    "RawPacket",
    "open_capture",
]

# Link-layer header types (https://www.tcpdump.org/linktypes.html).  They live
# here because the reader decides which packets it can hand on.
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
#: 12 and 14 are DLT_RAW values of some BSDs that leak into files as raw IP.
SUPPORTED_LINKTYPES: frozenset[int] = frozenset(
    {0, 1, 12, 14, 101, 108, 113, 228, 229, 276}
)

_LINKTYPE_NAMES = {
    0: "NULL", 1: "ETHERNET", 12: "RAW", 14: "RAW", 101: "RAW", 105: "IEEE802_11",
    108: "LOOP", 113: "LINUX_SLL", 127: "IEEE802_11_RADIOTAP", 228: "IPV4", 229: "IPV6",
    276: "LINUX_SLL2",
}

# Classic pcap magics as read with a little-endian Struct.
_PCAP_US_LE = 0xA1B2C3D4
_PCAP_US_BE = 0xD4C3B2A1
_PCAP_NS_LE = 0xA1B23C4D
_PCAP_NS_BE = 0x4D3CB2A1
_PCAPNG_SHB = 0x0A0D0D0A  # palindromic: same in both byte orders
_PCAPNG_BOM = 0x1A2B3C4D

_U32LE = struct.Struct("<I")
_MAX_RECORD = 1 << 26  # 64 MiB: larger "packets" are corruption, not data
_NS = 1_000_000_000

# pcapng block types
_BT_IDB = 1
_BT_PB = 2
_BT_SPB = 3
_BT_EPB = 6

# pcapng option codes
_OPT_ENDOFOPT = 0
_OPT_IF_TSRESOL = 9
_OPT_IF_TSOFFSET = 14


class CaptureFormatError(ValueError):
    """The file is not a capture we can read (raised by ``open_capture`` only)."""


class CaptureProblem(NamedTuple):
    """Something wrong found while reading; collected, never raised.

    ``frame`` is the number the affected packet has (or would have had);
    ``kind`` a short tag such as ``truncated_file``, ``snaplen``,
    ``unsupported_linktype``, ``bad_block``; ``detail`` one sentence.
    """

    frame: int
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


def linktype_name(linktype: int) -> str:
    """Human name of a link type for messages, e.g. ``'105 (IEEE802_11)'``."""
    name = _LINKTYPE_NAMES.get(linktype)
    return f"{linktype} ({name})" if name else str(linktype)


class _Interface(NamedTuple):
    linktype: int
    snaplen: int
    mult: int  # ts_ns = ts_units * mult // div + offset_ns
    div: int
    offset_ns: int
    supported: bool


class CaptureFile:
    """An open pcap or pcapng file; iterate it for ``RawPacket`` values.

    Each iteration starts again at the first packet and clears ``problems``
    and ``counts`` (the packet layer adds its own problems during the same
    pass).  ``progress``, if given, is called with the byte offset reached
    about every MiB and once at the end, for a CLI progress bar.
    """

    #: At most this many problems of one kind are listed; ``counts`` has them all.
    max_problems_per_kind = 100

    def __init__(
        self,
        source: str | os.PathLike[str] | bytes | bytearray | memoryview,
        *,
        progress: Callable[[int], None] | None = None,
        linktypes: frozenset[int] | None = SUPPORTED_LINKTYPES,
    ) -> None:
        self._mmap: mmap.mmap | None = None
        self._view: memoryview
        if isinstance(source, bytes | bytearray | memoryview):
            self.name = "<memory>"
            self._view = memoryview(source).cast("B")
        else:
            self.name = os.fspath(source)
            try:
                with open(self.name, "rb") as fh:
                    size = os.fstat(fh.fileno()).st_size
                    if size == 0:
                        raise CaptureFormatError(f"{self.name}: empty file, not a capture")
                    self._mmap = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except FileNotFoundError as exc:
                raise FileNotFoundError(
                    exc.errno, f"capture file not found: {self.name}", self.name
                ) from None
            except IsADirectoryError as exc:
                raise CaptureFormatError(f"{self.name}: is a directory, not a capture") from exc
            self._view = memoryview(self._mmap)
        self.size: int = len(self._view)
        self.progress = progress
        self.linktypes = linktypes
        self.problems: list[CaptureProblem] = []
        self.counts: Counter[str] = Counter()
        #: packets skipped per unsupported link type
        self.skipped: Counter[int] = Counter()
        #: number of packet records seen in the last (or current) pass
        self.frames = 0
        self.format: str = self._detect()

    # -- set-up ----------------------------------------------------------
    def _detect(self) -> str:
        v, name, size = self._view, self.name, self.size
        if size == 0:
            self.close()
            raise CaptureFormatError(f"{name}: empty file, not a capture")
        if size < 4:
            self.close()
            raise CaptureFormatError(f"{name}: only {size} bytes, too short to be a capture")
        magic = _U32LE.unpack_from(v, 0)[0]
        if magic in (_PCAP_US_LE, _PCAP_US_BE, _PCAP_NS_LE, _PCAP_NS_BE):
            if size < 24:
                self.close()
                raise CaptureFormatError(
                    f"{name}: pcap file header cut short ({size} of 24 bytes)"
                )
            bo = "<" if magic in (_PCAP_US_LE, _PCAP_NS_LE) else ">"
            self._pcap_nano = magic in (_PCAP_NS_LE, _PCAP_NS_BE)
            major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(
                bo + "HHiIII", v, 4
            )
            if major != 2:
                self.close()
                raise CaptureFormatError(f"{name}: unsupported pcap version {major}")
            self._bo = bo
            self._pcap_linktype = network & 0xFFFF  # upper bits: FCS information
            self.snaplen = snaplen
            return "pcap"
        if magic == _PCAPNG_SHB:
            if size < 12:
                self.close()
                raise CaptureFormatError(
                    f"{name}: pcapng section header cut short ({size} bytes)"
                )
            if _U32LE.unpack_from(v, 8)[0] not in (_PCAPNG_BOM, 0x4D3C2B1A):
                self.close()
                raise CaptureFormatError(
                    f"{name}: pcapng section header has a bad byte-order magic"
                )
            return "pcapng"
        head = bytes(v[:4])
        self.close()
        if head in (b"\xa1\xb2\xcd\x34", b"\x34\xcd\xb2\xa1"):
            raise CaptureFormatError(f"{name}: modified (Kuznetzov) pcap format is not supported")
        raise CaptureFormatError(
            f"{name}: not a pcap or pcapng capture (starts with {head.hex()})"
        )

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

    def _snaplen(self, frame: int, cap_len: int, orig_len: int) -> None:
        self.add_problem(
            frame, "snaplen",
            f"packet cut by the snapshot length: {cap_len} of {orig_len} bytes captured.",
        )

    # -- iteration -------------------------------------------------------
    closed = False

    def __iter__(self) -> Iterator[RawPacket]:
        if self.closed:
            raise ValueError(f"{self.name}: capture file is closed")
        self.problems = []
        self.counts = Counter()
        self.skipped = Counter()
        self.frames = 0
        if self.format == "pcap":
            return self._iter_pcap()
        return self._iter_pcapng()

    def _progress_step(self) -> int:
        return max(1 << 20, self.size // 1000) if self.progress else sys.maxsize

    def _iter_pcap(self) -> Iterator[RawPacket]:
        v = self._view
        size = self.size
        unpack = struct.Struct(self._bo + "IIII").unpack_from
        mult = 1 if self._pcap_nano else 1000
        linktype = self._pcap_linktype
        wanted = self.linktypes is None or linktype in self.linktypes
        new, RP = _new_raw, RawPacket
        progress = self.progress
        step = self._progress_step()
        mark = step
        frame = 0
        off = 24
        try:
            while off < size:
                if off + 16 > size:
                    self.add_problem(
                        frame + 1, "truncated_file",
                        f"file ends inside a record header at byte {off} "
                        f"({size - off} of 16 bytes).",
                    )
                    break
                sec, frac, cap_len, orig_len = unpack(v, off)
                start = off + 16
                end = start + cap_len
                if end > size:
                    frame += 1
                    if cap_len > _MAX_RECORD:
                        self.add_problem(
                            frame, "bad_block",
                            f"record at byte {off} claims {cap_len} captured bytes; "
                            "the rest of the file cannot be read.",
                        )
                    else:
                        self.add_problem(
                            frame, "truncated_file",
                            f"file ends inside a record at byte {off}: "
                            f"{size - start} of {cap_len} bytes present.",
                        )
                    break
                frame += 1
                off = end
                if wanted:
                    if cap_len < orig_len:
                        self._snaplen(frame, cap_len, orig_len)
                    yield new(RP, (frame, sec * 1_000_000_000 + frac * mult, linktype,
                                   v[start:end], orig_len, cap_len))
                else:
                    self._unsupported(frame, linktype)
                if off >= mark:
                    mark = off + step
                    progress(off)  # type: ignore[misc]
        finally:
            self.frames = frame
        if progress:
            progress(off)

    def _iter_pcapng(self) -> Iterator[RawPacket]:
        v = self._view
        size = self.size
        progress = self.progress
        step = self._progress_step()
        mark = step
        new, RP = _new_raw, RawPacket
        wanted_set = self.linktypes
        frame = 0
        off = 0
        prev_ts = 0  # a simple packet block has no timestamp: it reuses this one
        ifaces: list[_Interface] = []
        # Rebound at each section header, which sets the section's byte order.
        bo = "<"
        hdr, epb_s, pb, u32 = _section_structs(bo)
        epb = epb_s.unpack_from  # block type and length + the EPB fields, one call
        try:
            while off < size:
                if off + 12 > size:
                    self.add_problem(
                        frame + 1, "truncated_file",
                        f"file ends inside a block header at byte {off} ({size - off} bytes).",
                    )
                    break
                if off + 28 <= size:  # room for an EPB header: read it all at once
                    btype, blen, iid, ts_hi, ts_lo, cap_len, orig_len = epb(v, off)
                else:
                    btype, blen = hdr.unpack_from(v, off)
                if btype == _PCAPNG_SHB:
                    bom = _U32LE.unpack_from(v, off + 8)[0]
                    if bom == _PCAPNG_BOM:
                        bo = "<"
                    elif bom == 0x4D3C2B1A:
                        bo = ">"
                    else:
                        self.add_problem(
                            frame + 1, "bad_block",
                            f"section header at byte {off} has a bad byte-order magic; "
                            "the rest of the file cannot be read.",
                        )
                        break
                    hdr, epb_s, pb, u32 = _section_structs(bo)
                    epb = epb_s.unpack_from
                    btype, blen = hdr.unpack_from(v, off)
                    ifaces = []
                if blen < 12 or blen & 3:
                    self.add_problem(
                        frame + 1, "bad_block",
                        f"block at byte {off} has an impossible length {blen}; "
                        "the rest of the file cannot be read.",
                    )
                    break
                end = off + blen
                if end > size:
                    is_packet = btype in (_BT_EPB, _BT_SPB, _BT_PB)
                    if blen > _MAX_RECORD:
                        self.add_problem(
                            frame + is_packet, "bad_block",
                            f"block at byte {off} claims {blen} bytes; "
                            "the rest of the file cannot be read.",
                        )
                    else:
                        self.add_problem(
                            frame + is_packet, "truncated_file",
                            f"file ends inside a block (type {btype:#x}) at byte {off}: "
                            f"{size - off} of {blen} bytes present.",
                        )
                    break
                if u32.unpack_from(v, end - 4)[0] != blen:
                    self.add_problem(
                        frame + 1, "bad_block",
                        f"block at byte {off}: trailing length does not match {blen}; "
                        "the rest of the file cannot be read.",
                    )
                    break
                if btype == _BT_EPB:
                    frame += 1
                    if blen < 32:
                        self.add_problem(frame, "bad_block",
                                         f"enhanced packet block at byte {off} is too short.")
                    else:
                        if cap_len > blen - 32 or iid >= len(ifaces):
                            self._bad_packet_block(frame, off, iid, cap_len, len(ifaces))
                        else:
                            linktype, _snap, mult, div, offset_ns, supported = ifaces[iid]
                            if supported:
                                if cap_len < orig_len:
                                    self._snaplen(frame, cap_len, orig_len)
                                prev_ts = (ts_hi << 32 | ts_lo) * mult
                                if div != 1:
                                    prev_ts //= div
                                if offset_ns:
                                    prev_ts += offset_ns
                                start = off + 28
                                yield new(RP, (frame, prev_ts, linktype,
                                               v[start:start + cap_len], orig_len, cap_len))
                            else:
                                self._unsupported(frame, linktype)
                elif btype == _BT_SPB:
                    frame += 1
                    if blen < 16 or not ifaces:
                        self.add_problem(
                            frame, "bad_block",
                            f"simple packet block at byte {off} is too short or precedes "
                            "any interface description; packet skipped.",
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
                                           v[off + 12:off + 12 + cap_len], orig_len, cap_len))
                        else:
                            self._unsupported(frame, linktype)
                elif btype == _BT_PB:
                    frame += 1
                    if blen < 32:
                        self.add_problem(frame, "bad_block",
                                         f"packet block at byte {off} is too short.")
                    else:
                        iid, _drops, ts_hi, ts_lo, cap_len, orig_len = pb.unpack_from(v, off + 8)
                        if cap_len > blen - 32 or iid >= len(ifaces):
                            self._bad_packet_block(frame, off, iid, cap_len, len(ifaces))
                        else:
                            linktype, _snap, mult, div, offset_ns, supported = ifaces[iid]
                            if supported:
                                if cap_len < orig_len:
                                    self._snaplen(frame, cap_len, orig_len)
                                prev_ts = (ts_hi << 32 | ts_lo) * mult // div + offset_ns
                                start = off + 28
                                yield new(RP, (frame, prev_ts, linktype,
                                               v[start:start + cap_len], orig_len, cap_len))
                            else:
                                self._unsupported(frame, linktype)
                elif btype == _BT_IDB:
                    # A broken IDB still takes its interface number, so later ids stay right.
                    ifaces.append(self._parse_idb(off, blen, bo, frame + 1, wanted_set))
                # Any other block type (statistics, name resolution, custom...) is skipped.
                off = end
                if off >= mark:
                    mark = off + step
                    progress(off)  # type: ignore[misc]
        finally:
            self.frames = frame
        if progress:
            progress(off)

    def _bad_packet_block(
        self, frame: int, off: int, iid: int, cap_len: int, n_ifaces: int
    ) -> None:
        self.add_problem(
            frame, "bad_block",
            f"packet block at byte {off} is inconsistent (interface {iid} of {n_ifaces} "
            f"described, captured length {cap_len}); packet skipped.",
        )

    def _parse_idb(
        self, off: int, blen: int, bo: str, frame: int, wanted: frozenset[int] | None
    ) -> _Interface:
        """Read an Interface Description Block (rare, so clarity over speed)."""
        v = self._view
        if blen < 20:
            self.add_problem(frame, "bad_block",
                             f"interface description block at byte {off} is too short.")
            return _Interface(-1, 0, 1000, 1, 0, False)
        linktype, _res, snaplen = struct.unpack_from(bo + "HHI", v, off + 8)
        mult, div, offset_ns = 1000, 1, 0  # default resolution: microseconds
        opt = off + 16
        end = off + blen - 4
        opt_hdr = struct.Struct(bo + "HH")
        while opt + 4 <= end:
            code, olen = opt_hdr.unpack_from(v, opt)
            if code == _OPT_ENDOFOPT:
                break
            val = opt + 4
            if val + olen > end:
                self.add_problem(frame, "bad_block",
                                 f"interface description block at byte {off} has a bad option.")
                break
            if code == _OPT_IF_TSRESOL and olen >= 1:
                r = v[val]
                if r & 0x80:  # 2^-n seconds
                    mult, div = _NS, 1 << (r & 0x7F)
                else:  # 10^-n seconds
                    n = r
                    mult, div = (10 ** (9 - n), 1) if n <= 9 else (1, 10 ** (n - 9))
            elif code == _OPT_IF_TSOFFSET and olen >= 8:
                offset_ns = struct.unpack_from(bo + "q", v, val)[0] * _NS
            opt = val + ((olen + 3) & ~3)
        g = math.gcd(mult, div)
        supported = wanted is None or linktype in wanted
        return _Interface(linktype, snaplen, mult // g, div // g, offset_ns, supported)

    # -- lifetime --------------------------------------------------------
    def close(self) -> None:
        """Release the map.  Packets still referenced keep it alive until dropped."""
        self.closed = True
        view = getattr(self, "_view", None)
        if view is not None:
            with contextlib.suppress(BufferError):
                view.release()
        mm = self._mmap
        self._mmap = None
        if mm is not None:
            # Slices handed out may still point into the map: it is then freed with them.
            with contextlib.suppress(BufferError):
                mm.close()

    def __enter__(self) -> CaptureFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<CaptureFile {self.name!r} {getattr(self, 'format', '?')} {self.size} bytes>"


def _section_structs(bo: str) -> tuple[struct.Struct, struct.Struct, struct.Struct, struct.Struct]:
    """Block header, block header + EPB fields, obsolete PB fields, u32, in a byte order."""
    return _SECTION_STRUCTS[bo]


_SECTION_STRUCTS = {
    bo: (struct.Struct(bo + "II"), struct.Struct(bo + "IIIIIII"),
         struct.Struct(bo + "HHIIII"), struct.Struct(bo + "I"))
    for bo in "<>"
}


def open_capture(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview,
    *,
    progress: Callable[[int], None] | None = None,
    linktypes: frozenset[int] | None = SUPPORTED_LINKTYPES,
) -> CaptureFile:
    """Open a pcap or pcapng capture (a path, or the file's bytes) for reading.

    The format is detected by its magic number.  Raises ``CaptureFormatError``
    if it is neither, ``FileNotFoundError`` naming the path if it is missing.
    ``linktypes`` chooses the link types whose packets are yielded (``None``:
    all); packets on others are skipped and reported once per link type.
    """
    return CaptureFile(source, progress=progress, linktypes=linktypes)

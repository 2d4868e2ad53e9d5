"""Write pcap/pcapng captures, and turn a scripted TCP conversation into packets.

Why: every tricky case the decoder must survive (loss, reordering, overlapping
or conflicting retransmissions, sequence wrap-around, snaplen cuts, VLAN tags,
odd link types, IP options and extension headers) is easiest to test with a
capture built exactly for it.  Real recordings of such cases are rare and
cannot be shared; a script that says "the server sends these bytes, the
segment at seq X is lost" is readable and exact.

``PcapngWriter`` and ``PcapWriter`` have the same API so every sample can be
checked in both formats.  Without a file or path they write to memory
(``getvalue()``), so tests need no temporary files.  Headers are real: IPv4
header checksums are right and TCP checksums are computed too, so Wireshark
and tshark read the files without complaint.
"""

from __future__ import annotations

import io
import ipaddress
import os
import struct
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol, Self

from camprotool.capture.readers import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
)

__all__ = [
    "PcapWriter",
    "PcapngWriter",
    "TcpConversation",
    "build_ipv4",
    "build_ipv6",
    "build_tcp",
    "fragment_body",
    "internet_checksum",
    "link_frame",
]

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_NS = 1_000_000_000
_DEFAULT_SNAPLEN = 262144
_IPV4_HDR = struct.Struct("!BBHHHBBH4s4s")
_IPV6_HDR = struct.Struct("!IHBB16s16s")
_TCP_HDR = struct.Struct("!HHIIHHHH")
_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_RAW_LIKE = frozenset({12, 14, 101, LINKTYPE_IPV4, LINKTYPE_IPV6})

Endpoint = tuple[str, int]
Vlans = Sequence[int | tuple[int, int]]


# -- header builders --------------------------------------------------------
def internet_checksum(data: bytes) -> int:
    """RFC 1071 one's-complement checksum of ``data``, as a network-order int."""
    if len(data) & 1:
        data += b"\0"
    s = sum(memoryview(data).cast("H"))  # native order; RFC 1071 allows a final swap
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    s = ~s & 0xFFFF
    if sys.byteorder == "little":
        s = ((s & 0xFF) << 8) | (s >> 8)
    return s


def build_ipv4(
    src: bytes,
    dst: bytes,
    payload: bytes,
    *,
    proto: int = 6,
    ident: int = 0,
    ttl: int = 64,
    options: bytes = b"",
    flags_frag: int = 0x4000,
    total_length: int | None = None,
) -> bytes:
    """An IPv4 packet with a correct header checksum.

    ``options`` is padded to a multiple of 4 bytes with End-of-Options;
    ``flags_frag`` is the 16-bit flags + fragment offset word (default: DF);
    ``total_length`` overrides the length field (e.g. 0 as with segmentation
    offload, or a lie for malformed-packet tests).
    """
    if len(options) % 4:
        options += b"\0" * (4 - len(options) % 4)
    ihl = 5 + len(options) // 4
    if ihl > 15:
        raise ValueError("IPv4 options longer than 40 bytes")
    total = 4 * ihl + len(payload) if total_length is None else total_length
    hdr = _IPV4_HDR.pack(0x40 | ihl, 0, total, ident & 0xFFFF, flags_frag, ttl, proto, 0,
                         src, dst) + options
    csum = internet_checksum(hdr)
    return hdr[:10] + csum.to_bytes(2, "big") + hdr[12:] + payload


def build_ipv6(
    src: bytes,
    dst: bytes,
    payload: bytes,
    *,
    next_header: int = 6,
    hop_limit: int = 64,
    ext: Sequence[tuple[int, bytes]] = (),
    payload_length: int | None = None,
) -> bytes:
    """An IPv6 packet; ``ext`` lists extension headers ``(type, body)`` in order.

    Hop-by-hop (0), routing (43) and destination options (60) bodies are padded
    to the 8-byte unit; a fragment header (44) body is the 6 bytes after its
    next-header/reserved bytes (offset/flags word + identification), e.g.
    ``fragment_body(offset, more)``; AH (51) bodies are padded to 4 bytes.
    """
    chain = b""
    types = [t for t, _ in ext] + [next_header]
    for i, (etype, body) in enumerate(ext):
        nxt = types[i + 1]
        if etype == 44:
            if len(body) != 6:
                raise ValueError("a fragment header body is exactly 6 bytes")
            chain += bytes([nxt, 0]) + body
        elif etype == 51:
            body += b"\0" * (-(len(body) + 2) % 4)
            chain += bytes([nxt, (len(body) + 2) // 4 - 2]) + body
        else:
            body += b"\0" * (-(len(body) + 2) % 8)  # zero bytes are Pad1 options
            chain += bytes([nxt, (len(body) + 2) // 8 - 1]) + body
    first = types[0]
    plen = len(chain) + len(payload) if payload_length is None else payload_length
    return _IPV6_HDR.pack(0x60000000, plen, first, hop_limit, src, dst) + chain + payload


def fragment_body(offset: int, more: bool, ident: int = 0x1234) -> bytes:
    """Body of an IPv6 fragment header: ``offset`` in bytes (multiple of 8)."""
    return struct.pack("!HI", (offset & 0xFFF8) | int(more), ident)


def build_tcp(
    src_ip: bytes,
    dst_ip: bytes,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
    *,
    window: int = 65535,
    options: bytes = b"",
    checksum: bool = True,
) -> bytes:
    """A TCP segment; the checksum uses the IPv4 or IPv6 pseudo-header."""
    if len(options) % 4:
        options += b"\x01" * (4 - len(options) % 4)  # NOP padding
    doff = 5 + len(options) // 4
    hdr = _TCP_HDR.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                        (doff << 12) | (flags & 0x1FF), window, 0, 0) + options
    seg = hdr + payload
    if not checksum:
        return seg
    n = len(seg)
    if len(src_ip) == 4:
        pseudo = src_ip + dst_ip + bytes((0, 6)) + n.to_bytes(2, "big")
    else:
        pseudo = src_ip + dst_ip + n.to_bytes(4, "big") + b"\0\0\0\x06"
    csum = internet_checksum(pseudo + seg)
    return seg[:16] + csum.to_bytes(2, "big") + seg[18:]


def link_frame(
    linktype: int,
    ip_packet: bytes,
    *,
    vlans: Vlans = (),
    src_mac: bytes = b"\x02\0\0\0\0\x01",
    dst_mac: bytes = b"\x02\0\0\0\0\x02",
    outgoing: bool = True,
    eth_pad: bool = True,
    null_byte_order: str = "<",
) -> bytes:
    """Wrap an IP packet in the link-layer header of ``linktype``.

    ``vlans``: VLAN ids (802.1Q) or ``(tpid, vid)`` pairs, outermost first,
    e.g. ``[(0x88A8, 10), 20]`` for QinQ.  ``eth_pad`` pads Ethernet frames to
    the 60-byte minimum as a NIC does, padding the decoder must ignore.
    """
    version = ip_packet[0] >> 4 if ip_packet else 4
    etype = _ETH_IPV6 if version == 6 else _ETH_IPV4
    if linktype == LINKTYPE_ETHERNET:
        tags = b""
        for tag in vlans:
            tpid, vid = tag if isinstance(tag, tuple) else (0x8100, tag)
            tags += struct.pack("!HH", tpid, vid & 0x0FFF)
        frame = dst_mac + src_mac + tags + etype.to_bytes(2, "big") + ip_packet
        if eth_pad and len(frame) < 60:
            frame += b"\0" * (60 - len(frame))
        return frame
    if linktype in _RAW_LIKE:
        return ip_packet
    if vlans:
        raise ValueError("VLAN tags are only written on Ethernet")
    if linktype == LINKTYPE_LINUX_SLL:
        return struct.pack("!HHH8sH", 4 if outgoing else 0, 1, 6, src_mac, etype) + ip_packet
    if linktype == LINKTYPE_LINUX_SLL2:
        return struct.pack("!HHIHBB8s", etype, 0, 1, 1, 4 if outgoing else 0, 6,
                           src_mac) + ip_packet
    if linktype == LINKTYPE_NULL:
        family = 30 if version == 6 else 2  # BSD AF_INET6 varies: 24, 28 or 30
        return struct.pack(null_byte_order + "I", family) + ip_packet
    if linktype == LINKTYPE_LOOP:
        return struct.pack("!I", 24 if version == 6 else 2) + ip_packet
    raise ValueError(f"cannot write IP packets on link type {linktype}")


# -- capture writers --------------------------------------------------------
class _Interface:
    __slots__ = ("linktype", "pow2", "resol", "snaplen", "tsoffset")

    def __init__(self, linktype: int, resol: int, pow2: bool, snaplen: int, tsoffset: int):
        self.linktype = linktype
        self.resol = resol
        self.pow2 = pow2
        self.snaplen = snaplen
        self.tsoffset = tsoffset


class BinarySink(Protocol):
    """What a writer writes to: a binary file, or anything with its ``write``, ``flush``
    and ``close`` (a recorder's durable block buffer), so callers need not fake a file."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class _CaptureWriter(ABC):
    """What both formats share: the output, context management, TCP scripting."""

    def __init__(self, fileobj_or_path: str | os.PathLike[str] | BinarySink | None) -> None:
        self._own = False
        if fileobj_or_path is None:
            self._fh: BinarySink = io.BytesIO()
        elif isinstance(fileobj_or_path, str | os.PathLike):
            self._fh = open(fileobj_or_path, "wb", buffering=1 << 20)  # noqa: SIM115
            self._own = True
        else:
            self._fh = fileobj_or_path
        self._write = self._fh.write
        self._ifaces: list[_Interface] = []
        self.packets = 0

    # -- to be provided by the formats
    @abstractmethod
    def write_packet(
        self, ts_ns: int, frame_bytes: bytes, orig_len: int | None = None, *, interface: int = 0
    ) -> None:
        """Write one link-layer frame (each format has its own record layout)."""

    def linktype(self, interface: int = 0) -> int:
        """Link type of an interface."""
        return self._ifaces[interface].linktype

    def write_ip(
        self,
        ts_ns: int,
        ip_packet: bytes,
        *,
        interface: int = 0,
        orig_len: int | None = None,
        **link: object,
    ) -> None:
        """Write an IP packet framed for the interface's link type (see ``link_frame``)."""
        frame = link_frame(self._ifaces[interface].linktype, ip_packet, **link)  # type: ignore[arg-type]
        self.write_packet(ts_ns, frame, orig_len, interface=interface)

    def tcp(
        self,
        client: Endpoint = ("10.0.0.1", 50000),
        server: Endpoint = ("10.0.0.2", 9000),
        ts_ns: int = 1_700_000_000_000_000_000,
        *,
        handshake: bool = True,
        isn_client: int = 1000,
        isn_server: int = 5000,
        mss: int = 1460,
        interface: int = 0,
        rtt_ns: int = 200_000,
        window: int = 65535,
        vlans: Vlans = (),
        ip_options: bytes = b"",
        ipv6_ext: Sequence[tuple[int, bytes]] = (),
        eth_pad: bool = True,
        tcp_checksum: bool = True,
    ) -> TcpConversation:
        """Start a scripted TCP conversation (IPv4 or IPv6 by address syntax)."""
        return TcpConversation(
            self, client, server, ts_ns, handshake=handshake, isn_client=isn_client,
            isn_server=isn_server, mss=mss, interface=interface, rtt_ns=rtt_ns, window=window,
            vlans=vlans, ip_options=ip_options, ipv6_ext=ipv6_ext, eth_pad=eth_pad,
            tcp_checksum=tcp_checksum,
        )

    def getvalue(self) -> bytes:
        """The capture written so far (in-memory writers only)."""
        if not isinstance(self._fh, io.BytesIO):
            raise TypeError("getvalue() is only available when writing to memory")
        return self._fh.getvalue()

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        """Flush; close the file if the writer opened it (a BytesIO stays readable)."""
        if self._own:
            self._fh.close()
        else:
            self._fh.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PcapngWriter(_CaptureWriter):
    """pcapng writer: sections, several interfaces, and every packet block type.

    ``linktype`` describes interface 0 (``None``: add interfaces yourself);
    ``tsresol_ns`` gives it nanosecond timestamps, else microseconds (the
    pcapng default, written without an ``if_tsresol`` option).
    ``byte_order`` ``'<'`` or ``'>'`` chooses the first section's byte order.
    """

    def __init__(
        self,
        fileobj_or_path: str | os.PathLike[str] | BinarySink | None = None,
        linktype: int | None = LINKTYPE_ETHERNET,
        tsresol_ns: bool = True,
        *,
        snaplen: int = _DEFAULT_SNAPLEN,
        byte_order: str = "<",
    ) -> None:
        super().__init__(fileobj_or_path)
        self.new_section(byte_order)
        if linktype is not None:
            self.add_interface(linktype, tsresol=9 if tsresol_ns else 6, snaplen=snaplen)

    def new_section(self, byte_order: str = "<") -> None:
        """Start a new section (own byte order, no interfaces until added)."""
        if byte_order not in "<>" or len(byte_order) != 1:
            raise ValueError("byte_order is '<' or '>'")
        bo = self._bo = byte_order
        self._epb = struct.Struct(bo + "IIIIIII")  # type, length, iid, ts hi/lo, caplen, len
        self._u32 = struct.Struct(bo + "I")
        self._ifaces = []
        self._write(struct.pack(bo + "IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28))

    def add_interface(
        self,
        linktype: int,
        tsresol: int = 9,
        snaplen: int = _DEFAULT_SNAPLEN,
        *,
        tsoffset: int = 0,
    ) -> int:
        """Describe an interface; returns its id for ``write_packet(..., interface=)``.

        ``tsresol`` is the ``if_tsresol`` byte: ``n`` means 10**-n seconds,
        ``0x80 | n`` means 2**-n seconds; 6 (the default) is written with no
        option.  ``tsoffset`` (seconds) is written as ``if_tsoffset``.
        """
        bo = self._bo
        opts = b""
        if tsresol != 6:
            opts += struct.pack(bo + "HHB3x", 9, 1, tsresol)
        if tsoffset:
            opts += struct.pack(bo + "HHq", 14, 8, tsoffset)
        if opts:
            opts += struct.pack(bo + "HH", 0, 0)
        blen = 20 + len(opts)
        self._write(struct.pack(bo + "IIHHI", 1, blen, linktype, 0, snaplen) + opts
                    + struct.pack(bo + "I", blen))
        self._ifaces.append(
            _Interface(linktype, tsresol & 0x7F, bool(tsresol & 0x80), snaplen, tsoffset)
        )
        return len(self._ifaces) - 1

    def _units(self, ifc: _Interface, ts_ns: int) -> int:
        ts = ts_ns - ifc.tsoffset * _NS
        units = (ts << ifc.resol) // _NS if ifc.pow2 else ts * 10**ifc.resol // _NS
        if not 0 <= units < 1 << 64:
            raise ValueError(f"timestamp {ts_ns} ns cannot be written on this interface")
        return units

    def _cut(self, ifc: _Interface, frame_bytes: bytes, orig_len: int | None) -> tuple[bytes, int]:
        if orig_len is None:
            orig_len = len(frame_bytes)
        if ifc.snaplen and len(frame_bytes) > ifc.snaplen:
            frame_bytes = frame_bytes[: ifc.snaplen]
        return frame_bytes, max(orig_len, len(frame_bytes))

    def write_packet(
        self, ts_ns: int, frame_bytes: bytes, orig_len: int | None = None, *, interface: int = 0
    ) -> None:
        """Write an Enhanced Packet Block; bytes beyond the snaplen are cut off.

        ``orig_len`` larger than the bytes given says the frame was already cut.
        """
        ifc = self._ifaces[interface]
        data, orig_len = self._cut(ifc, frame_bytes, orig_len)
        units = self._units(ifc, ts_ns)
        cap = len(data)
        pad = -cap & 3
        blen = 32 + cap + pad
        self._write(self._epb.pack(6, blen, interface, units >> 32, units & 0xFFFFFFFF, cap,
                                   orig_len) + data + b"\0" * pad + self._u32.pack(blen))
        self.packets += 1

    def write_simple_packet(self, frame_bytes: bytes, orig_len: int | None = None) -> None:
        """Write a Simple Packet Block (interface 0, no timestamp)."""
        data, orig_len = self._cut(self._ifaces[0], frame_bytes, orig_len)
        pad = -len(data) & 3
        blen = 16 + len(data) + pad
        bo = self._bo
        self._write(struct.pack(bo + "III", 3, blen, orig_len) + data + b"\0" * pad
                    + struct.pack(bo + "I", blen))
        self.packets += 1

    def write_obsolete_packet(
        self,
        ts_ns: int,
        frame_bytes: bytes,
        orig_len: int | None = None,
        *,
        interface: int = 0,
        drops: int = 0,
    ) -> None:
        """Write an obsolete Packet Block (type 2), still found in old files."""
        ifc = self._ifaces[interface]
        data, orig_len = self._cut(ifc, frame_bytes, orig_len)
        units = self._units(ifc, ts_ns)
        pad = -len(data) & 3
        blen = 32 + len(data) + pad
        bo = self._bo
        self._write(struct.pack(bo + "IIHHIIII", 2, blen, interface, drops, units >> 32,
                                units & 0xFFFFFFFF, len(data), orig_len)
                    + data + b"\0" * pad + struct.pack(bo + "I", blen))
        self.packets += 1

    def write_block(self, block_type: int, body: bytes = b"") -> None:
        """Write any block (e.g. an unknown type the reader must skip)."""
        body += b"\0" * (-len(body) & 3)
        blen = 12 + len(body)
        bo = self._bo
        self._write(struct.pack(bo + "II", block_type, blen) + body + struct.pack(bo + "I", blen))


class PcapWriter(_CaptureWriter):
    """Classic pcap writer (one link type), same API as ``PcapngWriter``.

    ``nanosecond`` selects the 0xa1b23c4d magic (else microseconds, 0xa1b2c3d4);
    ``byte_order`` ``'<'`` or ``'>'``.
    """

    def __init__(
        self,
        fileobj_or_path: str | os.PathLike[str] | BinarySink | None = None,
        linktype: int = LINKTYPE_ETHERNET,
        nanosecond: bool = True,
        *,
        snaplen: int = _DEFAULT_SNAPLEN,
        byte_order: str = "<",
    ) -> None:
        super().__init__(fileobj_or_path)
        if byte_order not in ("<", ">"):
            raise ValueError("byte_order is '<' or '>'")
        self._nano = nanosecond
        self._rec = struct.Struct(byte_order + "IIII")
        magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
        self._write(struct.pack(byte_order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
        self._ifaces = [_Interface(linktype, 9 if nanosecond else 6, False, snaplen, 0)]

    def add_interface(self, linktype: int, tsresol: int = 9, snaplen: int = _DEFAULT_SNAPLEN,
                      *, tsoffset: int = 0) -> int:
        """Classic pcap has a single interface: only a matching one is accepted."""
        if linktype != self._ifaces[0].linktype:
            raise ValueError("classic pcap files have a single link type; use PcapngWriter")
        return 0

    def write_packet(
        self, ts_ns: int, frame_bytes: bytes, orig_len: int | None = None, *, interface: int = 0
    ) -> None:
        """Write one record; bytes beyond the snaplen are cut off."""
        if interface != 0:
            raise ValueError("classic pcap files have a single interface")
        snaplen = self._ifaces[0].snaplen
        if orig_len is None:
            orig_len = len(frame_bytes)
        if snaplen and len(frame_bytes) > snaplen:
            frame_bytes = frame_bytes[:snaplen]
        orig_len = max(orig_len, len(frame_bytes))
        if ts_ns < 0:
            raise ValueError("classic pcap cannot store timestamps before 1970")
        sec, frac = divmod(ts_ns, _NS)
        if not self._nano:
            frac //= 1000
        self._write(self._rec.pack(sec, frac, len(frame_bytes), orig_len) + frame_bytes)
        self.packets += 1


# -- scripted TCP -------------------------------------------------------------
class TcpConversation:
    """A TCP connection whose packets are written as the script goes.

    ``send`` and ``close`` keep the sequence numbers (mod 2**32) and piggyback
    an ACK of everything the other side sent; ``segment`` writes any segment
    without touching that state (retransmissions, reordering, overlaps,
    conflicting data); ``skip`` advances a side's sequence number without
    writing (a lost segment).  With ``handshake`` the SYN/SYN-ACK/ACK are
    written first and data starts at ISN+1; without, data starts at the ISN.
    """

    def __init__(
        self,
        writer: _CaptureWriter,
        client: Endpoint,
        server: Endpoint,
        ts_ns: int,
        *,
        handshake: bool = True,
        isn_client: int = 1000,
        isn_server: int = 5000,
        mss: int = 1460,
        interface: int = 0,
        rtt_ns: int = 200_000,
        window: int = 65535,
        vlans: Vlans = (),
        ip_options: bytes = b"",
        ipv6_ext: Sequence[tuple[int, bytes]] = (),
        eth_pad: bool = True,
        tcp_checksum: bool = True,
    ) -> None:
        cip, sip = ipaddress.ip_address(client[0]), ipaddress.ip_address(server[0])
        if cip.version != sip.version:
            raise ValueError("client and server must both be IPv4 or both IPv6")
        self.writer = writer
        self.version = cip.version
        self.client = client
        self.server = server
        self.mss = mss
        self.interface = interface
        self.rtt_ns = rtt_ns
        self.window = window
        self._linktype = writer.linktype(interface)
        self._ends = {
            "c2s": (cip.packed, client[1], sip.packed, server[1], b"\x02\0\0\0\0\x01",
                    b"\x02\0\0\0\0\x02", True),
            "s2c": (sip.packed, server[1], cip.packed, client[1], b"\x02\0\0\0\0\x02",
                    b"\x02\0\0\0\0\x01", False),
        }
        self._vlans = vlans
        self._ip_options = ip_options
        self._ipv6_ext = ipv6_ext
        self._eth_pad = eth_pad
        self._checksum = tcp_checksum
        self._ident = 0
        self.nxt = {"c2s": isn_client & 0xFFFFFFFF, "s2c": isn_server & 0xFFFFFFFF}
        if handshake:
            mss_opt = struct.pack("!BBH", 2, 4, mss)
            half = rtt_ns // 2
            self.segment("c2s", b"", ts_ns, flags=SYN, ack=0, options=mss_opt)
            self.nxt["c2s"] = (self.nxt["c2s"] + 1) & 0xFFFFFFFF
            self.segment("s2c", b"", ts_ns + half, flags=SYN | ACK, options=mss_opt)
            self.nxt["s2c"] = (self.nxt["s2c"] + 1) & 0xFFFFFFFF
            self.segment("c2s", b"", ts_ns + rtt_ns, flags=ACK)

    @staticmethod
    def _other(direction: str) -> str:
        if direction == "c2s":
            return "s2c"
        if direction == "s2c":
            return "c2s"
        raise ValueError(f"direction must be 'c2s' or 's2c', not {direction!r}")

    def segment(
        self,
        direction: str,
        payload: bytes = b"",
        ts_ns: int = 0,
        *,
        seq: int | None = None,
        flags: int | None = None,
        ack: int | None = None,
        window: int | None = None,
        options: bytes = b"",
        orig_len: int | None = None,
    ) -> int:
        """Write one segment without changing the conversation state; returns its seq.

        Defaults: ``seq`` the side's next sequence number, ``ack`` everything
        the other side sent, ``flags`` ACK (plus PSH when there is payload).
        """
        other = self._other(direction)
        if seq is None:
            seq = self.nxt[direction]
        if ack is None:
            ack = self.nxt[other]
        if flags is None:
            flags = ACK | PSH if payload else ACK
        src, sport, dst, dport, smac, dmac, outgoing = self._ends[direction]
        tcp = build_tcp(src, dst, sport, dport, seq, ack, flags, payload,
                        window=self.window if window is None else window, options=options,
                        checksum=self._checksum)
        if self.version == 4:
            self._ident = (self._ident + 1) & 0xFFFF
            ip = build_ipv4(src, dst, tcp, ident=self._ident, options=self._ip_options)
        else:
            ip = build_ipv6(src, dst, tcp, ext=self._ipv6_ext)
        frame = link_frame(self._linktype, ip, vlans=self._vlans, src_mac=smac, dst_mac=dmac,
                           outgoing=outgoing, eth_pad=self._eth_pad)
        self.writer.write_packet(ts_ns, frame, orig_len, interface=self.interface)
        return seq & 0xFFFFFFFF

    def send(
        self,
        direction: str,
        data: bytes,
        ts_ns: int,
        *,
        segment_size: int | None = None,
        ts_step_ns: int = 0,
    ) -> int:
        """Send ``data`` in segments of at most ``segment_size`` (default MSS) bytes.

        Segment *i* is stamped ``ts_ns + i * ts_step_ns``.  Returns the
        sequence number of the first byte.
        """
        size = segment_size or self.mss
        if size <= 0:
            raise ValueError("segment_size must be positive")
        other = self._other(direction)
        first = self.nxt[direction]
        for i, pos in enumerate(range(0, len(data), size)):
            chunk = data[pos:pos + size]
            last = pos + size >= len(data)
            self.segment(direction, chunk, ts_ns + i * ts_step_ns,
                         flags=ACK | PSH if last else ACK, ack=self.nxt[other])
            self.nxt[direction] = (self.nxt[direction] + len(chunk)) & 0xFFFFFFFF
        return first

    def ack(self, direction: str, ts_ns: int) -> int:
        """A pure ACK of everything the other side sent."""
        return self.segment(direction, b"", ts_ns, flags=ACK)

    def skip(self, direction: str, nbytes: int) -> int:
        """Advance ``direction``'s sequence number unwritten (a lost segment); returns old seq."""
        self._other(direction)
        old = self.nxt[direction]
        self.nxt[direction] = (old + nbytes) & 0xFFFFFFFF
        return old

    def close(self, ts_ns: int, how: str = "fin", *, by: str = "c2s") -> None:
        """End the connection: FIN exchange (FIN, FIN, ACK) or a single RST from ``by``."""
        other = self._other(by)
        if how == "rst":
            self.segment(by, b"", ts_ns, flags=RST | ACK)
            return
        if how != "fin":
            raise ValueError(f"how must be 'fin' or 'rst', not {how!r}")
        half = self.rtt_ns // 2
        self.segment(by, b"", ts_ns, flags=FIN | ACK)
        self.nxt[by] = (self.nxt[by] + 1) & 0xFFFFFFFF
        self.segment(other, b"", ts_ns + half, flags=FIN | ACK)
        self.nxt[other] = (self.nxt[other] + 1) & 0xFFFFFFFF
        self.segment(by, b"", ts_ns + self.rtt_ns, flags=ACK)

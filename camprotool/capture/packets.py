"""Link, IP and TCP header parsing: from a ``RawPacket`` to a ``TcpSegment``.

Why not dpkt/scapy: they build one object per layer per packet, which is most
of their cost.  Here every header is read with one precompiled ``struct.Struct``
call, the payload stays a ``memoryview`` slice of the capture (no copy) and a
packet becomes exactly one ``TcpSegment`` tuple.

The payload is bounded by the IP length field, never by the frame length:
Ethernet pads short frames to 60 bytes and that padding must not become
stream data.  What the IP header promises but the snapshot length cut off is
reported in ``TcpSegment.missing`` so the stream layer can mark a gap instead
of silently gluing data together.  IP fragments are not reassembled: a later
fragment carries no TCP header and is reported as ``ip_fragment``.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from typing import NamedTuple, Protocol

from camprotool.capture.readers import RawPacket

__all__ = [
    "ACK",
    "CWR",
    "ECE",
    "FIN",
    "PSH",
    "RST",
    "SYN",
    "URG",
    "NotTcp",
    "TcpSegment",
    "decode_tcp",
    "format_endpoint",
    "iter_tcp_segments",
    "parse_tcp",
]

# TCP flag bits (as in the 9 low bits of the offset/flags word).
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80
NS = 0x100


class TcpSegment(NamedTuple):
    """One TCP segment; ``src_ip``/``dst_ip`` are packed (4 or 16 bytes)."""

    frame: int
    ts_ns: int
    src_ip: bytes
    src_port: int
    dst_ip: bytes
    dst_port: int
    seq: int
    ack: int
    flags: int
    window: int
    payload: memoryview | bytes
    missing: int  # payload bytes the IP header announces but the capture cut off


class NotTcp(NamedTuple):
    """Why a packet gave no TCP segment.

    ``problem`` is true for damage worth reporting (``malformed``,
    ``truncated_header``, ``ip_fragment``); false for packets that are simply
    something else (``not_ip``, ``not_tcp``, ``unsupported_linktype``).
    """

    kind: str
    detail: str
    problem: bool
    #: the segment of a first IP fragment, which is still used (``kind='ip_fragment'``)
    segment: TcpSegment | None = None


_new = tuple.__new__  # builds the NamedTuple without its Python-level __new__

_U16 = struct.Struct("!H")
_U32_NATIVE_LE = struct.Struct("<I")
_U32_BE = struct.Struct("!I")
# version/IHL, total length, flags/fragment offset, protocol, source, destination
_IPV4 = struct.Struct("!BxHxxHxBxx4s4s")
# payload length, next header, source, destination
_IPV6 = struct.Struct("!4xHBx16s16s")
# ports, seq, ack, data offset + flags, window
_TCP = struct.Struct("!HHIIHH")
# Fast path, one call: ethertype, then _IPV4 and _TCP of an option-less IPv4 header.
_ETH_IPV4_TCP = struct.Struct("!HBxHxxHxBxx4s4sHHIIHH")

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100})
_IPV6_EXT = frozenset({0, 43, 60})  # hop-by-hop, routing, destination options
_BSD_AF_INET6 = frozenset({24, 28, 30})
_RAW_LINKTYPES = frozenset({12, 14, 101})

_NOT_TCP_CACHE: dict[tuple[str, int], NotTcp] = {}


def _quiet(kind: str, what: str, value: int) -> NotTcp:
    """A (cached) reason for an ordinary non-TCP packet; cached as they repeat."""
    key = (what, value)
    r = _NOT_TCP_CACHE.get(key)
    if r is None:
        r = _NOT_TCP_CACHE[key] = NotTcp(kind, f"{what} {value:#x}", False)
    return r


def decode_tcp(raw: RawPacket) -> TcpSegment | NotTcp:
    """Decode one packet down to TCP; a ``NotTcp`` says why it is not a segment."""
    frame, ts_ns, linktype, data, orig_len, _cap_len = raw
    n = len(data)
    # -- link layer: find the network header offset and its IP version ----
    if linktype == 1:  # Ethernet, with any stack of 802.1Q / 802.1ad / QinQ tags
        off = 12
        if n < 14:
            return NotTcp("truncated_header", "Ethernet header cut short.", True)
        etype = _U16.unpack_from(data, 12)[0]
        while etype in _VLAN_TPIDS:
            off += 4
            if n < off + 2:
                return NotTcp("truncated_header", "VLAN tag cut short.", True)
            etype = _U16.unpack_from(data, off)[0]
        off += 2
        if etype == _ETH_IPV4:
            version = 4
        elif etype == _ETH_IPV6:
            version = 6
        else:
            return _quiet("not_ip", "ethertype", etype)
    elif linktype in _RAW_LINKTYPES or linktype == 228 or linktype == 229:
        off = 0
        if n < 1:
            return NotTcp("truncated_header", "empty raw IP packet.", True)
        version = data[0] >> 4
        if (linktype == 228 and version != 4) or (linktype == 229 and version != 6):
            return NotTcp("malformed", f"IP version {version} on link type {linktype}.", True)
    elif linktype == 113 or linktype == 276:  # Linux cooked capture v1 / v2
        if linktype == 113:
            off = 16
            etype = _U16.unpack_from(data, 14)[0] if n >= 16 else -1
        else:
            off = 20
            etype = _U16.unpack_from(data, 0)[0] if n >= 20 else -1
        if etype < 0:
            return NotTcp("truncated_header", "Linux cooked header cut short.", True)
        while etype in _VLAN_TPIDS:  # tags left in the packet by some drivers
            if n < off + 4:
                return NotTcp("truncated_header", "VLAN tag cut short.", True)
            etype = _U16.unpack_from(data, off + 2)[0]
            off += 4
        if etype == _ETH_IPV4:
            version = 4
        elif etype == _ETH_IPV6:
            version = 6
        else:
            return _quiet("not_ip", "protocol", etype)
    elif linktype == 0 or linktype == 108:  # BSD loopback: 4-byte address family
        if n < 4:
            return NotTcp("truncated_header", "loopback header cut short.", True)
        if linktype == 108:
            family = _U32_BE.unpack_from(data, 0)[0]
        else:  # host byte order of the capturing machine: small value wins
            family = _U32_NATIVE_LE.unpack_from(data, 0)[0]
            if family > 0xFFFF:
                family = _U32_BE.unpack_from(data, 0)[0]
        off = 4
        if family == 2:
            version = 4
        elif family in _BSD_AF_INET6:
            version = 6
        else:
            return _quiet("not_ip", "address family", family)
    else:
        return _quiet("unsupported_linktype", "link type", linktype)

    # -- network layer -------------------------------------------------------
    if version == 4:
        if n < off + 20:
            return NotTcp("truncated_header", "IPv4 header cut short.", True)
        ver_ihl, total, frag, proto, src, dst = _IPV4.unpack_from(data, off)
        if ver_ihl >> 4 != 4:
            return NotTcp("malformed", f"IP version {ver_ihl >> 4} in an IPv4 packet.", True)
        ihl = (ver_ihl & 0x0F) * 4
        if ihl < 20:
            return NotTcp("malformed", f"IPv4 header length {ihl} is below 20.", True)
        if total == 0:  # segmentation offload: length left to the NIC; trust the wire
            ip_end = off + max(orig_len - off, ihl)
        elif total < ihl:
            return NotTcp("malformed", f"IPv4 total length {total} < header length {ihl}.",
                          True)
        else:
            ip_end = off + total
        if proto != 6:
            return _quiet("not_tcp", "IP protocol", proto)
        if frag & 0x1FFF:
            return NotTcp("ip_fragment",
                          f"later IPv4 fragment (offset {(frag & 0x1FFF) * 8}) skipped: "
                          "IP reassembly is not done.", True)
        first_fragment = frag & 0x2000
        off += ihl
    else:
        if n < off + 40:
            return NotTcp("truncated_header", "IPv6 header cut short.", True)
        plen, proto, src, dst = _IPV6.unpack_from(data, off)
        if data[off] >> 4 != 6:
            return NotTcp("malformed", f"IP version {data[off] >> 4} in an IPv6 packet.", True)
        off += 40
        ip_end = off + plen if plen else max(orig_len, off)  # 0: jumbogram / offload
        first_fragment = 0
        while proto != 6:
            if proto in _IPV6_EXT or proto == 51:
                if n < off + 2:
                    return NotTcp("truncated_header", "IPv6 extension header cut short.", True)
                nxt = data[off]
                size = (data[off + 1] + 2) * 4 if proto == 51 else (data[off + 1] + 1) * 8
            elif proto == 44:
                if n < off + 8:
                    return NotTcp("truncated_header", "IPv6 fragment header cut short.", True)
                nxt = data[off]
                fo = _U16.unpack_from(data, off + 2)[0]
                if fo & 0xFFF8:
                    return NotTcp("ip_fragment",
                                  f"later IPv6 fragment (offset {fo & 0xFFF8}) skipped: "
                                  "IP reassembly is not done.", True)
                first_fragment |= fo & 1
                size = 8
            else:
                return _quiet("not_tcp", "IPv6 next header", proto)
            off += size
            proto = nxt
            if off > ip_end:
                return NotTcp("malformed", "IPv6 extension headers overrun the packet.", True)

    # -- TCP -------------------------------------------------------------
    if n < off + 20:
        if ip_end < off + 20:
            return NotTcp("malformed", "IP payload too short for a TCP header.", True)
        return NotTcp("truncated_header", "TCP header cut short by the capture.", True)
    sport, dport, seq, ack, offflags, window = _TCP.unpack_from(data, off)
    start = off + (offflags >> 12) * 4
    if start < off + 20:
        return NotTcp("malformed", f"TCP data offset {offflags >> 12} is below 5.", True)
    if start > ip_end:
        return NotTcp("malformed", "TCP header is longer than the IP packet.", True)
    if start > n:
        return NotTcp("truncated_header", "TCP options cut short by the capture.", True)
    if ip_end <= n:
        payload = data[start:ip_end]
        missing = 0
    else:
        payload = data[start:]
        missing = ip_end - n
    seg = _new(TcpSegment, (frame, ts_ns, src, sport, dst, dport, seq, ack,
                            offflags & 0x1FF, window, payload, missing))
    if first_fragment:
        # The header is here, the rest of the data is in fragments we do not
        # reassemble: hand the segment on, but say so.
        return NotTcp("ip_fragment",
                      "first fragment of a fragmented IP packet: only its own payload is "
                      "used, IP reassembly is not done.", True, seg)
    return seg


def parse_tcp(raw: RawPacket) -> TcpSegment | None:
    """The TCP segment in ``raw``, or ``None`` (``decode_tcp`` gives the reason).

    The first fragment of a fragmented IP packet gives its partial segment.
    """
    r = decode_tcp(raw)
    if isinstance(r, TcpSegment):
        return r
    return r.segment


class PacketSource(Protocol):
    """What :func:`iter_tcp_segments` reads: packets in capture order, and where the
    problems found in them go (a ``CaptureFile``, a ``CaptureSet``, a live stream's
    batch, the drill-down's tap)."""

    def __iter__(self) -> Iterator[RawPacket]: ...

    def add_problem(self, frame: int, kind: str, detail: str) -> None: ...


def iter_tcp_segments(capture_file: PacketSource) -> Iterator[TcpSegment]:
    """Yield every TCP segment of a capture in file order.

    Packets that are simply not TCP are skipped quietly; malformed or truncated
    headers and IP fragments are recorded on ``capture_file.problems``.
    """
    add_problem = capture_file.add_problem
    seg_type = TcpSegment
    eth_ipv4_tcp = _ETH_IPV4_TCP.unpack_from
    new = _new
    slow = decode_tcp
    for raw in capture_file:
        # Fast path: Ethernet (untagged) + IPv4 without options or fragments + TCP,
        # all headers read in one call; the rest goes through decode_tcp, the
        # reference implementation (a property test checks both agree).
        frame, ts_ns, linktype, data, _orig_len, cap_len = raw
        if linktype == 1 and cap_len >= 54:
            (etype, ver_ihl, total, frag, proto, src, dst,
             sport, dport, seq, ack, offflags, window) = eth_ipv4_tcp(data, 12)
            if (etype == 0x0800 and ver_ihl == 0x45 and proto == 6
                    and not frag & 0x3FFF and total >= 40):
                start = 34 + (offflags >> 12) * 4
                ip_end = 14 + total
                if 54 <= start <= ip_end and start <= cap_len:
                    if ip_end <= cap_len:
                        yield new(seg_type, (frame, ts_ns, src, sport, dst, dport, seq, ack,
                                             offflags & 0x1FF, window, data[start:ip_end], 0))
                    else:
                        yield new(seg_type, (frame, ts_ns, src, sport, dst, dport, seq, ack,
                                             offflags & 0x1FF, window, data[start:],
                                             ip_end - cap_len))
                    continue
        r = slow(raw)
        if not isinstance(r, NotTcp):
            yield r
        elif r.problem:
            add_problem(frame, r.kind, r.detail)
            if r.kind == "ip_fragment" and r.segment is not None:
                yield r.segment


def format_endpoint(ip: bytes, port: int) -> str:
    """``'a.b.c.d:port'`` or ``'[v6addr]:port'`` (compressed IPv6 form)."""
    if len(ip) == 4:
        return f"{ip[0]}.{ip[1]}.{ip[2]}.{ip[3]}:{port}"
    return f"[{ipaddress.IPv6Address(bytes(ip)).compressed}]:{port}"

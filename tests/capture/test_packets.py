"""Link/IP/TCP parsing: every link type, tags, options, extension headers, cuts."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camprotool.capture.packets import (
    ACK,
    FIN,
    PSH,
    RST,
    SYN,
    NotTcp,
    TcpSegment,
    decode_tcp,
    format_endpoint,
    iter_tcp_segments,
    parse_tcp,
)
from camprotool.capture.readers import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    SUPPORTED_LINKTYPES,
    RawPacket,
    open_capture,
)
from camprotool.capture.writer import (
    PcapngWriter,
    PcapWriter,
    build_ipv4,
    build_ipv6,
    build_tcp,
    fragment_body,
    link_frame,
)

T0 = 1_700_000_000_123_456_789
V4 = (("192.168.1.10", 50123), ("192.168.1.20", 9000))
V6 = (("2001:db8::10", 50123), ("2001:db8::20", 9000))
A4, B4 = bytes([192, 168, 1, 10]), bytes([192, 168, 1, 20])


def read(data: bytes):
    """(segments with bytes payloads, problem kinds) of a capture."""
    with open_capture(data) as f:
        segs = [s._replace(payload=bytes(s.payload)) for s in iter_tcp_segments(f)]
        return segs, [p.kind for p in f.problems]


def raw(data: bytes, linktype: int = LINKTYPE_ETHERNET, orig_len: int | None = None):
    n = len(data)
    return RawPacket(1, T0, linktype, memoryview(data), n if orig_len is None else orig_len, n)


def script(w, ends=V4, **kw) -> None:
    c = w.tcp(*ends, T0, isn_client=111, isn_server=222, **kw)
    c.send("c2s", b"request", T0 + 1)
    c.send("s2c", b"R", T0 + 2)  # a 1-byte payload: Ethernet pads this frame
    c.close(T0 + 3, how="rst")


EXPECTED = [
    (111, SYN, b""), (222, SYN | ACK, b""), (112, ACK, b""),
    (112, ACK | PSH, b"request"), (223, ACK | PSH, b"R"), (119, RST | ACK, b""),
]


def check(segs, ends=V4) -> None:
    assert [(s.seq, s.flags, s.payload) for s in segs] == EXPECTED
    assert [s.missing for s in segs] == [0] * 6
    assert format_endpoint(segs[0].src_ip, segs[0].src_port) == (
        f"{ends[0][0]}:{ends[0][1]}" if ":" not in ends[0][0] else f"[{ends[0][0]}]:50123"
    )
    assert segs[4].dst_port == 50123 and segs[4].ts_ns == T0 + 2


# -- link types ---------------------------------------------------------------------
LINKS = [
    (LINKTYPE_ETHERNET, {}),
    (LINKTYPE_ETHERNET, {"vlans": (42,)}),
    (LINKTYPE_ETHERNET, {"vlans": ((0x88A8, 7), (0x8100, 42))}),  # 802.1ad QinQ
    (LINKTYPE_ETHERNET, {"vlans": ((0x9100, 7), 42)}),  # old-style QinQ
    (LINKTYPE_LINUX_SLL, {}),
    (LINKTYPE_LINUX_SLL2, {}),
    (LINKTYPE_NULL, {}),
    (LINKTYPE_LOOP, {}),
    (101, {}), (12, {}), (14, {}),
]


@pytest.mark.parametrize("ends", [V4, V6], ids=["v4", "v6"])
@pytest.mark.parametrize(("linktype", "kw"), LINKS, ids=lambda x: str(x) if x else "")
def test_link_types(linktype, kw, ends):
    w = PcapngWriter(linktype=linktype)
    script(w, ends, **kw)
    segs, problems = read(w.getvalue())
    check(segs, ends)
    assert problems == []


@pytest.mark.parametrize(("linktype", "ends"), [(228, V4), (229, V6)])
def test_ip_version_specific_link_types(linktype, ends):
    w = PcapWriter(linktype=linktype)
    script(w, ends)
    segs, problems = read(w.getvalue())
    check(segs, ends)
    assert problems == []
    other = build_ipv6(bytes(16), bytes(16), b"") if linktype == 228 else build_ipv4(A4, B4, b"")
    r = decode_tcp(raw(other, linktype))
    assert isinstance(r, NotTcp) and r.kind == "malformed"


@pytest.mark.parametrize("family", [24, 28, 30])
@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_bsd_null_families_in_either_host_order(family, byte_order):
    ip = build_ipv6(bytes(15) + b"\1", bytes(15) + b"\2",
                    build_tcp(bytes(16), bytes(16), 1, 2, 3, 4, ACK, b"six"))
    seg = parse_tcp(raw(struct.pack(byte_order + "I", family) + ip, LINKTYPE_NULL))
    assert seg is not None and bytes(seg.payload) == b"six"
    ip4 = build_ipv4(A4, B4, build_tcp(A4, B4, 1, 2, 3, 4, ACK, b"four"))
    frame = link_frame(LINKTYPE_NULL, ip4, null_byte_order=byte_order)
    assert bytes(parse_tcp(raw(frame, LINKTYPE_NULL)).payload) == b"four"


def test_other_ethertypes_and_protocols_are_quietly_not_tcp():
    arp = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + b"\0" * 28
    r = decode_tcp(raw(arp))
    assert r == NotTcp("not_ip", "ethertype 0x806", False)
    udp = link_frame(LINKTYPE_ETHERNET, build_ipv4(A4, B4, b"\0" * 8 + b"dns", proto=17))
    r = decode_tcp(raw(udp))
    assert (r.kind, r.problem) == ("not_tcp", False) and parse_tcp(raw(udp)) is None
    icmp6 = link_frame(LINKTYPE_ETHERNET, build_ipv6(bytes(16), bytes(16), b"\0" * 8,
                                                     next_header=58))
    assert decode_tcp(raw(icmp6)).kind == "not_tcp"
    assert decode_tcp(raw(b"whatever", 147)).kind == "unsupported_linktype"
    w = PcapngWriter()
    w.write_packet(T0, arp)
    w.write_packet(T0, udp)
    assert read(w.getvalue()) == ([], [])


# -- IP details ---------------------------------------------------------------------
def test_ipv4_options_are_skipped_with_ihl():
    w = PcapngWriter()
    script(w, ip_options=b"\x94\x04\0\0" + b"\x01" * 8)  # router alert + NOPs
    segs, problems = read(w.getvalue())
    check(segs)
    assert problems == []


def test_ipv6_extension_headers_are_skipped():
    w = PcapngWriter()
    ext = [(0, b"\x05\x02\0\0"), (43, b"\0\0" + bytes(4) + bytes(16)), (60, b"\x01\x04" + bytes(4)),
           (44, fragment_body(0, more=False)), (51, bytes(10))]
    script(w, V6, ipv6_ext=ext)
    segs, problems = read(w.getvalue())
    check(segs, V6)
    assert problems == []


def test_ethernet_padding_never_leaks_into_payload():
    w = PcapngWriter()
    script(w)
    with open_capture(w.getvalue()) as f:
        lens = [p.cap_len for p in f]
    assert lens[2] == lens[4] == 60  # the 54-byte ACK and the 55-byte frame were padded
    segs, _ = read(w.getvalue())
    assert segs[4].payload == b"R" and segs[2].payload == b""


def test_snaplen_cut_reports_missing_payload():
    w = PcapngWriter(snaplen=14 + 20 + 20 + 10)
    c = w.tcp(*V4, T0, handshake=False)
    c.send("c2s", b"0123456789abcdefghij", T0)
    c.send("s2c", b"short", T0)
    segs, problems = read(w.getvalue())
    assert [(s.payload, s.missing) for s in segs] == [(b"0123456789", 10), (b"short", 0)]
    assert problems == ["snaplen"]
    w = PcapngWriter(snaplen=14 + 20 + 10)  # cuts the TCP header itself
    w.tcp(*V4, T0, handshake=False).send("c2s", b"xyz", T0)
    segs, problems = read(w.getvalue())
    assert segs == [] and problems == ["snaplen", "truncated_header"]


def test_ipv4_fragments_are_reported_not_parsed():
    tcp = build_tcp(A4, B4, 1, 2, 100, 0, ACK, b"A" * 40)
    first = build_ipv4(A4, B4, tcp[:32], flags_frag=0x2000)  # more fragments
    later = build_ipv4(A4, B4, tcp[32:], flags_frag=4)  # offset 32 bytes
    w = PcapngWriter()
    w.write_ip(T0, first)
    w.write_ip(T0, later)
    segs, problems = read(w.getvalue())
    assert [(s.seq, s.payload) for s in segs] == [(100, b"A" * 12)]
    assert problems == ["ip_fragment", "ip_fragment"]
    assert parse_tcp(raw(link_frame(1, later))) is None
    assert decode_tcp(raw(link_frame(1, later))).kind == "ip_fragment"


def test_ipv6_later_fragment_is_skipped():
    a, b = bytes(15) + b"\1", bytes(15) + b"\2"
    later = build_ipv6(a, b, b"\0" * 24, ext=[(44, fragment_body(1232, more=False))])
    r = decode_tcp(raw(link_frame(1, later)))
    assert r.kind == "ip_fragment" and r.problem and "1232" in r.detail


def test_ipv4_total_length_zero_is_segmentation_offload():
    tcp = build_tcp(A4, B4, 1, 2, 3, 4, ACK, b"offloaded")
    frame = link_frame(1, build_ipv4(A4, B4, tcp, total_length=0))
    assert bytes(parse_tcp(raw(frame)).payload) == b"offloaded"


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (link_frame(1, build_ipv4(A4, B4, b"\0" * 20, total_length=12)), "malformed"),
        (link_frame(1, build_ipv4(A4, B4, build_tcp(A4, B4, 1, 2, 3, 4, ACK))[:30],
                    eth_pad=False), "truncated_header"),
        (link_frame(1, build_ipv4(A4, B4, b"\0" * 12 + b"\x30" + b"\0" * 7)), "malformed"),
        (link_frame(1, build_ipv4(A4, B4, b"\0" * 12 + b"\xf0" + b"\0" * 7)), "malformed"),
        (link_frame(1, build_ipv4(A4, B4, b"\0" * 10)), "malformed"),
        (b"\0" * 12 + b"\x81\x00\x00", "truncated_header"),
        (b"\0" * 10, "truncated_header"),
        (b"\0" * 12 + b"\x08\x00" + b"\x65" + b"\0" * 30, "malformed"),
    ],
    ids=["total<ihl", "ip-cut", "doff<5", "doff>ip", "no-room", "vlan-cut", "eth-cut", "ver"],
)
def test_malformed_headers_are_problems(frame, kind):
    r = decode_tcp(raw(frame))
    assert isinstance(r, NotTcp) and r.kind == kind and r.problem
    w = PcapngWriter()
    w.write_packet(T0, frame)
    assert read(w.getvalue())[1] == [kind]


def test_flag_constants_and_format_endpoint():
    assert (FIN, SYN, RST, PSH, ACK) == (1, 2, 4, 8, 16)
    assert format_endpoint(bytes([10, 0, 0, 1]), 80) == "10.0.0.1:80"
    v6 = bytes.fromhex("20010db8000000000000000000000001")
    assert format_endpoint(v6, 9000) == "[2001:db8::1]:9000"
    assert format_endpoint(memoryview(v6), 1) == "[2001:db8::1]:1"


def test_payload_is_a_view_not_a_copy():
    w = PcapngWriter()
    script(w)
    with open_capture(w.getvalue()) as f:
        segs = list(iter_tcp_segments(f))
        assert all(isinstance(s.payload, memoryview) for s in segs)
        assert isinstance(segs[0], TcpSegment)


# -- the fast path must agree with the reference decoder ---------------------------
def both_ways(data: bytes) -> tuple[list, list]:
    with open_capture(data) as f:
        fast = [s._replace(payload=bytes(s.payload)) for s in iter_tcp_segments(f)]
        fast_problems = [(p.frame, p.kind) for p in f.problems if p.kind != "snaplen"]
        slow, slow_problems = [], []
        for p in f:
            r = decode_tcp(p)
            seg = r if isinstance(r, TcpSegment) else r.segment
            if seg is not None:
                slow.append(seg._replace(payload=bytes(seg.payload)))
            if isinstance(r, NotTcp) and r.problem:
                slow_problems.append((p.frame, r.kind))
    return (fast, fast_problems), (slow, slow_problems)


@settings(max_examples=300)
@given(st.data())
def test_fast_path_matches_decode_tcp_on_mutated_frames(draw):
    w = PcapngWriter()
    c = w.tcp(*V4, T0, handshake=False)
    c.send("c2s", b"payload!", T0)
    c.segment("s2c", b"", T0)
    frame = bytearray(w.getvalue()[48 + 28:][: 14 + 40 + 8])  # the first frame
    for _ in range(draw.draw(st.integers(1, 4))):
        pos = draw.draw(st.integers(12, len(frame) - 1))
        frame[pos] = draw.draw(st.integers(0, 255))
    cut = draw.draw(st.integers(0, len(frame)))
    w2 = PcapngWriter()
    w2.write_packet(T0, bytes(frame[:cut]) if draw.draw(st.booleans()) else bytes(frame),
                    orig_len=len(frame))
    fast, slow = both_ways(w2.getvalue())
    assert fast == slow


@settings(max_examples=500)
@given(st.sampled_from(sorted(SUPPORTED_LINKTYPES)), st.binary(max_size=120),
       st.integers(0, 2000))
def test_random_bytes_never_crash_the_decoder(linktype, data, orig_len):
    r = decode_tcp(RawPacket(1, 0, linktype, memoryview(data), orig_len, len(data)))
    assert isinstance(r, TcpSegment | NotTcp)
    if isinstance(r, TcpSegment):
        assert len(r.payload) <= len(data) and r.missing >= 0


# -- tshark cross-check -------------------------------------------------------------
TSHARK = shutil.which("tshark")


@pytest.mark.tshark
@pytest.mark.skipif(TSHARK is None, reason="tshark not installed (make sysdeps)")
def test_tshark_agrees_on_payload_bounds(tmp_path):
    path = tmp_path / "odd.pcapng"
    with PcapngWriter(path) as w:
        short = w.add_interface(LINKTYPE_ETHERNET, snaplen=90)
        script(w, ip_options=b"\x94\x04\0\0")
        script(w, V6, vlans=((0x88A8, 1), 2), ipv6_ext=[(0, b""), (60, b"")])
        c = w.tcp(*V4, T0, handshake=False, interface=short)
        c.send("c2s", bytes(range(200)), T0 + 9)
    out = subprocess.run(
        [TSHARK, "-n", "-r", str(path), "-T", "fields", "-e", "tcp.seq_raw", "-e", "tcp.len",
         "-e", "tcp.payload"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    theirs = [tuple(line.split("\t")) for line in out.splitlines()]
    segs, _ = read(path.read_bytes())
    ours = [(str(s.seq), str(len(s.payload) + s.missing), s.payload.hex()) for s in segs]
    assert ours == theirs

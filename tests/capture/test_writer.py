"""The capture writer: scripted TCP must come out as exactly the packets intended.

Every other capture test builds its input with this writer, so it is checked
twice: against our own reader and, when tshark is installed, against tshark.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from decimal import Decimal

import pytest

from camprotool.capture.packets import ACK, FIN, PSH, RST, SYN, TcpSegment, iter_tcp_segments
from camprotool.capture.readers import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    open_capture,
)
from camprotool.capture.writer import (
    PcapngWriter,
    PcapWriter,
    build_ipv4,
    build_tcp,
    internet_checksum,
)

T0 = 1_700_000_000_123_456_789


def segments(data: bytes) -> list[TcpSegment]:
    with open_capture(data) as f:
        segs = [s._replace(payload=bytes(s.payload)) for s in iter_tcp_segments(f)]
        assert f.problems == []
    return segs


@pytest.fixture(params=["pcapng", "pcap"])
def writer_cls(request):
    return PcapngWriter if request.param == "pcapng" else PcapWriter


def test_handshake_data_and_fin(writer_cls):
    w = writer_cls()
    c = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 9000), T0, isn_client=100, isn_server=7000)
    assert c.send("c2s", b"hello", T0 + 10) == 101
    assert c.send("s2c", b"x" * 3000, T0 + 20) == 7001
    c.close(T0 + 30)
    segs = segments(w.getvalue())
    got = [(s.seq, s.ack, s.flags, len(s.payload)) for s in segs]
    assert got == [
        (100, 0, SYN, 0),
        (7000, 101, SYN | ACK, 0),
        (101, 7001, ACK, 0),
        (101, 7001, ACK | PSH, 5),
        (7001, 106, ACK, 1460),
        (8461, 106, ACK, 1460),
        (9921, 106, ACK | PSH, 80),
        (106, 10001, FIN | ACK, 0),
        (10001, 107, FIN | ACK, 0),
        (107, 10002, ACK, 0),
    ]
    assert segs[0].ts_ns == T0
    assert segs[3].payload == b"hello"
    assert b"".join(s.payload for s in segs[4:7]) == b"x" * 3000
    assert (segs[0].src_port, segs[0].dst_port) == (50000, 9000)
    assert (segs[1].src_ip, segs[1].dst_ip) == (bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1]))


def test_no_handshake_starts_at_isn_and_segment_size(writer_cls):
    w = writer_cls()
    c = w.tcp(handshake=False, isn_client=10, isn_server=20)
    c.send("c2s", b"abcdefg", T0, segment_size=3, ts_step_ns=5)
    segs = segments(w.getvalue())
    assert [(s.seq, bytes(s.payload), s.ts_ns) for s in segs] == [
        (10, b"abc", T0), (13, b"def", T0 + 5), (16, b"g", T0 + 10)
    ]
    assert all(s.ack == 20 for s in segs)


def test_segment_does_not_advance_and_skip_does(writer_cls):
    w = writer_cls()
    c = w.tcp(handshake=False, isn_client=1000)
    assert c.segment("c2s", b"AAAA", T0) == 1000
    assert c.segment("c2s", b"BBBB", T0 + 1) == 1000  # a conflicting retransmission
    assert c.skip("c2s", 50) == 1000
    assert c.send("c2s", b"CC", T0 + 2) == 1050
    c.segment("c2s", b"zz", T0 + 3, seq=5, ack=77, flags=PSH)
    segs = segments(w.getvalue())
    assert [(s.seq, bytes(s.payload)) for s in segs] == [
        (1000, b"AAAA"), (1000, b"BBBB"), (1050, b"CC"), (5, b"zz")
    ]
    assert (segs[-1].ack, segs[-1].flags) == (77, PSH)


def test_seq_wraps_around(writer_cls):
    w = writer_cls()
    c = w.tcp(handshake=True, isn_client=2**32 - 3)
    c.send("c2s", b"0123456789", T0, segment_size=4)
    segs = segments(w.getvalue())
    assert [s.seq for s in segs[3:]] == [2**32 - 2, 2, 6]
    assert c.nxt["c2s"] == 8


def test_rst_close(writer_cls):
    w = writer_cls()
    c = w.tcp(handshake=False)
    c.close(T0, how="rst", by="s2c")
    (seg,) = segments(w.getvalue())
    assert seg.flags == RST | ACK
    assert seg.src_port == 9000
    with pytest.raises(ValueError, match="how"):
        c.close(T0, how="bye")
    with pytest.raises(ValueError, match="direction"):
        c.send("up", b"x", T0)


def test_ipv6_conversation(writer_cls):
    w = writer_cls()
    c = w.tcp(("2001:db8::1", 40000), ("2001:db8::2", 9000), T0)
    c.send("s2c", b"v6 data", T0 + 1)
    segs = segments(w.getvalue())
    assert len(segs[0].src_ip) == 16
    assert bytes(segs[-1].payload) == b"v6 data"
    with pytest.raises(ValueError, match="both"):
        w.tcp(("10.0.0.1", 1), ("::1", 2))


def test_checksums_are_correct():
    tcp = build_tcp(b"\x0a\0\0\x01", b"\x0a\0\0\x02", 1, 2, 3, 4, ACK | PSH, b"odd")
    ip = build_ipv4(b"\x0a\0\0\x01", b"\x0a\0\0\x02", tcp, options=b"\x94\x04\0\0")
    assert internet_checksum(ip[:24]) == 0  # header incl. options and checksum sums to 0
    pseudo = ip[12:20] + b"\0\x06" + len(tcp).to_bytes(2, "big")
    assert internet_checksum(pseudo + tcp) == 0


def test_in_memory_file_and_fileobj_outputs_are_identical(tmp_path):
    def script(w):
        with w:
            c = w.tcp(handshake=True)
            c.send("c2s", b"same bytes", T0 + 5)
        return w

    mem = script(PcapngWriter()).getvalue()
    path = tmp_path / "x.pcapng"
    script(PcapngWriter(path))
    buf = io.BytesIO()
    script(PcapngWriter(buf))
    assert path.read_bytes() == mem == buf.getvalue()
    with pytest.raises(TypeError):
        PcapngWriter(tmp_path / "y.pcapng").getvalue()


def test_timestamps_exact_in_ns_and_truncated_in_us():
    for w, expect in ((PcapWriter(nanosecond=True), T0), (PcapWriter(nanosecond=False),
                      T0 // 1000 * 1000), (PcapngWriter(tsresol_ns=True), T0),
                      (PcapngWriter(tsresol_ns=False), T0 // 1000 * 1000)):
        w.write_packet(T0, b"\0" * 20)
        with open_capture(w.getvalue()) as f:
            assert [p.ts_ns for p in f] == [expect]


def test_snaplen_cut_and_orig_len():
    w = PcapngWriter(snaplen=64)
    w.write_packet(T0, b"\1" * 100)
    w.write_packet(T0, b"\2" * 30, orig_len=90)
    with open_capture(w.getvalue()) as f:
        assert [(p.cap_len, p.orig_len) for p in f] == [(64, 100), (30, 90)]


def test_classic_pcap_has_one_interface():
    w = PcapWriter(linktype=LINKTYPE_RAW)
    assert w.add_interface(LINKTYPE_RAW) == 0
    with pytest.raises(ValueError):
        w.add_interface(LINKTYPE_ETHERNET)
    with pytest.raises(ValueError):
        w.write_packet(T0, b"x", interface=1)


# -- tshark cross-check -------------------------------------------------------
TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed (make sysdeps)")


def tshark_fields(path) -> list[tuple[int, int, int]]:
    """(ts_ns, tcp.seq_raw, tcp.len) of every TCP packet, as tshark sees it."""
    out = subprocess.run(
        [TSHARK, "-n", "-r", str(path), "-Y", "tcp", "-T", "fields", "-e", "frame.time_epoch",
         "-e", "tcp.seq_raw", "-e", "tcp.len"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    rows = []
    for line in out.splitlines():
        ts, seq, n = line.split("\t")
        rows.append((int(Decimal(ts) * 1_000_000_000), int(seq), int(n)))
    return rows


def ours(path) -> list[tuple[int, int, int]]:
    with open_capture(path) as f:
        return [(s.ts_ns, s.seq, len(s.payload) + s.missing) for s in iter_tcp_segments(f)]


def busy_script(w, **tcp):
    c = w.tcp(("10.1.2.3", 40001), ("10.9.8.7", 9000), T0, isn_client=2**32 - 5, **tcp)
    c.send("c2s", b"Q" * 2000, T0 + 1_000, segment_size=700)
    c.skip("s2c", 100)
    c.send("s2c", b"R" * 10, T0 + 2_001)
    c.segment("c2s", b"Q" * 700, T0 + 3_003, seq=(2**32 - 4))
    c.close(T0 + 9_999_999_999)


@pytest.mark.tshark
@needs_tshark
@pytest.mark.parametrize("fmt", ["pcapng", "pcapng-us", "pcap", "pcap-us", "pcap-be"])
def test_tshark_agrees(tmp_path, fmt):
    path = tmp_path / "x.cap"
    if fmt.startswith("pcapng"):
        w = PcapngWriter(path, tsresol_ns=fmt == "pcapng")
    else:
        bo = ">" if fmt == "pcap-be" else "<"
        w = PcapWriter(path, nanosecond=fmt == "pcap", byte_order=bo)
    with w:
        busy_script(w)
    theirs = tshark_fields(path)
    assert len(theirs) == 11
    assert ours(path) == theirs


@pytest.mark.tshark
@needs_tshark
def test_tshark_agrees_on_mixed_interfaces_and_link_types(tmp_path):
    path = tmp_path / "mixed.pcapng"
    with PcapngWriter(path, LINKTYPE_ETHERNET) as w:
        w.add_interface(LINKTYPE_LINUX_SLL, tsresol=6)
        w.add_interface(LINKTYPE_NULL, tsresol=0x80 | 30)
        w.add_interface(LINKTYPE_LINUX_SLL2, tsresol=9, snaplen=80)
        w.add_interface(LINKTYPE_LOOP, tsresol=9)
        w.add_interface(LINKTYPE_RAW, tsresol=3)
        for i in range(6):
            busy_script(w, interface=i, vlans=(100, 200) if i == 0 else ())
        c = w.tcp(("fe80::1", 1), ("fe80::2", 2), T0, interface=0,
                  ipv6_ext=[(0, b"\x01\x02\0\0"), (60, b"")])
        c.send("c2s", b"ext", T0 + 7)
    assert ours(path) == tshark_fields(path)

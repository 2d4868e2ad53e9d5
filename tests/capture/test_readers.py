"""pcap/pcapng readers: formats, byte orders, timestamps, damage reported as data."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camprotool.capture.readers import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_RAW,
    CaptureFile,
    CaptureFormatError,
    RawPacket,
    open_capture,
)
from camprotool.capture.writer import PcapngWriter, PcapWriter

T0 = 1_700_000_000_123_456_789


def packets(source, **kw) -> tuple[list[tuple], CaptureFile]:
    with open_capture(source, **kw) as f:
        got = [(p.frame, p.ts_ns, p.linktype, bytes(p.data), p.orig_len, p.cap_len) for p in f]
    return got, f


def kinds(f: CaptureFile) -> list[str]:
    return [p.kind for p in f.problems]


# -- opening --------------------------------------------------------------------
def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.pcap"
    with pytest.raises(FileNotFoundError, match=r"nope\.pcap"):
        open_capture(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pcapng"
    path.write_bytes(b"")
    with pytest.raises(CaptureFormatError, match=r"empty\.pcapng.*empty"):
        open_capture(path)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"hello, I am a text file\n", "not a pcap or pcapng"),
        (b"\xd4\xc3\xb2", "too short"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "pcap file header cut short"),
        (b"\n\r\r\n\x1c\0\0\0", "pcapng section header cut short"),
        (b"\n\r\r\n\x1c\0\0\0\x11\x22\x33\x44", "byte-order magic"),
        (b"\xd4\xc3\xb2\xa1" + b"\x09\x00" + b"\0" * 18, "unsupported pcap version 9"),
        (b"\x34\xcd\xb2\xa1" + b"\0" * 20, "Kuznetzov"),
    ],
)
def test_not_a_capture(tmp_path, content, words):
    path = tmp_path / "bad.cap"
    path.write_bytes(content)
    with pytest.raises(CaptureFormatError, match=words) as exc:
        open_capture(path)
    assert "bad.cap" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(CaptureFormatError, match="<memory>"):
        open_capture(content)


def test_directory_is_not_a_capture(tmp_path):
    with pytest.raises(CaptureFormatError, match="directory"):
        open_capture(tmp_path)


# -- classic pcap ---------------------------------------------------------------
@pytest.mark.parametrize("byte_order", ["<", ">"])
@pytest.mark.parametrize("nanosecond", [True, False])
def test_pcap_magics_and_byte_orders(tmp_path, byte_order, nanosecond):
    path = tmp_path / "x.pcap"
    with PcapWriter(path, LINKTYPE_RAW, nanosecond=nanosecond, byte_order=byte_order) as w:
        w.write_packet(T0, b"\x45" + b"\1" * 39)
        w.write_packet(T0 + 1_999, b"\x45" + b"\2" * 59)
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    assert path.read_bytes()[:4] == struct.pack(byte_order + "I", magic)
    got, f = packets(path)
    assert f.format == "pcap" and f.size == path.stat().st_size
    unit = 1 if nanosecond else 1000
    assert got == [
        (1, T0 // unit * unit, LINKTYPE_RAW, b"\x45" + b"\1" * 39, 40, 40),
        (2, (T0 + 1_999) // unit * unit, LINKTYPE_RAW, b"\x45" + b"\2" * 59, 60, 60),
    ]
    assert f.problems == [] and f.frames == 2


def test_nanosecond_timestamp_survives_exactly():
    for w in (PcapWriter(), PcapngWriter()):
        w.write_packet(T0, b"\0" * 14)
        got, _ = packets(w.getvalue())
        assert got[0][1] == 1_700_000_000_123_456_789
        assert isinstance(got[0][1], int)


def test_packet_data_is_a_view_into_the_map(tmp_path):
    path = tmp_path / "x.pcap"
    with PcapWriter(path) as w:
        w.write_packet(T0, b"abcdefghijklmn")
    f = open_capture(path)
    (p,) = list(f)
    assert isinstance(p, RawPacket) and isinstance(p.data, memoryview)
    assert p.data.obj is not None and not isinstance(p.data.obj, bytes)  # the mmap
    f.close()  # a packet still referenced must not make close() fail
    assert bytes(p.data) == b"abcdefghijklmn"
    with pytest.raises(ValueError, match="closed"):
        list(f)


def test_snaplen_cut_packets_are_yielded_and_reported():
    w = PcapWriter(snaplen=20)
    w.write_packet(T0, b"\7" * 50)
    w.write_packet(T0, b"\7" * 10)
    got, f = packets(w.getvalue())
    assert [(g[4], g[5]) for g in got] == [(50, 20), (10, 10)]
    assert kinds(f) == ["snaplen"] and f.problems[0].frame == 1
    assert "20 of 50" in f.problems[0].detail


def test_truncated_pcap_record():
    w = PcapWriter()
    w.write_packet(T0, b"\1" * 30)
    w.write_packet(T0, b"\2" * 30)
    data = w.getvalue()[:-5]
    got, f = packets(data)
    assert [g[0] for g in got] == [1]
    assert kinds(f) == ["truncated_file"] and f.problems[0].frame == 2
    got, f = packets(data[: 24 + 46 + 7])  # inside the second record header
    assert kinds(f) == ["truncated_file"] and len(got) == 1


def test_absurd_record_length_is_a_bad_block():
    data = PcapWriter().getvalue() + struct.pack("<IIII", 1, 0, 0xFFFFFFF0, 100) + b"x" * 20
    got, f = packets(data)
    assert got == [] and kinds(f) == ["bad_block"]


def test_unsupported_link_type_is_skipped_and_counted():
    w = PcapWriter(linktype=105)  # 802.11
    for _ in range(3):
        w.write_packet(T0, b"\0" * 24)
    got, f = packets(w.getvalue())
    assert got == [] and f.skipped == {105: 3} and f.frames == 3
    assert kinds(f) == ["unsupported_linktype"] and "IEEE802_11" in f.problems[0].detail
    assert f.counts["unsupported_linktype"] == 3
    got, f = packets(w.getvalue(), linktypes=None)
    assert len(got) == 3 and f.problems == []


# -- pcapng -----------------------------------------------------------------------
def test_pcapng_interfaces_with_different_link_types_and_resolutions():
    w = PcapngWriter(linktype=LINKTYPE_ETHERNET, tsresol_ns=True)
    us = w.add_interface(LINKTYPE_RAW, tsresol=6)
    pow2 = w.add_interface(LINKTYPE_LINUX_SLL, tsresol=0x80 | 20)  # 2**-20 s
    ms = w.add_interface(LINKTYPE_RAW, tsresol=3, tsoffset=1_600_000_000)
    w.write_packet(T0, b"e" * 14)
    w.write_packet(T0, b"r" * 20, interface=us)
    w.write_packet(T0, b"s" * 16, interface=pow2)
    w.write_packet(T0, b"m" * 20, interface=ms)
    w.write_packet(T0 + 1, b"e" * 14, interface=0)
    got, f = packets(w.getvalue())
    assert f.format == "pcapng" and f.problems == []
    units = (T0 << 20) // 10**9
    assert [(g[0], g[1], g[2]) for g in got] == [
        (1, T0, LINKTYPE_ETHERNET),
        (2, T0 // 1000 * 1000, LINKTYPE_RAW),
        (3, units * 10**9 >> 20, LINKTYPE_LINUX_SLL),
        (4, T0 // 10**6 * 10**6, LINKTYPE_RAW),
        (5, T0 + 1, LINKTYPE_ETHERNET),
    ]
    assert [g[3] for g in got][:4] == [b"e" * 14, b"r" * 20, b"s" * 16, b"m" * 20]


def test_big_endian_section_and_several_sections():
    w = PcapngWriter(linktype=LINKTYPE_RAW, byte_order=">")
    w.write_packet(T0, b"\x45big")
    w.new_section("<")
    w.add_interface(LINKTYPE_ETHERNET, tsresol=6)
    w.write_packet(T0 + 5_000, b"little endian!")
    w.new_section(">")
    w.add_interface(LINKTYPE_LINUX_SLL, tsresol=9)
    w.write_packet(T0 + 7, b"\0" * 16)
    data = w.getvalue()
    assert data[8:12] == b"\x1a\x2b\x3c\x4d"
    got, f = packets(data)
    assert [(g[0], g[1], g[2], g[3]) for g in got] == [
        (1, T0, LINKTYPE_RAW, b"\x45big"),
        (2, (T0 + 5_000) // 1000 * 1000, LINKTYPE_ETHERNET, b"little endian!"),
        (3, T0 + 7, LINKTYPE_LINUX_SLL, b"\0" * 16),
    ]
    assert f.problems == []


def test_simple_packet_blocks_use_previous_timestamp_and_idb_snaplen():
    w = PcapngWriter(linktype=LINKTYPE_RAW)
    w.write_simple_packet(b"\x45first")  # no earlier packet: timestamp 0
    w.write_packet(T0, b"\x45timed")
    w.write_simple_packet(b"\x45simple!")
    got, f = packets(w.getvalue())
    assert [(g[1], g[3], g[4]) for g in got] == [
        (0, b"\x45first", 6), (T0, b"\x45timed", 6), (T0, b"\x45simple!", 8)
    ]
    # snaplen of interface 0 bounds what a simple packet block holds
    w = PcapngWriter(linktype=LINKTYPE_RAW, snaplen=8)
    w.write_simple_packet(b"\x45" * 30)
    got, f = packets(w.getvalue())
    assert [(g[4], g[5]) for g in got] == [(30, 8)]
    assert kinds(f) == ["snaplen"]


def test_obsolete_packet_block():
    w = PcapngWriter(linktype=LINKTYPE_ETHERNET)
    raw = w.add_interface(LINKTYPE_RAW, tsresol=6)
    w.write_obsolete_packet(T0, b"\x45old style", interface=raw, drops=3)
    w.write_simple_packet(b"\0" * 14)
    got, f = packets(w.getvalue())
    assert [(g[0], g[1], g[2], g[3]) for g in got] == [
        (1, T0 // 1000 * 1000, LINKTYPE_RAW, b"\x45old style"),
        (2, T0 // 1000 * 1000, LINKTYPE_ETHERNET, b"\0" * 14),
    ]
    assert f.problems == []


def test_unknown_and_other_blocks_are_skipped():
    w = PcapngWriter(linktype=LINKTYPE_RAW)
    w.write_block(0x0BADBEEF, b"who knows")
    w.write_block(4, b"\0\0\0\0")  # name resolution block (empty)
    w.write_packet(T0, b"\x45after")
    w.write_block(5, b"\0" * 12)  # interface statistics
    got, f = packets(w.getvalue())
    assert [g[3] for g in got] == [b"\x45after"] and f.problems == []


def test_pcapng_unsupported_interface_skipped_frames_still_counted():
    w = PcapngWriter(linktype=147)  # a user link type
    w.add_interface(LINKTYPE_RAW)
    w.write_packet(T0, b"user", interface=0)
    w.write_packet(T0, b"\x45ip", interface=1)
    w.write_packet(T0, b"user", interface=0)
    got, f = packets(w.getvalue())
    assert [(g[0], g[3]) for g in got] == [(2, b"\x45ip")]
    assert f.skipped == {147: 2} and kinds(f) == ["unsupported_linktype"]


def test_pcapng_damage():
    w = PcapngWriter(linktype=LINKTYPE_RAW)
    w.write_packet(T0, b"\x45" * 20)
    good = w.getvalue()
    bad_iface = good + struct.pack("<IIIIIII", 6, 32, 7, 0, 0, 0, 0) + struct.pack("<I", 32)
    got, f = packets(bad_iface)
    assert len(got) == 1 and kinds(f) == ["bad_block"] and f.problems[0].frame == 2
    bad_len = good + struct.pack("<II", 6, 30) + b"\0" * 30
    got, f = packets(bad_len)
    assert len(got) == 1 and kinds(f) == ["bad_block"]
    bad_trailer = good[:-4] + struct.pack("<I", 999)
    got, f = packets(bad_trailer)
    assert got == [] and kinds(f) == ["bad_block"]
    caplen_lie = good + struct.pack("<IIIIIII", 6, 32, 0, 0, 0, 99, 99) + struct.pack("<I", 32)
    got, f = packets(caplen_lie)
    assert len(got) == 1 and kinds(f) == ["bad_block"]
    got, f = packets(good[:-3])
    assert got == [] and kinds(f) == ["truncated_file"] and f.problems[0].frame == 1


def test_progress_hook_and_reiteration():
    w = PcapngWriter(linktype=LINKTYPE_RAW, snaplen=10)
    for i in range(2000):
        w.write_packet(T0 + i, b"\x45" * 1000)
    data = w.getvalue()
    seen: list[int] = []
    f = open_capture(data, progress=seen.append)
    f.max_problems_per_kind = 5
    assert sum(1 for _ in f) == 2000
    assert seen and seen == sorted(seen) and seen[-1] == len(data)
    assert f.counts["snaplen"] == 2000 and len(f.problems) == 6  # 5 + "more than" note
    assert sum(1 for _ in f) == 2000 and len(f.problems) == 6  # problems reset per pass


# -- robustness (property-based) ----------------------------------------------------
def sample_files() -> list[tuple[bytes, list[int], list[int], int]]:
    """(file, block boundaries, packet record ends, minimal header) for small valid files."""
    out = []
    for w, head in ((PcapWriter(linktype=LINKTYPE_RAW), 24),
                    (PcapngWriter(linktype=LINKTYPE_RAW), 12),
                    (PcapngWriter(linktype=LINKTYPE_RAW, byte_order=">"), 12)):
        bounds = [28] if isinstance(w, PcapngWriter) else []  # end of the section header
        bounds.append(len(w.getvalue()))
        packet_ends = []
        for i in range(4):
            w.write_packet(T0 + i, bytes([0x45, i]) * (i + 3))
            packet_ends.append(len(w.getvalue()))
        if isinstance(w, PcapngWriter):
            w.write_simple_packet(b"\x45simple")
            packet_ends.append(len(w.getvalue()))
        out.append((w.getvalue(), bounds + packet_ends, packet_ends, head))
    return out


SAMPLES = sample_files()


def read_all(source) -> tuple[list[tuple], list[str]] | None:
    """Everything a reader yields; None if rejected at open (the only allowed raise)."""
    try:
        f = open_capture(source)
    except CaptureFormatError:
        return None
    with f:
        got = [(p.frame, p.ts_ns, bytes(p.data), p.orig_len) for p in f]
        return got, kinds(f)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_never_raise_but_format_error(data):
    read_all(data)


@settings(max_examples=300)
@given(st.sampled_from(range(len(SAMPLES))), st.binary(max_size=200))
def test_valid_header_then_garbage_never_raises(i, tail):
    data, _, packet_ends, _ = SAMPLES[i]
    assert read_all(data[: packet_ends[0]] + tail) is not None


@settings(max_examples=300)
@given(st.sampled_from(range(len(SAMPLES))), st.data())
def test_random_corruption_never_raises(i, draw):
    data = bytearray(SAMPLES[i][0])
    for _ in range(draw.draw(st.integers(1, 8))):
        pos = draw.draw(st.integers(0, len(data) - 1))
        data[pos] = draw.draw(st.integers(0, 255))
    read_all(bytes(data))


@settings(max_examples=300)
@given(st.sampled_from(range(len(SAMPLES))), st.data())
def test_truncation_yields_a_prefix_and_a_problem(i, draw):
    data, bounds, packet_ends, head = SAMPLES[i]
    full, _ = read_all(data)
    cut = draw.draw(st.integers(0, len(data)))
    result = read_all(data[:cut])
    if cut < head:
        assert result is None
        return
    got, problems = result
    assert got == full[: len(got)]
    complete = sum(1 for e in packet_ends if e <= cut)
    assert len(got) == complete
    if cut in bounds:
        assert problems == []
    else:
        assert problems == ["truncated_file"]


@pytest.mark.parametrize("bad", [2**63, 2**63 + 10**15])
def test_out_of_range_timestamp_is_a_problem_not_a_crash(bad):
    from camprotool import encode, read_capture

    w = PcapngWriter()
    c = w.tcp(("10.0.0.1", 40000), ("10.0.0.2", 9000), T0)
    c.send("c2s", encode("Login", "demo|pw", "line"), T0 + 1000)
    c.send("s2c", encode("LoginOk", "3|2024|1.2.3.4", "line"), bad)
    c.send("c2s", encode("Heartbeat", "", "line"), T0 + 3000)
    cap = read_capture(w.getvalue())
    assert cap.messages["command"].tolist() == ["Login", "LoginOk", "Heartbeat"]
    assert cap.messages["ts"].is_monotonic_increasing
    assert "bad_timestamp" in set(cap.problems["kind"])
    assert len(cap.connections) == 1


def test_out_of_range_if_tsoffset_keeps_the_previous_timestamp():
    w = PcapngWriter()
    w.write_packet(T0, b"\x00" * 60)
    far = w.add_interface(1, tsoffset=-(2**40))  # 2**40 s before the epoch: not in int64 ns
    w.write_packet(T0 - 2**40 * 10**9, b"\x00" * 60, interface=far)
    got, f = packets(w.getvalue())
    assert [p[1] for p in got] == [T0, T0]
    assert kinds(f) == ["bad_timestamp"]

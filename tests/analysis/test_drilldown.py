"""Drill-down to packets: ``drilldown.packets`` / ``drilldown.follow`` (``cap.packets``,
``cap.follow``): TCP flags, numbers, analysis, which messages a packet completes, and
passwords hidden in the bytes as in the tables."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from camprotool import read_capture
from camprotool.analysis import drilldown
from camprotool.analysis.capture import Capture
from camprotool.analysis.hexview import PacketList, hexdump_lines, wireshark_command
from camprotool.capture.writer import PcapngWriter, build_ipv4, link_frame
from camprotool.protocol.codec import encode

T0 = 1_700_000_000_000_000_000
CLIENT, SERVER = ("10.0.0.1", 50000), ("10.0.0.2", 9000)
FAILED = "captures/failed_sync.pcapng"


@pytest.fixture(scope="module")
def failed():
    return read_capture(FAILED)


@pytest.fixture(scope="module")
def revealed():
    return read_capture(FAILED, reveal_passwords=True)


def test_a_frame_after_lost_bytes(failed, revealed):
    p = drilldown.packets(failed, 20)
    assert isinstance(p, PacketList) and p.frames == [20]
    r = p.df.iloc[0]
    assert (r.conn, r.direction, r.src, r.dst, r.tcp_flags) == (
        0, "s2c", "192.0.2.10:9000", "198.51.100.40:50200", "PSH, ACK")
    # raw numbers as on the wire, relative ones as Wireshark counts them (SYN = 0)
    assert (r.seq, r.ack, r.rel_seq, r.rel_ack, r.len) == (5163, 1175, 163, 175, 48)
    # the offset is on messages.stream_offset's scale: the message ends 48 bytes later
    assert r.offset + r.len == failed.messages.loc[12, "stream_offset"]
    assert r.analysis == "previous segment not captured"
    assert r.messages == [12]  # the leftover tail of the cut frame
    # that tail may hold a password: its bytes are hidden unless revealed
    assert r.payload == b"*" * 48 and p.hidden[0].all()
    shown = drilldown.packets(revealed, 20).df.iloc[0]
    assert shown.payload == revealed.messages.loc[12, "raw"]


def test_a_message_and_its_password(failed, revealed):
    login = failed.messages.loc[0]
    p = drilldown.packets(failed, login)
    assert p.frames == [int(login.frame)]
    masked = p.df.iloc[0].payload
    clear = drilldown.packets(revealed, revealed.messages.loc[0]).df.iloc[0].payload
    user, password = revealed.messages.loc[0, ["user", "password"]]
    assert clear == encode("Login", f"{user}|{password}")
    # the password's bytes, and only they, are hidden
    assert masked == clear.replace(f"|{password}\r".encode(), b"|" + b"*" * len(password) + b"\r")
    assert masked.endswith(f"|{user}|{'*' * len(password)}\r\n".encode())


def test_follow_a_connection(failed, revealed):
    p = drilldown.follow(failed, 1)
    df = p.df
    assert df["frame"].tolist() == list(range(8, 18))
    assert df["tcp_flags"].tolist()[:3] == ["SYN", "SYN, ACK", "ACK"]
    assert df["tcp_flags"].iloc[-1] == "RST, ACK"  # the transfer cut short
    assert df["rel_seq"].tolist()[:4] == [0, 0, 1, 1]
    assert pd.isna(df["rel_ack"].iloc[0])  # a SYN acknowledges nothing
    assert df["rel_ack"].tolist()[1:3] == [1, 1]
    assert df["direction"].astype(str).tolist()[:2] == ["c2s", "s2c"]
    # every message of the connection is completed by one of its packets
    mine = failed.messages.index[failed.messages["conn"] == 1].tolist()
    assert sorted(m for ms in df["messages"] for m in ms) == mine
    # camera passwords (UploadCaramer's second field) hidden in every payload
    assert not any(pw in pl for pl in df["payload"] for pw in (b"|1234|", b"|4321|"))
    assert sum(b"|****|" in pl for pl in df["payload"]) == 3
    hidden = sum(int(h.sum()) for h in p.hidden if h is not None)
    assert hidden == 4 * 3  # three uploads of a 4-character password
    clear = b"".join(drilldown.follow(revealed, 1).df["payload"])
    assert (clear.count(b"|1234|"), clear.count(b"|4321|"), clear.count(b"*")) == (2, 1, 0)


def _split_login_capture() -> bytes:
    """A Login cut over two segments, a retransmission of the second, then LoginOk."""
    w = PcapngWriter()
    c = w.tcp(CLIENT, SERVER, T0)
    login = encode("Login", "demo|s3cret")
    first = c.send("c2s", login[:20], T0 + 100)
    c.send("c2s", login[20:], T0 + 200)
    c.segment("c2s", login[20:], T0 + 250, seq=first + 20)  # retransmitted
    c.send("s2c", encode("LoginOk", "3|2024-01-01 10:00:00|10.0.0.1"), T0 + 300)
    # a packet that is not TCP (UDP) in the middle of it
    udp = bytes(8) + b"hello"
    ip = build_ipv4(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), udp, proto=17)
    w.write_packet(T0 + 350, link_frame(w.linktype(), ip))
    c.close(T0 + 400)
    return w.getvalue()


def test_a_message_in_two_segments_and_a_retransmission():
    data = _split_login_capture()
    cap = read_capture(data)
    login = cap.messages.loc[0]
    p = drilldown.packets(cap, login, source=data)
    # both segments holding its bytes, the one that completed it last
    rest = len(encode("Login", "demo|s3cret")) - 20
    assert p.df["len"].tolist() == [20, rest]
    assert p.df["messages"].tolist() == [[], [0]]
    joined = p.df["payload"].iloc[0] + p.df["payload"].iloc[1]
    assert joined == encode("Login", "demo|******")  # the whole message known: the field
    # one segment alone does not show where the password is: all of its part hidden
    alone = drilldown.packets(cap, int(p.df["frame"].iloc[1]), source=data)
    assert set(alone.df["payload"].iloc[0]) == {ord("*")}
    shown = drilldown.packets(read_capture(data, reveal_passwords=True), login, source=data)
    assert b"s3cret" in shown.df["payload"].iloc[1]
    # following the connection shows the retransmission, its bytes hidden alike
    f = drilldown.follow(cap, 0, source=data).df
    assert f["analysis"].tolist()[3:6] == ["", "", "retransmission"]
    assert f["payload"].iloc[5] == f["payload"].iloc[4]


def test_a_frame_that_is_not_tcp():
    data = _split_login_capture()
    cap = read_capture(data)
    p = drilldown.packets(cap, [4, 8], source=data)  # the first data packet and the UDP one
    assert p.frames == [4, 8]
    udp = p.df.set_index("frame").loc[8]
    assert udp.analysis.startswith("not TCP") and pd.isna(udp.src) and udp.payload == b""
    assert "not TCP" in repr(p)


def test_bad_requests_say_what_is_wrong(failed):
    n = failed.decoded.packets
    with pytest.raises(ValueError, match=rf"frame 0 is not in the capture \(frames 1-{n}\)"):
        drilldown.packets(failed, 0)
    with pytest.raises(TypeError, match="give a frame number"):
        drilldown.packets(failed, "20")
    with pytest.raises(ValueError, match=r"no connection 9 \(cap.connections has 3: 0-2\)"):
        drilldown.follow(failed, 9)
    with pytest.raises(ValueError, match="no conn, direction column"):
        drilldown.packets(failed, pd.DataFrame({"frame": [20]}))
    data = Path(FAILED).read_bytes()
    from_bytes = read_capture(data)  # read_capture keeps what it was given
    assert from_bytes.packets(20).frames == [20]
    assert from_bytes.packets(20).wireshark() is None  # no file to open
    bare = Capture(from_bytes.decoded)  # built by hand: nothing to read again
    with pytest.raises(ValueError, match="read from bytes in memory: pass source="):
        bare.packets(20)
    assert bare.packets(20, source=data).frames == [20]


def test_hex_view_and_wireshark_line(failed):
    p = drilldown.packets(failed, failed.messages.loc[[4, 5]])
    text = repr(p)
    assert text.startswith("2 packets of 2 messages; 4 payload bytes hidden")
    assert "frame 11  2025-11-28 11:00:00.031000 UTC  conn 1 c2s" in text
    assert "0020  64 43 61 72 61 6d 65 72  7c 43 41 4d 30 30 30 31  dCaramer|CAM0001" in text
    assert re.search(r"0030  31 7c \*\* \*\* \*\* \*\* 7c 31  7c 35 0d 0a +1\|\*\*\*\*\|1\|5\.\.",
                     text)
    assert text.endswith(f"in Wireshark: wireshark -r {FAILED} -g 11")
    page = p._repr_html_()
    assert "<pre" in page and f"wireshark -r {FAILED} -g 11" in page
    assert page.count("<tr>") == 3  # header and two packets


def test_hexdump_and_commands():
    assert hexdump_lines(b"AB\x00", np.array([False, True, False])) == [
        "0000  41 ** 00" + " " * 15 + "  " + " " * 23 + "  A*."]
    assert wireshark_command("my file.pcap", 7) == "wireshark -r 'my file.pcap' -g 7"
    assert wireshark_command(["a.pcap", "b.pcap"], 3) == (
        "mergecap -w merged.pcapng a.pcap b.pcap && wireshark -r merged.pcapng -g 3")
    assert wireshark_command(b"bytes", 1) is None


def test_capture_methods_and_capture_sets():
    """``cap.packets``/``cap.follow`` read what read_capture was given, a capture set
    included: frames are numbered as the set is merged (as mergecap merges it)."""
    sample = "captures/sample.pcapng"
    cap = read_capture([FAILED, sample])  # sample is earlier: its 42 packets come first
    assert cap.origin == [FAILED, sample]
    m = cap.messages
    tail = m.index[m["error"].fillna("").str.startswith("follows lost")][0]
    p = cap.packets(m.loc[tail])
    assert p.frames == [42 + 20] and p.df["analysis"].iloc[0] == "previous segment not captured"
    assert p.wireshark() == (f"mergecap -w merged.pcapng {FAILED} {sample} && "
                             "wireshark -r merged.pcapng -g 62")
    one = read_capture(FAILED)
    assert cap.follow(int(m.loc[tail, "conn"])).df["payload"].tolist() == \
        one.follow(0).df["payload"].tolist()
    assert read_capture([FAILED]).packets(20).wireshark() == f"wireshark -r {FAILED} -g 20"

"""Capture decoding end to end: scripted TCP in, exact message rows out (``read_capture``).

Every case is written with the capture writer so the expected rows can be spelled
out exactly: command, direction, params, error and the capture time (ns after T0)
of the packet that completed the message.
"""

from __future__ import annotations

import pandas as pd
import pytest
from conversations import CLIENT, LOGIN_OK, SERVER, T0, WRITERS, frame, main_session, read, rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camprotool.capture.writer import PcapngWriter, PcapWriter

LOGIN = frame("Login", "demo|pw")
HEARTBEAT = frame("Heartbeat")
CHECK = frame("CheckCaramerOnlineStatus", "CAM1;CAM2")
OK = frame("LoginOk", LOGIN_OK)
TAIL_NOTE = "follows lost bytes: probably the tail of a cut frame"


@pytest.fixture(params=sorted(WRITERS))
def writer(request):
    return WRITERS[request.param]()


def problems(cap) -> list[tuple[int, str]]:
    return list(zip(cap.problems["frame"].tolist(), cap.problems["kind"].astype(str),
                    strict=True))


# -- reassembly cases -----------------------------------------------------------------------


def test_in_order(writer):
    c = main_session(writer, T0)
    c.close(T0 + 500)
    cap = read(writer.getvalue())
    assert rows(cap) == [
        ("Login", "c2s", "demo|***", None, 100),
        ("LoginOk", "s2c", LOGIN_OK, None, 200),
        ("CreatDataSocket", "c2s", "demo|***", None, 300),
        ("ReturnDataSocketPort", "s2c", "9001", None, 400),
    ]
    assert cap.problems.empty
    conn = cap.connections.loc[0]
    assert (conn.client, conn.server, conn.close_reason) == ("10.0.0.1:50000", "10.0.0.2:9000",
                                                             "fin")


def test_out_of_order_message_gets_the_time_of_the_packet_filling_the_hole(writer):
    c = writer.tcp(CLIENT, SERVER, T0)
    data = HEARTBEAT + LOGIN + HEARTBEAT  # 39 + 42 + 39 bytes
    s = c.nxt["c2s"]
    c.segment("c2s", data[:39], T0 + 100, seq=s)  # the first heartbeat, complete
    c.segment("c2s", data[60:], T0 + 150, seq=s + 60)  # arrives early: buffered
    c.segment("c2s", data[39:60], T0 + 200, seq=s + 39)  # fills the hole
    c.skip("c2s", len(data))
    c.send("s2c", OK, T0 + 300)
    c.close(T0 + 400)
    cap = read(writer.getvalue(), reveal_passwords=True)
    assert rows(cap) == [
        ("Heartbeat", "c2s", "", None, 100),
        ("Login", "c2s", "demo|pw", None, 200),
        ("Heartbeat", "c2s", "", None, 200),
        ("LoginOk", "s2c", LOGIN_OK, None, 300),
    ]
    assert cap.problems.empty
    assert cap.connections.loc[0, "lost_c2s"] == 0


def test_retransmissions_first_copy_wins_and_conflicts_are_problems(writer):
    c = writer.tcp(CLIENT, SERVER, T0)  # frames 1-3: handshake
    s = c.send("c2s", LOGIN, T0 + 100)  # frame 4
    c.segment("c2s", LOGIN, T0 + 200, seq=s)  # frame 5: exact retransmission
    # frame 6: overlaps the login's tail but says "PW" where the first copy said "pw",
    # and brings 10 new bytes
    c.segment("c2s", LOGIN[30:].replace(b"pw", b"PW") + HEARTBEAT[:10], T0 + 300, seq=s + 30)
    # frame 7: overlaps again (same bytes this time) and brings 10 more new bytes
    c.segment("c2s", LOGIN[20:] + HEARTBEAT[:20], T0 + 400, seq=s + 20)
    c.skip("c2s", 20)  # the retransmissions brought HEARTBEAT[:20]
    c.send("c2s", HEARTBEAT[20:], T0 + 500)  # frame 8
    c.close(T0 + 600)
    cap = read(writer.getvalue(), reveal_passwords=True)
    assert rows(cap) == [
        ("Login", "c2s", "demo|pw", None, 100),
        ("Heartbeat", "c2s", "", None, 500),
    ]
    assert problems(cap) == [(6, "conflicting_retransmission")]
    detail = cap.problems["detail"].iloc[0]
    assert "connection 0" in detail and "c2s" in detail
    assert cap.connections.loc[0, ["bytes_c2s", "lost_c2s"]].tolist() == [
        len(LOGIN + HEARTBEAT), 0]


def test_sequence_numbers_wrap_in_the_middle_of_a_frame(writer):
    # Data starts 20 bytes (client) and 2 bytes (server) below 2**32.
    c = writer.tcp(CLIENT, SERVER, T0, isn_client=2**32 - 21, isn_server=2**32 - 3)
    c.send("c2s", LOGIN + HEARTBEAT, T0 + 100, segment_size=15, ts_step_ns=10)
    c.send("s2c", OK, T0 + 300, segment_size=7, ts_step_ns=10)
    c.close(T0 + 400)
    cap = read(writer.getvalue())
    ok_last_segment = (len(OK) - 1) // 7
    assert rows(cap) == [
        ("Login", "c2s", "demo|***", None, 120),  # bytes 30..45 came at +120
        ("Heartbeat", "c2s", "", None, 150),  # bytes 75..81 came at +150
        ("LoginOk", "s2c", LOGIN_OK, None, 300 + 10 * ok_last_segment),
    ]
    assert cap.problems.empty
    assert cap.connections.loc[0, ["lost_c2s", "lost_s2c", "close_reason"]].tolist() == [
        0, 0, "fin"]


def test_port_reuse_after_close_gives_two_connections(writer):
    for t, isn in ((T0, 1000), (T0 + 1000, 999_999)):
        c = writer.tcp(CLIENT, SERVER, t, isn_client=isn)
        c.send("c2s", LOGIN, t + 100)
        c.send("s2c", OK, t + 200)
        c.close(t + 300)
    cap = read(writer.getvalue())
    assert rows(cap) == [
        ("Login", "c2s", "demo|***", None, 100),
        ("LoginOk", "s2c", LOGIN_OK, None, 200),
        ("Login", "c2s", "demo|***", None, 1100),
        ("LoginOk", "s2c", LOGIN_OK, None, 1200),
    ]
    assert cap.messages["conn"].tolist() == [0, 0, 1, 1]
    conns = cap.connections
    assert conns["client"].tolist() == ["10.0.0.1:50000"] * 2
    assert conns["server"].tolist() == ["10.0.0.2:9000"] * 2
    assert conns["close_reason"].astype(str).tolist() == ["fin", "fin"]


def test_port_reuse_without_close_ends_the_first_connection(writer):
    first = writer.tcp(CLIENT, SERVER, T0)
    first.send("c2s", LOGIN, T0 + 100)
    second = writer.tcp(CLIENT, SERVER, T0 + 1000, isn_client=7_000_000)
    second.send("c2s", HEARTBEAT, T0 + 1100)
    second.close(T0 + 1200)
    cap = read(writer.getvalue())
    assert rows(cap) == [
        ("Login", "c2s", "demo|***", None, 100),
        ("Heartbeat", "c2s", "", None, 1100),
    ]
    assert cap.connections["close_reason"].astype(str).tolist() == ["reused", "fin"]


def test_capture_starting_mid_connection_line(writer):
    c = writer.tcp(CLIENT, SERVER, T0, handshake=False)
    # The server speaks first, and its first segment starts 5 bytes into a frame.
    c.send("s2c", OK[5:], T0 + 100)
    c.send("s2c", frame("PrushCaramerOnlineStatus", "CAM1:true"), T0 + 150)
    c.send("c2s", HEARTBEAT, T0 + 200)
    c.send("c2s", CHECK, T0 + 300)
    c.send("s2c", frame("ReturnCaramerOnlineStatus", "CAM1;true|CAM2;null"), T0 + 400)
    c.close(T0 + 500)
    cap = read(writer.getvalue())
    # The cut frame's text could hold a password: masked unless revealed. It is an
    # error row that names no command; its whole text is in params, its bytes in raw.
    revealed = read(writer.getvalue(), reveal_passwords=True).messages.loc[0]
    assert (revealed.command, revealed.params, revealed.raw) == (
        "", "tCommand.LoginCommand.LoginOk|" + LOGIN_OK, OK[5:])
    assert rows(cap) == [
        ("", "s2c", "***", TAIL_NOTE, 100),
        ("PrushCaramerOnlineStatus", "s2c", "CAM1:true", None, 150),
        ("Heartbeat", "c2s", "", None, 200),
        ("CheckCaramerOnlineStatus", "c2s", "CAM1;CAM2", None, 300),
        ("ReturnCaramerOnlineStatus", "s2c", "CAM1;true|CAM2;null", None, 400),
    ]
    conn = cap.connections.loc[0]
    # Roles by content: the side sending client commands is the client.
    assert (conn.client, conn.server) == ("10.0.0.1:50000", "10.0.0.2:9000")
    assert not conn.handshake_seen
    assert conn.channel == "main"


@pytest.mark.parametrize("dialect", ["lp32le", "lp32be"])
def test_capture_starting_mid_connection_lp(writer, dialect):
    ok = frame("LoginOk", LOGIN_OK, dialect)
    c = writer.tcp(CLIENT, SERVER, T0, handshake=False)
    c.send("s2c", ok[5:], T0 + 100)
    c.send("s2c", frame("PrushCaramerOnlineStatus", "CAM1:true", dialect), T0 + 150)
    c.send("c2s", frame("Heartbeat", "", dialect), T0 + 200)
    c.close(T0 + 500)
    cap = read(writer.getvalue())
    skipped = f"after lost bytes: skipped {len(ok) - 5} bytes to resynchronise"
    assert rows(cap) == [
        ("", "s2c", "", skipped, 100),
        ("PrushCaramerOnlineStatus", "s2c", "CAM1:true", None, 150),
        ("Heartbeat", "c2s", "", None, 200),
    ]
    assert cap.connections.loc[0, "client"] == "10.0.0.1:50000"
    assert cap.connections.loc[0, "dialect"] == dialect


def test_capture_starting_mid_connection_at_a_frame_boundary(writer):
    c = writer.tcp(CLIENT, SERVER, T0, handshake=False)
    c.send("s2c", OK, T0 + 100)
    c.send("c2s", HEARTBEAT, T0 + 200)
    c.close(T0 + 300)
    cap = read(writer.getvalue())
    assert rows(cap) == [
        ("LoginOk", "s2c", LOGIN_OK, None, 100),
        ("Heartbeat", "c2s", "", None, 200),
    ]
    assert cap.connections.loc[0, "client"] == "10.0.0.1:50000"


def _lost_bytes(writer, dialect: str) -> tuple[bytes, bytes]:
    login = frame("Login", "demo|pw", dialect)
    check = frame("CheckCaramerOnlineStatus", "CAM1;CAM2", dialect)
    heartbeat = frame("Heartbeat", "", dialect)
    c = writer.tcp(CLIENT, SERVER, T0)
    c.send("c2s", login, T0 + 100)
    c.send("c2s", check[:10], T0 + 200)
    c.skip("c2s", 15)  # bytes 10..25 of the check frame are never captured
    c.send("c2s", check[25:] + heartbeat, T0 + 300)  # buffered behind the hole
    c.ack("s2c", T0 + 400)  # the server acknowledges past the hole: it is lost
    c.send("s2c", frame("LoginOk", LOGIN_OK, dialect), T0 + 500)
    c.send("c2s", heartbeat, T0 + 600)
    c.close(T0 + 700)
    return check, heartbeat


def test_lost_bytes_line(writer):
    _lost_bytes(writer, "line")
    cap = read(writer.getvalue())
    assert rows(cap) == [
        ("Login", "c2s", "demo|***", None, 100),
        ("", "c2s", "", "frame cut by 15 lost bytes (10 bytes of it seen)", 200),
        # the bytes behind the hole keep the time they were captured
        ("", "c2s", "***", TAIL_NOTE, 300),  # a cut tail names no command, its text masked
        ("Heartbeat", "c2s", "", None, 300),
        ("LoginOk", "s2c", LOGIN_OK, None, 500),
        ("Heartbeat", "c2s", "", None, 600),
    ]
    assert cap.connections.loc[0, ["lost_c2s", "lost_s2c"]].tolist() == [15, 0]


@pytest.mark.parametrize("dialect", ["lp32le", "lp32be"])
def test_lost_bytes_length_prefixed(writer, dialect):
    check, _ = _lost_bytes(writer, dialect)
    cap = read(writer.getvalue())
    resync = f"after lost bytes: skipped {len(check) - 25} bytes to resynchronise"
    assert rows(cap) == [
        ("Login", "c2s", "demo|***", None, 100),
        ("", "c2s", "", "frame cut by 15 lost bytes (10 bytes of it seen)", 200),
        ("", "c2s", "", resync, 300),
        ("Heartbeat", "c2s", "", None, 300),
        ("LoginOk", "s2c", LOGIN_OK, None, 500),
        ("Heartbeat", "c2s", "", None, 600),
    ]
    assert cap.connections.loc[0, "lost_c2s"] == 15
    assert cap.connections.loc[0, "dialect"] == dialect


def test_frame_split_across_one_byte_segments(writer):
    c = writer.tcp(CLIENT, SERVER, T0)
    c.send("c2s", LOGIN, T0 + 100, segment_size=1, ts_step_ns=1)
    c.send("s2c", OK, T0 + 1000, segment_size=1, ts_step_ns=1)
    c.close(T0 + 2000)
    cap = read(writer.getvalue())
    assert rows(cap) == [
        ("Login", "c2s", "demo|***", None, 100 + len(LOGIN) - 1),
        ("LoginOk", "s2c", LOGIN_OK, None, 1000 + len(OK) - 1),
    ]


def test_several_frames_in_one_segment_share_its_time_in_stream_order(writer):
    c = writer.tcp(CLIENT, SERVER, T0)
    c.send("c2s", HEARTBEAT + LOGIN[:10], T0 + 100)
    c.send("c2s", LOGIN[10:] + CHECK + HEARTBEAT, T0 + 200)
    c.close(T0 + 300)
    cap = read(writer.getvalue())
    assert rows(cap) == [
        ("Heartbeat", "c2s", "", None, 100),
        ("Login", "c2s", "demo|***", None, 200),
        ("CheckCaramerOnlineStatus", "c2s", "CAM1;CAM2", None, 200),
        ("Heartbeat", "c2s", "", None, 200),
    ]
    ends = cap.messages["stream_offset"].tolist()
    assert ends == sorted(ends)
    assert ends[-1] == len(HEARTBEAT + LOGIN + CHECK + HEARTBEAT)


def test_ipv6_endpoints_are_bracketed(writer):
    c = writer.tcp(("2001:db8::1", 50000), ("2001:db8::2", 9000), T0)
    c.send("c2s", LOGIN, T0 + 100)
    c.send("s2c", OK, T0 + 200)
    c.close(T0 + 300)
    cap = read(writer.getvalue())
    assert rows(cap) == [
        ("Login", "c2s", "demo|***", None, 100),
        ("LoginOk", "s2c", LOGIN_OK, None, 200),
    ]
    assert cap.messages["client"].tolist() == ["[2001:db8::1]:50000"] * 2
    assert cap.messages["server"].tolist() == ["[2001:db8::2]:9000"] * 2
    conn = cap.connections.loc[0]
    assert (conn.client, conn.server) == ("[2001:db8::1]:50000", "[2001:db8::2]:9000")
    assert (conn.client_ip, conn.server_ip) == ("2001:db8::1", "2001:db8::2")


@pytest.mark.parametrize("writer_cls", [PcapngWriter, PcapWriter])
def test_snaplen_cut_packet_is_a_gap(writer_cls):
    long_check = frame("CheckCaramerOnlineStatus", "CAM00001;CAM00002;CAM00003")
    w = writer_cls(snaplen=100)  # 54 header bytes: 46 payload bytes fit
    c = w.tcp(CLIENT, SERVER, T0)
    c.send("c2s", LOGIN, T0 + 100)  # 42 bytes: whole
    c.send("c2s", long_check, T0 + 200)  # 80 bytes: cut after 46
    c.send("c2s", HEARTBEAT, T0 + 300)  # 39 bytes: whole
    c.close(T0 + 400)
    cap = read(w.getvalue())
    cut = len(long_check) - 46
    assert rows(cap) == [
        ("Login", "c2s", "demo|***", None, 100),
        ("", "c2s", "", f"frame cut by {cut} lost bytes (46 bytes of it seen)", 200),
        ("Heartbeat", "c2s", "", None, 300),
    ]
    # the reader's snaplen row, and the lost bytes it caused (cap.problems, issue 13)
    assert problems(cap) == [(5, "snaplen"), (5, "lost_bytes")]
    assert cap.connections.loc[0, "lost_c2s"] == cut


# -- timestamps -----------------------------------------------------------------------------

EXACT = 1_700_000_000_123_456_789


@pytest.mark.parametrize("writer_cls", [PcapngWriter, PcapWriter])
def test_nanosecond_timestamps_survive_exactly(writer_cls):
    w = writer_cls()  # pcapng with if_tsresol=9, pcap with the nanosecond magic
    c = w.tcp(CLIENT, SERVER, EXACT - 1_000_001)
    c.send("c2s", LOGIN, EXACT)
    c.send("s2c", OK, EXACT + 1)
    cap = read(w.getvalue())
    ts = cap.messages["ts"]
    assert str(ts.dtype) == "datetime64[ns, UTC]"
    assert [t.value for t in ts] == [EXACT, EXACT + 1]
    assert cap.connections.loc[0, "start"].value == EXACT - 1_000_001


def test_microsecond_pcap_keeps_microseconds():
    w = PcapWriter(nanosecond=False)
    c = w.tcp(CLIENT, SERVER, T0)
    c.send("c2s", LOGIN, EXACT)
    cap = read(w.getvalue())
    assert cap.messages["ts"].iloc[0].value == EXACT // 1000 * 1000


# -- engines and formats --------------------------------------------------------------------


def _tricky(w) -> None:
    """Several connections with out-of-order data, a retransmission, a gap and a late start."""
    c = main_session(w, T0)
    s = c.nxt["c2s"]
    data = HEARTBEAT + CHECK
    c.segment("c2s", data[50:], T0 + 500, seq=s + 50)
    c.segment("c2s", data[:50], T0 + 510, seq=s)
    c.segment("c2s", data[:20], T0 + 520, seq=s)  # retransmission
    c.skip("c2s", len(data))
    d = w.tcp(("10.0.0.1", 50001), ("10.0.0.2", 9001), T0 + 600)
    d.send("c2s", frame("UploadCaramer", "CAM1|x|1|2"), T0 + 700, segment_size=7)
    up = frame("UploadCaramer", "CAM2|y|2|2")
    d.send("c2s", up[:12], T0 + 800)
    d.skip("c2s", 9)
    d.send("c2s", up[21:] + frame("UploadCaramer", "CAM3|z|3|2"), T0 + 900)
    d.send("s2c", frame("UploadSucess", "CAM1|true|1|2"), T0 + 950)
    d.close(T0 + 1000)
    late = w.tcp(("10.0.0.5", 40000), ("10.0.0.2", 12345), T0 + 1100, handshake=False)
    late.send("s2c", frame("LoginOk", LOGIN_OK, "lp32be")[3:], T0 + 1200)
    late.send("c2s", frame("Heartbeat", "", "lp32be"), T0 + 1300)
    late.send("s2c", frame("PrushCaramerAlarmInfo", "CAM1:motion", "lp32be"), T0 + 1400)
    c.send("s2c", frame("PrushCaramerOnlineStatus", "CAM1:false"), T0 + 1500)


def _assert_same(a, b) -> None:
    pd.testing.assert_frame_equal(a.messages, b.messages)
    pd.testing.assert_frame_equal(a.connections, b.connections)
    pd.testing.assert_frame_equal(a.problems, b.problems)


def test_pcap_and_pcapng_give_equal_tables():
    caps = []
    for cls in (PcapngWriter, PcapWriter):
        w = cls()
        _tricky(w)
        caps.append(read(w.getvalue()))
    assert len(caps[0].messages) == 15
    assert caps[0].messages["error"].notna().sum() == 3
    _assert_same(*caps)


@pytest.mark.parametrize("reveal", [False, True])
def test_incremental_engine_equals_bulk(writer, reveal):
    _tricky(writer)
    data = writer.getvalue()
    bulk = read(data, reveal_passwords=reveal)
    incremental = read(data, reveal_passwords=reveal, engine="incremental")
    assert len(bulk.messages) == 15
    _assert_same(bulk, incremental)


def test_unknown_engine_is_refused():
    w = PcapngWriter()
    main_session(w, T0)
    with pytest.raises(ValueError, match="engine"):
        read(w.getvalue(), engine="turbo")


_COMMANDS = [
    ("Login", "demo|pw"),
    ("Login", "demo"),  # malformed: one field
    ("LoginOk", "3|t|ip"),
    ("LoginOk", "x|t|ip"),  # malformed count
    ("Heartbeat", ""),
    ("UploadCaramer", "CAM1|pw|1|2"),
    ("UploadSucess", "CAM1|maybe|1|2"),  # malformed status
    ("ReturnDataSocketPort", "70000"),  # malformed port
    ("LoginError", "用户名或者密码错误!"),
    ("SocketCommand.FooCommand.Frob", "a|b"),  # unknown
]
_GARBAGE = [b"\x00\x00\x00\x00", b"\xff\xff\xff\xffjunk", b"hello\r\n", b"\xc4\xe3|x\n"]


@st.composite
def conversations(draw):
    """Random frames (valid and not) in both directions, randomly cut into segments, some
    swapped (out of order) and some lost."""
    dialect = draw(st.sampled_from(["line", "lp32le", "lp32be:gbk", "line:gbk"]))
    items = draw(st.lists(
        st.tuples(st.sampled_from(["c2s", "s2c"]),
                  st.one_of(st.sampled_from(_COMMANDS).map(lambda cp: ("frame", cp)),
                            st.sampled_from(_GARBAGE).map(lambda g: ("raw", g)))),
        min_size=1, max_size=12))
    sizes = draw(st.lists(st.integers(1, 40), min_size=1, max_size=8))
    lose = draw(st.sets(st.integers(0, 30), max_size=2))
    swap = draw(st.sets(st.integers(0, 30), max_size=3))
    handshake = draw(st.booleans())
    read_dialect = draw(st.sampled_from(["auto", dialect]))
    return dialect, items, sizes, lose, swap, handshake, read_dialect


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations())
def test_engines_agree_on_random_conversations(case):
    dialect, items, sizes, lose, swap, handshake, read_dialect = case
    w = PcapngWriter()
    c = w.tcp(CLIENT, SERVER, T0, handshake=handshake)
    t = T0 + 1000
    k = 0  # segment counter, for the lose/swap choices
    for direction, (kind, value) in items:
        data = frame(*value, dialect) if kind == "frame" else value
        cuts = []
        pos = 0
        while pos < len(data):
            n = sizes[len(cuts) % len(sizes)]
            cuts.append(data[pos:pos + n])
            pos += n
        i = 0
        while i < len(cuts):
            if k in swap and i + 1 < len(cuts):  # send the next piece first
                s = c.nxt[direction]
                c.segment(direction, cuts[i + 1], t, seq=s + len(cuts[i]))
                c.segment(direction, cuts[i], t + 1, seq=s)
                c.skip(direction, len(cuts[i]) + len(cuts[i + 1]))
                i += 2
            elif k in lose:
                c.skip(direction, len(cuts[i]))
                i += 1
            else:
                c.send(direction, cuts[i], t)
                i += 1
            k += 1
            t += 10
    c.close(t)
    data = w.getvalue()
    bulk = read(data, dialect=read_dialect, reveal_passwords=True)
    incremental = read(data, dialect=read_dialect, reveal_passwords=True, engine="incremental")
    _assert_same(bulk, incremental)
    if read_dialect != "auto":
        assert len(bulk.connections) == 1

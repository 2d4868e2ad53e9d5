"""Per-connection dialect detection by content, port filtering and the message sink.

The protocol runs on whatever ports a deployment chose, so ``dialect="auto"``
must find it by its bytes on any port, in each of the six dialects, and leave
other TCP traffic out of the tables.
"""

from __future__ import annotations

import pandas as pd
import pytest
from conversations import DIALECTS, T0, frame, read, rows

from camprotool.capture.reassembly import ConnectionInfo, Reassembler
from camprotool.capture.streams import MessageSink
from camprotool.capture.writer import PcapngWriter

HTTP_REQUEST = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"
HTTP_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"


def conversation(w, dialect: str, port: int, t: int, client_port: int) -> None:
    """A main connection with Chinese text (so GBK is visible in the bytes)."""
    c = w.tcp(("10.0.0.1", client_port), ("10.0.0.2", port), t)
    c.send("c2s", frame("Login", "张三|pw", dialect), t + 100)
    c.send("s2c", frame("LoginError", "用户名或者密码错误!", dialect), t + 200)
    c.send("c2s", frame("Login", "demo|demo", dialect), t + 300)
    c.send("s2c", frame("LoginOk", "3|2024-01-01 10:00:00|上海", dialect), t + 400)
    c.send("c2s", frame("CheckCaramerOnlineStatus", "CAM1;CAM2", dialect), t + 500)
    c.send("s2c", frame("ReturnCaramerOnlineStatus", "CAM1;true|CAM2;null", dialect), t + 600)
    c.close(t + 700)


def http(w, t: int, server_port: int = 80) -> None:
    h = w.tcp(("10.0.0.1", 50100), ("10.0.0.2", server_port), t)
    h.send("c2s", HTTP_REQUEST, t + 100)
    h.send("s2c", HTTP_RESPONSE, t + 200)
    h.close(t + 300)


def capture(dialect: str) -> bytes:
    w = PcapngWriter()
    conversation(w, dialect, 9000, T0, 50000)
    http(w, T0 + 1000)
    conversation(w, dialect, 12345, T0 + 2000, 50001)
    return w.getvalue()


EXPECTED = [
    ("Login", "c2s", "张三|***", None, 100),
    ("LoginError", "s2c", "用户名或者密码错误!", None, 200),
    ("Login", "c2s", "demo|***", None, 300),
    ("LoginOk", "s2c", "3|2024-01-01 10:00:00|上海", None, 400),
    ("CheckCaramerOnlineStatus", "c2s", "CAM1;CAM2", None, 500),
    ("ReturnCaramerOnlineStatus", "s2c", "CAM1;true|CAM2;null", None, 600),
]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_dialect_found_by_content_on_any_port(dialect):
    cap = read(capture(dialect))
    conns = cap.connections
    # The HTTP connection (conn 1) is not ours: it is not in the table.
    assert conns.index.tolist() == [0, 2]
    assert conns["server"].tolist() == ["10.0.0.2:9000", "10.0.0.2:12345"]
    assert conns["dialect"].astype(str).tolist() == [dialect, dialect]
    assert conns["channel"].astype(str).tolist() == ["main", "main"]
    assert set(cap.messages["conn"]) == {0, 2}
    on_9000 = cap.messages[cap.messages["conn"] == 0]
    on_12345 = cap.messages[cap.messages["conn"] == 2]
    assert rows(on_9000) == EXPECTED
    assert rows(on_12345, t0=T0 + 2000) == EXPECTED
    # Same conversation, same decoded columns (apart from where and when).
    same = ["command", "direction", "params", "error", "user", "camera_count",
            "last_login_ip", "reason", "ids", "statuses"]
    pd.testing.assert_frame_equal(on_9000[same].reset_index(drop=True),
                                  on_12345[same].reset_index(drop=True))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_explicit_dialect_decodes_the_same(dialect):
    auto = read(capture(dialect))
    explicit = read(capture(dialect), dialect=dialect)
    # With a dialect named, every connection is decoded as it: the HTTP one becomes rows too.
    assert explicit.connections.index.tolist() == [0, 1, 2]
    assert (explicit.messages["conn"] == 1).any()
    ours = explicit.messages[explicit.messages["conn"] != 1].reset_index(drop=True)
    # the HTTP connection adds non-commands to the category list
    ours["command"] = ours["command"].cat.set_categories(auto.messages["command"].cat.categories)
    for name in ("client", "server"):  # and its endpoints to theirs
        ours[name] = ours[name].cat.remove_unused_categories()
    pd.testing.assert_frame_equal(ours, auto.messages)
    pd.testing.assert_frame_equal(explicit.connections.loc[[0, 2]], auto.connections)


def test_explicit_dialect_with_ports_keeps_only_the_protocol():
    cap = read(capture("lp32le"), dialect="lp32le", ports=[9000, 12345])
    assert cap.connections.index.tolist() == [0, 2]
    assert rows(cap)[:6] == EXPECTED


def test_ports_keeps_only_connections_on_those_ports():
    cap = read(capture("line"), ports=[12345])
    assert cap.connections["server"].tolist() == ["10.0.0.2:12345"]
    assert set(cap.messages["conn"]) == {2}
    assert rows(cap, t0=T0 + 2000) == EXPECTED


def test_ports_accepts_a_single_int_and_client_ports():
    assert read(capture("line"), ports=9000).connections["server"].tolist() == [
        "10.0.0.2:9000"]
    # An end on the port is enough: the client side counts too.
    assert read(capture("line"), ports=[50001]).connections["client"].tolist() == [
        "10.0.0.1:50001"]


def test_ports_on_the_http_port_finds_nothing():
    cap = read(capture("line"), ports=[80])
    assert cap.connections.empty
    assert cap.messages.empty


def test_ports_none_means_every_port():
    assert len(read(capture("line"), ports=None).connections) == 2


@pytest.mark.parametrize("bad", [0, 65536, -1, "9000", "x", 1.5, [9000, "80"], [True]])
def test_bad_ports_value_raises_naming_it(bad):
    with pytest.raises(ValueError, match="ports") as info:
        read(capture("line"), ports=bad)
    named = bad[-1] if isinstance(bad, list) else bad
    assert repr(named) in str(info.value)


def test_unknown_dialect_is_refused():
    with pytest.raises(ValueError, match="lp16"):
        read(capture("line"), dialect="lp16")


def test_http_on_the_protocol_port_is_not_decoded():
    w = PcapngWriter()
    http(w, T0, server_port=9000)
    cap = read(w.getvalue())
    assert cap.connections.empty
    assert cap.messages.empty
    assert list(cap.messages.columns)[:9] == ["ts", "conn", "channel", "direction", "client",
                                              "server", "command", "params", "error"]


def test_detection_waits_for_a_complete_frame_across_segments():
    # The first segment has only part of a command name: detection must not give up early.
    w = PcapngWriter()
    c = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 4444), T0)
    data = frame("Login", "demo|pw", "lp32be") + frame("Heartbeat", "", "lp32be")
    c.send("c2s", data, T0 + 100, segment_size=5, ts_step_ns=1)
    c.close(T0 + 1000)
    cap = read(w.getvalue(), reveal_passwords=True)
    assert rows(cap) == [
        ("Login", "c2s", "demo|pw", None, 100 + (len(data) - 41 - 1) // 5),
        ("Heartbeat", "c2s", "", None, 100 + (len(data) - 1) // 5),
    ]
    assert cap.connections.loc[0, "dialect"] == "lp32be"


def test_a_connection_with_one_short_frame_is_found_at_close():
    w = PcapngWriter()
    c = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 4444), T0)
    c.send("c2s", frame("Heartbeat"), T0 + 100)
    c.close(T0 + 200)
    cap = read(w.getvalue())
    assert rows(cap) == [("Heartbeat", "c2s", "", None, 100)]


# -- the sink on its own ----------------------------------------------------------------------


class _Seg:
    """Minimal segment for the reassembler (duck-typed TcpSegment)."""

    def __init__(self, frame_no, ts, src, dst, seq, flags, payload=b"", ack=0):
        self.frame, self.ts_ns = frame_no, ts
        self.src_ip, self.src_port = bytes([10, 0, 0, src[0]]), src[1]
        self.dst_ip, self.dst_port = bytes([10, 0, 0, dst[0]]), dst[1]
        self.seq, self.ack, self.flags = seq, ack, flags
        self.payload, self.missing = payload, 0


def test_sink_rejects_an_unknown_engine():
    with pytest.raises(ValueError, match="engine"):
        MessageSink(None, engine="fast")


@pytest.mark.parametrize("engine", ["bulk", "incremental"])
def test_sink_stamps_each_message_with_the_completing_packet(engine):
    sink = MessageSink("line", engine=engine)
    sink.on_open(ConnectionInfo(0, b"\x0a\0\0\x01", 50000, b"\x0a\0\0\x02", 9000, True, 5, 1))
    hb = frame("Heartbeat")
    sink.on_data(0, "c2s", hb[:10], 10, 2)
    sink.on_data(0, "c2s", hb[10:] + hb, 20, 3)
    sink.on_gap(0, "c2s", 7, 30, 4)
    sink.on_data(0, "c2s", hb, 40, 5)
    sink.on_close(0, 50, "fin")
    sink.flush()
    d = sink.conns[0].dirs["c2s"]
    got = [(r["command"], r["ts_ns"], r["frame"]) for t in d.tables for r in t.to_pylist()]
    assert got == [("Heartbeat", 20, 3), ("Heartbeat", 20, 3), ("Heartbeat", 40, 5)]
    assert (d.bytes, d.lost) == (3 * len(hb), 7)


def test_sink_with_a_reassembler_ignores_non_protocol_connections():
    sink = MessageSink(None)
    r = Reassembler(sink)
    syn, ack, psh = 0x02, 0x10, 0x08
    r.add(_Seg(1, 1, (1, 50000), (2, 80), 100, syn))
    r.add(_Seg(2, 2, (2, 80), (1, 50000), 500, syn | ack, ack=101))
    r.add(_Seg(3, 3, (1, 50000), (2, 80), 101, ack | psh, HTTP_REQUEST, ack=501))
    r.finish()
    sink.flush()
    assert 0 not in sink.conns and sink.ignored == 1  # forgotten once closed


def _sink_rows(data: bytes, **sink_options) -> list[dict]:
    """Every decoded row (with its ts/frame stamp) of a capture, per connection and direction."""
    from camprotool.capture.packets import iter_tcp_segments
    from camprotool.capture.readers import open_capture

    sink = MessageSink(None, **sink_options)
    r = Reassembler(sink)
    with open_capture(data) as capture:
        for seg in iter_tcp_segments(capture):
            r.add(seg)
    r.finish()
    sink.flush()
    out = []
    for conn_id, state in sorted(sink.conns.items()):
        for direction, d in state.dirs.items():
            for t in d.tables:
                out += [{"conn": conn_id, "direction": direction, **row} for row in t.to_pylist()]
    return sorted(out, key=lambda row: (row["conn"], row["direction"], row["end"]))


@pytest.mark.parametrize("engine", ["bulk", "incremental"])
def test_small_batches_give_the_same_rows(engine):
    w = PcapngWriter()
    c = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 9000), T0)
    body = b"".join(frame("UploadCaramer", f"CAM{i:05d}|pw|{i}|40") for i in range(1, 41))
    c.send("c2s", body[:500], T0 + 100, segment_size=37, ts_step_ns=1)
    c.skip("c2s", 23)  # a gap in the middle of the batches
    c.send("c2s", body[523:], T0 + 200, segment_size=37, ts_step_ns=1)
    c.send("s2c", frame("UploadSucess", "CAM00040|true|40|40"), T0 + 300)
    late = w.tcp(("10.0.0.3", 50000), ("10.0.0.2", 9000), T0 + 400, handshake=False)
    late.send("c2s", body[5:400], T0 + 500, segment_size=50, ts_step_ns=1)
    c.close(T0 + 600)
    data = w.getvalue()
    reference = _sink_rows(data, engine=engine)
    assert len(reference) > 40
    assert any(row["error"] for row in reference)
    assert _sink_rows(data, engine=engine, batch_bytes=64) == reference
    assert _sink_rows(data, engine=engine, batch_bytes=1) == reference


@pytest.mark.parametrize("engine", ["fast", "bulk", "incremental"])
def test_gbk_after_an_ascii_start_is_read_as_gbk(engine):
    """Detection sees only ASCII heartbeats; the first Chinese text comes much later."""
    w = PcapngWriter()
    c = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 9000), T0)
    for i in range(20):
        c.send("c2s", frame("Heartbeat", "", "line:gbk"), T0 + i * 1000)
    c.send("c2s", frame("Login", "张三|pw", "line:gbk"), T0 + 50_000)
    c.send("s2c", frame("LoginError", "用户名或者密码错误!", "line:gbk"), T0 + 60_000)
    c.close(T0 + 70_000)
    cap = read(w.getvalue(), engine=engine)
    last = cap.messages.tail(2)
    assert last["error"].isna().all()
    assert last["user"].tolist()[0] == "张三"
    assert last["reason"].tolist()[1] == "用户名或者密码错误!"
    assert cap.connections["dialect"].astype(str).tolist() == ["line:gbk"]


def test_closed_connections_of_other_protocols_are_forgotten():
    """A capture of mostly other traffic must not keep a record per connection."""
    from camprotool.capture.packets import iter_tcp_segments
    from camprotool.capture.readers import open_capture

    w = PcapngWriter()
    for i in range(50):
        c = w.tcp(("10.0.0.1", 40000 + i), ("10.0.0.2", 80), T0 + i * 1000)
        c.send("c2s", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 3000, T0 + i * 1000 + 100)
        c.close(T0 + i * 1000 + 500)
    main = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 9000), T0 + 10**9)
    main.send("c2s", frame("Heartbeat"), T0 + 10**9 + 100)
    main.close(T0 + 10**9 + 200)
    sink = MessageSink()
    reassembler = Reassembler(sink)
    with open_capture(w.getvalue()) as capture:
        for seg in iter_tcp_segments(capture):
            reassembler.add(seg)
    reassembler.finish()
    sink.flush()
    assert sink.ignored == 50
    assert [s.status for s in sink.conns.values()] == ["decoding"]

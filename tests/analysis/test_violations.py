"""``Capture.violations``: one capture per PROTOCOL.md section 5 rule, through ``read_capture``.

The rules themselves are the protocol core's (tests/protocol); here we check
what the capture feeds the machines: which connections, in which order, told
what (opening seen, port announced, closed or not), from unmasked messages.
"""

from __future__ import annotations

import pandas as pd
import pytest

from camprotool import encode, read_capture
from camprotool.analysis import schema
from camprotool.analysis.violations import rebuild_messages
from camprotool.capture.writer import PcapngWriter
from camprotool.protocol.codec import Decoder
from camprotool.protocol.rules import RULES

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
S = 1_000 * MS
CLIENT = ("10.0.0.1", 50000)
SERVER = ("10.0.0.2", 9000)


def say(conn, direction: str, command: str, params: str, at: int) -> None:
    conn.send(direction, encode(command, params), T0 + at)


def logged_in(w: PcapngWriter, *, port: str | None = "9001", handshake: bool = True):
    """A main connection (conn 0): Login (0), LoginOk (1), CreatDataSocket (2) and
    ReturnDataSocketPort (3) when ``port`` is given."""
    m = w.tcp(CLIENT, SERVER, T0, handshake=handshake)
    say(m, "c2s", "Login", "demo|demo", 1 * MS)
    say(m, "s2c", "LoginOk", "3|2024-01-01 10:00:00|10.0.0.1", 2 * MS)
    if port is not None:
        say(m, "c2s", "CreatDataSocket", "demo|demo", 3 * MS)
        say(m, "s2c", "ReturnDataSocketPort", port, 4 * MS)
    return m


def data_conn(w: PcapngWriter, port: int = 9001, at: int = 10 * MS, **kw):
    return w.tcp((CLIENT[0], 50001), (SERVER[0], port), T0 + at, **kw)


def found(cap) -> list[tuple[str, int, int]]:
    v = cap.violations
    return list(zip(v["rule"].astype(str), v["message"].tolist(), v["conn"].tolist(),
                    strict=True))


def test_before_login():
    w = PcapngWriter()
    m = w.tcp(CLIENT, SERVER, T0)
    say(m, "c2s", "CreatDataSocket", "demo|demo", 1 * MS)  # 0
    say(m, "c2s", "Login", "demo|demo", 2 * MS)  # 1
    say(m, "s2c", "LoginOk", "3|2024-01-01 10:00:00|10.0.0.1", 3 * MS)  # 2
    cap = read_capture(w.getvalue())
    assert found(cap) == [("before_login", 0, 0)]
    v = cap.violations.iloc[0]
    assert v["ts"] == pd.Timestamp(T0 + MS, unit="ns", tz="UTC")
    assert v["command"] == "CreatDataSocket"
    assert "CreatDataSocket from the client before the login" in v["detail"]


def test_no_before_login_when_the_capture_starts_after_the_login():
    w = PcapngWriter()
    m = w.tcp(CLIENT, SERVER, T0, handshake=False)
    say(m, "c2s", "CheckCaramerOnlineStatus", "CAM1", 1 * MS)
    say(m, "s2c", "ReturnCaramerOnlineStatus", "CAM1;true", 2 * MS)
    say(m, "c2s", "CreatDataSocket", "demo|demo", 3 * MS)
    cap = read_capture(w.getvalue())
    assert not cap.connections.at[0, "handshake_seen"]
    assert found(cap) == []
    assert cap.sessions["outcome"].astype(str).tolist() == ["before_capture"]


def test_check_too_many_ids():
    w = PcapngWriter()
    m = logged_in(w, port=None)
    say(m, "c2s", "CheckCaramerOnlineStatus", ";".join(f"CAM{i}" for i in range(21)), 3 * MS)
    say(m, "c2s", "CheckCaramerOnlineStatus", ";".join(f"CAM{i}" for i in range(20)), 4 * MS)
    cap = read_capture(w.getvalue())
    assert found(cap) == [("check_too_many_ids", 2, 0)]
    assert "21 camera ids" in cap.violations.at[0, "detail"]


def test_upload_sequence():
    w = PcapngWriter()
    logged_in(w)
    d = data_conn(w)
    say(d, "c2s", "UploadCaramer", "CAM1|1234|1|2", 11 * MS)  # 4
    say(d, "s2c", "UploadSucess", "CAM1|true|1|2", 12 * MS)  # 5
    say(d, "c2s", "UploadCaramer", "CAM2|1234|3|2", 13 * MS)  # 6: skips 2, past the total
    say(d, "s2c", "UploadSucess", "CAM2|true|2|2", 14 * MS)  # 7
    d.close(T0 + 15 * MS)
    cap = read_capture(w.getvalue())
    assert found(cap) == [("upload_sequence", 6, 1)]
    assert "current 3, expected 2" in cap.violations.at[0, "detail"]


def test_download_sequence():
    w = PcapngWriter()
    logged_in(w)
    d = data_conn(w)
    say(d, "c2s", "DownLoadCaramer", "1", 11 * MS)  # 4: must start at 0
    say(d, "s2c", "DownloadSucess", "CAMA|1234|true|2|2", 12 * MS)  # 5
    d.close(T0 + 13 * MS)
    cap = read_capture(w.getvalue())
    assert found(cap) == [("download_sequence", 4, 1)]
    assert "must ask from 0" in cap.violations.at[0, "detail"]


@pytest.mark.parametrize("announced", [None, "9002", ""])
def test_unannounced_data_port(announced):
    """No announcement, another port, or an empty answer: the data connection is a breach."""
    w = PcapngWriter()
    logged_in(w, port=announced)
    d = data_conn(w, port=9001)
    say(d, "c2s", "UploadCaramer", "CAM1|1234|1|1", 11 * MS)
    say(d, "s2c", "UploadSucess", "CAM1|true|1|1", 12 * MS)
    d.close(T0 + 13 * MS)
    cap = read_capture(w.getvalue())
    first = 2 if announced is None else 4
    assert found(cap) == [("unannounced_data_port", first, 1)]
    assert "port 9001" in cap.violations.at[0, "detail"]


def test_an_older_announced_port_stays_usable():
    """9001 then 9002 announced, the client uses 9001: announced, by the one linking
    rule (protocol/linking.py), in the connection table and for the rules alike."""
    w = PcapngWriter()
    m = logged_in(w)
    say(m, "c2s", "CreatDataSocket", "demo|demo", 5 * MS)
    say(m, "s2c", "ReturnDataSocketPort", "9002", 6 * MS)
    d = data_conn(w, port=9001)
    say(d, "c2s", "UploadCaramer", "CAM1|1234|1|1", 11 * MS)
    say(d, "s2c", "UploadSucess", "CAM1|true|1|1", 12 * MS)
    d.close(T0 + 13 * MS)
    cap = read_capture(w.getvalue())
    assert cap.connections.at[1, "announced"] == True  # noqa: E712 (a nullable boolean)
    assert cap.connections.at[1, "main_conn"] == 0
    assert found(cap) == []


def test_data_connection_of_an_unknown_client_cannot_be_judged():
    w = PcapngWriter()
    d = data_conn(w, port=9001, at=0)
    say(d, "c2s", "UploadCaramer", "CAM1|1234|1|1", 1 * MS)
    say(d, "s2c", "UploadSucess", "CAM1|true|1|1", 2 * MS)
    cap = read_capture(w.getvalue())
    assert pd.isna(cap.connections.at[0, "announced"])
    assert found(cap) == []


def test_incomplete_sync():
    w = PcapngWriter()
    logged_in(w)
    d = data_conn(w)
    say(d, "c2s", "UploadCaramer", "CAM1|1234|1|3", 11 * MS)  # 4
    say(d, "s2c", "UploadSucess", "CAM1|true|1|3", 12 * MS)  # 5
    d.close(T0 + 13 * MS, how="rst")
    cap = read_capture(w.getvalue())
    assert found(cap) == [("incomplete_sync", 5, 1)]
    assert cap.violations.at[0, "detail"] == (
        "the data connection closed after 1 of 3 cameras were uploaded")


def test_no_incomplete_sync_when_the_capture_stops_first():
    w = PcapngWriter()
    logged_in(w)
    d = data_conn(w)
    say(d, "c2s", "UploadCaramer", "CAM1|1234|1|3", 11 * MS)
    say(d, "s2c", "UploadSucess", "CAM1|true|1|3", 12 * MS)
    cap = read_capture(w.getvalue())
    assert cap.connections.at[1, "close_reason"] == "end_of_capture"
    assert found(cap) == []
    assert cap.transfers.at[1, "status"] == "cut_short"


def test_malformed_params():
    w = PcapngWriter()
    m = w.tcp(CLIENT, SERVER, T0)
    say(m, "c2s", "Login", "demo|demo", 1 * MS)  # 0
    say(m, "s2c", "LoginOk", "three|2024-01-01 10:00:00|10.0.0.1", 2 * MS)  # 1
    say(m, "c2s", "CreatDataSocket", "demo|demo", 3 * MS)  # 2
    say(m, "s2c", "ReturnDataSocketPort", "70000", 4 * MS)  # 3
    cap = read_capture(w.getvalue())
    assert found(cap) == [("malformed_params", 1, 0), ("malformed_params", 3, 0)]


def test_malformed_params_judged_on_the_unmasked_password():
    """A password holding '|' gives CreatDataSocket three fields. Masking hides where the
    password is (``demo|***``), so the rules must see the parameters as on the wire."""
    w = PcapngWriter()
    m = logged_in(w, port=None)
    say(m, "c2s", "CreatDataSocket", "demo|pa|ss", 3 * MS)  # 2
    cap = read_capture(w.getvalue())
    assert cap.messages.at[2, "params"] == "demo|***"
    assert found(cap) == [("malformed_params", 2, 0)]
    assert cap.violations.at[0, "detail"] == (
        "CreatDataSocket parameters 'demo|***': expected 2 fields (user|password), got 3")
    revealed = read_capture(w.getvalue(), reveal_passwords=True)
    pd.testing.assert_frame_equal(cap.violations[["rule", "message", "conn"]],
                                  revealed.violations[["rule", "message", "conn"]])
    assert "'demo|pa|ss'" in revealed.violations.at[0, "detail"]


def test_heartbeat_gap():
    w = PcapngWriter()
    m = logged_in(w, port=None)
    say(m, "c2s", "Heartbeat", "", 30 * S)  # 2
    say(m, "s2c", "PrushCaramerAlarmInfo", "CAM1:motion", 100 * S)  # 3: server talk only
    say(m, "c2s", "Heartbeat", "", 121 * S)  # 4: 91 s after the last client message
    cap = read_capture(w.getvalue())
    assert found(cap) == [("heartbeat_gap", 4, 0)]
    assert "silent for 91 s since its message 2" in cap.violations.at[0, "detail"]
    assert cap.sessions.at[0, "heartbeat_max_gap"] == pd.Timedelta(91, "s")


def test_several_rules_several_connections_in_message_order():
    w = PcapngWriter()
    m = w.tcp(CLIENT, SERVER, T0)
    say(m, "c2s", "Heartbeat", "", 1 * MS)  # 0
    say(m, "c2s", "CheckCaramerOnlineStatus", ";".join(["X"] * 21), 2 * MS)  # 1: two rules
    say(m, "c2s", "Login", "demo|demo", 3 * MS)  # 2
    say(m, "s2c", "LoginOk", "1|t|ip", 4 * MS)  # 3
    d = w.tcp(("10.0.0.1", 50001), (SERVER[0], 9005), T0 + 5 * MS)
    say(d, "c2s", "DownLoadCaramer", "0", 6 * MS)  # 4: unannounced
    d.close(T0 + 7 * MS)  # 4 again: incomplete (unanswered)
    cap = read_capture(w.getvalue())
    assert found(cap) == [("before_login", 1, 0), ("check_too_many_ids", 1, 0),
                          ("unannounced_data_port", 4, 1), ("incomplete_sync", 4, 1)]
    assert set(cap.violations["rule"].cat.categories) == set(RULES)
    assert list(cap.violations.columns) == list(schema.VIOLATIONS)


def test_notes_keep_what_no_rule_covers():
    w = PcapngWriter()
    m = logged_in(w, port=None)
    say(m, "c2s", "SocketCommand.Vendor.Hello", "x", 3 * MS)  # 2
    say(m, "s2c", "ReturnCaramerOnlineStatus", "CAM1;true", 4 * MS)  # 3: nothing asked
    cap = read_capture(w.getvalue())
    assert found(cap) == []
    assert cap.notes["message"].tolist() == [2, 3]
    assert "unknown command" in cap.notes.at[0, "detail"]


@pytest.mark.parametrize("path", ["captures/sample.pcapng", "captures/sample.pcap",
                                  "captures/download.pcapng"])
def test_samples_break_no_rule(path):
    cap = read_capture(path)
    assert cap.violations.empty
    assert cap.notes.empty
    assert list(cap.violations.columns) == list(schema.VIOLATIONS)


def test_rebuilt_messages_equal_the_decoders():
    """The typed messages rebuilt from the table's columns are the incremental decoder's."""
    params = [
        ("Login", "demo|pa|ss"), ("LoginOk", "x|y|z"), ("ReturnDataSocketPort", ""),
        ("CheckCaramerOnlineStatus", "A;B;C"), ("ReturnCaramerOnlineStatus", "A;true|B;null"),
        ("UploadCaramer", "CAM1|1234|1|2"), ("DownloadSucess", "CAMA|1|maybe|1|1"),
        ("Heartbeat", ""), ("PrushCaramerAlarmInfo", "CAM1:motion"),
        ("SocketCommand.Vendor.Hello", "x|y"),
    ]
    w = PcapngWriter()
    m = w.tcp(CLIENT, SERVER, T0)
    wire = b""
    for i, (command, text) in enumerate(params):
        frame = encode(command, text)
        wire += frame
        m.send("c2s", frame, T0 + (i + 1) * MS)
    cap = read_capture(w.getvalue())
    rebuilt = rebuild_messages(cap.decoded.messages)
    decoded = Decoder("line").feed(wire)
    strip = [(type(x).__name__, x.command, x.params, x.error, x.fields) for x in decoded]
    assert [(type(x).__name__, x.command, x.params, x.error, x.fields)
            for x in rebuilt] == strip


def test_messages_around_lost_bytes_are_rebuilt_as_the_decoder_left_them():
    """A frame cut by lost bytes and the tail after them are unknown messages with an
    error; the rules judge neither (no before_login), only the next known command."""
    w = PcapngWriter()
    m = w.tcp(CLIENT, SERVER, T0)
    first, second = encode("CheckCaramerOnlineStatus", "CAM1"), encode("Login", "demo|demo")
    m.send("c2s", first[:10], T0 + 1 * MS)
    m.skip("c2s", len(first) - 10 + 5)
    m.send("c2s", second[5:], T0 + 2 * MS)
    m.send("c2s", encode("CreatDataSocket", "demo|demo"), T0 + 3 * MS)
    cap = read_capture(w.getvalue())
    dec = Decoder("line")
    expected = (dec.feed(first[:10]) + dec.gap(len(first) - 10 + 5) + dec.feed(second[5:])
                + dec.feed(encode("CreatDataSocket", "demo|demo")))
    rebuilt = rebuild_messages(cap.decoded.messages)
    assert [(type(x).__name__, x.command, x.params, x.error) for x in rebuilt] == [
        (type(x).__name__, x.command, x.params, x.error) for x in expected]
    assert [type(x).__name__ for x in rebuilt] == ["UnknownMessage", "UnknownMessage",
                                                   "CreatDataSocket"]
    assert found(cap) == [("before_login", 2, 0)]
    assert cap.notes["message"].tolist() == [0, 1]


def test_heartbeat_timeout_is_a_setting():
    """failed_sync.pcapng has a 125 s silence: reported at 90 s, not at 200 s or when off."""
    from pathlib import Path

    sample = Path(__file__).resolve().parents[2] / "captures" / "failed_sync.pcapng"
    rules = {t: read_capture(sample, heartbeat_timeout=t).violations["rule"].astype(str).tolist()
             for t in (90, 200, None)}
    assert "heartbeat_gap" in rules[90]
    assert "heartbeat_gap" not in rules[200] and "heartbeat_gap" not in rules[None]
    with pytest.raises(ValueError, match="heartbeat_timeout"):
        read_capture(sample, heartbeat_timeout=0)


def test_lost_login_answer_stops_before_login_judgements():
    w = PcapngWriter()
    c = w.tcp(CLIENT, SERVER, T0)
    say(c, "c2s", "Login", "demo|pw", 1 * S)
    c.skip("s2c", len(encode("LoginOk", "1|2024|1.2.3.4")))  # LoginOk not captured
    say(c, "s2c", "PrushCaramerOnlineStatus", "CAM1:true", 3 * S)
    for i in range(3):
        say(c, "c2s", "Heartbeat", "", (10 + 30 * i) * S)
        say(c, "c2s", "CheckCaramerOnlineStatus", "CAM1", (11 + 30 * i) * S)
        say(c, "s2c", "ReturnCaramerOnlineStatus", "CAM1;true", (12 + 30 * i) * S)
    c.close(T0 + 100 * S)
    cap = read_capture(w.getvalue())
    assert cap.violations.empty, cap.violations
    # Bytes lost after the answer do not hide a real before_login.
    w = PcapngWriter()
    c = w.tcp(CLIENT, SERVER, T0)
    say(c, "c2s", "CheckCaramerOnlineStatus", "CAM1", 1 * S)
    say(c, "c2s", "Login", "demo|pw", 2 * S)
    say(c, "s2c", "LoginOk", "1|2024|1.2.3.4", 3 * S)
    c.skip("s2c", 10)
    say(c, "s2c", "PrushCaramerOnlineStatus", "CAM1:true", 4 * S)
    cap = read_capture(w.getvalue())
    assert cap.violations["rule"].tolist() == ["before_login"]


def test_a_clock_step_backwards_does_not_reorder_a_stream():
    w = PcapngWriter()
    d = w.tcp(("10.0.0.1", 50001), ("10.0.0.2", 9001), T0)
    say(d, "c2s", "UploadCaramer", "C1|p|1|2", 6 * S)
    say(d, "c2s", "UploadCaramer", "C2|p|2|2", 6 * S - MS)  # the next packet, 1 ms "earlier"
    d.send("s2c", encode("UploadSucess", "C1|true|1|2") + encode("UploadSucess", "C2|true|2|2"),
           T0 + 7 * S)
    d.close(T0 + 9 * S)
    cap = read_capture(w.getvalue())
    assert cap.messages["ts"].is_monotonic_increasing  # the contract: messages by ts
    assert cap.violations.empty, cap.violations
    m = cap.messages
    pairs = [(m.loc[r, "camera_id"], m.loc[a, "camera_id"])
             for r, a in zip(cap.sync["request"], cap.sync["answer"], strict=True)]
    assert sorted(pairs) == [("C1", "C1"), ("C2", "C2")]

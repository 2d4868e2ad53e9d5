"""The connection table: roles, main/data channels, and data connections linked to the main
connection that announced their port."""

from __future__ import annotations

import pandas as pd
import pytest
from conversations import T0, frame, main_session, read, upload

from camprotool.capture.writer import PcapngWriter

A, B, S = "10.0.0.1", "10.0.0.3", "10.0.0.2"


def _table(cap) -> list[tuple]:
    c = cap.connections
    return [
        (conn, r.channel, r.client, r.server, None if pd.isna(r.main_conn) else int(r.main_conn),
         None if pd.isna(r.announced) else bool(r.announced))
        for conn, r in c.iterrows()
    ]


def two_clients() -> PcapngWriter:
    """Two clients, each with a main connection and a data connection, interleaved."""
    w = PcapngWriter()
    ma = w.tcp((A, 50000), (S, 9000), T0)  # conn 0
    mb = w.tcp((B, 50000), (S, 9000), T0 + 10)  # conn 1
    ma.send("c2s", frame("Login", "a|pa"), T0 + 100)
    mb.send("c2s", frame("Login", "b|pb"), T0 + 110)
    ma.send("s2c", frame("LoginOk", "1|t|ip"), T0 + 200)
    mb.send("s2c", frame("LoginOk", "1|t|ip"), T0 + 210)
    ma.send("c2s", frame("CreatDataSocket", "a|pa"), T0 + 300)
    mb.send("c2s", frame("CreatDataSocket", "b|pb"), T0 + 310)
    ma.send("s2c", frame("ReturnDataSocketPort", "9001"), T0 + 400)
    mb.send("s2c", frame("ReturnDataSocketPort", "9002"), T0 + 410)
    db = w.tcp((B, 50001), (S, 9002), T0 + 500)  # conn 2: B's data connection first
    da = w.tcp((A, 50001), (S, 9001), T0 + 510)  # conn 3
    da.send("c2s", frame("DownLoadCaramer", "0"), T0 + 600)
    db.send("c2s", frame("UploadCaramer", "C1|x|1|1"), T0 + 610)
    da.send("s2c", frame("DownloadFail", "none"), T0 + 700)
    db.send("s2c", frame("UploadSucess", "C1|true|1|1"), T0 + 710)
    da.close(T0 + 800, how="rst", by="s2c")
    db.close(T0 + 810)
    ma.close(T0 + 900)
    return w


def test_two_clients_interleaved_link_to_their_own_main():
    cap = read(two_clients().getvalue())
    assert _table(cap) == [
        (0, "main", "10.0.0.1:50000", "10.0.0.2:9000", None, None),
        (1, "main", "10.0.0.3:50000", "10.0.0.2:9000", None, None),
        (2, "data", "10.0.0.3:50001", "10.0.0.2:9002", 1, True),
        (3, "data", "10.0.0.1:50001", "10.0.0.2:9001", 0, True),
    ]
    conns = cap.connections
    assert conns["close_reason"].astype(str).tolist() == ["fin", "end_of_capture", "fin", "rst"]
    assert conns["handshake_seen"].tolist() == [True] * 4
    assert conns["messages"].tolist() == [4, 4, 2, 2]
    assert conns["server_port"].tolist() == [9000, 9000, 9002, 9001]
    # The messages carry their connection's channel and ends.
    m = cap.messages
    assert m.loc[m["conn"] == 3, "channel"].astype(str).unique().tolist() == ["data"]
    assert m.loc[m["conn"] == 3, "client"].unique().tolist() == ["10.0.0.1:50001"]


def test_channels_by_command_votes():
    w = PcapngWriter()
    m = w.tcp((A, 50000), (S, 7000), T0)  # main by its commands, on an odd port
    m.send("c2s", frame("Heartbeat"), T0 + 100)
    m.send("c2s", frame("CheckCaramerOnlineStatus", "C1"), T0 + 150)
    d = w.tcp((A, 50001), (S, 7001), T0 + 200)  # data by its commands, never announced
    d.send("c2s", frame("DownLoadCaramer", "0"), T0 + 300)
    u = w.tcp((A, 50002), (S, 7002), T0 + 400)  # only an unknown command: unknown channel
    u.send("c2s", frame("SocketCommand.FooCommand.Frob", "x"), T0 + 500)
    cap = read(w.getvalue())
    assert _table(cap) == [
        (0, "main", "10.0.0.1:50000", "10.0.0.2:7000", None, None),
        (1, "data", "10.0.0.1:50001", "10.0.0.2:7001", None, False),  # A has a main: unannounced
        (2, "unknown", "10.0.0.1:50002", "10.0.0.2:7002", None, None),
    ]


def test_unannounced_and_unjudgeable_data_connections():
    w = PcapngWriter()
    main = main_session(w, T0, client=(A, 50000))  # announces 9001 at T0 + 400
    upload(w, T0 + 1000, client=(A, 50002), server=(S, 9005))  # conn 1: port never announced
    upload(w, T0 + 2000, client=("10.0.0.9", 50000), server=(S, 9001))  # conn 2: no main
    upload(w, T0 + 3000, client=(A, 50003), server=(S, 9001))  # conn 3: announced
    main.close(T0 + 4000)
    cap = read(w.getvalue())
    assert _table(cap) == [
        (0, "main", "10.0.0.1:50000", "10.0.0.2:9000", None, None),
        (1, "data", "10.0.0.1:50002", "10.0.0.2:9005", None, False),
        (2, "data", "10.0.0.9:50000", "10.0.0.2:9001", None, None),
        (3, "data", "10.0.0.1:50003", "10.0.0.2:9001", 0, True),
    ]


def test_data_connection_before_the_announcement_is_not_linked():
    w = PcapngWriter()
    m = w.tcp((A, 50000), (S, 9000), T0)
    m.send("c2s", frame("Login", "a|pa"), T0 + 100)
    m.send("s2c", frame("LoginOk", "0|t|ip"), T0 + 200)
    upload(w, T0 + 300, client=(A, 50001), server=(S, 9001))  # conn 1: too early
    m.send("c2s", frame("CreatDataSocket", "a|pa"), T0 + 2000)
    m.send("s2c", frame("ReturnDataSocketPort", "9001"), T0 + 2100)
    upload(w, T0 + 2200, client=(A, 50002), server=(S, 9001))  # conn 2: after it
    cap = read(w.getvalue())
    assert [(r[0], r[4], r[5]) for r in _table(cap)] == [
        (0, None, None), (1, None, False), (2, 0, True)]


def test_latest_announcement_wins_and_an_empty_one_links_nothing():
    w = PcapngWriter()
    m = main_session(w, T0, client=(A, 50000), data_port=9001)
    upload(w, T0 + 1000, client=(A, 50001), server=(S, 9001))  # conn 1: linked
    m.send("c2s", frame("CreatDataSocket", "a|pa"), T0 + 2000)
    m.send("s2c", frame("ReturnDataSocketPort", ""), T0 + 2100)  # no free port
    upload(w, T0 + 2200, client=(A, 50002), server=(S, 9001))  # conn 2: after the empty one
    m.send("c2s", frame("CreatDataSocket", "a|pa"), T0 + 3000)
    m.send("s2c", frame("ReturnDataSocketPort", "9002"), T0 + 3100)
    upload(w, T0 + 3200, client=(A, 50003), server=(S, 9001))  # conn 3: 9002 was announced
    upload(w, T0 + 3300, client=(A, 50004), server=(S, 9002))  # conn 4: linked
    cap = read(w.getvalue())
    assert [(r[0], r[4], r[5]) for r in _table(cap)] == [
        (0, None, None), (1, 0, True), (2, None, False), (3, None, False), (4, 0, True)]


def test_a_malformed_announcement_neither_announces_nor_clears():
    """An answer whose port does not parse is an error row: unlike an empty answer it
    says nothing about the ports, so the announcement before it still links."""
    w = PcapngWriter()
    m = main_session(w, T0, client=(A, 50000), data_port=9001)
    m.send("c2s", frame("CreatDataSocket", "a|pa"), T0 + 2000)
    m.send("s2c", frame("ReturnDataSocketPort", "9002x"), T0 + 2100)
    upload(w, T0 + 2200, client=(A, 50001), server=(S, 9001))  # conn 1: linked
    cap = read(w.getvalue())
    assert cap.messages["error"].notna().sum() == 1
    assert [(r[0], r[4], r[5]) for r in _table(cap)] == [(0, None, None), (1, 0, True)]


def test_a_silent_connection_to_an_announced_port_is_data():
    w = PcapngWriter()
    m = main_session(w, T0, client=(A, 50000))
    d = w.tcp((A, 50001), (S, 9001), T0 + 1000)  # opened and closed without a message
    d.close(T0 + 1100)
    cap = read(w.getvalue(), dialect="line")
    assert _table(cap)[1] == (1, "data", "10.0.0.1:50001", "10.0.0.2:9001", 0, True)
    assert cap.connections.loc[1, "messages"] == 0
    m.close(T0 + 2000)


def test_roles_without_handshake_are_decided_by_content():
    w = PcapngWriter()
    # The capture starts after the handshake and the server's push is the first packet.
    c = w.tcp((A, 50000), (S, 9000), T0, handshake=False)
    c.send("s2c", frame("PrushCaramerAlarmInfo", "C1:motion"), T0 + 100)
    c.send("c2s", frame("Heartbeat"), T0 + 200)
    c.send("s2c", frame("PrushCaramerOnlineStatus", "C1:true"), T0 + 300)
    c.close(T0 + 400, how="rst", by="s2c")
    cap = read(w.getvalue())
    conn = cap.connections.loc[0]
    assert (conn.client, conn.server, conn.client_port, conn.server_port) == (
        "10.0.0.1:50000", "10.0.0.2:9000", 50000, 9000)
    assert not conn.handshake_seen
    assert conn.close_reason == "rst"
    assert (conn.bytes_c2s, conn.bytes_s2c) == (
        len(frame("Heartbeat")),
        len(frame("PrushCaramerAlarmInfo", "C1:motion"))
        + len(frame("PrushCaramerOnlineStatus", "C1:true")))
    assert cap.messages["direction"].astype(str).tolist() == ["s2c", "c2s", "s2c"]


def test_handshake_decides_roles_even_if_commands_disagree():
    w = PcapngWriter()
    # A peer that connects and then only sends server commands stays the client.
    c = w.tcp((A, 50000), (S, 9000), T0)
    c.send("c2s", frame("LoginOk", "1|t|ip"), T0 + 100)
    c.send("s2c", frame("Login", "x|y"), T0 + 200)
    cap = read(w.getvalue())
    assert cap.connections.loc[0, "client"] == "10.0.0.1:50000"
    assert cap.connections.loc[0, "handshake_seen"]
    assert cap.connections.loc[0, "close_reason"] == "end_of_capture"
    assert cap.messages["direction"].astype(str).tolist() == ["c2s", "s2c"]


def test_link_uses_the_data_client_ip_after_a_role_swap():
    w = PcapngWriter()
    m = main_session(w, T0, client=(A, 50000))
    # The data connection is seen from its middle, the server's answer first.
    d = w.tcp((A, 50001), (S, 9001), T0 + 1000, handshake=False)
    d.send("s2c", frame("UploadSucess", "C1|true|1|2"), T0 + 1100)
    d.send("c2s", frame("UploadCaramer", "C2|pw|2|2"), T0 + 1200)
    d.close(T0 + 1300)
    m.close(T0 + 2000)
    cap = read(w.getvalue())
    assert _table(cap)[1] == (1, "data", "10.0.0.1:50001", "10.0.0.2:9001", 0, True)


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_times_and_close_reason(how):
    w = PcapngWriter()
    c = main_session(w, T0)
    c.close(T0 + 1000, how=how)
    cap = read(w.getvalue())
    conn = cap.connections.loc[0]
    assert conn.start.value == T0
    # FIN: closed when the second FIN is delivered (half an RTT after the first)
    end = T0 + 1000 + (c.rtt_ns // 2 if how == "fin" else 0)
    assert conn.end.value == end
    assert conn.duration == pd.Timedelta(end - T0, "ns")
    assert conn.close_reason == how


def _nat_two_mains(second_port: str) -> PcapngWriter:
    """Two main connections from one NAT address; alice gets 9001, bob ``second_port``."""
    nat = "203.0.113.5"
    w = PcapngWriter()
    mains = [w.tcp((nat, 40000), (S, 9000), T0), w.tcp((nat, 40100), (S, 9000), T0)]
    for i, (m, user) in enumerate(zip(mains, ("alice", "bob"), strict=True)):
        m.send("c2s", frame("Login", f"{user}|pw"), T0 + 100 + i)
        m.send("s2c", frame("LoginOk", "1|t|ip"), T0 + 200 + i)
        m.send("c2s", frame("CreatDataSocket", f"{user}|pw"), T0 + 300 + i)
    mains[0].send("s2c", frame("ReturnDataSocketPort", "9001"), T0 + 400)
    mains[1].send("s2c", frame("ReturnDataSocketPort", second_port), T0 + 410)
    da = w.tcp((nat, 40001), (S, 9001), T0 + 500)  # conn 2: alice's
    da.send("c2s", frame("DownLoadCaramer", "0"), T0 + 600)
    da.send("s2c", frame("DownloadSucess", "C1|p|true|1|1"), T0 + 700)
    da.close(T0 + 800)
    return w


@pytest.mark.parametrize("second_port", ["9002", ""])
def test_data_connection_links_to_the_main_that_announced_its_port_behind_nat(second_port):
    cap = read(_nat_two_mains(second_port).getvalue())
    assert _table(cap)[2][1:] == ("data", "203.0.113.5:40001", f"{S}:9001", 0, True)
    assert cap.violations.empty


def test_roles_without_handshake_when_only_the_server_speaks():
    w = PcapngWriter()
    c = w.tcp((A, 40000), (S, 9000), T0, handshake=False)
    c.send("s2c", frame("PrushCaramerAlarmInfo", "CAM1:motion"), T0 + 100)
    c.ack("c2s", T0 + 200)
    c.send("s2c", frame("PrushCaramerOnlineStatus", "CAM1:false"), T0 + 300)
    c.ack("c2s", T0 + 400)
    cap = read(w.getvalue())
    assert _table(cap) == [(0, "main", f"{A}:40000", f"{S}:9000", None, None)]
    assert cap.messages["direction"].tolist() == ["s2c", "s2c"]
    assert len(cap.alarms) == 1 and cap.notes.empty


def test_announced_data_connection_without_a_byte_is_an_empty_data_connection():
    w = PcapngWriter()
    main_session(w, T0, client=(A, 50000), data_port=9001)
    d = w.tcp((A, 50001), (S, 9001), T0 + 1000)  # conn 1: closed at once, nothing sent
    d.close(T0 + 1100, by="s2c")
    other = w.tcp((A, 50002), (S, 8080), T0 + 1200)  # conn 2: not announced, no bytes
    other.close(T0 + 1300)
    web = w.tcp((A, 50003), (S, 9001), T0 + 1400)  # conn 3: bytes, not the protocol
    web.send("c2s", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 10, T0 + 1500)
    web.close(T0 + 1600)
    cap = read(w.getvalue())
    assert [(r[0], r[1], r[4], r[5]) for r in _table(cap)] == [
        (0, "main", None, None), (1, "data", 0, True)]
    assert cap.transfers["status"].astype(str).tolist() == ["empty"]
    assert cap.sessions["data_conns"].tolist() == [[1]]


def test_two_ports_asked_for_before_either_is_used_both_link():
    """The client asks twice, gets 9001 then 9002, then opens 9001: the older port is
    still usable (no empty answer came), so it links (protocol/linking.py); the former
    rule took only the latest port of each main connection and called it unannounced."""
    w = PcapngWriter()
    m = main_session(w, T0, client=(A, 50000), data_port=9001)
    m.send("c2s", frame("CreatDataSocket", "a|pa"), T0 + 500)
    m.send("s2c", frame("ReturnDataSocketPort", "9002"), T0 + 600)
    upload(w, T0 + 1000, client=(A, 50001), server=(S, 9001))  # conn 1
    upload(w, T0 + 2000, client=(A, 50002), server=(S, 9002))  # conn 2
    cap = read(w.getvalue())
    assert [(r[0], r[4], r[5]) for r in _table(cap)] == [(0, None, None), (1, 0, True),
                                                           (2, 0, True)]
    assert cap.transfers["client"].tolist() == [f"{A}:50000"] * 2
    assert cap.violations.empty


def test_a_port_of_another_server_is_not_linked():
    """9001 announced by server S says nothing about port 9001 of server S2: the data
    connection there is neither linked nor judged (no main connection to S2 was seen)."""
    s2 = "10.0.0.7"
    w = PcapngWriter()
    main_session(w, T0, client=(A, 50000), data_port=9001)
    upload(w, T0 + 1000, client=(A, 50001), server=(s2, 9001))  # conn 1
    upload(w, T0 + 2000, client=(A, 50002), server=(S, 9001))  # conn 2
    cap = read(w.getvalue())
    assert [(r[0], r[4], r[5]) for r in _table(cap)] == [(0, None, None), (1, None, None),
                                                           (2, 0, True)]


def test_a_port_sent_by_the_client_announces_nothing():
    """A ReturnDataSocketPort the client sends (a server command, the wrong way) is no
    announcement: only the server hands out ports."""
    w = PcapngWriter()
    m = w.tcp((A, 50000), (S, 9000), T0)
    m.send("c2s", frame("Login", "a|pa"), T0 + 100)
    m.send("s2c", frame("LoginOk", "1|t|ip"), T0 + 200)
    m.send("c2s", frame("ReturnDataSocketPort", "9001"), T0 + 300)
    upload(w, T0 + 1000, client=(A, 50001), server=(S, 9001))  # conn 1
    cap = read(w.getvalue())
    assert [(r[0], r[4], r[5]) for r in _table(cap)] == [(0, None, None), (1, None, False)]

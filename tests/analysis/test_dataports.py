"""Rule ``data_port_hijack`` in ``Capture.violations``, with both rule engines."""

from __future__ import annotations

from camprotool import encode, read_capture
from camprotool.analysis.violations import RuleCheck
from camprotool.capture.writer import PcapngWriter

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
CLIENT = "10.0.0.1"
OTHER = "10.0.0.66"
SERVER = ("10.0.0.2", 9000)


def say(conn, direction: str, command: str, params: str, at: int) -> None:
    conn.send(direction, encode(command, params), T0 + at)


def announced(w: PcapngWriter, port: int = 9001):
    """Main connection 0 from CLIENT: messages 0-3, port announced at message 3 (4 ms)."""
    m = w.tcp((CLIENT, 50000), SERVER, T0)
    say(m, "c2s", "Login", "demo|demo", 1 * MS)
    say(m, "s2c", "LoginOk", "3|2024-01-01 10:00:00|10.0.0.1", 2 * MS)
    say(m, "c2s", "CreatDataSocket", "demo|demo", 3 * MS)
    say(m, "s2c", "ReturnDataSocketPort", str(port), 4 * MS)
    return m


def download(w: PcapngWriter, source: tuple[str, int], at: int, port: int = 9001) -> None:
    d = w.tcp(source, (SERVER[0], port), T0 + at)
    say(d, "c2s", "DownLoadCaramer", "0", at + 1 * MS)
    say(d, "s2c", "DownloadSucess", "CAM1|1234|true|1|1", at + 2 * MS)
    d.close(T0 + at + 3 * MS)


def hijacks(data: bytes) -> list[tuple[int, int, str]]:
    """(message, conn, detail) of each data_port_hijack, the same with both engines."""
    cap = read_capture(data)
    v = cap.violations
    got = [(int(r.message), int(r.conn), r.detail) for r in v.itertuples()
           if r.rule == "data_port_hijack"]
    ref = RuleCheck(cap.decoded.messages, cap.messages, cap.connections,
                    engine="reference").violations()
    assert ref.equals(v)
    return got


def test_a_normal_transfer_is_no_hijack():
    w = PcapngWriter()
    announced(w)
    download(w, (CLIENT, 50001), 10 * MS)
    assert hijacks(w.getvalue()) == []


def test_a_data_connection_from_another_address():
    w = PcapngWriter()
    announced(w)
    download(w, (OTHER, 40000), 10 * MS)  # messages 4-5 (conn 1)
    ((message, conn, detail),) = hijacks(w.getvalue())
    assert (message, conn) == (4, 1)
    assert ("data connection 1 from 10.0.0.66:40000 to port 9001, announced at message 3 "
            "on main connection 0 to 10.0.0.1: from another address") in detail
    assert "another program taking the session" in detail


def test_a_second_connection_to_one_announcement():
    """The thief from the same host came first; the real client's connection is the
    second one. The rule cannot tell which is which: it names both."""
    w = PcapngWriter()
    announced(w)
    download(w, (CLIENT, 50002), 10 * MS)  # conn 1: messages 4-5
    download(w, (CLIENT, 50001), 20 * MS)  # conn 2: messages 6-7
    ((message, conn, detail),) = hijacks(w.getvalue())
    assert (message, conn) == (6, 2)
    assert ("is connection number 2 to that one announcement (the first: connection 1 from "
            "10.0.0.1:50002)") in detail


def test_a_new_announcement_allows_a_new_connection():
    w = PcapngWriter()
    m = announced(w)
    download(w, (CLIENT, 50001), 10 * MS)
    say(m, "c2s", "CreatDataSocket", "demo|demo", 30 * MS)
    say(m, "s2c", "ReturnDataSocketPort", "9001", 31 * MS)
    download(w, (CLIENT, 50002), 40 * MS)
    assert hijacks(w.getvalue()) == []


def test_a_port_announced_to_two_clients_in_turn_is_no_hijack():
    """A server with more clients than data ports gives one port to many: client A
    connects after the same port was announced to client B as well."""
    w = PcapngWriter()
    announced(w)  # 9001 to CLIENT at 4 ms
    other = w.tcp((OTHER, 50000), SERVER, T0 + 1 * MS)
    say(other, "c2s", "Login", "bob|bob", 2 * MS)
    say(other, "s2c", "LoginOk", "1|2024-01-01 10:00:00|10.0.0.66", 3 * MS)
    say(other, "c2s", "CreatDataSocket", "bob|bob", 5 * MS)
    say(other, "s2c", "ReturnDataSocketPort", "9001", 6 * MS)
    download(w, (CLIENT, 50001), 10 * MS)
    download(w, (OTHER, 40000), 12 * MS)
    assert hijacks(w.getvalue()) == []


def test_a_refused_connection_without_messages_is_reported_on_the_announcement():
    """An empty connection (a server that reset it) is listed when its port was announced
    to its address: a second one to the same announcement is reported on the announcement."""
    w = PcapngWriter()
    announced(w)
    download(w, (CLIENT, 50001), 10 * MS)
    w.tcp((CLIENT, 50003), (SERVER[0], 9001), T0 + 11 * MS).close(T0 + 12 * MS)
    found = hijacks(w.getvalue())
    assert [(m, c) for m, c, _ in found] == [(3, 0)]
    assert "carried no message; reported on the announcement" in found[0][2]


def test_a_port_used_after_an_empty_answer_is_unannounced_not_a_hijack():
    """After an empty answer the client holds no announcement of 9001 (the one linking
    rule, protocol/linking.py): connecting to it again is ``unannounced_data_port``, not
    a second connection to the old announcement (which the rule used to say as well)."""
    w = PcapngWriter()
    m = announced(w)
    download(w, (CLIENT, 50001), 10 * MS)  # conn 1: messages 4-5
    say(m, "c2s", "CreatDataSocket", "demo|demo", 30 * MS)  # 6
    say(m, "s2c", "ReturnDataSocketPort", "", 31 * MS)  # 7: no free port
    download(w, (CLIENT, 50002), 40 * MS)  # conn 2: messages 8-9
    assert hijacks(w.getvalue()) == []
    cap = read_capture(w.getvalue())
    assert cap.violations[["rule", "message", "conn"]].values.tolist() == [
        ["unannounced_data_port", 8, 2]]

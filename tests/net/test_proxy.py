"""The recording proxy: byte-exact forwarding, data-port rewriting, faithful records."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from camprotool.net import Proxy
from camprotool.net.proxy import rewrite_port
from camprotool.net.testing import LoopbackPair, RawConnection, refused, wait_until
from camprotool.protocol import Decoder, Dialect, encode

VIEW = ["channel", "direction", "command", "params"]


@pytest.fixture
def through_proxy() -> Iterator[tuple[LoopbackPair, Proxy]]:
    with LoopbackPair() as pair, Proxy(upstream=pair.server.address) as proxy:
        yield pair, proxy


@pytest.mark.parametrize("dialect", ["line", "lp32le", "lp32be:gbk"])
@pytest.mark.parametrize("name", ["SocketCommand.NormalCommand.ReturnDataSocketPort",
                                  "SocketCommand.NormalCommand. ReturnDataSocketPort",
                                  "ReturnDataSocketPort"])
def test_rewrite_port_keeps_the_name_as_spelled(dialect: str, name: str) -> None:
    d = Dialect.parse(dialect)
    frame = encode("ReturnDataSocketPort", "9001", d).replace(
        b"SocketCommand.NormalCommand.ReturnDataSocketPort", name.encode())
    if not d.is_line:
        frame = len(frame[4:]).to_bytes(4, d.byteorder) + frame[4:]
    out = rewrite_port(frame, d, 45678)
    (msg,) = Decoder(d).feed(out)
    assert (msg.port, msg.error) == (45678, None)
    assert out.replace(b"45678", b"9001")[4 if not d.is_line else 0:] == \
        frame[4 if not d.is_line else 0:]


def test_a_sync_through_the_proxy_is_recorded_as_both_ends_saw_it(through_proxy) -> None:
    pair, proxy = through_proxy
    with proxy.client(heartbeat_interval=None) as client:
        client.login("demo", "demo")
        assert client.sync([]).kind == "download"
        client.login("alice", "alice")
        assert [r.ok for r in client.upload([("CAM00001", "1234"), ("DEMO0001", "1234")])] \
            == [True, False]
        pair.server.raise_alarm("CAM00001", "sound")
        assert client.next_push(2).params == "CAM00001:sound"
        assert client.check_status(["CAM00001"]) == {"CAM00001": None}
        seen_by_client = client.messages
    wait_until(lambda: len(pair.server.log) == len(proxy.log) == len(seen_by_client))
    server, recorded = pair.server.messages, proxy.messages
    assert recorded[VIEW].to_numpy().tolist() == server[VIEW].to_numpy().tolist()
    # The client saw the proxy's data port; everything else is byte-for-byte the same.
    rewritten = seen_by_client.command == "ReturnDataSocketPort"
    assert seen_by_client[~rewritten][VIEW].to_numpy().tolist() == \
        recorded[~rewritten.values][VIEW].to_numpy().tolist()
    assert set(seen_by_client[rewritten].port).isdisjoint(set(pair.server.data_ports))
    assert set(recorded[recorded.command == "ReturnDataSocketPort"].port) <= \
        set(pair.server.data_ports)
    # the proxy records the real client and the real server, as a sniffer would
    assert set(recorded[recorded.channel == "main"].server) == {
        f"127.0.0.1:{pair.server.port}"}
    assert set(recorded[recorded.channel == "main"].client) == set(
        seen_by_client[seen_by_client.channel == "main"].client)


def test_the_proxy_forwards_unknown_and_broken_bytes_unchanged(through_proxy) -> None:
    pair, proxy = through_proxy
    with RawConnection(proxy.address) as raw:
        raw.send_bytes(b"\r\nSocketCommand.Vendor.Thing|a|b\r\n")
        raw.send("Login", "demo|demo")
        assert raw.receive().command == "LoginOk"
    wait_until(lambda: len(pair.server.messages) >= 2)
    assert pair.server.messages.command.tolist()[:2] == ["SocketCommand.Vendor.Thing", "Login"]


def test_the_proxy_refuses_a_data_connection_from_another_address(through_proxy) -> None:
    _pair, proxy = through_proxy
    with proxy.client(heartbeat_interval=None) as client:
        client.login("demo", "demo")
        port = client.create_data_socket()
        assert refused((proxy.address[0], port), source="127.0.0.2")
        with RawConnection((proxy.address[0], port)) as rightful:
            rightful.send("DownLoadCaramer", "0")
            assert rightful.receive().camera_id == "DEMO0001"


def test_an_unreachable_upstream_closes_the_client_connection() -> None:
    with Proxy(upstream=("127.0.0.1", 1)) as proxy:
        assert refused(proxy.address)


def test_a_client_half_close_still_gets_the_servers_answer() -> None:
    with LoopbackPair(reply_delay=0.2) as pair, Proxy(upstream=pair.server.address) as proxy:
        with RawConnection(proxy.address) as raw:
            raw.send("Login", "demo|demo")
            raw.sock.shutdown(socket.SHUT_WR)  # "that is all I will send"
            assert raw.receive(3).command == "LoginOk"
            assert raw.closed_by_peer(3)  # the server closed after answering, so does the proxy
        wait_until(lambda: "LoginOk" in proxy.messages.command.tolist())


def test_a_half_closed_connection_to_a_server_that_stays_open_ends_in_time() -> None:
    upstream = socket.socket()
    upstream.bind(("127.0.0.1", 0))
    upstream.listen(4)  # the kernel accepts; nobody ever answers or closes
    try:
        with Proxy(upstream=upstream.getsockname(), half_close_timeout=0.3) as proxy, \
                RawConnection(proxy.address) as raw:
            raw.send("Heartbeat")
            raw.sock.shutdown(socket.SHUT_WR)
            assert raw.closed_by_peer(3)
    finally:
        upstream.close()

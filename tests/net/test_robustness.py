"""A running server survives hostile and broken peers, then still serves and keeps bindings.

Each test abuses one shared server (per framing family) and ends with
``assert_healthy``: a normal client logs in, the binding committed before the
abuse is still there, and no handler crashed.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from camprotool.net import ConnectionLost
from camprotool.net.brake import BrakeConfig
from camprotool.net.testing import LoopbackPair, RawConnection, refused, wait_until
from camprotool.protocol import encode


@pytest.fixture(scope="module", params=["line", "lp32le"])
def pair(request: pytest.FixtureRequest) -> Iterator[LoopbackPair]:
    # the brute-force brake with its defaults' shape in tenths of a second (test_brake.py
    # checks the figures themselves)
    brake = BrakeConfig(base_delay=0.01, max_delay=0.16)
    with LoopbackPair(dialect=request.param, heartbeat_timeout=0.5,
                      max_login_failures=5, brake=brake) as p:
        p.client.login("alice", "alice")
        assert p.client.upload([("CAM00005", "1234")])[0].ok  # committed before the abuse
        yield p


def assert_healthy(pair: LoopbackPair) -> None:
    client = pair.new_client()
    try:
        client.login("alice", "alice")
        assert [c.id for c in client.download()] == ["CAM00005"]
        assert client.check_status(["DEMO0001"]) == {"DEMO0001": True}
    finally:
        client.close()
        pair.clients.remove(client)
    assert pair.server.stats["handler_errors"] == 0
    assert ("alice", "CAM00005") in pair.server.store.bindings()


def test_random_bytes(pair: LoopbackPair) -> None:
    rng = random.Random(4)
    conns = []
    for size in (1, 7, 100, 4096, 65536, 200_000):
        raw = RawConnection(pair.server.address, pair.server.dialect)
        with contextlib.suppress(ConnectionError):  # the server may have given up on us
            raw.send_bytes(rng.randbytes(size))
        conns.append(raw)
    for raw in conns:
        assert raw.closed_by_peer(3)  # bad frames, garbage or silence: closed
        raw.close()
    assert_healthy(pair)


def test_an_oversize_frame_closes_only_that_connection(pair: LoopbackPair) -> None:
    limit = pair.server.dialect.max_frame
    with RawConnection(pair.server.address, pair.server.dialect) as raw:
        if pair.server.dialect.is_line:
            head = b"SocketCommand.LoginCommand.Login|" + b"x" * (3 * limit)
        else:
            head = struct.pack("<I", 50 * limit) + b"SocketCommand.LoginCommand.Login|"
            head += b"y" * (3 * limit)
        with contextlib.suppress(ConnectionError):
            raw.send_bytes(head)
        assert raw.closed_by_peer(3)
    assert_healthy(pair)


def test_half_a_frame_then_silence(pair: LoopbackPair) -> None:
    frame = encode("Login", "alice|alice", pair.server.dialect)
    with RawConnection(pair.server.address, pair.server.dialect) as raw:
        raw.send_bytes(frame[: len(frame) // 2])
        started = time.monotonic()
        assert raw.closed_by_peer(10)  # by the 0.5 s heartbeat timeout
        assert time.monotonic() - started < 10  # not the 90 s default
    assert_healthy(pair)


def test_a_flood_of_wrong_password_logins(pair: LoopbackPair) -> None:
    """160 pipelined guesses on 20 connections from another address: each connection is
    closed after at most five refusals, the brake locks the address out, and alice still
    logs in from 127.0.0.1 (her address never failed)."""
    before = pair.server.stats["logins_failed"]
    conns = [RawConnection(pair.server.address, pair.server.dialect, source="127.0.0.2")
             for _ in range(20)]
    for raw in conns:
        raw.send_bytes(encode("Login", "alice|wrong", pair.server.dialect) * 8)
    for raw in conns:
        replies = []
        while True:
            try:
                replies.append(raw.receive(10))
            except ConnectionError:
                break
        # at most five refusals, then the connection is closed; the rest is never read
        assert 1 <= len(replies) <= 5 and {m.command for m in replies} == {"LoginError"}
        raw.close()
    assert 20 <= pair.server.stats["logins_failed"] - before <= 100
    # how many guesses were checked, not refused for queueing, depends on timing: keep
    # guessing one at a time until the brake locks the address out (20 failures)
    for _ in range(40):
        if pair.server.brake.stats["brake_lockouts"]:
            break
        with RawConnection(pair.server.address, pair.server.dialect,
                           source="127.0.0.2") as raw:
            raw.send("Login", "alice|wrong")
            assert raw.receive(10).command == "LoginError"
    assert pair.server.brake.stats["brake_lockouts"] >= 1
    assert_healthy(pair)


def _connect(address: tuple[str, int], tries: int = 3) -> socket.socket:
    """A connection, tried again when the kernel resets the handshake itself: on a busy
    machine the loopback SYN of a burst was once answered with a reset (ECONNRESET in
    ``connect``, before the server saw it); a server that is gone fails every try."""
    for attempt in range(tries):
        try:
            return socket.create_connection(address, timeout=5)
        except ConnectionResetError:
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


def test_thousands_of_connections_opened_and_dropped(pair: LoopbackPair) -> None:
    started = time.monotonic()
    address = pair.server.address
    # 2,000 in batches under the per-address cap (max_per_address, 100 by default)
    for batch in range(40):
        socks = [_connect(address) for _ in range(50)]
        for i, s in enumerate(socks):
            if (i + batch) % 2:  # half of them reset, half closed politely
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        # the server lets them go before the next batch: a busy machine must not
        # pile batches up past the cap
        wait_until(lambda: pair.server._active <= len(pair.clients) + 1)
    for port in pair.server.data_ports[:3]:  # unannounced data ports: reset at once
        assert refused((address[0], port))
    wait_until(lambda: pair.server._active <= len(pair.clients) + 1)
    assert time.monotonic() - started < 30  # a guard against one slow path per connection
    assert_healthy(pair)


def test_a_handler_bug_closes_only_its_connection(pair: LoopbackPair,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    store = pair.server.store
    real = store.statuses
    calls = []

    def broken(ids):
        calls.append(ids)
        if len(calls) == 1:
            raise RuntimeError("injected bug")
        return real(ids)

    monkeypatch.setattr(store, "statuses", broken)
    victim = pair.new_client()
    victim.login("demo", "demo")
    with pytest.raises(ConnectionLost):  # the connection is reset mid-request
        victim.check_status(["DEMO0001"])
    wait_until(lambda: pair.server.stats["handler_errors"] == 1)
    pair.server.stats["handler_errors"] = 0
    monkeypatch.undo()
    assert_healthy(pair)


def test_the_connection_limit() -> None:
    with LoopbackPair(max_connections=3) as pair:  # the pair's own client is one
        extra = [RawConnection(pair.server.address) for _ in range(2)]
        wait_until(lambda: pair.server._active == 3)
        assert refused(pair.server.address)
        assert pair.server.stats["refused_limit"] == 1
        for raw in extra:
            raw.close()
        wait_until(lambda: pair.server._active == 1)
        assert pair.client.login("demo", "demo").camera_count == 3

"""Lockout defences: one address cannot take every slot, and a connection must log in."""

from __future__ import annotations

import contextlib
import logging

import pytest

from camprotool.net import EmulatorServer
from camprotool.net.testing import FAST_SCRYPT_N, LoopbackPair, RawConnection, wait_until

OTHER = "127.0.0.2"  # the attacker's address; the real client is 127.0.0.1


def test_idle_sockets_from_one_address_do_not_lock_out_another(
        caplog: pytest.LogCaptureFixture) -> None:
    """The issue's scenario with the defaults: 1,000 idle sockets from 127.0.0.2 (as
    many as ``max_connections``) hold 100 slots at most; 127.0.0.1 still logs in."""
    with LoopbackPair() as pair, \
            caplog.at_level(logging.WARNING, logger="camprotool.net.server"):
        assert pair.server.max_connections == 1000
        idle = []
        try:
            for _ in range(1000):
                # a reset can beat connect() back to user space on loopback
                with contextlib.suppress(ConnectionError):
                    idle.append(RawConnection(pair.server.address, source=OTHER))
            wait_until(lambda: pair.server.stats["refused_per_address"] >= 900)
            assert pair.server.stats["refused_limit"] == 0
            client = pair.new_client()
            assert client.login("demo", "demo").camera_count == 3
            assert client.check_status(["DEMO0001"]) == {"DEMO0001": True}
        finally:
            for raw in idle:
                raw.close()
    assert any("per-address limit (100 connections) reached" in r.getMessage()
               for r in caplog.records)


def test_a_connection_that_does_not_log_in_is_closed(caplog: pytest.LogCaptureFixture
                                                     ) -> None:
    with LoopbackPair(login_timeout=0.3) as pair, \
            caplog.at_level(logging.WARNING, logger="camprotool.net.server"), \
            RawConnection(pair.server.address) as idle, \
            RawConnection(pair.server.address) as trickle:
        trickle.send("Heartbeat")  # bytes do not extend the deadline
        assert idle.closed_by_peer(30)
        assert trickle.closed_by_peer(30)
        assert pair.server.stats["login_timeouts"] >= 2
        client = pair.new_client()
        client.login("demo", "demo")
        # a connection opened after the login is closed at its deadline, which comes
        # after the logged-in client's: once it is, the client has outlived its own
        with RawConnection(pair.server.address) as later:
            assert later.closed_by_peer(30)
        assert client.check_status(["DEMO0001"]) == {"DEMO0001": True}
    assert any("not logged in within 0.3 s: closing" in r.getMessage() for r in caplog.records)


def test_the_limits_are_configurable_and_checked() -> None:
    srv = EmulatorServer(scrypt_n=FAST_SCRYPT_N)
    assert (srv.config.max_per_address, srv.config.login_timeout) == (100, 20.0)
    assert srv.max_per_address == 100 < srv.max_connections
    with LoopbackPair(max_per_address=None, login_timeout=None) as pair:
        raws = [RawConnection(pair.server.address) for _ in range(5)]
        try:
            raws[-1].send("Login", "demo|demo")
            assert raws[-1].receive().command == "LoginOk"
        finally:
            for raw in raws:
                raw.close()
    for kwargs, what in (({"max_per_address": 0}, "max_per_address"),
                         ({"login_timeout": 0}, "login_timeout"),
                         ({"login_timeout": float("inf")}, "login_timeout")):
        with pytest.raises(ValueError, match=what):
            EmulatorServer(scrypt_n=FAST_SCRYPT_N, **kwargs)


def test_a_login_waiting_at_the_brake_is_answered_before_the_deadline_closes() -> None:
    """The login deadline does not cut a Login short while it waits for its turn at the
    brake: the client gets its answer (never silence), then the connection closes."""
    from camprotool.net.brake import BrakeConfig

    brake = BrakeConfig(free_failures=0, base_delay=1.0, max_delay=1.0)
    with LoopbackPair(login_timeout=0.3, brake=brake) as pair, \
            RawConnection(pair.server.address, source=OTHER) as raw:
        raw.send("Login", "demo|wrong")
        assert raw.receive(30).command == "LoginError"  # the first failure: no wait
        raw.send("Login", "demo|wrong")  # waits a second at the brake, past the deadline
        assert raw.receive(30).command == "LoginError"
        assert raw.closed_by_peer(30)
    assert pair.server.stats["login_timeouts"] >= 1

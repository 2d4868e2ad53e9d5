"""The proxy and the replay server cap connections per address, as the emulator does."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pytest

from camprotool.net import Proxy, ReplayServer
from camprotool.net.listening import DEFAULT_MAX_PER_ADDRESS
from camprotool.net.testing import LoopbackPair, RawConnection, refused

SAMPLE = Path(__file__).resolve().parents[2] / "captures" / "sample.pcapng"
OTHER = "127.0.0.2"


def hold_and_check(address: tuple[str, int], limit: int) -> None:
    """``limit`` idle sockets from OTHER are accepted, one more is refused, 127.0.0.1 is not."""
    held = []
    try:
        for _ in range(limit):
            held.append(RawConnection(address, source=OTHER))
        assert not any(raw.closed_by_peer(0.2) for raw in held)
        assert refused(address, source=OTHER)
        with RawConnection(address) as mine:
            assert not mine.closed_by_peer(0.3)
    finally:
        for raw in held:
            with contextlib.suppress(OSError):
                raw.close()


def test_the_proxy_caps_connections_per_address(caplog: pytest.LogCaptureFixture) -> None:
    with LoopbackPair() as pair, \
            Proxy(upstream=pair.server.address, max_per_address=3) as proxy, \
            caplog.at_level(logging.WARNING, logger="camprotool.net"):
        hold_and_check(proxy.address, 3)
        client = proxy.client(heartbeat_interval=None)
        try:
            assert client.login("demo", "demo").camera_count == 3
        finally:
            client.close()
    assert any(r.getMessage().startswith("proxy: per-address limit (3 connections) reached")
               for r in caplog.records)


def test_the_replay_server_caps_connections_per_address(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    with ReplayServer(SAMPLE, max_per_address=2) as srv, \
            caplog.at_level(logging.WARNING, logger="camprotool.net"):
        hold_and_check(srv.address, 2)
    assert any("replay server: per-address limit (2 connections) reached" in r.getMessage()
               for r in caplog.records)


def test_defaults_and_checks() -> None:
    assert DEFAULT_MAX_PER_ADDRESS == 100
    assert Proxy(upstream=("127.0.0.1", 9)).max_per_address == 100
    assert ReplayServer(SAMPLE).max_per_address == 100
    assert Proxy(upstream=("127.0.0.1", 9), max_per_address=None).max_per_address is None
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="max_per_address"):
            Proxy(upstream=("127.0.0.1", 9), max_per_address=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max_per_address"):
            ReplayServer(SAMPLE, max_per_address=bad)  # type: ignore[arg-type]

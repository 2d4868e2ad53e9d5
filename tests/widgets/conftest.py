"""Fixtures for the widget tests: a real emulator on 127.0.0.1, panels closed after use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from camprotool.net import EmulatorServer
from camprotool.net.testing import FAST_SCRYPT_N


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    srv = EmulatorServer(scrypt_n=FAST_SCRYPT_N).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def make_panel():
    """``make_panel(server_or_None, **kwargs)``: a ClientPanel, closed at the end."""
    from camprotool.widgets import ClientPanel

    panels = []

    def make(srv: EmulatorServer | None = None, **kwargs):
        kwargs.setdefault("heartbeat_interval", None)
        kwargs.setdefault("timeout", 5.0)
        panel = ClientPanel.for_server(srv, **kwargs) if srv is not None else \
            ClientPanel(**kwargs)
        panels.append(panel)
        return panel

    yield make
    for panel in panels:
        panel.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A hung socket or worker fails one widget test in 20 s, not the global 120 s."""
    for item in items:
        if "tests/widgets/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.timeout(20))

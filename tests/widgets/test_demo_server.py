"""demo_server(): one demo emulator per kernel, on 127.0.0.1 with free ports."""

from __future__ import annotations

import pytest

from camprotool.net import LoginFailed
from camprotool.widgets import ClientPanel, demo_server


@pytest.fixture(autouse=True)
def _stopped():
    demo_server(stop=True)
    yield
    demo_server(stop=True)


def test_started_once_and_reused():
    srv = demo_server()
    assert srv.running and srv.host == "127.0.0.1" and srv.port != 0
    assert demo_server() is srv
    with srv.client(heartbeat_interval=None) as c:
        assert c.login("demo", "demo").camera_count == 3
        assert c.check_status(["DEMO0001", "DEMO0002", "DEMO0003"]) == {
            "DEMO0001": True, "DEMO0002": False, "DEMO0003": None}
        with pytest.raises(LoginFailed):
            c.login("bob", "wrong")


def test_stop_and_restart():
    srv = demo_server()
    assert demo_server(stop=True) is None
    assert not srv.running
    again = demo_server()
    assert again is not srv and again.running
    again.stop()  # stopped directly: the next call starts a fresh one
    third = demo_server()
    assert third is not again and third.running


def test_panel_for_the_demo_server():
    srv = demo_server()
    panel = ClientPanel.for_server(srv, heartbeat_interval=None)
    try:
        assert (panel.host.value, panel.port.value) == srv.address
        assert panel.dialect.value == "line"
    finally:
        panel.close()

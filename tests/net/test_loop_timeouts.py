"""A silent server gives the client's own timeout error, named, not the loop's."""

from __future__ import annotations

import socket
import threading

import pytest

from camprotool.net import Client, ReplyTimeout


@pytest.fixture
def silent_server():
    """A TCP listener on 127.0.0.1 that accepts and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    accepted = []
    stop = threading.Event()

    def accept():
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    sock.close()


def test_reply_timeout_is_the_clients_error(silent_server):
    host, port = silent_server
    with Client(host, port, timeout=0.3) as client, pytest.raises(ReplyTimeout) as info:
        client.login("demo", "demo")
    assert "no result within None" not in str(info.value)

"""Taking another client's data session: another process on the data ports is refused.

The issue's attack: a second process polls the 20 data ports and takes the
sessions announced to the real client. The probes here run in a separate
Python process (as the attacker would), the real client in this one.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from camprotool.net.testing import LoopbackPair, RawConnection

#: The attacker: connect to each port (from SOURCE if given), ask for the first camera
#: of a download, and say what happened.
PROBE = r"""
import json, socket, sys
host, source, ports = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
out = {}
for port in ports:
    try:
        s = socket.create_connection((host, port), timeout=5,
                                     source_address=(source, 0) if source else None)
    except OSError as exc:
        out[port] = "refused"
        continue
    try:
        s.sendall(b"SocketCommand.CaramCommand.DownLoadCaramer|0\r\n")
        data = s.recv(4096)
        out[port] = "answered " + data.decode(errors="replace") if data else "refused"
    except OSError:
        out[port] = "refused"
    finally:
        s.close()
print(json.dumps(out))
"""


def probe(host: str, ports: list[int], source: str = "") -> dict[int, str]:
    """Run the attacker in its own process; what each port did to it."""
    done = subprocess.run([sys.executable, "-c", PROBE, host, source, json.dumps(ports)],
                          capture_output=True, text=True, timeout=60, check=True)
    return {int(k): v for k, v in json.loads(done.stdout).items()}


def announce(pair: LoopbackPair) -> tuple[RawConnection, int]:
    """A raw main connection from 127.0.0.1, logged in as demo, and the port announced to it."""
    main = RawConnection(pair.server.address)
    main.send("Login", "demo|demo")
    assert main.receive().command == "LoginOk"
    main.send("CreatDataSocket", "demo|demo")
    answer = main.receive()
    assert answer.command == "ReturnDataSocketPort" and answer.port  # type: ignore[attr-defined]
    return main, answer.port  # type: ignore[attr-defined]


def test_a_second_process_on_another_clients_data_port_is_refused_and_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    """The must-show: the real client holds its data connection; a second process
    connecting to the same port gets nothing and the refusal is logged with the owner."""
    with LoopbackPair() as pair, caplog.at_level(logging.WARNING, "camprotool.net.server"):
        main, port = announce(pair)
        with main, RawConnection((pair.server.host, port)) as data:
            data.send("DownLoadCaramer", "0")
            assert data.receive().command == "DownloadSucess"
            assert probe(pair.server.host, [port]) == {port: "refused"}
            data.send("DownLoadCaramer", "1")  # the real transfer goes on
            assert data.receive().command == "DownloadSucess"
        assert pair.server._pool.refusals["in_use"] == 1
        assert pair.server.stats["data_refused"] == 1
    assert any(f"data port {port}: connection from 127.0.0.1 refused: already in use by "
               "the data connection of demo" in r.getMessage() for r in caplog.records)


def test_probes_before_the_announcement_and_from_another_address_are_refused(
        caplog: pytest.LogCaptureFixture) -> None:
    """Polling every data port before any announcement gets nothing; after it, a probe
    from another address gets nothing and does not use up the real client's reservation."""
    with LoopbackPair() as pair, caplog.at_level(logging.WARNING, "camprotool.net.server"):
        host, ports = pair.server.host, pair.server.data_ports
        assert set(probe(host, ports).values()) == {"refused"}
        main, port = announce(pair)
        with main:
            assert probe(host, [port], source="127.0.0.2") == {port: "refused"}
            with RawConnection((host, port)) as data:  # the owner still gets in
                data.send("DownLoadCaramer", "0")
                assert data.receive().command == "DownloadSucess"
        refusals = pair.server._pool.refusals
        assert refusals["unreserved"] == len(ports) and refusals["wrong_address"] == 1
    text = [r.getMessage() for r in caplog.records]
    assert f"data port {port}: connection from 127.0.0.2 refused: reserved for demo from " \
           "127.0.0.1, not 127.0.0.2" in text


def test_a_used_reservation_is_gone() -> None:
    """Single use: once the owner's data connection ends, the port serves nobody until it
    is announced again, not even the owner's address."""
    with LoopbackPair() as pair:
        main, port = announce(pair)
        with main:
            with RawConnection((pair.server.host, port)) as data:
                data.send("DownLoadCaramer", "0")
                assert data.receive().command == "DownloadSucess"
            assert probe(pair.server.host, [port]) == {port: "refused"}

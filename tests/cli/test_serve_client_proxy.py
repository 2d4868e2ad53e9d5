"""``camprotool serve``, ``client`` and ``proxy`` as a user runs them: subprocesses."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import (
    ROOT,
    RUN_DEADLINE,
    STOP_DEADLINE,
    TEST_TIMEOUT,
    background,
    interrupt,
)

pytestmark = pytest.mark.timeout(TEST_TIMEOUT)


def cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "camprotool", *args], input=stdin,
                          capture_output=True, text=True, timeout=RUN_DEADLINE, cwd=ROOT,
                          env=None if env is None else {**os.environ, **env})


def test_help() -> None:
    for verb, options in (("serve", ["--port", "--data-ports", "--scenario", "--db",
                                     "--dialect", "--heartbeat-timeout", "--simulate",
                                     "--record", "--max-before-login", "--max-per-address",
                                     "--login-timeout"]),
                          ("client", ["--user", "--password", "--password-file",
                                      "CAMPROTOOL_PASSWORD", "HOST:PORT", "status"]),
                          ("proxy", ["--listen", "--upstream", "--record"])):
        result = cli(verb, "--help")
        assert result.returncode == 0
        for option in options:
            assert option in result.stdout, (verb, option)


def test_serve_client_session_then_ctrl_c(tmp_path: Path) -> None:
    record = tmp_path / "serve.pcapng"
    with background("serve", "--port", "0", "--record", str(record)) as (server, line):
        match = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+) data ports (\S+)", line)
        assert match, line
        port = match.group(1)
        script = ("status DEMO0001 DEMO0002 DEMO0003\nsync\nlocal\n"
                  "raw SocketCommand.NormalCommand.Heartbeat\nquit\n")
        result = cli("client", f"127.0.0.1:{port}", "--user", "demo", "--password", "demo",
                     stdin=script)
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert "logged in as demo: 3 camera(s) on the server" in out
        assert "DEMO0001 online\nDEMO0002 offline\nDEMO0003 unknown" in out
        assert "sync: downloaded 3 camera(s)" in out
        assert "<- [data] DownloadSucess DEMO0001|***|true|1|3" in out
        assert "demo|demo" not in out  # passwords masked
        assert interrupt(server) == 0
    assert record.stat().st_size > 1000


def test_client_reports_failures_in_its_exit_status() -> None:
    with background("serve", "--port", "0", "--data-ports", "auto:1") as (server, line):
        port = re.search(r":(\d+) ", line).group(1)
        result = cli("client", f"127.0.0.1:{port}",
                     stdin="login demo wrong\nbogus\nlogin alice alice\nupload CAM00001:1234\n")
        assert result.returncode == 1
        assert "error: Login refused by the server: 用户名或者密码错误!" in result.stderr
        assert "unknown command 'bogus'" in result.stderr
        assert "CAM00001 bound" in result.stdout
        assert interrupt(server) == 0


def test_client_password_without_ps(tmp_path: Path) -> None:
    """The password from a file or the environment (nothing in ``ps``); ``--password``
    still works but warns."""
    secret = tmp_path / "pw"
    secret.write_text("demo\n")
    with background("serve", "--port", "0", "-q", "--data-ports", "auto:1") as (server, line):
        address = re.search(r"127\.0\.0\.1:\d+", line).group(0)
        runs = {
            "file": cli("client", address, "--user", "demo", "--password-file", str(secret),
                        stdin="quit\n"),
            "env": cli("client", address, "--user", "demo", stdin="quit\n",
                       env={"CAMPROTOOL_PASSWORD": "demo"}),
            "argv": cli("client", address, "--user", "demo", "--password", "demo",
                        stdin="quit\n"),
            "wrong env": cli("client", address, "--user", "demo", stdin="quit\n",
                             env={"CAMPROTOOL_PASSWORD": "nope"}),
        }
        assert interrupt(server) == 0
    for how in ("file", "env", "argv"):
        result = runs[how]
        assert result.returncode == 0, (how, result.stderr)
        assert "logged in as demo" in result.stdout, how
        warned = "warning: --password is visible to other users" in result.stderr
        assert warned == (how == "argv"), (how, result.stderr)
    assert runs["wrong env"].returncode == 2
    assert "Login refused" in runs["wrong env"].stderr


def test_serve_lockout_options_reach_the_server() -> None:
    from cli_support import read_until

    from camprotool.net.testing import RawConnection, refused

    with background("serve", "--port", "0", "--data-ports", "auto:1", "--login-timeout", "3",
                    "--max-per-address", "2") as (server, line):
        host, port = serve_address(line).rsplit(":", 1)
        with RawConnection((host, int(port))) as first, RawConnection((host, int(port))):
            assert refused((host, int(port)), timeout=30)  # over --max-per-address
            assert first.closed_by_peer(60)  # --login-timeout
            seen = read_until(server, "not logged in within 3 s: closing")
            assert "per-address limit (2 connections) reached" in seen
        assert interrupt(server) == 0


def test_proxy_between_client_and_server(tmp_path: Path) -> None:
    record = tmp_path / "proxy.pcapng"
    with background("serve", "--port", "0", "-q") as (server, line):
        upstream = re.search(r"127\.0\.0\.1:\d+", line).group(0)
        with background("proxy", "--listen", "127.0.0.1:0", "--upstream", upstream,
                        "--record", str(record)) as (proxy, pline):
            match = re.fullmatch(rf"proxying (127\.0\.0\.1:\d+) -> {upstream}", pline)
            assert match, pline
            result = cli("client", match.group(1), "--user", "bob", "--password", "bob",
                         stdin="download\n")
            assert result.returncode == 0, result.stderr
            assert "downloaded 1 camera(s)" in result.stdout
            assert interrupt(proxy) == 0
            assert "DownloadSucess DEMO0001|***|true|1|1" in proxy.stderr.read().decode()
        assert interrupt(server) == 0
    assert record.stat().st_size > 500


def one_line_error(result: subprocess.CompletedProcess, pattern: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.search(pattern, lines[0]), lines[0]


def test_port_in_use_is_one_line() -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        one_line_error(cli("serve", "--port", str(port), "-q"),
                       rf"serve: error: 127\.0\.0\.1:{port} is already in use")
        one_line_error(cli("serve", "--port", "0", "--data-ports", str(port), "-q"),
                       "already in use")
    finally:
        busy.close()


@pytest.mark.parametrize(("args", "pattern"), [
    (["serve", "--port", "0", "--data-ports", "9-1"], "bad data ports"),
    (["serve", "--scenario", "/nonexistent/none.toml"], "cannot read scenario"),
    (["serve", "--port", "0", "--dialect", "morse"], "unknown dialect"),
    (["serve", "--host", "no.such.host.invalid", "--port", "0"], "cannot resolve host"),
    (["serve", "--port", "70000"], "--port: .70000. is not a port"),
    (["serve", "--simulate", "-1"], "--simulate: .-1. must be greater than 0"),
    (["serve", "--max-per-address", "0"], "--max-per-address: .0. must be at least 1"),
    (["serve", "--login-timeout", "soon"], "--login-timeout: .soon. is not a number"),
    (["serve", "--max-before-login", "-2"], "--max-before-login: .-2. must be at least 0"),
    (["client", "127.0.0.1:1"], "connection refused"),
    (["client", "127.0.0.1:1", "--timeout", "soon"], "--timeout: .soon. is not"),
    (["client", "localhost"], "bad address 'localhost'"),
    (["client", "127.0.0.1:1", "--user", "x"], "a password is needed .*--password-file"),
    (["client", "127.0.0.1:1", "--user", "x", "--password-file", "/nonexistent/pw"],
     "--password-file: cannot read /nonexistent/pw"),
    (["proxy", "--listen", "127.0.0.1:0", "--upstream", "nowhere"], "bad address 'nowhere'"),
    (["proxy", "--listen", "x:y", "--upstream", "127.0.0.1:1"], "bad address 'x:y'"),
])
def test_bad_input_is_one_line(args: list[str], pattern: str) -> None:
    one_line_error(cli(*args, stdin=""), pattern)


# ---------------------------------------------------------------- durable recordings
#: What a client session (log in as demo, download its three cameras) puts on the wire.
SESSION = ["Login", "LoginOk", "CreatDataSocket", "ReturnDataSocketPort",
           *["DownLoadCaramer", "DownloadSucess"] * 3]
#: How long to wait for the session to reach the file: the recording is flushed
#: every half second, so this is only a guard against a hang on a loaded machine.
FLUSH_DEADLINE = 60.0


def read_now(path: Path):
    """``read_capture`` of ``path`` as it is now (the file may be growing)."""
    import camprotool

    return camprotool.read_capture(path, dialect="auto")


def recorded_commands(path: Path) -> list[str]:
    """The commands ``read_capture`` reads from ``path`` now."""
    if not path.exists() or path.stat().st_size == 0:
        return []
    return read_now(path).messages.command.tolist()


def close_reasons(path: Path) -> list[str]:
    return read_now(path).connections.close_reason.tolist()


def wait_recorded(path: Path, want: list[str], deadline: float = FLUSH_DEADLINE) -> list[str]:
    """Poll ``path`` until it holds ``want`` in order (the process keeps running)."""
    import time

    end = time.monotonic() + deadline
    while True:
        got = recorded_commands(path)
        if got == want:
            return got
        assert time.monotonic() < end, f"{path} holds {got} after {deadline} s, want {want}"
        time.sleep(0.1)


def session(address: str) -> object:
    """A client that logged in as demo and downloaded its cameras, left connected."""
    from camprotool.net import Client

    host, port = address.rsplit(":", 1)
    client = Client(host, int(port), heartbeat_interval=None, timeout=30)
    client.login("demo", "demo")
    assert len(client.download()) == 3
    return client


def serve_address(line: str) -> str:
    match = re.fullmatch(r"listening on (127\.0\.0\.1:\d+) data ports \S+", line)
    assert match, line
    return match.group(1)


@pytest.mark.parametrize("how", ["kill", "hup", "term"])
def test_serve_record_survives_every_stop(tmp_path: Path, how: str) -> None:
    """``kill -9`` in the middle of a session leaves every exchange flushed before it;
    SIGHUP (a dropped SSH session) and SIGTERM stop cleanly with a complete file."""
    import signal

    record = tmp_path / "serve.pcapng"
    with background("serve", "--port", "0", "-q", "--record", str(record)) as (server, line):
        client = session(serve_address(line))
        try:
            wait_recorded(record, SESSION)  # while the server runs: a reader mid-run
            if how == "kill":
                server.kill()
                server.wait(STOP_DEADLINE)
            else:
                server.send_signal(signal.SIGHUP if how == "hup" else signal.SIGTERM)
                assert server.wait(STOP_DEADLINE) == 0
                assert "recorded to" in server.stderr.read().decode()
        finally:
            client.close()
    assert recorded_commands(record) == SESSION
    reasons = close_reasons(record)  # main connection, data connection
    if how == "kill":  # the main connection was open: the file just ends
        assert reasons[0] == "end_of_capture"
    else:  # a clean stop closes every connection in the file too
        assert "end_of_capture" not in reasons, reasons


@pytest.mark.parametrize("how", ["kill", "hup"])
def test_proxy_record_survives_kill_and_hangup(tmp_path: Path, how: str) -> None:
    import signal

    record = tmp_path / "proxy.pcapng"
    with background("serve", "--port", "0", "-q") as (server, line):
        upstream = serve_address(line)
        with background("proxy", "--listen", "127.0.0.1:0", "--upstream", upstream, "-q",
                        "--record", str(record)) as (proxy, pline):
            match = re.fullmatch(rf"proxying (127\.0\.0\.1:\d+) -> {upstream}", pline)
            assert match, pline
            client = session(match.group(1))
            try:
                wait_recorded(record, SESSION)
                if how == "kill":
                    proxy.kill()
                    proxy.wait(STOP_DEADLINE)
                else:
                    proxy.send_signal(signal.SIGHUP)
                    assert proxy.wait(STOP_DEADLINE) == 0
            finally:
                client.close()
        assert interrupt(server) == 0
    assert recorded_commands(record) == SESSION
    if how == "hup":
        assert "end_of_capture" not in close_reasons(record)


def test_a_growing_recording_reads_in_tshark(tmp_path: Path) -> None:
    import shutil

    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    record = tmp_path / "serve.pcapng"
    with background("serve", "--port", "0", "-q", "--record", str(record)) as (server, line):
        client = session(serve_address(line))
        try:
            wait_recorded(record, SESSION)
            result = subprocess.run([tshark, "-r", str(record), "-T", "fields", "-e",
                                     "tcp.len"], capture_output=True, text=True,
                                    timeout=RUN_DEADLINE)
            assert result.returncode == 0, result.stderr
            assert sum(int(n) for n in result.stdout.split()) > 0
            assert server.poll() is None  # read while the server still runs
        finally:
            client.close()
        assert interrupt(server) == 0

"""``camprotool serve``, ``client`` and ``proxy`` as a user runs them: subprocesses."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import ROOT, RUN_DEADLINE, TEST_TIMEOUT, background, interrupt

pytestmark = pytest.mark.timeout(TEST_TIMEOUT)


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "camprotool", *args], input=stdin,
                          capture_output=True, text=True, timeout=RUN_DEADLINE, cwd=ROOT)


def test_help() -> None:
    for verb, options in (("serve", ["--port", "--data-ports", "--scenario", "--db",
                                     "--dialect", "--heartbeat-timeout", "--simulate",
                                     "--record"]),
                          ("client", ["--user", "--password", "HOST:PORT", "status"]),
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
    (["client", "127.0.0.1:1"], "connection refused"),
    (["client", "127.0.0.1:1", "--timeout", "soon"], "--timeout: .soon. is not"),
    (["client", "localhost"], "bad address 'localhost'"),
    (["client", "127.0.0.1:1", "--user", "x"], "--password is needed"),
    (["proxy", "--listen", "127.0.0.1:0", "--upstream", "nowhere"], "bad address 'nowhere'"),
    (["proxy", "--listen", "x:y", "--upstream", "127.0.0.1:1"], "bad address 'x:y'"),
])
def test_bad_input_is_one_line(args: list[str], pattern: str) -> None:
    one_line_error(cli(*args, stdin=""), pattern)

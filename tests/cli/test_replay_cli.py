"""``camprotool replay`` as a user runs it: client playback (--to) and server playback (--serve)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import ROOT, RUN_DEADLINE, TEST_TIMEOUT, background, interrupt, read_until

from camprotool.net import Client, EmulatorServer

pytestmark = pytest.mark.timeout(TEST_TIMEOUT)

SAMPLE = str(ROOT / "captures" / "sample.pcapng")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "camprotool", *args], capture_output=True,
                          text=True, timeout=RUN_DEADLINE, cwd=ROOT, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("replay-cli") / "session.pcapng"
    with EmulatorServer(record=path, scrypt_n=1 << 10) as srv, \
            srv.client(heartbeat_interval=None) as c:
        c.login("demo", "demo")
        c.sync([])
        c.check_status(["DEMO0001", "DEMO0002"])
    return str(path)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """``camprotool serve --port 0`` in a subprocess; its HOST:PORT."""
    with background("serve", "--port", "0", "-q") as (proc, line):
        match = re.fullmatch(r"listening on (127\.0\.0\.1:\d+) data ports \S+", line)
        assert match, line
        yield match.group(1)
        assert interrupt(proc) == 0


def one_line_error(result: subprocess.CompletedProcess, pattern: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.search(pattern, lines[0]), lines[0]


def test_help_describes_both_modes() -> None:
    result = cli("replay", "--help")
    assert result.returncode == 0
    for option in ("CAPTURE", "--to", "--serve", "--listen", "--speed", "--conn", "--dialect",
                   "--record", "--timeout", "exit 0: all same"):
        assert option in " ".join(result.stdout.split()), option
    assert "replay" in cli("--help").stdout


def test_client_playback_against_camprotool_serve(recording: str, server: str,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "replayed.pcapng"
    result = cli("replay", recording, "--to", server, "--speed", "0", "--record", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(rf"replayed {re.escape(recording)} -> {server} \(1 main connection\(s\), "
                        r"speed 0, \d+\.\d\d s\)", lines[0])
    assert lines[1].split() == ["conn", "chan", "request", "recorded", "live", "match",
                                "detail"]
    assert re.search(r"^\s+0 main Login demo\|\*\*\* +LoginOk 3\|\| +LoginOk 3\|\| +same",
                     result.stdout, re.M)
    assert re.search(r"DownLoadCaramer 2 .*DownloadSucess DEMO0003\|\*\*\*\|null\|3\|3 .* same",
                     result.stdout)
    assert lines[-1] == "6 replies: 6 same, 0 different, 0 missing, 0 extra"
    assert "demo|demo" not in result.stdout
    assert out.stat().st_size > 500


def test_client_playback_exits_1_when_replies_differ(server: str) -> None:
    result = cli("replay", SAMPLE, "--to", server, "--speed", "0")
    assert result.returncode == 1, result.stderr
    assert "online: true -> null" in result.stdout
    assert "command UploadFail -> UploadSucess DEMO0001|true|4|6" in result.stdout
    assert result.stdout.splitlines()[-1] == \
        "10 replies: 5 same, 5 different, 0 missing, 0 extra; 7 pushes: 7 missing"
    quiet = cli("replay", SAMPLE, "--to", server, "--speed", "0", "-q", "--conn", "0")
    assert quiet.returncode == 1
    rows = quiet.stdout.splitlines()[2:-1]
    assert rows and not any(re.search(r" same( |$)", row) for row in rows)


def test_server_playback_until_ctrl_c(recording: str) -> None:
    with background("replay", recording, "--serve", "--listen", "127.0.0.1:0",
                    "--speed", "0") as (proc, line):
        match = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+) replaying 1 recorded main "
                             r"connection\(s\) from .*session\.pcapng", line)
        assert match, line
        with Client("127.0.0.1", int(match.group(1)), heartbeat_interval=None,
                    timeout=5) as c:
            assert c.login("demo", "demo").camera_count == 3
            assert [cam.id for cam in c.download()] == ["DEMO0001", "DEMO0002", "DEMO0003"]
            c.send_raw("CheckCaramerOnlineStatus", "X")
            c.send_raw("CheckCaramerOnlineStatus", "X")  # recorded once: no answer
            # the server says so when it handles the second one: wait for that, then Ctrl-C
            seen = read_until(proc, "no recorded answer for CheckCaramerOnlineStatus X")
        assert interrupt(proc) == 0
        err = seen + proc.stderr.read().decode()
    assert "no recorded answer for CheckCaramerOnlineStatus X" in err
    assert "1 request(s) had no recorded answer" in err


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.mark.parametrize(("args", "pattern"), [
    (["replay", "/nonexistent/x.pcapng", "--to", "127.0.0.1:1"],
     r"^camprotool replay: error: /nonexistent/x\.pcapng: no such file$"),
    (["replay", "README.md", "--to", "127.0.0.1:1"], "not a pcap or pcapng capture"),
    (["replay", SAMPLE, "--to", "nowhere"], "bad address 'nowhere'"),
    (["replay", SAMPLE, "--to", "127.0.0.1:0"], "the port must not be 0"),
    (["replay", SAMPLE, "--to", "127.0.0.1:PORT"],
     r"cannot connect to 127\.0\.0\.1:\d+: connection refused"),
    (["replay", SAMPLE], "give either --to HOST:PORT .* or --serve"),
    (["replay", SAMPLE, "--to", "127.0.0.1:1", "--serve"], "give either"),
    (["replay", SAMPLE, "--to", "127.0.0.1:1", "--speed", "fast"], "--speed: 'fast' is not"),
    (["replay", SAMPLE, "--to", "127.0.0.1:1", "--conn", "x"], "--conn: 'x' is not"),
    (["replay", SAMPLE, "--to", "127.0.0.1:1", "--conn", "1"], "no main connection 1"),
    (["replay", SAMPLE, "--to", "127.0.0.1:1", "--dialect", "morse"], "unknown dialect"),
    (["replay", SAMPLE, "--serve", "--listen", "x:y"], "bad address 'x:y'"),
])
def test_bad_input_is_one_line(args: list[str], pattern: str) -> None:
    args = [a.replace("PORT", str(_closed_port())) for a in args]
    one_line_error(cli(*args), pattern)


# ---------------------------------------------------------------- durable recordings
def _commands_now(path: Path) -> list[str]:
    import camprotool

    if not path.exists() or path.stat().st_size == 0:
        return []
    return camprotool.read_capture(path, dialect="auto").messages.command.tolist()


def _wait_recorded(path: Path, want: list[str], deadline: float = 60.0) -> None:
    """Poll the growing file until it starts with ``want`` (a guard deadline, not a guess)."""
    import time

    end = time.monotonic() + deadline
    while (got := _commands_now(path))[:len(want)] != want:
        assert time.monotonic() < end, f"{path} holds {got}, want {want}"
        time.sleep(0.1)


@pytest.mark.parametrize("how", ["kill", "hup"])
def test_server_playback_record_survives_kill_and_hangup(recording: str, tmp_path: Path,
                                                         how: str) -> None:
    import signal

    out = tmp_path / "served.pcapng"
    with background("replay", recording, "--serve", "--listen", "127.0.0.1:0", "--speed", "0",
                    "--record", str(out)) as (proc, line):
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
        with Client("127.0.0.1", port, heartbeat_interval=None, timeout=30) as c:
            assert c.login("demo", "demo").camera_count == 3
            _wait_recorded(out, ["Login", "LoginOk"])
            if how == "kill":
                proc.kill()
                proc.wait(60)
            else:
                proc.send_signal(signal.SIGHUP)
                assert proc.wait(60) == 0
    assert _commands_now(out) == ["Login", "LoginOk"]


def _paused_after_login(recording: str, path: Path, pause_s: int = 100_000) -> str:
    """``recording`` with every packet after its LoginOk ``pause_s`` later: a playback at
    real speed logs in at once, then waits there, whatever the gaps recorded before
    (slowing the whole playback down instead made a recorded gap of 6 ms before the
    Login a minute's wait on a busy machine)."""
    import camprotool
    from camprotool.capture.readers import CaptureFile
    from camprotool.capture.writer import PcapngWriter

    messages = camprotool.read_capture(recording).messages
    login_ok = int(messages.loc[messages["command"] == "LoginOk", "frame"].iloc[0])
    with CaptureFile(recording) as capture:
        packets = [(p.frame, p.ts_ns, p.linktype, bytes(p.data)) for p in capture]
    with PcapngWriter(str(path), linktype=packets[0][2]) as w:
        for frame, ts_ns, _, data in packets:
            w.write_packet(ts_ns + (pause_s * 10**9 if frame > login_ok else 0), data)
    return str(path)


def test_client_playback_record_is_flushed_when_terminated(recording: str, server: str,
                                                           tmp_path: Path) -> None:
    """SIGTERM in the middle of a playback (paused after its login): the live exchanges
    so far are in the file, and the process stops as after Ctrl-C."""
    import signal

    out = tmp_path / "replayed.pcapng"
    paused = _paused_after_login(recording, tmp_path / "paused.pcapng")
    proc = subprocess.Popen([sys.executable, "-m", "camprotool", "replay", paused, "--to",
                             server, "--speed", "1", "--record", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            stdin=subprocess.DEVNULL)
    try:
        _wait_recorded(out, ["Login", "LoginOk"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=60)
    assert _commands_now(out)[:2] == ["Login", "LoginOk"]

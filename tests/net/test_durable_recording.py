"""Durable recordings: the pcapng file grows as packets happen and is valid at every moment."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import camprotool
from camprotool.net import EmulatorServer
from camprotool.net.recording import MessageLog
from camprotool.net.testing import FAST_SCRYPT_N, LoopbackPair

LOGIN = b"SocketCommand.LoginCommand.Login|demo|demo\r\n"
LOGIN_OK = b"SocketCommand.LoginCommand.LoginOk|3||\r\n"
DEADLINE = 30.0  # a guard against a hang; the waits end on what the file holds


def commands(path: Path | io.BytesIO) -> list[str]:
    if isinstance(path, io.BytesIO):
        return camprotool.read_capture(path.getvalue()).messages.command.tolist()
    return camprotool.read_capture(path).messages.command.tolist()


def wait_for(path: Path, want: list[str]) -> None:
    end = time.monotonic() + DEADLINE
    while (got := commands(path))[: len(want)] != want:
        assert time.monotonic() < end, f"{got} after {DEADLINE} s, want {want}"
        time.sleep(0.05)


def exchange(log: MessageLog, port: int = 40000) -> None:
    conv = log.open("main", ("127.0.0.1", port), ("127.0.0.1", 9000))
    conv.feed("c2s", LOGIN)
    conv.feed("s2c", LOGIN_OK)


def test_a_new_recording_is_a_valid_empty_capture(tmp_path: Path) -> None:
    path = tmp_path / "x.pcapng"
    log = MessageLog(record=path)
    try:
        assert path.stat().st_size > 0  # the section header is written at once
        assert commands(path) == []
    finally:
        log.close()


def test_packets_wait_at_most_the_flush_interval(tmp_path: Path) -> None:
    path = tmp_path / "x.pcapng"
    log = MessageLog(record=path, flush_interval=0.05)
    try:
        exchange(log)
        wait_for(path, ["Login", "LoginOk"])  # no close, no explicit flush
    finally:
        log.close()


def test_flush_writes_whole_blocks_and_close_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "x.pcapng"
    log = MessageLog(record=path, flush_interval=3600)  # only explicit flushes
    exchange(log)
    assert commands(path) == []  # still in memory
    log.flush()
    assert commands(path) == ["Login", "LoginOk"]
    exchange(log, 40001)
    log.close()
    assert commands(path) == ["Login", "LoginOk"] * 2
    log.close()  # twice is harmless


def test_a_callers_file_object_is_flushed_and_left_open() -> None:
    out = io.BytesIO()
    log = MessageLog(record=out, flush_interval=3600)
    exchange(log)
    log.flush()
    assert commands(out) == ["Login", "LoginOk"]
    log.close()
    assert not out.closed


def test_flush_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="flush_interval"):
        MessageLog(flush_interval=0)


def test_an_exception_in_the_caller_still_leaves_a_complete_file(tmp_path: Path) -> None:
    path = tmp_path / "server.pcapng"
    with pytest.raises(RuntimeError, match="boom"), \
            EmulatorServer(record=path, scrypt_n=FAST_SCRYPT_N) as srv, \
            srv.client(heartbeat_interval=None) as client:
        client.login("demo", "demo")
        raise RuntimeError("boom")
    cap = camprotool.read_capture(path)
    assert cap.messages.command.tolist() == ["Login", "LoginOk"]
    assert "end_of_capture" not in cap.connections.close_reason.tolist()


def test_a_log_nobody_closed_is_flushed_at_exit(tmp_path: Path) -> None:
    path = tmp_path / "x.pcapng"
    script = (
        "from camprotool.net.recording import MessageLog\n"
        f"log = MessageLog(record={str(path)!r}, flush_interval=3600)\n"
        "conv = log.open('main', ('127.0.0.1', 40000), ('127.0.0.1', 9000))\n"
        f"conv.feed('c2s', {LOGIN!r})\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert commands(path) == ["Login"]


def test_a_reader_reads_the_file_while_a_server_writes_it(tmp_path: Path) -> None:
    """Readers during a busy session never fail and never see messages disappear."""
    path = tmp_path / "server.pcapng"
    stop = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append(len(commands(path)))
            except BaseException as exc:  # reported by the test
                errors.append(exc)
                return

    with LoopbackPair(record=path) as pair:
        pair.client.login("demo", "demo")
        thread = threading.Thread(target=reader)
        thread.start()
        try:
            for _ in range(30):
                pair.client.check_status(["DEMO0001", "DEMO0002"])
            wait_for(path, ["Login", "LoginOk", *["CheckCaramerOnlineStatus",
                                                  "ReturnCaramerOnlineStatus"] * 30])
        finally:
            stop.set()
            thread.join(DEADLINE)
    assert not errors, errors
    assert seen and seen == sorted(seen)

"""``camprotool decode --live IFACE``: live capture from the command line."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest
from cli_support import RUN_DEADLINE, START_DEADLINE

from camprotool.net import Client, EmulatorServer

CLI = [sys.executable, "-m", "camprotool", "decode"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=RUN_DEADLINE)


@pytest.mark.parametrize(("args", "message"), [
    ((), "give a capture file to decode, or --live IFACE"),
    (("x.pcap", "--live", "lo"), "give a capture file or --live IFACE, not both"),
    (("x.pcap", "--duration", "3"), "--duration only applies to --live"),
])
def test_argument_errors_are_one_line(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"camprotool decode: error: {message}"]


@pytest.mark.skipif(shutil.which("dumpcap") is None, reason="dumpcap missing: make sysdeps")
def test_live_capture_of_a_session(tmp_path):
    out = tmp_path / "live.parquet"
    with EmulatorServer() as srv:
        ports = ",".join(str(p) for p in [srv.port, *srv.data_ports])
        proc = subprocess.Popen([*CLI, "--live", "lo", "--ports", ports, "--duration", "4",
                                 "-o", str(out)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + START_DEADLINE
        line = ""
        while "capturing on" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
        if "capturing on" not in line:
            proc.kill()
            pytest.skip(f"cannot capture on lo here: {line.strip() or proc.stderr.read()}")
        with Client(*srv.address) as client:
            client.login("demo", "demo")
            client.check_status(["DEMO0001", "DEMO0002"])
        stdout, stderr = proc.communicate(timeout=RUN_DEADLINE)
    assert proc.returncode == 0, stderr
    assert "LoginOk" in stdout and "ReturnCaramerOnlineStatus" in stdout
    table = pd.read_parquet(out)
    assert table["command"].astype(str).tolist()[:4] == [
        "Login", "LoginOk", "CheckCaramerOnlineStatus", "ReturnCaramerOnlineStatus"]
    assert "demo|***" in table["params"].tolist()

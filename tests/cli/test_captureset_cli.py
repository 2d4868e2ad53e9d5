"""``decode`` and ``report`` of a capture set: a quoted glob is one capture, merged by time."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
from cli_support import RUN_DEADLINE

from camprotool import read_capture
from camprotool.capture.readers import open_capture
from camprotool.capture.writer import PcapWriter

CLI = [sys.executable, "-m", "camprotool"]
SAMPLE = "captures/sample.pcap"


def _ring(tmp_path, per_file: int = 15) -> str:
    """captures/sample.pcap cut into a ring buffer of ``per_file`` packets a file."""
    with open_capture(SAMPLE) as cap:
        packets = [(r.ts_ns, bytes(r.data)) for r in cap]
    for k in range(0, len(packets), per_file):
        with PcapWriter(str(tmp_path / f"ring_{k // per_file + 1:05d}_20260101.pcap")) as w:
            for ts, body in packets[k:k + per_file]:
                w.write_packet(ts, body)
    return str(tmp_path / "ring_*.pcap")


def test_decode_of_a_glob_prints_the_merged_capture(tmp_path):
    pattern = _ring(tmp_path)
    out = tmp_path / "set.csv"
    result = subprocess.run([*CLI, "decode", pattern, "-o", str(out)], capture_output=True,
                            text=True, timeout=RUN_DEADLINE)
    assert result.returncode == 0, result.stderr
    got = pd.read_csv(out)
    whole = read_capture(SAMPLE).messages
    assert got["frame"].tolist() == whole["frame"].tolist()
    assert got["command"].tolist() == whole["command"].astype(str).tolist()
    printed = subprocess.run([*CLI, "decode", pattern], capture_output=True, text=True,
                             timeout=RUN_DEADLINE)
    assert printed.returncode == 0 and "Login" in printed.stdout


def test_report_of_a_glob_and_a_glob_that_matches_nothing(tmp_path):
    pattern = _ring(tmp_path)
    result = subprocess.run([*CLI, "report", pattern], capture_output=True, text=True,
                            timeout=RUN_DEADLINE, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ring_.pcap.report" / "index.html").exists()
    none = subprocess.run([*CLI, "decode", str(tmp_path / "nothing_*.pcap")],
                          capture_output=True, text=True, timeout=RUN_DEADLINE)
    assert none.returncode != 0
    assert none.stderr.strip().splitlines() == [
        f"camprotool decode: error: no capture file matches '{tmp_path / 'nothing_*.pcap'}'"]
    assert none.stdout == ""

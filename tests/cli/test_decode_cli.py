"""``camprotool decode CAPTURE``: streamed output, to a file or to a reader that stops early."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from cli_support import RUN_DEADLINE

from camprotool import read_capture
from camprotool.capture.writer import PcapWriter

CLI = [sys.executable, "-m", "camprotool", "decode"]


def _big(tmp_path, sessions: int = 300) -> str:
    w = PcapWriter()
    t0 = 1_700_000_000_000_000_000
    for k in range(sessions):
        c = w.tcp(("10.0.1.1", 20000 + k), ("10.0.0.2", 9000), t0 + k * 1000)
        for j in range(10):
            c.send("c2s", b"SocketCommand.NormalCommand.Heartbeat|\r\n", t0 + k * 1000 + j)
        c.close(t0 + k * 1000 + 500)
    path = tmp_path / "big.pcap"
    path.write_bytes(w.getvalue())
    return str(path)


@pytest.mark.parametrize("ext", [".parquet", ".csv", ".json"])
def test_output_files_hold_every_message(tmp_path, ext):
    cap = _big(tmp_path)
    out = tmp_path / f"out{ext}"
    result = subprocess.run([*CLI, cap, "-o", str(out)], capture_output=True, text=True,
                            timeout=RUN_DEADLINE)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == f"3000 messages from 300 connections written to {out} " \
        f"({ext.lstrip('.')})"
    want = read_capture(cap).messages
    if ext == ".parquet":
        got = pd.read_parquet(out)
        assert got["params"].tolist() == want["params"].astype(str).tolist()
        assert got["conn"].tolist() == want["conn"].tolist()
    elif ext == ".csv":
        assert len(pd.read_csv(out)) == 3000
    else:
        assert len(pd.read_json(out, lines=True)) == 3000


def test_a_reader_that_stops_early_ends_the_run_quietly(tmp_path):
    cap = _big(tmp_path)
    proc = subprocess.Popen([*CLI, cap], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()  # type: ignore[union-attr]
    proc.stdout.close()  # type: ignore[union-attr]
    assert b"ts" in first and b"command" in first
    assert proc.wait(timeout=RUN_DEADLINE) == 0
    assert proc.stderr.read() == b""  # type: ignore[union-attr]


def test_printed_rows_are_numbered_across_chunks(tmp_path):
    cap = _big(tmp_path, sessions=30)
    result = subprocess.run([*CLI, cap], capture_output=True, text=True, timeout=RUN_DEADLINE)
    lines = result.stdout.splitlines()
    assert len(lines) == 301  # header + 300 messages
    assert lines[-1].split()[0] == "299"


# ------------------------------------------------------------------ problem warnings

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "captures" / "sample.pcapng"


def test_a_truncated_capture_warns_on_stderr(tmp_path):
    cut = tmp_path / "t.pcapng"
    cut.write_bytes(SAMPLE.read_bytes()[:3000])  # head -c 3000
    for extra in ([], ["-o", str(tmp_path / "out.csv")]):
        result = subprocess.run([*CLI, str(cut), *extra], capture_output=True, text=True,
                                timeout=RUN_DEADLINE)
        assert result.returncode == 0, result.stderr
        warnings = [line for line in result.stderr.splitlines()
                    if line.startswith("warning: ")]
        assert warnings == ["warning: truncated_file: 1 (first at frame 22): file ends inside "
                            "a block (type 0x6) at byte 2916: 84 of 148 bytes present."]
        assert "Traceback" not in result.stderr


def test_a_wrong_dialect_gets_a_hint(tmp_path):
    result = subprocess.run([*CLI, str(SAMPLE), "--dialect", "lp32le"], capture_output=True,
                            text=True, timeout=RUN_DEADLINE)
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("warning: dialect_failed: 2 (first at frame 24): connection 1: "
                           "every frame failed to decode as lp32le; try dialect='auto'")
    # the same hint read_capture gives
    assert read_capture(SAMPLE, dialect="lp32le").problems["detail"].iloc[0] in line


def test_messages_print_frame_first():
    """The frame leads each row: the packet to open with ``wireshark -r CAP -g FRAME``."""
    result = subprocess.run([*CLI, str(SAMPLE)], capture_output=True, text=True,
                            timeout=RUN_DEADLINE)
    header, *rows = result.stdout.splitlines()
    assert header.split()[:3] == ["frame", "ts", "conn"]
    frames = read_capture(SAMPLE).messages["frame"].tolist()
    assert [int(r.split()[1]) for r in rows] == frames
    assert max(len(line) for line in rows) <= 200  # long params cut, not padded out


def test_a_clean_capture_prints_no_warning():
    result = subprocess.run([*CLI, str(SAMPLE)], capture_output=True, text=True,
                            timeout=RUN_DEADLINE)
    assert result.returncode == 0 and result.stderr == ""


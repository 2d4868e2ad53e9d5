"""``camprotool report`` as a user runs it: a subprocess, its output and its one-line errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from camprotool.cli import report as report_cli

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "captures" / "sample.pcapng"


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "camprotool", "report", *args],
                          capture_output=True, text=True, timeout=50, cwd=cwd)


def one_line_error(proc: subprocess.CompletedProcess, *expected: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("camprotool report: error: ")
    assert "Traceback" not in proc.stderr
    for text in expected:
        assert text in lines[0]
    return lines[0]


def test_writes_the_report_and_prints_its_path(tmp_path):
    out = tmp_path / "out"
    proc = cli(str(SAMPLE), "-o", str(out), "--tz", "Europe/Paris")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines() == [str(out / "index.html")]
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "2025-11-28 10:00:00.005" in html  # 09:00 UTC shown in Paris
    assert 'src="data:image/png;base64,' in html
    assert (out / "tables" / "messages.csv").is_file()
    assert (out / "tables" / "alarms.parquet").is_file()


def test_default_directory_is_beside_the_capture(tmp_path):
    capture = tmp_path / "site a.pcapng"
    shutil.copy(SAMPLE, capture)
    proc = cli(str(capture), "--tz", "UTC", "--dialect", "line", "--ports", "9000-9020",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    index = tmp_path / "site a.pcapng.report" / "index.html"
    assert proc.stdout.strip() == str(index)
    assert index.is_file()


def test_default_directory_falls_back_to_the_current_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(report_cli.os, "access", lambda *a, **k: False)
    assert report_cli.default_output("/somewhere/read-only/x.pcap") == \
        tmp_path / "x.pcap.report"
    monkeypatch.setattr(report_cli.os, "access", lambda *a, **k: True)
    assert report_cli.default_output("/data/x.pcap") == Path("/data/x.pcap.report")


def test_missing_capture(tmp_path):
    one_line_error(cli(str(tmp_path / "nope.pcapng")), "nope.pcapng", "no such file")


def test_bad_time_zone(tmp_path):
    proc = cli(str(SAMPLE), "-o", str(tmp_path / "out"), "--tz", "Mars/Olympus_Mons")
    one_line_error(proc, "unknown time zone 'Mars/Olympus_Mons'", "IANA")
    assert not (tmp_path / "out").exists()


def test_not_a_capture(tmp_path):
    text = tmp_path / "notes.pcap"
    text.write_text("hello, not a capture\n")
    one_line_error(cli(str(text), "-o", str(tmp_path / "out")), "notes.pcap")


def test_output_is_a_file(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("")
    one_line_error(cli(str(SAMPLE), "-o", str(taken)), "not a directory")


def test_help():
    proc = cli("--help")
    assert proc.returncode == 0
    for option in ("-o DIR", "--tz ZONE", "--dialect", "--ports", "--reveal-passwords"):
        assert option in proc.stdout


def test_problems_are_warned_on_stderr(tmp_path):
    proc = cli(str(ROOT / "captures" / "failed_sync.pcapng"), "-o", str(tmp_path / "out"),
               "--tz", "UTC")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == ("warning: lost_bytes: 1 (first at frame 20): connection 0: 15 bytes "
                        "lost server→client (s2c); frame 20 is the first after the loss")
    assert lines[1].startswith("report of 19 messages from 3 connections written to ")
    assert proc.stdout.strip() == str(tmp_path / "out" / "index.html")


def test_a_clean_capture_warns_nothing(tmp_path):
    proc = cli(str(SAMPLE), "-o", str(tmp_path / "out"), "--tz", "UTC")
    assert proc.returncode == 0, proc.stderr
    assert not [line for line in proc.stderr.splitlines() if line.startswith("warning")]


def test_a_wrong_dialect_warns_once_with_its_hint(tmp_path):
    proc = cli(str(SAMPLE), "-o", str(tmp_path / "out"), "--tz", "UTC", "--dialect", "lp32le")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 2, proc.stderr  # no matplotlib warning about an empty legend
    assert lines[0].startswith("warning: dialect_failed: 2 (first at frame 24): connection 1: "
                               "every frame failed to decode as lp32le; try dialect='auto'")

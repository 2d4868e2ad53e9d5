"""``camprotool dissector`` as a user runs it: a subprocess, its files and its one-line errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from camprotool.protocol.catalogue import COMMANDS
from camprotool.protocol.lua import render_dissector

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
if not PYTHON.exists():  # run from another environment: use the interpreter running pytest
    PYTHON = Path(sys.executable)


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([str(PYTHON), "-m", "camprotool", "dissector", *args],
                          capture_output=True, text=True, encoding="utf-8", timeout=50, cwd=cwd)


def one_line_error(proc: subprocess.CompletedProcess, *expected: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("camprotool dissector: error: ")
    assert "Traceback" not in proc.stderr
    for text in expected:
        assert text in lines[0]
    return lines[0]


def test_writes_the_lua_file_and_says_how_to_load_it(tmp_path):
    out = tmp_path / "camproto.lua"
    proc = cli("-o", str(out), "--dialect", "lp32le", "--ports", "9000,9001-9020",
               "--no-heuristic")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert f"wireshark -X lua_script:{out}" in proc.stderr
    assert "plugins" in proc.stderr
    text = out.read_text(encoding="utf-8")
    assert text == render_dissector("lp32le", "9000-9020", heuristic=False)
    assert 'local DEFAULT_PORTS = "9000-9020"' in text
    for spec in COMMANDS:
        assert spec.full_name in text


def test_without_output_the_lua_goes_to_stdout(tmp_path):
    proc = cli(cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == render_dissector()
    assert "lua_script:camproto.lua" in proc.stderr  # the text on stdout stays pure Lua
    assert list(tmp_path.iterdir()) == []


def test_help():
    proc = cli("--help")
    assert proc.returncode == 0
    for option in ("-o FILE", "--dialect", "--ports", "--no-heuristic", "lp32le", "auto"):
        assert option in proc.stdout
    assert proc.stderr == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--dialect", "morse"], ["--dialect", "'morse'", "line, lp32le, lp32be, auto"]),
        (["--dialect", "line:latin1"], ["--dialect", "latin1"]),
        (["--ports", "90000"], ["--ports", "'90000'", "1-65535"]),
        (["--ports", "9000,http"], ["--ports", "'http'"]),
        (["--ports", "9020-9001"], ["--ports", "'9020-9001'"]),
        (["-o", "/nonexistent-dir/camproto.lua"], ["/nonexistent-dir/camproto.lua"]),
    ],
)
def test_bad_input_fails_with_one_line(tmp_path, args, expected):
    one_line_error(cli(*args, cwd=tmp_path), *expected)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.tshark
def test_tshark_loads_the_written_file(tmp_path):
    out = tmp_path / "camproto.lua"
    assert cli("-o", str(out)).returncode == 0
    proc = subprocess.run(
        ["tshark", "-n", "-X", f"lua_script:{out}", "-r", str(ROOT / "captures" / "sample.pcapng"),
         "-Y", "camproto.command == \"Login\"", "-T", "fields", "-e", "camproto.user",
         "-e", "camproto.password"],
        capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["demo\t***"]

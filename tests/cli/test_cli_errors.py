"""Every verb: --help works, and a usage mistake is one line on stderr with exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from camprotool.cli import VERBS


def camprotool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "camprotool", *args], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("verb", VERBS)
def test_help(verb):
    result = camprotool(verb, "--help")
    assert result.returncode == 0 and "usage: camprotool " + verb in result.stdout


@pytest.mark.parametrize("args", [
    ("bogus",),
    ("decode", "--ports", "x"),
    ("proxy",),
    ("serve", "--no-such-option"),
    ("replay",),
])
def test_usage_errors_are_one_line(args):
    result = camprotool(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "--help" in lines[0], result.stderr

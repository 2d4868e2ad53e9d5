"""Helpers the CLI tests share: run ``camprotool VERB`` in the background and read its first line.

Long-running verbs (``serve``, ``proxy``, ``replay --serve``) print one line
once they listen; a test reads it (with a deadline, so a hung start fails
instead of blocking) to learn the port, then talks to the subprocess.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def first_line(proc: subprocess.Popen, timeout: float = 15) -> str:
    """The first line ``proc`` writes to stdout; ``AssertionError`` (with its stderr) if none."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        if not sel.select(max(0, deadline - time.monotonic())):
            proc.kill()
            raise AssertionError(f"no first line; stderr: {proc.stderr.read().decode()}")
        chunk = os.read(proc.stdout.fileno(), 1)
        if not chunk:
            raise AssertionError(f"exited early; stderr: {proc.stderr.read().decode()}")
        line += chunk
    return line.decode().strip()


@contextmanager
def background(*args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """``camprotool *args`` running: the process and its first line; killed on exit."""
    proc = subprocess.Popen([sys.executable, "-m", "camprotool", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        yield proc, first_line(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        proc.stdout.close()
        proc.stderr.close()

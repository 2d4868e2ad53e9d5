"""Helpers the CLI tests share: run ``camprotool VERB`` in the background and read its first line.

Long-running verbs (``serve``, ``proxy``, ``replay --serve``) print one line
once they listen; a test reads it (with a deadline, so a hung start fails
instead of blocking) to learn the port, then talks to the subprocess.

Every wait here ends on an event (a line read, a process exiting) and has a
deadline only as a guard against a hang. The deadlines are generous on
purpose: they cost nothing when things work, and on a loaded machine (two
``make test`` at once on two cores) starting Python with pandas, or a
server's clean stop after Ctrl-C, can take many seconds.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Guard deadlines (seconds) for a verb to start listening, to exit after Ctrl-C,
#: and for a one-shot ``camprotool VERB`` run to finish.
START_DEADLINE = 60.0
STOP_DEADLINE = 60.0
RUN_DEADLINE = 90.0
#: pytest-timeout for a test that starts servers and runs verbs: above the deadlines.
TEST_TIMEOUT = 300


def first_line(proc: subprocess.Popen, timeout: float = START_DEADLINE) -> str:
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


def read_until(proc: subprocess.Popen, text: str, timeout: float = START_DEADLINE) -> str:
    """Read ``proc``'s stderr until ``text`` appears; what was read (AssertionError if never).

    For a test that must wait until a server has handled something before it goes on:
    an event to wait for, not a guess of how long the server takes.
    """
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    seen = b""
    while text.encode() not in seen:
        if not sel.select(max(0, deadline - time.monotonic())):
            raise AssertionError(f"{text!r} not on stderr within {timeout} s: {seen.decode()}")
        chunk = os.read(proc.stderr.fileno(), 4096)
        if not chunk:
            raise AssertionError(f"exited before {text!r}; stderr: {seen.decode()}")
        seen += chunk
    return seen.decode()


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
        proc.wait(STOP_DEADLINE)
        proc.stdout.close()
        proc.stderr.close()


def interrupt(proc: subprocess.Popen) -> int:
    """Ctrl-C, as a user would; the exit status once the process has stopped."""
    proc.send_signal(signal.SIGINT)
    return proc.wait(STOP_DEADLINE)

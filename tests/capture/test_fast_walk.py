"""The record walk ahead on a worker thread gives the windows a walk in line gives, and
never outlives its caller."""

from __future__ import annotations

import gc
import struct
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camprotool.capture.fast import walk as W
from camprotool.capture.fast.walk import RecordWalk, walk_in_line, walk_window


def _pcap(lengths: list[int]) -> np.ndarray:
    """A little-endian microsecond pcap of Ethernet records of these captured lengths."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, size in enumerate(lengths):
        out.append(struct.pack("<IIII", 1_700_000_000 + i, i, size, size + i % 2))
        out.append(bytes([i % 251]) * size)
    return np.frombuffer(b"".join(out), np.uint8)


def _walked_in_line(buf: np.ndarray, window: int) -> list[tuple]:
    return [_seen(w) for w in walk_in_line(buf, 24, len(buf), False, 1000, 1, window)]


def _seen(w: W.Walked) -> tuple:
    n = w.n
    return (n, w.end, w.need, w.rec_off[:n].tolist(), w.cap_len[:n].tolist(),
            w.orig_len[:n].tolist(), w.ts[:n].tolist(), w.status[:n].tolist())


def _walkers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "camprotool-record-walk"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 120), max_size=40), st.integers(1, 9), st.integers(0, 20))
def test_the_windows_are_those_of_a_walk_in_line(lengths, window, cut):
    """Also when the file ends inside a record (``cut`` bytes short). Each window is read
    before its columns are given back to be filled again."""
    buf = _pcap(lengths)
    buf = buf[: max(24, len(buf) - cut)]
    got = []
    with RecordWalk(buf, 24, len(buf), False, 1000, 1, window) as walk:
        for w in walk:
            got.append(_seen(w))
            walk.give_back(w)
    assert got == _walked_in_line(buf, window)
    assert not _walkers()


def test_letting_go_early_stops_the_worker():
    buf = _pcap([60] * 50)
    walk = RecordWalk(buf, 24, len(buf), False, 1000, 1, 4)
    assert next(walk).n == 4  # and the worker waits for columns given back
    walk.close()
    assert not _walkers()


def test_a_failure_on_the_callers_side_stops_the_worker(monkeypatch):
    """The engine fails midway through pass one: the generator holding the walk is
    closed as the error passes, and the worker with it."""
    from camprotool import read_capture
    from camprotool.capture.fast import engine

    calls = []
    track = engine.FastEngine._track

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError("no room to follow the flows")
        return track(self, *args, **kwargs)

    monkeypatch.setattr(engine, "WINDOW", 4)  # 42 packets: 11 windows
    monkeypatch.setattr(engine.FastEngine, "_track", failing)
    with pytest.raises(MemoryError, match="follow the flows"):
        read_capture("captures/sample.pcap")
    gc.collect()
    assert not _walkers()


def test_an_error_in_the_walk_is_raised_where_its_window_would_come(monkeypatch):
    calls = []

    def failing(*args):
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("no room for the next window")
        return walk_window(*args)

    monkeypatch.setattr(W, "walk_window", failing)
    buf = _pcap([60] * 20)
    with RecordWalk(buf, 24, len(buf), False, 1000, 1, 4) as walk:
        assert next(walk).n == 4
        with pytest.raises(MemoryError, match="next window"):
            next(walk)
    assert not _walkers()

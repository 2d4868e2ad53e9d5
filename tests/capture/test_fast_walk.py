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
from camprotool.capture.fast.walk import RecordWalk, new_columns, walk_window


def _pcap(lengths: list[int]) -> np.ndarray:
    """A little-endian microsecond pcap of Ethernet records of these captured lengths."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, size in enumerate(lengths):
        out.append(struct.pack("<IIII", 1_700_000_000 + i, i, size, size + i % 2))
        out.append(bytes([i % 251]) * size)
    return np.frombuffer(b"".join(out), np.uint8)


def _walked_in_line(buf: np.ndarray, window: int) -> list[tuple]:
    off, got = 24, []
    while True:
        w = walk_window(buf, off, len(buf), False, 1000, 1, new_columns(window))
        got.append(_seen(w))
        if w.n < window:
            return got
        off = w.end


def _seen(w: W.Walked) -> tuple:
    n = w.n
    return (n, w.end, w.need, w.rec_off[:n].tolist(), w.cap_len[:n].tolist(),
            w.orig_len[:n].tolist(), w.ts[:n].tolist(), w.status[:n].tolist())


def _walkers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "camprotool-record-walk"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 120), max_size=40), st.integers(1, 9), st.integers(0, 20),
       st.booleans())
def test_the_windows_are_those_of_a_walk_in_line(lengths, window, cut, reuse):
    """Also when the file ends inside a record (``cut`` bytes short), and when the same
    columns are filled again (``reuse``: each window is read before it is given back)."""
    buf = _pcap(lengths)
    buf = buf[: max(24, len(buf) - cut)]
    got = []
    with RecordWalk(buf, 24, len(buf), False, 1000, 1, window, reuse=reuse) as walk:
        for w in walk:
            got.append(_seen(w))
            if reuse:
                walk.give_back(w)
    assert got == _walked_in_line(buf, window)
    assert not _walkers()


def test_columns_are_given_back_only_to_a_walk_that_reuses_them():
    buf = _pcap([60] * 3)
    with RecordWalk(buf, 24, len(buf), False, 1000, 1, 4) as walk:
        w = next(walk)
        with pytest.raises(ValueError, match="reuse=True"):
            walk.give_back(w)


def test_letting_go_early_stops_the_worker():
    buf = _pcap([60] * 50)
    walk = RecordWalk(buf, 24, len(buf), False, 1000, 1, 4)
    assert next(walk).n == 4
    walk.close()
    assert not _walkers()


def test_an_abandoned_streaming_read_stops_the_worker(monkeypatch):
    """A streaming reader stopped after its first chunk: the generators holding the walk
    are closed as they are let go, and the worker with them."""
    from camprotool import iter_capture
    from camprotool.analysis import stream

    monkeypatch.setattr(stream, "STREAM_WINDOW", 4)  # 42 packets: 11 windows
    chunks = iter_capture("captures/sample.pcap", chunk_size=1)
    assert len(next(chunks)) == 1
    assert _walkers()  # the file is being walked
    chunks.close()
    del chunks
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

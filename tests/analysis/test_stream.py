"""``iter_capture``: chunks of bounded size that together are ``read_capture``'s messages."""

from __future__ import annotations

import glob

import pandas as pd
import pytest

from camprotool import iter_capture, read_capture
from camprotool.analysis import stream
from camprotool.capture.writer import PcapWriter

KEY = ["conn", "direction", "stream_offset"]


def _same_messages(chunks: list[pd.DataFrame], whole: pd.DataFrame) -> None:
    got = pd.concat(chunks, ignore_index=True) if chunks else whole.iloc[:0]
    a = got.sort_values(KEY, kind="stable").reset_index(drop=True)
    b = whole.sort_values(KEY, kind="stable").reset_index(drop=True)
    for frame in (a, b):  # chunks may lack commands or endpoints other chunks have
        for name in ("command", "client", "server"):
            frame[name] = frame[name].astype(str)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("path", sorted(glob.glob("captures/*.pcap*")))
@pytest.mark.parametrize("chunk", [1, 7, 100_000])
def test_chunks_hold_the_captures_messages(path, chunk):
    chunks = list(iter_capture(path, chunk_size=chunk))
    assert all(0 < len(c) <= chunk for c in chunks)
    assert all(c["ts"].is_monotonic_increasing for c in chunks)
    assert all(isinstance(c.index, pd.RangeIndex) and c.index.start == 0 for c in chunks)
    _same_messages(chunks, read_capture(path).messages)


def test_windows_smaller_than_connections(monkeypatch):
    """Connections that span many windows continue from chunk to chunk."""
    w = PcapWriter()
    t0 = 1_700_000_000_000_000_000
    for k in range(5):
        c = w.tcp(("10.0.0.1", 50000 + k), ("10.0.0.2", 9000), t0 + k * 10)
        c.send("c2s", b"SocketCommand.LoginCommand.Login|demo|demo\r\n", t0 + 100 + k)
        c.send("s2c", b"SocketCommand.LoginCommand.LoginOk|3|t|ip\r\n", t0 + 200 + k)
        c.send("c2s", b"SocketCommand.NormalCommand.Heartbeat|\r\n", t0 + 300 + k)
        c.close(t0 + 10_000 + k)
    monkeypatch.setattr(stream, "STREAM_WINDOW", 3)
    data = w.getvalue()
    chunks = list(iter_capture(data, chunk_size=4))
    assert len(chunks) > 3
    _same_messages(chunks, read_capture(data).messages)
    revealed = list(iter_capture(data, reveal_passwords=True))
    assert "demo|demo" in pd.concat(revealed)["params"].tolist()
    assert "demo|demo" not in pd.concat(chunks)["params"].tolist()


def test_bad_chunk_size_is_refused():
    with pytest.raises(ValueError, match="chunk_size"):
        next(iter_capture("captures/sample.pcap", chunk_size=0))


@pytest.mark.parametrize("path", sorted(glob.glob("captures/*.pcap*")))
def test_problems_are_the_readers(path, tmp_path):
    from pathlib import Path

    cut = tmp_path / "cut.pcap"
    cut.write_bytes(Path(path).read_bytes()[:3000])
    for source in (path, str(cut)):
        found: list = []
        list(iter_capture(source, problems=found))
        assert found == read_capture(source).decoded.problems

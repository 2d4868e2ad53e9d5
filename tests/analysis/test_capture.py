"""``read_capture``: paths and bytes, bad input, truncated files, and the ``Capture`` object."""

from __future__ import annotations

import pandas as pd
import pytest

import camprotool as cpt
from camprotool import encode, read_capture
from camprotool.capture.readers import CaptureFormatError
from camprotool.capture.writer import PcapngWriter, PcapWriter

T0 = 1_700_000_000_000_000_000
WRITERS = [PcapngWriter, PcapWriter]


def session(w) -> None:
    c = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 9000), T0)
    c.send("c2s", encode("Login", "demo|demo"), T0 + 100)
    c.send("s2c", encode("LoginOk", "1|2024-01-01 10:00:00|1.2.3.4"), T0 + 200)
    c.send("c2s", encode("Heartbeat"), T0 + 300)
    c.send("s2c", encode("PrushCaramerAlarmInfo", "CAM1:motion"), T0 + 400)


def commands(cap) -> list[str]:
    return cap.messages["command"].astype(str).tolist()


@pytest.mark.parametrize("writer_cls", WRITERS)
def test_path_str_pathlike_and_bytes_agree(tmp_path, writer_cls):
    path = tmp_path / "session.cap"
    with writer_cls(path) as w:
        session(w)
    from_path = read_capture(path)
    from_str = read_capture(str(path))
    from_bytes = read_capture(path.read_bytes())
    assert commands(from_path) == ["Login", "LoginOk", "Heartbeat", "PrushCaramerAlarmInfo"]
    pd.testing.assert_frame_equal(from_path.messages, from_str.messages)
    pd.testing.assert_frame_equal(from_path.messages, from_bytes.messages)
    assert from_path.source == str(path)
    assert from_bytes.source == "<memory>"
    assert str(path) in repr(from_path) and "4 messages" in repr(from_path)


def test_top_level_api():
    w = PcapngWriter()
    session(w)
    cap = cpt.read_capture(w.getvalue(), dialect="auto", ports=None, reveal_passwords=False)
    assert isinstance(cap, cpt.Capture)
    assert cap.messages is cap.messages  # built once
    assert len(cap.connections) == 1


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "no" / "such.pcapng"
    with pytest.raises(FileNotFoundError) as info:
        read_capture(path)
    # the path once (it was repeated: "...not found: P: 'P'"), and as the filename
    assert str(info.value).count(str(path)) == 1
    assert "capture file not found" in str(info.value)
    assert info.value.filename == str(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    with pytest.raises(CaptureFormatError, match="empty") as info:
        read_capture(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(CaptureFormatError, match="empty"):
        read_capture(b"")


@pytest.mark.parametrize("content", [
    b"hello, this is a text file, not a capture\n",
    b"\x00\x01",
    b'{"json": true}',
])
def test_not_a_capture(tmp_path, content):
    path = tmp_path / "notes.pcap"
    path.write_bytes(content)
    with pytest.raises(CaptureFormatError) as info:
        read_capture(path)
    assert str(path) in str(info.value)


def test_a_directory_is_not_a_capture(tmp_path):
    with pytest.raises(CaptureFormatError, match="directory"):
        read_capture(tmp_path)


@pytest.mark.parametrize("writer_cls", WRITERS)
@pytest.mark.parametrize("cut", [1, 30, 60])
def test_truncated_capture_keeps_what_came_before(writer_cls, cut):
    w = writer_cls()
    session(w)
    whole = w.getvalue()
    cap = read_capture(whole[:-cut])  # the last packet (the alarm push) is cut
    assert commands(cap) == ["Login", "LoginOk", "Heartbeat"]
    assert cap.messages["error"].isna().all()
    assert cap.problems["kind"].astype(str).tolist() == ["truncated_file"]
    assert cap.problems["frame"].tolist() == [7]
    assert cap.connections.loc[0, "close_reason"] == "end_of_capture"


@pytest.mark.parametrize("writer_cls", WRITERS)
def test_truncated_inside_a_message_split_over_packets(writer_cls):
    w = writer_cls()
    c = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 9000), T0)
    c.send("c2s", encode("Login", "demo|demo"), T0 + 100)
    c.send("c2s", encode("CheckCaramerOnlineStatus", "CAM1;CAM2;CAM3"), T0 + 200,
           segment_size=20)
    data = w.getvalue()
    cap = read_capture(data[:-10])
    assert commands(cap)[0] == "Login"
    # The unfinished frame at the end of the capture is reported, not dropped silently.
    assert commands(cap)[1:] == [""]
    assert cap.messages.loc[1, "error"].startswith("stream ended inside a frame")
    assert "truncated_file" in cap.problems["kind"].astype(str).tolist()


def test_capture_with_only_other_traffic():
    w = PcapngWriter()
    c = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 443), T0)
    c.send("c2s", bytes(range(256)) * 4, T0 + 100)
    c.send("s2c", b"\x16\x03\x01" + bytes(500), T0 + 200)
    cap = read_capture(w.getvalue())
    assert cap.messages.empty and cap.connections.empty and cap.problems.empty
    assert "0 connections" in repr(cap)

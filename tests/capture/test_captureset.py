"""Capture sets: several files read as one capture, equal to their merged file.

A dumpcap ring buffer cut at any packet, given in any order, must decode
exactly as the file it was cut from (every table, every engine, any window
size of the fast engine): connections, reassembly and data-port
announcements carry across file boundaries. Files of different sensors
interleave by timestamp. A file that cannot be read is a problem, not an
error, while another file of the set can be.
"""

from __future__ import annotations

import itertools
import random
import shutil
import subprocess

import pandas as pd
import pytest
from conversations import LOGIN_OK, T0, frame
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_fast_engine import _conversation, captures

from camprotool import iter_capture, read_capture
from camprotool.capture.captureset import CaptureSet, expand_sources, open_source
from camprotool.capture.readers import CaptureFile, CaptureFormatError, open_capture
from camprotool.capture.writer import PcapngWriter, PcapWriter

MS = 1_000_000
TABLES = ("messages", "connections", "problems", "violations", "sessions", "sync", "status")


def _assert_same(a, b, tables=TABLES) -> None:
    for name in tables:
        left, right = getattr(a, name), getattr(b, name)
        if name == "problems":  # a set's problems name the file they were found in
            right = right.assign(detail=right["detail"].str.replace(
                r"^ring_\d+_\d+\.pcapng: ", "", regex=True))
        pd.testing.assert_frame_equal(left, right, obj=name)


def _split(data: bytes, cuts: list[int], folder, stem: str = "ring") -> list[str]:
    """Write the packets of ``data`` into one pcapng file per piece (``cuts``: the
    packet indexes where a new file starts), named as dumpcap names a ring buffer.

    The packets are put in time order first, as a capturing tool writes them (the
    generated captures write one conversation after another)."""
    with open_capture(data) as cap:
        packets = [(r.ts_ns, r.linktype, bytes(r.data), r.orig_len) for r in cap]
    packets.sort(key=lambda p: p[0])
    bounds = [0, *sorted(set(cuts)), len(packets)]
    paths = []
    for k, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        if lo >= hi:
            continue
        path = str(folder / f"{stem}_{k + 1:05d}_20260101000000.pcapng")
        with PcapngWriter(path, linktype=None) as w:
            ids: dict[int, int] = {}
            for ts, linktype, body, orig in packets[lo:hi]:
                if linktype not in ids:
                    ids[linktype] = w.add_interface(linktype)
                w.write_packet(ts, body, orig, interface=ids[linktype])
        paths.append(path)
    return paths


def _generated(case) -> bytes:
    writer, dialect, convs, starts, _ = case
    w = writer()
    for k, ((pathology, items, v6, vlan), t) in enumerate(zip(convs, starts, strict=True)):
        _conversation(w, k, T0 + t, pathology, items, dialect, v6, vlan)
    return w.getvalue()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(captures(), st.data(), st.sampled_from([None, 3, 8]))
def test_a_ring_buffer_cut_anywhere_reads_as_its_merged_file(tmp_path_factory, case, data,
                                                             window):
    from camprotool.capture.fast import engine

    whole = _generated(case)
    with open_capture(whole) as cap:
        n = sum(1 for _ in cap)
    assume(n > 0)  # a capture of no packet has nothing to cut
    cuts = data.draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=4))
    paths = _split(whole, cuts, tmp_path_factory.mktemp("ring"))
    random.Random(n).shuffle(paths)  # order given does not matter: first timestamps do
    merged = _split(whole, [], tmp_path_factory.mktemp("merged"))[0]
    read_dialect = case[4]
    engine.WINDOW, saved = window or engine.WINDOW, engine.WINDOW
    try:
        for name in ("fast", "bulk"):
            _assert_same(read_capture(merged, dialect=read_dialect, engine=name),
                         read_capture(paths, dialect=read_dialect, engine=name),
                         ("messages", "connections", "problems", "violations"))
    finally:
        engine.WINDOW = saved


def _sync_capture() -> bytes:
    """A login, then an upload on a data connection announced on the main one."""
    w = PcapWriter()
    main = w.tcp(("10.0.0.5", 40000), ("10.0.0.2", 9000), T0)
    main.send("c2s", frame("Login", "demo|pw"), T0 + 1_000 * MS)
    main.send("s2c", frame("LoginOk", LOGIN_OK), T0 + 2_000 * MS)
    main.send("c2s", frame("CreatDataSocket", "demo|pw"), T0 + 3_000 * MS)
    main.send("s2c", frame("ReturnDataSocketPort", "9001"), T0 + 4_000 * MS)
    data = w.tcp(("10.0.0.5", 40001), ("10.0.0.2", 9001), T0 + 5_000 * MS)
    for k in range(6):
        t = T0 + (6_000 + k * 2_000) * MS
        data.send("c2s", frame("UploadCaramer", f"CAM{k}|pw|{k + 1}|6"), t)
        data.send("s2c", frame("UploadSucess", f"CAM{k}|true|{k + 1}|6"), t + 1_000 * MS)
    data.close(T0 + 30_000 * MS)
    main.send("c2s", frame("Heartbeat"), T0 + 31_000 * MS)
    main.close(T0 + 40_000 * MS)
    return w.getvalue()


def test_a_transfer_that_crosses_a_file_boundary_is_whole(tmp_path):
    whole = _sync_capture()
    with open_capture(whole) as cap:
        frames = [(r.frame, r.ts_ns) for r in cap]
    # cut inside the upload: after the announcement, before its last answers
    cut = next(i for i, (_, ts) in enumerate(frames) if ts >= T0 + 10_000 * MS)
    paths = _split(whole, [cut], tmp_path)
    merged = read_capture(_split(whole, [], tmp_path, "merged")[0])
    both = read_capture(paths)
    _assert_same(merged, both)
    assert both.problems.empty
    assert both.connections["channel"].astype(str).tolist() == ["main", "data"]
    assert len(both.sync) == 6 and both.sync["conn"].eq(1).all()
    # read alone, the second file starts in the middle of both connections
    alone = read_capture(paths[1])
    assert "mid_stream" in set(alone.problems["kind"])
    assert len(alone.messages) < len(both.messages)


def test_glob_and_iter_capture_read_the_set(tmp_path):
    whole = _sync_capture()
    paths = _split(whole, [9, 17, 30], tmp_path)
    pattern = str(tmp_path / "ring_*.pcapng")
    assert expand_sources(pattern) == sorted(paths)
    cap = read_capture(pattern)
    _assert_same(read_capture(paths), cap)
    chunks = list(iter_capture(pattern, chunk_size=4))
    assert all(len(c) <= 4 for c in chunks)
    streamed = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(streamed, cap.messages)


def test_sensors_overlapping_in_time_interleave_by_timestamp(tmp_path):
    w = PcapWriter()
    convs = []
    for k in range(2):
        c = w.tcp((f"10.0.0.{k + 5}", 40000), ("10.0.0.2", 9000), T0 + k * 50 * MS)
        convs.append(c)
    for j in range(5):
        for k, c in enumerate(convs):
            c.send("c2s", frame("Heartbeat"), T0 + (1_000 + j * 1_000 + k * 100) * MS)
    for k, c in enumerate(convs):
        c.close(T0 + (10_000 + k) * MS)
    whole = w.getvalue()
    with open_capture(whole) as cap:
        packets = [(r.ts_ns, bytes(r.data)) for r in cap]
    files = []
    for k in range(2):  # each sensor saw one client
        path = tmp_path / f"sensor{k}.pcap"
        client = bytes([10, 0, 0, k + 5])
        with PcapWriter(str(path)) as out:
            for ts, body in packets:
                if client in (body[26:30], body[30:34]):  # IPv4 source or destination
                    out.write_packet(ts, body)
        files.append(str(path))
    merged = read_capture(files[::-1])
    _assert_same(read_capture(_split(whole, [], tmp_path, "whole")[0]), merged)
    assert merged.messages["frame"].is_monotonic_increasing
    assert merged.messages["conn"].tolist() == [0, 1] * 5
    if shutil.which("mergecap"):  # what Wireshark users would do
        out = tmp_path / "mergecap.pcapng"
        subprocess.run(["mergecap", "-w", str(out), *files], check=True)
        _assert_same(read_capture(str(out)), merged)


def test_bad_files_are_problems_and_the_rest_decodes(tmp_path):
    whole = _sync_capture()
    paths = _split(whole, [20], tmp_path)
    garbage = tmp_path / "ring_00000_garbage.pcapng"
    garbage.write_bytes(b"this is not a capture at all")
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    missing = str(tmp_path / "gone.pcap")
    cut = tmp_path / "cut.pcapng"
    with open(_split(_sync_capture(), [], tmp_path, "extra")[0], "rb") as fh:
        data = fh.read()
    cut.write_bytes(data[: len(data) - 30])
    cap = read_capture([*paths, str(garbage), str(empty), missing])
    kinds = cap.problems["kind"].tolist()
    assert kinds.count("bad_file") == 3
    details = " ".join(cap.problems["detail"])
    for name in ("garbage", "empty.pcap", "gone.pcap"):
        assert name in details
    assert "file not found" in details
    pd.testing.assert_frame_equal(cap.messages, read_capture(paths).messages)
    # a truncated file: its last record is a problem naming the file
    with_cut = read_capture([paths[0], str(cut)])
    row = with_cut.problems[with_cut.problems["kind"] == "truncated_file"]
    assert len(row) == 1 and row["detail"].iloc[0].startswith("cut.pcapng: ")
    assert row["frame"].iloc[0] > 0


def test_a_set_with_nothing_readable_is_an_error(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"nope nope nope nope nope nope")
    with pytest.raises(CaptureFormatError, match="none of the 2 files"):
        read_capture([str(bad), str(tmp_path / "missing.pcap")])
    with pytest.raises(FileNotFoundError, match="no capture file matches"):
        read_capture(str(tmp_path / "nothing_*.pcapng"))
    with pytest.raises(ValueError, match="empty list"):
        read_capture([])
    with pytest.raises(ValueError, match="not a path"):
        read_capture(["a.pcap", 3])


def test_one_file_is_not_a_set(tmp_path):
    path = _split(_sync_capture(), [], tmp_path)[0]
    with open_source([path]) as one:
        assert isinstance(one, CaptureFile)
    with open_source(path) as one:
        assert isinstance(one, CaptureFile)
    with open_source([path, path]) as two:
        assert isinstance(two, CaptureSet) and len(two.members) == 2

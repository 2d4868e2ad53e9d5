"""``Capture.problems``: the decoder's rows plus lost bytes, mid-stream starts and a dialect
that decodes to nothing, the same from every engine; and the one-line warnings."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from camprotool import encode, read_capture
from camprotool.analysis.problems import print_warnings, warning_lines
from camprotool.capture.writer import PcapngWriter, PcapWriter

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"
T0 = 1_764_320_400_000_000_000
MS = 1_000_000
ENGINES = ["fast", "bulk", "incremental"]


def rows(cap) -> list[tuple]:
    p = cap.problems
    return [(None if pd.isna(f) else int(f), k, None if pd.isna(c) else int(c),
             None if pd.isna(d) else d, text)
            for f, k, c, d, text in p[["frame", "kind", "conn", "direction", "detail"]]
            .astype(object).itertuples(index=False, name=None)]


@pytest.mark.parametrize("engine", ENGINES)
def test_failed_sync_lost_bytes(engine):
    cap = read_capture(CAPTURES / "failed_sync.pcapng", engine=engine)
    assert rows(cap) == [(20, "lost_bytes", 0, "s2c",
                          "connection 0: 15 bytes lost server→client (s2c); frame 20 is the "
                          "first after the loss")]
    assert list(cap.problems.columns) == ["frame", "kind", "conn", "direction", "detail"]
    assert [str(t) for t in cap.problems.dtypes] == ["Int64", "category", "Int64", "category",
                                                     "str"]


def test_clean_captures_have_none():
    for name in ("sample.pcapng", "sample.pcap", "download.pcapng", "emulator.pcapng"):
        assert read_capture(CAPTURES / name).problems.empty, name


def lossy(writer_cls=PcapngWriter, *, handshake=True, skip_between=False) -> bytes:
    """A login, then a client frame whose middle segment is lost (or a lost frame whole)."""
    w = writer_cls()
    c = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 9000), T0, handshake=handshake)
    c.send("c2s", encode("Login", "demo|demo"), T0 + MS)
    c.send("s2c", encode("LoginOk", "3|2025-11-27 18:02:11|10.0.0.1"), T0 + 2 * MS)
    check = encode("CheckCaramerOnlineStatus", "CAM00001;CAM00002;CAM00003")
    if skip_between:
        c.skip("c2s", len(check))
    else:
        c.send("c2s", check[:10], T0 + 3 * MS)
        c.skip("c2s", 20)
        c.send("c2s", check[30:], T0 + 4 * MS)
    c.send("c2s", encode("Heartbeat"), T0 + 5 * MS)
    c.send("s2c", encode("Heartbeat"), T0 + 6 * MS)
    c.close(T0 + 7 * MS)
    return w.getvalue()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("writer_cls", [PcapngWriter, PcapWriter])
def test_lost_bytes_in_a_frame(engine, writer_cls):
    cap = read_capture(lossy(writer_cls), engine=engine)
    assert cap.connections.loc[0, "lost_c2s"] == 20
    (row,) = rows(cap)
    frame, kind, conn, direction, detail = row
    assert (kind, conn, direction) == ("lost_bytes", 0, "c2s")
    # the packet right after the hole: what Wireshark flags "previous segment not captured"
    after = cap.messages.loc[cap.messages["error"].fillna("").str.contains("follows lost"),
                             "frame"].min()
    assert frame == after
    assert detail.startswith("connection 0: 20 bytes lost client→server (c2s); frame ")


@pytest.mark.parametrize("engine", ENGINES)
def test_lost_frame_between_frames_falls_back_to_a_frame_it_names(engine):
    cap = read_capture(lossy(skip_between=True), engine=engine)
    (row,) = rows(cap)
    assert row[1:4] == ("lost_bytes", 0, "c2s")
    assert isinstance(row[0], int)
    assert "lost client→server" in row[4]


@pytest.mark.parametrize("engine", ENGINES)
def test_mid_stream_start(engine):
    w = PcapngWriter()
    c = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 9000), T0, handshake=False)
    c.send("c2s", encode("Heartbeat"), T0 + MS)
    c.send("s2c", encode("Heartbeat"), T0 + 2 * MS)
    c.close(T0 + 3 * MS)
    cap = read_capture(w.getvalue(), engine=engine)
    first = int(cap.messages["frame"].min())
    (row,) = rows(cap)
    assert row[:4] == (first, "mid_stream", 0, None)
    assert "began before the capture" in row[4] and f"frame {first}" in row[4]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_dialect_that_decodes_to_nothing_gets_a_hint(engine):
    cap = read_capture(CAPTURES / "sample.pcapng", dialect="lp32le", engine=engine)
    got = rows(cap)
    assert [r[1:4] for r in got] == [("dialect_failed", 1, None), ("dialect_failed", 0, None)]
    assert [r[0] for r in got] == sorted(r[0] for r in got)  # by frame
    for r in got:
        assert "every frame failed to decode as lp32le; try dialect='auto'" in r[4]
    # the right dialect: no hint
    assert read_capture(CAPTURES / "sample.pcapng", dialect="line").problems.empty


def test_a_cut_frame_alone_is_not_a_wrong_dialect():
    w = PcapngWriter()
    c = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 9000), T0)
    c.send("c2s", encode("Login", "demo|demo"), T0 + MS)
    data = w.getvalue()
    cap = read_capture(data[:-10])  # the only frame cut by the end of the file
    assert cap.problems["kind"].astype(str).tolist() == ["truncated_file"]


@pytest.mark.parametrize("engine", ENGINES)
def test_truncated_file_and_order_by_frame(engine, tmp_path):
    cut = tmp_path / "t.pcapng"
    cut.write_bytes((CAPTURES / "sample.pcapng").read_bytes()[:3000])
    cap = read_capture(cut, engine=engine)
    assert rows(cap) == [(22, "truncated_file", None, None, "file ends inside a block (type "
                          "0x6) at byte 2916: 84 of 148 bytes present.")]


def test_reassembler_rows_name_their_connection_and_direction():
    w = PcapngWriter()
    c = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 9000), T0)
    data = encode("Login", "demo|demo")
    seq = c.segment("c2s", data, T0 + MS)
    c.segment("c2s", data[:5] + b"X" + data[6:], T0 + 2 * MS, seq=seq)  # differs on resend
    c.close(T0 + 3 * MS)
    cap = read_capture(w.getvalue())
    p = cap.problems
    row = p[p["kind"] == "conflicting_retransmission"].iloc[0]
    assert row["conn"] == 0 and row["direction"] == "c2s"
    assert row["detail"].startswith("connection 0: c2s: ")


def test_warning_lines_one_per_kind():
    p = pd.DataFrame({
        "frame": pd.array([3, 5, 9, None], dtype="Int64"),
        "kind": pd.Categorical(["lost_bytes", "truncated_file", "lost_bytes", "mid_stream"]),
        "conn": pd.array([0, None, 2, 1], dtype="Int64"),
        "direction": pd.Categorical(["s2c", None, "c2s", None]),
        "detail": ["connection 0: 15 bytes lost", "file ends inside a record", "x", "y"],
    })
    assert warning_lines(p) == [
        "warning: lost_bytes: 2 (first at frame 3): connection 0: 15 bytes lost; "
        "and 1 more like it",
        "warning: truncated_file: 1 (first at frame 5): file ends inside a record",
        "warning: mid_stream: 1: y",
    ]
    out = io.StringIO()
    assert print_warnings(p, out) == 3
    assert out.getvalue().count("\n") == 3
    assert warning_lines(p.iloc[:0]) == []
    assert print_warnings(p.iloc[:0], out) == 0


@pytest.mark.parametrize("source,dialect", [("failed_sync.pcapng", "auto"),
                                            ("sample.pcapng", "lp32le")])
def test_a_digest_fed_chunk_by_chunk_gives_the_same_rows(source, dialect):
    from camprotool.analysis.problems import MessageDigest, derived_rows
    from camprotool.analysis.stream import iter_capture

    cap = read_capture(CAPTURES / source, dialect=dialect)
    digest = MessageDigest()
    for chunk in iter_capture(CAPTURES / source, dialect=dialect, chunk_size=3):
        digest.add(chunk)
    assert derived_rows(cap.connections, digest) == derived_rows(cap.connections, cap.messages)
    assert derived_rows(cap.connections, digest)

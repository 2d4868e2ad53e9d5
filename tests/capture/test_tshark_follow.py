"""Cross-check our TCP reassembly against tshark's "Follow TCP stream".

A capture with several connections (out-of-order segments, retransmissions,
sequence wrap-around) is written to a real file; tshark's raw follow output of
every stream must equal, byte for byte and per direction, the streams our
reassembler delivers.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from conversations import T0, frame, read

from camprotool.capture.packets import format_endpoint, iter_tcp_segments
from camprotool.capture.readers import open_capture
from camprotool.capture.reassembly import ConnectionInfo, Reassembler
from camprotool.capture.writer import PcapngWriter, PcapWriter

TSHARK = shutil.which("tshark")

pytestmark = [
    pytest.mark.tshark,
    pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (run `make sysdeps`)"),
]


class Collect:
    """A reassembly sink that keeps every byte, per connection and direction."""

    def __init__(self) -> None:
        self.ends: dict[int, tuple[str, str]] = {}
        self.data: dict[tuple[int, str], bytearray] = {}
        self.gaps: list[tuple[int, str, int]] = []

    def on_open(self, conn: ConnectionInfo) -> None:
        self.ends[conn.conn_id] = (format_endpoint(conn.a_ip, conn.a_port),
                                   format_endpoint(conn.b_ip, conn.b_port))
        self.data[conn.conn_id, "c2s"] = bytearray()
        self.data[conn.conn_id, "s2c"] = bytearray()

    def on_data(self, conn_id, direction, data, ts_ns, frame_no) -> None:
        self.data[conn_id, direction] += data

    def on_gap(self, conn_id, direction, nbytes, ts_ns, frame_no) -> None:
        self.gaps.append((conn_id, direction, nbytes))

    def on_close(self, conn_id, ts_ns, reason) -> None:
        pass

    def by_direction(self) -> dict[tuple[str, str], bytes]:
        """{(sender, receiver): bytes} for every connection and direction."""
        out = {}
        for conn_id, (a, b) in self.ends.items():
            out[a, b] = bytes(self.data[conn_id, "c2s"])
            out[b, a] = bytes(self.data[conn_id, "s2c"])
        return out


def ours(path) -> Collect:
    sink = Collect()
    r = Reassembler(sink)
    with open_capture(path) as capture:
        for seg in iter_tcp_segments(capture):
            r.add(seg)
        r.finish()
    return sink


_BLOCK = re.compile(
    r"Filter: tcp\.stream eq (\d+)\nNode 0: (\S+)\nNode 1: (\S+)\n(.*?)\n?={10,}", re.S)


def tshark_follow(path, streams: int) -> dict[tuple[str, str], bytes]:
    """{(sender, receiver): bytes} from ``tshark -z follow,tcp,raw,N`` for N < streams."""
    args = [TSHARK, "-r", str(path), "-q"]
    for n in range(streams):
        args += ["-z", f"follow,tcp,raw,{n}"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
    found = {}
    for stream, node0, node1, body in _BLOCK.findall(out):
        sent = {(node0, node1): bytearray(), (node1, node0): bytearray()}
        for line in body.splitlines():
            if not line.strip():
                continue
            key = (node1, node0) if line.startswith("\t") else (node0, node1)
            sent[key] += bytes.fromhex(line.strip())
        found[int(stream)] = {k: bytes(v) for k, v in sent.items()}
    assert sorted(found) == list(range(streams)), out
    return {k: v for streams_data in found.values() for k, v in streams_data.items()}


def write_capture(w) -> int:
    """Several connections with out-of-order data and retransmissions; returns their count."""
    login = frame("Login", "demo|demo")
    hb = frame("Heartbeat")
    ok = frame("LoginOk", "3|2024-01-01 10:00:00|10.0.0.1")
    # 0: in order, small segments both ways
    c = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 9000), T0)
    c.send("c2s", login + hb, T0 + 100, segment_size=9, ts_step_ns=1)
    c.send("s2c", ok, T0 + 200, segment_size=13, ts_step_ns=1)
    c.close(T0 + 300)
    # 1: out-of-order segments in both directions
    c = w.tcp(("10.0.0.1", 50001), ("10.0.0.2", 9001), T0 + 1000)
    data = frame("UploadCaramer", "CAM00001|pw|1|2") + frame("UploadCaramer", "CAM00002|pw|2|2")
    s = c.nxt["c2s"]
    c.segment("c2s", data[40:], T0 + 1100, seq=s + 40)
    c.segment("c2s", data[20:40], T0 + 1110, seq=s + 20)
    c.segment("c2s", data[:20], T0 + 1120, seq=s)
    c.skip("c2s", len(data))
    answer = frame("UploadSucess", "CAM00001|true|1|2")
    s = c.nxt["s2c"]
    c.segment("s2c", answer[25:], T0 + 1200, seq=s + 25)
    c.segment("s2c", answer[:25], T0 + 1210, seq=s)
    c.skip("s2c", len(answer))
    c.close(T0 + 1300)
    # 2: exact and overlapping retransmissions (same bytes)
    c = w.tcp(("10.0.0.3", 40000), ("10.0.0.2", 9000), T0 + 2000)
    s = c.send("c2s", login, T0 + 2100)
    c.segment("c2s", login, T0 + 2110, seq=s)
    c.segment("c2s", login[30:] + hb[:15], T0 + 2120, seq=s + 30)
    c.skip("c2s", 15)
    c.send("c2s", hb[15:], T0 + 2130)
    s = c.send("s2c", ok, T0 + 2200, segment_size=20)
    c.segment("s2c", ok[20:40], T0 + 2210, seq=s + 20)
    c.close(T0 + 2300, by="s2c")
    # 3: sequence numbers wrap inside the data, in both directions
    c = w.tcp(("10.0.0.4", 40001), ("10.0.0.2", 12345), T0 + 3000,
              isn_client=2**32 - 10, isn_server=2**32 - 30)
    c.send("c2s", login + hb, T0 + 3100, segment_size=16)
    c.send("s2c", ok, T0 + 3200, segment_size=16)
    c.close(T0 + 3300)
    return 4


@pytest.mark.parametrize("writer_cls", [PcapngWriter, PcapWriter])
def test_reassembled_streams_match_tshark_follow(tmp_path, writer_cls):
    path = tmp_path / ("cap.pcapng" if writer_cls is PcapngWriter else "cap.pcap")
    with writer_cls(path) as w:
        n = write_capture(w)
    sink = ours(path)
    assert sink.gaps == []
    mine = sink.by_direction()
    theirs = tshark_follow(path, n)
    assert len(mine) == 2 * n
    assert mine.keys() == theirs.keys()
    for key in mine:
        assert mine[key] == theirs[key], key
    # read_capture counts the same bytes.
    cap = read(str(path))
    for _, conn in cap.connections.iterrows():
        assert conn.bytes_c2s == len(theirs[conn.client, conn.server])
        assert conn.bytes_s2c == len(theirs[conn.server, conn.client])

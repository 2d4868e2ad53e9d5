"""The fast engine (compiled packet loops, in-order flows in bulk) equals the exact path.

Every table of ``engine="fast"`` must equal ``engine="bulk"`` (each packet through
the exact reassembler) on any capture: the fast engine only routes, it never
guesses. The property test interleaves several connections, each with a random
pathology (loss, reordering, retransmission, RST, port reuse, a late start,
data after close, snaplen cuts, IPv6, VLAN tags) or none.
"""

from __future__ import annotations

import glob
import sys
import threading

import pandas as pd
import pytest
from conversations import LOGIN_OK, SERVER, T0, frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camprotool import read_capture
from camprotool.capture.writer import PcapngWriter, PcapWriter

_MESSAGES = [
    ("Login", "demo|pw"),
    ("LoginOk", LOGIN_OK),
    ("Heartbeat", ""),
    ("UploadCaramer", "CAM1|pw|1|2"),
    ("UploadSucess", "CAM1|true|1|2"),
    ("PrushCaramerAlarmInfo", "CAM1:motion"),
    ("LoginError", "用户名或者密码错误!"),
    ("SocketCommand.FooCommand.Frob", "a|b"),
]
_PATHOLOGIES = ["none", "none", "lose", "swap", "retransmit", "rst", "reuse", "late",
                "after_close", "snaplen", "keepalive", "syn_retransmit", "half_fin"]


def _assert_same(a, b) -> None:
    for name in ("messages", "connections", "problems", "violations", "sessions"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), obj=name)


def _both(data: bytes, **kw):
    return read_capture(data, engine="bulk", **kw), read_capture(data, engine="fast", **kw)


@pytest.mark.parametrize("path", sorted(glob.glob("captures/*.pcap*")))
def test_bundled_captures(path):
    _assert_same(*_both(path))


def _conversation(w, k: int, t: int, pathology: str, items, dialect: str, v6: bool,
                  vlan: bool) -> None:
    client = (f"fd00::{k + 1}" if v6 else f"10.0.{k // 200}.{k % 200 + 1}", 40000 + k)
    server = ("fd00::ffff" if v6 else SERVER[0], SERVER[1] + k % 3)
    opts = {"vlans": [7]} if vlan and isinstance(w, PcapngWriter) else {}
    c = w.tcp(client, server, t, handshake=pathology != "late", **opts)
    if pathology == "syn_retransmit":
        c.segment("c2s", b"", t + 1, seq=(c.nxt["c2s"] - 1) & 0xFFFFFFFF, flags=0x02, ack=0)
    t += 1000
    for j, (direction, msg) in enumerate(items):
        data = frame(*msg, dialect)
        if pathology == "lose" and j == 1:
            c.skip(direction, len(data))
        elif pathology == "swap" and j == 1 and len(data) > 3:
            s = c.nxt[direction]
            c.segment(direction, data[3:], t, seq=s + 3)
            c.segment(direction, data[:3], t + 1, seq=s)
            c.skip(direction, len(data))
        elif pathology == "retransmit" and j == 1:
            s = c.send(direction, data, t)
            c.segment(direction, data, t + 1, seq=s)
        elif pathology == "snaplen" and j == 1:
            c.segment(direction, data, t, orig_len=9000)
            c.skip(direction, len(data))
        elif pathology == "keepalive" and j == 1:
            c.segment(direction, b"\0", t, seq=(c.nxt[direction] - 1) & 0xFFFFFFFF)
            c.send(direction, data, t + 1)
        else:
            c.send(direction, data, t, segment_size=7 if j % 3 == 2 else None)
        t += 100
    if pathology == "rst":
        c.close(t, "rst", by="s2c")
    elif pathology == "half_fin":
        c.segment("c2s", b"", t, flags=0x11)
    elif pathology != "late" or k % 2:
        c.close(t)
    if pathology == "after_close":
        c.segment("c2s", b"late bytes\n", t + 5000)
    if pathology == "reuse":
        again = w.tcp(client, server, t + 10_000)
        again.send("c2s", frame("Heartbeat", "", dialect), t + 11_000)
        again.close(t + 12_000)


@st.composite
def captures(draw):
    n = draw(st.integers(1, 5))
    convs = []
    for _ in range(n):
        items = draw(st.lists(st.tuples(st.sampled_from(["c2s", "s2c"]),
                                        st.sampled_from(_MESSAGES)), min_size=0, max_size=6))
        convs.append((draw(st.sampled_from(_PATHOLOGIES)), items, draw(st.booleans()),
                      draw(st.booleans())))
    dialect = draw(st.sampled_from(["line", "line:gbk", "lp32le"]))
    writer = draw(st.sampled_from([PcapWriter, PcapngWriter]))
    starts = draw(st.lists(st.integers(0, 3000), min_size=n, max_size=n))
    return writer, dialect, convs, starts, draw(st.sampled_from(["auto", dialect]))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(captures(), st.sampled_from([None, 4, 9]))
def test_fast_equals_exact_on_generated_captures(case, window):
    """Also in windows of a few records: flows deferred, settled later or handed on."""
    from camprotool.capture.fast import engine

    writer, dialect, convs, starts, read_dialect = case
    engine.WINDOW, saved = window or engine.WINDOW, engine.WINDOW
    w = writer()
    for k, ((pathology, items, v6, vlan), t) in enumerate(zip(convs, starts, strict=True)):
        # starts closer than a conversation lasts: messages interleave in time
        _conversation(w, k, T0 + t, pathology, items, dialect, v6, vlan)
    data = w.getvalue()
    try:
        _assert_same(*_both(data, dialect=read_dialect, reveal_passwords=True))
        _assert_same(*_both(data, dialect=read_dialect))
    finally:
        engine.WINDOW = saved


def test_fast_is_the_default_and_small_windows_change_nothing(monkeypatch):
    w = PcapWriter()
    for k in range(6):
        _conversation(w, k, T0 + k * 10_000, "none",
                      [("c2s", _MESSAGES[0]), ("s2c", _MESSAGES[1]), ("c2s", _MESSAGES[2])],
                      "line", False, False)
    data = w.getvalue()
    whole = read_capture(data)
    from camprotool.capture.fast import engine
    monkeypatch.setattr(engine, "WINDOW", 3)
    _assert_same(read_capture(data, engine="bulk"), read_capture(data))
    _assert_same(whole, read_capture(data))
    assert len(whole.messages) == 18


@pytest.mark.parametrize("engine", ["fast", "bulk", "incremental"])
def test_a_first_line_longer_than_the_sample_is_still_detected(engine):
    """Detection keeps looking past 64 KiB when the sample names a command."""
    w = PcapWriter()
    c = w.tcp(("10.0.0.1", 40000), ("10.0.0.2", 9000), T0)
    long_login = frame("Login", "demo|" + "x" * 100_000)
    c.send("c2s", long_login + frame("Heartbeat"), T0 + 1000)
    c.send("s2c", frame("LoginOk", LOGIN_OK), T0 + 2000)
    c.close(T0 + 3000)
    data = w.getvalue()
    auto = read_capture(data, engine=engine)
    named = read_capture(data, dialect="line", engine=engine)
    assert auto.messages["command"].astype(str).tolist() == ["Login", "Heartbeat", "LoginOk"]
    pd.testing.assert_frame_equal(auto.messages, named.messages)
    assert auto.problems.empty


@pytest.mark.parametrize("engine", ["fast", "bulk"])
def test_detection_that_gives_up_on_named_commands_is_a_problem(engine):
    """Bytes that name commands but frame in no dialect: no rows, one problem row."""
    w = PcapWriter()
    c = w.tcp(("10.0.0.1", 40000), ("10.0.0.2", 9000), T0)
    c.send("c2s", b"Login|" + b"y" * 1_100_000, T0 + 1000, segment_size=60_000)
    c.close(T0 + 2000)
    other = w.tcp(("10.0.0.1", 40001), ("10.0.0.2", 80), T0 + 10)
    other.send("c2s", b"GET / HTTP/1.1\r\n" + b"z" * 70_000, T0 + 20)
    other.close(T0 + 30)
    cap = read_capture(w.getvalue(), engine=engine)
    assert cap.messages.empty
    assert cap.problems["kind"].tolist() == ["dialect_not_found"]
    assert cap.problems["detail"].iloc[0].startswith("connection 0: ")


def test_addresses_ending_in_zero_bytes_survive_the_column_wise_path():
    """IPv4 addresses are packed column-wise for settled connections: 10.1.0.0 and
    10.0.0.0 keep their trailing zero bytes (NumPy's fixed bytes would strip them)."""
    w = PcapWriter()
    for k, client in enumerate(["10.1.0.0", "10.0.0.0", "192.168.1.0"]):
        c = w.tcp((client, 40000 + k), ("10.0.2.0", 9000), T0 + k * 10_000)
        c.send("c2s", frame("Heartbeat"), T0 + k * 10_000 + 1000)
        c.close(T0 + k * 10_000 + 2000)
    data = w.getvalue()
    cap = read_capture(data)
    assert cap.connections["client_ip"].tolist() == ["10.1.0.0", "10.0.0.0", "192.168.1.0"]
    assert set(cap.messages["server"]) == {"10.0.2.0:9000"}
    _assert_same(read_capture(data, engine="bulk"), cap)


_LONG = [("CheckCaramerOnlineStatus", "|".join(f"CAM{i:05d}" for i in range(12))),
         ("PrushCaramerOnlineStatus", "CAM00001|1"), ("Heartbeat", "")]


@st.composite
def long_flows(draw):
    """Connections longer than a window: many messages, lines cut anywhere into segments,
    some cut short at the end (a tail to report), closed by FIN, RST or not at all."""
    n = draw(st.integers(1, 3))
    convs = []
    for _ in range(n):
        items = draw(st.lists(st.tuples(st.sampled_from(["c2s", "s2c"]),
                                        st.sampled_from(_MESSAGES + _LONG)),
                              min_size=4, max_size=24))
        convs.append((items, draw(st.sampled_from(["fin", "rst", "open"])),
                      draw(st.booleans()), draw(st.integers(3, 40))))
    dialect = draw(st.sampled_from(["line", "line:gbk"]))
    return dialect, convs, draw(st.sampled_from(["auto", dialect]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(long_flows(), st.sampled_from([5, 17]))
def test_flows_streaming_across_windows_equal_exact(case, window):
    """Flows that outlive a window are decided on their first window's bytes and then
    decoded window after window (with nothing deferred, every open flow with bytes takes
    that path): lines cut across windows, tails at the close, GBK frames, undecided flows
    handed to the sink all give what the exact path gives."""
    from camprotool.capture.fast import engine

    dialect, convs, read_dialect = case
    saved = engine.WINDOW, engine.CARRY_PACKETS
    engine.WINDOW, engine.CARRY_PACKETS = window, 0
    w = PcapWriter()
    try:
        for k, (items, close, cut, size) in enumerate(convs):
            c = w.tcp((f"10.0.0.{k + 1}", 41000 + k), SERVER, T0 + k * 300)
            t = T0 + k * 300 + 1000
            for direction, msg in items:
                c.send(direction, frame(*msg, dialect), t, segment_size=size)
                t += 200
            if cut:
                c.send("s2c", frame(*_LONG[0], dialect)[:20], t)
            if close != "open":
                c.close(t + 100, close)
        data = w.getvalue()
        _assert_same(*_both(data, dialect=read_dialect))
    finally:
        engine.WINDOW, engine.CARRY_PACKETS = saved




@pytest.mark.parametrize("window", [4, 7])
def test_gbk_in_a_later_window_words_the_connection_as_gbk(monkeypatch, window):
    """A stream detected on ASCII heartbeats whose Chinese text comes windows later,
    in lines decoded while pass two goes on: its rows are read as GBK, and its
    connection, settled meanwhile, is worded ``line:gbk`` as the exact path words it."""
    from camprotool.capture.fast import engine

    monkeypatch.setattr(engine, "WINDOW", window)
    w = PcapWriter()
    for k in range(3):
        c = w.tcp((f"10.0.3.{k + 1}", 43000 + k), SERVER, T0 + k * 100)
        t = T0 + k * 100 + 1000
        for _ in range(6):
            c.send("c2s", frame("Heartbeat", "", "line:gbk"), t)
            t += 1000
        if k != 1:
            c.send("c2s", frame("Login", "张三|pw", "line:gbk"), t)
            c.send("s2c", frame("LoginError", "用户名或者密码错误!", "line:gbk"), t + 500)
        c.close(t + 1000)
    exact, fast = _both(w.getvalue())
    _assert_same(exact, fast)
    assert fast.connections["dialect"].astype(str).tolist() == ["line:gbk", "line",
                                                                "line:gbk"]
    assert fast.messages["user"].dropna().tolist() == ["张三", "张三"]

@st.composite
def slow_starts(draw):
    """Connections whose first line passes the first detection attempt (128 bytes)
    unfinished, in small segments: that attempt leaves them open, and detection
    reads on. Some pause after it (their next window brings them nothing while
    other connections start), some close, some stay open."""
    n = draw(st.integers(1, 4))
    convs = []
    for _ in range(n):
        first = draw(st.sampled_from(["c2s", "s2c"]))
        rest = draw(st.lists(st.tuples(st.sampled_from(["c2s", "s2c"]),
                                       st.sampled_from(_MESSAGES)), max_size=3))
        convs.append((first, rest, draw(st.sampled_from(["fin", "rst", "open"])),
                      draw(st.integers(4, 60)), draw(st.integers(0, 3000)),
                      draw(st.booleans())))
    return convs, draw(st.sampled_from([None, 5, 9, 40]))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(slow_starts())
def test_detection_past_the_first_attempt_equals_exact(case):
    """Flows the first attempt leaves undecided are detected again on all their packets
    (those with packets after it), or carried undecided, or found with nothing new
    in a window: the same verdicts and rows as the exact path."""
    from camprotool.capture.fast import engine

    convs, window = case
    saved = engine.WINDOW
    engine.WINDOW = window or engine.WINDOW
    w = PcapWriter()
    try:
        for k, (first, rest, close, size, start, pause) in enumerate(convs):
            c = w.tcp((f"10.0.1.{k + 1}", 42000 + k), SERVER, T0 + start)
            t = T0 + start + 1000
            c.send(first, frame(*_LONG[0], "line"), t, segment_size=size)
            t += 20_000 if pause else 200
            for direction, msg in rest:
                c.send(direction, frame(*msg, "line"), t, segment_size=size)
                t += 200
            if close != "open":
                c.close(t + 100, close)
        _assert_same(*_both(w.getvalue()))
    finally:
        engine.WINDOW = saved


def test_pages_of_carried_packets_are_let_go(tmp_path, monkeypatch):
    """Flows undecided at a window's end are carried: their packets are read again with
    the next window's, which maps their file pages back. Those pages go with that
    window's, so the resident part of the file follows the window, not the capture's
    length (200,000 short connections open for seconds: 110 MB of 122 MB stayed)."""
    from camprotool.capture.captureset import open_source
    from camprotool.capture.fast import engine
    from camprotool.capture.streams import MessageSink

    monkeypatch.setattr(engine, "WINDOW", 256)
    w = PcapWriter()
    open_conns = []
    for k in range(1500):  # each open while 60 others start: over a few windows
        c = w.tcp((f"10.0.{k // 250}.{k % 250 + 1}", 20000 + k), SERVER, T0 + k * 1000)
        c.send("c2s", b"SocketCommand.LoginCommand.Login|user", T0 + k * 1000 + 10)
        open_conns.append(c)
        if len(open_conns) > 60:
            open_conns.pop(0).close(T0 + k * 1000 + 20)
    path = tmp_path / "short.pcap"
    path.write_bytes(w.getvalue())
    carried: list[tuple[int, list[tuple[int, int]]]] = []
    released: list[tuple[int, int]] = []  # the file's ranges let go, in order
    deliver, drop = engine.FastEngine._deliver, engine.drop_file_pages

    def recording(self, *args):
        offsets = [] if self._carry is None else self._carry.pay_off[self._carry.pay_off >= 0]
        before = len(released)
        deliver(self, *args)
        if len(offsets):
            carried.append((int(min(offsets)), released[before:]))

    def dropping(mm, offset, length):
        released.append((offset, offset + length))
        drop(mm, offset, length)

    monkeypatch.setattr(engine.FastEngine, "_deliver", recording)
    monkeypatch.setattr(engine, "drop_file_pages", dropping)
    with open_source(str(path)) as capture:
        fast = engine.FastEngine(capture, MessageSink(None), keep_pass_one=False)
        fast.run()
        assert len(carried) > 10 and len(fast.settled) > 10
        assert not hasattr(fast, "keys")  # the flow table goes with the run
        for lowest, released in carried:
            assert any(lo <= lowest < hi for lo, hi in released), (lowest, released)


@st.composite
def first_frames(draw):
    """First frames of fast flows (-1: no connection) and of slow ones, revealed in
    stages (a streaming reader numbers connections as they appear)."""
    from camprotool.capture.fast.engine import SLOW_BASE

    n = draw(st.integers(0, 30))
    fast = [draw(st.integers(-1, 50)) for _ in range(n)]
    slow = {SLOW_BASE + k: draw(st.integers(1, 50)) for k in range(draw(st.integers(0, 5)))}
    stages = sorted(draw(st.lists(st.integers(0, n + len(slow)), max_size=3)))
    return fast, slow, stages


@given(first_frames())
def test_final_ids_number_by_first_frame_then_id(case):
    """An array and a small dict give the ids a dict of every connection gave: by first
    frame, ties by provisional id; numbered in stages, each stage after the last."""
    import numpy as np

    from camprotool.capture.fast.engine import FinalIds, final_ids

    fast, slow, stages = case
    everything = {f: frame for f, frame in enumerate(fast) if frame >= 0} | slow
    ordered = sorted(everything, key=lambda c: (everything[c], c))
    mapping = final_ids(np.array(fast, np.int64), slow)
    assert {c: mapping[c] for c in everything} == {c: i for i, c in enumerate(ordered)}
    assert len(mapping) == len(everything)
    # in stages: the first k provisional ids (fast, then slow) are known at stage k
    keys = list(range(len(fast))) + list(slow)
    ids, expected = FinalIds(np.zeros(0, np.int64), {}), {}
    for k in [*stages, len(keys)]:
        known = keys[:k]
        shown = np.array([fast[f] if f in known else -1 for f in range(len(fast))], np.int64)
        ids.number(shown, {c: slow[c] for c in known if c in slow})
        new = sorted((c for c in known if c in everything and c not in expected),
                     key=lambda c: (everything[c], c))
        expected |= {c: len(expected) + i for i, c in enumerate(new)}
    assert {c: ids[c] for c in expected} == expected
    with pytest.raises(KeyError):
        ids[len(fast) + 1]


@given(st.sets(st.integers(0, 1 << 40)), st.sets(st.integers(0, 1 << 40)))
def test_union_of_flow_ids_is_numpy_s(a, b):
    """The engine's linear-time union of sorted id arrays equals ``np.union1d``."""
    import numpy as np

    from camprotool.capture.fast.engine import _union

    x, y = np.array(sorted(a), np.int64), np.array(sorted(b), np.int64)
    got = _union(x, y)
    assert got.dtype == np.int64
    assert got.tolist() == np.union1d(x, y).tolist()


_FREED_MEMORY_PROBE = """
import hashlib, sys
from camprotool import read_capture
from camprotool.capture.fast import engine
engine.WINDOW = int(sys.argv[2])
m = read_capture(sys.argv[1]).messages
print(len(m), hashlib.sha256(m[["conn", "command", "params"]].to_csv().encode()).hexdigest())
"""


def test_the_engine_touches_no_freed_memory(tmp_path):
    """The compiled loops read arrays by their addresses: one freed while a loop still
    used its address corrupted glibc's heap without a trace (an array made inside a
    kernel is freed after its last use by name). In a child where every allocation of
    a page or more is a mapping of its own, unmapped when freed, and freed bytes are
    poisoned (``MALLOC_PERTURB_``), such a use is a crash or a wrong table."""
    import hashlib
    import os
    import subprocess
    import sys

    w = PcapWriter()
    for k in range(300):  # interleaved conversations, lines split across segments
        _conversation(w, k, T0 + k * 700, "none", [(d, _MESSAGES[j % 6]) for j, d in enumerate(
            ["c2s", "s2c", "c2s", "c2s", "s2c", "c2s", "s2c"])], "line", False, False)
    path = tmp_path / "many.pcap"
    path.write_bytes(w.getvalue())
    m = read_capture(str(path)).messages
    digest = hashlib.sha256(m[["conn", "command", "params"]].to_csv().encode()).hexdigest()
    want = f"{len(m)} {digest}"
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="4096", MALLOC_PERTURB_="165")
    for window in ("1024", "32768"):
        out = subprocess.run([sys.executable, "-X", "faulthandler", "-c", _FREED_MEMORY_PROBE,
                              str(path), window], env=env, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.split("\n")[-2] == want


def _many_windows() -> bytes:
    w = PcapWriter()
    for k in range(4):
        c = w.tcp((f"10.0.4.{k + 1}", 44000 + k), SERVER, T0 + k * 100)
        t = T0 + k * 100 + 1000
        for _ in range(8):
            c.send("c2s", frame("Heartbeat"), t)
            t += 1000
        c.close(t)
    return w.getvalue()


def _pass_two_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "camprotool-pass-two"]


@pytest.mark.parametrize("where", ["worker", "caller"])
def test_a_failure_on_either_thread_of_pass_two_ends_both(monkeypatch, where):
    """Pass two runs on a worker (once lines are joined) while the caller decodes: an
    error on either side is raised by the read, and the worker is gone when it is."""
    from camprotool.capture.fast import engine

    monkeypatch.setattr(engine, "WINDOW", 6)
    calls = []

    def broken(original):
        def call(*args, **kwargs):
            calls.append(threading.current_thread().name)
            if calls.count("camprotool-pass-two" if where == "worker" else "MainThread") == 2:
                raise RuntimeError(f"broken on the {where}")
            return original(*args, **kwargs)
        return call

    if where == "worker":
        monkeypatch.setattr(engine.FastEngine, "_deliver", broken(engine.FastEngine._deliver))
    else:
        monkeypatch.setattr(engine, "_decoded_lines", broken(engine._decoded_lines))
    assert threading.current_thread().name == "MainThread"
    with pytest.raises(RuntimeError, match=f"broken on the {where}"):
        read_capture(_many_windows())
    assert not _pass_two_threads()
    if where == "caller":
        assert set(calls) == {"MainThread"}


def _file_maps(path) -> list[tuple[int, int]]:
    """The address ranges this process maps ``path`` at (``/proc/self/maps``)."""
    from pathlib import Path

    found = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.endswith(str(path)):
            lo, hi = line.split()[0].split("-")
            found.append((int(lo, 16), int(hi, 16)))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's madvise")
@pytest.mark.parametrize("writer", [PcapWriter, PcapngWriter])
def test_pages_dropped_are_always_the_capture_files(tmp_path, monkeypatch, writer):
    """Every range the engine lets go of lies in the capture file's map, whatever buffer
    the windows' packets were read from (a pcapng's are copies): dropping anything else
    would zero live memory. Both formats, with windows small enough to drop many."""
    from camprotool.capture import allocator
    from camprotool.capture.fast import engine

    monkeypatch.setattr(engine, "WINDOW", 256)
    w = writer()
    for k in range(300):
        c = w.tcp((f"10.0.{k // 250}.{k % 250 + 1}", 20000 + k), SERVER, T0 + k * 1000)
        c.send("c2s", b"SocketCommand.LoginCommand.Login|user", T0 + k * 1000 + 10)
        c.close(T0 + k * 1000 + 20)
    path = tmp_path / "many.cap"
    path.write_bytes(w.getvalue())
    dropped, outside = [], []
    real = allocator._madvise

    def checking(address, length, advice):
        maps = _file_maps(path)
        dropped.append(length)
        if not any(lo <= address and address + length <= hi for lo, hi in maps):
            outside.append((address, length, maps))
            return 0  # not passed on: it would zero memory that is not the file's
        return real(address, length, advice)

    monkeypatch.setattr(allocator, "_madvise", checking if real is not None else None)
    messages = read_capture(str(path)).messages
    assert len(messages) == 300
    assert not outside
    assert real is None or dropped

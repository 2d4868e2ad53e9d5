"""The column-wise rule checker gives exactly the session machines' rows.

``Capture.violations`` and ``.notes`` come from ``RuleCheck(engine="fast")``:
NumPy over whole columns, with the machines of ``protocol.rules`` run only over
the connections it does not model. The machines themselves stay the
definition (``engine="reference"``), so every test here builds a capture and
asserts that both engines give the same frames (rows, order, values, dtypes):
hypothesis-generated conversations (odd and hostile ones included), the
bundled captures and the scripted conversations of the capture tests.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camprotool import encode, read_capture
from camprotool.analysis import fastrules
from camprotool.analysis.capture import Capture
from camprotool.analysis.violations import RuleCheck
from camprotool.capture.writer import PcapngWriter, PcapWriter

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_000_000_000
MS = 1_000_000
S = 1_000 * MS
SERVER = "10.0.0.2"
BIG = (1 << 63) - 1  # the largest count a column holds


def checks(cap: Capture, engine: str) -> RuleCheck:
    """A RuleCheck of ``cap`` told what ``Capture`` tells it."""
    timeout = cap.heartbeat_timeout
    return RuleCheck(cap.decoded.messages, cap.messages, cap.connections, engine=engine,
                     reveal_passwords=cap.reveal_passwords,
                     first_gap_s2c={r.conn: r.first_gap_s2c for r in cap.decoded.connections
                                    if r.first_gap_s2c is not None},
                     heartbeat_timeout_ns=None if timeout is None else int(timeout * 1e9))


def assert_same_as_machines(cap: Capture) -> RuleCheck:
    """``cap.violations``/``.notes`` (the fast engine) equal the machines'; returns those."""
    ref = checks(cap, "reference")
    pd.testing.assert_frame_equal(cap.violations, ref.violations())
    pd.testing.assert_frame_equal(cap.notes, ref.notes())
    return ref


def left_to_machines(cap: Capture) -> set[int]:
    """The connections the fast engine hands to the machines."""
    c = checks(cap, "fast")
    m = cap.messages
    conn = m["conn"].to_numpy(np.int64)
    info = c._conn_info(int(max(conn.max(initial=-1), cap.connections["conn"].max()) + 1))
    pos = np.flatnonzero(info.kind[conn] >= 0)
    order = np.lexsort((m["stream_offset"].to_numpy()[pos], m["frame"].to_numpy()[pos],
                        conn[pos]))
    j = fastrules.judge(pos[order], cap.decoded.messages, info,
                        c2s=(m["direction"] == "c2s").to_numpy(bool),
                        ts=m["ts"].array.asi8, conn=conn,
                        heartbeat_timeout_ns=90 * S)
    return set(j.machine_conns.tolist())


# ------------------------------------------------------------------ generated conversations

_COUNT = st.sampled_from([0, 1, 1, 2, 2, 3, 3, 4, BIG])
_CAM = st.sampled_from(["A", "B", "C", ""])
_ONLINE = st.sampled_from(["true", "false", "null"])
UPLOADS = st.one_of(
    st.tuples(st.just("c2s"), st.just("UploadCaramer"),
              st.builds(lambda c, n, t: f"{c}|pw|{n}|{t}", _CAM, _COUNT, _COUNT)),
    st.tuples(st.just("s2c"), st.just("UploadSucess"),
              st.builds(lambda c, o, n, t: f"{c}|{o}|{n}|{t}", _CAM, _ONLINE, _COUNT, _COUNT)),
    st.tuples(st.just("s2c"), st.just("UploadFail"),
              st.builds(lambda c, n, t: f"{c}|ID和密码不匹配|{n}|{t}", _CAM, _COUNT, _COUNT)),
)
DOWNLOADS = st.one_of(
    st.tuples(st.just("c2s"), st.just("DownLoadCaramer"), _COUNT.map(str)),
    st.tuples(st.just("s2c"), st.just("DownloadSucess"),
              st.builds(lambda c, o, n, t: f"{c}|pw|{o}|{n}|{t}", _CAM, _ONLINE, _COUNT, _COUNT)),
    st.tuples(st.just("s2c"), st.just("DownloadFail"), st.just("该账号下没有绑定任何摄像头")),
)
_IDS = st.sampled_from([0, 1, 3, 20, 21, 25]).map(lambda k: ";".join(f"C{i}" for i in range(k)))
MAIN = st.one_of(
    st.sampled_from([
        ("c2s", "Login", "demo|pw"), ("c2s", "Login", "demo|pa|ss"), ("c2s", "Login", "demo"),
        ("s2c", "LoginOk", "3|2024-01-01 10:00:00|10.0.0.1"), ("s2c", "LoginOk", "x|t|ip"),
        ("s2c", "LoginError", "用户名或者密码错误!"), ("c2s", "Heartbeat", ""),
        ("c2s", "Heartbeat", ""), ("c2s", "CreatDataSocket", "demo|pw"),
        ("s2c", "ReturnDataSocketPort", "9001"), ("s2c", "ReturnDataSocketPort", "9002"),
        ("s2c", "ReturnDataSocketPort", ""), ("s2c", "ReturnDataSocketPort", "70000"),
        ("s2c", "ReturnCaramerOnlineStatus", "A;true|B;null"),
        ("s2c", "ReturnCaramerOnlineStatus", "A;maybe"),
        ("s2c", "PrushCaramerOnlineStatus", "A:true"),
        ("s2c", "PrushCaramerAlarmInfo", "A:motion"),
    ]),
    st.tuples(st.just("c2s"), st.just("CheckCaramerOnlineStatus"), _IDS),
)
ODD = st.sampled_from([
    ("c2s", "SocketCommand.Vendor.Hello", "x|y"), ("s2c", "Mystery", ""),
    ("s2c", "Login", "demo|pw"), ("c2s", "LoginOk", "1|t|ip"),
    ("c2s", "UploadSucess", "A|true|1|1"),
    ("s2c", "DownLoadCaramer", "0"), ("c2s", "UploadCaramer", "A|pw|x|2"),
    ("s2c", "DownloadSucess", "A|pw|maybe|1|1"), ("c2s", "DownLoadCaramer", ""),
    ("s2c", "CheckCaramerOnlineStatus", ";".join(["X"] * 21)), ("c2s", "Heartbeat", "x"),
])
ROLES = {"main": MAIN, "upload": UPLOADS, "download": DOWNLOADS,
         "mixed": st.one_of(MAIN, UPLOADS, DOWNLOADS, ODD)}
GAPS = st.sampled_from([0, 1 * MS, 1 * MS, 1 * S, 40 * S, 100 * S, -1 * MS])


@st.composite
def conversations(draw: st.DrawFn) -> tuple[bytes, list[tuple]]:
    """A capture of a few main and data connections; returns it and its connections'
    (role, client port, whether bytes were lost)."""
    conns = []
    for k in range(draw(st.integers(1, 4))):
        role = draw(st.sampled_from(list(ROLES)))
        conns.append({
            "role": role,
            "client": (draw(st.sampled_from(["10.0.0.1", "10.0.0.1", "10.0.0.3"])), 50000 + k),
            "port": 9000 if role == "main" else draw(st.sampled_from([9001, 9002, 9003])),
            "handshake": draw(st.sampled_from([True, True, False])),
            "close": draw(st.sampled_from(["fin", "rst", None])),
            "lost": False,
        })
    dialect = draw(st.sampled_from(["line", "line", "line:gbk", "lp32le"]))
    w = PcapngWriter()
    t = T0
    opened = {}
    for _ in range(draw(st.integers(0, 50))):
        k = draw(st.integers(0, len(conns) - 1))
        spec = conns[k]
        t += draw(GAPS)
        if k not in opened:
            opened[k] = w.tcp(spec["client"], (SERVER, spec["port"]), t,
                              handshake=spec["handshake"])
            t += 1 * MS
        if draw(st.integers(0, 30)) == 0:  # a lost segment: cut and unreadable frames
            opened[k].skip(draw(st.sampled_from(["c2s", "s2c"])), draw(st.integers(1, 30)))
            spec["lost"] = True
            continue
        direction, command, params = draw(ROLES[spec["role"]])
        wire = encode(command, params, dialect)
        if draw(st.integers(0, 8)) == 0:  # two messages in one segment: one timestamp
            _, command, params = draw(ROLES[spec["role"]])
            wire += encode(command, params, dialect)
        opened[k].send(direction, wire, t)
    for k, conn in opened.items():
        if conns[k]["close"]:
            t += 1 * MS
            conn.close(t, how=conns[k]["close"])
    return w.getvalue(), conns


def _plain_data_conns(cap: Capture) -> set[int]:
    """Data connections every message of which is a well-formed transfer command of one
    kind in its own direction: the ones the fast engine must judge itself."""
    kinds = {("c2s", "UploadCaramer"): 0, ("s2c", "UploadSucess"): 0, ("s2c", "UploadFail"): 0,
             ("c2s", "DownLoadCaramer"): 1, ("s2c", "DownloadSucess"): 1,
             ("s2c", "DownloadFail"): 1}
    m = cap.messages
    out = set()
    data = cap.connections[cap.connections["channel"] == "data"]["conn"].tolist()
    for conn, rows in m[m["conn"].isin(data)].groupby("conn"):
        seen = {kinds.get((str(d), str(c)), -1) for d, c in zip(rows["direction"],
                                                                rows["command"], strict=True)}
        if len(seen) == 1 and -1 not in seen and rows["error"].isna().all():
            out.add(conn)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations(), st.sampled_from([90.0, 90.0, 30.0, 0.5, None]), st.booleans())
def test_generated_conversations(conversation, timeout, reveal):
    data, _ = conversation
    cap = read_capture(data, heartbeat_timeout=timeout, reveal_passwords=reveal)
    assert_same_as_machines(cap)
    assert not left_to_machines(cap) & _plain_data_conns(cap)


# ------------------------------------------------------------------ scripted, every branch


def _say(conn, direction: str, command: str, params: str, at: int) -> None:
    conn.send(direction, encode(command, params), T0 + at)


def _transfers_capture() -> bytes:
    """Plain data connections breaking every sequence rule, and main connections
    breaking every main rule: all judged column-wise, none by the machines."""
    w = PcapngWriter()
    m = w.tcp(("10.0.0.1", 50000), (SERVER, 9000), T0)
    _say(m, "c2s", "CheckCaramerOnlineStatus", "A", 1 * MS)  # before_login
    _say(m, "s2c", "LoginOk", "1|t|ip", 2 * MS)  # answers no Login
    _say(m, "c2s", "Login", "demo|pw", 3 * MS)
    _say(m, "s2c", "LoginError", "no", 4 * MS)
    _say(m, "c2s", "Login", "demo|pw", 5 * MS)
    _say(m, "c2s", "CreatDataSocket", "demo|pw", 6 * MS)  # before_login (login_sent)
    _say(m, "s2c", "LoginOk", "1|t|ip", 7 * MS)
    _say(m, "s2c", "ReturnDataSocketPort", "9001", 8 * MS)
    _say(m, "s2c", "ReturnDataSocketPort", "9002", 9 * MS)  # answers no CreatDataSocket
    _say(m, "c2s", "CheckCaramerOnlineStatus", ";".join(["X"] * 21), 10 * MS)
    _say(m, "s2c", "ReturnCaramerOnlineStatus", "X;true", 11 * MS)
    _say(m, "s2c", "ReturnCaramerOnlineStatus", "X;true", 12 * MS)  # answers nothing
    _say(m, "c2s", "UploadCaramer", "A|pw|1|1", 13 * MS)  # wrong channel: a note
    _say(m, "s2c", "Heartbeat", "", 14 * MS)  # wrong direction: a note
    _say(m, "c2s", "Heartbeat", "", 200 * S)  # heartbeat_gap
    up = w.tcp(("10.0.0.1", 50001), (SERVER, 9001), T0 + 20 * MS)
    _say(up, "s2c", "UploadSucess", "A|true|0|3", 21 * MS)  # answers no request
    _say(up, "c2s", "UploadCaramer", "A|pw|2|3", 22 * MS)  # first must be 1
    _say(up, "c2s", "UploadCaramer", "B|pw|3|4", 23 * MS)  # total changed
    _say(up, "s2c", "UploadFail", "X|no|1|3", 24 * MS)  # other camera, synced note
    _say(up, "s2c", "UploadSucess", "B|true|3|3", 25 * MS)  # other total
    _say(up, "c2s", "UploadCaramer", "C|pw|9|4", 26 * MS)  # skips, exceeds
    up.close(T0 + 27 * MS, how="rst")  # incomplete: one unanswered
    down = w.tcp(("10.0.0.1", 50002), (SERVER, 9003), T0 + 30 * MS)  # unannounced
    _say(down, "c2s", "DownLoadCaramer", "1", 31 * MS)  # must ask from 0
    _say(down, "c2s", "DownLoadCaramer", "1", 32 * MS)  # a retry
    _say(down, "s2c", "DownloadSucess", "A|pw|true|3|2", 33 * MS)  # expected 2, exceeds
    _say(down, "s2c", "DownloadFail", "none", 34 * MS)  # answers nothing; keeps downloaded
    _say(down, "c2s", "DownLoadCaramer", "3", 35 * MS)  # asks past the end
    _say(down, "s2c", "DownloadSucess", "B|pw|null|4|5", 36 * MS)  # total changed
    _say(down, "c2s", "DownLoadCaramer", "4", 37 * MS)
    down.close(T0 + 38 * MS)  # incomplete: 4 of 5, one unanswered
    return w.getvalue()


def test_every_rule_of_plain_connections_is_judged_column_wise():
    cap = read_capture(_transfers_capture())
    ref = assert_same_as_machines(cap)
    assert left_to_machines(cap) == set()
    assert set(cap.violations["rule"].astype(str)) == {
        "before_login", "check_too_many_ids", "upload_sequence", "download_sequence",
        "unannounced_data_port", "incomplete_sync", "heartbeat_gap"}
    assert len(cap.notes) >= 8
    assert ref.engine == "reference"


def test_odd_connections_go_to_the_machines():
    w = PcapngWriter()
    d = w.tcp(("10.0.0.1", 50001), (SERVER, 9001), T0)
    _say(d, "c2s", "UploadCaramer", "A|pw|1|2", 1 * MS)
    _say(d, "c2s", "DownLoadCaramer", "0", 2 * MS)  # the other kind: not plain
    _say(d, "s2c", "UploadSucess", "A|true|1|2", 3 * MS)
    d.close(T0 + 4 * MS)
    cap = read_capture(w.getvalue())
    assert_same_as_machines(cap)
    assert left_to_machines(cap) == {0}
    assert "not expected" in cap.notes.at[0, "detail"]


def test_captures_with_nothing_to_judge():
    w = PcapngWriter()
    assert_same_as_machines(read_capture(w.getvalue()))
    d = w.tcp(("10.0.0.1", 50001), (SERVER, 9001), T0)  # a data port, no protocol
    d.send("c2s", b"hello\r\n", T0 + 1 * MS)
    d.close(T0 + 2 * MS)
    cap = read_capture(w.getvalue())
    assert_same_as_machines(cap)
    assert cap.violations.empty


def test_engine_is_checked():
    cap = read_capture(_transfers_capture())
    with pytest.raises(ValueError, match="engine"):
        RuleCheck(cap.decoded.messages, cap.messages, cap.connections, engine="slow")


# ------------------------------------------------------------------ bundled and scripted captures


@pytest.mark.parametrize("path", sorted(p.name for p in (ROOT / "captures").glob("*.pcap*")))
@pytest.mark.parametrize("timeout", [90.0, 0.001, None])
@pytest.mark.parametrize("reveal", [False, True])
def test_bundled_captures(path, timeout, reveal):
    cap = read_capture(ROOT / "captures" / path, heartbeat_timeout=timeout,
                       reveal_passwords=reveal)
    assert_same_as_machines(cap)


def _conversations_module():
    """tests/capture/conversations.py, the capture tests' scripted conversations."""
    spec = importlib.util.spec_from_file_location(
        "capture_conversations", ROOT / "tests" / "capture" / "conversations.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("writer", [PcapngWriter, PcapWriter])
def test_scripted_conversations(writer):
    conv = _conversations_module()
    w = writer()
    t = conv.T0
    for k, dialect in enumerate(conv.DIALECTS):
        client = (f"10.0.1.{k + 1}", 40000)
        conv.main_session(w, t, client=client, dialect=dialect, data_port=9001 + k % 2)
        conv.upload(w, t + 1_000, client=(client[0], 40001), server=(SERVER, 9001 + k % 2),
                    dialect=dialect, cameras=k + 1, close=k % 3 != 0)
        t += 10_000
    conv.main_session(w, t, client=("10.0.2.1", 40000), data_port=None)  # an empty answer
    conv.upload(w, t + 1_000, client=("10.0.2.1", 40001), server=(SERVER, 9001), cameras=2)
    cap = read_capture(w.getvalue())
    assert len(cap.violations)  # the unannounced port and the cut transfers at least
    assert_same_as_machines(cap)

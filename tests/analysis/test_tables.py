"""``Capture.sessions``, ``.sync``, ``.transfers``, ``.status`` and ``.alarms``: exact tables.

Every conversation is scripted packet by packet with the capture writer, so
every expected row (times included) is written out by hand below.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camprotool import encode, read_capture
from camprotool.analysis import schema, tables
from camprotool.capture.writer import PcapngWriter

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
S = 1_000 * MS
LAG = 100_000  # the writer's FIN exchange ends half a round trip (100 us) after close()
SERVER = "10.0.0.2"
WRONG = "用户名或者密码错误!"
MISMATCH = "ID和密码不匹配"
FULL = "该摄像头绑定账号已满"
NONE_BOUND = "该账号下没有绑定任何摄像头"


def say(conn, direction: str, command: str, params: str, at: int) -> None:
    conn.send(direction, encode(command, params), T0 + at)


def expect(spec: dict[str, str], rows: list[tuple], *, index=None, **categories) -> pd.DataFrame:
    """A frame with ``spec``'s columns from row tuples; times are ns after T0."""
    cols = {}
    for j, (name, dtype) in enumerate(spec.items()):
        values = [r[j] for r in rows]
        if dtype == schema.UTC_NS:
            cols[name] = pd.to_datetime([None if v is None else T0 + v for v in values],
                                        utc=True)
        elif dtype.startswith("timedelta"):
            cols[name] = pd.to_timedelta(values, unit="ns")
        elif name in categories:
            cols[name] = pd.Categorical(values, categories=categories[name])
        else:
            cols[name] = pd.Series(values, dtype=object).to_numpy()
    return schema.conform(pd.DataFrame(cols, index=index), spec)


def assert_table(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(actual, expected)


# ------------------------------------------------------------------ sessions


def sessions_capture() -> bytes:
    """Every login outcome: refused then accepted (with a data connection), unanswered,
    and a main connection captured after its login."""
    w = PcapngWriter()
    a = w.tcp(("10.0.0.1", 50000), (SERVER, 9000), T0)  # conn 0
    say(a, "c2s", "Login", "demo|wrong", 1 * MS)  # 0
    say(a, "s2c", "LoginError", WRONG, 2 * MS)  # 1
    say(a, "c2s", "Login", "demo|demo", 1 * S)  # 2
    say(a, "s2c", "LoginOk", "3|2024-01-01 10:00:00|10.0.0.1", 1 * S + 1 * MS)  # 3
    say(a, "c2s", "CreatDataSocket", "demo|demo", 1 * S + 2 * MS)  # 4
    say(a, "s2c", "ReturnDataSocketPort", "9001", 1 * S + 3 * MS)  # 5
    d = w.tcp(("10.0.0.1", 50001), (SERVER, 9001), T0 + 1 * S + 4 * MS)  # conn 1
    say(d, "c2s", "UploadCaramer", "CAM1|1234|1|1", 1 * S + 5 * MS)  # 6
    say(d, "s2c", "UploadSucess", "CAM1|true|1|1", 1 * S + 6 * MS)  # 7
    d.close(T0 + 1 * S + 7 * MS)
    b = w.tcp(("10.0.0.3", 40000), (SERVER, 9000), T0 + 2 * S)  # conn 2
    say(b, "c2s", "Login", "bob|bob", 2 * S + 1 * MS)  # 8
    b.close(T0 + 5 * S)
    c = w.tcp(("10.0.0.4", 40000), (SERVER, 9000), T0 + 3 * S, handshake=False)  # conn 3
    say(c, "c2s", "Heartbeat", "", 3 * S)  # 9
    say(c, "c2s", "CreatDataSocket", "carol|secret", 4 * S)  # 10
    say(c, "s2c", "ReturnDataSocketPort", "9002", 4 * S + 1 * MS)  # 11
    say(a, "c2s", "Heartbeat", "", 31 * S)  # 12
    say(a, "c2s", "Heartbeat", "", 71 * S)  # 13
    a.close(T0 + 80 * S)
    return w.getvalue()


def test_sessions_every_outcome():
    cap = read_capture(sessions_capture())
    assert cap.messages["command"].astype(str).tolist()[8:10] == ["Login", "Heartbeat"]
    rows = [
        # session conn client server user outcome reason camera_count last_login_time
        # last_login_ip data_conns start end duration heartbeats heartbeat_max_gap message answer
        (0, 0, "10.0.0.1:50000", "10.0.0.2:9000", "demo", "error", WRONG, None, None, None,
         [], 1 * MS, 1 * S, 1 * S - 1 * MS, 0, 1 * S - 1 * MS, 0, 1),
        (1, 0, "10.0.0.1:50000", "10.0.0.2:9000", "demo", "ok", None, 3,
         "2024-01-01 10:00:00", "10.0.0.1", [1], 1 * S, 80 * S + LAG, 79 * S + LAG, 2,
         40 * S, 2, 3),
        (2, 2, "10.0.0.3:40000", "10.0.0.2:9000", "bob", "no_answer", None, None, None, None,
         [], 2 * S + 1 * MS, 5 * S + LAG, 3 * S - 1 * MS + LAG, 0, 3 * S - 1 * MS + LAG, 8,
         None),
        # captured after its login: starts with the connection; the user comes from
        # CreatDataSocket; still open when the capture ends (with conn 0's last packet)
        (3, 3, "10.0.0.4:40000", "10.0.0.2:9000", "carol", "before_capture", None, None,
         None, None, [], 3 * S, 80 * S + 2 * LAG, 77 * S + 2 * LAG, 1, 76 * S + 2 * LAG, None,
         None),
    ]
    assert_table(cap.sessions, expect(schema.SESSIONS, rows, outcome=tables.OUTCOMES))


def test_sessions_answer_for_a_login_before_the_capture():
    """A LoginOk without its Login (the capture began in between) still fills the counts."""
    w = PcapngWriter()
    c = w.tcp(("10.0.0.1", 50000), (SERVER, 9000), T0, handshake=False)
    say(c, "s2c", "LoginOk", "7|2024-01-01 10:00:00|10.0.0.9", 0)
    say(c, "c2s", "Heartbeat", "", 10 * S)
    cap = read_capture(w.getvalue())
    row = cap.sessions.iloc[0]
    assert (row["outcome"], row["camera_count"], row["last_login_ip"]) == (
        "before_capture", 7, "10.0.0.9")
    assert pd.isna(row["message"]) and row["answer"] == 0
    assert row["heartbeat_max_gap"] == pd.Timedelta(10 * S)  # from the connection's start
    assert cap.violations.empty


# ------------------------------------------------------------------ sync, transfers, status, alarms


def sync_capture() -> bytes:
    """One login; uploads (ok, both failure reasons), a download of 2, a refused download,
    an upload cut short, an all-refused upload, an empty data connection and an unlinked
    one; status from a query, pushes and transfer answers; alarms around them."""
    w = PcapngWriter()
    m = w.tcp(("10.0.0.1", 50000), (SERVER, 9000), T0)  # conn 0
    say(m, "c2s", "Login", "demo|demo", 1 * MS)  # 0
    say(m, "s2c", "LoginOk", "2|2024-01-01 10:00:00|10.0.0.1", 2 * MS)  # 1
    say(m, "c2s", "CheckCaramerOnlineStatus", "CAM1;CAMA", 3 * MS)  # 2
    say(m, "s2c", "ReturnCaramerOnlineStatus", "CAM1;false|CAMA;null", 4 * MS)  # 3
    say(m, "s2c", "PrushCaramerAlarmInfo", "CAM1:motion", 10 * MS)  # 4
    say(m, "c2s", "CreatDataSocket", "demo|demo", 20 * MS)  # 5
    say(m, "s2c", "ReturnDataSocketPort", "9001", 21 * MS)  # 6
    d1 = w.tcp(("10.0.0.1", 50001), (SERVER, 9001), T0 + 22 * MS)  # conn 1
    say(d1, "c2s", "UploadCaramer", "CAM1|1234|1|3", 23 * MS)  # 7
    say(d1, "s2c", "UploadSucess", "CAM1|true|1|3", 24 * MS)  # 8
    say(d1, "c2s", "UploadCaramer", "CAM2|9999|2|3", 25 * MS)  # 9
    say(d1, "s2c", "UploadFail", f"CAM2|{MISMATCH}|2|3", 26 * MS)  # 10
    say(d1, "c2s", "UploadCaramer", "CAM3|1234|3|3", 27 * MS)  # 11
    say(d1, "s2c", "UploadFail", f"CAM3|{FULL}|3|3", 28 * MS)  # 12
    d1.close(T0 + 29 * MS)
    say(m, "c2s", "CreatDataSocket", "demo|demo", 30 * MS)  # 13
    say(m, "s2c", "ReturnDataSocketPort", "9002", 31 * MS)  # 14
    d2 = w.tcp(("10.0.0.1", 50002), (SERVER, 9002), T0 + 32 * MS)  # conn 2
    say(d2, "c2s", "DownLoadCaramer", "0", 33 * MS)  # 15
    say(d2, "s2c", "DownloadSucess", "CAMA|1234|true|1|2", 34 * MS)  # 16
    say(d2, "c2s", "DownLoadCaramer", "1", 35 * MS)  # 17
    say(d2, "s2c", "DownloadSucess", "CAMB|1234|false|2|2", 36 * MS)  # 18
    d2.close(T0 + 37 * MS)
    say(m, "c2s", "CreatDataSocket", "demo|demo", 40 * MS)  # 19
    say(m, "s2c", "ReturnDataSocketPort", "9003", 41 * MS)  # 20
    d3 = w.tcp(("10.0.0.1", 50003), (SERVER, 9003), T0 + 42 * MS)  # conn 3
    say(d3, "c2s", "DownLoadCaramer", "0", 43 * MS)  # 21
    say(d3, "s2c", "DownloadFail", NONE_BOUND, 44 * MS)  # 22
    d3.close(T0 + 45 * MS)
    say(m, "c2s", "CreatDataSocket", "demo|demo", 50 * MS)  # 23
    say(m, "s2c", "ReturnDataSocketPort", "9004", 51 * MS)  # 24
    d4 = w.tcp(("10.0.0.1", 50004), (SERVER, 9004), T0 + 52 * MS)  # conn 4
    say(d4, "c2s", "UploadCaramer", "CAM4|1234|1|3", 53 * MS)  # 25
    say(d4, "s2c", "UploadSucess", "CAM4|false|1|3", 54 * MS)  # 26
    say(d4, "c2s", "UploadCaramer", "CAM5|1234|2|3", 55 * MS)  # 27
    d4.close(T0 + 56 * MS, how="rst")
    say(m, "c2s", "CreatDataSocket", "demo|demo", 60 * MS)  # 28
    say(m, "s2c", "ReturnDataSocketPort", "9005", 61 * MS)  # 29
    d5 = w.tcp(("10.0.0.1", 50005), (SERVER, 9005), T0 + 62 * MS)  # conn 5
    say(d5, "c2s", "UploadCaramer", "CAM6|0000|1|1", 63 * MS)  # 30
    say(d5, "s2c", "UploadFail", f"CAM6|{MISMATCH}|1|1", 64 * MS)  # 31
    d5.close(T0 + 65 * MS)
    say(m, "c2s", "CreatDataSocket", "demo|demo", 70 * MS)  # 32
    say(m, "s2c", "ReturnDataSocketPort", "9006", 71 * MS)  # 33
    d6 = w.tcp(("10.0.0.1", 50006), (SERVER, 9006), T0 + 72 * MS)  # conn 6
    say(d6, "c2s", "SocketCommand.Vendor.Hello", "x", 73 * MS)  # 34
    d6.close(T0 + 74 * MS)
    d7 = w.tcp(("10.0.0.9", 50000), (SERVER, 9009), T0 + 80 * MS)  # conn 7: no main conn
    say(d7, "c2s", "UploadCaramer", "CAM7|1234|1|1", 81 * MS)  # 35
    say(d7, "s2c", "UploadSucess", "CAM7|true|1|1", 82 * MS)  # 36
    d7.close(T0 + 83 * MS)
    say(m, "s2c", "PrushCaramerOnlineStatus", "CAM1:true", 1 * S)  # 37
    say(m, "s2c", "PrushCaramerOnlineStatus", "CAM1:false", 2 * S)  # 38
    say(m, "s2c", "PrushCaramerAlarmInfo", "CAM1:video_loss", 3 * S)  # 39
    say(m, "s2c", "PrushCaramerAlarmInfo", "CAM9:io_alarm", 3 * S + 1 * MS)  # 40
    say(m, "s2c", "PrushCaramerAlarmInfo", "CAMA:motion", 3 * S + 2 * MS)  # 41
    say(m, "c2s", "Heartbeat", "", 4 * S)  # 42
    m.close(T0 + 5 * S)
    return w.getvalue()


@pytest.fixture(scope="module")
def cap():
    c = read_capture(sync_capture())
    assert len(c.messages) == 43
    assert c.connections["conn"].tolist() == list(range(8))
    return c


def test_sync_steps(cap):
    rows = [
        # ts session conn kind camera_id current total synced outcome reason online
        # request answer
        (24 * MS, 0, 1, "upload", "CAM1", 1, 3, 1, "ok", None, True, 7, 8),
        (26 * MS, 0, 1, "upload", "CAM2", 2, 3, 2, "failed", MISMATCH, None, 9, 10),
        (28 * MS, 0, 1, "upload", "CAM3", 3, 3, 3, "failed", FULL, None, 11, 12),
        (34 * MS, 0, 2, "download", "CAMA", 1, 2, 1, "ok", None, True, 15, 16),
        (36 * MS, 0, 2, "download", "CAMB", 2, 2, 2, "ok", None, False, 17, 18),
        # a refused download: the position asked for, no camera, no total known
        (44 * MS, 0, 3, "download", None, 1, None, None, "failed", NONE_BOUND, None, 21, 22),
        (54 * MS, 0, 4, "upload", "CAM4", 1, 3, 1, "ok", None, False, 25, 26),
        (55 * MS, 0, 4, "upload", "CAM5", 2, 3, None, "no_answer", None, None, 27, None),
        (64 * MS, 0, 5, "upload", "CAM6", 1, 1, 1, "failed", MISMATCH, None, 30, 31),
        (82 * MS, None, 7, "upload", "CAM7", 1, 1, 1, "ok", None, True, 35, 36),
    ]
    assert_table(cap.sync, expect(schema.SYNC, rows, kind=tables.KINDS,
                                  outcome=tables.STEP_OUTCOMES))


def test_transfers(cap):
    c = cap.connections
    starts = c["start"].array.asi8 - T0
    assert starts.tolist() == [0, 22 * MS, 32 * MS, 42 * MS, 52 * MS, 62 * MS, 72 * MS,
                               80 * MS]
    ends = [29 * MS + LAG, 37 * MS + LAG, 45 * MS + LAG, 56 * MS, 65 * MS + LAG,
            74 * MS + LAG, 83 * MS + LAG]
    main_client = "10.0.0.1:50000"
    rows = []
    spec = [
        # kind, client, data port, total, completed, ok, failed, no_answer, status, close
        ("upload", main_client, 1, 3, 3, 1, 2, 0, "complete", "fin"),
        ("download", main_client, 2, 2, 2, 2, 0, 0, "complete", "fin"),
        ("download", main_client, 3, None, 0, 0, 1, 0, "failed", "fin"),
        ("upload", main_client, 4, 3, 1, 1, 0, 1, "cut_short", "rst"),
        ("upload", main_client, 5, 1, 1, 0, 1, 0, "failed", "fin"),  # every camera refused
        (None, main_client, 6, None, 0, 0, 0, 0, "empty", "fin"),  # no transfer command
        ("upload", None, 7, 1, 1, 1, 0, 0, "complete", "fin"),  # no announcement links it
    ]
    for (kind, client, k, total, completed, ok, failed, no_answer, status, close), end in zip(
            spec, ends, strict=True):
        start = starts[k]
        duration = end - start
        data_client = "10.0.0.9:50000" if k == 7 else f"10.0.0.1:{50000 + k}"
        rows.append((kind, client, data_client, f"{SERVER}:{9000 + (9 if k == 7 else k)}",
                     total, completed, k, None if k == 7 else 0, None if k == 7 else 0, ok,
                     failed, no_answer, status, start, end, duration,
                     completed / (duration / 1e9), close))
    expected = expect(schema.TRANSFERS, rows, index=pd.Index(range(1, 8)), kind=tables.KINDS,
                      status=tables.STATUSES,
                      close_reason=c["close_reason"].cat.categories)
    assert_table(cap.transfers, expected)


def test_status_observations_and_transitions(cap):
    rows = [
        # ts camera_id online source conn session message previous changed time_in_previous
        (4 * MS, "CAM1", False, "query", 0, 0, 3, None, False, None),
        (4 * MS, "CAMA", None, "query", 0, 0, 3, None, False, None),
        (24 * MS, "CAM1", True, "upload", 1, 0, 8, False, True, 20 * MS),
        (34 * MS, "CAMA", True, "download", 2, 0, 16, None, True, 30 * MS),  # null -> true
        (36 * MS, "CAMB", False, "download", 2, 0, 18, None, False, None),
        (54 * MS, "CAM4", False, "upload", 4, 0, 26, None, False, None),
        (82 * MS, "CAM7", True, "upload", 7, None, 36, None, False, None),
        # unchanged: time in the state so far; then a change: time in the previous state
        (1 * S, "CAM1", True, "push", 0, 0, 37, True, False, 1 * S - 24 * MS),
        (2 * S, "CAM1", False, "push", 0, 0, 38, True, True, 2 * S - 24 * MS),
    ]
    assert_table(cap.status, expect(schema.STATUS, rows, source=tables.SOURCES))


def test_alarms_with_the_status_at_the_time(cap):
    rows = [
        # ts camera_id alarm_type conn session message online
        (10 * MS, "CAM1", "motion", 0, 0, 4, False),  # the query said offline
        (3 * S, "CAM1", "video_loss", 0, 0, 39, False),  # the last push said offline
        (3 * S + 1 * MS, "CAM9", "io_alarm", 0, 0, 40, None),  # never observed
        (3 * S + 2 * MS, "CAMA", "motion", 0, 0, 41, True),  # downloaded as online
    ]
    assert_table(cap.alarms, expect(schema.ALARMS, rows))


def test_sessions_link_every_announced_data_connection(cap):
    s = cap.sessions
    assert len(s) == 1
    assert s.at[0, "data_conns"] == [1, 2, 3, 4, 5, 6]  # conn 7 was never announced
    assert s.at[0, "heartbeats"] == 1


def test_only_the_cut_short_upload_breaks_a_rule(cap):
    v = cap.violations
    assert v[["rule", "message", "conn"]].astype(object).values.tolist() == [
        ["incomplete_sync", 27, 4]]  # conn 7: no main conn of its client, cannot tell


# ------------------------------------------------------------------ pairing corner cases


def test_upload_answers_without_a_request_and_pipelined_requests():
    """A capture that starts mid-upload: the first answer is a step on its own; two
    pipelined requests are answered in order."""
    w = PcapngWriter()
    d = w.tcp(("10.0.0.1", 50001), (SERVER, 9001), T0, handshake=False)
    say(d, "s2c", "UploadSucess", "CAM1|true|1|3", 0)  # 0
    say(d, "c2s", "UploadCaramer", "CAM2|1234|2|3", 1 * MS)  # 1
    say(d, "c2s", "UploadCaramer", "CAM3|1234|3|3", 2 * MS)  # 2
    say(d, "s2c", "UploadSucess", "CAM2|false|2|3", 3 * MS)  # 3
    say(d, "s2c", "UploadFail", f"CAM3|{FULL}|3|3", 4 * MS)  # 4
    cap = read_capture(w.getvalue())
    rows = [
        (0, None, 0, "upload", "CAM1", 1, 3, 1, "ok", None, True, None, 0),
        (3 * MS, None, 0, "upload", "CAM2", 2, 3, 2, "ok", None, False, 1, 3),
        (4 * MS, None, 0, "upload", "CAM3", 3, 3, 3, "failed", FULL, None, 2, 4),
    ]
    assert_table(cap.sync, expect(schema.SYNC, rows, kind=tables.KINDS,
                                  outcome=tables.STEP_OUTCOMES))
    t = cap.transfers
    assert (t.at[0, "status"], t.at[0, "completed"], t.at[0, "ok"]) == ("complete", 3, 2)
    assert pd.isna(t.at[0, "client"]) and pd.isna(t.at[0, "session"])
    assert cap.violations.empty  # start not seen: the rules do not judge the first step


def test_download_retry_is_one_step_and_an_unanswered_request_ends_it():
    w = PcapngWriter()
    d = w.tcp(("10.0.0.1", 50001), (SERVER, 9001), T0)
    say(d, "c2s", "DownLoadCaramer", "0", 1 * MS)  # 0
    say(d, "c2s", "DownLoadCaramer", "0", 2 * MS)  # 1: a retry
    say(d, "s2c", "DownloadSucess", "CAMA|1234|true|1|3", 3 * MS)  # 2
    say(d, "c2s", "DownLoadCaramer", "1", 4 * MS)  # 3
    d.close(T0 + 5 * MS)
    cap = read_capture(w.getvalue())
    rows = [
        (3 * MS, None, 0, "download", "CAMA", 1, 3, 1, "ok", None, True, 1, 2),
        (4 * MS, None, 0, "download", None, 2, 3, None, "no_answer", None, None, 3, None),
    ]
    assert_table(cap.sync, expect(schema.SYNC, rows, kind=tables.KINDS,
                                  outcome=tables.STEP_OUTCOMES))
    assert cap.transfers.at[0, "status"] == "cut_short"


# ------------------------------------------------------------------ shapes


TABLES = {
    "sessions": schema.SESSIONS,
    "sync": schema.SYNC,
    "transfers": schema.TRANSFERS,
    "status": schema.STATUS,
    "alarms": schema.ALARMS,
    "violations": schema.VIOLATIONS,
    "notes": schema.NOTES,
}


@pytest.mark.parametrize("make", [sessions_capture, sync_capture, lambda: _no_messages()])
def test_every_table_has_its_schema(make):
    cap = read_capture(make())
    for name, spec in TABLES.items():
        df = getattr(cap, name)
        assert df is getattr(cap, name)  # built once
        assert list(df.columns) == list(spec), name
        assert {c: str(t) for c, t in df.dtypes.items()} == spec, name
        for col in ("ts", "start", "end"):
            if col in df:
                assert str(df[col].dt.tz) == "UTC"


def _no_messages() -> bytes:
    w = PcapngWriter()
    c = w.tcp(("10.0.0.1", 50000), (SERVER, 9000), T0)
    c.close(T0 + MS)
    return w.getvalue()


def test_empty_capture_tables_are_empty():
    cap = read_capture(_no_messages())
    for name in TABLES:
        assert getattr(cap, name).empty, name
    assert cap.summary()["sessions"] == 0


def test_samples():
    cap = read_capture("captures/sample.pcapng")
    s = cap.sessions
    assert s[["user", "outcome", "camera_count", "heartbeats"]].astype(object).values.tolist() \
        == [["demo", "ok", 3, 3]]
    assert s.at[0, "data_conns"] == [1]
    assert s.at[0, "heartbeat_max_gap"] == pd.Timedelta(30, "s")
    assert cap.sync["outcome"].astype(str).tolist() == ["ok", "ok", "failed", "failed", "ok",
                                                        "ok"]
    assert cap.sync["reason"].dropna().tolist() == [MISMATCH, FULL]
    t = cap.transfers
    assert t[["kind", "client", "data_client", "total", "completed", "status"]].astype(
        object).values.tolist() == [
        ["upload", "198.51.100.7:51514", "198.51.100.7:51515", 6, 6, "complete"]]
    assert cap.status["changed"].sum() == 3
    assert cap.alarms["online"].astype(object).tolist() == [False, True, True, True]
    assert cap.violations.empty and cap.notes.empty

    down = read_capture("captures/download.pcapng")
    assert down.sessions[["user", "outcome"]].astype(object).values.tolist() == [
        ["bob", "ok"], ["alice", "error"], ["alice", "ok"]]
    assert down.sessions["data_conns"].tolist() == [[1], [], [3]]
    assert down.transfers["status"].astype(str).tolist() == ["complete", "failed"]
    assert down.violations.empty and down.notes.empty
    summary = down.summary()
    assert summary["logins"] == {"ok": 2, "error": 1, "no_answer": 0, "before_capture": 0}
    assert summary["violations"] == {}
    assert summary["cameras"] == {"download": {"downloaded": 1, "refused": 1, "failed": 0}}


def test_summary_counts_bound_refused_and_failed_cameras_apart():
    """``completed`` counts a refused upload too: the summary never calls it synced."""
    cap = read_capture("captures/sample.pcapng")
    assert cap.transfers["completed"].tolist() == [6]
    assert cap.summary()["cameras"] == {"upload": {"bound": 4, "refused": 2, "failed": 0}}
    # a transfer cut short after 3 of 5 cameras: the 2 it never reached failed
    cut = read_capture("captures/failed_sync.pcapng")
    assert cut.summary()["cameras"] == {"upload": {"bound": 3, "refused": 1, "failed": 2}}
    assert "cameras_synced" not in cut.summary()


def test_tables_stay_utc_whatever_the_local_zone(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Asia/Shanghai")
    if hasattr(time, "tzset"):
        time.tzset()
    try:
        cap = read_capture(sessions_capture())
        assert cap.sessions["start"].iloc[0] == pd.Timestamp(T0 + MS, unit="ns", tz="UTC")
    finally:
        monkeypatch.undo()
        if hasattr(time, "tzset"):
            time.tzset()


def test_helpers():
    assert tables._cumcount(np.array([3, 3, 5, 5, 5, 9])).tolist() == [0, 1, 0, 1, 2, 0]
    assert tables._first_per(np.array([2, -1, 2, 0]), np.array([5, 6, 7, 8]), 4).tolist() \
        == [8, -1, 5, -1]


# ------------------------------------------------------------------ tables agree with the rules

step = st.tuples(st.sampled_from(["upload", "download"]), st.integers(1, 4),
                 st.integers(0, 4), st.sampled_from(["fin", "rst", "open"]),
                 st.sets(st.integers(1, 4), max_size=2), st.booleans())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=4))
def test_tables_agree_with_the_rule_machines(script):
    """Random transfers (some cut short, some refused): the vectorised tables and the
    rule machines tell the same story about every data connection."""
    w = PcapngWriter()
    m = w.tcp(("10.0.0.1", 50000), (SERVER, 9000), T0)
    say(m, "c2s", "Login", "demo|demo", 1 * MS)
    say(m, "s2c", "LoginOk", "1|t|ip", 2 * MS)
    t = 10 * MS
    opened = []
    for k, (kind, total, done, close, refused, refuse_download) in enumerate(script):
        port = 9001 + k
        say(m, "c2s", "CreatDataSocket", "demo|demo", t)
        say(m, "s2c", "ReturnDataSocketPort", str(port), t + MS)
        d = w.tcp(("10.0.0.1", 50001 + k), (SERVER, port), T0 + t + 2 * MS)
        t += 3 * MS
        if kind == "download" and refuse_download:
            say(d, "c2s", "DownLoadCaramer", "0", t)
            say(d, "s2c", "DownloadFail", NONE_BOUND, t + MS)
            t += 2 * MS
        for i in range(1, min(done, total) + 1):
            if kind == "upload":
                say(d, "c2s", "UploadCaramer", f"CAM{i}|1234|{i}|{total}", t)
                answer = (f"UploadFail|CAM{i}|{MISMATCH}" if i in refused
                          else f"UploadSucess|CAM{i}|true")
                command, params = answer.split("|", 1)
                say(d, "s2c", command, f"{params}|{i}|{total}", t + MS)
            elif not refuse_download:
                say(d, "c2s", "DownLoadCaramer", str(i - 1), t)
                say(d, "s2c", "DownloadSucess", f"CAM{i}|1234|false|{i}|{total}", t + MS)
            t += 2 * MS
        if close != "open":
            d.close(T0 + t, how=close)
        t += MS
        opened.append(k + 1)
    say(m, "c2s", "Heartbeat", "", t)
    cap = read_capture(w.getvalue())

    tr, sync, v = cap.transfers, cap.sync, cap.violations
    assert cap.sessions.at[0, "data_conns"] == [c for c in opened if c in tr.index]
    incomplete = set(v.loc[v["rule"] == "incomplete_sync", "conn"])
    assert set(v["rule"].astype(str)) <= {"incomplete_sync"}
    for conn, row in tr.iterrows():
        closed = row["close_reason"] in ("fin", "rst")
        if row["status"] == "cut_short" and closed:
            assert conn in incomplete
        if row["status"] in ("complete", "empty") or not closed:
            assert conn not in incomplete
        steps = sync[sync["conn"] == conn]
        assert len(steps) == row["ok"] + row["failed"] + row["no_answer"]
        assert (steps["session"] == 0).all()
    assert len(cap.status) == int(cap.messages["command"].isin(
        ["UploadSucess", "DownloadSucess"]).sum())

"""``Capture.messages`` and ``Capture.connections`` keep the Contract's columns and dtypes."""

from __future__ import annotations

import pandas as pd
import pytest

from camprotool import encode, read_capture
from camprotool.analysis import schema
from camprotool.capture.writer import PcapngWriter

T0 = 1_700_000_000_000_000_000
CONTRACT = {
    "ts": "datetime64[ns, UTC]",
    "conn": "int64",
    "channel": "category",
    "direction": "category",
    "client": "category",
    "server": "category",
    "command": "category",
    "params": "str",
    "error": "str",
}
TYPED = {
    "user": "str",
    "camera_count": "Int64",
    "port": "UInt16",
    "camera_id": "str",
    "current": "Int64",
    "total": "Int64",
    "synced": "Int64",
    "downloaded": "Int64",
    "online": "boolean",
    "reason": "str",
    "alarm_type": "str",
}


def sample() -> bytes:
    """A main and a data connection, two clients' packets at the same instants, odd frames."""
    w = PcapngWriter()
    m = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 9000), T0)
    m.send("c2s", encode("Login", "demo|demo"), T0 + 100)
    m.send("s2c", encode("LoginOk", "2|2024-01-01 10:00:00|1.2.3.4"), T0 + 200)
    m.send("c2s", encode("CreatDataSocket", "demo|demo"), T0 + 300)
    m.send("s2c", encode("ReturnDataSocketPort", "9001"), T0 + 400)
    d = w.tcp(("10.0.0.1", 50001), ("10.0.0.2", 9001), T0 + 500)
    # Several frames in one segment: same ts, stream order.
    d.send("c2s", encode("DownLoadCaramer", "0") + encode("DownLoadCaramer", "1"), T0 + 600)
    d.send("s2c", encode("DownloadSucess", "CAM1|pw|true|1|2")
           + encode("DownloadSucess", "CAM2|pw|null|2|2"), T0 + 700)
    # Two connections' packets with the same timestamp: capture order decides.
    d.send("c2s", encode("SocketCommand.CaramCommand.Frobnicate", "a|b"), T0 + 800)
    m.send("s2c", encode("PrushCaramerAlarmInfo", "CAM1:motion"), T0 + 800)
    m.send("s2c", encode("PrushCaramerOnlineStatus", "CAM1:false"), T0 + 800)
    m.send("c2s", b"SocketCommand.LoginCommand.Login|only-one-field\r\n", T0 + 900)
    m.send("c2s", b"not a frame at all\r\n", T0 + 900)
    m.send("s2c", encode("UploadSucess", "CAM1|maybe|x|2"), T0 + 950)
    d.close(T0 + 1000)
    return w.getvalue()


@pytest.fixture(scope="module")
def cap():
    return read_capture(sample())


def test_contract_columns_and_dtypes(cap):
    m = cap.messages
    assert list(m.columns)[: len(CONTRACT)] == list(CONTRACT)
    for name, dtype in {**CONTRACT, **TYPED}.items():
        assert str(m[name].dtype) == dtype, name
    assert list(m["channel"].cat.categories) == ["main", "data", "unknown"]
    assert list(m["direction"].cat.categories) == ["c2s", "s2c"]
    assert isinstance(m.index, pd.RangeIndex)
    assert (m.index.start, m.index.step, m.index.stop) == (0, 1, len(m))


def test_empty_capture_has_the_same_columns_and_dtypes(cap):
    empty = read_capture(PcapngWriter().getvalue())
    assert empty.messages.empty
    assert list(empty.messages.columns) == list(cap.messages.columns)
    open_categories = {"command", "client", "server"}  # the values seen
    for name in CONTRACT.keys() - open_categories:
        assert empty.messages[name].dtype == cap.messages[name].dtype, name
    for name in open_categories:
        assert str(empty.messages[name].dtype) == "category", name
    assert list(empty.connections.columns) == list(cap.connections.columns)
    for name in cap.connections.columns:
        assert str(empty.connections[name].dtype) == str(cap.connections[name].dtype), name
    assert empty.problems.empty


def test_schema_module_matches_the_frames(cap):
    assert list(cap.messages.columns) == list(schema.MESSAGES)
    assert list(cap.connections.columns) == list(schema.CONNECTIONS)
    for name, dtype in schema.MESSAGES.items():
        assert str(cap.messages[name].dtype) == dtype, name


def test_rows_ordered_by_time_ties_in_stream_order(cap):
    m = cap.messages
    assert m["ts"].is_monotonic_increasing
    got = list(zip((m["ts"].astype("int64") - T0).tolist(), m["conn"].tolist(),
                   m["command"].astype(str).tolist(), strict=True))
    assert got == [
        (100, 0, "Login"),
        (200, 0, "LoginOk"),
        (300, 0, "CreatDataSocket"),
        (400, 0, "ReturnDataSocketPort"),
        (600, 1, "DownLoadCaramer"),
        (600, 1, "DownLoadCaramer"),
        (700, 1, "DownloadSucess"),
        (700, 1, "DownloadSucess"),
        (800, 1, "SocketCommand.CaramCommand.Frobnicate"),  # written first
        (800, 0, "PrushCaramerAlarmInfo"),
        (800, 0, "PrushCaramerOnlineStatus"),
        (900, 0, "Login"),
        (900, 0, ""),  # an unreadable frame names no command
        (950, 0, "UploadSucess"),
    ]
    assert m.loc[4:5, "downloaded"].tolist() == [0, 1]  # stream order inside the segment
    assert m.loc[6:7, "camera_id"].tolist() == ["CAM1", "CAM2"]


def test_typed_fields(cap):
    m = cap.messages
    ok = m.loc[1]
    assert (ok.camera_count, ok.last_login_time, ok.last_login_ip) == (
        2, "2024-01-01 10:00:00", "1.2.3.4")
    assert m.loc[3, "port"] == 9001
    assert m.loc[6, ["current", "total"]].tolist() == [1, 2]
    # true, null (the server has no status), false
    assert m.loc[[6, 7, 10], "online"].tolist() == [True, pd.NA, False]
    assert (m.loc[9, "camera_id"], m.loc[9, "alarm_type"]) == ("CAM1", "motion")
    # Fields a command does not have are null, counts stay nullable integers.
    assert pd.isna(m.loc[0, "camera_count"])
    assert m["camera_count"].isna().sum() == len(m) - 1


def test_unknown_command_keeps_its_raw_name_and_is_no_error(cap):
    row = cap.messages.loc[8]
    assert row.command == "SocketCommand.CaramCommand.Frobnicate"
    assert row.params == "a|b"
    assert pd.isna(row.error)
    assert row.channel == "data"


def test_malformed_frames_are_rows_with_an_error(cap):
    m = cap.messages
    valid = m.drop(index=[11, 12, 13])
    assert valid["error"].isna().all()
    assert m.loc[11, "command"] == "Login"
    assert m.loc[11, "params"] == "***"  # a lone field may be the password
    assert m.loc[11, "error"] == "expected 2 fields (user|password), got 1"
    assert m.loc[12, "error"].startswith("not a command name")
    # An unreadable frame may hold a password: its bytes only when revealed.
    assert m.loc[12, "raw"] is None
    revealed = read_capture(sample(), reveal_passwords=True).messages
    assert revealed.loc[12, "raw"] == b"not a frame at all\r\n"
    bad = m.loc[13]
    assert bad.command == "UploadSucess"
    assert bad.params == "CAM1|maybe|x|2"
    assert "online" in bad.error and "synced" in bad.error
    assert pd.isna(bad.online) and pd.isna(bad.synced)
    assert bad.camera_id == "CAM1" and bad.total == 2


def test_client_and_server_strings(cap):
    m = cap.messages
    assert m.loc[m["conn"] == 0, "client"].unique().tolist() == ["10.0.0.1:50000"]
    assert m.loc[m["conn"] == 1, "server"].unique().tolist() == ["10.0.0.2:9001"]
    assert m["channel"].astype(str).tolist()[:5] == ["main"] * 4 + ["data"]


def test_problems_frame_dtypes():
    w = PcapngWriter()
    c = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 9000), T0)
    c.send("c2s", encode("Heartbeat"), T0 + 100)
    cap = read_capture(w.getvalue()[:-5])
    p = cap.problems
    assert list(p.columns) == ["frame", "kind", "conn", "direction", "detail"]
    assert [str(t) for t in p.dtypes] == ["Int64", "category", "Int64", "category", "str"]
    assert p["kind"].tolist() == ["truncated_file"]


def test_conform_keeps_a_conforming_frame_and_converts_any_other():
    spec = {"n": "Int64", "s": "str", "c": "category"}
    ready = pd.DataFrame({"n": pd.array([1, None], dtype="Int64"),
                          "s": pd.array(["a", None], dtype="str"),
                          "c": pd.Categorical(["x", "y"])})
    assert schema.conform(ready, spec) is ready
    loose = pd.DataFrame({"c": ["x", "y"], "n": [1, 2], "s": ["a", "b"]})
    got = schema.conform(loose, spec)
    assert list(got.columns) == list(spec)
    assert [str(t) for t in got.dtypes] == list(spec.values())

"""``Capture.status`` / ``.alarms`` are built column-wise: a twin of the camera-status model.

``tables.build_status`` and ``build_alarms`` turn a whole capture's messages
into rows with NumPy (a million messages, no Python loop per message). They
must say exactly what :class:`camprotool.protocol.status.StatusModel` (which
the ``ClientPanel`` shows) says when fed the same messages one by one:
random conversations of status pushes, answers, upload/download answers,
alarms and noise, both directions and channels, with malformed frames and
timestamp ties, go through the one messages-table builder and are compared
row by row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from camprotool.analysis import tables
from camprotool.net.recording import LoggedMessage
from camprotool.net.table import messages_frame
from camprotool.protocol.catalogue import BY_NAME
from camprotool.protocol.messages import Message, build_message
from camprotool.protocol.status import Alarm, Observation, StatusModel

CAMERAS = ["A", "B", "C", ""]
STATUS = st.sampled_from(["true", "false", "null", "maybe"])  # "maybe": a decoding error
CAMERA = st.sampled_from(CAMERAS)


@st.composite
def params(draw: st.DrawFn, command: str) -> str:
    if command == "PrushCaramerOnlineStatus":
        return f"{draw(CAMERA)}:{draw(STATUS)}"
    if command == "PrushCaramerAlarmInfo":
        return f"{draw(CAMERA)}:{draw(st.sampled_from(['motion', 'door', '']))}"
    if command == "ReturnCaramerOnlineStatus":
        pairs = draw(st.lists(st.tuples(CAMERA, STATUS), min_size=0, max_size=4))
        return "|".join(f"{c};{s}" for c, s in pairs)
    if command == "UploadSucess":
        return f"{draw(CAMERA)}|{draw(STATUS)}|1|2"
    if command == "DownloadSucess":
        return f"{draw(CAMERA)}|1234|{draw(STATUS)}|1|2"
    return draw(st.sampled_from(["", "A|x|1|1"]))


@st.composite
def rows(draw: st.DrawFn) -> LoggedMessage:
    command = draw(st.sampled_from([
        "PrushCaramerOnlineStatus", "ReturnCaramerOnlineStatus", "UploadSucess",
        "DownloadSucess", "PrushCaramerAlarmInfo", "UploadFail", "Heartbeat"]))
    channel = draw(st.sampled_from(["main", "data"]))
    conn = {"main": 0, "data": 1}[channel] + 2 * draw(st.integers(0, 1))
    direction = draw(st.sampled_from(["s2c", "s2c", "s2c", "c2s"]))
    message = build_message(BY_NAME[command], command, draw(params(command)))
    return LoggedMessage(0, conn, channel, direction, "10.0.0.1:5000", "10.0.0.2:9000",
                         message)


def capture(script: list[LoggedMessage]) -> tables.Prep:
    """``Capture.messages`` of the logged rows (the one messages-table builder)."""
    messages = messages_frame(script)
    n = len(messages)
    messages["frame"] = np.arange(n, dtype=np.int64)
    messages["stream_offset"] = np.arange(n, dtype=np.int64)
    conns = sorted({row.conn for row in script} | {0})
    end = int(messages["ts"].array.asi8.max()) if n else 0
    connections = pd.DataFrame({
        "conn": np.array(conns, np.int64),
        "start": pd.to_datetime([0] * len(conns), unit="ns", utc=True),
        "end": pd.to_datetime([end] * len(conns), unit="ns", utc=True)})
    return tables.Prep(messages, connections)


def no_sessions(p: tables.Prep) -> tables.SessionIndex:
    return tables.SessionIndex(pd.DataFrame(), np.full(p.n, -1, np.int64),
                               np.full(p.n_conn_ids, -1, np.int64))


def by_the_model(script: list[LoggedMessage]) -> tuple[list[Observation], list[Alarm]]:
    model = StatusModel()
    for i, row in enumerate(script):  # ts ascending: the table's order is the log's
        model.feed(row.message, row.ts_ns, direction=row.direction, channel=row.channel,
                   index=i)
    return list(model.observations), list(model.alarms)


def optional(value: object) -> bool | None:
    """A nullable boolean cell as the model's ``bool | None``."""
    return None if value is pd.NA or value is None else bool(value)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(rows(), st.integers(0, 3)), max_size=30))
def test_status_and_alarm_tables_say_what_the_model_says(drawn: list[tuple[LoggedMessage, int]]
                                                         ) -> None:
    ts, script = 1_000, []
    for row, step in drawn:  # steps of 0: timestamp ties, kept in log order
        ts += step
        script.append(row._replace(ts_ns=ts))
    observations, alarms = by_the_model(script)
    p = capture(script)
    sessions = no_sessions(p)
    status = tables.build_status(p, sessions)
    got = [Observation(int(r.ts.value), r.camera_id, optional(r.online), r.source,
                       optional(r.previous), bool(r.changed),
                       None if pd.isna(r.time_in_previous) else int(r.time_in_previous.value),
                       int(r.message))
           for r in status.itertuples(index=False)]
    assert got == observations
    assert list(status["source"].cat.categories) == ["push", "query", "upload", "download"]
    table = tables.build_alarms(p, sessions, status)
    got_alarms = [Alarm(int(r.ts.value), r.camera_id, r.alarm_type, optional(r.online),
                        int(r.message)) for r in table.itertuples(index=False)]
    assert got_alarms == alarms


def test_the_twin_sees_a_conversation_the_model_sees() -> None:
    """One fixed case, so a failure names a readable conversation."""
    def row(ts: int, command: str, params: str, channel: str = "main") -> LoggedMessage:
        message: Message = build_message(BY_NAME[command], command, params)
        return LoggedMessage(ts, 1 if channel == "data" else 0, channel, "s2c", "c", "s",
                             message)

    script = [row(1, "PrushCaramerAlarmInfo", "A:motion"),
              row(2, "ReturnCaramerOnlineStatus", "A;true|B;null"),
              row(2, "UploadSucess", "A|false|1|1", "data"),
              row(5, "PrushCaramerAlarmInfo", "A:door"),
              row(9, "PrushCaramerOnlineStatus", "A:false")]
    observations, alarms = by_the_model(script)
    status = tables.build_status(p := capture(script), no_sessions(p))
    assert status["camera_id"].tolist() == [o.camera_id for o in observations] == [
        "A", "B", "A", "A"]
    assert status["changed"].tolist() == [o.changed for o in observations] == [
        False, False, True, False]
    assert [a.online for a in alarms] == [None, False]

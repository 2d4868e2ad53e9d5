"""The camera-status model fed messages directly: no widgets, sockets or pandas.

``ClientPanel``'s camera grid and alarm list and ``Capture.status`` /
``Capture.alarms`` are this model's states and events, so what they show is
pinned down here message by message.
"""

from __future__ import annotations

from camprotool.protocol.catalogue import BY_NAME
from camprotool.protocol.messages import build_message
from camprotool.protocol.status import Alarm, Observation, StatusModel

S = 1_000_000_000


def msg(command: str, params: str):
    return build_message(BY_NAME[command], command, params)


def test_a_push_then_a_change_then_the_same_status():
    model = StatusModel()
    first = model.feed(msg("PrushCaramerOnlineStatus", "CAM1:false"), 1 * S, index=7)
    assert first == [Observation(1 * S, "CAM1", False, "push", None, False, None, 7)]
    changed = model.feed(msg("PrushCaramerOnlineStatus", "CAM1:true"), 5 * S)
    assert changed == [Observation(5 * S, "CAM1", True, "push", False, True, 4 * S, None)]
    # unchanged: the time since the status last changed, not since the last message
    same = model.feed(msg("PrushCaramerOnlineStatus", "CAM1:true"), 9 * S)
    assert same == [Observation(9 * S, "CAM1", True, "push", True, False, 4 * S, None)]
    cam = model.cameras["CAM1"]
    assert (cam.online, cam.source, cam.ts_ns, cam.run_start_ns, cam.observations) == (
        True, "push", 9 * S, 5 * S, 3)
    assert list(model.observations) == first + changed + same


def test_null_is_a_status_of_its_own_and_has_no_previous():
    model = StatusModel()
    model.feed(msg("PrushCaramerOnlineStatus", "CAM1:null"), 1 * S)
    [obs] = model.feed(msg("PrushCaramerOnlineStatus", "CAM1:true"), 2 * S)
    assert (obs.previous, obs.changed, obs.time_in_previous_ns) == (None, True, 1 * S)
    [obs] = model.feed(msg("PrushCaramerOnlineStatus", "CAM1:null"), 3 * S)
    assert (obs.online, obs.previous, obs.changed) == (None, True, True)


def test_a_status_answer_observes_each_pair_in_order():
    model = StatusModel()
    events = model.feed(msg("ReturnCaramerOnlineStatus", "A;true|B;null|A;false"), 1 * S,
                        index=3)
    assert [(e.camera_id, e.online, e.source, e.changed) for e in events] == [
        ("A", True, "query", False), ("B", None, "query", False), ("A", False, "query", True)]
    assert {cid: c.online for cid, c in model.cameras.items()} == {"A": False, "B": None}


def test_upload_and_download_answers_count_only_on_a_data_connection():
    model = StatusModel()
    assert model.feed(msg("UploadSucess", "A|true|1|2"), 1 * S, channel="main") == []
    [up] = model.feed(msg("UploadSucess", "A|true|1|2"), 2 * S, channel="data")
    [down] = model.feed(msg("DownloadSucess", "B|1234|false|1|1"), 3 * S, channel="data")
    assert (up.source, up.online, down.source, down.online) == ("upload", True, "download", False)
    assert model.feed(msg("UploadFail", "C|no|2|2"), 4 * S, channel="data") == []
    assert set(model.cameras) == {"A", "B"}


def test_only_server_messages_decoded_without_error_count():
    model = StatusModel()
    # a client cannot tell the server a status; a frame that failed to decode says nothing
    assert model.feed(msg("PrushCaramerOnlineStatus", "A:true"), 1 * S, direction="c2s") == []
    bad = msg("PrushCaramerOnlineStatus", "A:maybe")
    assert bad.error is not None and model.feed(bad, 2 * S) == []
    assert model.feed(msg("ReturnCaramerOnlineStatus", "A;true|B;x"), 3 * S) == []
    assert model.feed(msg("Heartbeat", ""), 4 * S) == []
    assert model.cameras == {} and not model.observations


def test_an_empty_camera_id_is_what_the_wire_said():
    # ":true" decodes without error; the capture table keeps its row, so does the model
    [obs] = StatusModel().feed(msg("PrushCaramerOnlineStatus", ":true"), 1 * S)
    assert obs.camera_id == ""


def test_alarms_carry_the_last_observed_status_and_count_per_camera():
    model = StatusModel()
    [a1] = model.feed(msg("PrushCaramerAlarmInfo", "A:motion"), 1 * S, index=0)
    assert a1 == Alarm(1 * S, "A", "motion", None, 0)
    assert not model.cameras["A"].observed  # an alarm alone: a camera, no status yet
    model.feed(msg("PrushCaramerOnlineStatus", "A:false"), 2 * S)
    [a2] = model.feed(msg("PrushCaramerAlarmInfo", "A:"), 3 * S)
    assert (a2.online, a2.alarm_type) == (False, "")
    # the first status after an alarm is still the camera's first observation
    assert model.observations[0].previous is None
    cam = model.cameras["A"]
    assert (cam.alarms, cam.last_alarm, cam.last_alarm_ns) == (2, "", 3 * S)
    assert list(model.alarms) == [a1, a2]
    assert model.alarms[0][:3] == (1 * S, "A", "motion")  # what the alarm plot reads


def test_history_is_bounded_but_states_are_not():
    model = StatusModel(max_observations=2, max_alarms=1)
    for i in range(5):
        model.feed(msg("PrushCaramerOnlineStatus", f"C{i}:true"), i * S)
        model.feed(msg("PrushCaramerAlarmInfo", f"C{i}:x"), i * S)
    assert [o.camera_id for o in model.observations] == ["C3", "C4"]
    assert [a.camera_id for a in model.alarms] == ["C4"]
    assert len(model.cameras) == 5
    model.clear()
    assert not model.cameras and not model.observations and not model.alarms

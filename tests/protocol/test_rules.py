"""Tests for camprotool.protocol.rules: one breaking and one close clean sequence per rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camprotool.protocol.catalogue import BY_NAME, COMMANDS, MAX_STATUS_IDS
from camprotool.protocol.codec import Decoder, encode
from camprotool.protocol.errors import LocalProtocolError
from camprotool.protocol.messages import Message, build_message
from camprotool.protocol.rules import (
    DATA_TRANSITIONS,
    MAIN_TRANSITIONS,
    RULES,
    Announcement,
    DataSession,
    DataState,
    MainSession,
    MainState,
    Violation,
    check_data,
    check_main,
    data_port_announced,
)

S = 10**9  # one second in ns


def m(name: str, params: str = "", error: str | None = None) -> Message:
    """A known message typed by the catalogue, as the decoder would make it."""
    return build_message(BY_NAME[name], name, params, b"", error)


def unknown(name: str = "SocketCommand.NormalCommand.Logout", params: str = "") -> Message:
    return build_message(None, name, params)


def events(*items: tuple[str, Message], step: int = S, start: int = 0):
    """(index, direction, message, ts) tuples, one second apart unless told."""
    return [(i, d, msg, start + i * step) for i, (d, msg) in enumerate(items)]


def rules_of(violations: list[Violation]) -> list[tuple[str, int]]:
    return [(v.rule, v.message) for v in violations]


LOGIN = [
    ("c2s", m("Login", "demo|demo")),
    ("s2c", m("LoginOk", "3|2024-01-01 10:00:00|10.0.0.2")),
]


def upload(n: int, ids: tuple[str, ...] | None = None, fail: frozenset[int] = frozenset()):
    ids = ids or tuple(f"CAM{k:05d}" for k in range(1, n + 1))
    out = []
    for k, cam in enumerate(ids, 1):
        out.append(("c2s", m("UploadCaramer", f"{cam}|1234|{k}|{n}")))
        if k in fail:
            out.append(("s2c", m("UploadFail", f"{cam}|ID和密码不匹配|{k}|{n}")))
        else:
            out.append(("s2c", m("UploadSucess", f"{cam}|true|{k}|{n}")))
    return out


def download(n: int):
    out = []
    for k in range(n):
        out.append(("c2s", m("DownLoadCaramer", str(k))))
        out.append(("s2c", m("DownloadSucess", f"DEMO{k + 1:04d}|1234|false|{k + 1}|{n}")))
    return out


# ------------------------------------------------------------------ tables and API


def test_rules_keys_are_exactly_protocol_section_5():
    assert list(RULES) == [
        "before_login", "check_too_many_ids", "upload_sequence", "download_sequence",
        "unannounced_data_port", "incomplete_sync", "malformed_params", "heartbeat_gap",
        "data_port_hijack",
    ]
    assert all(isinstance(text, str) and text and "\n" not in text for text in RULES.values())


def test_tables_cover_every_state_and_name_known_commands():
    assert set(MAIN_TRANSITIONS) == set(MainState)
    assert set(DATA_TRANSITIONS) == set(DataState)
    for table in (MAIN_TRANSITIONS, DATA_TRANSITIONS):
        for row in table.values():
            for direction, name in row:
                assert direction in ("c2s", "s2c")
                assert BY_NAME[name].direction.wire == direction
    main_commands = {(c.direction.wire, c.name) for c in COMMANDS if c.channel == "main"}
    assert set(MAIN_TRANSITIONS[MainState.LOGGED_IN]) == main_commands


def test_misuse_is_a_local_error():
    s = MainSession()
    with pytest.raises(LocalProtocolError, match="direction"):
        s.on_message(0, "push", m("Login", "a|b"), 0)
    with pytest.raises(LocalProtocolError, match="Message"):
        s.on_message(0, "c2s", "Login|a|b", 0)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="heartbeat_timeout_ns"):
        MainSession(heartbeat_timeout_ns=0)
    d = DataSession()
    d.on_close()
    with pytest.raises(LocalProtocolError, match="closed"):
        d.on_message(5, "c2s", m("DownLoadCaramer", "0"), 0)


# ------------------------------------------------------------------ before_login


def test_before_login_breach():
    got = check_main(events(
        ("c2s", m("Heartbeat")),
        ("c2s", m("CreatDataSocket", "demo|demo")),
        ("s2c", m("PrushCaramerOnlineStatus", "DEMO0001:true")),
        *LOGIN,
    ))
    assert rules_of(got) == [("before_login", 1), ("before_login", 2)]
    assert "CreatDataSocket" in got[0].detail and "client" in got[0].detail
    assert "PrushCaramerOnlineStatus" in got[1].detail and "server" in got[1].detail


def test_before_login_clean_sequence():
    s = MainSession()
    seq = events(
        ("c2s", m("Heartbeat")),
        ("c2s", m("Login", "demo|demo")),
        ("c2s", m("Heartbeat")),
        ("s2c", m("LoginOk", "3|2024-01-01 10:00:00|10.0.0.2")),
        ("c2s", m("CreatDataSocket", "demo|demo")),
        ("s2c", m("ReturnDataSocketPort", "9001")),
    )
    assert [v for e in seq for v in s.on_message(*e)] == []
    assert s.logged_in and s.user == "demo" and s.server_camera_count == 3
    assert s.announced_ports == [Announcement(9001, 5, 5 * S)]


def test_login_error_returns_to_awaiting_login():
    s = MainSession()
    assert s.on_message(0, "c2s", m("Login", "demo|wrong"), 0) == []
    assert s.state == "login_sent" and not s.allows("c2s", "CreatDataSocket")
    assert s.on_message(1, "s2c", m("LoginError", "用户名或者密码错误!"), 1) == []
    assert s.state == "awaiting_login"
    got = s.on_message(2, "c2s", m("CheckCaramerOnlineStatus", "DEMO0001"), 2)
    assert rules_of(got) == [("before_login", 2)]
    s.on_message(3, "c2s", m("Login", "demo|demo"), 3)
    s.on_message(4, "s2c", m("LoginOk", "3|t|ip"), 4)
    assert s.allows("c2s", "CreatDataSocket")
    assert s.on_message(5, "c2s", m("CheckCaramerOnlineStatus", "DEMO0001"), 5) == []


def test_capture_started_after_login_never_reports_before_login():
    seq = events(
        ("s2c", m("PrushCaramerAlarmInfo", "DEMO0001:motion")),
        ("c2s", m("CreatDataSocket", "demo|demo")),
        ("s2c", m("ReturnDataSocketPort", "9001")),
    )
    assert check_main(seq, start_seen=False) == []
    assert rules_of(check_main(seq))[:2] == [("before_login", 0), ("before_login", 1)]


def test_unknown_command_before_login_is_a_note_not_a_violation():
    s = MainSession()
    assert s.on_message(0, "c2s", unknown("SocketCommand.LoginCommand.Register", "a|b"), 0) == []
    assert s.state == "awaiting_login"
    assert [n.message for n in s.notes] == [0] and "Register" in s.notes[0].detail


# ------------------------------------------------------------------ check_too_many_ids


def test_check_too_many_ids_breach():
    ids = ";".join(f"CAM{k:05d}" for k in range(MAX_STATUS_IDS + 1))
    got = check_main(events(*LOGIN, ("c2s", m("CheckCaramerOnlineStatus", ids))))
    assert rules_of(got) == [("check_too_many_ids", 2)]
    assert "21" in got[0].detail and "20" in got[0].detail


def test_check_with_exactly_20_ids_is_fine():
    ids = ";".join(f"CAM{k:05d}" for k in range(MAX_STATUS_IDS)) + ";"  # trailing ; tolerated
    seq = events(*LOGIN, ("c2s", m("CheckCaramerOnlineStatus", ids)),
                 ("s2c", m("ReturnCaramerOnlineStatus", "CAM00000;true|CAM00001;null")))
    assert check_main(seq) == []


# ------------------------------------------------------------------ upload_sequence


def test_upload_must_start_at_1():
    got = check_data(events(("c2s", m("UploadCaramer", "A|pw|2|3"))), closed=False)
    assert rules_of(got) == [("upload_sequence", 0)]
    assert "current 2" in got[0].detail and "expected 1" in got[0].detail


def test_upload_must_rise_by_1_and_resynchronises():
    seq = upload(4)
    del seq[2:4]  # drop camera 2: the client jumps from 1 to 3
    got = check_data(events(*seq))
    assert rules_of(got) == [("upload_sequence", 2)]  # 4 follows 3: no cascade
    assert "current 3" in got[0].detail and "expected 2" in got[0].detail


def test_upload_total_must_not_change():
    seq = upload(3)
    seq[4] = ("c2s", m("UploadCaramer", "CAM00003|1234|3|4"))
    seq[5] = ("s2c", m("UploadSucess", "CAM00003|true|3|4"))
    got = check_data(events(*seq), closed=False)
    assert rules_of(got) == [("upload_sequence", 4)]
    assert "from 3 to 4" in got[0].detail


def test_upload_current_above_total():
    seq = events(*upload(2), ("c2s", m("UploadCaramer", "X|pw|3|2")))
    got = check_data(seq, closed=False)
    assert rules_of(got) == [("upload_sequence", 4)]
    assert "current 3 exceeds total 2" in got[0].detail


def test_upload_answer_naming_another_camera_or_total():
    seq = upload(2)
    seq[1] = ("s2c", m("UploadSucess", "OTHER|true|1|2"))
    seq[3] = ("s2c", m("UploadFail", "CAM00002|已绑定|2|5"))
    got = check_data(events(*seq))
    assert rules_of(got) == [("upload_sequence", 1), ("upload_sequence", 3)]
    assert "'OTHER'" in got[0].detail and "'CAM00001'" in got[0].detail
    assert "total 5" in got[1].detail and "total 2" in got[1].detail


def test_clean_upload_with_failures_and_pipelining():
    assert check_data(events(*upload(5, fail=frozenset({2, 5})))) == []
    # a client may send several requests before the answers come back
    reqs = [e for e in upload(3) if e[0] == "c2s"]
    answers = [e for e in upload(3) if e[0] == "s2c"]
    s = DataSession()
    assert [v for e in events(*reqs, *answers) for v in s.on_message(*e)] == []
    assert s.on_close() == [] and s.completed and s.kind == "upload" and s.total == 3


def test_upload_synced_not_counting_failures_is_only_a_note():
    seq = upload(2, fail=frozenset({1}))
    seq[3] = ("s2c", m("UploadSucess", "CAM00002|true|1|2"))  # synced counts successes only
    s = DataSession()
    assert [v for e in events(*seq) for v in s.on_message(*e)] == []
    assert s.on_close() == [] and s.completed and s.failed == 1
    assert [n.message for n in s.notes] == [3] and "synced 1" in s.notes[0].detail


# ------------------------------------------------------------------ download_sequence


def test_download_must_start_at_0():
    got = check_data(events(("c2s", m("DownLoadCaramer", "1"))), closed=False)
    assert rules_of(got) == [("download_sequence", 0)]
    assert "DownLoadCaramer 1" in got[0].detail and "expected 0" in got[0].detail


def test_download_must_echo_previous_current():
    seq = download(3)
    seq[2] = ("c2s", m("DownLoadCaramer", "2"))  # the previous answer said current 1
    seq[3] = ("s2c", m("DownloadSucess", "DEMO0003|1234|true|3|3"))
    seq = seq[:4]
    got = check_data(events(*seq))
    assert rules_of(got) == [("download_sequence", 2)]  # the server's answer fits the request
    assert "DownLoadCaramer 2" in got[0].detail and "current 1" in got[0].detail


def test_download_answer_must_be_the_next_camera():
    seq = download(3)
    seq[3] = ("s2c", m("DownloadSucess", "DEMO0003|1234|true|3|3"))  # skipped camera 2
    got = check_data(events(*seq[:4]), closed=False)
    assert rules_of(got) == [("download_sequence", 3)]
    assert "current 3" in got[0].detail and "expected 2" in got[0].detail
    assert "DownLoadCaramer 1" in got[0].detail


def test_download_total_must_not_change():
    seq = download(3)
    seq[3] = ("s2c", m("DownloadSucess", "DEMO0002|1234|true|2|4"))
    got = check_data(events(*seq[:4]), closed=False)
    assert rules_of(got) == [("download_sequence", 3)]
    assert "from 3 to 4" in got[0].detail


def test_clean_download_and_repeated_request():
    assert check_data(events(*download(3))) == []
    seq = download(2)
    seq.insert(1, ("c2s", m("DownLoadCaramer", "0")))  # a retry before the answer
    s = DataSession()
    assert s.on_message(*events(*seq)[0]) == [] and s.on_message(*events(*seq)[1]) == []
    assert len(s.pending) == 2
    assert [v for e in events(*seq)[2:] for v in s.on_message(*e)] == []  # one answer serves both
    assert s.kind == "download" and s.synced == 2 and s.expected_downloaded == 2


def test_capture_started_mid_transfer_skips_start_checks():
    seq = events(("c2s", m("DownLoadCaramer", "4")),
                 ("s2c", m("DownloadSucess", "DEMO0005|1234|null|5|5")))
    assert check_data(seq, start_seen=False, announced=None) == []
    useq = events(("c2s", m("UploadCaramer", "A|pw|7|8")), ("s2c", m("UploadSucess", "A|true|7|8")),
                  ("c2s", m("UploadCaramer", "B|pw|8|8")), ("s2c", m("UploadSucess", "B|true|8|8")))
    assert check_data(useq, start_seen=False) == []


# ------------------------------------------------------------------ unannounced_data_port


def test_unannounced_data_port_attached_to_first_message():
    seq = events(*download(1), start=100)
    seq = [(i + 10, d, msg, ts) for i, d, msg, ts in seq]
    got = check_data(seq, announced=False, port=9005)
    assert rules_of(got) == [("unannounced_data_port", 10)]
    assert "9005" in got[0].detail


def test_announced_or_unknown_data_port_is_fine():
    assert check_data(events(*download(1)), announced=True) == []
    assert check_data(events(*download(1)), announced=None) == []
    assert check_data([], announced=False) == []  # no message to attach it to


def test_data_port_announced_follows_announcements_and_empty_answers():
    anns = [Announcement(9001, 3, 10), Announcement(None, 7, 20), Announcement(9002, 9, 30)]
    assert data_port_announced(9001, 15, anns)
    assert not data_port_announced(9001, 5, anns)  # before any announcement
    assert not data_port_announced(9001, 25, anns)  # after an empty one
    assert not data_port_announced(9003, 35, anns)
    assert data_port_announced(9002, 30, anns)
    s = MainSession()
    for e in events(*LOGIN, ("c2s", m("CreatDataSocket", "demo|demo")),
                    ("s2c", m("ReturnDataSocketPort", ""))):
        s.on_message(*e)
    assert s.announced_ports == [Announcement(None, 3, 3 * S)]
    assert not s.port_announced(9001, 10 * S)


# ------------------------------------------------------------------ incomplete_sync


def test_incomplete_upload_attached_to_last_message():
    seq = events(*upload(3)[:4], ("s2c", unknown("SocketCommand.Foo")))
    got = check_data(seq)
    assert rules_of(got) == [("incomplete_sync", 4)]
    assert "2 of 3" in got[0].detail


def test_incomplete_when_last_request_unanswered():
    got = check_data(events(*upload(2)[:3]))
    assert rules_of(got) == [("incomplete_sync", 2)]
    assert "1 of 2" in got[0].detail and "message 2" in got[0].detail
    got = check_data(events(("c2s", m("DownLoadCaramer", "0"))))
    assert rules_of(got) == [("incomplete_sync", 0)]
    assert "total was known" in got[0].detail


def test_incomplete_download_uses_caller_last_index():
    s = DataSession()
    for e in events(*download(3)[:2]):
        s.on_message(*e)
    got = s.on_close(42, 99)
    assert rules_of(got) == [("incomplete_sync", 42)] and "1 of 3" in got[0].detail
    assert s.on_close() == []  # closing twice reports nothing new


def test_not_incomplete_cases():
    assert check_data(events(*upload(3))) == []
    assert check_data([]) == []
    assert check_data(events(("c2s", m("DownLoadCaramer", "0")),
                             ("s2c", m("DownloadFail", "没有绑定摄像头")))) == []
    assert check_data(events(*upload(3)[:4]), closed=False) == []  # never seen closing
    assert check_data(events(("c2s", unknown()))) == []  # no transfer on it


# ------------------------------------------------------------------ malformed_params


def test_malformed_params_breach_without_cascade():
    seq = upload(3)
    seq[2] = ("c2s", m("UploadCaramer", "CAM00002|1234|x|3"))
    seq[3] = ("s2c", m("UploadSucess", "CAM00002|maybe|2|3"))
    got = check_data(events(*seq))
    assert rules_of(got) == [("malformed_params", 2), ("malformed_params", 3)]
    assert "'x'" in got[0].detail and "current" in got[0].detail
    assert "'maybe'" in got[1].detail


@pytest.mark.parametrize(
    ("name", "params", "needle"),
    [
        ("UploadCaramer", "A|pw|1", "got 3"),
        ("ReturnDataSocketPort", "70000", "70000"),
        ("ReturnDataSocketPort", "0", "0"),
        ("LoginOk", "-1|t|ip", "'-1'"),
        ("ReturnCaramerOnlineStatus", "A;yes", "'yes'"),
        ("DownLoadCaramer", "one", "'one'"),
    ],
)
def test_malformed_params_each_kind(name, params, needle):
    spec = BY_NAME[name]
    session = MainSession(start_seen=False) if spec.channel == "main" else DataSession()
    got = session.on_message(7, spec.direction.wire, m(name, params), 0)
    assert rules_of(got) == [("malformed_params", 7)]
    assert needle in got[0].detail


def test_well_formed_edge_values_are_not_malformed():
    seq = events(*LOGIN, ("c2s", m("CreatDataSocket", "demo|demo")),
                 ("s2c", m("ReturnDataSocketPort", "")),  # empty: no free port
                 ("c2s", m("CheckCaramerOnlineStatus", "A;B")),
                 ("s2c", m("ReturnCaramerOnlineStatus", "A;NULL|B;True|")),
                 ("s2c", m("UploadFail", "A|reason|with|bars|1|1")))  # wrong channel: a note
    s = MainSession()
    assert [v for e in seq for v in s.on_message(*e)] == []
    assert [n.message for n in s.notes] == [6]


def test_frame_level_errors_are_not_malformed_params():
    garbage = build_message(None, "", "", b"\x00\x01", "empty frame (length 0)")
    enc = m("Heartbeat", "", error="invalid utf-8 at byte 3")
    s = MainSession(start_seen=False)
    assert s.on_message(0, "c2s", garbage, 0) == []
    assert s.on_message(1, "c2s", enc, 1) == []
    assert [n.message for n in s.notes] == [0, 1]


# ------------------------------------------------------------------ heartbeat_gap


def test_heartbeat_gap_attached_to_first_client_message_after_silence():
    seq = [
        (0, "c2s", m("Login", "demo|demo"), 0),
        (1, "s2c", m("LoginOk", "0|t|ip"), 1 * S),
        (2, "c2s", m("Heartbeat"), 30 * S),
        (3, "s2c", m("PrushCaramerOnlineStatus", "A:true"), 60 * S),  # server talk: no reset
        (4, "s2c", m("PrushCaramerAlarmInfo", "A:motion"), 124 * S),
        (5, "c2s", m("Heartbeat"), 125 * S),
    ]
    got = check_main(seq)
    assert rules_of(got) == [("heartbeat_gap", 5)]
    assert "95 s" in got[0].detail and "90 s" in got[0].detail and "message 2" in got[0].detail


def test_heartbeat_within_timeout_is_fine():
    seq = [(k, "c2s", m("Heartbeat"), k * 90 * S) for k in range(4)]  # exactly 90 s apart
    assert check_main(seq) == []
    assert check_main([(0, "c2s", m("Heartbeat"), 0), (1, "c2s", m("Heartbeat"), 10**12)],
                      heartbeat_timeout_ns=None) == []
    # silence at the end is not reported: no later message to attach it to
    assert check_main([(0, "c2s", m("Heartbeat"), 0), (1, "s2c", m("LoginOk", "0|t|i"), 10**12)],
                      start_seen=False) == []


def test_heartbeat_gap_from_connection_opening():
    got = check_main([(0, "c2s", m("Login", "a|b"), 100 * S)], opened_ns=0)
    assert rules_of(got) == [("heartbeat_gap", 0)]
    assert "100 s" in got[0].detail and "opened" in got[0].detail
    assert check_main([(0, "c2s", m("Login", "a|b"), 100 * S)]) == []


# ------------------------------------------------------------------ channels


def test_wrong_channel_is_a_note_and_drives_nothing():
    s = MainSession(start_seen=False)
    assert s.on_message(0, "c2s", m("UploadCaramer", "A|pw|1|1"), 0) == []
    assert s.state == "logged_in" and "data command" in s.notes[0].detail
    d = DataSession()
    ids = ";".join(str(k) for k in range(25))
    got = d.on_message(0, "c2s", m("CheckCaramerOnlineStatus", ids), 0)
    assert rules_of(got) == [("check_too_many_ids", 0)]  # message-level rules still apply
    assert d.state == "idle" and d.kind is None and "main command" in d.notes[0].detail


def test_other_transfer_kind_on_a_data_connection_is_a_note():
    s = DataSession()
    for e in events(*upload(1)):
        s.on_message(*e)
    assert s.on_message(2, "c2s", m("DownLoadCaramer", "0"), 0) == []
    assert s.kind == "upload" and s.notes[-1].message == 2


# ------------------------------------------------------------------ whole conversations


def _wire(direction: str, command: str, params: str) -> tuple[str, Message]:
    """Through the real codec: encode, then decode."""
    (msg,) = Decoder("lp32le").feed(encode(command, params, "lp32le"))
    return direction, msg


def test_full_clean_upload_conversation_through_the_codec():
    main = MainSession()
    conv = [
        _wire("c2s", "SocketCommand.LoginCommand.Login", "demo|demo"),
        _wire("s2c", "SocketCommand.LoginCommand.LoginOk", "1|2024-05-01 08:00:00|10.0.0.9"),
        _wire("c2s", "SocketCommand.NormalCommand.Heartbeat", ""),
        _wire("c2s", "SocketCommand.NormalCommand.CreatDataSocket", "demo|demo"),
        _wire("s2c", "SocketCommand.NormalCommand.ReturnDataSocketPort", "9001"),
    ]
    assert [v for e in events(*conv, step=30 * S) for v in main.on_message(*e)] == []
    assert main.port_announced(9001, 200 * S)
    data = DataSession(announced=main.port_announced(9001, 200 * S))
    assert data.expected_current == 1 and data.allows("c2s", "UploadCaramer")
    transfer = [
        _wire("c2s", "UploadCaramer", "CAM00001|1234|1|3"),
        _wire("s2c", "SocketCommand.CaramCommand. UploadSucess", "CAM00001|true|1|3"),
        _wire("c2s", "UploadCaramer", "CAM00002|9999|2|3"),
        _wire("s2c", "UploadFail", "CAM00002|ID和密码不匹配|2|3"),
        _wire("c2s", "UploadCaramer", "CAM00003|1234|3|3"),
    ]
    got = [v for e in events(*transfer, start=200 * S) for v in data.on_message(*e)]
    assert got == [] and not data.completed and data.expected_current == 4
    assert data.incomplete and len(data.pending) == 1
    assert data.on_message(9, "s2c", _wire("s2c", "UploadSucess", "CAM00003|null|3|3")[1],
                           210 * S) == []
    assert data.on_close() == []
    assert (data.kind, data.total, data.synced, data.completed, data.failed) == (
        "upload", 3, 3, True, 1)
    assert main.on_close() == [] and main.closed


def test_full_clean_download_conversation_through_the_codec():
    conv = [
        *[_wire(d, msg.command, msg.params) for d, msg in LOGIN],
        _wire("c2s", "CheckCaramerOnlineStatus", "DEMO0001;DEMO0002"),
        _wire("s2c", "ReturnCaramerOnlineStatus", "DEMO0001;true|DEMO0002;null"),
        _wire("s2c", "PrushCaramerOnlineStatus", "DEMO0002:false"),
        _wire("c2s", "CreatDataSocket", "demo|demo"),
        _wire("s2c", "ReturnDataSocketPort", "9002"),
    ]
    assert check_main(events(*conv, step=20 * S)) == []
    transfer = [_wire(d, msg.command, msg.params) for d, msg in download(3)]
    s = DataSession()
    assert [v for e in events(*transfer) for v in s.on_message(*e)] == []
    assert s.completed and s.state == "downloaded" and s.on_close() == []


@given(n=st.integers(1, 30), fails=st.sets(st.integers(1, 30)))
def test_any_clean_upload_has_no_violation(n, fails):
    assert check_data(events(*upload(n, fail=frozenset(fails)))) == []


# ------------------------------------------------------------------ robustness

_NAMES = [c.name for c in COMMANDS]
_SAMPLES = {
    "Login": "demo|demo", "LoginOk": "2|t|ip", "LoginError": "bad", "CreatDataSocket": "a|b",
    "ReturnDataSocketPort": "9001", "UploadCaramer": "A|pw|1|2", "UploadSucess": "A|true|1|2",
    "UploadFail": "A|r|1|2", "DownLoadCaramer": "0", "DownloadSucess": "A|pw|null|1|2",
    "DownloadFail": "none", "CheckCaramerOnlineStatus": "A;B",
    "ReturnCaramerOnlineStatus": "A;true", "PrushCaramerOnlineStatus": "A:false",
    "PrushCaramerAlarmInfo": "A:fire", "Heartbeat": "",
}
_text = st.text(alphabet="0123456789|;:ABtruefalsnl-x 中", max_size=24)


@st.composite
def _message(draw) -> Message:
    kind = draw(st.sampled_from(["known", "known", "known", "unknown", "garbage"]))
    if kind == "garbage":
        return build_message(None, "", "", b"\xff", "garbage frame")
    if kind == "unknown":
        return build_message(None, "SocketCommand.X.Unknown", draw(_text))
    name = draw(st.sampled_from(_NAMES))
    params = draw(st.one_of(st.just(_SAMPLES[name]), _text,
                            st.integers(0, 40).map(str),
                            st.tuples(st.text("AB", max_size=3), st.integers(0, 5),
                                      st.integers(0, 5)).map(lambda t: f"{t[0]}|pw|{t[1]}|{t[2]}")))
    error = draw(st.sampled_from([None, None, "invalid utf-8 at byte 1"]))
    return m(name, params, error)


@settings(max_examples=300, deadline=None)
@given(
    seq=st.lists(st.tuples(st.sampled_from(["c2s", "s2c"]), _message(),
                           st.integers(-5 * S, 200 * S)), max_size=40),
    start_seen=st.booleans(),
    announced=st.sampled_from([True, False, None]),
)
def test_random_sequences_never_raise(seq, start_seen, announced):
    sessions = [MainSession(start_seen=start_seen, opened_ns=0),
                DataSession(announced=announced, start_seen=start_seen)]
    for s in sessions:
        ts = 0
        for i, (direction, msg, dt) in enumerate(seq):
            ts += dt
            for v in s.on_message(i, direction, msg, ts):
                assert v.rule in RULES and v.message == i and v.detail
        closing = s.on_close(None, ts)
        assert all(v.rule == "incomplete_sync" and v.message == len(seq) - 1 for v in closing)
        assert isinstance(s.state, str)


def test_empty_port_answer_on_another_main_connection_clears_nothing_here():
    # Two main connections of one client IP (NAT): bob's "no free port" does not
    # withdraw the port announced to alice.
    anns = [Announcement(9001, 3, 10, conn=0), Announcement(None, 7, 20, conn=1)]
    assert data_port_announced(9001, 25, anns)
    anns.append(Announcement(None, 9, 30, conn=0))
    assert not data_port_announced(9001, 35, anns)

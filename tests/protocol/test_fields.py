"""Parameter strings <-> typed fields: the reference parser and the formatter."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import DIALECTS, SPECS, expected_fields, field_values, messages

from camprotool.protocol import BY_NAME, LocalProtocolError, format_params, parse_params
from camprotool.protocol.catalogue import Kind, Layout
from camprotool.protocol.fields import parse_count, parse_port, parse_status

LP = DIALECTS[2]  # lp32le: no line-break restriction, utf-8


# ------------------------------------------------------------------ properties


@settings(max_examples=150, deadline=None)
@given(spec=st.sampled_from(SPECS), params=st.text(max_size=60))
def test_parse_params_never_raises(spec, params):
    values, error = parse_params(spec, params)
    assert set(values) == set(spec.field_names)
    assert error is None or isinstance(error, str)


@settings(max_examples=150, deadline=None)
@given(spec=st.sampled_from(SPECS), params=st.lists(
    st.sampled_from(["", "|", ";", ":", "true", "NULL", "x", "1", "0", "65536", "١", "+1",
                     "9" * 25, "中文", " "]), max_size=8).map("".join))
def test_parse_params_never_raises_on_separator_soup(spec, params):
    values, _ = parse_params(spec, params)
    assert set(values) == set(spec.field_names)


@pytest.mark.parametrize("dialect", [DIALECTS[0], DIALECTS[3]], ids=str)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_format_then_parse_is_identity(dialect, data):
    spec, values = data.draw(messages(dialect))
    params = format_params(spec, values)
    assert parse_params(spec, params) == (expected_fields(values), None)


def _bad_text(kind: Kind):
    if kind is Kind.COUNT:
        return st.sampled_from(["", "x", "-1", "+1", "1_0", "1.0", " 1", "١", "二", "9" * 20])
    if kind is Kind.PORT:
        return st.sampled_from(["0", "65536", "-1", "x", "80 ", "١", "99999999999999999999"])
    return st.sampled_from(["", "yes", "1", "on", "nul", "true ", "真"])


def _good_text(kind: Kind, value) -> str:
    if kind is Kind.STATUS:
        return {True: "true", False: "false", None: "null"}[value]
    return "" if value is None else str(value)


PIPE_TYPED = [s for s in SPECS if s.layout is Layout.PIPE
              and any(f.kind in (Kind.COUNT, Kind.STATUS, Kind.PORT) for f in s.fields)]


@pytest.mark.parametrize("spec", PIPE_TYPED, ids=lambda s: s.name)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_one_bad_typed_field_is_named_and_the_others_keep_their_values(spec, data):
    values = data.draw(field_values(spec, LP))
    parts = [_good_text(f.kind, values[f.name]) for f in spec.fields]
    typed = [i for i, f in enumerate(spec.fields) if f.kind in (Kind.COUNT, Kind.STATUS, Kind.PORT)]
    k = data.draw(st.sampled_from(typed))
    bad = spec.fields[k]
    parts[k] = data.draw(_bad_text(bad.kind))
    got, error = parse_params(spec, "|".join(parts))
    assert error is not None and error.startswith(f"{bad.name}: ")
    assert got[bad.name] is None
    assert {n: v for n, v in got.items() if n != bad.name} == {
        n: v for n, v in values.items() if n != bad.name}


# ------------------------------------------------------------------ leniencies


def test_status_words_in_any_letter_case():
    for text, value in [("TRUE", True), ("False", False), ("NuLl", None)]:
        assert parse_status(text) is value
    assert parse_params(BY_NAME["PrushCaramerOnlineStatus"], "c:TRUE") == (
        {"camera_id": "c", "online": True}, None)


def test_trailing_separators_are_tolerated():
    assert parse_params(BY_NAME["CheckCaramerOnlineStatus"], "a;b;") == ({"ids": ("a", "b")}, None)
    assert parse_params(BY_NAME["ReturnCaramerOnlineStatus"], "a;true|b;null|") == (
        {"statuses": (("a", True), ("b", None))}, None)


def test_a_reason_may_contain_pipes():
    assert parse_params(BY_NAME["UploadFail"], "c1|已绑定|已满|3|5") == (
        {"camera_id": "c1", "reason": "已绑定|已满", "synced": 3, "total": 5}, None)
    assert parse_params(BY_NAME["LoginError"], "用户名或者密码错误!|x") == (
        {"reason": "用户名或者密码错误!|x"}, None)
    assert parse_params(BY_NAME["DownloadFail"], "") == ({"reason": ""}, None)


def test_empty_port_means_no_free_port():
    spec = BY_NAME["ReturnDataSocketPort"]
    assert parse_params(spec, "") == ({"port": None}, None)
    assert parse_params(spec, "6001") == ({"port": 6001}, None)
    assert format_params(spec, {}) == format_params(spec, {"port": None}) == ""


def test_colon_pair_splits_at_the_first_colon():
    assert parse_params(BY_NAME["PrushCaramerAlarmInfo"], "c1:motion:zone 2|x") == (
        {"camera_id": "c1", "alarm_type": "motion:zone 2|x"}, None)


def test_heartbeat_takes_no_fields():
    assert parse_params(BY_NAME["Heartbeat"], "") == ({}, None)
    assert format_params(BY_NAME["Heartbeat"], {}) == ""


# ------------------------------------------------------------------ strict parts


@pytest.mark.parametrize("text", ["", "+1", "-1", " 1", "1 ", "1_0", "١", "²", "0x1", "1e3"])
def test_parse_count_takes_ascii_digits_only(text):
    with pytest.raises(ValueError, match="not a non-negative integer"):
        parse_count(text)


def test_parse_count_limits():
    assert parse_count("0") == 0
    assert parse_count(str((1 << 63) - 1)) == (1 << 63) - 1
    with pytest.raises(ValueError, match="too large"):
        parse_count(str(1 << 63))
    with pytest.raises(ValueError):
        parse_count("9" * 5000)  # beyond int()'s digit limit: still a ValueError


@pytest.mark.parametrize(("text", "message"), [
    ("0", "outside 1-65535"), ("65536", "outside 1-65535"), ("x", "not a port number"),
    ("-1", "not a port number"), ("٨٠", "is not a"),
])
def test_parse_port_refusals(text, message):
    with pytest.raises(ValueError, match=message):
        parse_port(text)


@pytest.mark.parametrize(("spec", "params", "error"), [
    ("Login", "a", "expected 2 fields (user|password), got 1"),
    ("Login", "a|b|c", "expected 2 fields (user|password), got 3"),
    ("UploadCaramer", "a|b|1",
     "expected 4 fields (camera_id|camera_password|current|total), got 3"),
    ("UploadSucess", "a|yes|1|2", "online: 'yes' is not true, false or null"),
    ("UploadSucess", "a|true|x|y", "synced: 'x' is not a non-negative integer; total: 'y'"),
    ("ReturnCaramerOnlineStatus", "", "statuses: no id;status pair"),
    ("ReturnCaramerOnlineStatus", "a;b;true", "statuses: item 1 'a;b;true' is not id;status"),
    ("PrushCaramerOnlineStatus", "c1", "expected camera_id:online, got 'c1'"),
    ("CheckCaramerOnlineStatus", "", "ids: no camera id"),
])
def test_parse_errors_name_the_field(spec, params, error):
    _, got = parse_params(BY_NAME[spec], params)
    assert got is not None and got.startswith(error)


# ------------------------------------------------------------------ formatter refusals


@pytest.mark.parametrize(("spec", "values", "message"), [
    ("Login", {"user": "a"}, "Login: missing field 'password'"),
    ("Login", {"user": "a", "password": "b", "pin": 1}, "Login has no field 'pin'"),
    ("Login", {"user": "a|b", "password": "p"}, "Login.user: 'a|b' contains '|'"),
    ("LoginOk", {"camera_count": -1, "last_login_time": "", "last_login_ip": ""},
     "LoginOk.camera_count: expected a non-negative int"),
    ("LoginOk", {"camera_count": True, "last_login_time": "", "last_login_ip": ""},
     "LoginOk.camera_count: expected a non-negative int"),
    ("LoginOk", {"camera_count": "3", "last_login_time": "", "last_login_ip": ""},
     "LoginOk.camera_count: expected a non-negative int"),
    ("DownLoadCaramer", {"downloaded": 1 << 63}, "DownLoadCaramer.downloaded: 9223372036854775808 "
     "is too large"),
    ("ReturnDataSocketPort", {"port": 0}, "ReturnDataSocketPort.port: 0 is not a port"),
    ("ReturnDataSocketPort", {"port": 65536}, "ReturnDataSocketPort.port: 65536 is not a port"),
    ("ReturnDataSocketPort", {"port": True}, "ReturnDataSocketPort.port: True is not a port"),
    ("UploadCaramer", {"camera_id": "a:b", "camera_password": "", "current": 1, "total": 1},
     "UploadCaramer.camera_id: 'a:b' contains ':'"),
    ("CheckCaramerOnlineStatus", {"ids": []}, "CheckCaramerOnlineStatus: no camera id"),
    ("CheckCaramerOnlineStatus", {"ids": ["a", ""]},
     "CheckCaramerOnlineStatus.ids: an empty camera id cannot be carried"),
    ("CheckCaramerOnlineStatus", {"ids": ["a;b"]}, "CheckCaramerOnlineStatus.ids: 'a;b'"),
    ("CheckCaramerOnlineStatus", {"ids": [str(i) for i in range(21)]},
     "CheckCaramerOnlineStatus: 21 ids, the protocol allows at most 20"),
    ("ReturnCaramerOnlineStatus", {"statuses": []},
     "ReturnCaramerOnlineStatus.statuses: no id;status pair"),
    ("ReturnCaramerOnlineStatus", {"statuses": [("a|b", True)]},
     "ReturnCaramerOnlineStatus.statuses: 'a|b' contains '|'"),
    ("PrushCaramerOnlineStatus", {"camera_id": "a;b", "online": None},
     "PrushCaramerOnlineStatus.camera_id: 'a;b' contains ';'"),
])
def test_format_params_refuses_what_cannot_be_carried(spec, values, message):
    with pytest.raises(LocalProtocolError) as exc:
        format_params(BY_NAME[spec], values)
    assert str(exc.value).startswith(message)


def test_format_params_status_spellings():
    spec = BY_NAME["PrushCaramerOnlineStatus"]
    assert format_params(spec, {"camera_id": "c", "online": "TRUE"}) == "c:true"
    with pytest.raises(LocalProtocolError,
                       match=r"PrushCaramerOnlineStatus\.online: 'maybe' is not true, false"):
        format_params(spec, {"camera_id": "c", "online": "maybe"})


def test_format_params_accepts_a_single_id_as_a_string():
    assert format_params(BY_NAME["CheckCaramerOnlineStatus"], {"ids": "c1"}) == "c1"


def test_empty_fields_survive_where_the_layout_carries_them():
    for spec, values in [
        ("Login", {"user": "", "password": ""}),
        ("UploadFail", {"camera_id": "", "reason": "", "synced": 0, "total": 0}),
        ("ReturnCaramerOnlineStatus", {"statuses": (("", None),)}),
        ("PrushCaramerAlarmInfo", {"camera_id": "", "alarm_type": ""}),
    ]:
        assert parse_params(BY_NAME[spec], format_params(BY_NAME[spec], values)) == (values, None)

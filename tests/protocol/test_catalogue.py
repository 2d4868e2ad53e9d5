"""The command catalogue: names as the source spells them, lookups, the heartbeat."""

from __future__ import annotations

import dataclasses

import pytest
from strategies import DIALECTS

from camprotool.protocol import (
    BY_NAME,
    COMMANDS,
    FIELD_NAMES,
    MAX_STATUS_IDS,
    MESSAGE_TYPES,
    SECRET_FIELDS,
    Channel,
    Decoder,
    Dialect,
    Direction,
    UnknownMessage,
    decode_all,
    encode,
    encode_message,
    spec_for,
)
from camprotool.protocol.catalogue import HEARTBEAT, Kind, Layout

# PROTOCOL.md section 2, typos included: what the real system puts on the wire.
SOURCE = [
    (1, "SocketCommand.LoginCommand.Login", "c2s", "user|password"),
    (2, "SocketCommand.LoginCommand.LoginOk", "s2c", "camera_count|last_login_time|last_login_ip"),
    (3, "SocketCommand.LoginCommand.LoginError", "s2c", "reason"),
    (4, "SocketCommand.NormalCommand.CreatDataSocket", "c2s", "user|password"),
    (5, "SocketCommand.NormalCommand.ReturnDataSocketPort", "s2c", "port"),
    (6, "SocketCommand.CaramCommand.UploadCaramer", "c2s",
     "camera_id|camera_password|current|total"),
    (7, "SocketCommand.CaramCommand.UploadSucess", "s2c", "camera_id|online|synced|total"),
    (8, "SocketCommand.CaramCommand.UploadFail", "s2c", "camera_id|reason|synced|total"),
    (9, "SocketCommand.CaramCommand.DownLoadCaramer", "c2s", "downloaded"),
    (10, "SocketCommand.CaramCommand.DownloadSucess", "s2c",
     "camera_id|camera_password|online|current|total"),
    (11, "SocketCommand.CaramCommand.DownloadFail", "s2c", "reason"),
    (12, "SocketCommand.CaramCommand.CheckCaramerOnlineStatus", "c2s", "ids"),
    (13, "SocketCommand.CaramCommand.ReturnCaramerOnlineStatus", "s2c", "statuses"),
    (14, "SocketCommand.CaramCommand.PrushCaramerOnlineStatus", "push", "camera_id|online"),
    (15, "SocketCommand.CaramCommand.PrushCaramerAlarmInfo", "push", "camera_id|alarm_type"),
]
DATA_CHANNEL = {"UploadCaramer", "UploadSucess", "UploadFail", "DownLoadCaramer",
                "DownloadSucess", "DownloadFail"}


def test_fifteen_commands_and_the_heartbeat():
    assert len(COMMANDS) == 16
    assert sorted(c.number for c in COMMANDS) == list(range(16))
    assert [c.name for c in COMMANDS if c.number == 0] == [HEARTBEAT]
    assert len(BY_NAME) == 16


@pytest.mark.parametrize(("number", "full_name", "direction", "fields"), SOURCE,
                         ids=[s[1].rpartition(".")[2] for s in SOURCE])
def test_commands_as_the_source_spells_them(number, full_name, direction, fields):
    short = full_name.rpartition(".")[2]
    spec = BY_NAME[short]
    assert spec.number == number
    assert spec.full_name == full_name
    assert spec.direction is Direction(direction)
    assert spec.channel is (Channel.DATA if short in DATA_CHANNEL else Channel.MAIN)
    assert "|".join(spec.field_names) == fields
    assert spec.doc


def test_typos_are_kept_not_corrected():
    names = {c.name for c in COMMANDS}
    assert {"UploadCaramer", "UploadSucess", "PrushCaramerAlarmInfo", "PrushCaramerOnlineStatus",
            "CreatDataSocket", "DownLoadCaramer", "DownloadSucess",
            "CheckCaramerOnlineStatus", "ReturnCaramerOnlineStatus"} <= names
    for corrected in ["UploadCamera", "UploadSuccess", "PushCameraAlarmInfo", "CreateDataSocket",
                      "DownloadCaramer", "DownLoadSucess", "DownloadSuccess"]:
        assert corrected not in names
        assert spec_for(corrected) is None
    assert {c.group for c in COMMANDS} == {"LoginCommand", "NormalCommand", "CaramCommand"}


def test_layouts_and_kinds():
    layouts = {c.name: c.layout for c in COMMANDS}
    assert layouts["CheckCaramerOnlineStatus"] is Layout.IDS
    assert layouts["ReturnCaramerOnlineStatus"] is Layout.STATUS_LIST
    assert layouts["PrushCaramerOnlineStatus"] is layouts["PrushCaramerAlarmInfo"] is \
        Layout.COLON_PAIR
    assert {n for n, lay in layouts.items() if lay is Layout.PIPE} == {
        c.name for c in COMMANDS} - {"CheckCaramerOnlineStatus", "ReturnCaramerOnlineStatus",
                                      "PrushCaramerOnlineStatus", "PrushCaramerAlarmInfo"}
    kinds = {(c.name, f.name): f.kind for c in COMMANDS for f in c.fields}
    assert kinds[("ReturnDataSocketPort", "port")] is Kind.PORT
    assert kinds[("UploadSucess", "online")] is Kind.STATUS
    assert kinds[("DownloadSucess", "current")] is Kind.COUNT
    assert kinds[("UploadCaramer", "camera_id")] is Kind.CAMERA_ID
    assert {"password", "camera_password"} == SECRET_FIELDS
    assert MAX_STATUS_IDS == 20


def test_field_names_are_every_field_once_in_catalogue_order():
    seen = [f.name for c in COMMANDS for f in c.fields]
    assert list(FIELD_NAMES) == list(dict.fromkeys(seen))
    assert FIELD_NAMES[:2] == ("user", "password")


def test_one_frozen_message_type_per_command():
    assert set(MESSAGE_TYPES) == set(BY_NAME)
    for name, cls in MESSAGE_TYPES.items():
        assert cls.__name__ == name
        assert cls.SPEC is BY_NAME[name]
        msg = cls(command=name)
        assert set(msg.fields) == set(BY_NAME[name].field_names)
        assert msg.known and msg.spec is BY_NAME[name]
        with pytest.raises(dataclasses.FrozenInstanceError):
            msg.command = "x"


def test_a_message_built_directly_encodes_its_typed_fields():
    """Regression: only build_message set ``spec``, so a message made by hand had
    no fields and encode_message silently wrote empty parameters."""
    msg = MESSAGE_TYPES["Login"](command="Login", user="demo", password="密码")
    assert msg.fields == {"user": "demo", "password": "密码"}
    wire = encode_message(msg)
    assert wire == "SocketCommand.LoginCommand.Login|demo|密码\r\n".encode()
    [back] = decode_all(wire)
    assert back.fields == msg.fields


def test_direction_on_the_wire():
    assert Direction.PUSH.wire == Direction.S2C.wire == "s2c"
    assert Direction.C2S.wire == "c2s"


# ------------------------------------------------------------------ spec_for


@pytest.mark.parametrize("spec", COMMANDS, ids=lambda s: s.name)
def test_spec_for_full_short_and_spaced_names(spec):
    full = spec.full_name
    assert spec_for(full) is spec
    assert spec_for(spec.name) is spec
    assert spec_for(full.replace(".", ". ")) is spec
    assert spec_for(full.replace(".", " . ")) is spec
    assert spec_for(f"  {full.replace('.', chr(9) + '.')}\t") is spec
    assert spec_for(f" {spec.name} ") is spec


def test_spec_for_the_source_spelling():
    assert spec_for("SocketCommand.CaramCommand. UploadSucess") is BY_NAME["UploadSucess"]


@pytest.mark.parametrize("name", [
    "", "SocketCommand", "SocketCommand.LoginCommand", "SocketCommand.CaramCommand.Login",
    "Other.LoginCommand.Login", "LoginCommand.Login", "SocketCommand.LoginCommand.Login.X",
    "login", "Log in", "SocketCommand.LoginCommand.Log in",
])
def test_spec_for_refuses_other_names(name):
    assert spec_for(name) is None


# ------------------------------------------------------------------ heartbeat

PING = "SocketCommand.NormalCommand.KeepAlive"


def test_heartbeat_default_name():
    hb = BY_NAME[HEARTBEAT]
    assert hb.full_name == Dialect().heartbeat_name == "SocketCommand.NormalCommand.Heartbeat"
    assert hb.fields == ()
    assert (hb.direction, hb.channel) == (Direction.C2S, Channel.MAIN)
    assert spec_for("Heartbeat") is hb


def test_heartbeat_name_comes_from_the_dialect():
    hb = BY_NAME[HEARTBEAT]
    assert spec_for(PING) is None
    assert spec_for(PING, PING) is hb
    assert spec_for("KeepAlive", PING) is hb
    assert spec_for("SocketCommand.NormalCommand. KeepAlive", PING) is hb
    assert spec_for("SocketCommand.NormalCommand.Heartbeat", PING) is hb  # ours still works
    assert spec_for("Ping", "Ping") is hb


@pytest.mark.parametrize("base", DIALECTS, ids=str)
def test_heartbeat_name_on_the_wire(base):
    dialect = Dialect.parse(base, heartbeat_name=PING)
    wire = encode("Heartbeat", {}, dialect)
    assert wire == encode(BY_NAME[HEARTBEAT], "", dialect)
    body = wire[:-2] if dialect.is_line else wire[4:]
    assert body == PING.encode()
    [msg] = Decoder(dialect).feed(wire)
    assert (msg.command, msg.error, msg.fields) == (HEARTBEAT, None, {})
    [other] = decode_all(wire, base)  # a reader that does not know the name
    assert (type(other), other.command, other.error) == (UnknownMessage, PING, None)

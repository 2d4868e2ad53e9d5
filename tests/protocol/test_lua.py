"""The generated Wireshark Lua dissector: derived from the catalogue, and checked against tshark.

The end-to-end tests run the real tshark with the generated plugin and compare,
message by message, what Wireshark shows (PDML: one ``camproto`` layer per
message) with what camprotool itself decodes from the same capture
(``read_capture(...).messages``): the frame, the command, every typed field the
catalogue gives that command, and whether the message had an error.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

import camprotool
from camprotool.capture.writer import PcapngWriter
from camprotool.protocol import catalogue
from camprotool.protocol.catalogue import COMMANDS, FIELD_NAMES, Kind, Layout
from camprotool.protocol.codec import encode
from camprotool.protocol.lua import (
    dissector_fields,
    fields_markdown,
    format_ports,
    lua_string,
    parse_ports,
    render_dissector,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "captures" / "sample.pcapng"
DOWNLOAD = ROOT / "captures" / "download.pcapng"
TSHARK = shutil.which("tshark")

needs_tshark = pytest.mark.skipif(
    TSHARK is None, reason="tshark is not installed (`make sysdeps` installs it)")


# ------------------------------------------------------------------ the text


def test_every_catalogue_command_and_field_reaches_the_dissector():
    text = render_dissector()
    for spec in COMMANDS:
        assert f'name = "{spec.name}"' in text, spec.name
        assert f'full = "{spec.full_name}"' in text, spec.full_name
        assert f'layout = "{spec.layout.value}"' in text
        for field in spec.fields:
            assert f'{{ name = "{field.name}", kind = "{field.kind.value}" }},' in text
    for name in FIELD_NAMES:
        assert f'abbr = "camproto.{name}"' in text, name
    for fixed in ("command", "full_name", "params", "direction_expected", "channel"):
        assert f'abbr = "camproto.{fixed}"' in text


def test_field_types_follow_the_field_kinds():
    ftypes = {f.key: f.ftype for f in dissector_fields()}
    for spec in COMMANDS:
        for field in spec.fields:
            expected = {Kind.COUNT: "uint64", Kind.PORT: "uint16"}.get(field.kind, "string")
            assert ftypes[field.name] == expected, field.name
    assert ftypes["current"] == "uint64" and ftypes["online"] == "string"
    assert {"statuses.camera_id", "statuses.online"} <= set(ftypes)
    abbrs = [f.abbr for f in dissector_fields()]
    assert len(abbrs) == len(set(abbrs))
    assert all(re.fullmatch(r"camproto(\.[a-z_]+)+", a) for a in abbrs)


def _with_reboot(monkeypatch) -> catalogue.CommandSpec:
    """Add a command to the catalogue, as a maintainer would."""
    spec = catalogue.CommandSpec(
        16, "CaramCommand", "RebootCaramer", catalogue.Direction.C2S, catalogue.Channel.MAIN,
        Layout.PIPE, (catalogue.CAMERA_ID, catalogue.Field("delay", Kind.COUNT, "seconds")),
        "Reboot a camera (test-only command).")
    monkeypatch.setattr(catalogue, "COMMANDS", (*catalogue.COMMANDS, spec))
    return spec


def test_a_command_added_to_the_catalogue_reaches_the_dissector(monkeypatch):
    before = render_dissector()
    spec = _with_reboot(monkeypatch)
    after = render_dissector()
    assert spec.full_name not in before and "camproto.delay" not in before
    assert f'full = "{spec.full_name}"' in after
    assert 'abbr = "camproto.delay", key = "delay", ftype = "uint64"' in after


def test_a_catalogue_field_named_like_a_fixed_field_is_refused(monkeypatch):
    bad = dataclasses.replace(COMMANDS[0], name="Bad",
                              fields=(catalogue.Field("params", Kind.TEXT),))
    monkeypatch.setattr(catalogue, "COMMANDS", (*COMMANDS, bad))
    with pytest.raises(ValueError, match=r"camproto\.params"):
        render_dissector()


def test_defaults_are_baked_in():
    text = render_dissector("lp32le:gbk", [9001, 9000, 9002, 9010], heuristic=False)
    assert 'local DEFAULT_DIALECT = "lp32le"' in text
    assert 'local DEFAULT_ENCODING = "gbk"' in text
    assert 'local DEFAULT_PORTS = "9000-9002,9010"' in text
    assert "local REGISTER_HEURISTIC = false" in text
    text = render_dissector("auto")
    assert 'local DEFAULT_DIALECT = "auto"' in text
    assert 'local DEFAULT_ENCODING = "auto"' in text  # no explicit encoding: per frame
    assert "local REGISTER_HEURISTIC = true" in text
    hb = camprotool.Dialect.parse("line", heartbeat_name="Keep.Alive", max_frame=4096)
    text = render_dissector(hb)
    assert 'local DEFAULT_HEARTBEAT = "Keep.Alive"' in text
    assert "local DEFAULT_MAX_FRAME = 4096" in text
    assert render_dissector() == render_dissector()  # deterministic


@pytest.mark.parametrize("dialect", ["foo", "line:latin1", "auto:latin1", "", "lp32"])
def test_bad_dialects_are_refused(dialect):
    with pytest.raises(ValueError, match=r"dialect|encoding"):
        render_dissector(dialect)


@pytest.mark.parametrize("ports", [[0], [70000], ["9000"], [True], "9000,x", "9010-9000"])
def test_bad_ports_are_refused(ports):
    with pytest.raises(ValueError, match="port"):
        render_dissector("line", ports)


def test_port_ranges():
    assert parse_ports("9000, 9001-9003,9000,,7") == (7, 9000, 9001, 9002, 9003)
    assert format_ports("9000,9001-9020") == "9000-9020"
    assert format_ports([5, 3, 4, 10]) == "3-5,10"
    assert format_ports(()) == ""


def test_lua_string_escapes():
    assert lua_string('a"b\\c') == '"a\\"b\\\\c"'
    assert lua_string("x\ny\x7f") == '"x\\010y\\127"'
    assert lua_string("用户") == '"用户"'


def test_gbk_table_is_pythons_codec():
    text = render_dissector()
    rows = re.findall(r'^    "(.*)", -- 0x([0-9A-F]{2})$', text, re.MULTILINE)
    assert [int(lead, 16) for _, lead in rows] == list(range(0x81, 0xFF))
    row = dict((int(lead, 16), chars) for chars, lead in rows)
    for gbk in ("用户名或者密码错误!".encode("gbk"), "该账号".encode("gbk")):
        pairs = [gbk[i:i + 2] for i in range(0, len(gbk) - 1, 2) if gbk[i] >= 0x81]
        for lead, trail in pairs:
            assert row[lead][trail - 0x40] == bytes((lead, trail)).decode("gbk")
    assert row[0x81][0x7F - 0x40] == "\ufffd"  # 0x7f is never a GBK trail byte


def test_docs_field_table_is_current():
    docs = (ROOT / "docs" / "wireshark.md").read_text(encoding="utf-8")
    table = docs.split("<!-- fields:begin -->\n")[1].split("<!-- fields:end -->")[0]
    assert table == fields_markdown(), (
        "docs/wireshark.md is stale: paste the output of python -c \"from "
        "camprotool.protocol.lua import fields_markdown; print(fields_markdown())\"")
    text = render_dissector()
    for name in re.findall(r'ProtoExpert\.new\("(camproto\.\w+)"', text):
        assert f"`{name}`" in docs, name
    for pref in re.findall(r"camproto\.prefs\.(\w+) = Pref", text):
        assert f"`camproto.{pref}`" in docs, pref


# ------------------------------------------------------------------ tshark end to end


@dataclasses.dataclass
class Layer:
    """One camproto layer of tshark's PDML: one message."""

    frame: int
    fields: dict[str, list[str]]

    def get(self, name: str) -> list[str]:
        return self.fields.get(name, [])


def run_tshark(lua: Path, capture: Path, *options: str) -> list[Layer]:
    proc = subprocess.run(
        [TSHARK, "-n", "-X", f"lua_script:{lua}", *options, "-r", str(capture),
         "-Y", "camproto", "-T", "pdml"],
        capture_output=True, timeout=60)
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, stderr
    assert "Lua" not in stderr, stderr  # load errors are only reported on stderr
    assert b"_ws.lua.error" not in proc.stdout  # runtime errors land in the tree
    assert b"Dissector bug" not in proc.stdout
    layers = []
    for packet in ET.fromstring(proc.stdout).iter("packet"):
        frame = int(packet.find("proto[@name='frame']/field[@name='frame.number']").get("show"))
        for proto in packet.findall("proto[@name='camproto']"):
            fields: dict[str, list[str]] = {}
            for field in proto.iter("field"):
                fields.setdefault(field.get("name"), []).append(field.get("show"))
            layers.append(Layer(frame, fields))
    return layers


def _status(value) -> str:
    return "null" if value is None or value is pd.NA else ("true" if value else "false")


def expected_fields(row: pd.Series) -> dict[str, list[str]]:
    """What the dissector should show for a message camprotool decoded without error,
    derived from the catalogue's layouts and kinds."""
    spec = catalogue.BY_NAME[row["command"]]
    out = {}
    for field in spec.fields:
        name, value = f"camproto.{field.name}", row[field.name]
        if spec.layout is Layout.IDS:
            out[name] = list(value)
        elif spec.layout is Layout.STATUS_LIST:
            out[name] = [f"{d['camera_id']};{_status(d['online'])}" for d in value]
            out[f"{name}.camera_id"] = [d["camera_id"] for d in value]
            out[f"{name}.online"] = [_status(d["online"]) for d in value]
        elif field.kind is Kind.STATUS:
            out[name] = [_status(value)]
        elif value is None or pd.isna(value):
            out[name] = []  # an empty port: no free port
        else:
            out[name] = [str(value)]
    return out


def assert_same_messages(layers: list[Layer], messages: pd.DataFrame) -> None:
    assert [(la.frame, la.get("camproto.command")) for la in layers] == [
        (int(r.frame), [r.command]) for r in messages.itertuples()]
    for layer, (_, row) in zip(layers, messages.iterrows(), strict=True):
        where = f"frame {layer.frame} {row['command']}"
        spec = catalogue.BY_NAME.get(row["command"])
        has_error = isinstance(row["error"], str)
        assert bool(layer.get("camproto.error")) == has_error, where
        assert layer.get("camproto.params") == [row["params"]], where
        if spec is None:
            assert layer.get("camproto.full_name") == [], where
            continue
        assert layer.get("camproto.full_name") == [spec.full_name], where
        assert layer.get("camproto.direction_expected") == [spec.direction.value], where
        assert layer.get("camproto.channel") == [spec.channel.value], where
        if not has_error:
            for name, values in expected_fields(row).items():
                assert layer.get(name) == values, f"{where}: {name}"


@pytest.fixture(scope="module")
def lua_default(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lua") / "camproto.lua"
    path.write_text(render_dissector(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def lua_no_heuristic(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lua") / "camproto_nh.lua"
    path.write_text(render_dissector("line", (9000,), heuristic=False), encoding="utf-8")
    return path


@needs_tshark
@pytest.mark.tshark
@pytest.mark.parametrize("reveal", [False, True])
def test_sample_capture_matches_camprotool(lua_default, reveal):
    """line on port 9000; the data connection on 9001 is found by the heuristic."""
    options = ["-o", "camproto.reveal_passwords:TRUE"] if reveal else []
    layers = run_tshark(lua_default, SAMPLE, *options)
    messages = camprotool.read_capture(SAMPLE, reveal_passwords=reveal).messages
    assert len(messages) == 30
    assert_same_messages(layers, messages)
    login = layers[0]
    assert login.get("camproto.password") == (["demo"] if reveal else ["***"])


@needs_tshark
@pytest.mark.tshark
def test_sample_capture_as_tshark_fields(lua_default):
    """The one-liner from docs/wireshark.md: -T fields, first occurrence per frame."""
    proc = subprocess.run(
        [TSHARK, "-n", "-X", f"lua_script:{lua_default}", "-r", str(SAMPLE), "-Y", "camproto",
         "-T", "fields", "-e", "frame.number", "-e", "camproto.command",
         "-e", "camproto.camera_id", "-E", "occurrence=f"],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    messages = camprotool.read_capture(SAMPLE).messages
    assert rows == [[str(r.frame), r.command, r.camera_id if isinstance(r.camera_id, str) else ""]
                    for r in messages.itertuples()]


@needs_tshark
@pytest.mark.tshark
@pytest.mark.parametrize("how", ["heuristic", "ports", "auto"])
def test_download_capture_matches_camprotool(lua_default, lua_no_heuristic, tmp_path, how):
    """lp32le with UTF-8 and GBK bodies on ports 7000-7002, three ways to find it."""
    if how == "heuristic":
        # TCP 7000 belongs to Wireshark's gryphon dissector: heuristics must go first
        layers = run_tshark(lua_default, DOWNLOAD, "-o", "tcp.try_heuristic_first:TRUE")
    elif how == "ports":
        layers = run_tshark(lua_no_heuristic, DOWNLOAD, "-o", "camproto.ports:7000-7002",
                            "-o", "camproto.dialect:lp32le")
    else:
        lua = tmp_path / "auto.lua"
        lua.write_text(render_dissector("auto", "7000-7002", heuristic=False), encoding="utf-8")
        layers = run_tshark(lua, DOWNLOAD)
    messages = camprotool.read_capture(DOWNLOAD).messages
    assert len(messages) == 18
    assert_same_messages(layers, messages)
    by_command = {la.get("camproto.command")[0]: la for la in layers}
    assert by_command["LoginError"].get("camproto.reason") == ["用户名或者密码错误!"]
    assert by_command["LoginError"].get("camproto.encoding") == ["gbk"]
    assert by_command["DownloadFail"].get("camproto.reason") == ["该账号下没有绑定任何摄像头"]
    assert by_command["Login"].get("camproto.encoding") == ["utf-8"]


def write_split_capture(path: Path, dialect: str, port: int) -> None:
    """Every frame cut into 7-byte TCP segments; the last two frames share segments."""
    t0, ms = 1_700_000_000_000_000_000, 1_000_000
    script = [
        ("c2s", "Login", "demo|demo"),
        ("s2c", "LoginOk", "3|2025-11-27 18:02:11|10.0.0.1"),
        ("c2s", "CheckCaramerOnlineStatus", "A1;B2;C3"),
        ("s2c", "ReturnCaramerOnlineStatus", "A1;true|B2;FALSE|C3;null"),
        ("c2s", "Frobnicate", "x|y"),  # unknown command
        ("s2c", "UploadSucess", "CAM1|maybe|1|2"),  # malformed status
        ("s2c", "LoginError", "用户名或者密码错误!"),
        ("s2c", "ReturnDataSocketPort", ""),  # no free port
        ("c2s", "UploadCaramer", "CAM1|pw|x|2"),  # non-integer count
        ("c2s", "Login", "onlyuser"),  # wrong field count
        ("c2s", "Heartbeat", ""),
    ]
    with PcapngWriter(path) as w:
        conn = w.tcp(("10.0.0.1", 40000), ("10.0.0.2", port), t0)
        t = t0
        for direction, command, params in script:
            t += 2 * ms
            conn.send(direction, encode(command, params, dialect), t, segment_size=7)
        t += 2 * ms
        pushes = (encode("PrushCaramerOnlineStatus", "A1:true", dialect)
                  + encode("PrushCaramerAlarmInfo", "A1:motion", dialect))
        conn.send("s2c", pushes, t, segment_size=7)
        conn.close(t + ms)


@needs_tshark
@pytest.mark.tshark
@pytest.mark.parametrize("dialect", ["lp32be", "line:gbk"])
@pytest.mark.parametrize("how", ["heuristic", "ports"])
def test_frames_split_across_segments(lua_default, lua_no_heuristic, tmp_path, dialect, how):
    capture = tmp_path / "split.pcapng"
    write_split_capture(capture, dialect, 5555)
    framing = dialect.partition(":")[0]
    if how == "heuristic":
        layers = run_tshark(lua_default, capture)
    else:
        layers = run_tshark(lua_no_heuristic, capture, "-o", "camproto.ports:5555",
                            "-o", f"camproto.dialect:{framing}")
    messages = camprotool.read_capture(capture, dialect=dialect).messages
    assert len(messages) == 13
    assert_same_messages(layers, messages)
    assert len({la.frame for la in layers}) == len(layers)  # each completed in its own frame
    errors = [la.get("camproto.error") for la in layers]
    assert [i for i, e in enumerate(errors) if e] == [5, 8, 9]
    assert layers[4].get("camproto.command") == ["Frobnicate"]  # unknown: kept, no error
    assert layers[9].get("camproto.params") == ["***"]  # wrong count: password not located
    assert layers[6].get("camproto.reason") == ["用户名或者密码错误!"]


@needs_tshark
@pytest.mark.tshark
def test_expert_infos(lua_default, tmp_path):
    capture = tmp_path / "split.pcapng"
    write_split_capture(capture, "line", 9000)
    proc = subprocess.run(
        [TSHARK, "-n", "-X", f"lua_script:{lua_default}", "-r", str(capture), "-Y", "camproto",
         "-T", "fields", "-e", "camproto.command", "-e", "_ws.expert.message",
         "-E", "occurrence=a", "-E", "aggregator=/"],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = dict(line.split("\t", 1) for line in proc.stdout.splitlines()
                if line.count("\t") == 1)
    assert "unknown command Frobnicate" in rows["Frobnicate"]
    assert "online: 'maybe' is not true, false or null" in rows["UploadSucess"]
    assert "the server has no free data port" in rows["ReturnDataSocketPort"]
    assert "current: 'x' is not a non-negative integer" in rows["UploadCaramer"]


@needs_tshark
@pytest.mark.tshark
def test_a_command_added_to_the_catalogue_is_dissected(monkeypatch, tmp_path):
    spec = _with_reboot(monkeypatch)
    lua = tmp_path / "camproto.lua"
    lua.write_text(render_dissector(), encoding="utf-8")
    capture = tmp_path / "reboot.pcapng"
    with PcapngWriter(capture) as w:
        conn = w.tcp(("10.0.0.1", 40000), ("10.0.0.2", 9000), 10**18)
        conn.send("c2s", f"{spec.full_name}|CAM00001|30\r\n".encode(), 10**18 + 10**6)
    [layer] = run_tshark(lua, capture)
    assert layer.get("camproto.command") == ["RebootCaramer"]
    assert layer.get("camproto.camera_id") == ["CAM00001"]
    assert layer.get("camproto.delay") == ["30"]
    assert layer.get("camproto.direction_expected") == ["c2s"]

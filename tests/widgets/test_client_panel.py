"""ClientPanel, driven through its widget models only: set values, click, poll, assert."""

from __future__ import annotations

import socket

import ipywidgets as widgets
import pytest

from camprotool.net import EmulatorServer
from camprotool.net.testing import FAST_SCRYPT_N, wait_until
from camprotool.protocol.catalogue import COMMANDS, Direction, Field, Kind, Layout
from camprotool.widgets.client_panel import parse_cameras
from camprotool.widgets.commands import client_commands, field_widget


def settle(panel, timeout: float = 5.0) -> None:
    """Wait for the running request, then draw what it left."""
    assert panel.wait(timeout), "the panel's request did not finish"
    panel.refresh()


def logged_in(panel) -> None:
    panel.login_button.click()
    wait_until(lambda: "logged in" in panel.status_text)
    settle(panel)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connect_and_login_against_the_emulator(server, make_panel):
    panel = make_panel(server)
    panel.connect_button.click()
    wait_until(lambda: "connected to" in panel.status_text)
    settle(panel)
    assert "connected to" in panel.state.value
    panel.login_button.click()
    wait_until(lambda: "logged in as demo" in panel.status_text)
    settle(panel)
    assert "3 camera(s)" in panel.status_text
    assert "logged in as demo" in panel.state.value
    assert "LoginOk" in panel.log.value and "Login" in panel.log.value
    # the password never reaches the log
    assert "demo|***" in panel.log.value and "demo|demo" not in panel.log.value
    assert not panel.login_button.disabled


def test_login_error_shows_the_servers_reason(server, make_panel):
    panel = make_panel(server)
    panel.password.value = "wrong"
    panel.login_button.click()
    wait_until(lambda: panel.last_error is not None)
    assert "用户名或者密码错误" in panel.status.value
    assert "Traceback" not in panel.status.value


def test_refused_connection_is_one_line(make_panel):
    panel = make_panel(port=free_port())
    panel.connect_button.click()
    wait_until(lambda: panel.last_error is not None)
    assert "connection refused" in panel.last_error
    assert "\n" not in panel.last_error and "Traceback" not in panel.status.value
    settle(panel)
    assert "not connected" in panel.state.value


def test_bad_fields_are_reported_not_raised(make_panel):
    panel = make_panel(port=9000, dialect="line")
    panel.dialect.value = "carrier-pigeon"
    panel.connect_button.click()
    wait_until(lambda: panel.last_error is not None)
    assert "unknown dialect" in panel.last_error


def test_empty_data_port_is_shown(make_panel):
    with EmulatorServer(scrypt_n=FAST_SCRYPT_N, data_ports=0) as srv:
        panel = make_panel(srv)
        logged_in(panel)
        panel.sync_button.click()
        wait_until(lambda: panel.last_error is not None)
        assert "no free data port" in panel.last_error
        settle(panel)
        assert panel.progress.bar_style == "danger"


def test_timeout_is_shown_and_buttons_come_back(make_panel):
    with EmulatorServer(scrypt_n=FAST_SCRYPT_N, reply_delay=1.0) as srv:
        panel = make_panel(srv, timeout=0.3)
        panel.login_button.click()
        wait_until(lambda: panel.sync_button.disabled or panel.last_error is not None)
        wait_until(lambda: panel.last_error is not None)
        assert "no answer to Login within 0.3 s" in panel.last_error
        settle(panel)
        assert not panel.sync_button.disabled


def test_sync_button_is_disabled_while_syncing(make_panel):
    with EmulatorServer(scrypt_n=FAST_SCRYPT_N, reply_delay=0.05) as srv:
        panel = make_panel(srv)
        logged_in(panel)
        panel.sync_button.click()
        assert panel.sync_button.disabled  # at once, from the click handler
        assert not panel.logout_button.disabled
        wait_until(lambda: "downloaded" in panel.status_text)
        settle(panel)
        assert not panel.sync_button.disabled


def test_picker_has_every_client_command_with_typed_inputs(make_panel):
    panel = make_panel(port=9000)
    wanted = [s.name for s in COMMANDS if s.direction is Direction.C2S]
    assert list(panel.command_picker.options) == wanted
    assert set(panel.forms) == set(wanted)
    for spec in client_commands():
        form = panel.forms[spec.name]
        assert list(form.inputs) == list(spec.field_names)
        for f in spec.fields:
            w = form.inputs[f.name]
            if spec.layout is Layout.IDS:
                assert type(w) is widgets.Text
            elif f.kind is Kind.COUNT:
                assert isinstance(w, widgets.IntText)
            elif f.kind is Kind.SECRET:
                assert isinstance(w, widgets.Password)
            else:
                assert type(w) is widgets.Text
    # the kinds no client command has yet still get their inputs
    status = field_widget(Field("online", Kind.STATUS))
    assert isinstance(status, widgets.Dropdown)
    assert [v for _, v in status.options] == [True, False, None]
    assert isinstance(field_widget(Field("port", Kind.PORT)), widgets.IntText)
    # picking a command shows its form
    panel.command_picker.value = "UploadCaramer"
    assert panel.form_box.children == (panel.forms["UploadCaramer"].box,)
    assert panel.forms["Login"].inputs["user"].value == "demo"  # prefilled


def test_status_query_from_the_picker_fills_the_grid(server, make_panel):
    panel = make_panel(server)
    logged_in(panel)
    panel.command_picker.value = "CheckCaramerOnlineStatus"
    panel.forms["CheckCaramerOnlineStatus"].inputs["ids"].value = "DEMO0001, DEMO0002 DEMO0003"
    panel.send_button.click()
    wait_until(lambda: "DEMO0001 online" in panel.status_text)
    settle(panel)
    assert {k: v["online"] for k, v in panel.cameras.items()} == {
        "DEMO0001": True, "DEMO0002": False, "DEMO0003": None}
    for cam in ("DEMO0001", "DEMO0002", "DEMO0003"):
        assert cam in panel.grid.value
    assert "offline" in panel.grid.value and "unknown" in panel.grid.value
    assert "ReturnCaramerOnlineStatus" in panel.log.value


def test_typed_frame_and_raw_mode_send_by_hand(server, make_panel):
    panel = make_panel(server)
    logged_in(panel)
    # the typed form, sent as a frame without client logic
    panel.command_picker.value = "CheckCaramerOnlineStatus"
    panel.forms["CheckCaramerOnlineStatus"].inputs["ids"].value = "CAM00001"
    panel.as_raw.value = True
    panel.send_button.click()
    wait_until(lambda: "CAM00001" in panel.cameras)
    settle(panel)
    # raw mode: any name, any parameter string
    panel.raw_command.value = "SocketCommand.CaramCommand.CheckCaramerOnlineStatus"
    panel.raw_params.value = "CAM00002;DEMO0001"
    panel.raw_send_button.click()
    wait_until(lambda: "CAM00002" in panel.cameras)
    settle(panel)
    assert panel.cameras["CAM00002"]["online"] is None
    assert panel.cameras["CAM00002"]["source"] == "query"
    assert "CAM00002;DEMO0001" in panel.log.value


def test_bad_form_values_are_reported(server, make_panel):
    panel = make_panel(server)
    panel.command_picker.value = "CheckCaramerOnlineStatus"
    panel.send_button.click()
    wait_until(lambda: panel.last_error is not None)
    assert "at least one camera id" in panel.last_error
    settle(panel)
    panel.command_picker.value = "DownLoadCaramer"
    panel.forms["DownLoadCaramer"].inputs["downloaded"].value = -1
    panel.as_raw.value = True
    panel.send_button.click()
    wait_until(lambda: "0 or more" in (panel.last_error or ""))


def test_pushes_update_the_grid_and_the_alarm_plot(server, make_panel):
    panel = make_panel(server)
    logged_in(panel)
    assert server.set_online("DEMO0002", True) == 1
    wait_until(lambda: panel.cameras.get("DEMO0002", {}).get("online") is True)
    assert panel.cameras["DEMO0002"]["source"] == "push"
    assert server.raise_alarm("DEMO0001", "motion") == 1
    assert server.raise_alarm("DEMO0003", "tamper") == 1
    wait_until(lambda: len(panel.alarms) == 2)
    wait_until(lambda: panel.alarm_draws >= 1 and "2 alarms" in
               panel.alarm_figure.axes[0].get_title())
    settle(panel)
    (output,) = panel.alarm_plot.outputs
    assert output["data"]["image/png"]
    lanes = [t.get_text() for t in panel.alarm_figure.axes[0].get_yticklabels()]
    assert lanes == ["DEMO0001", "DEMO0003"]
    assert panel.cameras["DEMO0001"]["alarms"] == 1
    assert "motion at" in panel.grid.value
    assert "PrushCaramerAlarmInfo" in panel.log.value


def test_sync_download_drives_the_progress_bar_to_total(server, make_panel):
    panel = make_panel(server)
    logged_in(panel)
    panel.sync_button.click()
    wait_until(lambda: "downloaded 3 camera(s)" in panel.status_text)
    settle(panel)
    assert (panel.progress.value, panel.progress.max) == (3, 3)
    assert panel.progress.bar_style == "success"
    assert "download 3/3" in panel.progress_label.value
    assert parse_cameras(panel.local_cameras.value) == [
        ("DEMO0001", "1234"), ("DEMO0002", "1234"), ("DEMO0003", "1234")]
    assert {panel.cameras[c]["source"] for c in ("DEMO0001", "DEMO0002", "DEMO0003")} == {
        "download"}
    # a second sync finds the lists equal
    panel.sync_button.click()
    wait_until(lambda: "nothing to sync" in panel.status_text)


def test_sync_upload_counts_refusals(server, make_panel):
    panel = make_panel(server, user="alice", password="alice")
    logged_in(panel)
    panel.local_cameras.value = "CAM00001 1234\nCAM00002 wrong\n"
    panel.sync_button.click()
    wait_until(lambda: "uploaded 2" in panel.status_text)
    settle(panel)
    assert "1 bound, 1 refused" in panel.status_text
    assert "CAM00002: ID和密码不匹配" in panel.status_text
    assert (panel.progress.value, panel.progress.max) == (2, 2)
    assert panel.cameras["CAM00001"]["source"] == "upload"


def test_log_filter_and_clear(server, make_panel):
    panel = make_panel(server)
    logged_in(panel)
    panel.log_filter.value = "LoginOk"
    settle(panel)
    assert "LoginOk" in panel.log.value and "demo|***" not in panel.log.value
    panel.log_filter.value = ""
    panel.clear_log_button.click()
    settle(panel)
    assert "LoginOk" not in panel.log.value and "0 message(s)" in panel.log.value


def test_logout_and_lost_connection(make_panel):
    srv = EmulatorServer(scrypt_n=FAST_SCRYPT_N).start()
    try:
        panel = make_panel(srv)
        logged_in(panel)
        panel.logout_button.click()
        wait_until(lambda: "logged out" in panel.status_text)
        settle(panel)
        assert "not connected" in panel.state.value
        logged_in(panel)
        srv.stop()
        wait_until(lambda: "connection lost" in (panel.last_error or ""))
        settle(panel)
        assert "not connected" in panel.state.value
    finally:
        srv.stop()


def test_displays_as_a_widget(make_panel):
    panel = make_panel(port=9000)
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert isinstance(panel.widget, widgets.VBox)


def test_parse_cameras_rejects_a_bad_line():
    assert parse_cameras("A 1\n\nB:2\n") == [("A", "1"), ("B", "2")]
    with pytest.raises(ValueError, match="line 1"):
        parse_cameras("only-an-id")


def test_sequence_tab_draws_the_conversation(server, make_panel):
    panel = make_panel(server)
    panel.sequence_button.click()
    assert panel.wait(10)
    assert "no messages yet" in panel.last_error
    panel.login()
    assert panel.wait(10)
    panel.sync()  # the demo account's cameras come down a data connection
    assert panel.wait(20)
    panel.sequence_button.click()
    assert panel.wait(20)
    assert panel.last_error is None, panel.last_error
    (out,) = panel.sequence_plot.outputs
    assert out["data"].get("image/png")
    ax = panel.sequence_figure.axes[0]
    texts = [t.get_text() for t in ax.texts]
    # a lane per connection: the main one and the data connection of the download
    lanes = " ".join(t.get_text() for t in ax.get_xticklabels()) + " ".join(texts)
    assert "data conn" in lanes
    assert any(t.startswith("Login") for t in texts)
    assert any(t.startswith("DownloadSucess") for t in texts)
    assert "sequence diagram of the latest" in panel.status_text


def test_live_connections_link_data_to_their_main():
    import pandas as pd

    from camprotool.widgets.live_sequence import live_connections

    ts = pd.to_datetime([1, 2, 3, 4, 5], unit="s", utc=True)
    log = pd.DataFrame({"ts": ts, "conn": [0, 0, 1, 2, 3],
                        "channel": ["main", "main", "data", "main", "data"],
                        "client": "c", "server": "s"})
    conns = live_connections(log)
    assert conns["conn"].tolist() == [0, 1, 2, 3]
    # each data connection belongs to the last main connection opened before it
    assert conns["main_conn"].fillna(-1).tolist() == [-1, 0, -1, 2]
    assert conns["start"].isna().all()  # no TCP opening the log did not see


def test_the_grid_and_alarms_are_the_status_model_fed_the_log(make_panel):
    """No server: messages handed to the panel's log listener, as the client's loop does.
    The grid shows the status model's states (an upload answer counts only on a data
    connection, as in ``Capture.status``); the alarm list is its alarms."""
    from camprotool.net.recording import LoggedMessage
    from camprotool.protocol.catalogue import BY_NAME
    from camprotool.protocol.messages import build_message

    panel = make_panel()

    def hear(ts: int, command: str, params: str, channel: str = "main") -> None:
        message = build_message(BY_NAME[command], command, params)
        panel._on_logged(None, LoggedMessage(ts, 1 if channel == "data" else 0, channel,
                                             "s2c", "c", "s", message))

    hear(1_000_000_000, "ReturnCaramerOnlineStatus", "CAM1;true|CAM2;null")
    hear(2_000_000_000, "UploadSucess", "CAM3|true|1|1")  # main connection: not a status
    hear(3_000_000_000, "UploadSucess", "CAM4|false|1|1", "data")
    hear(4_000_000_000, "PrushCaramerAlarmInfo", "CAM1:")
    panel.refresh()
    assert {cid: (c["online"], c["source"], c["alarms"]) for cid, c in panel.cameras.items()
            } == {"CAM1": (True, "query", 1), "CAM2": (None, "query", 0),
                  "CAM4": (False, "upload", 0)}
    assert panel.cameras["CAM1"]["last_alarm"].startswith("(none) at ")
    assert [(a.camera_id, a.online) for a in panel.alarms] == [("CAM1", True)]
    assert panel.status_model.cameras["CAM1"].alarms == 1
    grid = panel.grid.value
    assert "CAM4" in grid and "CAM3" not in grid and "unknown" in grid and "offline" in grid
    assert panel.progress.value == 1  # the data connection's answers still drive the bar


def test_the_log_escapes_and_shows_decoding_errors_in_red(make_panel):
    from camprotool.net.recording import LoggedMessage
    from camprotool.protocol.catalogue import BY_NAME
    from camprotool.protocol.messages import build_message
    from camprotool.widgets._common import ERROR

    panel = make_panel()
    for params in ("<b>X</b>:motion", "CAM1:maybe"):
        command = "PrushCaramerAlarmInfo" if "motion" in params else "PrushCaramerOnlineStatus"
        message = build_message(BY_NAME[command], command, params)
        panel._on_logged(None, LoggedMessage(1, 0, "main", "s2c", "c", "s", message))
    panel.refresh()
    log = panel.log.value
    assert "<b>X</b>" not in log and "&lt;b&gt;X&lt;/b&gt;:motion" in log
    assert f'<span style="color:{ERROR}">[online: &#39;maybe&#39; is not true' in log
    assert "newest first; 2 message(s)" in log
    assert "&lt;b&gt;X&lt;/b&gt;" in panel.grid.value  # the alarm's camera, escaped

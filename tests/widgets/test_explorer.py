"""CaptureExplorer, driven through its widget models: load, filter, plot, export."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

import camprotool as cpt
from camprotool.widgets import CaptureExplorer
from camprotool.widgets.explorer import PLOTS, camera_mask, match_cameras

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "captures" / "sample.pcapng"


@pytest.fixture
def explorer():
    ex = CaptureExplorer(directory=ROOT / "captures")
    yield ex
    ex.close()


def loaded(ex: CaptureExplorer) -> CaptureExplorer:
    ex.path.value = str(SAMPLE)
    ex.load_button.click()
    assert ex.wait(15)
    assert ex.capture is not None, ex.status_text
    return ex


def table_rows(ex: CaptureExplorer) -> int:
    body = ex.table.value.partition("<tbody>")[2]
    return body.count("<tr>")  # body rows only


def test_path_box_lists_the_captures(explorer):
    assert str(SAMPLE) in explorer.path.options
    assert all(".pcap" in p for p in explorer.path.options)


def test_load_filter_by_camera_and_command(explorer):
    ex = loaded(explorer)
    total = len(ex.capture.messages)
    assert len(ex.selection) == total == table_rows(ex)
    assert f"<b>{total}</b> of {total}" in ex.count.value
    assert "DEMO0001" in ex.camera_filter.options
    assert "PrushCaramerAlarmInfo" in ex.command_filter.options

    ex.camera_filter.value = ("DEMO0001",)
    assert ex.wait(10)
    by_camera = len(ex.selection)
    assert 0 < by_camera < total
    assert table_rows(ex) == by_camera
    # the status query and its answer name DEMO0001 in ids/statuses, not camera_id
    assert {"CheckCaramerOnlineStatus", "ReturnCaramerOnlineStatus"} <= set(
        ex.selection["command"].astype(str))

    ex.command_filter.value = ("PrushCaramerAlarmInfo",)
    assert ex.wait(10)
    both = ex.selection
    assert 0 < len(both) < by_camera
    assert set(both["command"].astype(str)) == {"PrushCaramerAlarmInfo"}
    assert set(both["camera_id"]) == {"DEMO0001"}
    assert table_rows(ex) == len(both)

    ex.reset_button.click()
    assert ex.wait(10)
    assert len(ex.selection) == total


def test_connection_session_and_time_filters(explorer):
    ex = loaded(explorer)
    m = ex.capture.messages
    data_conn = int(ex.capture.connections.query("channel == 'data'")["conn"].iloc[0])
    ex.conn_filter.value = (data_conn,)
    assert ex.wait(10)
    assert set(ex.selection["conn"]) == {data_conn}
    ex.conn_filter.value = ()
    ex.session_filter.value = (0,)  # the one session: its main and data connections
    assert ex.wait(10)
    assert len(ex.selection) == len(m)
    ex.session_filter.value = ()
    last = len(ex.time_range.options) - 1
    ex.time_range.index = (0, last // 2)
    assert ex.wait(10)
    half = ex.selection
    assert 0 < len(half) < len(m)
    assert (half["ts"].astype("int64") <= ex.time_range.options[last // 2][1]).all()


def test_plots_render_for_the_selection(explorer):
    ex = loaded(explorer)
    assert ex.shown_plot == PLOTS[0] and ex.figures[PLOTS[0]] is not None
    for i, name in enumerate(PLOTS):  # each tab draws its plot when shown
        ex.plot_tabs.selected_index = i
        assert ex.wait(10)
        (out,) = ex.plots[name].outputs
        assert out["data"].get("image/png"), (name, out)
        assert ex.figures[name] is not None
    assert "4 alarms" in ex.figures["alarm_timeline"].axes[0].get_title()
    ex.plot_tabs.selected_index = PLOTS.index("alarm_timeline")
    ex.camera_filter.value = ("DEMO0003",)  # no alarm for it in the sample
    assert ex.wait(10)
    texts = "".join(t.get_text() for t in ex.figures["alarm_timeline"].axes[0].texts)
    assert "no alarms" in texts
    assert "sync_progress" not in ex.figures  # not shown, so not drawn again yet
    ex.draw_all()
    assert ex.wait(10)
    assert set(ex.figures) == set(PLOTS)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_writes_the_selection(explorer, tmp_path, suffix):
    ex = loaded(explorer)
    ex.command_filter.value = ("UploadCaramer", "UploadSucess")
    assert ex.wait(10)
    target = tmp_path / f"selection{suffix}"
    ex.export_path.value = str(target)
    ex.export_button.click()
    assert ex.wait(10)
    assert "wrote" in ex.status_text, ex.status_text
    back = pd.read_csv(target) if suffix == ".csv" else pd.read_parquet(target)
    assert len(back) == len(ex.selection) == 10
    assert sorted(back["command"].astype(str).unique()) == ["UploadCaramer", "UploadSucess"]
    assert "1234" not in back["params"].astype(str).str.cat()  # camera passwords masked


def test_errors_go_to_the_status_line(explorer, tmp_path):
    explorer.export_button.click()
    assert explorer.wait(5)
    assert "load a capture first" in explorer.last_error
    explorer.path.value = str(tmp_path / "missing.pcapng")
    explorer.load_button.click()
    assert explorer.wait(5)
    assert "not found" in explorer.last_error and "\n" not in explorer.last_error
    explorer.path.value = str(ROOT / "README.md")
    explorer.load_button.click()
    assert explorer.wait(5)
    assert "not a pcap or pcapng capture" in explorer.last_error
    ex = loaded(explorer)
    ex.export_path.value = str(tmp_path / "selection.txt")
    ex.export_button.click()
    assert ex.wait(5)
    assert "unknown output format" in ex.last_error


def test_takes_a_capture_object():
    cap = cpt.read_capture(SAMPLE)
    ex = CaptureExplorer(cap)
    try:
        assert ex.wait(15)
        assert ex.capture is cap and len(ex.selection) == len(cap.messages)
        assert "application/vnd.jupyter.widget-view+json" in ex._repr_mimebundle_()
    finally:
        ex.close()


def test_camera_mask_reads_ids_and_statuses():
    m = cpt.read_capture(SAMPLE).messages
    mask = camera_mask(m, {"DEMO0003"})
    assert set(m.loc[mask, "command"].astype(str)) >= {"CheckCaramerOnlineStatus",
                                                       "ReturnCaramerOnlineStatus"}


def test_takes_a_capture_and_names_it_in_the_path_box():
    cap = cpt.read_capture(SAMPLE)
    ex = CaptureExplorer(cap)
    try:
        assert ex.wait(15)
        assert ex.path.value == str(SAMPLE)  # it was left empty
        assert "loaded the capture: 30 messages" in ex.status_text
    finally:
        ex.close()


def test_status_line_says_what_the_last_action_did(explorer):
    ex = loaded(explorer)
    assert ex.status_text.endswith("30 of 30 messages selected (no filter)")
    stamp = re.search(r"✔ (\d\d:\d\d:\d\d)  ", ex.status.value)
    assert stamp, ex.status.value
    ex.command_filter.value = ("Heartbeat",)
    assert ex.wait(10)
    # a filter change is news: the line says so (it kept saying "loaded ..." before)
    assert ex.status_text == "3 of 30 messages selected (command Heartbeat)"
    ex.export_path.value = "/nonexistent-dir/x.csv"
    ex.export_button.click()
    assert ex.wait(10)
    assert ex.last_error and "✖" in ex.status.value
    ex.command_filter.value = ()
    assert ex.wait(10)
    assert ex.last_error is None and "30 of 30" in ex.status_text


def test_camera_search_narrows_a_long_list(explorer):
    ex = loaded(explorer)
    every = list(ex.camera_filter.options)
    ex.camera_filter.value = ("DEMO0001",)
    assert ex.wait(10)
    ex.camera_search.value = "cam0000"
    # matching ids, any case, and the camera already picked stays listed and picked
    assert set(ex.camera_filter.options) == {c for c in every if "CAM0000" in c} | {"DEMO0001"}
    assert ex.camera_filter.value == ("DEMO0001",)
    assert "of" in ex.camera_note.value and "cameras match" in ex.camera_note.value
    assert ex.wait(10)
    assert ex.status_text.endswith("(camera DEMO0001)")  # searching is not filtering
    ex.camera_search.value = ""
    assert list(ex.camera_filter.options) == every


def test_match_cameras_caps_the_list():
    cams = [f"CAM{i:05d}" for i in range(3000)]
    shown, found = match_cameras(cams, "", ("ZZZ",), limit=500)
    assert (len(shown), found) == (501, 3000) and "ZZZ" in shown
    shown, found = match_cameras(cams, "cam 299", limit=500)  # every word, any case
    assert shown == [c for c in cams if "299" in c] and found == 13


def test_options_change_never_leaves_a_stale_selection(explorer):
    """The browser's view selects options by index: an index the new option list
    does not have is the console's "Cannot set properties of undefined (setting
    'selected')". When new labels go out, the selection must already be empty."""
    ex = loaded(explorer)
    seen = []
    for w in (ex.conn_filter, ex.session_filter, ex.camera_filter, ex.command_filter):
        w.observe(lambda ch, w=w: seen.append((len(w._options_labels), tuple(w.index))),
                  names="_options_labels")
    ex.camera_filter.value = ("CAM00005",)
    ex.command_filter.value = ("UploadCaramer", "UploadFail")
    ex.conn_filter.value = (1,)
    assert ex.wait(10)
    ex.path.value = str(ROOT / "captures" / "failed_sync.pcapng")  # another capture
    ex.load_button.click()
    assert ex.wait(15)
    assert len(seen) >= 4 and all(index == () for _, index in seen), seen
    assert "failed_sync" in ex.status_text and len(ex.selection) == 19


def test_time_range_in_words(explorer):
    ex = loaded(explorer)
    assert not ex.time_range.readout  # the slider's own readout ran under the button
    lo, hi = ex.time_range.label
    assert f"from <b>{lo}</b> to <b>{hi}</b>" in ex.time_label.value
    ex.time_range.index = (10, 50)
    assert ex.wait(10)
    assert f"from <b>{ex.time_range.options[10][0]}</b>" in ex.time_label.value
    assert "time " in ex.status_text


def test_frames_and_packets_of_a_message(explorer):
    ex = loaded(explorer)
    assert "<th" in ex.table.value and ">frame</th>" in ex.table.value
    first = ex.selection.iloc[0]
    assert f"wireshark -r {SAMPLE} -g {first.frame}" in ex.jump.value
    # the Packets row offers the first selected message; a camera filter moves it
    ex.camera_filter.value = ("CAM00003",)
    assert ex.wait(10)
    label = int(ex.selection.index[0])
    assert ex.packets.number.value == label
    ex.packets.button.click()
    assert ex.wait(15)
    found = ex.packets.packets
    assert found is not None and ex.selection.loc[label, "frame"] in found.frames
    assert "<pre" in ex.packets.view.value and "wireshark -r" in ex.packets.view.value
    assert f"packet of message {label}" in ex.status_text
    assert "1234" not in ex.packets.view.value  # the camera password stays hidden
    ex.packets.kind.value = "connection"
    ex.packets.number.value = 1
    ex.packets.button.click()
    assert ex.wait(15)
    assert found is not ex.packets.packets
    assert ex.packets.packets.df["tcp_flags"].iloc[0] == "SYN"
    ex.packets.kind.value = "message"
    ex.packets.number.value = 999
    ex.packets.button.click()
    assert ex.wait(15)
    assert "no message 999: the # column of the table runs 0-29" in ex.last_error


def test_plots_mark_the_selections_violations():
    """The sequence diagram and the sync progress mark the rules the selection broke."""
    ex = CaptureExplorer(cpt.read_capture(ROOT / "captures" / "failed_sync.pcapng"))
    try:
        assert ex.wait(15)
        ex.conn_filter.value = (1,)  # the upload cut short: upload_sequence, incomplete_sync
        assert ex.wait(10)
        ex.draw_all()
        assert ex.wait(20)
        seq = ex.figures["sequence_diagram"].axes[0].get_title()
        assert "2 protocol violations marked" in seq, seq
        texts = " ".join(t.get_text() for ax in ex.figures["sync_progress"].axes
                         for t in ax.texts)
        assert "upload_sequence" in texts, texts
    finally:
        ex.close()


def test_the_table_is_the_one_renderer_bounded_escaped_with_frame_tooltips(explorer):
    ex = loaded(explorer)
    first = ex.selection.iloc[0]
    # a frame cell's tooltip opens the capture at that packet, as in the report
    assert f'title="wireshark -r {SAMPLE} -g {first.frame}"' in ex.table.value
    assert f"<b>{ex.selection.index[0]}</b>" in ex.table.value  # the # column
    ex.max_rows = 3
    ex.command_filter.value = ()
    ex.camera_filter.value = ("DEMO0001",)
    assert ex.wait(10)
    assert table_rows(ex) == 3
    assert f"Showing the first 3 of {len(ex.selection)} rows; export has them all." \
        in ex.table.value

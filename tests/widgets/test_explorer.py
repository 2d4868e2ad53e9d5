"""CaptureExplorer, driven through its widget models: load, filter, plot, export."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import camprotool as cpt
from camprotool.widgets import CaptureExplorer
from camprotool.widgets.explorer import PLOTS, camera_mask

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

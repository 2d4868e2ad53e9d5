"""``camprotool.analysis.plots``: each figure's lanes, labels and legend, and its PNG."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Annotation

from camprotool import read_capture
from camprotool.analysis import plots, schema

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "captures" / "sample.pcapng"
DOWNLOAD = ROOT / "captures" / "download.pcapng"
T0 = pd.Timestamp("2025-11-28 09:00:00", tz="UTC")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sample():
    return read_capture(SAMPLE)


def at(seconds: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(seconds=seconds)


def frame(spec: dict[str, str], rows: list[dict]) -> pd.DataFrame:
    """A table with the schema's columns and dtypes, from a few hand-written rows."""
    if not rows:
        return schema.empty_frame(spec)
    df = pd.DataFrame(rows)
    for name, dtype in spec.items():
        if name not in df:  # unset: zero for plain numbers, missing otherwise
            fill = 0 if dtype in ("int64", "bool") else None
            df[name] = pd.Series(fill, index=df.index, dtype=object).astype(dtype)
    return schema.conform(df, spec)


def render(fig: Figure) -> np.ndarray:
    """Render to PNG (Agg); check the bytes are a PNG that is not blank; the pixels."""
    assert isinstance(fig, Figure)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    data = buf.getvalue()
    assert data[:8] == PNG_SIGNATURE
    pixels = mpimg.imread(io.BytesIO(data), format="png")
    w, h = fig.get_size_inches() * 60
    assert pixels.shape[0] == pytest.approx(h, abs=2) and pixels.shape[1] == pytest.approx(w, abs=2)
    assert pixels[..., :3].var() > 0.002, "the image is blank"
    return pixels


def ticklabels(axis) -> list[str]:
    return [t.get_text() for t in axis.get_ticklabels()]


def legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def named_lines(ax) -> list:
    return [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]


def alarms_and_status():
    alarms = frame(schema.ALARMS, [
        {"ts": at(1), "camera_id": "CAM2", "alarm_type": "motion", "conn": 0, "message": 3},
        {"ts": at(5), "camera_id": "CAM1", "alarm_type": "video_loss", "conn": 0, "message": 5},
        {"ts": at(9), "camera_id": "CAM2", "alarm_type": "motion", "conn": 0, "message": 7},
        {"ts": at(12), "camera_id": "CAM3", "alarm_type": "io_alarm", "conn": 0, "message": 9},
    ])
    status = frame(schema.STATUS, [
        {"ts": at(0), "camera_id": "CAM1", "online": True, "source": "query", "conn": 0,
         "message": 1, "changed": False},
        {"ts": at(0), "camera_id": "CAM2", "online": False, "source": "query", "conn": 0,
         "message": 1, "changed": False},
        {"ts": at(0), "camera_id": "CAM3", "online": None, "source": "query", "conn": 0,
         "message": 1, "changed": False},
        {"ts": at(6), "camera_id": "CAM2", "online": True, "source": "push", "conn": 0,
         "message": 6, "changed": True, "previous": False},
        {"ts": at(8), "camera_id": "CAM9", "online": False, "source": "push", "conn": 0,
         "message": 6, "changed": False},
    ])
    return alarms, status


def facecolors(ax) -> set[tuple]:
    colors = set()
    for coll in ax.collections:
        for c in coll.get_facecolors():
            colors.add(tuple(np.round(c[:3], 2)))
    return colors


def rgb(hex_color: str) -> tuple:
    return tuple(np.round([int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)], 2))


# ------------------------------------------------------------------ alarm timeline


def test_alarm_timeline_lanes_legend_and_status_shading():
    alarms, status = alarms_and_status()
    fig = plots.alarm_timeline(alarms, status, tz="UTC")
    ax = fig.axes[0]
    # one lane per camera with alarms (CAM9 has status only), first on top
    assert ticklabels(ax.yaxis) == ["CAM1", "CAM2", "CAM3"]
    assert ax.get_ylim()[0] > ax.get_ylim()[1]
    legend = legend_texts(ax)
    assert legend[:3] == ["io_alarm", "motion", "video_loss"]
    assert {"online", "offline", "unknown"} <= set(legend)
    assert ax.get_title() == "Alarms by camera (4 alarms)"
    assert ax.get_xlabel() == "time (UTC)"
    colors = facecolors(ax)
    assert {rgb(plots.ONLINE), rgb(plots.OFFLINE), rgb(plots.UNKNOWN)} <= colors
    markers = [c for c in ax.collections if c.get_label() in ("motion", "video_loss", "io_alarm")]
    assert sorted(len(c.get_offsets()) for c in markers) == [1, 1, 2]
    render(fig)


def test_alarm_timeline_without_status_has_only_alarm_types():
    alarms, _ = alarms_and_status()
    fig = plots.alarm_timeline(alarms, tz="UTC")
    assert legend_texts(fig.axes[0]) == ["io_alarm", "motion", "video_loss"]
    render(fig)


def test_alarm_timeline_of_a_capture(sample):
    fig = plots.alarm_timeline(sample, tz="UTC")
    ax = fig.axes[0]
    assert ticklabels(ax.yaxis) == ["CAM00001", "DEMO0001", "DEMO0002"]
    assert legend_texts(ax)[:3] == ["io_alarm", "motion", "video_loss"]
    same = plots.alarm_timeline(sample.alarms, sample.status, tz="UTC")
    assert ticklabels(same.axes[0].yaxis) == ticklabels(ax.yaxis)
    render(fig)


def test_many_cameras_are_capped_with_a_note():
    n = plots.MAX_LANES + 10
    alarms = frame(schema.ALARMS, [
        {"ts": at(i), "camera_id": f"CAM{i:03d}", "alarm_type": "motion", "conn": 0,
         "message": i} for i in range(n)])
    ax = plots.alarm_timeline(alarms, tz="UTC").axes[0]
    assert len(ticklabels(ax.yaxis)) == plots.MAX_LANES
    assert ax.get_title() == \
        f"Alarms by camera ({n} alarms; the {plots.MAX_LANES} busiest of {n} cameras)"
    status = frame(schema.STATUS, [
        {"ts": at(i), "camera_id": f"CAM{i:03d}", "online": True, "source": "push", "conn": 0,
         "message": i, "changed": False} for i in range(n)])
    ax = plots.status_timeline(status, tz="UTC").axes[0]
    assert len(ticklabels(ax.yaxis)) == plots.MAX_LANES
    assert ax.get_title().endswith(f"busiest of {n} cameras)")


# ------------------------------------------------------------------ status timeline


def test_status_timeline_bars_per_camera():
    _, status = alarms_and_status()
    fig = plots.status_timeline(status, tz="UTC")
    ax = fig.axes[0]
    assert ticklabels(ax.yaxis) == ["CAM1", "CAM2", "CAM3", "CAM9"]
    assert legend_texts(ax) == ["online", "offline", "unknown", "observation", "change"]
    assert ax.get_title() == "Camera status (4 cameras)"
    assert {rgb(plots.ONLINE), rgb(plots.OFFLINE), rgb(plots.UNKNOWN)} <= facecolors(ax)
    render(fig)


def test_status_timeline_of_a_capture_runs_to_its_end(sample):
    fig = plots.status_timeline(sample, tz="UTC")
    ax = fig.axes[0]
    assert ticklabels(ax.yaxis) == sorted(sample.status["camera_id"].unique())
    right = plots.mdates.num2date(ax.get_xlim()[1]).replace(tzinfo=None)
    assert right >= plots.capture_end(sample).tz_localize(None).to_pydatetime()
    render(fig)


# ------------------------------------------------------------------ sync progress


def sync_rows():
    sync = frame(schema.SYNC, [
        {"ts": at(1), "conn": 1, "kind": "upload", "camera_id": "A", "current": 1, "total": 3,
         "outcome": "ok"},
        {"ts": at(2), "conn": 1, "kind": "upload", "camera_id": "B", "current": 2, "total": 3,
         "outcome": "failed", "reason": "ID和密码不匹配"},
        {"ts": at(3), "conn": 1, "kind": "upload", "camera_id": "C", "current": 3, "total": 3,
         "outcome": "ok"},
        {"ts": at(4), "conn": 3, "kind": "download", "camera_id": "D", "current": 1,
         "total": 2, "outcome": "ok"},
        {"ts": at(5), "conn": 3, "kind": "download", "camera_id": None, "current": None,
         "total": 2, "outcome": "no_answer"},
    ])
    transfers = frame(schema.TRANSFERS, [
        {"conn": 1, "kind": "upload", "data_client": "10.0.0.1:5001", "total": 3,
         "completed": 3, "status": "complete", "start": at(0.5), "ok": 2, "failed": 1,
         "no_answer": 0},
        {"conn": 3, "kind": "download", "data_client": "10.0.0.1:5003", "total": 2,
         "completed": 1, "status": "cut_short", "start": at(3.5), "ok": 1, "failed": 0,
         "no_answer": 1},
        {"conn": 5, "kind": "download", "data_client": "10.0.0.1:5005", "total": None,
         "completed": 0, "status": "empty", "start": at(6), "ok": 0, "failed": 0,
         "no_answer": 0},
    ])
    return sync, transfers


def test_sync_progress_one_line_per_transfer_and_failures():
    sync, transfers = sync_rows()
    fig = plots.sync_progress(sync, transfers, tz="UTC")
    ax = fig.axes[0]
    lines = named_lines(ax)
    assert len(lines) == 3  # one per data connection, the empty one included
    labels = [ln.get_label() for ln in lines]
    assert labels[0] == "conn 1 upload 10.0.0.1:5001 (3/3, complete)"
    assert labels[1].startswith("conn 3 download") and "cut_short" in labels[1]
    assert labels[2].startswith("conn 5 download") and "0/?" in labels[2]
    assert list(lines[0].get_ydata()) == [0, 1, 2, 3]  # starts at 0 at the transfer's start
    legend = legend_texts(ax)
    assert "failed step" in legend and "no answer" in legend
    failed = next(c for c in ax.collections if c.get_label() == "failed step")
    assert len(failed.get_offsets()) == 1
    assert "Sync progress (3 data connections)" in ax.get_title()
    render(fig)


def test_sync_progress_without_transfers():
    sync, _ = sync_rows()
    ax = plots.sync_progress(sync, tz="UTC").axes[0]
    assert [ln.get_label() for ln in named_lines(ax)] == ["conn 1 upload", "conn 3 download"]


def test_sync_progress_of_a_capture(sample):
    fig = plots.sync_progress(sample, tz="UTC")
    lines = named_lines(fig.axes[0])
    assert len(lines) == len(sample.transfers) == 1
    assert "(6/6, complete)" in lines[0].get_label()
    render(fig)


# ------------------------------------------------------------------ sequence diagram


def test_sequence_diagram_of_a_session(sample):
    fig = plots.sequence_diagram(sample.messages, 0, tz="UTC", sessions=sample.sessions)
    ax = fig.axes[0]
    lanes = ticklabels(ax.xaxis)
    assert lanes[0] == "client\n198.51.100.7:51514"
    assert lanes[1] == "server\n192.0.2.10:9000"
    assert lanes[2].startswith("data conn 1\n192.0.2.10:9001")
    arrows = [t for t in ax.texts if isinstance(t, Annotation)]
    assert len(arrows) == len(sample.messages) == 30
    labels = [t.get_text() for t in ax.texts if not isinstance(t, Annotation)]
    assert labels[0] == "Login demo|***"
    assert labels[1].startswith("LoginOk 3|")
    assert any(lab.startswith("UploadFail CAM00003|ID和密码不匹配") for lab in labels)
    times = ticklabels(ax.yaxis)
    assert times[0] == "09:00:00.005" and len(times) == 30
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # time goes down
    assert ax.get_title().startswith("Session 0, user demo (ok)")
    # data-connection arrows end on the data lane
    upload = arrows[6]
    assert upload.xy == (2, 6) and upload.xyann == (0, 6)
    render(fig)


def test_sequence_diagram_sessions_split_one_connection():
    cap = read_capture(DOWNLOAD)
    failed = plots.sequence_diagram(cap, 1, tz="UTC")  # alice's failed login
    second = plots.sequence_diagram(cap, 2, tz="UTC")  # her retry, with its data conn
    labels = [t.get_text() for t in failed.axes[0].texts if not isinstance(t, Annotation)]
    assert [lab.split()[0] for lab in labels] == ["Login", "LoginError"]
    assert len(ticklabels(failed.axes[0].xaxis)) == 2
    second_labels = [t.get_text().split()[0] for t in second.axes[0].texts
                     if not isinstance(t, Annotation)]
    assert second_labels[:2] == ["Login", "LoginOk"] and second_labels[-1] == "DownloadFail"
    assert ticklabels(second.axes[0].xaxis)[2].startswith("data conn 3")
    with pytest.raises(ValueError, match="no session 7"):
        plots.sequence_diagram(cap, 7)


def test_sequence_diagram_by_connection_shows_linked_data_connections(sample):
    fig = plots.sequence_diagram(sample.messages, 0, tz="UTC", connections=sample.connections)
    ax = fig.axes[0]
    assert len(ticklabels(ax.xaxis)) == 3
    assert ax.get_title() == "Connection 0"
    only_main = plots.sequence_diagram(sample.messages, 0, tz="UTC")
    assert len(ticklabels(only_main.axes[0].xaxis)) == 2
    with pytest.raises(ValueError, match="no messages on connection 9"):
        plots.sequence_diagram(sample.messages, 9)


def test_sequence_diagram_is_cut_with_a_note(sample):
    fig = plots.sequence_diagram(sample, 0, tz="UTC", max_messages=5)
    ax = fig.axes[0]
    assert len(ticklabels(ax.yaxis)) == 5
    assert "first 5 of 30 messages" in ax.get_title()


def test_sequence_diagram_marks_decoding_errors():
    messages = frame(schema.MESSAGES, [
        {"ts": at(0), "conn": 0, "channel": "main", "direction": "c2s", "client": "1.1.1.1:1",
         "server": "2.2.2.2:9000", "command": "Login", "params": "a|***", "frame": 1,
         "stream_offset": 0},
        {"ts": at(1), "conn": 0, "channel": "main", "direction": "s2c", "client": "1.1.1.1:1",
         "server": "2.2.2.2:9000", "command": "LoginOk", "params": "x|y", "frame": 2,
         "error": "camera_count: 'x' is not an integer", "stream_offset": 0},
    ])
    ax = plots.sequence_diagram(messages, tz="UTC").axes[0]
    bad = [t for t in ax.texts if not isinstance(t, Annotation)][1]
    assert "not an integer" in bad.get_text()
    assert tuple(np.round(plt.matplotlib.colors.to_rgb(bad.get_color()), 2)) == \
        rgb(plots.OFFLINE)


# ------------------------------------------------------------------ message rate


def test_message_rate_stacks_commands(sample):
    fig = plots.message_rate(sample.messages, freq="30s", tz="UTC")
    ax = fig.axes[0]
    legend = legend_texts(ax)
    counts = sample.messages["command"].astype(str).value_counts()
    assert legend[0] == counts.index[0] == "UploadCaramer"
    assert legend[-1] == "other" and len(legend) == 10
    bins = 4  # 09:00:00, :30, 09:01:00, :30
    assert len(ax.patches) == bins * len(legend)
    assert sum(p.get_height() for p in ax.patches) == len(sample.messages)
    assert ax.get_title() == "Message rate (30 messages, per 30s)"
    assert ax.get_ylabel() == "messages per 30s"
    render(fig)


def test_message_rate_all_commands_when_few_and_auto_freq(sample):
    fig = plots.message_rate(sample, freq="auto", tz="UTC", top=20)
    legend = legend_texts(fig.axes[0])
    assert sorted(legend) == sorted(sample.messages["command"].astype(str).unique())
    assert "per 2s" in fig.axes[0].get_title()
    with pytest.raises(ValueError):
        plots.message_rate(sample.messages, freq="fortnightly")


# ------------------------------------------------------------------ shared behaviour


EMPTY_CASES = [
    ("alarm_timeline", lambda: plots.alarm_timeline(schema.empty_frame(schema.ALARMS),
                                                    schema.empty_frame(schema.STATUS)),
     "no alarms"),
    ("status_timeline", lambda: plots.status_timeline(schema.empty_frame(schema.STATUS)),
     "no camera status"),
    ("sync_progress", lambda: plots.sync_progress(schema.empty_frame(schema.SYNC),
                                                  schema.empty_frame(schema.TRANSFERS)),
     "no uploads or downloads"),
    ("sequence_diagram", lambda: plots.sequence_diagram(schema.empty_frame(schema.MESSAGES)),
     "no messages"),
    ("message_rate", lambda: plots.message_rate(schema.empty_frame(schema.MESSAGES)),
     "no messages"),
]


@pytest.mark.parametrize(("name", "make", "text"), EMPTY_CASES, ids=[c[0] for c in EMPTY_CASES])
def test_empty_tables_give_a_figure_that_says_so(name, make, text):
    fig = make()
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == [text]
    assert ax.get_title()
    render(fig)


def test_time_zone_moves_the_times_shown(sample):
    utc = plots.sequence_diagram(sample, 0, tz="UTC").axes[0]
    shanghai = plots.sequence_diagram(sample, 0, tz="Asia/Shanghai").axes[0]
    assert ticklabels(utc.yaxis)[0] == "09:00:00.005"
    assert ticklabels(shanghai.yaxis)[0] == "17:00:00.005"
    assert "Asia/Shanghai" in shanghai.get_ylabel()
    paris = plots.alarm_timeline(sample, tz="Europe/Paris").axes[0]
    assert paris.get_xlabel() == "time (Europe/Paris)"
    first = min(c.get_offsets()[:, 0].min() for c in paris.collections
                if c.get_label() in ("motion", "video_loss", "io_alarm"))
    assert plots.mdates.num2date(first).strftime("%H:%M:%S") == "10:00:00"


def test_resolve_tz():
    assert plots.resolve_tz("UTC") is dt.UTC
    assert plots.resolve_tz("utc") is dt.UTC
    assert plots.zone_name(plots.resolve_tz("Europe/Paris")) == "Europe/Paris"
    zone = dt.timezone(dt.timedelta(hours=5))
    assert plots.resolve_tz(zone) is zone
    assert isinstance(plots.resolve_tz(None), dt.tzinfo)
    assert isinstance(plots.resolve_tz("local"), dt.tzinfo)
    for bad in ("Mars/Base", "America", "/etc/passwd", ""):
        with pytest.raises(ValueError, match="unknown time zone"):
            plots.resolve_tz(bad)


def test_local_zone_follows_TZ(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    assert plots.zone_name(plots.local_zone()) == "America/New_York"
    ax = plots.message_rate(schema.empty_frame(schema.MESSAGES)).axes[0]
    assert ax.get_title() == "Message rate"


def test_draws_into_a_given_axes_and_leaves_pyplot_alone(sample):
    before = plt.get_fignums()
    fig = Figure(figsize=(12, 8))
    top, bottom = fig.subplots(2)
    assert plots.message_rate(sample, tz="UTC", ax=top) is fig
    assert plots.status_timeline(sample, tz="UTC", ax=bottom) is fig
    assert top.get_title().startswith("Message rate") and bottom.get_title().startswith("Camera")
    for make in (plots.alarm_timeline, plots.sync_progress, plots.sequence_diagram):
        make(sample, tz="UTC")
    assert plt.get_fignums() == before  # no pyplot figure was opened
    render(fig)


def test_many_transfers_leave_the_legend_to_failures():
    n = plots.MAX_LEGEND + 3
    sync = frame(schema.SYNC, [
        {"ts": at(i), "conn": i, "kind": "upload", "camera_id": "A", "current": 1, "total": 1,
         "outcome": "failed" if i == 0 else "ok"} for i in range(n)])
    ax = plots.sync_progress(sync, tz="UTC").axes[0]
    assert len(ax.get_lines()) == n
    assert legend_texts(ax) == ["failed step"]
    assert "not in the legend" in ax.get_title()


def test_jupyter_shows_a_figure_once_as_png(sample):
    from IPython.core.formatters import DisplayFormatter

    data, _ = DisplayFormatter().format(plots.message_rate(sample, tz="UTC"))
    assert data["image/png"][:8] == PNG_SIGNATURE

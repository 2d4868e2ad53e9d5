"""``camprotool.analysis.plots``: the timelines, the message rate, and what every plot shares.

Sync progress and the sequence diagram have their own test files
(``test_plots_sync.py``, ``test_plots_sequence.py``), as do the time axes.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.figure import Figure
from plots_support import (
    CLOCK,
    PNG_SIGNATURE,
    at,
    facecolors,
    frame,
    legend_texts,
    render,
    rgb,
    shown_ticklabels,
    ticklabels,
)

from camprotool import read_capture
from camprotool.analysis import plots, schema

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "captures" / "sample.pcapng"
FAILED = ROOT / "captures" / "failed_sync.pcapng"


@pytest.fixture(scope="module")
def sample():
    return read_capture(SAMPLE)


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
    assert ax.get_xlabel() == "time (UTC, 2025-11-28)"
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
    right = mdates.num2date(ax.get_xlim()[1]).replace(tzinfo=None)
    assert right >= plots.capture_end(sample).tz_localize(None).to_pydatetime()
    render(fig)


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
    assert ticklabels(utc.yaxis)[:2] == ["09:00:00.000", "09:00:00.005"]  # open, Login
    assert ticklabels(shanghai.yaxis)[:2] == ["17:00:00.000", "17:00:00.005"]
    assert "Asia/Shanghai" in shanghai.get_ylabel()
    paris = plots.alarm_timeline(sample, tz="Europe/Paris").axes[0]
    assert paris.get_xlabel() == "time (Europe/Paris, 2025-11-28)"
    first = min(c.get_offsets()[:, 0].min() for c in paris.collections
                if c.get_label() in ("motion", "video_loss", "io_alarm"))
    assert mdates.num2date(first).strftime("%H:%M:%S") == "10:00:00"


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


def test_jupyter_shows_a_figure_once_as_png(sample):
    from IPython.core.formatters import DisplayFormatter

    data, _ = DisplayFormatter().format(plots.message_rate(sample, tz="UTC"))
    assert data["image/png"][:8] == PNG_SIGNATURE


# ------------------------------------------------------------------ readable time axes


def clock_plots(sample):
    return {
        "alarm_timeline": plots.alarm_timeline(sample, tz="UTC"),
        "status_timeline": plots.status_timeline(sample, tz="UTC"),
        "message_rate": plots.message_rate(sample, "auto", tz="UTC"),
        "message_rate 1s": plots.message_rate(sample.messages.iloc[:12], "10ms", tz="UTC"),
    }


def test_every_time_tick_is_a_whole_clock_time_and_there_is_no_offset(sample):
    for name, fig in clock_plots(sample).items():
        ax = fig.axes[0]
        labels = shown_ticklabels(ax.xaxis)
        assert len(labels) >= 3, name
        for label in labels:
            assert re.match(CLOCK, label), f"{name}: tick {label!r} does not read alone"
        assert ax.xaxis.get_offset_text().get_text() == "", name
        assert ax.get_xlabel() == "time (UTC, 2025-11-28)", name
        assert len(set(labels)) == len(labels), f"{name}: ticks repeat {labels}"


def test_a_sub_second_axis_shows_the_fraction_it_needs(sample):
    fig = plots.message_rate(sample.messages.iloc[:12], "10ms", tz="UTC")
    labels = shown_ticklabels(fig.axes[0].xaxis)
    assert all(label.startswith("09:00:00.") for label in labels), labels
    lo, hi = fig.axes[0].get_xlim()
    locs = [x for x in fig.axes[0].get_xticks() if lo <= x <= hi]
    for label, loc in zip(labels, locs, strict=True):  # each label is its tick's time
        assert label == mdates.num2date(loc).strftime("%H:%M:%S.%f")[:len(label)]
    assert 9 <= len(labels[0]) <= 12


# ------------------------------------------------------------------ the wrong table


@pytest.fixture(scope="module")
def failed():
    return read_capture(FAILED)


WRONG = [
    ("sync_progress", "messages", "cap.sync", "plots.sync_progress(cap.sync, cap.transfers)"),
    ("sync_progress", "sessions", "cap.sync", "plots.sync_progress(cap)"),
    ("sync_progress", "transfers", "cap.sync", "plots.sync_progress(cap)"),
    ("alarm_timeline", "status", "cap.alarms", "plots.alarm_timeline(cap.alarms, cap.status)"),
    ("status_timeline", "alarms", "cap.status", "plots.status_timeline(cap.status)"),
    ("status_timeline", "messages", "cap.status", "plots.status_timeline(cap)"),
    ("alarm_timeline", "messages", "cap.alarms", "plots.alarm_timeline(cap)"),
    ("sequence_diagram", "sync", "cap.messages", "plots.sequence_diagram(cap)"),
    ("message_rate", "connections", "cap.messages", "plots.message_rate(cap.messages)"),
]


@pytest.mark.parametrize(("plot", "given", "needs", "call"), WRONG,
                         ids=[f"{w[0]}({w[1]})" for w in WRONG])
def test_the_wrong_table_names_the_right_one(failed, plot, given, needs, call):
    with pytest.raises(ValueError) as info:
        getattr(plots, plot)(getattr(failed, given))
    text = str(info.value)
    assert not isinstance(info.value, KeyError)
    assert f"{plot}() draws {needs}" in text
    assert f"given cap.{given}" in text
    assert call in text


def test_the_columns_a_plot_reads_are_enough():
    """The client panel builds its alarms and status from pushes: just these columns."""
    alarms = pd.DataFrame({"ts": [at(1), at(2)], "camera_id": ["CAM1", "CAM2"],
                           "alarm_type": ["motion", "io_alarm"]})
    status = pd.DataFrame({"ts": [at(0)], "camera_id": ["CAM1"],
                           "online": pd.array([True], dtype="boolean")})
    ax = plots.alarm_timeline(alarms, status, tz="UTC", until=at(5)).axes[0]
    assert ticklabels(ax.yaxis) == ["CAM1", "CAM2"]
    assert ticklabels(plots.status_timeline(status, tz="UTC").axes[0].yaxis) == ["CAM1"]


def test_the_wrong_second_table_and_not_a_table(failed):
    with pytest.raises(ValueError, match=r"draws cap.transfers .* given cap.sync"):
        plots.sync_progress(failed.sync, failed.sync)
    with pytest.raises(ValueError, match=r"draws cap.violations .* given cap.alarms"):
        plots.sequence_diagram(failed.messages, violations=failed.alarms)
    with pytest.raises(TypeError, match=r"takes cap.status .* not list"):
        plots.status_timeline([1, 2])

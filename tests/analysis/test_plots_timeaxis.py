"""``plots.timeaxis``: tick labels that read alone, relative axes with units, durations."""

from __future__ import annotations

import datetime as dt

import matplotlib.dates as mdates
import numpy as np
import pytest
from matplotlib.figure import Figure
from plots_support import shown_ticklabels

from camprotool.analysis.plots import timeaxis
from camprotool.analysis.plots.timeaxis import ClockFormatter


def ticks(*times: str) -> list[float]:
    return [mdates.date2num(dt.datetime.fromisoformat(t)) for t in times]


@pytest.mark.parametrize(("values", "labels"), [
    (ticks("2025-11-28 09:00:00", "2025-11-28 09:00:15", "2025-11-28 09:00:30"),
     ["09:00:00", "09:00:15", "09:00:30"]),
    (ticks("2025-11-28 11:00:00", "2025-11-28 11:00:00.050", "2025-11-28 11:00:00.100"),
     ["11:00:00.00", "11:00:00.05", "11:00:00.10"]),
    (ticks("2025-11-28 11:00:00", "2025-11-28 11:00:00.200", "2025-11-28 11:00:00.400"),
     ["11:00:00.0", "11:00:00.2", "11:00:00.4"]),
    (ticks("2025-11-28 09:00", "2025-11-28 09:05", "2025-11-28 09:10"),
     ["09:00", "09:05", "09:10"]),
    (ticks("2025-11-28 22:00", "2025-11-29 00:00", "2025-11-29 02:00"),
     ["11-28 22:00", "11-29 00:00", "02:00"]),
    (ticks("2025-11-28", "2025-11-29", "2025-11-30"),
     ["2025-11-28", "2025-11-29", "2025-11-30"]),
    (ticks("2025-11-28 09:00:00", "2025-11-28 09:00:00.000010"),
     ["09:00:00.00000", "09:00:00.00001"]),
], ids=["seconds", "50ms", "200ms", "minutes", "midnight", "days", "microseconds"])
def test_clock_formatter_labels(values, labels):
    fmt = ClockFormatter()
    assert fmt.format_ticks(values) == labels
    assert fmt.get_offset() == ""


def test_clock_formatter_single_value_and_cursor():
    fmt = ClockFormatter()
    (label,) = fmt.format_ticks(ticks("2025-11-28 09:00:07"))
    assert label == "09:00:07"
    assert fmt.format_ticks(ticks("2025-11-28 09:00:07.250")) == ["09:00:07.250"]
    assert fmt(ticks("2025-11-28 09:00:07.25")[0]) == "2025-11-28 09:00:07.250"
    assert fmt.format_ticks([]) == []


def axis_over(start: str, end: str) -> Figure:
    fig = Figure(figsize=(8, 2))
    ax = fig.add_subplot()
    lo, hi = np.datetime64(start), np.datetime64(end)
    ax.plot([lo, hi], [0, 1])
    timeaxis.time_axis(ax, dt.UTC, lo, hi)
    return fig


def test_time_axis_dates_its_label_or_its_ticks():
    one_day = axis_over("2025-11-28T09:00:00", "2025-11-28T09:02:00").axes[0]
    assert one_day.get_xlabel() == "time (UTC, 2025-11-28)"
    labels = shown_ticklabels(one_day.xaxis)
    assert labels and all(len(t) in (5, 8) and t.startswith("09:0") for t in labels), labels
    midnight = axis_over("2025-11-28T21:00:00", "2025-11-29T03:00:00").axes[0]
    assert midnight.get_xlabel() == "time (UTC)"
    labels = shown_ticklabels(midnight.xaxis)
    assert labels[0].startswith("11-28 ") and "11-29 00:00" in labels, labels
    assert midnight.xaxis.get_offset_text().get_text() == ""


@pytest.mark.parametrize(("span", "unit"), [
    (0.0, "ms"), (0.07, "ms"), (0.999, "ms"), (1.003, "s"), (125, "min"), (59.9, "s"),
    (7200, "h"), (0.0004, "µs")])
def test_relative_unit(span, unit):
    assert timeaxis.relative_unit(span)[0] == unit


def test_relative_axis_puts_the_unit_in_every_tick():
    fig = Figure()
    ax = fig.add_subplot()
    size = timeaxis.relative_axis(ax, 0.07, "time since the transfer's start")
    assert size == 1e-3
    ax.plot(np.array([0, 0.02, 0.07]) / size, [0, 1, 2])
    labels = shown_ticklabels(ax.xaxis)
    assert labels[0] == "0 ms" and all(t.endswith(" ms") for t in labels), labels
    assert ax.get_xlabel() == "time since the transfer's start"
    assert ax.xaxis.get_offset_text().get_text() == ""


@pytest.mark.parametrize(("seconds", "text"), [
    (0.0004, "400 µs"), (0.07, "70 ms"), (0.0025, "2.5 ms"), (1.0031, "1.003 s"),
    (4.999, "4.999 s"), (120.0, "2 min"), (125.002, "2 min 5 s"), (7260, "2 h 1 min"),
    (-0.5, "-500 ms")])
def test_format_duration(seconds, text):
    assert timeaxis.format_duration(seconds) == text

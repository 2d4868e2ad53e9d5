"""Messages per interval, stacked by command, on a clock-time axis."""

from __future__ import annotations

import datetime as dt

import matplotlib as mpl
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from camprotool.analysis.capture import Capture
from camprotool.analysis.plots.figure import UNKNOWN, empty, fonts, integer_ticks, new_axes
from camprotool.analysis.plots.inputs import require
from camprotool.analysis.plots.timeaxis import time_axis
from camprotool.analysis.plots.zones import resolve_tz, wall

AUTO_FREQS = ["10ms", "20ms", "50ms", "100ms", "200ms", "500ms", "1s", "2s", "5s", "10s", "15s",
              "30s", "1min", "2min", "5min", "10min", "15min", "30min", "1h", "2h", "3h", "6h",
              "12h", "1D", "7D"]


def auto_freq(span: pd.Timedelta, bins: int = 60) -> str:
    """The finest of AUTO_FREQS giving at most ``bins`` intervals over ``span``."""
    for freq in AUTO_FREQS:
        if span / pd.Timedelta(freq) <= bins:
            return freq
    return AUTO_FREQS[-1]


def message_rate(messages: pd.DataFrame | Capture, freq: str = "1min",
                 tz: str | dt.tzinfo | None = None, *, ax: Axes | None = None,
                 top: int = 9) -> Figure:
    """Messages per interval, stacked by command (the ``top`` commonest; the rest "other").

    ``freq``: a pandas frequency (``"10s"``, ``"1min"``, ``"1h"``) or ``"auto"``
    (at most 60 intervals over the capture).
    """
    if isinstance(messages, Capture):
        messages = messages.messages
    messages = require(messages, "messages", "message_rate", "plots.message_rate(cap.messages)")
    zone = resolve_tz(tz)
    with fonts():
        fig, ax = new_axes(ax, 11, 4.2)
        if not len(messages):
            empty(ax, "Message rate", "no messages")
            return fig
        times = pd.Series(wall(messages["ts"], zone))
        if freq == "auto":
            freq = auto_freq(times.max() - times.min())
        width = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))  # ValueError if bad
        commands = messages["command"].astype(str).reset_index(drop=True)
        ranked = commands.value_counts()
        keep = list(ranked.index[:top]) if len(ranked) > top + 1 else list(ranked.index)
        commands = commands.where(commands.isin(keep), "other")
        order = [*keep, *(["other"] if (commands == "other").any() else [])]
        counts = (pd.DataFrame({"t": times.dt.floor(width), "command": commands})
                  .groupby(["t", "command"]).size().unstack(fill_value=0)
                  .reindex(columns=order, fill_value=0))
        x = mdates.date2num(counts.index.to_pydatetime())
        w = width / pd.Timedelta(days=1)
        bottom = np.zeros(len(counts))
        colors = mpl.colormaps["tab10"]
        for k, cmd in enumerate(order):
            h = counts[cmd].to_numpy(float)
            ax.bar(x, h, width=w, bottom=bottom, align="edge", label=cmd,
                   color=colors(k % 10) if cmd != "other" else UNKNOWN,
                   edgecolor="white", linewidth=0.3)
            bottom += h
        ax.xaxis_date()
        time_axis(ax, zone, counts.index[0].to_datetime64(),
                  (counts.index[-1] + width).to_datetime64())
        integer_ticks(ax.yaxis)
        ax.set_ylabel(f"messages per {freq}")
        ax.grid(axis="y", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.set_title(f"Message rate ({len(messages):,} messages, per {freq})")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small",
                  title="command")
    return fig

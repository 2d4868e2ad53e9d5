"""Per-camera timelines: alarms over the camera's status, and the status alone.

One lane per camera (at most :data:`MAX_LANES`, the busiest), time across on a
:func:`~camprotool.analysis.plots.timeaxis.time_axis` so every tick reads as a
clock time. Each status observation holds until the next one for its camera.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import matplotlib as mpl
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from camprotool.analysis.capture import Capture
from camprotool.analysis.plots.figure import (
    MARKERS,
    OFFLINE,
    ONLINE,
    UNKNOWN,
    empty,
    fonts,
    new_axes,
    plural,
)
from camprotool.analysis.plots.inputs import capture_end, optional, require
from camprotool.analysis.plots.timeaxis import time_axis
from camprotool.analysis.plots.zones import resolve_tz, wall, wall_one

STATE_COLORS = {True: ONLINE, False: OFFLINE, None: UNKNOWN}
STATE_NAMES = {True: "online", False: "offline", None: "unknown"}
MAX_LANES = 40  # cameras per timeline; the rest are named in the title


def _lanes(ax: Axes, names: Sequence[str]) -> None:
    ax.set_yticks(range(len(names)), [str(n) for n in names])
    ax.set_ylim(len(names) - 0.5, -0.5)  # first lane on top
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


def _pad(lo: np.datetime64, hi: np.datetime64) -> np.timedelta64:
    """A little room after the last event so it does not sit on the frame."""
    span = int((hi - lo) / np.timedelta64(1, "ns"))
    return np.timedelta64(max(span // 50, 1_000_000) if span > 0 else 1_000_000_000, "ns")


def _pick_lanes(cameras: Sequence[str], weight: pd.Series) -> tuple[list[str], str]:
    """At most MAX_LANES cameras (the busiest), in name order; a note when some are left out."""
    cameras = sorted(cameras)
    if len(cameras) <= MAX_LANES:
        return cameras, ""
    busiest = weight.reindex(cameras, fill_value=0).sort_values(ascending=False, kind="stable")
    kept = sorted(busiest.index[:MAX_LANES])
    return kept, f"; the {MAX_LANES} busiest of {len(cameras)} cameras"


def _status_spans(status: pd.DataFrame, zone: dt.tzinfo, cameras: Sequence[str],
                  until: np.datetime64) -> dict[str, list[tuple[np.datetime64, np.datetime64,
                                                                 bool | None]]]:
    """Per camera: (start, end, online) spans, each observation lasting until the next."""
    spans: dict[str, list] = {cam: [] for cam in cameras}
    if status is None or not len(status):
        return spans
    sub = status[status["camera_id"].isin(list(cameras))]
    if not len(sub):
        return spans
    times = wall(sub["ts"], zone)
    online = sub["online"].astype("boolean").to_numpy(dtype=object, na_value=None)
    frame = pd.DataFrame({"cam": sub["camera_id"].astype(str).to_numpy(), "t": times,
                          "on": online})
    frame = frame.sort_values("t", kind="stable")
    for cam, rows in frame.groupby("cam", sort=False):
        t = rows["t"].to_numpy()
        ends = np.r_[t[1:], max(until, t[-1])]
        for start, end, on in zip(t, ends, rows["on"].tolist(), strict=True):
            if end > start:
                spans[cam].append((start, end, None if on is None else bool(on)))
    return spans


def _draw_spans(ax: Axes, spans: dict, lanes: Sequence[str], height: float,
                alpha: float) -> set:
    used: set = set()
    for i, cam in enumerate(lanes):
        for state in (True, False, None):
            bars = [(mdates.date2num(a), mdates.date2num(b) - mdates.date2num(a))
                    for a, b, on in spans.get(cam, []) if on is state]
            if bars:
                ax.broken_barh(bars, (i - height / 2, height), facecolors=STATE_COLORS[state],
                               alpha=alpha, linewidth=0)
                used.add(state)
    return used


def _state_handles(states: set, alpha: float) -> list[Patch]:
    return [Patch(facecolor=STATE_COLORS[s], alpha=alpha, label=STATE_NAMES[s])
            for s in (True, False, None) if s in states]


def alarm_timeline(alarms: pd.DataFrame | Capture, status: pd.DataFrame | None = None,
                   tz: str | dt.tzinfo | None = None, *, ax: Axes | None = None,
                   until: object = None) -> Figure:
    """One lane per camera with alarms, a marker per alarm type, its status shaded behind.

    ``alarms``: ``Capture.alarms`` (ts, camera_id, alarm_type). ``status``:
    ``Capture.status``; each observation shades its camera's lane green (online),
    red (offline) or grey (unknown) until the next one, the last until ``until``
    (a UTC time; default: the last time drawn).
    """
    if isinstance(alarms, Capture):
        cap = alarms
        alarms, status, until = cap.alarms, cap.status, capture_end(cap)
    call = "plots.alarm_timeline(cap.alarms, cap.status)"
    alarms = require(alarms, "alarms", "alarm_timeline", call)
    status = optional(status, "status", "alarm_timeline", call)
    zone = resolve_tz(tz)
    with fonts():
        n_cams = alarms["camera_id"].nunique() if len(alarms) else 0
        fig, ax = new_axes(ax, 11, 1.6 + 0.38 * min(max(n_cams, 1), MAX_LANES))
        if not len(alarms):
            empty(ax, "Alarms by camera", "no alarms")
            return fig
        cameras, note = _pick_lanes(alarms["camera_id"].dropna().astype(str).unique(),
                                    alarms["camera_id"].value_counts())
        shown = alarms[alarms["camera_id"].isin(cameras)]
        times = wall(shown["ts"], zone)
        lo, hi = times.min(), times.max()
        if status is not None and len(status):
            st = wall(status["ts"], zone)
            lo, hi = min(lo, st.min()), max(hi, st.max())
        end = wall_one(until, zone) if until is not None else hi
        end = max(end, hi + _pad(lo, hi))
        states = set()
        if status is not None:
            spans = _status_spans(status, zone, cameras, end)
            states = _draw_spans(ax, spans, cameras, 0.8, 0.28)
        lane = {cam: i for i, cam in enumerate(cameras)}
        types = shown["alarm_type"].fillna("(none)").astype(str)
        for k, kind in enumerate(sorted(types.unique())):
            mask = (types == kind).to_numpy()
            ys = [lane[c] for c in shown["camera_id"].astype(str)[mask]]
            ax.scatter(times[mask], ys, marker=MARKERS[k % len(MARKERS)], s=64, zorder=3,
                       color=mpl.colormaps["tab10"](k % 10), edgecolors="black", linewidths=0.5,
                       label=kind)
        _lanes(ax, cameras)
        left = lo - _pad(lo, end)
        ax.set_xlim(left, end)
        time_axis(ax, zone, left, end)
        handles, _ = ax.get_legend_handles_labels()
        ax.legend(handles=handles + _state_handles(states, 0.28), loc="upper left",
                  bbox_to_anchor=(1.01, 1), title="alarm type", fontsize="small")
        ax.set_title(f"Alarms by camera ({plural(len(alarms), 'alarm')}{note})")
        ax.set_ylabel("camera")
    return fig


def status_timeline(status: pd.DataFrame | Capture, tz: str | dt.tzinfo | None = None, *,
                    ax: Axes | None = None, until: object = None) -> Figure:
    """Online (green) / offline (red) / unknown (grey) bars per camera over time.

    Each observation in ``status`` (``Capture.status``) holds until the next one
    for that camera, the last until ``until`` (UTC; default: the last
    observation). A tick marks every observation, a black one every change.
    """
    if isinstance(status, Capture):
        cap = status
        status, until = cap.status, capture_end(cap)
    status = require(status, "status", "status_timeline", "plots.status_timeline(cap.status)")
    zone = resolve_tz(tz)
    with fonts():
        n_cams = status["camera_id"].nunique() if len(status) else 0
        fig, ax = new_axes(ax, 11, 1.6 + 0.38 * min(max(n_cams, 1), MAX_LANES))
        if not len(status):
            empty(ax, "Camera status", "no camera status")
            return fig
        cameras, note = _pick_lanes(status["camera_id"].dropna().astype(str).unique(),
                                    status["camera_id"].value_counts())
        times = wall(status["ts"], zone)
        lo, hi = times.min(), times.max()
        end = wall_one(until, zone) if until is not None else hi
        end = max(end, hi + _pad(lo, hi))
        spans = _status_spans(status, zone, cameras, end)
        states = _draw_spans(ax, spans, cameras, 0.6, 0.85)
        shown = status["camera_id"].isin(cameras).to_numpy()
        lane = {cam: i for i, cam in enumerate(cameras)}
        ys = np.array([lane[c] for c in status["camera_id"].astype(str)[shown]])
        changed = (status["changed"].fillna(False).astype(bool).to_numpy()[shown]
                   if "changed" in status else np.zeros(len(ys), bool))
        t = times[shown]
        if len(ys):
            ax.scatter(t[~changed], ys[~changed], marker="|", s=120, color="#444444",
                       linewidths=0.8, zorder=3, label="observation")
            if changed.any():
                ax.scatter(t[changed], ys[changed], marker="|", s=220, color="black",
                           linewidths=2, zorder=4, label="change")
        _lanes(ax, cameras)
        left = lo - _pad(lo, end)
        ax.set_xlim(left, end)
        time_axis(ax, zone, left, end)
        handles, _ = ax.get_legend_handles_labels()
        ax.legend(handles=_state_handles(states, 0.85) + handles, loc="upper left",
                  bbox_to_anchor=(1.01, 1), fontsize="small")
        ax.set_title(f"Camera status ({plural(len(cameras), 'camera')}{note})")
        ax.set_ylabel("camera")
    return fig

"""Sync progress: how far each upload/download got, and how it ended.

Transfers last from a few milliseconds to minutes and start at any time in a
capture, so drawing them on the capture's clock squashes each into a vertical
line. Here each transfer is drawn against the time since its own start:

* ``panels`` (small multiples, the default up to :data:`MAX_PANELS` transfers):
  one panel per data connection, its own time scale, the step line of the
  ``current`` position, failed steps with the server's reason, the announced
  total, and how the connection ended (FIN, or a red RST);
* ``overlay``: every transfer on one axes, all starting at 0;
* ``summary`` (the default for more): a completion histogram (how far each
  transfer got, stacked by status) and the failed steps by reason over time,
  which reads the same for 5,000 transfers as for 50.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.typing import LineStyleType

from camprotool.analysis.capture import Capture
from camprotool.analysis.plots.figure import (
    OFFLINE,
    ONLINE,
    UNKNOWN,
    WARN,
    empty,
    fonts,
    integer_ticks,
    new_axes,
    new_grid,
    plural,
)
from camprotool.analysis.plots.inputs import optional, require
from camprotool.analysis.plots.rate import auto_freq
from camprotool.analysis.plots.timeaxis import format_duration, relative_axis, time_axis
from camprotool.analysis.plots.zones import resolve_tz, wall, zone_name

MAX_PANELS = 12  # transfers drawn one panel each; more give the summary
MAX_LEGEND = 12  # transfers named in the overlay's legend
MAX_REASON_NOTES = 4  # failed steps of a panel labelled with their reason
MAX_REASONS = 6  # reasons drawn in the summary; the rest are "other reasons"
LAYOUTS = ("auto", "panels", "overlay", "summary")
STATUS_COLORS = {"complete": ONLINE, "cut_short": OFFLINE, "failed": "#9467bd",
                 "empty": UNKNOWN}
#: how a data connection ended -> (legend name, colour, line style)
CLOSES: dict[str, tuple[str, str, LineStyleType]] = {
    "fin": ("closed (FIN)", "#555555", ":"), "rst": ("reset (RST)", OFFLINE, "--")}
#: the marks of failed and unanswered steps: (outcome, scatter style), large and small
_STEP_MARKS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("failed", {"marker": "x", "s": 70, "color": OFFLINE, "linewidths": 2}),
    ("no_answer", {"marker": "o", "s": 70, "facecolors": "none", "edgecolors": "black"}))
_SMALL_STEP_MARKS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("failed", {"marker": "x", "s": 30, "color": OFFLINE}),
    ("no_answer", {"marker": "o", "s": 30, "facecolors": "none", "edgecolors": "black"}))
CALL = "plots.sync_progress(cap.sync, cap.transfers)"


@dataclass
class Transfer:
    """One data connection's steps, in seconds since its start."""

    conn: int
    kind: str
    who: str
    start: pd.Timestamp
    end: pd.Timestamp | None
    close: str | None
    total: float | None
    completed: int
    status: str
    t: np.ndarray
    current: np.ndarray
    outcome: np.ndarray
    reason: list[str]
    announced: bool = True  # False: a data connection no main connection announced
    rules: list[str] | None = None  # per step: the rules its request or answer broke

    @property
    def label(self) -> str:
        who = f" {self.who}" if self.who else ""
        return f"conn {self.conn} {self.kind}{who}" + ("" if self.announced else
                                                       " (not announced)")

    @property
    def progress(self) -> str:
        total = "?" if self.total is None else int(self.total)
        state = f", {self.status}" if self.status else ""
        return f"{self.completed}/{total}{state}"

    @property
    def length(self) -> float:
        """Seconds from the start to the end (or the last step)."""
        last = float(self.t[-1]) if len(self.t) else 0.0
        if self.end is not None:
            last = max(last, (self.end - self.start).total_seconds())
        return last


def _text(value: object) -> str:
    return "" if value is None or (not isinstance(value, list | np.ndarray) and pd.isna(value)) \
        else str(value)


def _step_rules(sync: pd.DataFrame, violations: pd.DataFrame | None) -> np.ndarray:
    """Per step of ``sync``: the rules its request or answer message broke ("" for none)."""
    out = np.full(len(sync), "", object)
    if violations is None or not len(violations) or not len(sync):
        return out
    by_message: dict[int, str] = {}
    for message, rule in zip(violations["message"], violations["rule"].astype(str),
                             strict=True):
        if not pd.isna(message):
            known = by_message.get(int(message))
            by_message[int(message)] = rule if not known else f"{known}\n{rule}"
    for column in ("request", "answer"):
        if column in sync:
            found = sync[column].astype("Int64").map(pd.Series(by_message, dtype=object))
            found = found.astype(object).where(found.notna(), "").to_numpy(dtype=object)
            out = np.where((out != "") & (found != ""), out + "\n" + found,
                           np.where(out != "", out, found))
    return out


def _collect(sync: pd.DataFrame, transfers: pd.DataFrame | None,
             violations: pd.DataFrame | None = None) -> list[Transfer]:
    """One Transfer per data connection in ``sync`` or ``transfers``, by start time.

    Columns are turned into NumPy arrays once and sliced per connection, so
    5,000 transfers cost milliseconds, not a pandas call each.
    """
    sync = sync.sort_values("ts", kind="stable").reset_index(drop=True)
    groups = sync.groupby("conn").indices if len(sync) else {}
    info = {} if transfers is None else {int(r["conn"]): r for r in transfers.to_dict("records")}
    ts = pd.to_datetime(sync["ts"], utc=True).to_numpy("datetime64[ns]").view(np.int64)
    numbers = pd.to_numeric(sync["current"], errors="coerce").astype("Float64")
    current = numbers.groupby(sync["conn"]).ffill().fillna(0).to_numpy(float)
    totals = pd.to_numeric(sync["total"], errors="coerce").astype("Float64") \
        .groupby(sync["conn"]).max() if len(sync) else pd.Series(dtype="Float64")
    outcome = sync["outcome"].astype(str).to_numpy()
    kinds = sync["kind"].astype(str).to_numpy()
    reasons = sync["reason"].astype(object).where(sync["reason"].notna(), "").astype(str) \
        .to_numpy() if "reason" in sync else np.full(len(sync), "", object)
    rules = _step_rules(sync, violations)
    out = []
    for conn in sorted({int(c) for c in groups} | set(info)):
        pos = groups.get(conn, np.zeros(0, np.int64))
        row = info.get(conn, {})
        start = row.get("start")
        if start is None or pd.isna(start):
            if not len(pos):
                continue  # a transfer row with no time and no step: nothing to place
            start = pd.Timestamp(int(ts[pos[0]]), tz="UTC")
        start = pd.Timestamp(start)
        end = row.get("end")
        end = None if end is None or pd.isna(end) else pd.Timestamp(end)
        total = row.get("total")
        if (total is None or pd.isna(total)) and len(pos):
            total = totals.get(conn)
        total = None if total is None or pd.isna(total) else float(total)
        kind = _text(row.get("kind")) or (kinds[pos[0]] if len(pos) else "transfer")
        done = row.get("completed")
        completed = int(done) if done is not None and not pd.isna(done) else \
            int((outcome[pos] != "no_answer").sum())
        out.append(Transfer(
            conn=conn, kind=kind, who=_text(row.get("data_client")), start=start, end=end,
            close=_text(row.get("close_reason")) or None, total=total, completed=completed,
            status=_text(row.get("status")), t=(ts[pos] - start.value) / 1e9,
            current=current[pos], outcome=outcome[pos], reason=list(reasons[pos]),
            announced=not row or "main_conn" not in row or not pd.isna(row["main_conn"]),
            rules=list(rules[pos])))
    return sorted(out, key=lambda x: (x.start, x.conn))


def sync_progress(sync: pd.DataFrame | Capture, transfers: pd.DataFrame | None = None,
                  tz: str | dt.tzinfo | None = None, *, ax: Axes | None = None,
                  layout: str = "auto", max_panels: int = MAX_PANELS,
                  violations: pd.DataFrame | None = None) -> Figure:
    """How far each upload/download got, against the time since its own start.

    ``sync``: ``Capture.sync``; ``transfers`` (``Capture.transfers``, optional)
    adds each connection's start, totals, status and close reason, and the
    transfers that carried no step. ``layout``: ``"panels"`` (one panel per
    transfer), ``"overlay"`` (all on one axes), ``"summary"`` (completion
    histogram and failed steps by reason over time) or ``"auto"``: panels up
    to ``max_panels`` transfers, the summary beyond. Panels and summary given
    an ``ax`` take its place in its figure. ``violations`` (``Capture.violations``)
    marks, in the panels, the steps whose request or answer broke a rule. A
    Capture gives all three tables.
    """
    if isinstance(sync, Capture):
        cap = sync
        sync, transfers, violations = cap.sync, cap.transfers, cap.violations
    sync = require(sync, "sync", "sync_progress", CALL)
    transfers = optional(transfers, "transfers", "sync_progress", CALL)
    violations = optional(violations, "violations", "sync_progress", CALL)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    if max_panels < 1:
        raise ValueError(f"max_panels must be at least 1, not {max_panels}")
    zone = resolve_tz(tz)
    with fonts():
        items = _collect(sync, transfers, violations)
        if not items:
            fig, ax = new_axes(ax, 11, 4)
            empty(ax, "Sync progress", "no uploads or downloads")
            return fig
        if layout == "auto":
            layout = "panels" if len(items) <= max_panels else "summary"
        if layout == "overlay":
            return _overlay(items, zone, ax)
        if layout == "panels":
            return _panels(items, zone, ax, max_panels)
        return _summary(items, sync, transfers, zone, ax)


# ------------------------------------------------------------------ one transfer


def _draw_transfer(ax: Axes, item: Transfer, size: float, color: object, label: str,
                   notes: bool) -> set[str]:
    """The step line of one transfer on a relative axis (values in units of ``size`` s).

    Returns the kinds of marks drawn, for the legend.
    """
    t = np.r_[0.0, item.t] / size
    y = np.r_[0.0, item.current]
    ax.plot(t, y, drawstyle="steps-post", marker=".", color=color, label=label)
    used = set()
    for outcome, style in _STEP_MARKS:
        hit = np.flatnonzero(item.outcome == outcome)
        if len(hit):
            ax.scatter(item.t[hit] / size, item.current[hit], zorder=4,
                       label="failed step" if outcome == "failed" else "no answer", **style)
            used.add(outcome)
    rules = item.rules or []
    broke = [i for i, rule in enumerate(rules) if rule]
    if notes and broke:
        ax.scatter(item.t[broke] / size, item.current[broke], marker="^", s=70, color=WARN,
                   edgecolors="black", linewidths=0.5, zorder=5, label="protocol violation")
        for i in broke:
            ax.annotate(rules[i], (item.t[i] / size, item.current[i]), xytext=(-6, 6),
                        textcoords="offset points", ha="right", va="bottom", fontsize=7,
                        color=WARN, fontweight="bold", gid="violation")
        used.add("violation")
    if notes:
        failed = np.flatnonzero(item.outcome == "failed")
        if 0 < len(failed) <= MAX_REASON_NOTES:
            for j in failed:
                if item.reason[j]:
                    ax.annotate(item.reason[j], (item.t[j] / size, item.current[j]),
                                xytext=(6, -3), textcoords="offset points", fontsize=7,
                                color=OFFLINE, va="top")
    if item.total is not None:
        ax.axhline(item.total, color=color, linestyle="dotted", linewidth=1)
        used.add("total")
    if item.end is not None and item.close in CLOSES:
        _, close_color, close_style = CLOSES[item.close]
        x = (item.end - item.start).total_seconds() / size
        ax.axvline(x, color=close_color, linestyle=close_style, linewidth=1.2)
        if notes:
            ax.annotate(item.close.upper(), (x, 1), xycoords=("data", "axes fraction"),
                        xytext=(-3, -3), textcoords="offset points", ha="right", va="top",
                        fontsize=8, color=close_color, fontweight="bold")
        used.add(item.close)
    return used


def _legend_handles(used: set[str]) -> list:
    handles = [Line2D([], [], color="#1f77b4", marker=".", drawstyle="steps-post",
                      label="current (step reached)")]
    if "failed" in used:
        handles.append(Line2D([], [], color=OFFLINE, marker="x", linestyle="",
                              markeredgewidth=2, markersize=8, label="failed step"))
    if "no_answer" in used:
        handles.append(Line2D([], [], color="black", marker="o", markerfacecolor="none",
                              linestyle="", markersize=8, label="no answer"))
    if "violation" in used:
        handles.append(Line2D([], [], color=WARN, marker="^", markeredgecolor="black",
                              linestyle="", markersize=8, label="protocol violation"))
    if "total" in used:
        handles.append(Line2D([], [], color="#1f77b4", linestyle="dotted",
                              label="announced total"))
    for close, (name, color, style) in CLOSES.items():
        if close in used:
            handles.append(Line2D([], [], color=color, linestyle=style, label=name))
    return handles


def _finish_y(ax: Axes, top: float) -> None:
    ax.set_ylim(0, max(top, 1) * 1.12 + 0.2)
    integer_ticks(ax.yaxis)
    ax.grid(color="#e4e4e4", linewidth=0.6)
    ax.set_axisbelow(True)


def _panels(items: list[Transfer], zone: dt.tzinfo, ax: Axes | None,
            max_panels: int) -> Figure:
    shown = items[:max_panels]
    n = len(shown)
    ncols = 1 if n == 1 else 2 if n <= 4 else 3
    nrows = math.ceil(n / ncols)
    fig, grid = new_grid(ax, 11, 1.2 + 2.6 * nrows, nrows, ncols)
    used: set[str] = set()
    colors = mpl.colormaps["tab10"]
    for k, item in enumerate(shown):
        pax = fig.add_subplot(grid[k // ncols, k % ncols])
        length = item.length
        size = relative_axis(pax, length, "time since the transfer's start" if
                             k // ncols == nrows - 1 or k + ncols >= n else "")
        used |= _draw_transfer(pax, item, size, colors(k % 10), item.label, notes=True)
        pax.set_xlim(-0.02 * max(length, 1e-3) / size, max(length, 1e-3) * 1.06 / size)
        _finish_y(pax, max(item.total or 0, float(item.current.max(initial=0))))
        if k % ncols == 0:
            pax.set_ylabel("step reached (current)")
        start = pd.Timestamp(wall(pd.Series([item.start]), zone)[0])
        closed = f", {CLOSES[item.close][0]}" if item.close in CLOSES else ""
        pax.set_title(f"{item.label}\n{item.progress}{closed}\nstarted "
                      f"{start:%H:%M:%S}.{start.microsecond // 1000:03d}, "
                      f"lasted {format_duration(length)}", fontsize=8.5, loc="left")
    more = f"; the first {n} of {len(items):,}" if len(items) > n else ""
    start = pd.Timestamp(wall(pd.Series([shown[0].start]), zone)[0])
    fig.suptitle(f"Sync progress ({plural(len(items), 'data connection')}{more}; "
                 f"times in {zone_name(zone)} on {start:%Y-%m-%d})")
    fig.legend(handles=_legend_handles(used), loc="outside lower center",
               ncols=len(_legend_handles(used)), fontsize="small", frameon=False)
    return fig


def _overlay(items: list[Transfer], zone: dt.tzinfo, ax: Axes | None) -> Figure:
    fig, ax = new_axes(ax, 11, 4.5)
    longest = max(item.length for item in items)
    size = relative_axis(ax, longest, "time since each transfer's start")
    legend = len(items) <= MAX_LEGEND
    if legend:
        colors = mpl.colormaps["tab10"]
        for k, item in enumerate(items):
            _draw_transfer(ax, item, size, colors(k % 10), f"{item.label} ({item.progress})",
                           notes=False)
    else:
        _draw_many(ax, items, size)
    ax.set_xlim(-0.01 * max(longest, 1e-3) / size, max(longest, 1e-3) * 1.04 / size)
    _finish_y(ax, max(max(i.total or 0, float(i.current.max(initial=0))) for i in items))
    ax.set_ylabel("cameras synced (current)")
    note = "" if legend else "; one line each, not in the legend"
    ax.set_title(f"Sync progress ({plural(len(items), 'data connection')}{note})")
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles[:MAX_LEGEND + 2], loc="upper left", bbox_to_anchor=(1.01, 1),
              fontsize="small")
    return fig


def _draw_many(ax: Axes, items: list[Transfer], size: float) -> None:
    """Every transfer's step line as one collection, and each kind of mark as one scatter.

    An artist per transfer (line, total, close) makes 5,000 transfers take
    minutes to draw; a collection takes a second.
    """
    paths, ends, end_y, resets = [], [], [], []
    for item in items:
        t = np.r_[0.0, item.t] / size
        y = np.r_[0.0, item.current]
        xs = np.repeat(t, 2)[1:]  # steps-post: across, then up
        ys = np.repeat(y, 2)[:-1]
        paths.append(np.column_stack([xs, ys]))
        if item.end is not None and item.close in CLOSES:
            ends.append((item.end - item.start).total_seconds() / size)
            end_y.append(y[-1])
            resets.append(item.close == "rst")
    ax.add_collection(LineCollection(paths, colors="#1f77b4", linewidths=0.6, alpha=0.35,
                                     label="_nolegend_"), autolim=True)
    for outcome, style in _SMALL_STEP_MARKS:
        x = np.concatenate([item.t[item.outcome == outcome] / size for item in items])
        y = np.concatenate([item.current[item.outcome == outcome] for item in items])
        if len(x):
            ax.scatter(x, y, zorder=4, label="failed step" if outcome == "failed"
                       else "no answer", **style)
    reset = np.array(resets, bool)
    if reset.any():
        ax.scatter(np.array(ends)[reset], np.array(end_y)[reset], marker="|", s=80,
                   color=OFFLINE, zorder=4, label="reset (RST)")
    ax.autoscale_view()


# ------------------------------------------------------------------ many transfers


def completion_bins(items: list[Transfer]) -> tuple[list[str], list[int]]:
    """Bin labels (``0-9%`` ... ``90-99%``, ``100%``, ``total unknown``) and each item's bin."""
    labels = [f"{10 * i}–{10 * i + 9}%" for i in range(10)] + ["100%"]
    index = []
    for item in items:
        if item.total is None or item.total <= 0:
            index.append(11)
            continue
        share = item.completed / item.total
        index.append(10 if share >= 1 else min(int(share * 100) // 10, 9))
    if 11 in index:
        labels.append("total unknown")
    return labels, index


def _summary(items: list[Transfer], sync: pd.DataFrame, transfers: pd.DataFrame | None,
             zone: dt.tzinfo, ax: Axes | None) -> Figure:
    fig, grid = new_grid(ax, 11, 8, 2, 1)
    hist, rate = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    _completion(hist, items)
    _failures(rate, sync, items, zone)
    fig.suptitle(f"Sync progress of {plural(len(items), 'data connection')}")
    return fig


def _completion(ax: Axes, items: list[Transfer]) -> None:
    labels, index = completion_bins(items)
    statuses = pd.Series([item.status or "unknown" for item in items])
    order = [s for s in STATUS_COLORS if (statuses == s).any()]
    order += sorted(set(statuses) - set(order))
    counts = pd.crosstab(pd.Series(index, name="bin"), statuses.rename("status"))
    counts = counts.reindex(index=range(len(labels)), columns=order, fill_value=0)
    bottom = np.zeros(len(labels))
    x = np.arange(len(labels))
    for k, status in enumerate(order):
        h = counts[status].to_numpy(float)
        color = STATUS_COLORS.get(status, mpl.colormaps["tab10"](5 + k % 5))
        ax.bar(x, h, bottom=bottom, color=color, label=f"{status} ({int(h.sum()):,})",
               edgecolor="white", linewidth=0.4)
        bottom += h
    for xi, total in zip(x, bottom, strict=True):
        if total:
            ax.annotate(f"{int(total):,}", (xi, total), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, labels, fontsize=8)
    ranked = np.sort(bottom[bottom > 0])[::-1]
    if len(ranked) > 1 and ranked[0] > 10 * ranked[1]:
        # one bin (usually 100 %) dwarfs the rest: a log scale keeps the few cut short visible
        ax.set_yscale("log")
        ax.set_ylim(0.8, ranked[0] * 3)
        ax.set_ylabel("transfers (log scale)")
    else:
        ax.set_ylim(0, max(bottom.max(), 1) * 1.15)
        ax.set_ylabel("transfers")
    ax.set_xlabel("cameras synced as a share of the announced total (completed / total)")
    ax.grid(axis="y", color="#e4e4e4", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.set_title(f"Completion of {plural(len(items), 'transfer')}")
    ax.legend(title="status", loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")


def failure_reasons(sync: pd.DataFrame) -> pd.Series:
    """Why each step that did not succeed failed: the server's reason, or ``no answer``."""
    outcome = sync["outcome"].astype(str)
    reason = (sync["reason"] if "reason" in sync else pd.Series(None, index=sync.index))
    reason = reason.astype("string").str.strip().replace("", pd.NA)
    out = outcome.where(outcome != "no_answer", "no answer")
    out = out.where(outcome != "failed", reason.fillna("failed (no reason given)"))
    return out[outcome != "ok"].astype(str)


def _failures(ax: Axes, sync: pd.DataFrame, items: list[Transfer], zone: dt.tzinfo) -> None:
    reasons = failure_reasons(sync)
    first = min(item.start for item in items)
    last = max(item.start + pd.Timedelta(seconds=item.length) for item in items)
    if len(sync):
        first, last = min(first, sync["ts"].min()), max(last, sync["ts"].max())
    lo, hi = (pd.Timestamp(t) for t in wall(pd.Series([first, last]), zone))
    freq = auto_freq(hi - lo)
    width = pd.Timedelta(freq)
    edges_lo, edges_hi = lo.floor(width), hi.floor(width) + width
    if not len(reasons):
        ax.text(0.5, 0.5, f"no failed or unanswered steps (of {len(sync):,})",
                ha="center", va="center", color="#555555", transform=ax.transAxes)
        ax.set_title("Failed steps by reason")
    else:
        ranked = reasons.value_counts()
        keep = list(ranked.index[:MAX_REASONS]) if len(ranked) > MAX_REASONS + 1 else \
            list(ranked.index)
        named = reasons.where(reasons.isin(keep), "other reasons")
        order = [*keep, *(["other reasons"] if (named == "other reasons").any() else [])]
        when = pd.Series(wall(sync.loc[reasons.index, "ts"], zone)).dt.floor(width)
        counts = (pd.DataFrame({"t": when.to_numpy(), "reason": named.to_numpy()})
                  .groupby(["t", "reason"]).size().unstack(fill_value=0)
                  .reindex(columns=order, fill_value=0))
        x = mdates.date2num(counts.index.to_pydatetime())
        bottom = np.zeros(len(counts))
        for k, reason in enumerate(order):
            h = counts[reason].to_numpy(float)
            color = UNKNOWN if reason == "other reasons" else \
                "#444444" if reason == "no answer" else mpl.colormaps["Set1"](k % 9)
            ax.bar(x, h, width=width / pd.Timedelta(days=1), bottom=bottom, align="edge",
                   color=color, edgecolor="white", linewidth=0.3,
                   label=f"{reason} ({int(h.sum()):,})")
            bottom += h
        ax.legend(title="reason (steps)", loc="upper left", bbox_to_anchor=(1.01, 1),
                  fontsize="small")
        ax.set_title(f"Failed steps by reason ({len(reasons):,} of {len(sync):,} steps, "
                     f"per {freq})")
        integer_ticks(ax.yaxis)
    ax.set_xlim(edges_lo.to_datetime64(), edges_hi.to_datetime64())
    time_axis(ax, zone, edges_lo.to_datetime64(), edges_hi.to_datetime64())
    ax.set_ylabel(f"failed steps per {freq}")
    ax.grid(axis="y", color="#e4e4e4", linewidth=0.6)
    ax.set_axisbelow(True)

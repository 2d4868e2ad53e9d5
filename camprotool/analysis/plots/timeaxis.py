"""Time axes whose tick labels read on their own.

matplotlib's concise date formatter labels ticks ``00.05 00.10`` and moves the
rest of the time into an offset ("2025-Nov-28 09:00") in the corner, which
nobody connects with the ticks. Here every tick label is a whole clock time
at the precision the tick step needs (``09:00:15``, ``11:00:00.05``), the
date goes into the axis label (or, on an axis that crosses midnight, before
the first tick of each day), and there is never an offset.

Relative axes ("time since the transfer's start") put the unit in every tick
(``0 ms``, ``20 ms``, ``1.5 s``), with the unit chosen from the span shown.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import matplotlib.dates as mdates
import matplotlib.ticker as mticker
import numpy as np
from matplotlib.axes import Axes

from camprotool.analysis.plots.zones import zone_name

#: (unit name, seconds) for relative axes and durations, largest first
UNITS = [("h", 3600.0), ("min", 60.0), ("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)]


class ClockFormatter(mticker.Formatter):
    """Each tick a full wall-clock time: ``HH:MM`` to ``HH:MM:SS.ffffff`` by the tick step.

    On an axis that spans more than one day, the first tick and the first tick
    of each new day carry the date too (``11-29 00:00``); ticks a day or more
    apart are dates (``2025-11-28``).
    """

    def format_ticks(self, values: Sequence[float]) -> list[str]:
        if not len(values):
            return []
        times = [mdates.num2date(v).replace(tzinfo=None) for v in values]
        if len(values) == 1:  # one tick: as precise as its own value
            us = times[0].microsecond
            return [_clock(times[0], 0 if not us else 3 if us % 1000 == 0 else 6)]
        # the step in whole microseconds: float days carry noise below that
        step = max(round(float(min(np.diff(values))) * 86400.0, 6), 1e-6)
        if step >= 86400 - 1e-6:
            return [t.strftime("%Y-%m-%d") for t in times]
        if step >= 60 - 1e-9 and all(t.second == 0 and t.microsecond == 0 for t in times):
            clock = [t.strftime("%H:%M") for t in times]
        else:
            digits = 0 if step >= 1 - 1e-9 else min(6, math.ceil(-math.log10(step) - 1e-9))
            clock = [_clock(t, digits) for t in times]
        days = [t.date() for t in times]
        if len(set(days)) == 1:
            return clock
        return [(t.strftime("%m-%d ") if i == 0 or days[i - 1] != t.date() else "") + c
                for i, (t, c) in enumerate(zip(times, clock, strict=True))]

    def __call__(self, x: float, pos: int | None = None) -> str:
        """One value (the cursor readout in an interactive window): date and time, in ms."""
        return _clock(mdates.num2date(x).replace(tzinfo=None), 3, date=True)

    def get_offset(self) -> str:
        return ""


def _clock(t: dt.datetime, digits: int, date: bool = False) -> str:
    text = t.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")
    if digits:
        text += "." + f"{t.microsecond:06d}"[:digits]
    return text


def time_axis(ax: Axes, zone: dt.tzinfo, lo: np.datetime64 | None = None,
              hi: np.datetime64 | None = None, axis: str = "x", max_ticks: int = 8) -> None:
    """Make ``ax``'s ``axis`` a wall-clock axis in ``zone`` with :class:`ClockFormatter`.

    ``lo``/``hi`` (the wall-clock times drawn) put the date in the axis label
    when they fall on one day: ``time (UTC, 2025-11-28)``.
    """
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=max_ticks))
    target.set_major_formatter(ClockFormatter())
    label = f"time ({zone_name(zone)})"
    if lo is not None and hi is not None:
        first, last = (np.datetime_as_string(v.astype("datetime64[D]")) for v in (lo, hi))
        if first == last:
            label = f"time ({zone_name(zone)}, {first})"
    if axis == "x":
        ax.set_xlabel(label)
    else:
        ax.set_ylabel(label)


def relative_unit(span_s: float) -> tuple[str, float]:
    """The unit a span of ``span_s`` seconds reads best in: at least one whole unit shown."""
    span_s = abs(float(span_s))
    for name, size in UNITS:
        if span_s >= size:
            return name, size
    return UNITS[-2]  # nothing or a sliver: milliseconds


def relative_axis(ax: Axes, span_s: float, label: str, axis: str = "x") -> float:
    """Make ``axis`` a time-since axis in the unit ``span_s`` needs; the unit's seconds.

    Draw values in that unit (seconds divided by the returned size); every tick
    label carries the unit (``20 ms``) and the axis is labelled ``label``.
    """
    name, size = relative_unit(span_s)
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(mticker.MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
    target.set_major_formatter(mticker.FuncFormatter(lambda v, _pos: f"{v:g} {name}"))
    (ax.set_xlabel if axis == "x" else ax.set_ylabel)(label)
    return size


def format_duration(seconds: float) -> str:
    """A pause or a transfer's length as a person says it: ``70 ms``, ``5 s``, ``2 min 5 s``."""
    s = float(seconds)
    if s < 0:
        return "-" + format_duration(-s)
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    if s < 120:
        return f"{s:.4g} s"
    if s < 7200:
        minutes, rest = divmod(round(s), 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(round(s / 60), 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"

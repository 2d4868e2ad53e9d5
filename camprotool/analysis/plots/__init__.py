"""Plots of a capture's tables, drawn with matplotlib's object API.

Every function returns a :class:`matplotlib.figure.Figure` and never calls
``plt.show()``: figures are built without pyplot, so they work headless (Agg),
display once in a notebook (as a cell's value) and leave no global state.
Each takes the tables it draws (so any filtered frame can be plotted) or a
whole :class:`~camprotool.analysis.capture.Capture`::

    from camprotool.analysis import plots
    plots.alarm_timeline(cap.alarms, cap.status, tz="Europe/Paris")
    plots.alarm_timeline(cap)              # the same, from the capture

``tz`` is the zone times are *shown* in (an IANA name such as
``"Asia/Shanghai"``, ``"UTC"``, a ``tzinfo``, or None for the machine's local
zone); the tables themselves stay in UTC. Time axes label every tick with a
whole clock time (or a duration with its unit), never with a bare offset.
``ax`` draws into an existing axes instead of a new figure. Empty tables give
a figure that says so; the wrong table gives an error that names the right one.

One module per job: ``zones`` (display zones), ``timeaxis`` (readable time
axes), ``figure`` (fonts, figure class, grids), ``inputs`` (table checks),
``timelines``, ``sync``, ``sequence`` and ``rate`` (the plots).
"""

from camprotool.analysis.plots.figure import OFFLINE, ONLINE, UNKNOWN, WARN, PlotFigure
from camprotool.analysis.plots.inputs import capture_end
from camprotool.analysis.plots.rate import AUTO_FREQS, auto_freq, message_rate
from camprotool.analysis.plots.sequence import GAP, MAX_ROWS, row_positions, sequence_diagram
from camprotool.analysis.plots.sync import MAX_LEGEND, MAX_PANELS, sync_progress
from camprotool.analysis.plots.timeaxis import ClockFormatter, format_duration
from camprotool.analysis.plots.timelines import MAX_LANES, alarm_timeline, status_timeline
from camprotool.analysis.plots.zones import local_zone, resolve_tz, zone_name

__all__ = [
    "AUTO_FREQS",
    "GAP",
    "MAX_LANES",
    "MAX_LEGEND",
    "MAX_PANELS",
    "MAX_ROWS",
    "OFFLINE",
    "ONLINE",
    "UNKNOWN",
    "WARN",
    "ClockFormatter",
    "PlotFigure",
    "alarm_timeline",
    "auto_freq",
    "capture_end",
    "format_duration",
    "local_zone",
    "message_rate",
    "resolve_tz",
    "row_positions",
    "sequence_diagram",
    "status_timeline",
    "sync_progress",
    "zone_name",
]

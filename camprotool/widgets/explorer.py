"""``CaptureExplorer``: filter a capture's messages, see the table and plots, export.

::

    from camprotool.widgets import CaptureExplorer
    CaptureExplorer("captures/sample.pcapng")      # or a Capture, or None and pick a file

Filters combine with AND; an empty multiple selection means "all". A message
matches a camera when the camera is its ``camera_id``, one of its ``ids``
(status query) or one of its ``statuses`` (status answer). A session is its
main connection's messages from its Login up to the next Login there, plus its
data connections. The plots take the analysis tables' rows that belong to the
selected messages (``alarms``/``status`` by ``message``, ``sync`` by
``request``/``answer``, ``transfers`` by data connection).

Loading and filtering run on a worker thread (the kernel stays free); a
filter change while plots are drawn makes the stale drawing stop early.

The camera list of a large capture holds thousands of ids: a search box
narrows it (the cameras already picked stay listed). The table shows each
message's ``frame``; the **Packets** row below it drills down from a message
(its ``#``), a frame or a connection to the packets, with a hex view and the
``wireshark -r FILE -g FRAME`` line that opens the capture there. The status
line always says what the last action did and when.

Widget updates keep the browser's view consistent: a selection list's
selection is cleared *before* its options change (the view would otherwise
select an option index the new list does not have).
"""

from __future__ import annotations

import datetime
import html
import itertools
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from camprotool.analysis.render import frame_table
from camprotool.widgets._common import (
    ERROR,
    INFO,
    OK,
    Debouncer,
    Worker,
    close_all,
    describe_error,
    show_figure,
    status_html,
    text_output,
)
from camprotool.widgets._ipywidgets import widgets  # names the extra if missing
from camprotool.widgets.packets_panel import PacketsPanel, wireshark_hint

if TYPE_CHECKING:
    from camprotool.analysis.capture import Capture

log = logging.getLogger("camprotool.widgets.explorer")

TABLE_COLUMNS = ["frame", "ts", "conn", "channel", "direction", "command", "camera_id",
                 "params", "error"]
PLOTS = ("message_rate", "sequence_diagram", "alarm_timeline", "status_timeline",
         "sync_progress")
TIME_STEPS = 100
#: cameras listed at once; the search box narrows a longer list
MAX_CAMERA_OPTIONS = 500


def find_captures(directory: str | os.PathLike[str]) -> list[str]:
    """``*.pcap*`` files in ``directory`` and its direct subdirectories."""
    root = Path(directory)
    found = itertools.chain(root.glob("*.pcap*"), root.glob("*/*.pcap*"))
    return sorted(str(p) for p in found if p.is_file())


def camera_mask(messages: pd.DataFrame, cameras: set[str]) -> np.ndarray:
    """Messages about one of ``cameras``: its camera_id, ids or statuses."""
    mask = np.zeros(len(messages), bool)
    if "camera_id" in messages:
        mask |= messages["camera_id"].isin(list(cameras)).to_numpy(dtype=bool)
    if "ids" in messages:
        mask |= messages["ids"].map(
            lambda v: v is not None and not _isna(v) and any(i in cameras for i in v)
        ).to_numpy(dtype=bool)
    if "statuses" in messages:
        mask |= messages["statuses"].map(
            lambda v: v is not None and not _isna(v) and any(_pair_id(p) in cameras for p in v)
        ).to_numpy(dtype=bool)
    return mask


def _pair_id(pair: Any) -> str:
    """The camera of a ``statuses`` item: a dict in a capture, a tuple in a live log."""
    return str(pair["camera_id"] if isinstance(pair, dict) else pair[0])


def _isna(value: Any) -> bool:
    return value is pd.NA or (isinstance(value, float) and np.isnan(value))


def match_cameras(cameras: list[str], query: str, keep: tuple[str, ...] = (),
                  limit: int = MAX_CAMERA_OPTIONS) -> tuple[list[str], int]:
    """The cameras whose id contains ``query`` (any case; words must all appear), at
    most ``limit`` of them, plus those in ``keep`` (already picked); and how many match."""
    words = query.upper().split()
    found = [c for c in cameras if all(w in c.upper() for w in words)] if words else cameras
    shown = sorted(set(found[:limit]) | set(keep))
    return shown, len(found)


def cameras_in(messages: pd.DataFrame) -> list[str]:
    cams: set[str] = set()
    if "camera_id" in messages:
        cams |= set(messages["camera_id"].dropna().astype(str))
    for col, pick in (("ids", lambda v: v), ("statuses", lambda v: [_pair_id(p) for p in v])):
        if col in messages:
            for v in messages[col].dropna():
                cams |= {str(c) for c in pick(v)}
    return sorted(cams)


class CaptureExplorer:
    """Filters, table, plots and export for one capture.

    ``capture_or_path``: a :class:`~camprotool.analysis.capture.Capture`, a path
    to load at once, or None (pick one in the path box). ``directory``: where
    the path box looks for ``*.pcap*`` files (default: the working directory
    and its subdirectories). ``tz``: the zone times are shown in (None: the
    machine's). ``max_rows``: table rows shown (export has them all).
    ``read_options`` go to :func:`camprotool.read_capture` (``dialect``,
    ``ports``, ``reveal_passwords``).
    """

    def __init__(self, capture_or_path: Capture | str | os.PathLike[str] | None = None, *,
                 directory: str | os.PathLike[str] | None = None, tz: Any = None,
                 max_rows: int = 200, **read_options: Any) -> None:
        from camprotool.analysis.plots import resolve_tz

        self.zone = resolve_tz(tz)
        self.max_rows = max_rows
        self.read_options = read_options
        self.directory = Path(directory) if directory is not None else Path.cwd()
        self.capture: Capture | None = None
        self.selection: pd.DataFrame | None = None
        self.figures: dict[str, Any] = {}
        self.status_text = "ready"
        self.last_error: str | None = None
        self._gen = 0
        self._gen_lock = threading.Lock()
        self._populating = False
        self._worker = Worker("camprotool-explorer")
        self._apply_later = Debouncer(0.15, self._request_apply, "explorer filter")
        self._draw_later = Debouncer(0.05, self._request_draw, "explorer plot")
        self._stale: set[str] = set(PLOTS)
        self._loaded: str | None = None  # said once, with the first selection after a load
        self._build()
        if capture_or_path is None:
            return
        if isinstance(capture_or_path, str | os.PathLike):
            self.path.value = os.fspath(capture_or_path)
            self.load()
        else:
            self._start("show", lambda: self._use(capture_or_path, "the capture"))

    # ------------------------------------------------------------------ widgets
    def _build(self) -> None:
        W = widgets
        wide = W.Layout(width="520px")
        self.path = W.Combobox(options=find_captures(self.directory), ensure_option=False,
                               description="capture", placeholder="path to a .pcap/.pcapng file",
                               layout=wide)
        self.load_button = W.Button(description="Load", icon="folder-open",
                                    button_style="primary")
        self.status = W.HTML(status_html("pick a capture and press Load", INFO))

        def multi(label: str, width: str) -> widgets.SelectMultiple:
            return W.SelectMultiple(options=[], rows=6, description=label,
                                    layout=W.Layout(width=width))

        # wide enough for "12 main [2001:db8::1]:50000 → 192.0.2.10:9000"
        self.conn_filter = multi("connection", "600px")
        self.session_filter = multi("session", "420px")
        self.camera_filter = multi("camera", "300px")
        self.camera_search = W.Text(placeholder="search cameras", layout=W.Layout(width="300px"))
        self.camera_note = W.HTML("")
        self.command_filter = multi("command", "420px")
        self.time_range = W.SelectionRangeSlider(options=["-"], index=(0, 0), description="time",
                                                 continuous_update=False, readout=False,
                                                 layout=W.Layout(width="760px"))
        # the range in words, on its own line: a slider's readout ran under the button
        self.time_label = W.HTML("")
        self.reset_button = W.Button(description="All messages", icon="undo",
                                     tooltip="clear every filter")
        self.count = W.HTML("")
        self.table = W.HTML("")
        self.jump = W.HTML("")
        self.packets = PacketsPanel()
        self._all_cameras: list[str] = []
        self.plots: dict[str, widgets.Output] = {name: W.Output() for name in PLOTS}
        for out in self.plots.values():
            out.outputs = (text_output("load a capture to see this plot"),)
        self.plot_tabs = W.Tab(children=list(self.plots.values()))
        self.plot_tabs.titles = tuple(n.replace("_", " ") for n in PLOTS)
        self.export_path = W.Text(value="selection.csv", description="export to",
                                  placeholder=".csv, .json or .parquet", layout=W.Layout(
                                      width="420px"))
        self.export_button = W.Button(description="Export", icon="download")

        self.load_button.on_click(lambda _: self.load())
        self.export_button.on_click(lambda _: self.export())
        self.reset_button.on_click(lambda _: self.reset_filters())
        self.packets.button.on_click(lambda _: self.show_packets())
        for w in self.filters:
            w.observe(self._on_filter, names="value")
        self.time_range.observe(lambda _: self._show_time_range(), names="value")
        self.camera_search.observe(lambda _: self._search_cameras(), names="value")
        self.plot_tabs.observe(lambda _: self._draw_later.trigger(), names="selected_index")

        self._actions = [self.load_button, self.export_button, self.packets.button]
        self.widget = W.VBox([
            W.HBox([self.path, self.load_button]), self.status,
            W.HBox([self.conn_filter, self.session_filter]),
            W.HBox([W.VBox([self.camera_search, self.camera_filter, self.camera_note]),
                    self.command_filter]),
            W.HBox([self.time_range, self.reset_button]), self.time_label,
            self.count, W.HTML("<b>Messages</b>"), self.table, self.jump,
            self.packets.widget,
            W.HTML("<b>Plots</b> <small>(drawn for the selection when their tab is shown)"
                   "</small>"), self.plot_tabs,
            W.HBox([self.export_path, self.export_button]),
        ])

    @property
    def filters(self) -> list[widgets.Widget]:
        return [self.conn_filter, self.session_filter, self.camera_filter, self.command_filter,
                self.time_range]

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        n = "no capture" if self.capture is None else repr(self.capture)
        return f"<CaptureExplorer {n}>"

    # ------------------------------------------------------------------ status and jobs
    # Every line carries the time it was written, so an old line never passes for news.
    def _ok(self, text: str) -> None:
        self.status_text, self.last_error = text, None
        self.status.value = status_html(f"{_now()}  {text}", OK, "✔")

    def _error(self, text: str) -> None:
        self.status_text = self.last_error = text
        self.status.value = status_html(f"{_now()}  {text}", ERROR, "✖")

    def _info(self, text: str) -> None:
        self.status_text = text
        self.status.value = status_html(f"{_now()}  {text}", INFO, "⏳")

    @property
    def busy(self) -> bool:
        return self._worker.busy

    def wait(self, timeout: float | None = None) -> bool:
        """Block until loading/filtering is done, a pending filter change included
        (for scripts and tests)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        later = (self._apply_later, self._draw_later)
        while True:
            for debouncer in later:
                if debouncer.pending:
                    debouncer.flush()
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._worker.wait(left):
                return False
            if not any(d.pending for d in later):
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False

    def _start(self, label: str, job: Any) -> bool:
        for b in self._actions:
            b.disabled = True

        def run() -> None:
            try:
                job()
            except Exception as exc:
                log.debug("%s failed", label, exc_info=True)
                self._error(f"{label} failed: {describe_error(exc)}")
            finally:
                for b in self._actions:
                    b.disabled = False

        if self._worker.submit(label, run) is None:
            # Busy: a filter change or a drawing is retried when the running job ends.
            if label in ("filter", "plot"):
                (self._apply_later if label == "filter" else self._draw_later).trigger()
                return False
            self._error(f"{label}: wait, {self._worker.label} is still running")
            return False
        return True

    # ------------------------------------------------------------------ loading
    def load(self, path: str | os.PathLike[str] | None = None) -> None:
        """Read the capture in the path box (the Load button)."""
        path = os.fspath(path) if path is not None else self.path.value.strip()
        if not path:
            self._error("enter the path of a .pcap or .pcapng file")
            return

        def job() -> None:
            from camprotool.analysis.capture import read_capture

            self._info(f"reading {path}…")
            cap = read_capture(path, **self.read_options)
            self._use(cap, path)

        self._start("load", job)

    def _use(self, cap: Capture, what: str) -> None:
        messages = cap.messages
        self.capture = cap
        if os.path.exists(cap.source):  # the path box names what is shown
            self.path.value = cap.source
        self._populate(cap)
        self.packets.clear()
        self._loaded = (f"loaded {what}: {len(messages):,} messages, "
                        f"{len(cap.connections):,} connections, {len(cap.sessions):,} sessions")
        self._apply(self._next_gen())

    def _populate(self, cap: Capture) -> None:
        m = cap.messages
        conns = cap.connections
        sessions = cap.sessions
        self._populating = True
        try:
            _set_options(self.conn_filter, [
                (f"{int(r.conn)} {r.channel} {r.client} → {r.server}", int(r.conn))
                for r in conns.itertuples()])
            _set_options(self.session_filter, [
                (f"{int(r.session)} {'' if pd.isna(r.user) else r.user} ({r.outcome}), "
                 f"conn {int(r.conn)}", int(r.session)) for r in sessions.itertuples()])
            self._all_cameras = cameras_in(m)
            self.camera_filter.value = ()  # another capture: nothing picked yet
            self.camera_search.value = ""
            self._search_cameras()
            _set_options(self.command_filter, sorted(m["command"].astype(str).unique()))
            options = self._time_options(m)
            with self.time_range.hold_sync():
                self.time_range.options = options
                self.time_range.index = (0, len(options) - 1)
        finally:
            self._populating = False
        self._show_time_range()

    def _search_cameras(self) -> None:
        """Narrow the camera list to the search box's words (picked cameras stay)."""
        keep = tuple(self.camera_filter.value)
        shown, found = match_cameras(self._all_cameras, self.camera_search.value, keep)
        was, self._populating = self._populating, True
        try:
            _set_options(self.camera_filter, shown, keep)
        finally:
            self._populating = was
        total = len(self._all_cameras)
        query = self.camera_search.value.strip()
        note = f"{found:,} of {total:,} cameras match" if query else f"{total:,} cameras"
        if found > MAX_CAMERA_OPTIONS:
            note += f"; the first {MAX_CAMERA_OPTIONS} listed, search to narrow"
        self.camera_note.value = f"<small>{html.escape(note)}</small>"

    def _show_time_range(self) -> None:
        options = self.time_range.options
        if len(options) < 2:
            self.time_label.value = ""
            return
        lo, hi = self.time_range.label
        zone = plots_zone_name(self.zone)
        self.time_label.value = (f"<small>time from <b>{html.escape(str(lo))}</b> to "
                                 f"<b>{html.escape(str(hi))}</b> ({html.escape(zone)})</small>")

    def _time_options(self, m: pd.DataFrame) -> list[tuple[str, int]]:
        if not len(m):
            return [("-", 0)]
        ns = m["ts"].astype("int64")
        lo, hi = int(ns.min()), int(ns.max())
        points = sorted({int(x) for x in np.linspace(lo, hi, TIME_STEPS + 1)}) if hi > lo \
            else [lo]
        fmt = "%Y-%m-%d %H:%M:%S.%f" if hi - lo > 86_400 * 10**9 else "%H:%M:%S.%f"
        labels: list[str] = []
        for p in points:
            label = pd.Timestamp(p, tz="UTC").tz_convert(self.zone).strftime(fmt)[:-3]
            while label in labels:  # equal at millisecond resolution
                label += "'"
            labels.append(label)
        return list(zip(labels, points, strict=True))

    def reset_filters(self) -> None:
        """Select every message again (the All messages button)."""
        if self.capture is None:
            return
        self._populating = True
        try:
            for w in (self.conn_filter, self.session_filter, self.camera_filter,
                      self.command_filter):
                w.value = ()
            self.camera_search.value = ""
            self.time_range.index = (0, len(self.time_range.options) - 1)
        finally:
            self._populating = False
        self._request_apply()

    # ------------------------------------------------------------------ filtering
    def _on_filter(self, _change: Any) -> None:
        if self._populating or self.capture is None:
            return
        with self._gen_lock:
            self._gen += 1  # makes a drawing in progress stop early
        self._apply_later.trigger()

    def _next_gen(self) -> int:
        with self._gen_lock:
            self._gen += 1
            return self._gen

    def _request_apply(self) -> None:
        if self.capture is None:
            return
        gen = self._next_gen()
        self._start("filter", lambda: self._apply(gen))

    def mask(self) -> np.ndarray:
        """The filters as a boolean mask over ``capture.messages``."""
        cap = self.capture
        if cap is None:
            raise ValueError("no capture loaded")
        m = cap.messages
        keep = np.ones(len(m), bool)
        conns = set(self.conn_filter.value)
        if conns:
            keep &= m["conn"].isin(conns).to_numpy()
        sessions = set(self.session_filter.value)
        if sessions:
            keep &= self._session_mask(cap, sessions)
        cams = set(self.camera_filter.value)
        if cams:
            keep &= camera_mask(m, cams)
        commands = set(self.command_filter.value)
        if commands:
            keep &= m["command"].astype(str).isin(commands).to_numpy()
        options = self.time_range.options
        lo_i, hi_i = self.time_range.index
        if len(options) > 1 and (lo_i > 0 or hi_i < len(options) - 1):
            ns = m["ts"].astype("int64").to_numpy()
            if lo_i > 0:
                keep &= ns >= options[lo_i][1]
            if hi_i < len(options) - 1:
                keep &= ns <= options[hi_i][1]
        return keep

    @staticmethod
    def _session_mask(cap: Capture, wanted: set[int]) -> np.ndarray:
        m, s = cap.messages, cap.sessions
        labels = m.index.to_numpy()
        conn = m["conn"].to_numpy()
        keep = np.zeros(len(m), bool)
        for row in s[s["session"].isin(wanted)].itertuples():
            first = -1 if pd.isna(row.message) else int(row.message)
            later = s.loc[(s["conn"] == row.conn) & s["message"].notna(), "message"]
            later = [int(x) for x in later if int(x) > first]
            end = min(later) if later else np.inf
            keep |= (conn == row.conn) & (labels >= first) & (labels < end)
            data = [int(c) for c in (row.data_conns if row.data_conns is not None else [])]
            if data:
                keep |= np.isin(conn, data)
        return keep

    def _apply(self, gen: int) -> None:
        cap = self.capture
        if cap is None:
            return
        sel = cap.messages[self.mask()]
        self.selection = sel
        total = len(cap.messages)
        self.count.value = (f"<b>{len(sel)}</b> of {total} messages selected"
                            + ("" if len(sel) <= self.max_rows else
                               f"; the table shows the first {self.max_rows}, export has all"))
        self.table.value = self._table_html(sel)
        first = int(sel.index[0]) if len(sel) else None
        self.jump.value = wireshark_hint(_origin(cap), None if first is None else
                                         int(sel["frame"].iloc[0]))
        self.packets.suggest(first)
        loaded, self._loaded = self._loaded, None
        self._ok((f"{loaded}; " if loaded else "")
                 + f"{len(sel):,} of {total:,} messages selected ({self.describe_filters()})")
        self._stale = set(PLOTS)
        for name in PLOTS:
            self.figures.pop(name, None)
            if name != self.shown_plot:
                self.plots[name].outputs = (text_output("drawn when this tab is shown"),)
        self._draw(gen, [self.shown_plot])

    def describe_filters(self) -> str:
        """The filters in force, in words ("no filter" when none)."""
        parts = []
        for name, w in (("connection", self.conn_filter), ("session", self.session_filter),
                        ("camera", self.camera_filter), ("command", self.command_filter)):
            v = [str(x) for x in w.value]
            if v:
                parts.append(f"{name} {', '.join(v[:3])}" + (f" +{len(v) - 3}" if len(v) > 3
                                                                else ""))
        options = self.time_range.options
        lo_i, hi_i = self.time_range.index
        if len(options) > 1 and (lo_i > 0 or hi_i < len(options) - 1):
            parts.append(f"time {options[lo_i][0]} to {options[hi_i][0]}")
        return "; ".join(parts) or "no filter"

    @property
    def shown_plot(self) -> str:
        """The plot whose tab is selected."""
        return PLOTS[self.plot_tabs.selected_index or 0]

    def _request_draw(self) -> None:
        name = self.shown_plot
        if self.capture is None or self.selection is None or name not in self._stale:
            return
        gen = self._gen
        self._start("plot", lambda: self._draw(gen, [name]))

    def draw_all(self) -> None:
        """Draw every plot for the selection now (on the worker; see :meth:`wait`)."""
        gen = self._gen
        self._start("plot", lambda: self._draw(gen, [n for n in PLOTS if n in self._stale]))

    def _table_html(self, sel: pd.DataFrame) -> str:
        """The first ``max_rows`` selected messages, ``#`` their label in ``cap.messages``
        (the one table renderer: escaped, frame cells with their Wireshark line)."""
        source = None if self.capture is None else _origin(self.capture)
        return frame_table(sel, zone=self.zone, max_rows=self.max_rows, columns=TABLE_COLUMNS,
                           source=source, label="#", time_format="%H:%M:%S.%f",
                           more="; export has them all", flavour="widget",
                           empty="no message matches these filters",
                           box_style="max-height:360px;overflow:auto;font-size:12px")

    def _draw(self, gen: int, names: list[str]) -> None:
        from camprotool.analysis import plots

        cap, sel = self.capture, self.selection
        if cap is None or sel is None:
            return

        labels = sel.index
        alarms = cap.alarms[cap.alarms["message"].isin(labels)]
        status = cap.status[cap.status["message"].isin(labels)]
        sync = cap.sync[cap.sync["request"].isin(labels) | cap.sync["answer"].isin(labels)]
        data_conns = set(sel.loc[sel["channel"].astype(str) == "data", "conn"].astype(int))
        transfers = cap.transfers[cap.transfers["conn"].isin(data_conns)]
        session = list(self.session_filter.value)
        zone = self.zone
        violations = cap.violations[cap.violations["message"].isin(labels)]

        def sequence() -> Any:
            if session:
                return plots.sequence_diagram(sel, session[0], zone, sessions=cap.sessions,
                                              connections=cap.connections,
                                              violations=violations)
            mains = sel.loc[sel["channel"].astype(str) == "main", "conn"]
            first = int(mains.iloc[0]) if len(mains) else (int(sel["conn"].iloc[0])
                                                            if len(sel) else None)
            return plots.sequence_diagram(sel, first, zone, connections=cap.connections,
                                          violations=violations)

        builders = {
            "message_rate": lambda: plots.message_rate(sel, "auto", zone),
            "sequence_diagram": sequence,
            "alarm_timeline": lambda: plots.alarm_timeline(alarms, status, zone),
            "status_timeline": lambda: plots.status_timeline(status, zone),
            "sync_progress": lambda: plots.sync_progress(sync, transfers, zone,
                                                         violations=violations),
        }
        for name in names:
            if gen != self._gen:
                return  # the filters changed: a newer job draws
            self.figures[name] = show_figure(self.plots[name], builders[name])
            self._stale.discard(name)

    # ------------------------------------------------------------------ packets
    def show_packets(self) -> None:
        """The packets of the message/frame/connection chosen (the Packets button)."""

        def job() -> None:
            cap = self.capture
            if cap is None:
                raise ValueError("load a capture first")
            self._info("reading the packets…")
            found = self.packets.find(cap)
            self.packets.show(found)
            cmd = found.wireshark()
            self._ok(f"{found._title()}" + (f"; in Wireshark: {cmd}" if cmd else ""))

        self._start("packets", job)

    # ------------------------------------------------------------------ export
    def export(self, path: str | os.PathLike[str] | None = None) -> None:
        """Write the selected messages (the Export button): csv, json lines or parquet."""
        path = os.fspath(path) if path is not None else self.export_path.value.strip()

        def job() -> None:
            from camprotool.analysis.export import write_frame

            if self.selection is None:
                raise ValueError("load a capture first")
            if not path:
                raise ValueError("enter a file name ending in .csv, .json or .parquet")
            sel = self.selection
            fmt = write_frame(sel, path)
            self._ok(f"wrote {len(sel)} messages to {path} ({fmt})")

        self._start("export", job)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        self._apply_later.close()
        self._draw_later.close()
        self._worker.close()
        outputs = list(self.plots.values())
        for out in outputs:
            out.outputs = ()
        close_all([*self.filters, *outputs, self.path, self.load_button, self.status,
                   self.reset_button, self.count, self.table, self.plot_tabs,
                   self.export_path, self.export_button, self.camera_search, self.camera_note,
                   self.time_label, self.jump, *self.packets.children,
                   *_descendants(self.widget)])

    def __enter__(self) -> CaptureExplorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _now() -> str:
    return datetime.datetime.now().strftime("%H:%M:%S")


def _origin(cap: Capture) -> Any:
    """What the capture was read from (for a Wireshark command line)."""
    return getattr(cap, "origin", None) or cap.source


def plots_zone_name(zone: Any) -> str:
    from camprotool.analysis.plots import zone_name

    return zone_name(zone)


def _set_options(select: Any, options: list, keep: tuple = ()) -> None:
    """New options for a selection list, then ``keep`` selected again.

    The selection is cleared first: ipywidgets sends the new labels before the
    new (empty) index, and the browser's view would select an old index the new
    list does not have ("Cannot set properties of undefined (setting
    'selected')").
    """
    select.value = ()
    select.options = options
    if keep:
        values = {o[1] if isinstance(o, tuple) else o for o in options}
        select.value = tuple(k for k in keep if k in values)


def _descendants(w: Any) -> list[Any]:
    out = []
    for child in getattr(w, "children", ()):
        out += _descendants(child)
    return [*out, w]

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
"""

from __future__ import annotations

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

if TYPE_CHECKING:
    from camprotool.analysis.capture import Capture

log = logging.getLogger("camprotool.widgets.explorer")

TABLE_COLUMNS = ["ts", "conn", "channel", "direction", "command", "camera_id", "params", "error"]
PLOTS = ("message_rate", "sequence_diagram", "alarm_timeline", "status_timeline",
         "sync_progress")
TIME_STEPS = 100


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

        def multi(label: str) -> W.SelectMultiple:
            return W.SelectMultiple(options=[], rows=6, description=label,
                                    layout=W.Layout(width="300px"))

        self.conn_filter = multi("connection")
        self.session_filter = multi("session")
        self.camera_filter = multi("camera")
        self.command_filter = multi("command")
        self.time_range = W.SelectionRangeSlider(options=["-"], index=(0, 0), description="time",
                                                 continuous_update=False,
                                                 layout=W.Layout(width="760px"))
        self.reset_button = W.Button(description="All messages", icon="undo",
                                     tooltip="clear every filter")
        self.count = W.HTML("")
        self.table = W.HTML("")
        self.plots: dict[str, W.Output] = {name: W.Output() for name in PLOTS}
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
        for w in self.filters:
            w.observe(self._on_filter, names="value")
        self.plot_tabs.observe(lambda _: self._draw_later.trigger(), names="selected_index")

        self._actions = [self.load_button, self.export_button]
        self.widget = W.VBox([
            W.HBox([self.path, self.load_button]), self.status,
            W.HBox([self.conn_filter, self.session_filter]),
            W.HBox([self.camera_filter, self.command_filter]),
            W.HBox([self.time_range, self.reset_button]),
            self.count, W.HTML("<b>Messages</b>"), self.table,
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
    def _ok(self, text: str) -> None:
        self.status_text, self.last_error = text, None
        self.status.value = status_html(text, OK, "✔")

    def _error(self, text: str) -> None:
        self.status_text = self.last_error = text
        self.status.value = status_html(text, ERROR, "✖")

    def _info(self, text: str) -> None:
        self.status_text = text
        self.status.value = status_html(text, INFO, "⏳")

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
        self._populate(cap)
        self._ok(f"loaded {what}: {len(messages)} messages, {len(cap.connections)} "
                 f"connections, {len(cap.sessions)} sessions")
        self._apply(self._next_gen())

    def _populate(self, cap: Capture) -> None:
        m = cap.messages
        conns = cap.connections
        sessions = cap.sessions
        self._populating = True
        try:
            self.conn_filter.options = [
                (f"{int(r.conn)} {r.channel} {r.client} → {r.server}", int(r.conn))
                for r in conns.itertuples()]
            self.session_filter.options = [
                (f"{int(r.session)} {'' if pd.isna(r.user) else r.user} ({r.outcome}), "
                 f"conn {int(r.conn)}", int(r.session)) for r in sessions.itertuples()]
            self.camera_filter.options = cameras_in(m)
            self.command_filter.options = sorted(m["command"].astype(str).unique())
            for w in (self.conn_filter, self.session_filter, self.camera_filter,
                      self.command_filter):
                w.value = ()
            self.time_range.options = self._time_options(m)
            self.time_range.index = (0, len(self.time_range.options) - 1)
        finally:
            self._populating = False

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
        self._stale = set(PLOTS)
        for name in PLOTS:
            self.figures.pop(name, None)
            if name != self.shown_plot:
                self.plots[name].outputs = (text_output("drawn when this tab is shown"),)
        self._draw(gen, [self.shown_plot])

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
        if not len(sel):
            return "<i>no message matches these filters</i>"
        cols = [c for c in TABLE_COLUMNS if c in sel]
        shown = sel[cols].head(self.max_rows).copy()
        shown["ts"] = shown["ts"].dt.tz_convert(self.zone).dt.strftime("%H:%M:%S.%f").str[:-3]
        body = _html_table(shown)
        note = "" if len(sel) <= self.max_rows else \
            f"<small>first {self.max_rows} of {len(sel)} rows</small>"
        return (f'{note}<div style="max-height:360px;overflow:auto;font-size:12px">'
                f"{body}</div>")

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

        def sequence() -> Any:
            if session:
                return plots.sequence_diagram(sel, session[0], zone, sessions=cap.sessions)
            mains = sel.loc[sel["channel"].astype(str) == "main", "conn"]
            first = int(mains.iloc[0]) if len(mains) else (int(sel["conn"].iloc[0])
                                                            if len(sel) else None)
            return plots.sequence_diagram(sel, first, zone, connections=cap.connections)

        builders = {
            "message_rate": lambda: plots.message_rate(sel, "auto", zone),
            "sequence_diagram": sequence,
            "alarm_timeline": lambda: plots.alarm_timeline(alarms, status, zone),
            "status_timeline": lambda: plots.status_timeline(status, zone),
            "sync_progress": lambda: plots.sync_progress(sync, transfers, zone),
        }
        for name in names:
            if gen != self._gen:
                return  # the filters changed: a newer job draws
            self.figures[name] = show_figure(self.plots[name], builders[name])
            self._stale.discard(name)

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
                   self.export_path, self.export_button, *self.widget.children, self.widget])

    def __enter__(self) -> CaptureExplorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_CELL = 'style="text-align:left;padding:1px 8px 1px 0;white-space:nowrap"'


def _html_table(df: pd.DataFrame) -> str:
    """A plain left-aligned table (pandas' right-aligned headers drift off their columns
    in JupyterLab's widget area); the row label is the message index."""
    head = "".join(f"<th {_CELL}>{html.escape(str(c))}</th>" for c in ["#", *df.columns])
    rows = []
    for label, values in zip(df.index, df.itertuples(index=False), strict=True):
        cells = "".join(
            f"<td {_CELL}>{'' if pd.isna(v) else html.escape(str(v))}</td>"
            if not isinstance(v, list | tuple) else f"<td {_CELL}>{html.escape(str(v))}</td>"
            for v in values
        )
        rows.append(f"<tr><td {_CELL}><b>{label}</b></td>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"

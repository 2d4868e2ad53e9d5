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
zone); the tables themselves stay in UTC. ``ax`` draws into an existing axes
instead of a new figure. Empty tables give a figure that says so.
"""

from __future__ import annotations

import datetime as dt
import glob
import io
import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import matplotlib as mpl
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from camprotool.analysis.capture import Capture

__all__ = [
    "alarm_timeline",
    "local_zone",
    "message_rate",
    "resolve_tz",
    "sequence_diagram",
    "status_timeline",
    "sync_progress",
]

ONLINE, OFFLINE, UNKNOWN = "#2ca02c", "#d62728", "#a8a8a8"
STATE_COLORS = {True: ONLINE, False: OFFLINE, None: UNKNOWN}
STATE_NAMES = {True: "online", False: "offline", None: "unknown"}
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p"]
MAX_LANES = 40  # cameras per timeline; the rest are named in the title
MAX_ROWS = 150  # messages per sequence diagram
MAX_LEGEND = 12  # transfers named in the sync progress legend
AUTO_FREQS = ["10ms", "20ms", "50ms", "100ms", "200ms", "500ms", "1s", "2s", "5s", "10s", "15s",
              "30s", "1min", "2min", "5min", "10min", "15min", "30min", "1h", "2h", "3h", "6h",
              "12h", "1D", "7D"]
# Fonts with CJK glyphs for the protocol's Chinese reasons, in order of preference
CJK_FONTS = ["Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei",
             "WenQuanYi Micro Hei", "Droid Sans Fallback", "SimHei", "Microsoft YaHei",
             "PingFang SC", "Heiti SC", "Arial Unicode MS"]
CJK_FILES = ["/usr/share/fonts/**/NotoSansCJK-Regular.ttc", "/usr/share/fonts/**/wqy-zenhei.ttc",
             "/usr/share/fonts/**/wqy-microhei.ttc", "/usr/share/fonts/**/DroidSansFallback*.ttf"]


# ------------------------------------------------------------------ time zones


def local_zone() -> dt.tzinfo:
    """The machine's zone: ``$TZ``, else ``/etc/localtime``'s name, else the current offset."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    try:
        target = str(Path("/etc/localtime").resolve())
        if "zoneinfo/" in target:
            return ZoneInfo(target.split("zoneinfo/", 1)[1])
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    return dt.datetime.now().astimezone().tzinfo or dt.UTC


def resolve_tz(tz: str | dt.tzinfo | None) -> dt.tzinfo:
    """A display zone from an IANA name, ``"UTC"``, ``"local"``, a tzinfo, or None (local).

    Raises ``ValueError`` naming the zone when it is unknown.
    """
    if tz is None:
        return local_zone()
    if isinstance(tz, dt.tzinfo):
        return tz
    if not isinstance(tz, str):
        raise TypeError(f"tz must be a zone name or a tzinfo, not {type(tz).__name__}")
    name = tz.strip()
    if name.lower() == "local":
        return local_zone()
    if name.upper() in ("UTC", "Z"):
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {tz!r}: use an IANA name such as 'Europe/Paris', "
                         "'Asia/Shanghai' or 'UTC'") from None


def zone_name(zone: dt.tzinfo) -> str:
    return getattr(zone, "key", None) or str(zone)


def _wall(ts: pd.Series | pd.Index, zone: dt.tzinfo) -> np.ndarray:
    """UTC timestamps as naive wall-clock datetime64 in ``zone``: what the axes show."""
    ts = pd.to_datetime(pd.Series(ts), utc=True)
    return ts.dt.tz_convert(zone).dt.tz_localize(None).to_numpy("datetime64[ns]")


def _wall_one(t, zone: dt.tzinfo) -> np.datetime64:
    return _wall(pd.Series([t]), zone)[0]


# ------------------------------------------------------------------ figure plumbing


class _QuietWeight(logging.Filter):
    """CJK fonts often come in one weight (WenQuanYi's is 500): matplotlib then logs
    a warning per font size although the glyphs are fine. Drop just that message."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("findfont: Failed to find font weight")


@lru_cache(maxsize=1)
def _font_family() -> tuple[str, ...]:
    """The default sans font, then a CJK font when one is installed (glyph fallback).

    matplotlib caches its font list; a CJK font installed after that cache was
    built (``make sysdeps``) is found by its usual file name and added.
    """
    manager = mpl.font_manager.fontManager
    cjk = [name for name in CJK_FONTS if name in {f.name for f in manager.ttflist}][:1]
    if not cjk:
        for pattern in CJK_FILES:
            found = sorted(glob.glob(pattern, recursive=True))
            if found:
                try:
                    manager.addfont(found[0])
                except (OSError, RuntimeError, ValueError):
                    continue
                installed = {f.name for f in manager.ttflist}
                cjk = [name for name in CJK_FONTS if name in installed][:1]
                break
    if cjk:
        logging.getLogger("matplotlib.font_manager").addFilter(_QuietWeight())
    return ("DejaVu Sans", *cjk)


class PlotFigure(Figure):
    """A Figure that Jupyter shows as a PNG when it is a cell's value.

    Figures are built without pyplot, so IPython's inline backend may never have
    been switched on (nothing imported pyplot) and would print ``<Figure ...>``;
    ``_repr_png_`` shows the picture in any case, and only once.
    """

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", bbox_inches="tight", facecolor="white")
        return buf.getvalue()


def _axes(ax: Axes | None, width: float, height: float) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = PlotFigure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _fonts():
    return mpl.rc_context({"font.family": list(_font_family())})


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _empty(ax: Axes, title: str, text: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=14, color="#555555",
            transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _time_axis(ax: Axes, zone: dt.tzinfo, axis: str = "x") -> None:
    target = ax.xaxis if axis == "x" else ax.yaxis
    locator = mdates.AutoDateLocator(minticks=3, maxticks=9)
    target.set_major_locator(locator)
    target.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=True))
    label = f"time ({zone_name(zone)})"
    if axis == "x":
        ax.set_xlabel(label)
    else:
        ax.set_ylabel(label)


def _lanes(ax: Axes, names: Sequence[str]) -> None:
    ax.set_yticks(range(len(names)), [str(n) for n in names])
    ax.set_ylim(len(names) - 0.5, -0.5)  # first lane on top
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


def _pad(lo: np.datetime64, hi: np.datetime64) -> np.timedelta64:
    """A little room after the last event so it does not sit on the frame."""
    span = int((hi - lo) / np.timedelta64(1, "ns"))
    return np.timedelta64(max(span // 50, 1_000_000) if span > 0 else 1_000_000_000, "ns")


def capture_end(cap: Capture) -> pd.Timestamp | None:
    """The last time a capture saw: its last connection end or message (UTC)."""
    ends = [cap.connections["end"].max(), cap.messages["ts"].max()]
    ends = [e for e in ends if e is not None and not pd.isna(e)]
    return max(ends) if ends else None


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
    times = _wall(sub["ts"], zone)
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


# ------------------------------------------------------------------ alarms


def alarm_timeline(alarms: pd.DataFrame | Capture, status: pd.DataFrame | None = None,
                   tz: str | dt.tzinfo | None = None, *, ax: Axes | None = None,
                   until=None) -> Figure:
    """One lane per camera with alarms, a marker per alarm type, its status shaded behind.

    ``alarms``: ``Capture.alarms`` (ts, camera_id, alarm_type). ``status``:
    ``Capture.status``; each observation shades its camera's lane green (online),
    red (offline) or grey (unknown) until the next one, the last until ``until``
    (a UTC time; default: the last time drawn).
    """
    if isinstance(alarms, Capture):
        cap = alarms
        alarms, status, until = cap.alarms, cap.status, capture_end(cap)
    zone = resolve_tz(tz)
    with _fonts():
        n_cams = alarms["camera_id"].nunique() if len(alarms) else 0
        fig, ax = _axes(ax, 11, 1.6 + 0.38 * min(max(n_cams, 1), MAX_LANES))
        if not len(alarms):
            _empty(ax, "Alarms by camera", "no alarms")
            return fig
        cameras, note = _pick_lanes(alarms["camera_id"].dropna().astype(str).unique(),
                                    alarms["camera_id"].value_counts())
        shown = alarms[alarms["camera_id"].isin(cameras)]
        times = _wall(shown["ts"], zone)
        lo, hi = times.min(), times.max()
        if status is not None and len(status):
            st = _wall(status["ts"], zone)
            lo, hi = min(lo, st.min()), max(hi, st.max())
        end = _wall_one(until, zone) if until is not None else hi
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
        ax.set_xlim(lo - _pad(lo, end), end)
        _time_axis(ax, zone)
        handles, _ = ax.get_legend_handles_labels()
        ax.legend(handles=handles + _state_handles(states, 0.28), loc="upper left",
                  bbox_to_anchor=(1.01, 1), title="alarm type", fontsize="small")
        ax.set_title(f"Alarms by camera ({_plural(len(alarms), 'alarm')}{note})")
        ax.set_ylabel("camera")
    return fig


# ------------------------------------------------------------------ camera status


def status_timeline(status: pd.DataFrame | Capture, tz: str | dt.tzinfo | None = None, *,
                    ax: Axes | None = None, until=None) -> Figure:
    """Online (green) / offline (red) / unknown (grey) bars per camera over time.

    Each observation in ``status`` (``Capture.status``) holds until the next one
    for that camera, the last until ``until`` (UTC; default: the last
    observation). A tick marks every observation, a black one every change.
    """
    if isinstance(status, Capture):
        cap = status
        status, until = cap.status, capture_end(cap)
    zone = resolve_tz(tz)
    with _fonts():
        n_cams = status["camera_id"].nunique() if len(status) else 0
        fig, ax = _axes(ax, 11, 1.6 + 0.38 * min(max(n_cams, 1), MAX_LANES))
        if not len(status):
            _empty(ax, "Camera status", "no camera status")
            return fig
        cameras, note = _pick_lanes(status["camera_id"].dropna().astype(str).unique(),
                                    status["camera_id"].value_counts())
        times = _wall(status["ts"], zone)
        lo, hi = times.min(), times.max()
        end = _wall_one(until, zone) if until is not None else hi
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
        ax.set_xlim(lo - _pad(lo, end), end)
        _time_axis(ax, zone)
        handles, _ = ax.get_legend_handles_labels()
        ax.legend(handles=_state_handles(states, 0.85) + handles, loc="upper left",
                  bbox_to_anchor=(1.01, 1), fontsize="small")
        ax.set_title(f"Camera status ({_plural(len(cameras), 'camera')}{note})")
        ax.set_ylabel("camera")
    return fig


# ------------------------------------------------------------------ sync progress


def _transfer_label(conn: int, row: pd.Series | None, kind: str) -> str:
    if row is None:
        return f"conn {conn} {kind}"
    done, total = row.get("completed"), row.get("total")
    total = "?" if total is None or pd.isna(total) else int(total)
    who = row.get("data_client")
    who = "" if who is None or pd.isna(who) else f" {who}"
    state = row.get("status")
    state = "" if state is None or pd.isna(state) else f", {state}"
    return f"conn {conn} {row.get('kind', kind)}{who} ({done}/{total}{state})"


def sync_progress(sync: pd.DataFrame | Capture, transfers: pd.DataFrame | None = None,
                  tz: str | dt.tzinfo | None = None, *, ax: Axes | None = None) -> Figure:
    """Cameras synced (``current``) over time, one labelled line per data connection.

    ``sync``: ``Capture.sync``; ``transfers`` (``Capture.transfers``, optional)
    adds each connection's totals, status and start, and the transfers that
    carried no step. Failed steps are red crosses, unanswered ones hollow circles;
    a dotted line marks each transfer's announced total.
    """
    if isinstance(sync, Capture):
        cap = sync
        sync, transfers = cap.sync, cap.transfers
    zone = resolve_tz(tz)
    with _fonts():
        fig, ax = _axes(ax, 11, 4.5)
        conns = {int(c) for c in pd.unique(sync["conn"])} if len(sync) else set()
        info: dict[int, dict] = {}
        if transfers is not None and len(transfers):
            info = {int(r["conn"]): r for r in transfers.to_dict("records")}
            conns |= set(info)
        if not conns:
            _empty(ax, "Sync progress", "no uploads or downloads")
            return fig
        sync = sync.sort_values("ts", kind="stable")
        times = _wall(sync["ts"], zone)
        current = pd.to_numeric(sync["current"], errors="coerce").astype("Float64")
        totals = pd.to_numeric(sync["total"], errors="coerce").astype("Float64")
        outcome = sync["outcome"].astype(str).to_numpy()
        kinds = sync["kind"].astype(str).to_numpy()
        groups = sync.reset_index(drop=True).groupby("conn").indices if len(sync) else {}
        legend = len(conns) <= MAX_LEGEND
        colors = mpl.colormaps["tab10"]
        marks: dict[str, tuple[list, list]] = {"failed": ([], []), "no_answer": ([], [])}
        ref_y, ref_lo, ref_hi, ref_c = [], [], [], []
        for k, conn in enumerate(sorted(conns)):
            pos = groups.get(conn, np.zeros(0, np.int64))
            row = info.get(conn)
            kind = kinds[pos[0]] if len(pos) else "transfer"
            t = list(times[pos])
            y = current.iloc[pos].ffill().fillna(0).astype(float).tolist()
            if row is not None and not pd.isna(row.get("start")):
                t, y = [_wall_one(row["start"], zone), *t], [0.0, *y]
            color = colors(k % 10)
            ax.plot(t, y, drawstyle="steps-post", marker=".", color=color,
                    label=_transfer_label(conn, row, kind) if legend else "_nolegend_")
            total = row.get("total") if row is not None else None
            if (total is None or pd.isna(total)) and len(pos):
                total = totals.iloc[pos].max()
            if total is not None and not pd.isna(total) and len(t):
                ref_y.append(float(total))
                ref_lo.append(t[0])
                ref_hi.append(t[-1])
                ref_c.append(color)
            offset = len(t) - len(pos)
            for j, oc in enumerate(outcome[pos]):
                if oc in marks:
                    marks[oc][0].append(t[offset + j])
                    marks[oc][1].append(y[offset + j])
        if ref_y:
            ax.hlines(ref_y, ref_lo, ref_hi, colors=ref_c, linestyles="dotted", linewidth=1)
        if marks["failed"][0]:
            ax.scatter(*marks["failed"], marker="x", s=70, color=OFFLINE, zorder=4,
                       linewidths=2, label="failed step")
        if marks["no_answer"][0]:
            ax.scatter(*marks["no_answer"], marker="o", s=70, facecolors="none", zorder=4,
                       edgecolors="black", label="no answer")
        ax.set_ylim(bottom=0)
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.grid(color="#dddddd", linewidth=0.6)
        _time_axis(ax, zone)
        ax.set_ylabel("cameras synced (current)")
        note = "" if legend else "; one line each, not in the legend"
        ax.set_title(f"Sync progress ({_plural(len(conns), 'data connection')}{note})")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    return fig


# ------------------------------------------------------------------ sequence diagram


def _short(params: object, limit: int = 36) -> str:
    if params is None or pd.isna(params):
        return ""
    text = str(params).replace("\r", " ").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pick_conns(messages: pd.DataFrame, session_or_conn: int | None,
                sessions: pd.DataFrame | None, connections: pd.DataFrame | None
                ) -> tuple[int | None, list[int], tuple[int, float] | None, str]:
    """(main conn, data conns, window of message labels on it, title) of what to draw.

    A session's main-connection messages run from its Login (or the first
    message, for a session logged in before the capture) up to the next
    session's Login on the same connection.
    """
    if sessions is not None and len(sessions):
        if session_or_conn is None:
            session_or_conn = int(sessions["session"].iloc[0])
        hit = sessions[sessions["session"] == session_or_conn]
        if not len(hit):
            raise ValueError(f"no session {session_or_conn}; sessions are "
                             f"{sessions['session'].tolist()[:20]}")
        s = hit.iloc[0]
        conn = int(s["conn"])
        first = -1 if pd.isna(s["message"]) else int(s["message"])
        later = sessions.loc[(sessions["conn"] == conn) & sessions["message"].notna(), "message"]
        later = [int(m) for m in later if int(m) > first]
        window = (first, min(later) if later else np.inf)
        data = [int(c) for c in (s["data_conns"] if s["data_conns"] is not None else [])]
        user = "" if pd.isna(s["user"]) else f", user {s['user']}"
        return conn, data, window, f"Session {session_or_conn}{user} ({s['outcome']}), conn {conn}"
    present = pd.unique(messages["conn"]).tolist() if len(messages) else []
    if session_or_conn is None:
        mains = messages.loc[messages["channel"].astype(str) == "main", "conn"]
        session_or_conn = int(mains.iloc[0]) if len(mains) else (present[0] if present else None)
    if session_or_conn is None:
        return None, [], None, "Message sequence"
    conn = int(session_or_conn)
    data: list[int] = []
    if connections is not None and len(connections) and "main_conn" in connections:
        linked = connections[connections["main_conn"] == conn]
        data = sorted(int(c) for c in linked["conn"])
    if conn not in present and not data:
        raise ValueError(f"no messages on connection {conn}")
    return conn, data, None, f"Connection {conn}"


def sequence_diagram(messages: pd.DataFrame | Capture, session_or_conn: int | None = None,
                     tz: str | dt.tzinfo | None = None, *, sessions: pd.DataFrame | None = None,
                     connections: pd.DataFrame | None = None, ax: Axes | None = None,
                     max_messages: int = MAX_ROWS) -> Figure:
    """The messages of one session (or connection) as a flow graph, time going down.

    Lanes: the client, the server's main port, and one per data connection;
    one arrow per message, labelled with its command and the start of its
    parameters (decoding errors in red). Rows are evenly spaced, as in
    Wireshark's flow graph, with each message's time at the left.

    With ``sessions`` (``Capture.sessions``) ``session_or_conn`` is a session id
    and the diagram shows that login with its data connections; otherwise it is
    a connection id, and ``connections`` (``Capture.connections``) adds the data
    connections linked to it. None: the first session, or the first main
    connection.
    """
    if isinstance(messages, Capture):
        cap = messages
        messages, sessions, connections = cap.messages, cap.sessions, cap.connections
    zone = resolve_tz(tz)
    main, data, window, title = _pick_conns(messages, session_or_conn, sessions, connections)
    if main is None:
        sel = messages.iloc[:0]
    else:
        on_main = (messages["conn"] == main).to_numpy()
        if window is not None:
            label = messages.index.to_numpy()
            on_main = on_main & (label >= window[0]) & (label < window[1])
        sel = messages[on_main | messages["conn"].isin(data).to_numpy()]
    total = len(sel)
    sel = sel.iloc[:max_messages]
    with _fonts():
        rows = max(len(sel), 1)
        fig, ax = _axes(ax, 11, 1.9 + 0.3 * rows)
        if not len(sel):
            _empty(ax, title, "no messages")
            return fig
        first = sel.iloc[0]
        main_rows = sel[sel["conn"] == main]
        ref = main_rows.iloc[0] if len(main_rows) else first
        lanes = [f"client\n{ref['client']}", f"server\n{ref['server']}"]
        lane_of = {main: 1}
        for c in [*data, *sorted(set(sel["conn"].astype(int)) - {main, *data})]:
            on_c = sel[sel["conn"] == c]
            if not len(on_c):
                continue
            r = on_c.iloc[0]
            lane_of[c] = len(lanes)
            client_port = str(r["client"]).rsplit(":", 1)[-1]
            lanes.append(f"{r['channel']} conn {c}\n{r['server']}\n(client :{client_port})")
        n_lanes = len(lanes)
        ax.vlines(range(n_lanes), -0.8, len(sel) - 0.2, colors="#999999", linestyles="dashed",
                  linewidth=0.8)
        times = pd.Series(_wall(sel["ts"], zone))
        for i, (_, msg) in enumerate(sel.iterrows()):
            server_lane = lane_of.get(int(msg["conn"]), 1)
            a, b = (0, server_lane) if str(msg["direction"]) == "c2s" else (server_lane, 0)
            bad = msg.get("error") is not None and not pd.isna(msg.get("error"))
            color = OFFLINE if bad else ("#1f4e9c" if str(msg["direction"]) == "c2s"
                                          else "#2b7a2b")
            ax.annotate("", xy=(b, i), xytext=(a, i),
                        arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.1,
                                    "shrinkA": 0, "shrinkB": 0})
            label = f"{msg['command']} {_short(msg['params'])}".strip()
            if bad:
                label += f"  [{_short(msg['error'], 40)}]"
            ax.text((a + b) / 2, i - 0.08, label, ha="center", va="bottom", fontsize=8,
                    color=color, clip_on=False)
        ax.set_xticks(range(n_lanes), lanes, fontsize=8)
        ax.xaxis.tick_top()
        ax.set_xlim(-0.5, n_lanes - 0.5)
        ax.set_yticks(range(len(sel)), [pd.Timestamp(t).strftime("%H:%M:%S.%f")[:-3]
                                        for t in times], fontsize=7)
        ax.set_ylim(len(sel) - 0.4, -0.9)
        day = pd.Timestamp(times.iloc[0]).strftime("%Y-%m-%d")
        ax.set_ylabel(f"time ({zone_name(zone)}, {day})")
        for side in ("right", "bottom"):
            ax.spines[side].set_visible(False)
        more = f" — first {len(sel)} of {total} messages" if total > len(sel) else ""
        ax.set_title(title + more, pad=8)
    return fig


# ------------------------------------------------------------------ message rate


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
    zone = resolve_tz(tz)
    with _fonts():
        fig, ax = _axes(ax, 11, 4.2)
        if not len(messages):
            _empty(ax, "Message rate", "no messages")
            return fig
        times = pd.Series(_wall(messages["ts"], zone))
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
        _time_axis(ax, zone)
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(f"messages per {freq}")
        ax.grid(axis="y", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.set_title(f"Message rate ({len(messages)} messages, per {freq})")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small",
                  title="command")
    return fig

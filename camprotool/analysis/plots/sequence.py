"""The message sequence of a session or connection, as a flow graph with time going down.

Lanes: the client, the server's main port, and one per data connection (the
ones the session announced, then data connections from the same client that
nobody announced, in orange). Each message is an arrow labelled with its
command, the start of its parameters and, under its tail, its frame number
(``#22``: ``wireshark -r FILE -g 22`` opens it).

Rows follow the clock. Evenly spaced rows (Wireshark's flow graph) make a
two-minute silence look like two milliseconds; spacing proportional to time
would leave a fast exchange unreadable. So each row is at least one line below
the previous one, more the longer the pause (the extra space grows with the
logarithm of the pause: 10 ms adds 0.4 of a line, 1 s adds 1.2), and a pause
longer than ``gap`` seconds is cut out: a grey band labelled with its length
(``120 s gap``). Every row keeps its clock time at the left.

With the connections table, each connection's opening and its close (FIN, or
a red RST with a cross where its lane ends) are rows too, and its lane only
lives between them. With the violations table, each message that broke a
rule is highlighted and the rule named at the right.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.typing import LineStyleType

from camprotool.analysis.capture import Capture
from camprotool.analysis.plots.figure import C2S, OFFLINE, S2C, WARN, empty, fonts, new_axes
from camprotool.analysis.plots.inputs import optional, require
from camprotool.analysis.plots.timeaxis import format_duration
from camprotool.analysis.plots.zones import resolve_tz, wall, zone_name

MAX_ROWS = 150  # messages per sequence diagram
GAP = 1.0  # seconds: a longer pause between two rows is cut out and labelled
LOG_STEP = 0.4  # extra lines per tenfold pause above a millisecond
LANE_LIFE = "#999999"
UNLINKED = "#c45c00"
CALL = "plots.sequence_diagram(cap.messages, session, sessions=cap.sessions)"


@dataclass
class Row:
    """One row of the diagram: a message, or a connection opening or closing."""

    t: int  # ns since the epoch (UTC)
    order: int  # ties: openings first, then messages in stream order, then closes
    kind: str  # "message", "open" or "close"
    conn: int
    message: object = None  # the message's index label
    close: str | None = None


def row_positions(times_ns: np.ndarray, gap: float = GAP) -> tuple[np.ndarray, list[tuple]]:
    """Each row's y (down) and the pauses cut out as (y above, y below, seconds).

    A pause of ``d`` seconds puts the next row ``1 + LOG_STEP * log10(d / 1 ms)``
    lines lower (one line for a millisecond or less); a pause longer than
    ``gap`` becomes a break of fixed height, longer than any kept pause.
    """
    def step(seconds: float) -> float:
        return 1.0 + LOG_STEP * math.log10(max(seconds, 1e-3) / 1e-3)

    cut = max(2.6, step(gap) + 0.8)
    ys = np.zeros(len(times_ns))
    breaks = []
    for i in range(1, len(times_ns)):
        pause = (int(times_ns[i]) - int(times_ns[i - 1])) / 1e9
        if pause > gap:
            ys[i] = ys[i - 1] + cut
            breaks.append((ys[i - 1], ys[i], pause))
        else:
            ys[i] = ys[i - 1] + step(pause)
    return ys, breaks


def _short(params: object, limit: int = 36) -> str:
    if params is None or pd.isna(params):
        return ""
    text = str(params).replace("\r", " ").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Choice:
    """What to draw: the main connection, its data connections, and which part of it."""

    main: int | None
    data: list[int]
    window: tuple[float, float] | None  # message labels on the main connection
    title: str
    opens: bool = True  # the main connection's opening belongs to this view
    closes: bool = True  # and its close


def _pick_conns(messages: pd.DataFrame, session_or_conn: int | None,
                sessions: pd.DataFrame | None, connections: pd.DataFrame | None) -> Choice:
    """The main conn, data conns, window of message labels on it, and title of what to draw.

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
        data_conns = [int(c) for c in (s["data_conns"] if s["data_conns"] is not None else [])]
        user = "" if pd.isna(s["user"]) else f", user {s['user']}"
        earlier = ((messages["conn"] == conn) & (messages.index.to_numpy() < first)).any()
        return Choice(conn, data_conns, window,
                      f"Session {session_or_conn}{user} ({s['outcome']}), conn {conn}",
                      opens=not earlier, closes=not later)
    present = pd.unique(messages["conn"]).tolist() if len(messages) else []
    if session_or_conn is None:
        mains = messages.loc[messages["channel"].astype(str) == "main", "conn"]
        session_or_conn = int(mains.iloc[0]) if len(mains) else (present[0] if present else None)
    if session_or_conn is None:
        return Choice(None, [], None, "Message sequence")
    conn = int(session_or_conn)
    data: list[int] = []
    if connections is not None and len(connections) and "main_conn" in connections:
        linked = connections[connections["main_conn"] == conn]
        data = sorted(int(c) for c in linked["conn"])
    if conn not in present and not data:
        raise ValueError(f"no messages on connection {conn}")
    return Choice(conn, data, None, f"Connection {conn}")


def _client_ip(address: object) -> str:
    return str(address).rsplit(":", 1)[0]


def unlinked_data_conns(connections: pd.DataFrame, main: int) -> list[int]:
    """Data connections from the main connection's client host that no announcement links.

    Those that start after ``main`` opens and before that host opens its next
    main connection: an upload to a port nobody announced shows beside the
    session it most likely belongs to.
    """
    conns = connections.set_index(connections["conn"].astype(int), drop=False)
    if main not in conns.index:
        return []
    ip = conns["client"].map(_client_ip)
    row = conns.loc[main]
    same = ip == _client_ip(row["client"])
    channel = conns["channel"].astype(str)
    later_mains = conns.loc[same & (channel == "main") & (conns["start"] > row["start"]),
                            "start"]
    until = later_mains.min() if len(later_mains) else None
    linked = conns["main_conn"].notna() if "main_conn" in conns else False
    pick = same & (channel == "data") & ~linked & (conns["start"] >= row["start"])
    if until is not None:
        pick &= conns["start"] < until
    return sorted(int(c) for c in conns.index[pick])


def _rows(sel: pd.DataFrame, conn_info: dict[int, dict], choice: Choice,
          lanes: list[int]) -> list[Row]:
    """Messages plus the openings and closes of the lanes' connections, in time order."""
    ts = sel["ts"].astype("datetime64[ns, UTC]").map(lambda t: t.value).to_numpy(np.int64) \
        if len(sel) else np.zeros(0, np.int64)
    rows = [Row(int(t), 1, "message", int(c), message=label)
            for t, c, label in zip(ts, sel["conn"].astype(int), sel.index, strict=True)]
    for conn in lanes:
        info = conn_info.get(conn)
        if info is None:
            continue
        is_main = conn == choice.main
        if (choice.opens or not is_main) and not pd.isna(info["start"]):
            rows.append(Row(pd.Timestamp(info["start"]).value, 0, "open", conn))
        reason = None if pd.isna(info["close_reason"]) else str(info["close_reason"])
        if (choice.closes or not is_main) and reason in ("fin", "rst") \
                and not pd.isna(info["end"]):
            rows.append(Row(pd.Timestamp(info["end"]).value, 2, "close", conn, close=reason))
    position = {label: i for i, label in enumerate(sel.index)}
    return sorted(rows, key=lambda r: (r.t, r.order, position.get(r.message, 0)))


def _segments(top: float, bottom: float, holes: list[tuple]) -> list[tuple[float, float]]:
    """[top, bottom] minus the breaks, for lifelines interrupted where time is cut out."""
    out, y = [], top
    for above, below, _ in holes:
        if below <= y or above >= bottom:
            continue
        out.append((y, above + 0.35))
        y = below - 0.35
    out.append((y, bottom))
    return [(a, b) for a, b in out if b > a]


def sequence_diagram(messages: pd.DataFrame | Capture, session_or_conn: int | None = None,
                     tz: str | dt.tzinfo | None = None, *, sessions: pd.DataFrame | None = None,
                     connections: pd.DataFrame | None = None,
                     violations: pd.DataFrame | None = None, ax: Axes | None = None,
                     max_messages: int = MAX_ROWS, gap: float = GAP) -> Figure:
    """The messages of one session (or connection) as a flow graph, time going down.

    Lanes: the client, the server's main port, and one per data connection; one
    arrow per message with its command, the start of its parameters (decoding
    errors in red) and its frame number. Rows are spaced by the time between
    them; pauses over ``gap`` seconds are cut out and labelled with their length.

    With ``sessions`` (``Capture.sessions``) ``session_or_conn`` is a session id
    and the diagram shows that login with its data connections; otherwise it is
    a connection id. ``connections`` (``Capture.connections``) adds the data
    connections linked to it, unannounced data connections from the same
    client, and each connection's opening and close (FIN or RST).
    ``violations`` (``Capture.violations``) marks the messages that broke a
    rule. None: the first session, or the first main connection. A Capture
    gives all of these.
    """
    if isinstance(messages, Capture):
        cap = messages
        messages, sessions = cap.messages, cap.sessions
        connections, violations = cap.connections, cap.violations
    messages = require(messages, "messages", "sequence_diagram", CALL)
    sessions = optional(sessions, "sessions", "sequence_diagram", CALL)
    connections = optional(connections, "connections", "sequence_diagram", CALL)
    violations = optional(violations, "violations", "sequence_diagram", CALL)
    if not gap > 0:
        raise ValueError(f"gap must be a positive number of seconds, not {gap!r}")
    zone = resolve_tz(tz)
    choice = _pick_conns(messages, session_or_conn, sessions, connections)
    known: set[int] = set()
    unlinked: list[int] = []
    if connections is not None and len(connections) and choice.main is not None:
        known = {int(c) for c in connections["conn"]}
        unlinked = [c for c in unlinked_data_conns(connections, choice.main)
                    if c not in choice.data]
    if choice.main is None:
        sel = messages.iloc[:0]
    else:
        on_main = (messages["conn"] == choice.main).to_numpy()
        if choice.window is not None:
            label = messages.index.to_numpy()
            on_main = on_main & (label >= choice.window[0]) & (label < choice.window[1])
        sel = messages[on_main | messages["conn"].isin([*choice.data, *unlinked]).to_numpy()]
    total = len(sel)
    sel = sel.iloc[:max_messages]
    with fonts():
        if not len(sel):
            fig, ax = new_axes(ax, 11, 2.2)
            empty(ax, choice.title, "no messages")
            return fig
        lanes = [choice.main] if choice.main is not None else []
        for c in [*choice.data, *sorted(set(sel["conn"].astype(int)) - {choice.main,
                                                                        *choice.data,
                                                                        *unlinked}),
                  *unlinked]:
            if c not in lanes and ((sel["conn"] == c).any() or c in known):
                lanes.append(c)
        conn_info: dict[int, dict] = {} if not known or connections is None else {
            int(r["conn"]): r
            for r in connections[connections["conn"].isin(lanes)].to_dict("records")}
        rows = _rows(sel, conn_info, choice, lanes)
        if total > len(sel):  # cut: nothing after the last message drawn
            last = max(r.t for r in rows if r.kind == "message")
            rows = [r for r in rows if r.t <= last]
        ys, breaks = row_positions(np.array([r.t for r in rows], np.int64), gap)
        bottom = float(ys[-1]) + 0.7
        fig, ax = new_axes(ax, 11, 2.2 + 0.3 * (bottom + 1))
        drawn = _draw(ax, sel, rows, ys, breaks, lanes, choice, conn_info, set(unlinked),
                      violations, zone)
        more = f" — first {len(sel)} of {total} messages" if total > len(sel) else ""
        broke = f"; {drawn} protocol violation{'s' if drawn != 1 else ''} marked" \
            if drawn else ""
        ax.set_title(choice.title + more + broke, pad=8)
    return fig


def _lane_label(sel: pd.DataFrame, conn: int, info: dict | None, unlinked: bool) -> str:
    on_c = sel[sel["conn"] == conn]
    if len(on_c):
        r = on_c.iloc[0]
        channel, server, client = r["channel"], r["server"], r["client"]
    else:  # a lane without messages is a connection of conn_info
        assert info is not None
        channel, server, client = info["channel"], info["server"], info["client"]
    text = f"{channel} conn {conn}\n{server}\n(client :{str(client).rsplit(':', 1)[-1]})"
    return text + ("\nnot announced" if unlinked else "")


def _draw(ax: Axes, sel: pd.DataFrame, rows: list[Row], ys: np.ndarray, breaks: list[tuple],
          lanes: list[int], choice: Choice, conn_info: dict[int, dict], unlinked: set[int],
          violations: pd.DataFrame | None, zone: dt.tzinfo) -> int:
    """Lanes, lifelines, breaks, rows and violations; how many violations were marked."""
    main_rows = sel[sel["conn"] == choice.main]
    ref = main_rows.iloc[0] if len(main_rows) else sel.iloc[0]
    lane_x = {conn: i + 1 for i, conn in enumerate(lanes)}
    names = [f"client\n{ref['client']}"]
    names += [f"server\n{ref['server']}" if conn == choice.main else
              _lane_label(sel, conn, conn_info.get(conn), conn in unlinked) for conn in lanes]
    n_lanes = len(names)
    top, bottom = -0.8, float(ys[-1]) + 0.7
    by_conn_rows = {(r.kind, r.conn): y for r, y in zip(rows, ys, strict=True)
                    if r.kind != "message"}
    # lifelines: the client's throughout, each connection's between its opening and close
    for a, b in _segments(top, bottom, breaks):
        ax.vlines(0, a, b, colors=LANE_LIFE, linestyles="dashed", linewidth=0.8)
    for conn in lanes:
        life_top = by_conn_rows.get(("open", conn), top)
        life_end = by_conn_rows.get(("close", conn), bottom)
        color = UNLINKED if conn in unlinked else LANE_LIFE
        for a, b in _segments(life_top, life_end, breaks):
            ax.vlines(lane_x[conn], a, b, colors=color, linestyles="dashed", linewidth=0.8)
    middle = (n_lanes - 1) / 2
    for above, below, pause in breaks:
        ax.axhspan(above + 0.42, below - 0.42, color="#eeeeee", zorder=0, linewidth=0)
        ax.text(middle, (above + below) / 2, f"{format_duration(pause)} gap", ha="center",
                va="center", fontsize=8.5, style="italic", color="#444444", gid="gap",
                bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "#bbbbbb",
                      "linewidth": 0.6})
    messages = sel.loc[[r.message for r in rows if r.kind == "message"]]
    # characters a label may take: about the arrow's length in a 9.5-inch wide plot area
    width = 9.5 / (n_lanes + 0.75)
    msg_y = {}
    for r, y in zip(rows, ys, strict=True):
        if r.kind == "message":
            msg_y[r.message] = y
            lane = lane_x.get(r.conn, 1)
            _arrow(ax, messages.loc[r.message], y, lane, max(16, int(lane * width / 0.065)))
        else:
            _conn_event(ax, r, y, lane_x[r.conn], conn_info[r.conn])
    marked = _violations(ax, violations, msg_y, n_lanes)
    right = n_lanes - 0.5 + (1.25 if marked else 0)
    ax.set_xticks(range(n_lanes), names, fontsize=8)
    ax.xaxis.tick_top()
    for tick, conn in zip(ax.xaxis.get_major_ticks()[1:], lanes, strict=True):
        if conn in unlinked:
            tick.label2.set_color(UNLINKED)
    ax.set_xlim(-0.5, right)
    times = pd.Series(wall(pd.Series(pd.to_datetime([r.t for r in rows], utc=True)), zone))
    days = times.dt.strftime("%Y-%m-%d")
    labels = [("" if (i and days.iloc[i] == days.iloc[i - 1]) or days.nunique() == 1
               else days.iloc[i] + " ") + t.strftime("%H:%M:%S.%f")[:-3]
              for i, t in enumerate(times)]
    ax.set_yticks(ys, labels, fontsize=7)
    ax.set_ylim(bottom, top - 0.1)
    day = days.iloc[0] if days.nunique() == 1 else f"{days.iloc[0]} to {days.iloc[-1]}"
    ax.set_ylabel(f"time ({zone_name(zone)}, {day})")
    for side in ("right", "bottom"):
        ax.spines[side].set_visible(False)
    return marked


def _arrow(ax: Axes, msg: pd.Series, y: float, server_lane: int, room: int) -> None:
    c2s = str(msg["direction"]) == "c2s"
    a, b = (0, server_lane) if c2s else (server_lane, 0)
    error = msg.get("error")
    bad = error is not None and not pd.isna(error)
    color = OFFLINE if bad else (C2S if c2s else S2C)
    ax.annotate("", xy=(b, y), xytext=(a, y),
                arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.1,
                            "shrinkA": 0, "shrinkB": 0})
    command = str(msg["command"])
    label = f"{command} {_short(msg['params'], min(36, max(room - len(command), 8)))}".strip()
    if bad:
        label += f"  [{_short(error, 40)}]"
    ax.text((a + b) / 2, y - 0.08, label, ha="center", va="bottom", fontsize=8, color=color,
            clip_on=False, gid="label")
    frame = msg.get("frame")
    if frame is not None and not pd.isna(frame):
        inward = 0.04 if b > a else -0.04
        ax.text(a + inward, y + 0.1, f"#{int(frame)}", ha="left" if b > a else "right",
                va="top", fontsize=6.5, color="#666666", gid="frame")


def _conn_event(ax: Axes, row: Row, y: float, lane: int, info: dict) -> None:
    style: LineStyleType
    if row.kind == "open":
        text = f"conn {row.conn} opened" if info.get("handshake_seen", True) else \
            f"conn {row.conn} first seen (opened before the capture)"
        color, style, gid = "#777777", "dotted", "open"
    elif row.close == "rst":
        text, color, style, gid = f"conn {row.conn} reset (RST)", OFFLINE, "dashed", "rst"
    else:
        text, color, style, gid = f"conn {row.conn} closed (FIN)", "#777777", "dotted", "fin"
    ax.hlines(y, 0, lane, colors=color, linestyles=style, linewidth=1, gid=gid)
    ax.text(lane / 2, y - 0.08, text, ha="center", va="bottom", fontsize=7.5, style="italic",
            color=color, gid=gid)
    if row.kind == "open":
        ax.scatter([lane], [y], marker="o", s=22, color=color, zorder=3, label="_open")
    elif row.close == "rst":
        ax.scatter([0, lane], [y, y], marker="X", s=70, color=OFFLINE, zorder=3,
                   label="reset (RST)")
    else:
        ax.scatter([lane], [y], marker="s", s=22, color=color, zorder=3, label="_close")


def _violations(ax: Axes, violations: pd.DataFrame | None, msg_y: dict, n_lanes: int) -> int:
    """Highlight each drawn message that broke a rule and name the rule at the right."""
    if violations is None or not len(violations):
        return 0
    hit = violations[violations["message"].isin(list(msg_y))]
    if not len(hit):
        return 0
    x = n_lanes - 0.5 + 0.1
    ys = []
    for message, rules in hit.groupby("message", sort=False)["rule"]:
        y = msg_y[message]
        ys.append(y)
        ax.axhspan(y - 0.45, y + 0.15, color=WARN, alpha=0.12, zorder=0, linewidth=0)
        ax.text(x + 0.08, y, "\n".join(str(r) for r in rules), ha="left", va="center",
                fontsize=7.5, color=WARN, fontweight="bold", gid="violation")
    ax.scatter([x] * len(ys), ys, marker="^", s=60, color=WARN, edgecolors="black",
               linewidths=0.5, zorder=4, label="violation", clip_on=False)
    return len(hit)

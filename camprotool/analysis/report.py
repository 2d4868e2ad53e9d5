"""A capture's report: one self-contained HTML page plus every table as csv and parquet.

``write_report(cap, out_dir)`` writes::

    out_dir/index.html            summary, tables and plots; CSS inline, plots as
                                  base64 PNG data URIs: no external resource
    out_dir/tables/<name>.csv     every table of the capture, in full, times in UTC
    out_dir/tables/<name>.parquet

The page shows times in the display zone ``tz`` (default: the machine's local
zone); the files keep UTC. Every value is HTML-escaped, long tables are cut
with a note pointing at the full file, and passwords stay masked exactly as in
the tables (unless the capture was read with ``reveal_passwords=True``).

The HTML comes from :mod:`camprotool.analysis.render` (jinja2 templates in
``camprotool/templates/``), the same path the explorer and the client panel
render their tables with; this module decides what the page says.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from camprotool._version import __version__
from camprotool.analysis import plots, render, tables
from camprotool.analysis.capture import Capture, read_capture
from camprotool.analysis.export import write_frame
from camprotool.analysis.hexview import wireshark_command
from camprotool.analysis.render import Cell, Markup, Row, Table, fmt_delta, fmt_time

__all__ = ["TABLES", "VIEWS", "camera_counts", "failures_by_reason", "findings", "write_report"]

#: The tables written to ``tables/``, in this order.
TABLES = ["messages", "connections", "sessions", "sync", "transfers", "status", "alarms",
          "violations", "notes", "problems"]
MAX_ROWS = 200  # rows per HTML table; the files hold everything
MAX_SEQUENCES = 6  # sequence diagrams (one per session)
DPI = 96

# ------------------------------------------------------------------ tables


def html_table(df: pd.DataFrame, zone: dt.tzinfo, *, name: str = "", max_rows: int = MAX_ROWS,
               columns: list[str] | None = None, source: object = None) -> Markup:
    """``df`` as an escaped HTML table (at most ``max_rows`` rows, with a note naming
    the file ``tables/<name>.csv`` with all of them). ``source``: the capture's file;
    a frame cell's tooltip is then the command line that opens it there in Wireshark."""
    more = Markup("; the full table is in <code>tables/{}.csv</code>").format(name) \
        if name else Markup("")
    return render.frame_table(df, zone=zone, max_rows=max_rows, columns=columns,
                              source=source, more=more)


# ------------------------------------------------------------------ figures


def png_bytes(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG. Without a CJK font Chinese text shows as boxes: one note in
    the docs (``make sysdeps`` installs a font), not a warning per glyph."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def _figure(fig: Figure, alt: str, caption: str = "") -> Markup:
    data = base64.b64encode(png_bytes(fig)).decode("ascii")
    return render.fragment("figure", f"data:image/png;base64,{data}", alt, caption)


# ------------------------------------------------------------------ the page


def _counts(series: pd.Series) -> str:
    counts = series.astype(str).value_counts()
    return ", ".join(f"{n} {k}" for k, n in counts.items()) if len(counts) else ""


#: The columns each table shows on the page, so it fits a screen; the files in
#: tables/ hold every column. Tables not named here show all of theirs.
VIEWS = {
    "sessions": ["session", "conn", "client", "user", "outcome", "reason",
                 "camera_count", "data_conns", "start", "duration", "heartbeats",
                 "heartbeat_max_gap"],
    # ``completed`` counts refused cameras too: ok / failed / no_answer say more
    "transfers": ["conn", "kind", "status", "close_reason", "total", "ok", "failed",
                  "no_answer", "data_client", "start", "duration", "cameras_per_s"],
    "sync": ["ts", "frame", "conn", "kind", "camera_id", "current", "total", "outcome",
             "reason"],
    "status": ["ts", "camera_id", "online", "previous", "source", "time_in_previous", "conn"],
    "connections": ["conn", "channel", "client", "server", "dialect",
                    "handshake_seen", "start", "duration", "close_reason", "messages",
                    "lost_c2s", "lost_s2c"],
    "violations": ["rule", "frame", "ts", "conn", "direction", "command", "params", "detail",
                   "message"],
    "problems": ["frame", "kind", "conn", "direction", "detail"],
    "failures": ["kind", "outcome", "reason", "steps", "cameras", "first_frame"],
}
_WAY = {"c2s": "client→server", "s2c": "server→client"}


def _frames_of(cap: Capture, labels: pd.Series) -> pd.array:
    """The ``frame`` of the messages with these index labels (missing stays missing)."""
    pos = pd.array(labels, dtype="Int64").to_numpy(dtype=np.int64, na_value=-1)
    frames = cap.messages["frame"].to_numpy(np.int64)
    out = pd.array(np.where(pos >= 0, frames[np.maximum(pos, 0)] if len(frames) else 0, 0),
                   dtype="Int64")
    out[pos < 0] = pd.NA
    return out


def violations_view(cap: Capture) -> pd.DataFrame:
    """``cap.violations`` with the frame, direction and parameters of the message that
    broke each rule."""
    v = cap.violations
    m = cap.messages
    at = v["message"].to_numpy(np.int64)
    return v.assign(frame=m["frame"].to_numpy()[at] if len(v) else [],
                    direction=m["direction"].to_numpy()[at] if len(v) else [],
                    params=m["params"].to_numpy()[at] if len(v) else [])


def sync_view(cap: Capture, steps: pd.DataFrame) -> pd.DataFrame:
    """Sync steps with the frame of their answer (of their request when unanswered)."""
    return steps.assign(frame=_frames_of(cap, steps["answer"].fillna(steps["request"])))


def failures_by_reason(cap: Capture) -> pd.DataFrame:
    """Refused and unanswered sync steps, counted by kind, outcome and reason."""
    sync = sync_view(cap, cap.sync)
    bad = sync[sync["outcome"].astype(str) != "ok"]
    if not len(bad):
        return pd.DataFrame(columns=VIEWS["failures"])
    outcome = bad["outcome"].astype(str).map({"failed": "refused", "no_answer": "no answer"})
    reason = bad["reason"].astype(object).where(bad["reason"].notna(), "")
    keys = pd.DataFrame({"kind": bad["kind"].astype(str).to_numpy(),
                         "outcome": outcome.to_numpy(), "reason": reason.to_numpy(),
                         "camera": bad["camera_id"].astype(object).to_numpy(),
                         "frame": bad["frame"].to_numpy(dtype=np.float64, na_value=np.nan)})
    rows = []
    for (kind, out, why), g in keys.groupby(["kind", "outcome", "reason"], sort=False):
        cams = [str(c) for c in g["camera"] if isinstance(c, str)]
        shown = ", ".join(cams[:8]) + (f" (+{len(cams) - 8} more)" if len(cams) > 8 else "")
        first = g["frame"].min()
        rows.append((kind, out, why, len(g), shown,
                     None if np.isnan(first) else int(first)))
    df = pd.DataFrame(rows, columns=VIEWS["failures"])
    df["first_frame"] = df["first_frame"].astype("Int64")
    return df.sort_values("steps", ascending=False, kind="stable").reset_index(drop=True)


def camera_counts(cap: Capture) -> dict[str, dict[str, int]]:
    """Per sync kind: cameras ``ok`` (bound or downloaded), ``refused``, and failed:
    ``unanswered`` steps plus the cameras a transfer cut short ``never_reached``
    (:func:`camprotool.analysis.tables.camera_counts`)."""
    return tables.camera_counts(cap.sync, cap.transfers)


def _camera_text(kind: str, c: dict[str, int]) -> str:
    ok = "bound" if kind == "upload" else "downloaded"
    failed = c["unanswered"] + c["never_reached"]
    why = []
    if c["unanswered"]:
        why.append(f"{c['unanswered']:,} unanswered")
    if c["never_reached"]:
        why.append(f"{c['never_reached']:,} never reached: transfer cut short")
    return (f"{c['ok']:,} {ok}, {c['refused']:,} refused by the server, {failed:,} failed"
            + (f" ({'; '.join(why)})" if why else ""))


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def findings(cap: Capture) -> list[str]:
    """What went wrong, most telling first, as escaped HTML list items (empty: nothing)."""
    e = html.escape
    items: list[str] = []
    p = cap.problems
    kinds = p["kind"].astype(str)
    for kind in dict.fromkeys(kinds.tolist()):
        rows = p[kinds == kind]
        frames = rows["frame"].dropna()
        at = f" (first at frame {int(frames.iloc[0])})" if len(frames) else ""
        if kind == "lost_bytes":
            sizes = rows["detail"].str.extract(r": ([\d,]+) bytes? lost")[0]
            total = int(sizes.str.replace(",", "").astype(float).sum())
            head = f"{_plural(total, 'byte')} lost"
        else:
            head = f"{_plural(len(rows), 'problem')} {kind}"
        details = "; ".join(rows["detail"].astype(str).head(3))
        more = f"; and {len(rows) - 3:,} more" if len(rows) > 3 else ""
        items.append(f'<strong>{e(head)}</strong>{e(at)}: {e(details + more)} '
                     '(<a href="#problems">capture problems</a>)')
    failures = failures_by_reason(cap)
    for kind, c in camera_counts(cap).items():
        refused = failures[(failures["kind"] == kind) & (failures["outcome"] == "refused")]
        if c["refused"]:
            why = "; ".join(f"{r.reason or 'no reason given'}: {r.cameras}"
                            for r in refused.itertuples())
            noun = "camera" if kind == "upload" else "download step"
            items.append(f"<strong>{e(_plural(c['refused'], noun))} refused</strong> by the server "
                         f"({e(kind)}): {e(why)}")
        if c["unanswered"]:
            steps = _plural(c["unanswered"], kind + " step")
            items.append(f"<strong>{e(steps)} unanswered</strong>")
    t = cap.transfers
    for row in t[t["status"].astype(str) == "cut_short"].itertuples():
        shown = "?" if pd.isna(row.total) else f"{int(row.total):,}"
        closed = "" if pd.isna(row.close_reason) else f", closed by {row.close_reason}"
        items.append(f"<strong>{e(str(row.kind))} on connection {row.conn} cut short"
                     f"</strong> after {row.completed:,} of {shown} cameras{e(closed)}")
    v = cap.violations
    if len(v):
        by_rule = ", ".join(f"{rule} ({n})" for rule, n in
                            v["rule"].astype(str).value_counts(sort=False).items())
        items.append(f"<strong>{e(_plural(len(v), 'protocol violation'))}</strong>: {e(by_rule)} "
                     '(<a href="#violations">each with its message and frame</a>)')
    s = cap.sessions
    refused = s[s["outcome"].astype(str) == "error"]
    if len(refused):
        why = _counts(refused["reason"].fillna("no reason given"))
        items.append(f"<strong>{e(_plural(len(refused), 'login'))} refused</strong>: {e(why)}")
    errors = int(cap.messages["error"].notna().sum())
    if errors:
        items.append(f"<strong>{e(_plural(errors, 'message'))}</strong> not fully decoded "
                     '(<a href="#errors">decoding errors</a>)')
    return items


def _summary(cap: Capture, zone: dt.tzinfo,
             fmt_time: Callable[[pd.Series], list[str | None]]) -> list[tuple[str, str, bool]]:
    """(label, escaped HTML, alert) rows of the summary."""
    e = html.escape
    m, conns = cap.messages, cap.connections
    rows: list[tuple[str, str, bool]] = []
    p = cap.problems
    by_kind = _counts(p["kind"]) if len(p) else ""
    rows.append(("capture problems", e(f"{len(p):,}" + (f" ({by_kind})" if by_kind else "")),
                 len(p) > 0))
    v = cap.violations
    by_rule = _counts(v["rule"]) if len(v) else ""
    rows.append(("protocol violations", e(f"{len(v):,}" + (f" ({by_rule})" if by_rule else "")),
                 len(v) > 0))
    counts = camera_counts(cap)
    for kind, c in counts.items():
        rows.append((f"cameras ({kind})", e(_camera_text(kind, c)),
                     c["refused"] + c["unanswered"] + c["never_reached"] > 0))
    sync_failed = int((cap.sync["outcome"].astype(str) != "ok").sum())
    rows.append(("refused or unanswered sync steps", f"{sync_failed:,}", sync_failed > 0))
    errors = int(m["error"].notna().sum()) if len(m) else 0
    rows.append(("messages with decoding errors", f"{errors:,}", errors > 0))
    source = cap.source
    rows.append(("capture file", f"<code>{e(source)}</code>", False))
    if source != "<memory>" and os.path.exists(source):
        rows.append(("file size", f"{os.path.getsize(source):,} bytes", False))
    rows.append(("packets", f"{cap.decoded.packets:,}", False))
    channels = _counts(conns["channel"]) if len(conns) else ""
    rows.append(("connections", e(f"{len(conns):,}" + (f" ({channels})" if channels else "")),
                 False))
    dialects = _counts(conns["dialect"].dropna()) if len(conns) else ""
    if dialects:
        rows.append(("dialects", e(dialects), False))
    rows.append(("messages", f"{len(m):,}", False))
    if len(m):
        first, last = m["ts"].min(), m["ts"].max()
        t0, t1 = fmt_time(pd.Series([first, last]))
        span = fmt_delta(last - first)
        rows.append(("time span", e(f"{t0} → {t1} ({span})"), False))
    rows.append(("time zone", e(f"{plots.zone_name(zone)} (files in tables/ are in UTC)"),
                 False))
    s = cap.sessions
    rows.append(("login sessions", e(f"{len(s):,}" + (f" ({_counts(s['outcome'])})"
                                                       if len(s) else "")), False))
    users = sorted(s["user"].dropna().astype(str).unique()) if len(s) else []
    if users:
        rows.append(("users", e(", ".join(users)), False))
    t = cap.transfers
    rows.append(("transfers", e(f"{len(t):,}" + (f" ({_counts(t['status'])})" if len(t)
                                                  else "")), False))
    if len(t):
        rows.append(("transfers closed by", e(_counts(t["close_reason"].dropna())),
                     bool((t["close_reason"].astype(str) == "rst").any())))
    st = cap.status
    rows.append(("camera status changes", f"{int(st['changed'].sum()):,} "
                 f"({st['camera_id'].nunique():,} cameras observed)", False))
    rows.append(("alarms", e(f"{len(cap.alarms):,}" + (
        f" ({_counts(cap.alarms['alarm_type'])})" if len(cap.alarms) else "")), False))
    rows.append(("passwords", "revealed (read with reveal_passwords)" if cap.reveal_passwords
                 else "masked as ***", cap.reveal_passwords))
    return rows


def _findings_html(cap: Capture) -> Markup:
    items = findings(cap)  # escaped HTML already
    if not items:
        return render.fragment("items", ["Nothing went wrong: no capture problems, no refused "
                                         "or failed camera, no protocol violation, no decoding "
                                         "error."], "findings clean")
    return render.fragment("heading", "What went wrong") + render.fragment(
        "items", [Markup(item) for item in items], "findings")


def _jump(source: object) -> str:
    """``wireshark -r FILE -g FRAME`` for this capture ('' when it was read from bytes)."""
    cmd = wireshark_command(source, 1)
    return "" if cmd is None else cmd[: -len(" -g 1")] + " -g FRAME"


def _jump_note(source: object) -> Markup:
    cmd = _jump(source)
    if not cmd:
        return Markup("")
    return render.fragment("note", Markup(
        "Every <b>frame</b> on this page is a packet number: <code>{}</code> opens the "
        "capture at it in Wireshark (a frame's tooltip has its command line), and "
        "<code>cap.packets(FRAME)</code> shows its bytes.").format(cmd), "note jump")


def _section(ident: str, title: str, body: str, count: int | None = None) -> Markup:
    return render.fragment("section", ident, title, Markup(body), count)


def _note(text: str) -> Markup:
    return render.fragment("note", text)


def _empty(text: str) -> Markup:
    return render.fragment("note", text, "empty")


def _files_table(written: dict[str, int]) -> Markup:
    rows = [Row([Cell(name, code=True), Cell(f"{n:,}", "num"),
                 Cell("", links=(("csv", f"tables/{name}.csv"),
                                 ("parquet", f"tables/{name}.parquet")))])
            for name, n in written.items()]
    return render.table(Table(["table", "rows", "files"], rows))


def write_report(cap: Capture | str | os.PathLike[str], out_dir: str | os.PathLike[str],
                 tz: str | dt.tzinfo | None = None, *, max_rows: int = MAX_ROWS,
                 max_sequences: int = MAX_SEQUENCES) -> Path:
    """Write ``out_dir/index.html`` and ``out_dir/tables/*``; return the index path.

    ``cap``: a :class:`Capture` (or a capture file's path, read with the
    defaults). ``tz``: the zone the page shows times in (IANA name, tzinfo, or
    None for the local zone); a bad name raises ``ValueError`` before anything
    is written. ``max_rows``: rows per HTML table. ``max_sequences``: sequence
    diagrams drawn (one per session, first ones first).
    """
    zone = plots.resolve_tz(tz)
    if not isinstance(cap, Capture):
        cap = read_capture(cap)
    with warnings.catch_warnings():
        # a capture whose rows are all errors draws a rate plot with no named command:
        # the page says so; a matplotlib warning on stderr would only add noise
        warnings.filterwarnings("ignore", message="No artists with labels found")
        return _write_page(cap, Path(out_dir), zone, max_rows, max_sequences)


def _write_page(cap: Capture, out: Path, zone: dt.tzinfo, max_rows: int,
                max_sequences: int) -> Path:
    table_dir = out / "tables"
    table_dir.mkdir(parents=True, exist_ok=True)

    written: dict[str, int] = {}
    for name in TABLES:
        df = getattr(cap, name)
        write_frame(df, table_dir / f"{name}.csv")
        write_frame(df, table_dir / f"{name}.parquet")
        written[name] = len(df)

    times = fmt_time(zone)

    source = getattr(cap, "origin", None) or cap.source

    def table(name: str, df: pd.DataFrame | None = None, **kw: Any) -> Markup:
        kw.setdefault("columns", VIEWS.get(name))
        return html_table(getattr(cap, name) if df is None else df, zone, name=name,
                          max_rows=max_rows, source=source, **kw)

    summary_rows = [(label, Markup(value), alert)
                    for label, value, alert in _summary(cap, zone, times)]
    sections = [_section("summary", "Summary",
                         _findings_html(cap) + _jump_note(source)
                         + render.fragment("pairs", summary_rows, "summary")
                         + _figure(plots.message_rate(cap.messages, "auto", zone),
                                   "Message rate by command",
                                   "Messages per interval, stacked by command."))]

    p = cap.problems
    body = (render.fragment("note", Markup(
        "What the reader and the reassembler could not use: lost bytes, connections begun "
        "before the capture, cut packets, a cut file... Open a frame in Wireshark with "
        "<code>{}</code>.").format(_jump(source))) + table("problems")) if len(p) else \
        _empty("None: every byte of every connection was captured and read.")
    sections.append(_section("problems", "Capture problems", body, len(p)))

    v = cap.violations
    body = table("violations", violations_view(cap)) if len(v) else \
        _empty("No breach of the PROTOCOL.md section 5 rules.")
    if len(cap.notes):
        body += render.fragment("heading", "Notes") + _note("Oddities no rule covers.") \
            + table("notes")
    sections.append(_section("violations", "Protocol violations", body, len(v)))

    s = cap.sessions
    body = table("sessions")
    ids = s["session"].tolist()[:max_sequences] if len(s) else []
    if not ids and len(cap.messages):  # no login seen: the first connection's flow
        body += _figure(plots.sequence_diagram(cap.messages, None, zone,
                                               connections=cap.connections,
                                               violations=cap.violations),
                        "Message sequence", "Message sequence of the first connection.")
    for sid in ids:
        fig = plots.sequence_diagram(cap.messages, sid, zone, sessions=s,
                                     connections=cap.connections, violations=cap.violations)
        body += render.fragment("heading", f"Session {sid}") + _figure(
            fig, f"Message sequence of session {sid}",
            "Client, server and data connections; one arrow per message with its frame, time "
            "going down, long pauses cut out; closes, resets and violations marked.")
    if len(s) > len(ids):
        body += render.fragment("note", Markup(
            "Sequence diagrams for the first {} of {} sessions; draw others with "
            "<code>plots.sequence_diagram(cap, session)</code>.").format(len(ids), len(s)))
    sections.append(_section("sessions", "Sessions", body, len(s)))

    t = cap.transfers
    body = table("transfers") + _figure(
        plots.sync_progress(cap.sync, t, zone, violations=cap.violations),
        "Sync progress per data connection",
        "How far each transfer got since its own start (one panel each, or a summary for "
        "many); red crosses are failed steps.")
    failed = cap.sync[cap.sync["outcome"].astype(str) != "ok"]
    if len(failed):
        body += (render.fragment("heading", "Failures by reason")
                 + html_table(failures_by_reason(cap), zone, max_rows=max_rows,
                              source=source)
                 + render.fragment("heading", "Failed or unanswered sync steps")
                 + table("sync", sync_view(cap, failed)))
    sections.append(_section("transfers", "Transfers", body, len(t)))

    a = cap.alarms
    until = plots.capture_end(cap)
    body = table("alarms") + _figure(
        plots.alarm_timeline(a, cap.status, zone, until=until), "Alarm timeline",
        "One lane per camera; markers are alarm types; shading is the camera's known status.")
    sections.append(_section("alarms", "Alarms", body, len(a)))

    st = cap.status
    changes = st[st["changed"].astype(bool)]
    body = _figure(plots.status_timeline(st, zone, until=until), "Camera status timeline",
                   "Online (green), offline (red), unknown (grey); black ticks are changes.")
    body += render.fragment("heading", "Status changes") + table("status", changes)
    sections.append(_section("status", "Camera status", body, st["camera_id"].nunique()))

    sections.append(_section("connections", "Connections", table("connections"),
                             len(cap.connections)))

    bad = cap.messages[cap.messages["error"].notna()]
    if len(bad):
        body = table("messages", bad, columns=["ts", "frame", "conn", "channel", "direction",
                                               "command", "params", "error"])
        sections.append(_section("errors", "Decoding errors", body, len(bad)))

    sections.append(_section("files", "Tables as files",
                             _note("Every table in full, times in UTC, next to this page.")
                             + _files_table(written)))

    nav = [
        ("summary", "Summary"), ("problems", "Problems"), ("violations", "Violations"),
        ("sessions", "Sessions"), ("transfers", "Transfers"), ("alarms", "Alarms"),
        ("status", "Camera status"), ("connections", "Connections"),
        *([("errors", "Errors")] if len(bad) else []), ("files", "Files")]
    name = os.path.basename(cap.source)
    now = dt.datetime.now(zone).strftime("%Y-%m-%d %H:%M:%S %Z")
    page = render.page(
        title=f"camprotool report: {name}", heading="camprotool report", subtitle=name,
        nav=nav, sections=sections,
        footer=f"camprotool {__version__} · generated {now} · times shown in "
               f"{plots.zone_name(zone)}")
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


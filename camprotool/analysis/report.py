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

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

import camprotool
from camprotool.analysis import plots
from camprotool.analysis.capture import Capture, read_capture
from camprotool.analysis.export import write_frame

__all__ = ["TABLES", "write_report"]

#: The tables written to ``tables/``, in this order.
TABLES = ["messages", "connections", "sessions", "sync", "transfers", "status", "alarms",
          "violations", "notes", "problems"]
MAX_ROWS = 200  # rows per HTML table; the files hold everything
MAX_SEQUENCES = 6  # sequence diagrams (one per session)
DPI = 96

CSS = """
:root { --fg:#1d2330; --muted:#5b6475; --line:#d8dce3; --bg:#f6f7f9; --accent:#1f4e9c;
        --bad:#b3261e; --ok:#1e7d32; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",
       "Liberation Sans","WenQuanYi Zen Hei",sans-serif; color:var(--fg); background:var(--bg); }
header { background:#fff; border-bottom:1px solid var(--line); padding:18px 32px 10px; }
h1 { margin:0; font-size:24px; } h1 small { color:var(--muted); font-weight:normal; }
nav { margin-top:8px; font-size:14px; } nav a { margin-right:14px; color:var(--accent);
      text-decoration:none; } nav a:hover { text-decoration:underline; }
main { max-width:1400px; margin:0 auto; padding:8px 32px 40px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px;
          padding:14px 20px 18px; margin:18px 0; }
h2 { font-size:19px; margin:0 0 10px; } h2 .count { color:var(--muted); font-weight:normal; }
h3 { font-size:16px; margin:16px 0 6px; }
p.note { color:var(--muted); font-size:13px; margin:6px 0; }
p.empty { color:var(--muted); font-style:italic; }
.scroll { overflow-x:auto; max-height:640px; overflow-y:auto; border:1px solid var(--line);
          border-radius:4px; }
table.data { border-collapse:collapse; font-size:13px; white-space:nowrap; width:100%; }
table.data th { position:sticky; top:0; background:#eef1f6; text-align:left;
                font-weight:600; border-bottom:1px solid var(--line); }
table.data th, table.data td { padding:4px 10px; }
table.data tbody tr:nth-child(even) { background:#f8f9fb; }
table.data tbody tr:hover { background:#fff7d6; }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
td.na { color:#b0b4bb; }
td.text { white-space:normal; min-width:16em; max-width:48em; }
td.bad { color:var(--bad); font-weight:600; } td.good { color:var(--ok); }
table.summary { border-collapse:collapse; font-size:14px; }
table.summary th { text-align:left; font-weight:600; padding:3px 24px 3px 0;
                   vertical-align:top; color:var(--muted); }
table.summary td { padding:3px 0; }
.alert { color:var(--bad); font-weight:600; }
figure { margin:14px 0 6px; } figure img { max-width:100%; height:auto;
         border:1px solid var(--line); border-radius:4px; background:#fff; }
figcaption { color:var(--muted); font-size:13px; margin-top:4px; }
code { font-family:ui-monospace,"DejaVu Sans Mono",monospace; font-size:13px; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:10px 0 30px; }
"""


# ------------------------------------------------------------------ cell formatting


def _fmt_time(zone: dt.tzinfo) -> Callable[[pd.Series], list[str | None]]:
    def fmt(col: pd.Series) -> list[str | None]:
        local = col.dt.tz_convert(zone) if col.dt.tz is not None else col
        text = local.dt.strftime("%Y-%m-%d %H:%M:%S.%f").str.slice(0, 23)
        return [None if pd.isna(v) else v for v in text]
    return fmt


def _fmt_delta(value: pd.Timedelta) -> str:
    seconds = value.total_seconds()
    if abs(seconds) < 60:
        return f"{seconds:.3f} s"
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{sign}{int(h)}:{int(m):02d}:{s:06.3f}"


def _fmt_value(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(str(_fmt_value(v)) for v in value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    if isinstance(value, float | np.floating):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, pd.Timedelta):
        return _fmt_delta(value)
    return str(value)


def _column_cells(col: pd.Series, zone: dt.tzinfo) -> list[str | None]:
    if isinstance(col.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(col):
        return _fmt_time(zone)(col)
    if pd.api.types.is_timedelta64_dtype(col):
        return [None if pd.isna(v) else _fmt_delta(v) for v in col]
    return [_fmt_value(v) for v in col.astype(object)]


def _is_numeric(col: pd.Series) -> bool:
    return (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)) \
        or pd.api.types.is_timedelta64_dtype(col)


TEXT_COLUMNS = {"params", "detail", "reason", "error", "message_text"}


def html_table(df: pd.DataFrame, zone: dt.tzinfo, *, name: str = "", max_rows: int = MAX_ROWS,
               columns: list[str] | None = None) -> str:
    """``df`` as an escaped HTML table (at most ``max_rows`` rows, with a note)."""
    e = html.escape
    if columns is not None:
        df = df[[c for c in columns if c in df.columns]]
    df = df.drop(columns=[c for c in ("raw",) if c in df.columns])
    if not len(df):
        return '<p class="empty">none</p>'
    shown = df.iloc[:max_rows]
    cells = {c: _column_cells(shown[c], zone) for c in shown.columns}
    numeric = {c: _is_numeric(shown[c]) for c in shown.columns}
    out = []
    if len(df) > len(shown):
        where = f" the full table is in <code>tables/{e(name)}.csv</code>" if name else ""
        out.append(f'<p class="note">Showing the first {len(shown):,} of {len(df):,} rows;'
                   f"{where}.</p>")
    out.append('<div class="scroll"><table class="data"><thead><tr>')
    out.extend(f"<th>{e(str(c))}</th>" for c in shown.columns)
    out.append("</tr></thead><tbody>")
    for i in range(len(shown)):
        out.append("<tr>")
        for c in shown.columns:
            v = cells[c][i]
            if v is None:
                out.append('<td class="na"></td>')
                continue
            cls = "num" if numeric[c] else ("text" if c in TEXT_COLUMNS else "")
            if c in ("outcome", "status"):
                cls = {"ok": "good", "complete": "good", "error": "bad", "failed": "bad",
                       "no_answer": "bad", "cut_short": "bad"}.get(v, cls)
            attr = f' class="{cls}"' if cls else ""
            out.append(f"<td{attr}>{e(v)}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


# ------------------------------------------------------------------ figures


def png_bytes(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG. Without a CJK font Chinese text shows as boxes: one note in
    the docs (``make sysdeps`` installs a font), not a warning per glyph."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def _figure(fig: Figure, alt: str, caption: str = "") -> str:
    data = base64.b64encode(png_bytes(fig)).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
            f"{cap}</figure>")


# ------------------------------------------------------------------ the page


def _counts(series: pd.Series) -> str:
    counts = series.astype(str).value_counts()
    return ", ".join(f"{n} {k}" for k, n in counts.items()) if len(counts) else ""


def _summary(cap: Capture, zone: dt.tzinfo, fmt_time) -> list[tuple[str, str, bool]]:
    """(label, escaped HTML, alert) rows of the summary."""
    e = html.escape
    m, conns = cap.messages, cap.connections
    rows: list[tuple[str, str, bool]] = []
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
        span = _fmt_delta(last - first)
        rows.append(("time span", e(f"{t0} → {t1} ({span})"), False))
    rows.append(("time zone", e(f"{plots.zone_name(zone)} (files in tables/ are in UTC)"),
                 False))
    errors = int(m["error"].notna().sum()) if len(m) else 0
    rows.append(("messages with decoding errors", f"{errors:,}", errors > 0))
    rows.append(("capture problems (reader/reassembly)", f"{len(cap.problems):,}",
                 len(cap.problems) > 0))
    v = cap.violations
    by_rule = _counts(v["rule"]) if len(v) else ""
    rows.append(("protocol violations", e(f"{len(v):,}" + (f" ({by_rule})" if by_rule else "")),
                 len(v) > 0))
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
        rows.append(("cameras synced", f"{int(t['completed'].sum()):,}", False))
    sync_failed = int((cap.sync["outcome"].astype(str) == "failed").sum())
    rows.append(("failed sync steps", f"{sync_failed:,}", sync_failed > 0))
    st = cap.status
    rows.append(("camera status changes", f"{int(st['changed'].sum()):,} "
                 f"({st['camera_id'].nunique():,} cameras observed)", False))
    rows.append(("alarms", e(f"{len(cap.alarms):,}" + (
        f" ({_counts(cap.alarms['alarm_type'])})" if len(cap.alarms) else "")), False))
    rows.append(("passwords", "revealed (read with reveal_passwords)" if cap.reveal_passwords
                 else "masked as ***", cap.reveal_passwords))
    return rows


def _section(ident: str, title: str, body: str, count: int | None = None) -> str:
    n = f' <span class="count">({count:,})</span>' if count is not None else ""
    return f'<section id="{ident}"><h2>{html.escape(title)}{n}</h2>{body}</section>'


def _files_table(written: dict[str, int]) -> str:
    rows = "".join(
        f'<tr><td><code>{html.escape(name)}</code></td><td class="num">{n:,}</td>'
        f'<td><a href="tables/{html.escape(name)}.csv">csv</a> · '
        f'<a href="tables/{html.escape(name)}.parquet">parquet</a></td></tr>'
        for name, n in written.items())
    return ('<div class="scroll"><table class="data"><thead><tr><th>table</th><th>rows</th>'
            f"<th>files</th></tr></thead><tbody>{rows}</tbody></table></div>")


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
    out = Path(out_dir)
    table_dir = out / "tables"
    table_dir.mkdir(parents=True, exist_ok=True)

    written: dict[str, int] = {}
    for name in TABLES:
        df = getattr(cap, name)
        write_frame(df, table_dir / f"{name}.csv")
        write_frame(df, table_dir / f"{name}.parquet")
        written[name] = len(df)

    fmt_time = _fmt_time(zone)
    e = html.escape

    def table(name: str, df: pd.DataFrame | None = None, **kw) -> str:
        return html_table(getattr(cap, name) if df is None else df, zone, name=name,
                          max_rows=max_rows, **kw)

    summary_rows = "".join(
        f'<tr><th>{e(label)}</th><td{" class=alert" if alert else ""}>{value}</td></tr>'
        for label, value, alert in _summary(cap, zone, fmt_time))
    sections = [_section("summary", "Summary",
                         f'<table class="summary">{summary_rows}</table>'
                         + _figure(plots.message_rate(cap.messages, "auto", zone),
                                   "Message rate by command",
                                   "Messages per interval, stacked by command."))]

    v = cap.violations
    body = table("violations") if len(v) else \
        '<p class="empty">No breach of the PROTOCOL.md section 5 rules.</p>'
    if len(cap.notes):
        body += "<h3>Notes</h3><p class=\"note\">Oddities no rule covers.</p>" + table("notes")
    sections.append(_section("violations", "Protocol violations", body, len(v)))

    s = cap.sessions
    body = table("sessions")
    ids = s["session"].tolist()[:max_sequences] if len(s) else []
    if not ids and len(cap.messages):  # no login seen: the first connection's flow
        body += _figure(plots.sequence_diagram(cap.messages, None, zone,
                                               connections=cap.connections),
                        "Message sequence", "Message sequence of the first connection.")
    for sid in ids:
        fig = plots.sequence_diagram(cap.messages, sid, zone, sessions=s)
        body += f"<h3>Session {sid}</h3>" + _figure(
            fig, f"Message sequence of session {sid}",
            "Client, server and data connections; one arrow per message, time going down.")
    if len(s) > len(ids):
        body += (f'<p class="note">Sequence diagrams for the first {len(ids)} of {len(s)} '
                 "sessions; draw others with "
                 "<code>plots.sequence_diagram(cap, session)</code>.</p>")
    sections.append(_section("sessions", "Sessions", body, len(s)))

    t = cap.transfers
    body = table("transfers") + _figure(
        plots.sync_progress(cap.sync, t, zone), "Sync progress per data connection",
        "Cameras synced over time per data connection; red crosses are failed steps.")
    failed = cap.sync[cap.sync["outcome"].astype(str) != "ok"]
    if len(failed):
        body += "<h3>Failed or unanswered sync steps</h3>" + table("sync", failed)
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
    body += "<h3>Status changes</h3>" + table("status", changes)
    sections.append(_section("status", "Camera status", body, st["camera_id"].nunique()))

    sections.append(_section("connections", "Connections", table("connections"),
                             len(cap.connections)))

    bad = cap.messages[cap.messages["error"].notna()]
    if len(bad) or len(cap.problems):
        body = ""
        if len(bad):
            body += "<h3>Messages with decoding errors</h3>" + table(
                "messages", bad, columns=["ts", "conn", "channel", "direction", "command",
                                          "params", "error", "frame"])
        if len(cap.problems):
            body += "<h3>Capture problems</h3>" + table("problems")
        sections.append(_section("errors", "Decoding errors", body, len(bad) +
                                 len(cap.problems)))

    sections.append(_section("files", "Tables as files",
                             '<p class="note">Every table in full, times in UTC, next to this '
                             "page.</p>" + _files_table(written)))

    nav = "".join(f'<a href="#{ident}">{e(label)}</a>' for ident, label in [
        ("summary", "Summary"), ("violations", "Violations"), ("sessions", "Sessions"),
        ("transfers", "Transfers"), ("alarms", "Alarms"), ("status", "Camera status"),
        ("connections", "Connections"), *([("errors", "Errors")] if len(bad) or
                                          len(cap.problems) else []), ("files", "Files")])
    name = os.path.basename(cap.source)
    now = dt.datetime.now(zone).strftime("%Y-%m-%d %H:%M:%S %Z")
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>camprotool report: {e(name)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>camprotool report <small>{e(name)}</small></h1><nav>{nav}</nav></header>"
        f"<main>{''.join(sections)}</main>"
        f"<footer>camprotool {e(camprotool.__version__)} · generated {e(now)} · times shown in "
        f"{e(plots.zone_name(zone))}</footer></body></html>\n")
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


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

from camprotool._version import __version__
from camprotool.analysis import plots, tables
from camprotool.analysis.capture import Capture, read_capture
from camprotool.analysis.export import write_frame
from camprotool.analysis.hexview import wireshark_command

__all__ = ["TABLES", "VIEWS", "camera_counts", "failures_by_reason", "findings", "write_report"]

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
td.text { white-space:normal; overflow-wrap:anywhere; min-width:14em; max-width:40em; }
td.bad { color:var(--bad); font-weight:600; } td.good { color:var(--ok); }
table.summary { border-collapse:collapse; font-size:14px; }
table.summary th { text-align:left; font-weight:600; padding:3px 24px 3px 0;
                   vertical-align:top; color:var(--muted); }
table.summary td { padding:3px 0; }
.alert { color:var(--bad); font-weight:600; }
.findings { margin:0 0 14px; padding:10px 14px 10px 30px; border-left:4px solid var(--bad);
            background:#fdf3f2; border-radius:4px; }
.findings.clean { border-left-color:var(--ok); background:#f1f8f2; list-style:none;
                  padding-left:14px; }
.findings li { margin:3px 0; } .findings strong { color:var(--bad); }
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
MAX_CELL = 160  # characters of a text cell shown; the full value is its tooltip and in the file


#: columns that hold a packet number (a Wireshark frame)
FRAME_COLUMNS = ("frame", "first_frame")


def html_table(df: pd.DataFrame, zone: dt.tzinfo, *, name: str = "", max_rows: int = MAX_ROWS,
               columns: list[str] | None = None, source: object = None) -> str:
    """``df`` as an escaped HTML table (at most ``max_rows`` rows, with a note).
    ``source``: the capture's file; a frame cell's tooltip is then the command line
    that opens it there in Wireshark."""
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
            if c in ("outcome", "status", "close_reason"):
                cls = {"ok": "good", "complete": "good", "error": "bad", "failed": "bad",
                       "no_answer": "bad", "cut_short": "bad", "rst": "bad"}.get(v, cls)
            elif c in ("lost_c2s", "lost_s2c") and v != "0":
                cls = "bad"
            attr = f' class="{cls}"' if cls else ""
            if c in FRAME_COLUMNS and source is not None and v.isdigit():
                cmd = wireshark_command(source, int(v))
                if cmd:
                    attr += f' title="{e(cmd)}"'
            if len(v) > MAX_CELL:
                attr += f' title="{e(v)}"'
                v = v[: MAX_CELL - 1] + "…"
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


def _summary(cap: Capture, zone: dt.tzinfo, fmt_time) -> list[tuple[str, str, bool]]:
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
        span = _fmt_delta(last - first)
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


def _findings_html(cap: Capture) -> str:
    items = findings(cap)
    if not items:
        return ('<ul class="findings clean"><li>Nothing went wrong: no capture problems, no '
                "refused or failed camera, no protocol violation, no decoding error.</li></ul>")
    return ('<h3>What went wrong</h3><ul class="findings">'
            + "".join(f"<li>{item}</li>" for item in items) + "</ul>")


def _jump(source: object) -> str:
    """``wireshark -r FILE -g FRAME`` for this capture ('' when it was read from bytes)."""
    cmd = wireshark_command(source, 1)
    return "" if cmd is None else cmd[: -len(" -g 1")] + " -g FRAME"


def _jump_note(source: object) -> str:
    cmd = _jump(source)
    if not cmd:
        return ""
    return (f'<p class="note jump">Every <b>frame</b> on this page is a packet number: '
            f"<code>{html.escape(cmd)}</code> opens the capture at it in Wireshark "
            "(a frame's tooltip has its command line), and "
            "<code>cap.packets(FRAME)</code> shows its bytes.</p>")


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

    fmt_time = _fmt_time(zone)
    e = html.escape

    source = getattr(cap, "origin", None) or cap.source

    def table(name: str, df: pd.DataFrame | None = None, **kw) -> str:
        kw.setdefault("columns", VIEWS.get(name))
        return html_table(getattr(cap, name) if df is None else df, zone, name=name,
                          max_rows=max_rows, source=source, **kw)

    summary_rows = "".join(
        f'<tr><th>{e(label)}</th><td{" class=alert" if alert else ""}>{value}</td></tr>'
        for label, value, alert in _summary(cap, zone, fmt_time))
    sections = [_section("summary", "Summary",
                         _findings_html(cap) + _jump_note(source)
                         + f'<table class="summary">{summary_rows}</table>'
                         + _figure(plots.message_rate(cap.messages, "auto", zone),
                                   "Message rate by command",
                                   "Messages per interval, stacked by command."))]

    p = cap.problems
    body = (f'<p class="note">What the reader and the reassembler could not use: lost bytes, '
            f"connections begun before the capture, cut packets, a cut file... Open a frame in "
            f"Wireshark with <code>{e(_jump(source))}</code>.</p>"
            + table("problems")) if len(p) else \
        '<p class="empty">None: every byte of every connection was captured and read.</p>'
    sections.append(_section("problems", "Capture problems", body, len(p)))

    v = cap.violations
    body = table("violations", violations_view(cap)) if len(v) else \
        '<p class="empty">No breach of the PROTOCOL.md section 5 rules.</p>'
    if len(cap.notes):
        body += "<h3>Notes</h3><p class=\"note\">Oddities no rule covers.</p>" + table("notes")
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
        body += f"<h3>Session {sid}</h3>" + _figure(
            fig, f"Message sequence of session {sid}",
            "Client, server and data connections; one arrow per message with its frame, time "
            "going down, long pauses cut out; closes, resets and violations marked.")
    if len(s) > len(ids):
        body += (f'<p class="note">Sequence diagrams for the first {len(ids)} of {len(s)} '
                 "sessions; draw others with "
                 "<code>plots.sequence_diagram(cap, session)</code>.</p>")
    sections.append(_section("sessions", "Sessions", body, len(s)))

    t = cap.transfers
    body = table("transfers") + _figure(
        plots.sync_progress(cap.sync, t, zone, violations=cap.violations),
        "Sync progress per data connection",
        "How far each transfer got since its own start (one panel each, or a summary for "
        "many); red crosses are failed steps.")
    failed = cap.sync[cap.sync["outcome"].astype(str) != "ok"]
    if len(failed):
        body += ("<h3>Failures by reason</h3>"
                 + html_table(failures_by_reason(cap), zone, max_rows=max_rows,
                              source=source)
                 + "<h3>Failed or unanswered sync steps</h3>"
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
    body += "<h3>Status changes</h3>" + table("status", changes)
    sections.append(_section("status", "Camera status", body, st["camera_id"].nunique()))

    sections.append(_section("connections", "Connections", table("connections"),
                             len(cap.connections)))

    bad = cap.messages[cap.messages["error"].notna()]
    if len(bad):
        body = table("messages", bad, columns=["ts", "frame", "conn", "channel", "direction",
                                               "command", "params", "error"])
        sections.append(_section("errors", "Decoding errors", body, len(bad)))

    sections.append(_section("files", "Tables as files",
                             '<p class="note">Every table in full, times in UTC, next to this '
                             "page.</p>" + _files_table(written)))

    nav = "".join(f'<a href="#{ident}">{e(label)}</a>' for ident, label in [
        ("summary", "Summary"), ("problems", "Problems"), ("violations", "Violations"),
        ("sessions", "Sessions"), ("transfers", "Transfers"), ("alarms", "Alarms"),
        ("status", "Camera status"), ("connections", "Connections"),
        *([("errors", "Errors")] if len(bad) else []), ("files", "Files")])
    name = os.path.basename(cap.source)
    now = dt.datetime.now(zone).strftime("%Y-%m-%d %H:%M:%S %Z")
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>camprotool report: {e(name)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>camprotool report <small>{e(name)}</small></h1><nav>{nav}</nav></header>"
        f"<main>{''.join(sections)}</main>"
        f"<footer>camprotool {e(__version__)} · generated {e(now)} · times shown in "
        f"{e(plots.zone_name(zone))}</footer></body></html>\n")
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


"""The one HTML rendering path: dataframes as tables, and pages, from jinja2 templates.

The report, the capture explorer (its messages table and packet drill-down)
and the client panel (its log and camera grid) all show tables. Each used to
build its HTML its own way, so escaping, cell formatting, the Wireshark
tooltip of a frame number and the "first N of M rows" note were written
three times and drifted. Here they are written once:

* :func:`frame_table` turns a dataframe into rows of :class:`Cell` (times in
  a zone, timedeltas, lists, bytes, floats formatted; long text cut with its
  full value as the tooltip; ``frame`` cells with the ``wireshark -r FILE -g N``
  line as the tooltip; outcome-like columns marked good or bad) and bounds
  the rows with a note saying how many more there are;
* :func:`table` renders any :class:`Table` (the panel builds its log and
  grid rows directly) with ``templates/table.html.j2``;
* :func:`page` and :func:`fragment` render the report's page and its pieces
  (``templates/page.html.j2``, ``fragments.html.j2``, ``page.css``).

Escaping is the template engine's (autoescape on): a value never becomes
markup unless it is a :class:`markupsafe.Markup` a template made. Masking is
not done here: tables arrive masked (``read_capture``, the client's log).

Two flavours: ``"page"`` relies on the page's CSS classes; ``"widget"`` (a
notebook's widget area, where a ``<style>`` would restyle all of JupyterLab)
puts the same look inline.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

from camprotool.analysis.hexview import wireshark_command

__all__ = ["Cell", "Markup", "Row", "Table", "fragment", "frame_table", "page", "table"]

Flavour = Literal["page", "widget"]

#: columns whose text wraps (the rest stay on one line)
TEXT_COLUMNS = frozenset({"params", "detail", "reason", "error", "message_text"})
#: characters of a text cell shown; the full value is its tooltip (and in the files)
MAX_CELL = 160
#: columns that hold a packet number (a Wireshark frame)
FRAME_COLUMNS = ("frame", "first_frame")
#: columns whose values say whether something went well
_VERDICTS = {"ok": "good", "complete": "good", "error": "bad", "failed": "bad",
             "no_answer": "bad", "cut_short": "bad", "rst": "bad"}
_VERDICT_COLUMNS = ("outcome", "status", "close_reason")
_LOSS_COLUMNS = ("lost_c2s", "lost_s2c")

#: the widget flavour's inline look of what the page's CSS classes do
_WIDGET_CELL = "text-align:left;padding:1px 8px 1px 0;white-space:nowrap"
_WIDGET_CLASS = {
    "num": "font-variant-numeric:tabular-nums",
    "text": "white-space:normal;overflow-wrap:anywhere;min-width:14em;max-width:40em",
    "bad": "color:#b3261e;font-weight:600",
    "good": "color:#1e7d32",
}
_WIDGET_NOTE = "color:#5b6475;font-size:12px;margin:2px 0"
_WIDGET_EMPTY = "color:#5b6475;font-style:italic;margin:2px 0"


@dataclass(frozen=True, slots=True)
class Cell:
    """One cell: its text (None: missing, an empty grey cell) and how it looks."""

    text: str | None
    cls: str = ""  # num, text, good, bad (the page's CSS; inline in a widget)
    title: str = ""  # the tooltip
    style: str = ""
    strong: bool = False
    code: bool = False
    badge: str = ""  # a colour: the text as a coloured badge
    links: tuple[tuple[str, str], ...] = ()  # (label, href) after the text
    suffix: str = ""  # more text after the value (an error), in suffix_color
    suffix_color: str = ""


@dataclass(frozen=True, slots=True)
class Row:
    cells: Sequence[Cell]
    style: str = ""


@dataclass(frozen=True, slots=True)
class Table:
    """What ``table.html.j2`` renders."""

    header: Sequence[str]
    rows: Sequence[Row]
    note: str = ""  # above the table (e.g. how many rows are left out)
    empty: str | None = None  # shown instead of a table without rows (None: the table)
    note_tag: str = "p"
    note_style: str = ""
    empty_style: str = ""
    box_style: str = ""
    table_style: str = ""
    head_style: str = ""


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("camprotool", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
    )


def table(t: Table) -> Markup:
    """``t`` as HTML."""
    return Markup(_env().get_template("table.html.j2").render(t=t))


def fragment(name: str, *args: Any, **kwargs: Any) -> Markup:
    """A macro of ``fragments.html.j2`` (``section``, ``figure``, ``note``, ``heading``,
    ``items``, ``pairs``) rendered: plain strings in the arguments are escaped."""
    macro = getattr(_env().get_template("fragments.html.j2").module, name)
    return Markup(str(macro(*args, **kwargs)))


def page(*, title: str, heading: str, subtitle: str = "", nav: Sequence[tuple[str, str]] = (),
         sections: Sequence[Markup] = (), footer: str = "") -> str:
    """A self-contained page (inline CSS from ``page.css``), ending with a newline."""
    return _env().get_template("page.html.j2").render(
        title=title, heading=heading, subtitle=subtitle, nav=nav, sections=sections,
        footer=footer) + "\n"


# ------------------------------------------------------------------ dataframes


def fmt_time(zone: dt.tzinfo, fmt: str = "%Y-%m-%d %H:%M:%S.%f"
             ) -> Callable[[pd.Series], list[str | None]]:
    """Times of a column in ``zone``, to the millisecond (``fmt`` ends in ``%f``)."""
    def fmt_col(col: pd.Series) -> list[str | None]:
        local = col.dt.tz_convert(zone) if col.dt.tz is not None else col
        text = local.dt.strftime(fmt).str.slice(0, -3)
        return [None if pd.isna(v) else v for v in text]
    return fmt_col


def fmt_delta(value: pd.Timedelta) -> str:
    seconds = value.total_seconds()
    if abs(seconds) < 60:
        return f"{seconds:.3f} s"
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{sign}{int(h)}:{int(m):02d}:{s:06.3f}"


def fmt_value(value: object) -> str | None:
    """A cell's text; None for a missing value."""
    if value is None:
        return None
    if isinstance(value, list | tuple | np.ndarray):
        return ", ".join(str(fmt_value(v)) for v in value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    if isinstance(value, float | np.floating):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, pd.Timedelta):
        return fmt_delta(value)
    return str(value)


def _column_cells(col: pd.Series, times: Callable[[pd.Series], list[str | None]]
                  ) -> list[str | None]:
    if isinstance(col.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(col):
        return times(col)
    if pd.api.types.is_timedelta64_dtype(col):
        return [None if pd.isna(v) else fmt_delta(v) for v in col]
    return [fmt_value(v) for v in col.astype(object)]


def _is_numeric(col: pd.Series) -> bool:
    return (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)) \
        or pd.api.types.is_timedelta64_dtype(col)


def _cell(column: str, text: str, numeric: bool, source: object, flavour: Flavour) -> Cell:
    cls = "num" if numeric else ("text" if column in TEXT_COLUMNS else "")
    if column in _VERDICT_COLUMNS:
        cls = _VERDICTS.get(text, cls)
    elif column in _LOSS_COLUMNS and text != "0":
        cls = "bad"
    title = ""
    if column in FRAME_COLUMNS and source is not None and text.isdigit():
        title = wireshark_command(source, int(text)) or ""
    if len(text) > MAX_CELL:
        title, text = text, text[: MAX_CELL - 1] + "…"
    style = ""
    if flavour == "widget":
        style = ";".join(s for s in (_WIDGET_CELL, _WIDGET_CLASS.get(cls, "")) if s)
    return Cell(text, cls, title, style)


def frame_table(df: pd.DataFrame, *, zone: dt.tzinfo = dt.UTC, max_rows: int = 200,
                columns: Sequence[str] | None = None, source: object = None,
                label: str | None = None, time_format: str = "%Y-%m-%d %H:%M:%S.%f",
                more: str = "", flavour: Flavour = "page", empty: str | None = "none",
                box_style: str = "") -> Markup:
    """``df`` as an escaped HTML table of at most ``max_rows`` rows.

    ``columns``: the ones shown (in this order, those ``df`` has); ``raw``
    (bytes) is never shown. ``source``: the capture's file, so a frame cell's
    tooltip is the command line that opens it in Wireshark. ``label``: a
    first, bold column with the row labels (the explorer's message ``#``).
    ``more``: appended to the note when rows are left out (where the rest
    is; escaped unless it is :class:`Markup`). ``empty``: shown when ``df``
    has no row (None: the table with its header only).
    """
    if columns is not None:
        df = df[[c for c in columns if c in df.columns]]
    df = df.drop(columns=[c for c in ("raw",) if c in df.columns])
    widget = flavour == "widget"
    shown = df.iloc[:max_rows]
    times = fmt_time(zone, time_format)
    names = [str(c) for c in shown.columns]
    cells = [_column_cells(shown[c], times) for c in shown.columns]
    numeric = [_is_numeric(shown[c]) for c in shown.columns]
    base = _WIDGET_CELL if widget else ""
    rows = []
    for i, key in enumerate(shown.index):
        row = [] if label is None else [Cell(str(key), strong=True, style=base)]
        for name, col, num in zip(names, cells, numeric, strict=True):
            text = col[i]
            row.append(Cell(None, style=base) if text is None
                       else _cell(name, text, num, source, flavour))
        rows.append(Row(row))
    note = Markup("")
    if len(df) > len(shown):
        note = Markup.escape(f"Showing the first {len(shown):,} of {len(df):,} rows") \
            + more + Markup(".")
    header = [label, *names] if label is not None else names
    return table(Table(
        header, rows, note=note, empty=empty,
        note_style=_WIDGET_NOTE if widget else "", empty_style=_WIDGET_EMPTY if widget else "",
        box_style=box_style, head_style=_WIDGET_CELL if widget else ""))

"""The one HTML rendering path: tables from dataframes and rows, fragments and pages."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from camprotool.analysis import render
from camprotool.analysis.render import Cell, Markup, Row, Table

T = pd.Timestamp("2026-01-02 03:04:05.678901", tz="UTC")


def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "ts": [T, pd.NaT, T],
        "frame": pd.array([20, None, 7], dtype="Int64"),
        "command": ["<script>alert(1)</script>", "Login", "A&B"],
        "params": ["x" * 200, "demo|***", None],
        "outcome": ["ok", "failed", "no_answer"],
        "ids": [("A", "B"), (), ("C",)],
        "raw": [b"\x00", b"", b"\x01"],
        "gap": pd.to_timedelta([1.5, None, 3_700], unit="s"),
    })


def test_cells_are_escaped_formatted_and_marked():
    html = render.frame_table(frame(), zone=dt.UTC)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "A&amp;B" in html
    assert "<th>raw</th>" not in html  # bytes are never shown
    assert "<td>2026-01-02 03:04:05.678</td>" in html
    assert '<td class="num">1.500 s</td>' in html and '<td class="num">1:01:40.000</td>' in html
    assert '<td class="good">ok</td>' in html and '<td class="bad">failed</td>' in html
    assert "<td>A, B</td>" in html
    assert html.count('<td class="na"></td>') == 4  # NaT, <NA>, None and NaT; () is ''
    # a long text cell is cut; its full value is the tooltip
    assert f'<td class="text" title="{"x" * 200}">{"x" * 159}…</td>' in html


def test_frame_cells_carry_the_wireshark_line_when_the_file_is_known():
    html = render.frame_table(frame(), source="cap.pcapng")
    assert '<td class="num" title="wireshark -r cap.pcapng -g 20">20</td>' in html
    assert "title=" not in render.frame_table(frame()[["frame"]])  # no file, no tooltip


def test_rows_are_bounded_with_a_note_saying_how_many_more():
    df = pd.DataFrame({"n": range(5)})
    html = render.frame_table(df, max_rows=2,
                              more=Markup("; all in <code>{}</code>").format("t<1>.csv"))
    assert html.partition("<tbody>")[2].count("<tr>") == 2
    assert '<p class="note">Showing the first 2 of 5 rows; all in <code>t&lt;1&gt;.csv</code>.' \
        in html
    assert "Showing" not in render.frame_table(df, max_rows=5)
    assert render.frame_table(df.iloc[:0]) == '<p class="empty">none</p>'


def test_the_widget_flavour_is_styled_inline_with_row_labels():
    df = pd.DataFrame({"command": ["Login"], "outcome": ["failed"]}, index=[41])
    html = render.frame_table(df, flavour="widget", label="#", box_style="max-height:9px")
    assert '<div class="scroll" style="max-height:9px">' in html
    assert '<th style="text-align:left;' in html and "<th style" in html.split("#")[0]
    assert "<b>41</b>" in html
    assert 'class="bad" style="text-align:left;padding:1px 8px 1px 0;white-space:nowrap;' \
           'color:#b3261e' in html


def test_a_table_of_rows_with_badges_links_and_suffixes():
    t = Table(["camera", "files"], [
        Row([Cell("CAM<1>", strong=True), Cell("online", badge="#2ca02c")], style="color:red"),
        Row([Cell("x", code=True, suffix="[bad]", suffix_color="#f00"),
             Cell("", links=(("csv", "t/a.csv"), ("parquet", "t/a.parquet")))]),
    ], note="newest first")
    html = render.table(t)
    assert html.startswith('<p class="note">newest first</p>')
    assert '<tr style="color:red"><td><b>CAM&lt;1&gt;</b></td>' in html
    assert '<span style="background:#2ca02c;color:white;' in html
    assert '<td><code>x</code> <span style="color:#f00">[bad]</span></td>' in html
    assert '<td><a href="t/a.csv">csv</a> · <a href="t/a.parquet">parquet</a></td>' in html
    assert render.table(Table(["a"], [], empty="nothing yet")) == \
        '<p class="empty">nothing yet</p>'


def test_fragments_and_a_page():
    section = render.fragment("section", "s1", "A & B", Markup("<p>body</p>"), 1234)
    assert section == ('<section id="s1"><h2>A &amp; B <span class="count">(1,234)</span>'
                       "</h2><p>body</p></section>")
    assert render.fragment("figure", "data:x", 'a"b') == '<figure><img src="data:x" ' \
        'alt="a&#34;b"></figure>'
    html = render.page(title="t<", heading="h", subtitle="s", nav=[("s1", "One")],
                       sections=[section], footer="f")
    assert html.startswith("<!DOCTYPE html>") and html.endswith("</html>\n")
    assert "<title>t&lt;</title>" in html and '<a href="#s1">One</a>' in html
    assert "table.data th" in html  # the CSS is inline: the page needs no other file

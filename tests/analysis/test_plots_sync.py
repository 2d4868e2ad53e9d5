"""``plots.sync_progress``: small multiples on each transfer's own clock, and the summary."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.text import Annotation
from plots_support import at, frame, legend_texts, named_lines, render, rgb, shown_ticklabels

from camprotool import read_capture
from camprotool.analysis import plots, schema
from camprotool.analysis.plots import sync

ROOT = Path(__file__).resolve().parents[2]
FAILED = ROOT / "captures" / "failed_sync.pcapng"
SAMPLE = ROOT / "captures" / "sample.pcapng"


@pytest.fixture(scope="module")
def failed():
    return read_capture(FAILED)


def sync_rows():
    steps = frame(schema.SYNC, [
        {"ts": at(1), "conn": 1, "kind": "upload", "camera_id": "A", "current": 1, "total": 3,
         "outcome": "ok"},
        {"ts": at(2), "conn": 1, "kind": "upload", "camera_id": "B", "current": 2, "total": 3,
         "outcome": "failed", "reason": "ID和密码不匹配"},
        {"ts": at(3), "conn": 1, "kind": "upload", "camera_id": "C", "current": 3, "total": 3,
         "outcome": "ok"},
        {"ts": at(4), "conn": 3, "kind": "download", "camera_id": "D", "current": 1,
         "total": 2, "outcome": "ok"},
        {"ts": at(5), "conn": 3, "kind": "download", "camera_id": None, "current": None,
         "total": 2, "outcome": "no_answer"},
    ])
    transfers = frame(schema.TRANSFERS, [
        {"conn": 1, "kind": "upload", "data_client": "10.0.0.1:5001", "total": 3, "main_conn": 0,
         "completed": 3, "status": "complete", "start": at(0.5), "end": at(3.2), "ok": 2,
         "failed": 1, "no_answer": 0, "close_reason": "fin"},
        {"conn": 3, "kind": "download", "data_client": "10.0.0.1:5003", "total": 2, "main_conn": 0,
         "completed": 1, "status": "cut_short", "start": at(3.5), "end": at(5.5), "ok": 1,
         "failed": 0, "no_answer": 1, "close_reason": "rst"},
        {"conn": 5, "kind": "download", "data_client": "10.0.0.1:5005", "total": None,
         "main_conn": 0, "completed": 0, "status": "empty", "start": at(6), "ok": 0, "failed": 0,
         "no_answer": 0},
    ])
    return steps, transfers


def panel_of(fig: Figure, conn: int):
    return next(ax for ax in fig.axes if ax.get_title(loc="left").startswith(f"conn {conn} "))


def closes(ax) -> dict[str, list[float]]:
    """x of the vertical close lines, by colour name (red: RST, grey: FIN)."""
    out: dict[str, list[float]] = {"rst": [], "fin": []}
    for line in ax.get_lines():
        x = line.get_xdata()
        if len(x) == 2 and x[0] == x[1] and line.get_linestyle() in ("--", ":"):
            red = tuple(np.round(to_rgb(line.get_color()), 2)) == rgb(plots.OFFLINE)
            out["rst" if red else "fin"].append(float(x[0]))
    return out


# ------------------------------------------------------------------ small multiples


def test_a_few_transfers_are_one_panel_each_on_their_own_clock():
    steps, transfers = sync_rows()
    fig = plots.sync_progress(steps, transfers, tz="UTC")
    assert len(fig.axes) == 3  # one panel per data connection, the empty one included
    assert fig.get_suptitle().startswith("Sync progress (3 data connections")
    first = panel_of(fig, 1)
    assert first.get_title(loc="left").splitlines() == [
        "conn 1 upload 10.0.0.1:5001",
        "3/3, complete, closed (FIN)", "started 09:00:00.500, lasted 2.7 s"]
    (line,) = named_lines(first)
    # x: seconds since the transfer's start (0.5 s): the steps at 1, 2, 3 s are at 0.5, 1.5, 2.5
    assert list(line.get_xdata()) == pytest.approx([0, 0.5, 1.5, 2.5])
    assert list(line.get_ydata()) == [0, 1, 2, 3]
    assert all(label.endswith(" s") for label in shown_ticklabels(first.xaxis))
    assert first.xaxis.get_offset_text().get_text() == ""
    (failed,) = [c for c in first.collections if c.get_label() == "failed step"]
    assert failed.get_offsets().tolist() == [[1.5, 2.0]]
    reasons = [t.get_text() for t in first.texts if isinstance(t, Annotation)]
    assert "ID和密码不匹配" in reasons
    assert closes(first) == {"rst": [], "fin": [pytest.approx(2.7)]}
    cut = panel_of(fig, 3)
    assert "1/2, cut_short, reset (RST)" in cut.get_title(loc="left")
    assert closes(cut)["rst"] == [pytest.approx(2.0)]
    assert "RST" in [t.get_text() for t in cut.texts]
    assert [c.get_label() for c in cut.collections] == ["no answer"]
    assert "0/?, empty" in panel_of(fig, 5).get_title(loc="left")
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["current (step reached)", "failed step", "no answer", "announced total",
                      "closed (FIN)", "reset (RST)"]
    render(fig)


def test_failed_sync_a_70_ms_and_a_1_s_transfer_each_read_in_their_unit(failed):
    fig = plots.sync_progress(failed, tz="UTC")
    assert len(fig.axes) == 2
    short, rogue = panel_of(fig, 1), panel_of(fig, 2)
    short_ticks, rogue_ticks = shown_ticklabels(short.xaxis), shown_ticklabels(rogue.xaxis)
    assert all(re.fullmatch(r"\d+ ms", t) for t in short_ticks), short_ticks
    assert short.get_xlim()[1] < 80  # a 70 ms transfer fills its panel (ms), not a 2 min axis
    assert all(re.fullmatch(r"[\d.]+ s", t) for t in rogue_ticks), rogue_ticks
    (line,) = named_lines(short)
    assert list(line.get_ydata()) == [0, 1, 2, 4]  # the skipped camera 3 shows as a jump
    assert closes(short)["rst"] == [pytest.approx(70)]
    assert closes(rogue)["fin"] == [pytest.approx(1.0031)]
    assert "started 11:00:00.012, lasted 70 ms" in short.get_title(loc="left")
    assert rogue.get_title(loc="left").startswith(
        "conn 2 upload 198.51.100.40:50202 (not announced)\n")
    assert short.get_ylabel() == "step reached (current)"
    # the rules broken at a step are marked on it: camera 4 announced after 2, then the reset
    (rules,) = [t for t in short.texts if t.get_gid() == "violation"]
    assert rules.get_text() == "upload_sequence\nincomplete_sync"
    assert rules.xy == pytest.approx((65, 4))  # the step to current 4, 65 ms in
    (marks,) = [c for c in short.collections if c.get_label() == "protocol violation"]
    assert marks.get_offsets().tolist() == [pytest.approx([65, 4])]
    assert [t.get_text() for t in rogue.texts if t.get_gid() == "violation"] == \
        ["unannounced_data_port"]
    assert "protocol violation" in [t.get_text() for t in fig.legends[0].get_texts()]
    plain = plots.sync_progress(failed.sync, failed.transfers, tz="UTC")
    assert not [t for ax in plain.axes for t in ax.texts if t.get_gid() == "violation"]
    assert "UTC on 2025-11-28" in fig.get_suptitle()
    render(fig)


def test_panels_beyond_max_panels_say_how_many_were_left_out():
    steps, transfers = sync_rows()
    fig = plots.sync_progress(steps, transfers, tz="UTC", layout="panels", max_panels=2)
    assert len(fig.axes) == 2
    assert "the first 2 of 3" in fig.get_suptitle()


def test_sync_steps_alone_start_each_transfer_at_its_first_step():
    steps, _ = sync_rows()
    fig = plots.sync_progress(steps, tz="UTC")
    assert [ax.get_title(loc="left").splitlines()[0] for ax in fig.axes] == \
        ["conn 1 upload", "conn 3 download"]
    (line,) = named_lines(panel_of(fig, 1))
    assert list(line.get_xdata()) == pytest.approx([0, 0, 1, 2])


def test_overlay_starts_every_transfer_at_zero():
    steps, transfers = sync_rows()
    fig = plots.sync_progress(steps, transfers, tz="UTC", layout="overlay")
    (ax,) = fig.axes
    lines = named_lines(ax)
    assert [ln.get_label() for ln in lines] == [
        "conn 1 upload 10.0.0.1:5001 (3/3, complete)",
        "conn 3 download 10.0.0.1:5003 (1/2, cut_short)",
        "conn 5 download 10.0.0.1:5005 (0/?, empty)"]
    assert all(ln.get_xdata()[0] == 0 for ln in lines)
    assert ax.get_xlabel() == "time since each transfer's start"
    assert "failed step" in legend_texts(ax) and "no answer" in legend_texts(ax)


def test_overlay_of_many_leaves_the_legend_to_the_marks():
    n = plots.MAX_LEGEND + 3
    steps = frame(schema.SYNC, [
        {"ts": at(i), "conn": i, "kind": "upload", "camera_id": "A", "current": 1, "total": 1,
         "outcome": "failed" if i == 0 else "ok"} for i in range(n)])
    ax = plots.sync_progress(steps, tz="UTC", layout="overlay").axes[0]
    # one collection of step lines (an artist each would take minutes for thousands)
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    paths = lines.get_segments()
    assert len(paths) == n and all(p[0].tolist() == [0, 0] for p in paths)
    assert paths[0].tolist() == [[0, 0], [0, 0], [0, 1]]  # steps-post from the start
    assert legend_texts(ax) == ["failed step"]
    assert "not in the legend" in ax.get_title()


# ------------------------------------------------------------------ the summary


def many(n: int = 40):
    """n transfers of 4 steps: every 5th cut short after 2; a burst of 'full' failures."""
    steps, rows = [], []
    for i in range(n):
        start = at(10 * i)
        cut = i % 5 == 0
        for k in range(1, 3 if cut else 5):
            full = 10 <= i < 20 and k == 2
            steps.append({"ts": start + (k * 0.02) * (at(1) - at(0)), "conn": i,
                          "kind": "upload", "camera_id": f"C{i}-{k}", "current": k, "total": 4,
                          "outcome": "failed" if full or (i == 33 and k == 1) else "ok",
                          "reason": "该摄像头绑定账号已满" if full else
                          ("ID和密码不匹配" if i == 33 and k == 1 else None)})
        rows.append({"conn": i, "kind": "upload", "total": 4, "completed": 2 if cut else 4,
                     "main_conn": 1000 + i,
                     "status": "cut_short" if cut else "complete", "start": start,
                     "end": start + (at(0.1) - at(0)), "close_reason": "rst" if cut else "fin"})
    return frame(schema.SYNC, steps), frame(schema.TRANSFERS, rows)


def bars_by_label(ax) -> dict[str, list]:
    out: dict[str, list] = {}
    for container in ax.containers:
        out[container.get_label()] = [p.get_height() for p in container.patches]
    return out


def test_many_transfers_give_a_completion_histogram_and_failures_over_time():
    steps, transfers = many()
    fig = plots.sync_progress(steps, transfers, tz="UTC")
    assert len(fig.axes) == 2
    hist, rate = fig.axes
    assert fig.get_suptitle() == "Sync progress of 40 data connections"
    assert hist.get_title() == "Completion of 40 transfers"
    assert [t.get_text() for t in hist.get_xticklabels()][-2:] == ["90–99%", "100%"]
    bars = bars_by_label(hist)
    assert set(bars) == {"complete (32)", "cut_short (8)"}
    assert bars["complete (32)"][10] == 32 and sum(bars["complete (32)"]) == 32
    assert bars["cut_short (8)"][5] == 8  # 2 of 4: the 50-59% bin
    reasons = bars_by_label(rate)
    assert set(reasons) == {"该摄像头绑定账号已满 (10)", "ID和密码不匹配 (1)"}
    assert sum(reasons["该摄像头绑定账号已满 (10)"]) == 10
    assert rate.get_title().startswith("Failed steps by reason (11 of ")
    ticks = shown_ticklabels(rate.xaxis)
    assert ticks and all(re.fullmatch(r"\d\d:\d\d(:\d\d)?", t) for t in ticks), ticks
    assert rate.xaxis.get_offset_text().get_text() == ""
    assert rate.get_xlabel() == "time (UTC, 2025-11-28)"
    render(fig)


def test_failure_reasons_name_unanswered_and_unexplained_steps():
    steps = frame(schema.SYNC, [
        {"ts": at(0), "conn": 1, "kind": "upload", "outcome": "ok"},
        {"ts": at(1), "conn": 1, "kind": "upload", "outcome": "failed", "reason": "x"},
        {"ts": at(2), "conn": 1, "kind": "upload", "outcome": "failed", "reason": " "},
        {"ts": at(3), "conn": 1, "kind": "upload", "outcome": "no_answer"},
    ])
    assert sync.failure_reasons(steps).tolist() == ["x", "failed (no reason given)", "no answer"]


def test_summary_without_failures_says_so():
    steps, transfers = many(15)
    ok = steps.assign(outcome="ok", reason=None)
    rate = plots.sync_progress(ok, transfers, tz="UTC", layout="summary").axes[1]
    assert [t.get_text() for t in rate.texts] == [f"no failed or unanswered steps (of {len(ok)})"]


def test_completion_bins():
    steps, transfers = many(5)
    items = sync._collect(steps, transfers)
    labels, index = sync.completion_bins(items)
    assert index == [5, 10, 10, 10, 10] and labels[5] == "50–59%" and len(labels) == 11
    items[1].total = None
    labels, index = sync.completion_bins(items)
    assert index[1] == 11 and labels[-1] == "total unknown"


# ------------------------------------------------------------------ options and errors


def test_panels_and_summary_take_the_place_of_a_given_axes(failed):
    fig = Figure(figsize=(12, 10))
    top, bottom = fig.subplots(2)
    assert plots.sync_progress(failed, tz="UTC", ax=top) is fig
    assert top not in fig.axes and bottom in fig.axes
    assert len(fig.axes) == 3  # two panels where `top` was, and `bottom`
    steps, transfers = many()
    assert plots.sync_progress(steps, transfers, tz="UTC", ax=bottom) is fig
    assert len(fig.axes) == 4
    render(fig)
    lone = Figure()
    free = lone.add_axes((0.1, 0.1, 0.8, 0.8))
    with pytest.raises(ValueError, match=r"needs an axes made by fig\.add_subplot"):
        plots.sync_progress(failed, tz="UTC", ax=free)
    assert plots.sync_progress(failed, tz="UTC", ax=free, layout="overlay") is lone


def test_bad_options():
    steps, transfers = sync_rows()
    with pytest.raises(ValueError, match="layout must be one of auto, panels"):
        plots.sync_progress(steps, transfers, layout="grid")
    with pytest.raises(ValueError, match="max_panels must be at least 1"):
        plots.sync_progress(steps, transfers, max_panels=0)


def test_the_sample_capture_has_one_complete_transfer():
    fig = plots.sync_progress(read_capture(SAMPLE), tz="UTC")
    (ax,) = fig.axes
    assert ax.get_title(loc="left").splitlines()[1].startswith("6/6, complete, closed (FIN)")
    failed = next(c for c in ax.collections if c.get_label() == "failed step")
    assert len(failed.get_offsets()) == 2


def test_the_summary_of_a_generated_capture_counts_what_its_tables_hold(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from gen_transfers import write
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    counts = write(tmp_path / "t.pcap", 200, seed=3)
    cap = read_capture(tmp_path / "t.pcap")
    assert len(cap.transfers) == 200
    hist, rate = plots.sync_progress(cap, tz="UTC").axes
    bars = bars_by_label(hist)
    status = cap.transfers["status"].astype(str).value_counts()
    assert {label: sum(h) for label, h in bars.items()} == \
        {f"{s} ({n})": n for s, n in status.items() if n}
    assert (cap.transfers["close_reason"].astype(str) == "rst").sum() == counts["cut_short"] > 0
    assert status["cut_short"] > 0
    failed = (cap.sync["outcome"].astype(str) != "ok").sum()
    assert sum(sum(h) for h in bars_by_label(rate).values()) == failed == \
        counts["failed"] + (cap.sync["outcome"].astype(str) == "no_answer").sum()

"""``plots.sequence_diagram``: arrows in time order with real spacing, breaks, closes, rules."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Annotation
from plots_support import at, frame, render, rgb, texts, ticklabels

from camprotool import read_capture
from camprotool.analysis import plots, schema
from camprotool.analysis.plots import sequence

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "captures" / "sample.pcapng"
DOWNLOAD = ROOT / "captures" / "download.pcapng"
FAILED = ROOT / "captures" / "failed_sync.pcapng"


@pytest.fixture(scope="module")
def sample():
    return read_capture(SAMPLE)


@pytest.fixture(scope="module")
def failed():
    return read_capture(FAILED)


def arrows(ax) -> list[Annotation]:
    return [t for t in ax.texts if isinstance(t, Annotation)]


def arrow_ys(ax) -> list[float]:
    return [a.xy[1] for a in arrows(ax)]


def label_at(ax, gid: str, start: str) -> float:
    """The y of the first text of a kind that starts with ``start``."""
    return next(t.get_position()[1] for t in texts(ax, gid) if t.get_text().startswith(start))


# ------------------------------------------------------------------ failed_sync


def test_failed_sync_arrows_follow_the_clock_with_their_frames(failed):
    fig = plots.sequence_diagram(failed, 0, tz="UTC")
    ax = fig.axes[0]
    # session 0's main connection, its data connection and the unannounced one
    assert len(arrows(ax)) == len(failed.messages) == 19
    ys = arrow_ys(ax)
    assert ys == sorted(ys) and len(set(ys)) == len(ys)  # time goes down, one row each
    frames = [t.get_text() for t in texts(ax, "frame")]
    assert frames == [f"#{f}" for f in failed.messages["frame"]]
    labels = [t.get_text() for t in texts(ax, "label")]
    assert labels[0] == "Login alice|***"
    assert labels[14] == "Heartbeat"
    # the frame number sits under its arrow's tail
    heartbeat = arrows(ax)[14]
    frame22 = next(t for t in texts(ax, "frame") if t.get_text() == "#22")
    assert frame22.get_position()[0] == pytest.approx(heartbeat.xyann[0], abs=0.05)
    assert frame22.get_position()[1] > heartbeat.xy[1]  # below it (y grows downwards)
    render(fig)


def test_failed_sync_spacing_follows_time_and_long_pauses_are_labelled_breaks(failed):
    ax = plots.sequence_diagram(failed, 0, tz="UTC").axes[0]
    ys = arrow_ys(ax)
    quick = ys[1] - ys[0]  # LoginOk 2 ms after Login
    slower = ys[6] - ys[5]  # the next UploadCaramer 20 ms after UploadSucess
    assert slower > quick >= 1
    gaps = {t.get_text(): t.get_position()[1] for t in texts(ax, "gap")}
    assert set(gaps) == {"4.999 s gap", "2 min gap", "2 s gap"}
    push, heartbeat = ys[13], ys[14]  # PrushCaramerOnlineStatus ... two minutes ... Heartbeat
    assert push < gaps["2 min gap"] < heartbeat
    # a two-minute break takes less room than the 70 ms upload it follows
    assert heartbeat - push < ys[9] - ys[4]
    times = ticklabels(ax.yaxis)
    assert "11:00:05.179" in times and "11:02:05.179" in times
    assert ax.get_ylabel() == "time (UTC, 2025-11-28)"


def test_failed_sync_shows_opens_closes_and_resets(failed):
    ax = plots.sequence_diagram(failed, 0, tz="UTC").axes[0]
    ys = arrow_ys(ax)
    assert [t.get_text() for t in texts(ax, "open")] == \
        ["conn 0 opened", "conn 1 opened", "conn 2 opened"]
    assert [t.get_text() for t in texts(ax, "rst")] == \
        ["conn 1 reset (RST)", "conn 0 reset (RST)"]
    assert [t.get_text() for t in texts(ax, "fin")] == ["conn 2 closed (FIN)"]
    # the data connection is reset after its last answer (#16) and before the next query (#18)
    rst1 = label_at(ax, "rst", "conn 1")
    assert ys[9] < rst1 < ys[10]
    assert label_at(ax, "open", "conn 1") < ys[4]
    crosses = [c for c in ax.collections if c.get_label() == "reset (RST)"]
    assert len(crosses) == 2 and all(len(c.get_offsets()) == 2 for c in crosses)
    assert all(tuple(np.round(c.get_facecolors()[0][:3], 2)) == rgb(plots.OFFLINE)
               for c in crosses)
    # conn 1's lifeline (x=2) ends at its reset; the client's (x=0) runs to the bottom
    lane1 = [seg for c in ax.collections if hasattr(c, "get_segments")
             for seg in c.get_segments() if np.allclose(seg[:, 0], 2)]
    assert lane1 and max(seg[:, 1].max() for seg in lane1) == pytest.approx(rst1 + 0.08)


def test_failed_sync_marks_its_five_violations(failed):
    ax = plots.sequence_diagram(failed, 0, tz="UTC").axes[0]
    marks = texts(ax, "violation")
    assert sorted(t.get_text() for t in marks) == sorted(failed.violations["rule"].astype(str))
    (triangles,) = [c for c in ax.collections if c.get_label() == "violation"]
    ys = arrow_ys(ax)
    expected = sorted(ys[int(m)] for m in failed.violations["message"])
    assert sorted(triangles.get_offsets()[:, 1]) == pytest.approx(expected)
    heartbeat_gap = next(t for t in marks if t.get_text() == "heartbeat_gap")
    assert heartbeat_gap.get_position()[1] == ys[14]
    assert "5 protocol violations marked" in ax.get_title()


def test_failed_sync_unannounced_data_connection_has_its_own_lane(failed):
    ax = plots.sequence_diagram(failed, 0, tz="UTC").axes[0]
    lanes = [t.label2.get_text() for t in ax.xaxis.get_major_ticks()]
    assert lanes[2].startswith("data conn 1\n192.0.2.10:9003")
    assert lanes[3].startswith("data conn 2\n192.0.2.10:9004") and \
        lanes[3].endswith("not announced")
    assert tuple(np.round(plt.matplotlib.colors.to_rgb(
        ax.xaxis.get_major_ticks()[3].label2.get_color()), 2)) == rgb(sequence.UNLINKED)
    # the upload on it ends on its lane
    upload = arrows(ax)[17]
    assert upload.xy[0] == 3 and upload.xyann[0] == 0


def test_without_the_capture_tables_only_messages_are_drawn(failed):
    ax = plots.sequence_diagram(failed.messages, 0, tz="UTC", sessions=failed.sessions).axes[0]
    assert len(arrows(ax)) == 17  # no unannounced connection without cap.connections
    assert not texts(ax, "open") and not texts(ax, "rst") and not texts(ax, "violation")
    with_rules = plots.sequence_diagram(failed.messages, 0, tz="UTC", sessions=failed.sessions,
                                        violations=failed.violations).axes[0]
    assert len(texts(with_rules, "violation")) == 4  # the unannounced port is not drawn


def test_gap_option(failed):
    ax = plots.sequence_diagram(failed, 0, tz="UTC", gap=200).axes[0]
    assert not texts(ax, "gap")
    with pytest.raises(ValueError, match="gap must be a positive number"):
        plots.sequence_diagram(failed, 0, gap=0)


def test_row_positions():
    ms = 1_000_000
    t = np.array([0, 1 * ms, 11 * ms, 111 * ms, 1111 * ms, 200_000 * ms], np.int64)
    ys, breaks = sequence.row_positions(t, gap=1.0)
    steps = np.diff(ys)
    assert steps[0] == pytest.approx(1.0)  # 1 ms: one line
    assert steps[1] == pytest.approx(1.4) and steps[2] == pytest.approx(1.8)  # 10 ms, 100 ms
    assert steps[3] == pytest.approx(2.2)  # 1 s: not yet a break
    assert len(breaks) == 1 and breaks[0][2] == pytest.approx(198.889)
    assert breaks[0][:2] == (ys[4], ys[5]) and steps[4] > steps[3]


# ------------------------------------------------------------------ sessions and connections


def test_sequence_diagram_of_a_session(sample):
    fig = plots.sequence_diagram(sample.messages, 0, tz="UTC", sessions=sample.sessions)
    ax = fig.axes[0]
    lanes = ticklabels(ax.xaxis)
    assert lanes[0] == "client\n198.51.100.7:51514"
    assert lanes[1] == "server\n192.0.2.10:9000"
    assert lanes[2].startswith("data conn 1\n192.0.2.10:9001")
    assert len(arrows(ax)) == len(sample.messages) == 30
    labels = [t.get_text() for t in texts(ax, "label")]
    assert labels[0] == "Login demo|***"
    assert labels[1].startswith("LoginOk 3|")
    assert any(lab.startswith("UploadFail CAM00003|ID和密码不匹配") for lab in labels)
    times = ticklabels(ax.yaxis)
    assert times[0] == "09:00:00.005" and len(times) == 30
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # time goes down
    assert ax.get_title().startswith("Session 0, user demo (ok)")
    upload = arrows(ax)[6]  # data-connection arrows end on the data lane
    assert upload.xy[0] == 2 and upload.xyann[0] == 0
    render(fig)


def test_sequence_diagram_sessions_split_one_connection():
    cap = read_capture(DOWNLOAD)
    failed = plots.sequence_diagram(cap, 1, tz="UTC").axes[0]  # alice's failed login
    second = plots.sequence_diagram(cap, 2, tz="UTC").axes[0]  # her retry, with its data conn
    assert [t.get_text().split()[0] for t in texts(failed, "label")] == ["Login", "LoginError"]
    assert len(ticklabels(failed.xaxis)) == 2
    # the connection opened before the failed login and closed after the retry
    assert [t.get_text() for t in texts(failed, "open")] == ["conn 2 opened"]
    assert not texts(failed, "fin") and not texts(failed, "rst")
    second_labels = [t.get_text().split()[0] for t in texts(second, "label")]
    assert second_labels[:2] == ["Login", "LoginOk"] and second_labels[-1] == "DownloadFail"
    assert ticklabels(second.xaxis)[2].startswith("data conn 3")
    assert "conn 2 opened" not in [t.get_text() for t in texts(second, "open")]
    assert "conn 3 opened" in [t.get_text() for t in texts(second, "open")]
    with pytest.raises(ValueError, match="no session 7"):
        plots.sequence_diagram(cap, 7)


def test_sequence_diagram_by_connection_shows_linked_data_connections(sample):
    fig = plots.sequence_diagram(sample.messages, 0, tz="UTC", connections=sample.connections)
    ax = fig.axes[0]
    assert len(ticklabels(ax.xaxis)) == 3
    assert ax.get_title() == "Connection 0"
    assert [t.get_text() for t in texts(ax, "open")] == ["conn 0 opened", "conn 1 opened"]
    only_main = plots.sequence_diagram(sample.messages, 0, tz="UTC")
    assert len(ticklabels(only_main.axes[0].xaxis)) == 2
    with pytest.raises(ValueError, match="no messages on connection 9"):
        plots.sequence_diagram(sample.messages, 9)


def test_sequence_diagram_is_cut_with_a_note(sample):
    fig = plots.sequence_diagram(sample, 0, tz="UTC", max_messages=5)
    ax = fig.axes[0]
    assert len(arrows(ax)) == 5
    assert "first 5 of 30 messages" in ax.get_title()
    last = pd.Timestamp(sample.messages["ts"].iloc[4]).strftime("%H:%M:%S.%f")[:-3]
    assert ticklabels(ax.yaxis)[-1] == last  # nothing after the last message drawn


def test_sequence_diagram_marks_decoding_errors():
    messages = frame(schema.MESSAGES, [
        {"ts": at(0), "conn": 0, "channel": "main", "direction": "c2s", "client": "1.1.1.1:1",
         "server": "2.2.2.2:9000", "command": "Login", "params": "a|***", "frame": 1,
         "stream_offset": 0},
        {"ts": at(1), "conn": 0, "channel": "main", "direction": "s2c", "client": "1.1.1.1:1",
         "server": "2.2.2.2:9000", "command": "LoginOk", "params": "x|y", "frame": 2,
         "error": "camera_count: 'x' is not an integer", "stream_offset": 0},
    ])
    ax = plots.sequence_diagram(messages, tz="UTC").axes[0]
    bad = texts(ax, "label")[1]
    assert "not an integer" in bad.get_text()
    assert tuple(np.round(plt.matplotlib.colors.to_rgb(bad.get_color()), 2)) == \
        rgb(plots.OFFLINE)


def test_a_diagram_across_midnight_dates_its_rows():
    messages = frame(schema.MESSAGES, [
        {"ts": pd.Timestamp("2025-11-28 23:59:59.5", tz="UTC") + pd.Timedelta(seconds=s),
         "conn": 0, "channel": "main", "direction": "c2s", "client": "1.1.1.1:1",
         "server": "2.2.2.2:9000", "command": "Heartbeat", "params": "", "frame": i + 1,
         "stream_offset": 0} for i, s in enumerate([0, 0.2, 1.0])])
    ax = plots.sequence_diagram(messages, tz="UTC").axes[0]
    assert ticklabels(ax.yaxis) == ["2025-11-28 23:59:59.500", "23:59:59.700",
                                    "2025-11-29 00:00:00.500"]
    assert ax.get_ylabel() == "time (UTC, 2025-11-28 to 2025-11-29)"

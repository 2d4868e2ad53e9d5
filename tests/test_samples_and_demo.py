"""The bundled captures are what their scripts make, and the demo runs on them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import camprotool as cpt
from camprotool import demo

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"


def capture_files(directory: Path = CAPTURES) -> list[Path]:
    """The capture files in ``directory``, by extension: a report directory such as
    ``sample.pcapng.report/`` (from ``camprotool report``) is not one."""
    return sorted(p for p in directory.iterdir()
                  if p.suffix in (".pcap", ".pcapng") and p.is_file())


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, CAPTURES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scripted_samples_are_current(tmp_path):
    _load("make_samples").main(tmp_path)
    for name in _load("make_samples").NAMES:
        assert (tmp_path / name).read_bytes() == (CAPTURES / name).read_bytes(), (
            f"captures/{name} is stale: run python captures/make_samples.py"
        )


@pytest.mark.parametrize("engine", ["bulk", "incremental"])
def test_sample_pcap_and_pcapng_decode_identically(engine):
    a = cpt.read_capture(CAPTURES / "sample.pcapng", engine=engine).messages
    b = cpt.read_capture(CAPTURES / "sample.pcap", engine="bulk").messages
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 30 and a["error"].isna().all()


def test_the_well_behaved_captures_decode_cleanly():
    for path in capture_files():
        if path.name == "failed_sync.pcapng":
            continue
        cap = cpt.read_capture(path)
        assert len(cap.messages) > 0, path
        assert cap.messages["error"].isna().all(), path
        assert len(cap.problems) == 0 and cap.violations.empty, path


def test_the_failed_sync_sample_shows_each_breach():
    cap = cpt.read_capture(CAPTURES / "failed_sync.pcapng")
    assert [(v.rule, v.message, v.conn) for v in cap.violations.itertuples()] == [
        ("upload_sequence", 8, 1),
        ("incomplete_sync", 9, 1),
        ("heartbeat_gap", 14, 0),
        ("check_too_many_ids", 15, 0),
        ("unannounced_data_port", 17, 2),
    ]
    errors = cap.messages["error"].dropna().tolist()
    assert errors == ["frame cut by 15 lost bytes (20 bytes of it seen)",
                      "follows lost bytes: probably the tail of a cut frame"]
    t = cap.transfers
    assert t["status"].astype(str).tolist() == ["cut_short", "complete"]
    assert t["client"].isna().tolist() == [False, True]


def test_emulator_recording_matches_the_live_tables(tmp_path):
    path = _load("record_emulator").record(tmp_path / "emulator.pcapng")
    cap = cpt.read_capture(path)
    commands = cap.messages["command"].astype(str).tolist()
    assert commands.count("UploadFail") == 2 and commands.count("DownloadSucess") == 3
    assert {"PrushCaramerAlarmInfo", "PrushCaramerOnlineStatus"} <= set(commands)
    assert set(cap.connections["channel"]) == {"main", "data"}
    assert cap.connections["main_conn"].notna().sum() == 2


def test_demo_prints_the_summary_and_talks_to_the_emulator(tmp_path, capsys):
    sample = tmp_path / "sample.pcapng"
    sample.write_bytes((CAPTURES / "sample.pcapng").read_bytes())
    out = tmp_path / "out"
    assert demo.main([str(sample), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "CAM00003: ID和密码不匹配; DEMO0001: 该摄像头绑定账号已满" in printed
    assert "embedded emulator" in printed and "PrushCaramerAlarmInfo DEMO0001:motion" in printed
    assert (out / "sample.messages.csv").exists()
    index = out / "sample.pcapng.report" / "index.html"
    assert f"report of sample.pcapng: {index}" in printed
    assert "<img" in index.read_text()
    # nothing lands beside the capture: captures/ holds capture files only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "sample.pcapng"]


def test_demo_output_defaults_outside_captures(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert demo.parse_args([]).output == Path("demo-output")
    assert (ROOT / ".gitignore").read_text().count("/demo-output/") == 1


def test_capture_files_skip_report_directories(tmp_path):
    (tmp_path / "x.pcapng.report").mkdir()
    (tmp_path / "x.pcapng").write_bytes(b"")
    (tmp_path / "x.messages.csv").write_text("")
    assert [p.name for p in capture_files(tmp_path)] == ["x.pcapng"]


def test_make_demo_entry_point_runs(tmp_path):
    missing = str(tmp_path / "nope.pcapng")
    result = subprocess.run([sys.executable, "-m", "camprotool.demo", missing],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    # An unreadable path is reported as one line by the demo, not a traceback.
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"camprotool demo: error: no such capture: {missing}"
    ]
    bad = subprocess.run([sys.executable, "-m", "camprotool.demo", "--no-such-option"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr

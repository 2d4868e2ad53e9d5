"""The pyshark bridge: captures with the generated dissector, and from_pyshark's table
agreeing with read_capture on the bundled captures."""

from __future__ import annotations

import asyncio
import gc
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import camprotool as cpt
from camprotool.protocol.lua import render_dissector
from camprotool.pyshark_bridge import ALIAS, LAYER, dissector_script
from camprotool.pyshark_messages import ABSENT_COLUMNS

pytest.importorskip("pyshark", reason="pyshark is not installed (the [pyshark] extra)")
needs_tshark = pytest.mark.skipif(
    shutil.which("tshark") is None, reason="tshark is not installed (`make sysdeps` installs it)")

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
SAMPLE = CAPTURES / "sample.pcapng"
FAILED = CAPTURES / "failed_sync.pcapng"
#: every bundled capture file (by extension: report directories are not captures)
BUNDLED = sorted(p for p in CAPTURES.iterdir() if p.suffix in (".pcap", ".pcapng") and p.is_file())
CLEAN = [p for p in BUNDLED if p != FAILED]

pytestmark = pytest.mark.timeout(300)


def _plain(value: object) -> object:
    """Lists, dicts and scalars of Python, so ndarray/list/tuple cells compare equal."""
    if isinstance(value, np.ndarray | list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def assert_same_table(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    ref = ref.drop(columns=list(ABSENT_COLUMNS))
    assert list(got.columns) == list(ref.columns)
    assert got.dtypes.astype(str).tolist() == ref.dtypes.astype(str).tolist()
    got, ref = got.copy(), ref.copy()
    for name in ("ids", "statuses"):
        got[name], ref[name] = got[name].map(_plain), ref[name].map(_plain)
    for name in ("channel", "direction", "command"):  # same values; category order may differ
        got[name], ref[name] = got[name].astype(str), ref[name].astype(str)
    pd.testing.assert_frame_equal(got, ref)


def from_pyshark_of(path: Path, **kwargs: object) -> pd.DataFrame:
    reveal = bool(kwargs.get("reveal_passwords", False))
    cap = cpt.pyshark_capture(path, **kwargs)
    try:
        return cpt.from_pyshark(cap, reveal_passwords=reveal)
    finally:
        cap.close()


@needs_tshark
@pytest.mark.tshark
@pytest.mark.parametrize("reveal", [False, True], ids=["masked", "revealed"])
@pytest.mark.parametrize("path", CLEAN, ids=[p.name for p in CLEAN])
def test_from_pyshark_agrees_with_read_capture(path: Path, reveal: bool) -> None:
    got = from_pyshark_of(path, reveal_passwords=reveal)
    ref = cpt.read_capture(path, reveal_passwords=reveal).messages
    assert len(got) == len(ref) > 0
    assert_same_table(got, ref)


@needs_tshark
@pytest.mark.tshark
def test_failed_sync_agrees_except_the_frame_cut_by_lost_bytes() -> None:
    """tshark drops the part of the cut frame before the hole and restarts framing in
    its tail; every other row, violations' evidence included, is the same."""
    got = from_pyshark_of(FAILED)
    ref = cpt.read_capture(FAILED).messages
    cut = ref["error"].fillna("").str.startswith("frame cut by")
    assert cut.sum() == 1
    ref = ref[~cut].reset_index(drop=True)
    tail = ref["error"].fillna("").str.startswith("follows lost bytes")
    assert tail.tolist() == got["error"].fillna("").str.startswith("follows lost bytes").tolist()
    # the tail is an error row that names no command, its text masked
    row = got[tail].iloc[0]
    assert (row["command"], row["params"], row["frame"]) == ("", "***", ref[tail].iloc[0]["frame"])
    keep = ~tail
    assert_same_table(got[keep].reset_index(drop=True), ref[keep].reset_index(drop=True))


@needs_tshark
@pytest.mark.tshark
def test_ports_keep_only_those_connections_as_read_capture_does() -> None:
    got = from_pyshark_of(SAMPLE, ports=[9001])
    ref = cpt.read_capture(SAMPLE, ports=[9001]).messages
    assert set(got["conn"]) == {1}
    assert_same_table(got, ref)


@needs_tshark
@pytest.mark.tshark
def test_packets_have_camproto_layers_also_named_camsync() -> None:
    messages = cpt.read_capture(SAMPLE).messages
    seen = []
    with cpt.pyshark_capture(SAMPLE) as cap:
        for pkt in cap:
            if LAYER not in pkt:
                assert ALIAS not in pkt
                continue
            assert ALIAS in pkt and ALIAS in dir(pkt)
            assert pkt.camsync.command == pkt.camproto.command == pkt[ALIAS].command
            layers = pkt.get_multiple_layers(ALIAS)
            assert len(layers) == len(pkt.get_multiple_layers(LAYER)) >= 1
            seen += [(int(pkt.number), str(layer.command)) for layer in layers]
    assert seen == list(zip(messages["frame"], messages["command"].astype(str), strict=True))


@needs_tshark
@pytest.mark.tshark
def test_display_filters_and_the_gbk_sample() -> None:
    with cpt.pyshark_capture(SAMPLE, display_filter='camproto.command == "UploadFail"') as cap:
        reasons = [pkt.camsync.reason for pkt in cap]
    assert reasons == ["ID和密码不匹配", "该摄像头绑定账号已满"]
    download = CAPTURES / "download.pcapng"  # lp32le on ports 7000-7002, GBK bodies
    with cpt.pyshark_capture(download, display_filter='camproto.encoding == "gbk"') as cap:
        reasons = [str(p.camsync.reason) for p in cap if "reason" in p.camsync.field_names]
    assert "用户名或者密码错误!" in reasons


@needs_tshark
@pytest.mark.tshark
def test_from_pyshark_takes_any_iterable_of_packets() -> None:
    with cpt.pyshark_capture(SAMPLE) as cap:
        packets = list(cap)
    table = cpt.from_pyshark(packets)
    assert_same_table(table, cpt.read_capture(SAMPLE).messages)
    assert cpt.from_pyshark([]).empty


@needs_tshark
@pytest.mark.tshark
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_works_where_an_event_loop_is_running() -> None:
    """A notebook cell runs inside the kernel's event loop: pyshark alone fails there."""

    async def cell() -> tuple[int, pd.DataFrame]:
        cap = cpt.pyshark_capture(SAMPLE)
        try:
            for i, _ in enumerate(cap):  # stopping early stops tshark
                if i == 5:
                    break
            count = sum(1 for pkt in cap if LAYER in pkt)
            return count, cpt.from_pyshark(cap)
        finally:
            cap.close()

    count, table = asyncio.run(cell())
    gc.collect()  # nothing left calls into the closed loop
    assert count == 30
    assert_same_table(table, cpt.read_capture(SAMPLE).messages)


def test_the_dissector_script_is_cached_by_content(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = dissector_script("auto", (), True)
    assert first.parent == tmp_path / "camprotool"
    assert first.read_text(encoding="utf-8") == render_dissector("auto", (), heuristic=True)
    assert dissector_script("auto", (), True) == first
    other = dissector_script("auto", (9000,), True)
    assert other != first and 'DEFAULT_PORTS = "9000"' in other.read_text(encoding="utf-8")
    assert sorted(p.name for p in first.parent.iterdir()) == sorted([first.name, other.name])


@needs_tshark
def test_sources_a_file_or_an_interface(tmp_path) -> None:
    from camprotool.pyshark_bridge import CamprotoFileCapture, CamprotoLiveCapture

    cap = cpt.pyshark_capture(SAMPLE, reveal_passwords=True, ports=[9000, 9001])
    try:
        assert isinstance(cap, CamprotoFileCapture)
        params = cap.get_parameters()
        assert any(p.startswith("lua_script:") for p in params)
        assert "camproto.reveal_passwords:TRUE" in params
        assert "tcp.try_heuristic_first:TRUE" in params
        assert "tcp.port in {9000..9001}" in params
    finally:
        cap.close()
    with pytest.raises(FileNotFoundError, match="no such capture file"):
        cpt.pyshark_capture(tmp_path / "nope.pcapng")
    with pytest.raises(FileNotFoundError, match="no such capture file"):
        cpt.pyshark_capture("nope.pcap")
    with pytest.raises(IsADirectoryError):
        cpt.pyshark_capture(tmp_path)
    with pytest.raises(ValueError, match="port"):
        cpt.pyshark_capture(SAMPLE, ports=[70000])
    try:
        live = cpt.pyshark_capture("lo")  # not started: tshark only lists the interfaces
    except Exception as exc:  # no capture rights here: the bridge is not what is tested
        pytest.skip(f"cannot list interfaces: {exc}")
    try:
        assert isinstance(live, CamprotoLiveCapture) and live.interfaces == ["lo"]
        assert any(p.startswith("lua_script:") for p in live.get_parameters())
    finally:
        live.close()


def test_missing_tshark_is_one_clear_error(monkeypatch) -> None:
    import pyshark.tshark.tshark as tshark

    def missing(tshark_path: str | None = None) -> str:
        raise tshark.TSharkNotFoundException("TShark not found")

    monkeypatch.setattr(tshark, "get_process_path", missing)
    with pytest.raises(FileNotFoundError, match=r"^tshark not found: .*apt-get install tshark"):
        cpt.pyshark_capture(SAMPLE)


def test_missing_pyshark_names_the_extra() -> None:
    code = ("import sys; sys.modules['pyshark'] = None\n"
            "import camprotool as cpt\n"
            "try:\n"
            f"    cpt.pyshark_capture({str(SAMPLE)!r})\n"
            "except ModuleNotFoundError as exc:\n"
            "    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.strip().splitlines() == [
        "pyshark is not installed, and cpt.pyshark_capture cannot work without it: "
        "install camprotool's [pyshark] extra (pip install 'camprotool[pyshark]')"]

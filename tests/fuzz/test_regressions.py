"""Every failure ``make fuzz`` found, kept as a test (the shrunk input, as the runner
printed it). docs/fuzzing.md lists them with the runs that found them."""

from __future__ import annotations

from fuzz_targets import HARNESS, check_emulator


def test_a_status_query_without_ids_gets_a_readable_answer() -> None:
    """Found 2026-12-06 (emulator target, seed 2493624459): an empty status query was
    answered ``ReturnCaramerOnlineStatus`` with no pair, which our own decoder reads as
    malformed. Now: ``LoginError(参数格式错误)``. The same for ids that cannot be echoed."""
    with HARNESS.running():
        for dialect in ("line", "lp32le:gbk"):
            for params in ("", "A:B", "A:B;C:D"):
                check_emulator((dialect, "main", [
                    ("msg", "Login", "demo|demo"),
                    ("msg", "SocketCommand.CaramCommand.CheckCaramerOnlineStatus", params)]))

"""Replay: client playback against live servers, server playback to live clients."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import camprotool as cpt
from camprotool.capture.writer import PcapngWriter
from camprotool.net import EmulatorServer, LoginFailed
from camprotool.net.replay import (
    ReplayServer,
    compare_replies,
    replay_client,
    replay_client_async,
)
from camprotool.net.testing import FAST_SCRYPT_N, RawConnection, refused, wait_until
from camprotool.protocol import Decoder, encode

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "captures" / "sample.pcapng"
DOWNLOAD = ROOT / "captures" / "download.pcapng"
ROW = ["conn", "request", "recorded_command", "live_command", "match", "detail"]
T0 = 1_764_320_400_000_000_000
MS = 1_000_000


def emulator(**options) -> EmulatorServer:
    options.setdefault("scrypt_n", FAST_SCRYPT_N)
    return EmulatorServer(**options)


def record_session(path: Path) -> Path:
    """demo downloads its three cameras and asks their status; alice mistypes her
    password, logs in and uploads three cameras (one binds, one wrong password, one full)."""
    with emulator(record=path) as srv:
        with srv.client(heartbeat_interval=None, timeout=5) as c:
            c.login("demo", "demo")
            c.sync([])
            c.check_status(["DEMO0001", "DEMO0002", "DEMO0003"])
        with srv.client(heartbeat_interval=None, timeout=5) as c:
            with contextlib.suppress(LoginFailed):
                c.login("alice", "wrong")
            c.login("alice", "alice")
            c.upload([("CAM00001", "1234"), ("CAM00002", "0000"), ("DEMO0001", "1234")])
    return path


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_session(tmp_path_factory.mktemp("replay") / "session.pcapng")


def scripted(path: Path, script: list[tuple[float, str, str, str]], end: float) -> Path:
    """One main connection: ``(seconds, direction, command, params)`` steps."""
    with PcapngWriter(path) as writer:
        main = writer.tcp(("198.51.100.7", 51514), ("192.0.2.10", 9000), T0)
        for at, direction, command, params in script:
            main.send(direction, encode(command, params), T0 + int(at * 1e9))
        main.close(T0 + int(end * 1e9))
    return path


def rows(result, **where) -> list[dict]:
    frame = result.comparison
    for key, value in where.items():
        frame = frame[frame[key] == value]
    return frame[ROW].to_dict("records")


@contextlib.contextmanager
def silent_server() -> Iterator[tuple[str, int]]:
    """Accepts connections (the kernel does) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield sock.getsockname()
    finally:
        sock.close()


# ------------------------------------------------------------------ client playback


def test_a_recording_replayed_against_a_fresh_emulator_answers_the_same(recording) -> None:
    with emulator() as srv:
        result = replay_client(recording, srv.address, speed=0, timeout=5)
        data_ports = set(srv.data_ports)
    assert result.ok, result.comparison[ROW]
    assert result.counts == {"same": 12, "different": 0, "missing": 0, "extra": 0}
    assert result.comparison["kind"].eq("reply").all()
    assert result.replayed == [0, 2] and set(result.conn_map) == {0, 1, 2, 3}
    # the data port differs from the recorded one and is not compared, only noted
    ports = rows(result, recorded_command="ReturnDataSocketPort")
    assert [r["detail"] for r in ports] == ["ignored: port", "ignored: port"]
    # the data connections went to the ports the LIVE server returned
    live = result.messages
    announced = set(live.loc[live.command == "ReturnDataSocketPort", "port"].astype(int))
    used = {int(s.rsplit(":", 1)[1]) for s in live.loc[live.channel == "data", "server"]}
    assert used == announced and used <= data_ports
    # the live table has the columns of Capture.messages (less the capture-only ones)
    captured = cpt.read_capture(recording).messages.columns
    assert [c for c in captured if c not in ("frame", "stream_offset", "raw")] == \
        list(live.columns)
    assert "***" in set(live.loc[live.command == "Login", "params"].str[-3:])
    assert "ReplayResult" in repr(result) and "12 same" in result.summary()


def test_a_server_with_other_data_answers_differently_and_says_how(recording) -> None:
    scenario = {"cameras": ["CAM00001", "CAM00002"],
                "accounts": [{"user": "demo", "password": "demo", "cameras": ["DEMO0001"]},
                             {"user": "alice", "password": "alice"}]}
    with emulator(scenario=scenario) as srv:
        result = replay_client(recording, srv.address, speed=0, timeout=5)
    assert not result.ok
    login = rows(result, request="Login", recorded_command="LoginOk", conn=0)
    assert login[0]["match"] == "different" and login[0]["detail"] == "camera_count: 3 -> 1"
    downloads = rows(result, request="DownLoadCaramer")
    assert [r["match"] for r in downloads] == ["different", "missing", "missing"]
    assert "total: 3 -> 1" in downloads[0]["detail"]
    # the live download ended at 1/1, so the recorded requests 2 and 3 were not sent
    assert downloads[1]["detail"] == "not sent: the live download ended at 1/1"
    status = rows(result, request="CheckCaramerOnlineStatus")[0]
    assert status["detail"] == "DEMO0001: true -> null; DEMO0002: false -> null"
    full = rows(result, request="UploadCaramer")[2]
    assert (full["match"], full["live_command"]) == ("different", "UploadSucess")
    assert full["detail"].startswith("command UploadFail -> UploadSucess DEMO0001|")
    assert result.counts == {"same": 6, "different": 4, "missing": 2, "extra": 0}
    sent = result.messages
    assert sent.loc[sent.command == "DownLoadCaramer", "params"].tolist() == ["0"]


def test_a_download_echoes_the_live_current_and_goes_on_when_the_server_has_more(
        recording) -> None:
    scenario = {"cameras": ["CAM00001"],
                "accounts": [{"user": "demo", "password": "demo",
                              "cameras": ["DEMO0001", "DEMO0002", "DEMO0003", "CAM00001"]},
                             {"user": "alice", "password": "alice"}]}
    with emulator(scenario=scenario) as srv:
        result = replay_client(recording, srv.address, speed=0, conns=[0], timeout=5)
    downloads = result.comparison[result.comparison.request == "DownLoadCaramer"]
    assert downloads["match"].tolist() == ["different", "different", "different", "extra"]
    assert downloads["request_params"].tolist() == ["0", "1", "2", "3"]
    assert downloads["detail"].tolist()[-1] == "beyond the recording"
    assert downloads["live_params"].tolist()[-1].startswith("CAM00001|***|null|4|4")
    sent = result.messages
    assert sent.loc[sent.command == "DownLoadCaramer", "params"].tolist() == ["0", "1", "2", "3"]


def test_the_bundled_sample_against_a_fresh_emulator_shows_what_differs_and_why() -> None:
    with emulator() as srv:
        started = time.monotonic()
        result = replay_client(SAMPLE, srv.address, speed=0, timeout=5)
        took = time.monotonic() - started
    assert took < 50  # the recording lasts 107 s
    assert result.counts == {"same": 5, "different": 5, "missing": 0, "extra": 0}
    by_request = {(r["request"], r["recorded_command"], r["match"]): r["detail"]
                  for r in rows(result, kind="reply")}
    # LoginOk differs only in the volatile last-login fields: same
    assert by_request[("Login", "LoginOk", "same")] == \
        "ignored: last_login_time, last_login_ip"
    uploads = rows(result, request="UploadCaramer")
    assert [(r["match"], r["detail"]) for r in uploads] == [
        ("different", "online: true -> null"),     # the emulator has no status for CAM*
        ("different", "online: false -> null"),
        ("same", ""),                              # wrong camera password: same refusal
        ("different", "command UploadFail -> UploadSucess DEMO0001|true|4|6"),  # demo owns it
        ("different", "online: true -> null"),
        ("same", ""),
    ]
    second_status = rows(result, request="CheckCaramerOnlineStatus")[1]
    assert second_status["detail"] == \
        "DEMO0001: false -> true; DEMO0002: true -> false; CAM00001: true -> null"
    pushes = result.comparison[result.comparison.kind == "push"]
    assert len(pushes) == 7 and set(pushes["match"]) == {"missing"}
    assert "7 pushes: 7 missing" in result.summary()


def test_a_gbk_length_prefixed_capture_replays_in_its_own_dialect() -> None:
    with emulator(dialect="lp32le:gbk") as srv:
        result = replay_client(DOWNLOAD, srv.address, speed=0, timeout=5)
    assert result.ok, result.comparison[ROW]
    assert result.counts["same"] == 8
    refusals = rows(result, recorded_command="LoginError") + rows(
        result, recorded_command="DownloadFail")
    assert [r["match"] for r in refusals] == ["same", "same"]
    # dialect= translates: the same conversation against a server speaking 'line'
    with emulator() as srv:
        translated = replay_client(DOWNLOAD, srv.address, dialect="line", speed=0, timeout=5)
    assert translated.ok and translated.messages["error"].isna().all()


def test_speed_scales_the_recorded_delays(tmp_path: Path) -> None:
    path = scripted(tmp_path / "gap.pcapng", [
        (0.005, "c2s", "Login", "demo|demo"),
        (0.007, "s2c", "LoginOk", "3||"),
        (2.007, "c2s", "CheckCaramerOnlineStatus", "DEMO0001"),
        (2.009, "s2c", "ReturnCaramerOnlineStatus", "DEMO0001;true"),
    ], end=2.010)
    with emulator() as srv:
        fast = replay_client(path, srv.address, speed=10, timeout=5)
        asap = replay_client(path, srv.address, speed=0, timeout=5)
    assert fast.ok and asap.ok
    assert 0.19 <= fast.elapsed < 2.0  # the 2 s gap at speed 10, not at speed 1
    assert asap.elapsed < 1.5  # no waiting at all: only the round trips
    sent = fast.messages[fast.messages.direction == "c2s"]
    gap = (sent.ts.iloc[1] - sent.ts.iloc[0]).total_seconds()
    assert 0.19 <= gap < 0.6


def test_conns_picks_recorded_main_connections(recording) -> None:
    with emulator() as srv:
        result = replay_client(recording, srv.address, speed=0, conns=[2], timeout=5)
    assert result.ok and result.replayed == [2] and set(result.conn_map) == {2, 3}
    assert set(result.comparison["conn"]) == {2, 3}
    with pytest.raises(ValueError, match=r"no main connection 1 .*main connections: 0, 2"):
        replay_client(recording, ("127.0.0.1", 9), conns=[1])


def test_no_free_data_port_is_a_difference_and_the_data_replies_go_missing(recording) -> None:
    with emulator(data_ports=0) as srv:
        result = replay_client(recording, srv.address, speed=0, conns=[0], timeout=5)
    port = rows(result, request="CreatDataSocket")[0]
    assert port["match"] == "different"
    assert port["detail"].endswith("-> empty (no free data port)")
    downloads = rows(result, request="DownLoadCaramer")
    assert {r["match"] for r in downloads} == {"missing"}
    assert downloads[0]["detail"] == \
        "not sent: no live data port (the live ReturnDataSocketPort was empty)"
    assert any("data connection 1: not opened" in n for n in result.notes)


def test_a_server_that_never_answers_gives_missing_rows_after_the_timeout(recording) -> None:
    with silent_server() as address:
        result = replay_client(recording, address, speed=0, conns=[0], timeout=0.2)
    assert set(result.comparison["match"]) == {"missing"}
    assert rows(result, request="Login")[0]["detail"] == "no answer within 0.2 s"
    assert any("never answered; does it speak line?" in n for n in result.notes)


def test_a_masked_capture_and_a_recording_of_the_replay(recording, tmp_path: Path) -> None:
    masked = cpt.read_capture(recording)  # passwords ***: replay re-reads them unmasked
    # its messages table masks the decoder's rows too; replay still finds the passwords
    assert "alice|***" in masked.messages["params"].tolist()
    out = tmp_path / "replayed.pcapng"
    with emulator() as srv:
        result = replay_client(masked, f"127.0.0.1:{srv.port}", speed=0, record=out,
                               reveal_passwords=True, timeout=5)
    assert result.ok
    assert "alice|alice" in result.messages["params"].tolist()
    again = cpt.read_capture(out, reveal_passwords=True).messages
    view = ["channel", "direction", "command", "params"]
    assert again[view].to_numpy().tolist() == result.messages[view].to_numpy().tolist()


def test_bad_input_is_refused_clearly(recording, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        replay_client(tmp_path / "nope.pcapng", ("127.0.0.1", 9))
    with pytest.raises(ValueError, match="bad address"):
        replay_client(recording, "nohost")
    with pytest.raises(ValueError, match="speed"):
        replay_client(recording, ("127.0.0.1", 9), speed=-1)
    with silent_server() as (host, port):
        pass  # now nothing listens there
    with pytest.raises(ConnectionRefusedError, match="connection refused"):
        replay_client(recording, (host, port), speed=0)


def test_the_asyncio_form() -> None:
    async def main():
        async with EmulatorServer(scrypt_n=FAST_SCRYPT_N, dialect="lp32le:gbk") as srv:
            return await replay_client_async(DOWNLOAD, srv.address, speed=0, timeout=5)

    assert asyncio.run(main()).ok


def test_compare_replies_ignores_volatile_fields_only() -> None:
    def msg(command: str, params: str):
        (m,) = Decoder().feed(encode(command, params))
        return m

    assert compare_replies(msg("LoginOk", "3|2025-01-01 00:00:00|1.2.3.4"),
                           msg("LoginOk", "3||")) == (
        "same", "ignored: last_login_time, last_login_ip")
    assert compare_replies(msg("LoginOk", "3|a|b"), msg("LoginOk", "3||"), volatile={}) == (
        "different", "last_login_time: a -> empty; last_login_ip: b -> empty")
    assert compare_replies(msg("DownloadSucess", "C1|1234|true|1|1"),
                           msg("DownloadSucess", "C1|9999|true|1|1")) == (
        "different", "camera_password differs")
    assert compare_replies(msg("ReturnDataSocketPort", "9001"),
                           msg("ReturnDataSocketPort", "")) == (
        "different", "port: 9001 -> empty (no free data port)")


# ------------------------------------------------------------------ server playback


def test_a_client_syncing_against_the_replay_server_gets_the_recorded_answers(
        recording) -> None:
    recorded = cpt.read_capture(recording, reveal_passwords=True).messages
    recorded_port = int(recorded.loc[recorded.command == "ReturnDataSocketPort", "port"].iloc[0])
    with ReplayServer(recording, speed=0) as rs:
        with rs.client(heartbeat_interval=None, timeout=2) as c:
            assert c.login("demo", "demo").camera_count == 3
            result = c.sync([])
            assert [(cam.id, cam.password, cam.online) for cam in result.cameras] == [
                ("DEMO0001", "1234", True), ("DEMO0002", "1234", False),
                ("DEMO0003", "1234", None)]
            assert c.check_status(["DEMO0001", "DEMO0002", "DEMO0003"]) == {
                "DEMO0001": True, "DEMO0002": False, "DEMO0003": None}
        with rs.client(heartbeat_interval=None, timeout=2) as c:
            with pytest.raises(LoginFailed):
                c.login("alice", "wrong")
            c.login("alice", "alice")
            assert [(r.camera_id, r.ok, r.reason) for r in c.upload(
                [("CAM00001", "1234"), ("CAM00002", "0000"), ("DEMO0001", "1234")])] == [
                ("CAM00001", True, None), ("CAM00002", False, "ID和密码不匹配"),
                ("DEMO0001", False, "该摄像头绑定账号已满")]
        assert rs.unanswered.empty
        served = rs.messages
    # the data port was rewritten to the replay server's own one-shot listener
    ports = served.loc[served.command == "ReturnDataSocketPort", "port"].astype(int).tolist()
    assert len(ports) == 2 and recorded_port not in ports
    assert "ReplayServer" in repr(rs)


def test_the_replay_server_reports_requests_it_has_no_answer_for(recording) -> None:
    with ReplayServer(recording, speed=0) as rs, RawConnection(rs.address) as raw:
        raw.send("Login", "demo|demo")
        assert raw.receive().command == "LoginOk"
        raw.send("Heartbeat")  # no answer expected: never reported
        raw.send("CheckCaramerOnlineStatus", "CAM00009")  # the recorded answer, by command
        assert raw.receive().params == "DEMO0001;true|DEMO0002;false|DEMO0003;null"
        raw.send("CheckCaramerOnlineStatus", "CAM00009")  # the recording had only one
        raw.send("SocketCommand.Vendor.Thing", "x")
        wait_until(lambda: len(rs.unanswered) == 2)
        missed = rs.unanswered
    assert missed["command"].tolist() == ["CheckCaramerOnlineStatus", "SocketCommand.Vendor.Thing"]
    assert missed["reason"].tolist()[0] == "no recorded CheckCaramerOnlineStatus left"
    assert missed["recorded_conn"].tolist() == [0, 0]


def test_reuse_false_serves_each_recording_once(recording) -> None:
    with ReplayServer(recording, speed=0, reuse=False, conns=[0]) as rs:
        for expected in ("LoginOk", None):
            with RawConnection(rs.address) as raw:
                raw.send("Login", "demo|demo")
                if expected:
                    assert raw.receive().command == expected
                else:
                    wait_until(lambda: len(rs.unanswered) == 1)
        assert rs.unanswered["reason"].tolist() == ["no recorded connection left to serve"]


def test_the_replay_server_data_port_is_one_shot_and_address_checked(recording) -> None:
    with ReplayServer(recording, speed=0) as rs, RawConnection(rs.address) as raw:
        raw.send("Login", "demo|demo")
        raw.receive()
        raw.send("CreatDataSocket", "demo|demo")
        port = raw.receive().port
        assert refused(("127.0.0.1", port), source="127.0.0.2")
        with RawConnection(("127.0.0.1", port)) as data:
            data.send("DownLoadCaramer", "0")
            assert data.receive().camera_id == "DEMO0001"
            assert refused(("127.0.0.1", port))  # one connection only


def test_recorded_pushes_are_sent_at_their_recorded_times(tmp_path: Path) -> None:
    path = scripted(tmp_path / "pushes.pcapng", [
        (0.005, "c2s", "Login", "demo|demo"),
        (0.007, "s2c", "LoginOk", "3||"),
        (0.010, "s2c", "PrushCaramerAlarmInfo", "DEMO0001:motion"),
        (1.005, "s2c", "PrushCaramerOnlineStatus", "DEMO0002:true"),
    ], end=1.5)
    with ReplayServer(path, speed=10) as rs, rs.client(heartbeat_interval=None) as c:
        c.login("demo", "demo")
        started = time.monotonic()
        assert c.next_push(timeout=2).params == "DEMO0001:motion"
        assert c.next_push(timeout=2).params == "DEMO0002:true"
        assert 0.05 <= time.monotonic() - started < 1.0  # 1 s recorded, at speed 10


def test_replay_client_against_replay_server_round_trips(recording, tmp_path: Path) -> None:
    out = tmp_path / "served.pcapng"
    with ReplayServer(recording, speed=0, record=out) as rs:
        result = replay_client(recording, rs.address, speed=0, timeout=2)
        assert rs.unanswered.empty
        served = rs.messages
    assert result.ok, result.comparison[ROW]
    again = cpt.read_capture(out).messages
    assert again["command"].tolist() == served["command"].tolist()


def test_the_replay_server_refuses_a_busy_port_clearly(recording) -> None:
    with ReplayServer(recording) as rs:
        busy = ReplayServer(recording, listen=rs.address)
        with pytest.raises(OSError, match="already in use"):
            busy.start()


def test_an_unreadable_live_download_is_described_without_its_password(recording,
                                                                        leaky_server) -> None:
    result = replay_client(recording, leaky_server, speed=0, conns=[0], timeout=2)
    text = result.comparison.to_csv()
    assert "unreadable live DownloadSucess 'CAM1|***'" in text
    assert "cret" not in text


def test_idle_main_connections_are_closed_by_the_replay_server(recording) -> None:
    with ReplayServer(recording, speed=0, heartbeat_timeout=0.3, max_connections=2) as rs:
        idle = [RawConnection(rs.address) for _ in range(2)]
        try:
            for raw in idle:  # silent: closed, so they no longer hold the connection slots
                assert raw.closed_by_peer(3)
        finally:
            for raw in idle:
                raw.close()
        with RawConnection(rs.address) as raw:
            raw.send("Login", "demo|demo")
            assert raw.receive().command == "LoginOk"


def test_unanswered_requests_are_bounded_and_their_warning_rate_limited(
        recording, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import camprotool.net.replay.server as replay_server

    monkeypatch.setattr(replay_server, "MAX_UNANSWERED", 5)
    caplog.set_level(logging.WARNING, logger="camprotool.net.replay")
    with ReplayServer(recording, speed=0) as rs, RawConnection(rs.address) as raw:
        raw.send("Login", "demo|demo")
        assert raw.receive().command == "LoginOk"
        raw.send_bytes(encode("SocketCommand.Vendor.Thing", "x") * 50)
        wait_until(lambda: rs.unanswered_dropped == 45)
        assert len(rs.unanswered) == 5
    warnings = [r for r in caplog.records if "no recorded answer" in r.getMessage()]
    assert 1 <= len(warnings) <= 2

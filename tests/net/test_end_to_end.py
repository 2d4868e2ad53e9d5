"""Client and emulated server over loopback: every flow of PROTOCOL.md sections 2-3."""

from __future__ import annotations

import logging
import threading

import pandas as pd
import pytest

from camprotool.net import (
    Camera,
    Client,
    ConnectionLost,
    LoginFailed,
    NoDataPort,
    NotConnected,
    SyncError,
)
from camprotool.net.handlers import REASONS
from camprotool.net.testing import LoopbackPair, RawConnection, refused, wait_until
from camprotool.protocol import LocalProtocolError, encode
from camprotool.protocol.catalogue import FIELD_NAMES

DIALECTS = ["line", "line:gbk", "lp32le", "lp32le:gbk", "lp32be", "lp32be:gbk"]


def test_login_ok_and_error(pair: LoopbackPair) -> None:
    with pytest.raises(LoginFailed) as info:
        pair.client.login("demo", "wrong")
    assert info.value.reason == "用户名或者密码错误!"
    ok = pair.client.login("demo", "demo")
    assert (ok.camera_count, ok.last_login_time, ok.last_login_ip) == (3, "", "")
    again = pair.new_client().login("demo", "demo")
    assert again.last_login_ip == "127.0.0.1" and len(again.last_login_time) == 19


def test_upload_binds_and_reports_both_failure_reasons(pair: LoopbackPair) -> None:
    pair.client.login("alice", "alice")
    results = pair.client.upload([("CAM00001", "1234"), ("CAM00002", "bad"),
                                  ("DEMO0001", "1234"), ("CAM00003", "1234")])
    assert [(r.camera_id, r.ok, r.reason) for r in results] == [
        ("CAM00001", True, None),
        ("CAM00002", False, REASONS["mismatch"]),
        ("DEMO0001", False, REASONS["full"]),
        ("CAM00003", True, None),
    ]
    assert [r.synced for r in results] == [1, 2, 3, 4]  # failures count too
    assert {r.total for r in results} == {4}
    assert pair.server.store.owners("CAM00001") == ["alice"]


def test_download_lists_the_accounts_cameras(demo) -> None:
    cams = demo.download()
    assert cams == [Camera("DEMO0001", "1234", True), Camera("DEMO0002", "1234", False),
                    Camera("DEMO0003", "1234", None)]
    df = demo.messages
    data = df[df.channel == "data"]
    assert data.command.tolist() == ["DownLoadCaramer", "DownloadSucess"] * 3
    # the client echoes ``current`` each time
    assert data[data.command == "DownLoadCaramer"].downloaded.tolist() == [0, 1, 2]


def test_download_with_no_camera_returns_nothing(pair: LoopbackPair) -> None:
    pair.client.login("alice", "alice")
    assert pair.client.download() == []
    fail = pair.client.messages.query("command == 'DownloadFail'")
    assert fail.reason.tolist() == [REASONS["no_cameras"]]


def test_sync_decides_by_count(pair: LoopbackPair) -> None:
    client = pair.client
    client.login("demo", "demo")
    assert client.sync([]).kind == "download"
    same = [("DEMO0001", "1234"), ("DEMO0002", "1234"), ("DEMO0003", "1234")]
    assert client.sync(same).kind == "none"
    more = [*same, ("CAM00009", "1234")]
    result = client.sync(more)
    assert result.kind == "upload" and all(r.ok for r in result.uploaded)
    assert pair.server.store.camera_count("demo") == 4


def test_status_over_20_ids_is_split_by_the_client(demo, pair: LoopbackPair) -> None:
    ids = [f"CAM{i:05d}" for i in range(1, 21)] + ["DEMO0001", "DEMO0002", "DEMO0003",
                                                    "UNKNOWN1", "UNKNOWN2"]
    answer = demo.check_status(ids)
    assert list(answer) == ids
    assert answer["DEMO0001"] is True and answer["DEMO0002"] is False
    assert answer["DEMO0003"] is None and answer["UNKNOWN1"] is None
    queries = pair.server.messages.query("command == 'CheckCaramerOnlineStatus'")
    assert [len(i) for i in queries.ids] == [20, 5]


def test_server_answers_only_the_first_20_of_an_oversize_query(pair: LoopbackPair) -> None:
    with RawConnection(pair.server.address) as raw:
        raw.send("Login", "demo|demo")
        assert raw.receive().command == "LoginOk"
        raw.send("CheckCaramerOnlineStatus", ";".join(f"CAM{i:05d}" for i in range(1, 26)))
        reply = raw.receive()
    assert reply.command == "ReturnCaramerOnlineStatus"
    assert [cid for cid, _ in reply.statuses] == [f"CAM{i:05d}" for i in range(1, 21)]


def test_commands_before_login_are_refused(pair: LoopbackPair) -> None:
    with RawConnection(pair.server.address) as raw:
        raw.send("CreatDataSocket", "demo|demo")
        reply = raw.receive()
        assert (reply.command, reply.reason) == ("LoginError", REASONS["not_logged_in"])
        raw.send("CheckCaramerOnlineStatus", "DEMO0001")
        assert raw.receive().command == "LoginError"
        raw.send("Login", "demo|demo")
        assert raw.receive().command == "LoginOk"
        raw.send("CreatDataSocket", "bob|bob")  # someone else's credentials
        assert raw.receive().command == "LoginError"
    with pytest.raises(NotConnected, match="log in first"):
        pair.client.create_data_socket()


def test_create_data_socket_when_not_required_to_log_in() -> None:
    with LoopbackPair(require_login=False) as pair, RawConnection(pair.server.address) as raw:
        raw.send("CreatDataSocket", "demo|demo")
        assert raw.receive().command == "ReturnDataSocketPort"
        raw.send("CreatDataSocket", "demo|nope")
        assert raw.receive().command == "LoginError"


def test_pushes_and_alarms_arrive_while_a_sync_runs() -> None:
    with LoopbackPair(reply_delay=0.02) as pair:
        client = pair.client
        client.login("demo", "demo")
        bob = pair.new_client()
        bob.login("bob", "bob")
        seen: list = []
        client.on_push(seen.append)
        fired = threading.Event()

        def in_the_middle(row) -> None:  # runs on the server's loop thread
            if row.message.command == "DownloadSucess" and not fired.is_set():
                fired.set()  # right after the first of three cameras went out
                pair.server.set_online("DEMO0002", True)  # demo only
                pair.server.raise_alarm("DEMO0001", "motion")  # demo and bob

        pair.server.log.on_message(in_the_middle)
        result = client.sync([])
        assert result.kind == "download" and len(result.cameras) == 3
        assert result.cameras[1].online is True  # the change is visible in the same sync
        wait_until(lambda: len(seen) == 2)
        assert [(m.command, m.params) for m in seen] == [
            ("PrushCaramerOnlineStatus", "DEMO0002:true"),
            ("PrushCaramerAlarmInfo", "DEMO0001:motion")]
        assert bob.next_push(2).params == "DEMO0001:motion"
        assert bob.next_push(0.2) is None
        df = client.messages
        data_ts = df[df.channel == "data"].ts
        push_ts = df[df.command.astype(str).str.startswith("Prush")].ts
        assert (push_ts > data_ts.min()).all() and (push_ts < data_ts.max()).all()
        pushes = [client.next_push(10), client.next_push(10)]  # waits only until they come
        assert [m.params for m in pushes] == ["DEMO0002:true", "DEMO0001:motion"]
        assert client.next_push(0.2) is None


def test_set_online_pushes_only_on_change(demo, pair: LoopbackPair) -> None:
    assert pair.server.set_online("DEMO0001", True) == 0  # already online
    assert pair.server.set_online("DEMO0001", None) == 1
    assert demo.next_push(2).params == "DEMO0001:null"
    assert pair.server.set_online("CAM00001", True) == 0  # nobody owns it
    with pytest.raises(KeyError):
        pair.server.set_online("NOPE", True)
    with pytest.raises(ValueError, match="line break"):
        pair.server.raise_alarm("DEMO0001", "two\nlines")


def test_an_exhausted_data_port_pool_gives_a_clear_error() -> None:
    with LoopbackPair(data_ports=1, data_port_timeout=0.3) as pair:
        client = pair.client
        client.login("demo", "demo")
        port = client.create_data_socket()  # reserved, never connected to
        assert port == pair.server.data_ports[0]
        with pytest.raises(NoDataPort, match="no free data port"):
            client.download()
        # the reservation expires and the port returns to the pool
        wait_until(lambda: pair.server._pool.free == 1)
        assert len(client.download()) == 3
    with LoopbackPair(data_ports=0) as pair:
        pair.client.login("demo", "demo")
        with pytest.raises(NoDataPort):
            pair.client.sync([])


def test_a_silent_main_connection_is_dropped() -> None:
    with LoopbackPair(heartbeat_timeout=0.5) as pair:
        silent = pair.client
        silent.login("demo", "demo")
        alive = pair.new_client(heartbeat_interval=0.1)
        alive.login("bob", "bob")
        wait_until(lambda: pair.server.stats["timeouts"] >= 1)  # the 0.5 s timeout has struck
        # the server counts the timeout before it closes: the client knows it already
        # (NotConnected) or learns it while it waits for the answer (ConnectionLost)
        with pytest.raises((NotConnected, ConnectionLost), match="closed the main connection"):
            silent.check_status(["DEMO0001"])
        assert alive.check_status(["DEMO0001"]) == {"DEMO0001": True}
        assert pair.server.stats["timeouts"] >= 1


def test_a_data_connection_from_another_address_is_refused(demo, pair: LoopbackPair) -> None:
    port = demo.create_data_socket()  # asked from 127.0.0.1
    address = (pair.server.host, port)
    assert refused(address, source="127.0.0.2")
    with RawConnection(address) as rightful:  # the reservation survived the intruder
        rightful.send("DownLoadCaramer", "0")
        assert rightful.receive().command == "DownloadSucess"
        assert refused(address)  # once only
    assert pair.server.stats["data_refused"] == 2


def test_unknown_and_misplaced_commands_are_ignored(demo, pair: LoopbackPair) -> None:
    demo.send_raw("SocketCommand.Vendor.Extra", "x|y")
    demo.send_raw("UploadCaramer", "CAM00001|1234|1|1")  # a data command on main
    demo.heartbeat()
    assert demo.check_status(["DEMO0001"]) == {"DEMO0001": True}
    assert pair.server.store.owners("CAM00001") == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_dialect_end_to_end(dialect: str) -> None:
    with LoopbackPair(dialect=dialect) as pair:
        client = pair.client
        assert client.login("demo", "demo").camera_count == 3
        assert [c.id for c in client.download()] == ["DEMO0001", "DEMO0002", "DEMO0003"]
        client.login("alice", "alice")
        results = client.upload([("CAM00001", "1234"), ("CAM00002", "x")])
        assert [r.reason for r in results] == [None, "ID和密码不匹配"]
        df = client.messages
        assert df.error.isna().all()
        assert pair.server.messages.command.tolist() == df.command.tolist()


def test_messages_table_has_the_contract_columns_and_masks_passwords(demo) -> None:
    demo.download()
    df = demo.messages
    for column in ("ts", "conn", "channel", "direction", "client", "server", "command",
                   "params", "error", *FIELD_NAMES):
        assert column in df.columns
    assert str(df.ts.dtype) == "datetime64[ns, UTC]"
    assert isinstance(df.index, pd.RangeIndex) and df.ts.is_monotonic_increasing
    assert set(df.channel) == {"main", "data"} and set(df.direction) == {"c2s", "s2c"}
    assert str(df.current.dtype) == "Int64" and str(df.online.dtype) == "boolean"
    login = df[df.command == "Login"].iloc[0]
    assert (login.params, login.password, login.user) == ("demo|***", "***", "demo")
    sucess = df[df.command == "DownloadSucess"]
    assert set(sucess.camera_password) == {"***"}
    assert all("|***|" in p for p in sucess.params)
    assert not df.to_csv().count("|demo")  # no password anywhere
    revealed = demo.log.dataframe(reveal_passwords=True)
    assert revealed[revealed.command == "Login"].params.iloc[0] == "demo|demo"
    assert df.client.str.match(r"127\.0\.0\.1:\d+$").all()


def test_connection_errors_are_clear() -> None:
    from camprotool.net import Client

    with pytest.raises(ConnectionRefusedError, match="connection refused"), \
            Client("127.0.0.1", 1):
        pass
    with pytest.raises(ValueError, match="bad address"):
        Client("127.0.0.1:notaport")
    assert (Client("example.invalid").port, Client("h:1").port) == (9000, 1)


def test_a_status_id_with_a_line_break_is_left_out_not_fatal(pair: LoopbackPair) -> None:
    query = encode("CheckCaramerOnlineStatus", "DEMO0001;ABXC").replace(b"ABXC", b"AB\rC")
    with RawConnection(pair.server.address) as raw:
        raw.send("Login", "demo|demo")
        assert raw.receive().command == "LoginOk"
        raw.send_bytes(query)  # "AB\rC" cannot be echoed on a line
        reply = raw.receive()
        assert (reply.command, reply.params) == ("ReturnCaramerOnlineStatus", "DEMO0001;true")
    assert pair.server.stats["handler_errors"] == 0


def test_stopping_with_a_logged_in_connection_logs_no_error(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with LoopbackPair() as pair:
        pair.client.login("demo", "demo")
        pair.server.stop()  # the client's connection is still open
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_bad_download_answer_is_reported_without_the_password(leaky_server) -> None:
    with Client(*leaky_server, heartbeat_interval=None, timeout=3) as client:
        client.login("demo", "demo")
        with pytest.raises(SyncError) as info:
            client.download()
    assert "CAM1|***" in str(info.value)
    assert "cret" not in str(info.value)


def test_encoder_errors_name_a_password_field_without_its_value() -> None:
    with pytest.raises(LocalProtocolError, match=r"Login\.password") as info:
        encode("Login", {"user": "demo", "password": "se|cret"})
    assert "cret" not in str(info.value)
    upload = {"camera_id": "CAM1", "camera_password": "p|w0rd", "current": 1, "total": 1}
    with pytest.raises(LocalProtocolError, match=r"UploadCaramer\.camera_password") as info:
        encode("UploadCaramer", upload)
    assert "w0rd" not in str(info.value)
    with pytest.raises(LocalProtocolError, match=r"'CA\|M'"):  # other fields still shown
        encode("UploadCaramer", {**upload, "camera_id": "CA|M", "camera_password": "x"})

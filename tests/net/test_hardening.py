"""Issue 12's smaller items: every upload answered, NUL passwords, masked reprs,
a budget for chatter before login."""

from __future__ import annotations

import logging
import random

import pytest

from camprotool.net import EmulatorServer
from camprotool.net.handlers import safe_params
from camprotool.net.store import Store
from camprotool.net.testing import FAST_SCRYPT_N, LoopbackPair, RawConnection
from camprotool.protocol import Decoder, encode
from camprotool.protocol.messages import MESSAGE_TYPES

UPLOAD = b"SocketCommand.CaramCommand.UploadCaramer|"
FAST = {"scrypt_n": FAST_SCRYPT_N}


def data_connection(pair: LoopbackPair) -> RawConnection:
    """A raw data connection on a port handed out to the (logged-in) pair client."""
    pair.client.login("alice", "alice")
    port = pair.client.create_data_socket()
    return RawConnection((pair.server.host, port), pair.server.dialect)


# ---------------------------------------------------------------- every upload is answered
@pytest.mark.parametrize("cid", ["A:B", "A;B", "A|B"])
def test_an_upload_with_a_separator_in_the_id_is_answered(pair: LoopbackPair, cid: str) -> None:
    with data_connection(pair) as raw:
        raw.send_bytes(UPLOAD + f"{cid}|1234|1|1\r\n".encode())
        answer = raw.receive()
        assert answer.command == "UploadFail", answer
        assert answer.error is None
        assert answer.camera_id == "" and answer.reason == "参数格式错误"
        assert (answer.synced, answer.total) == (1, 1) or cid == "A|B"  # A|B: 5 fields
        raw.send("UploadCaramer", {"camera_id": "CAM00001", "camera_password": "1234",
                                   "current": 2, "total": 2})
        assert raw.receive().command == "UploadSucess"  # the connection goes on


def test_hostile_uploads_each_get_one_answer(pair: LoopbackPair) -> None:
    """300 generated uploads with separators, line-break-free junk and odd counts:
    one encodable answer each, in order, and the connection stays open."""
    rng = random.Random(12)
    alphabet = "AB01|;:,. \t中文é€\x00\x7f-_"
    with data_connection(pair) as raw:
        for i in range(300):
            params = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
            raw.send_bytes(UPLOAD + params.encode() + b"\r\n")
            answer = raw.receive()
            assert answer.command in ("UploadFail", "UploadSucess"), (i, params, answer)
            assert answer.error is None, (i, params, answer)


def test_an_answer_that_cannot_be_written_is_sent_without_the_offending_text() -> None:
    assert safe_params("UploadFail", {"camera_id": "A:B", "reason": "x|y\r\n", "synced": 1,
                                      "total": 2}, "utf-8") == {
        "camera_id": "", "reason": "xy", "synced": 1, "total": 2}
    assert safe_params("UploadFail", {"camera_id": "CAM1", "reason": "😀 no"}, "gbk") == {
        "camera_id": "CAM1", "reason": "? no"}
    assert safe_params("UploadFail", {"camera_id": "😀"}, "gbk") == {"camera_id": ""}
    assert safe_params("ReturnCaramerOnlineStatus", "A;true\r\n|B;null", "utf-8") == \
        "A;true|B;null"
    for params in ({"camera_id": "A:B", "reason": "a|b", "synced": 1, "total": 1},
                   {"camera_id": "😀", "reason": "😀", "synced": 1, "total": 1}):
        encode("UploadFail", safe_params("UploadFail", params, "gbk"), "line:gbk")


# ---------------------------------------------------------------- NUL in passwords
def test_a_password_with_nul_is_refused() -> None:
    store = Store.from_scenario(None, **FAST)
    assert store.check_password("demo", "demo")
    for wrong in ("demo\x00", "demo\x00\x00", "\x00demo", "de\x00mo"):
        assert not store.check_password("demo", wrong), wrong


def test_hashes_of_the_first_form_still_work_and_are_upgraded() -> None:
    store = Store.from_scenario(None, **FAST)
    salt = b"s" * 16
    legacy = store._hash("demo", salt, FAST_SCRYPT_N, 8, 1, "scrypt")
    store._query("UPDATE accounts SET salt = ?, pw_hash = ?, kdf = ? WHERE user = 'demo'",
                 (salt, legacy, f"scrypt:{FAST_SCRYPT_N}:8:1"))
    assert not store.check_password("demo", "demo\x00")  # zero padding no longer lets it in
    assert not store.check_password("demo", "wrong")
    kdf = store._query("SELECT kdf FROM accounts WHERE user = 'demo'")[0][0]
    assert kdf.startswith("scrypt:")  # a failed check changes nothing
    assert store.check_password("demo", "demo")
    kdf = store._query("SELECT kdf FROM accounts WHERE user = 'demo'")[0][0]
    assert kdf == f"scrypt-lp:{FAST_SCRYPT_N}:8:1"
    assert store.check_password("demo", "demo")
    assert not store.check_password("demo", "demo\x00")


def test_the_new_form_tells_trailing_zeros_apart() -> None:
    store = Store(**FAST)
    salt = b"s" * 16
    assert store._hash("demo", salt, 1024, 8, 1, "scrypt") == \
        store._hash("demo\x00", salt, 1024, 8, 1, "scrypt")  # why the form changed
    assert store._hash("demo", salt, 1024, 8, 1) != store._hash("demo\x00", salt, 1024, 8, 1)


def test_logging_in_with_a_nul_padded_password_fails_on_the_wire(pair: LoopbackPair) -> None:
    with RawConnection(pair.server.address) as raw:
        raw.send("Login", "demo|demo\x00")
        assert raw.receive().command == "LoginError"
        raw.send("Login", "demo|demo")
        assert raw.receive().command == "LoginOk"


# ---------------------------------------------------------------- repr masks secrets
@pytest.mark.parametrize("frame", [
    b"SocketCommand.LoginCommand.Login|demo|s3cretpw\r\n",
    b"SocketCommand.NormalCommand.CreatDataSocket|demo|s3cretpw\r\n",
    b"SocketCommand.CaramCommand.UploadCaramer|CAM1|s3cretpw|1|2\r\n",
    b"SocketCommand.CaramCommand.DownloadSucess|CAM1|s3cretpw|true|1|2\r\n",
    b"SocketCommand.LoginCommand.Login|demo|s3cretpw|extra\r\n",  # malformed
])
def test_repr_masks_secret_fields(frame: bytes) -> None:
    (msg,) = Decoder().feed(frame)
    for text in (repr(msg), str(msg), f"{msg!r}", repr([msg])):
        assert "s3cretpw" not in text, text
        assert "***" in text
    assert msg.raw == frame  # the attributes keep what was on the wire
    assert "s3cretpw" in msg.params


def test_repr_still_shows_everything_else() -> None:
    msg = MESSAGE_TYPES["Login"](command="Login", params="demo|pw", user="demo", password="pw")
    assert msg.password == "pw"
    assert repr(msg) == ("Login(command='Login', params='demo|***', error=None, user='demo', "
                         "password='***')")
    (ok,) = Decoder().feed(b"SocketCommand.LoginCommand.LoginOk|3|t|1.2.3.4\r\n")
    assert "camera_count=3" in repr(ok) and "'3|t|1.2.3.4'" in repr(ok)


# ---------------------------------------------------------------- chatter before login
@pytest.mark.parametrize("junk", [("Heartbeat", ""), ("SocketCommand.X.Nope", "a|b"),
                                  ("UploadSucess", "CAM1|true|1|1"),
                                  ("CheckCaramerOnlineStatus", "DEMO0001")])
def test_too_much_before_login_closes_the_connection(caplog: pytest.LogCaptureFixture,
                                                     junk: tuple[str, str]) -> None:
    with LoopbackPair(max_before_login=3) as pair, \
            caplog.at_level(logging.WARNING, logger="camprotool.net.server"), \
            RawConnection(pair.server.address) as raw:
        for _ in range(4):
            raw.send(*junk)
        assert raw.closed_by_peer(30)
        assert pair.server.stats["closed_before_login"] == 1
    assert any("messages before logging in" in r.getMessage() and "limit 3" in r.getMessage()
               for r in caplog.records)


def test_the_budget_allows_a_slow_login_and_ends_with_it() -> None:
    with LoopbackPair(max_before_login=3) as pair, RawConnection(pair.server.address) as raw:
        for _ in range(3):
            raw.send("Heartbeat")
        raw.send("Login", "demo|wrong")  # failed logins have their own limit
        assert raw.receive().command == "LoginError"
        raw.send("Login", "demo|demo")
        assert raw.receive().command == "LoginOk"
        for _ in range(20):  # logged in: heartbeats are what it should send
            raw.send("Heartbeat")
        raw.send("CheckCaramerOnlineStatus", "DEMO0001")
        assert raw.receive().command == "ReturnCaramerOnlineStatus"
        assert pair.server.stats["closed_before_login"] == 0


def test_the_budget_can_be_turned_off_and_is_checked() -> None:
    with LoopbackPair(max_before_login=None) as pair, RawConnection(pair.server.address) as raw:
        for _ in range(50):
            raw.send("Heartbeat")
        raw.send("Login", "demo|demo")
        assert raw.receive().command == "LoginOk"
    assert EmulatorServer(**FAST).config.max_before_login == 10
    with pytest.raises(ValueError, match="max_before_login"):
        EmulatorServer(max_before_login=-1, **FAST)

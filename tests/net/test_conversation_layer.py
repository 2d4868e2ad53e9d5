"""The conversation layer under the client and the emulator: a new command, violations."""

from __future__ import annotations

import pytest

from camprotool.net import EmulatorServer, Proxy
from camprotool.net.errors import ReplyTimeout
from camprotool.net.testing import FAST_SCRYPT_N, LoopbackPair, RawConnection, wait_until
from camprotool.protocol import LocalProtocolError
from camprotool.protocol.catalogue import (
    CATALOGUE,
    Channel,
    CommandSpec,
    Direction,
    Field,
    Kind,
    Layout,
)

# The whole of a new request/answer command: two catalogue entries ...
GET_TIME = CommandSpec(16, "NormalCommand", "GetServerTime", Direction.C2S, Channel.MAIN,
                       Layout.PIPE, (Field("zone", Kind.TEXT, "a time zone name"),),
                       "Ask the server's time in a zone.",
                       answers=("ReturnServerTime", "LoginError"))
RETURN_TIME = CommandSpec(17, "NormalCommand", "ReturnServerTime", Direction.S2C, Channel.MAIN,
                          Layout.PIPE, (Field("time", Kind.TEXT, "the time"),),
                          "The server's time.")
CATALOGUE_PLUS = CATALOGUE.extended(GET_TIME, RETURN_TIME)


# ... and one server handler.
async def server_time(session, msg) -> bool:
    await session.reply("ReturnServerTime", {"time": f"12:00 {msg.zone}"})
    return True


def test_a_new_request_answer_command_is_a_catalogue_entry_and_one_handler() -> None:
    with LoopbackPair(catalogue=CATALOGUE_PLUS,
                      handlers={"GetServerTime": server_time}) as pair:
        client = pair.client
        # before the login the emulator's common gate refuses it, as any request
        refused = client.request("GetServerTime", {"zone": "UTC"})
        assert refused.command == "LoginError"
        client.login("demo", "demo")
        answer = client.request("GetServerTime", {"zone": "UTC"})
        assert (answer.command, answer.time) == ("ReturnServerTime", "12:00 UTC")
        # the rest of the protocol is untouched
        assert client.check_status(["DEMO0001"]) == {"DEMO0001": True}
        rows = client.messages
        assert list(rows["command"].astype(str))[-4:-2] == ["GetServerTime", "ReturnServerTime"]
        # only the request sent before the login broke a rule, as the rules say
        broken = pair.server.violations
        assert list(zip(broken["rule"], broken["command"], strict=True)) == [
            ("before_login", "GetServerTime")]


def test_the_protocols_catalogue_does_not_know_the_new_command() -> None:
    with LoopbackPair() as pair:
        pair.client.login("demo", "demo")
        with pytest.raises(LocalProtocolError, match="not a command of the catalogue"):
            pair.client.request("GetServerTime", {"zone": "UTC"})
        with pytest.raises(LocalProtocolError, match="sent by the server"):
            pair.client.request("LoginOk", "1||")
    with pytest.raises(ValueError, match="not in the catalogue"):
        EmulatorServer(handlers={"GetServerTime": server_time}, scrypt_n=FAST_SCRYPT_N)
    with pytest.raises(ValueError, match="which the server sends"):
        EmulatorServer(handlers={"LoginOk": server_time}, scrypt_n=FAST_SCRYPT_N)


def test_a_request_without_a_handler_is_not_answered() -> None:
    with LoopbackPair(catalogue=CATALOGUE_PLUS, client_options={"timeout": 0.3}) as pair:
        pair.client.login("demo", "demo")
        with pytest.raises(ReplyTimeout):
            pair.client.request("GetServerTime", {"zone": "UTC"})
        assert pair.client.check_status(["DEMO0002"]) == {"DEMO0002": False}


def test_the_emulator_keeps_the_violations_clients_commit(pair: LoopbackPair) -> None:
    with RawConnection(pair.server.address) as raw:
        raw.send("CheckCaramerOnlineStatus", ";".join(f"CAM{i:05d}" for i in range(1, 22)))
        assert raw.receive().command == "LoginError"
        raw.send("Login", "demo|secret-password|extra")
        assert raw.receive().command == "LoginError"
    pair.client.login("demo", "demo")  # a well-behaved client adds nothing
    table = pair.server.violations
    assert list(table.columns) == ["ts", "conn", "channel", "client", "direction", "rule",
                                   "command", "detail"]
    assert set(table["direction"]) == {"c2s"}  # the emulator keeps its clients' breaches
    rules = table.groupby("command")["rule"].apply(set).to_dict()
    assert rules["CheckCaramerOnlineStatus"] == {"before_login", "check_too_many_ids"}
    assert rules["Login"] == {"malformed_params"}
    assert not table["detail"].str.contains("secret-password").any()
    assert pair.server.stats["violations"] == len(table)


def test_the_proxy_keeps_the_violations_of_both_ends(pair: LoopbackPair) -> None:
    with Proxy(upstream=pair.server.address) as proxy:
        with RawConnection(proxy.address) as raw:
            raw.send("CheckCaramerOnlineStatus", ";".join(f"CAM{i:05d}" for i in range(1, 22)))
            assert raw.receive().command == "LoginError"
        with proxy.client() as client:  # a well-behaved conversation adds nothing
            client.login("demo", "demo")
            client.download()
        wait_until(lambda: len(proxy.violations) == 2)
        table = proxy.violations
    assert sorted(table["rule"]) == ["before_login", "check_too_many_ids"]
    assert set(table["direction"]) == {"c2s"}
    assert (table["conn"] == table["conn"].iloc[0]).all()

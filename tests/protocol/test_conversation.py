"""The sans-I/O conversation layer, driven by in-memory scripts of whole conversations."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from camprotool.protocol import LocalProtocolError, encode
from camprotool.protocol.catalogue import (
    CATALOGUE,
    Channel,
    CommandSpec,
    Direction,
    Field,
    Kind,
    Layout,
)
from camprotool.protocol.conversation import (
    Answer,
    ClientConversation,
    Closed,
    Conversation,
    MessageEvent,
    NoteEvent,
    Other,
    Peer,
    Push,
    Request,
    ServerConversation,
    StateChange,
    ViolationEvent,
)

S = 10**9


def kinds(events: list) -> list[str]:
    return [type(e).__name__ for e in events]


def messages(events: list) -> list[tuple[str, str]]:
    return [(type(e).__name__, e.command) for e in events if isinstance(e, MessageEvent)]


def test_a_whole_upload_between_client_and_server() -> None:
    client, server = ClientConversation(), ServerConversation()
    events = server.receive_data(client.send("Login", {"user": "demo", "password": "pw"}))
    assert messages(events) == [("Request", "Login")]
    assert [(e.old, e.new) for e in events if isinstance(e, StateChange)] == [
        ("awaiting_login", "login_sent")]
    events = client.receive_data(server.send("LoginOk", {"camera_count": 0,
                                                         "last_login_time": "",
                                                         "last_login_ip": ""}))
    answer = events[0]
    assert isinstance(answer, Answer) and answer.request.command == "Login"
    assert client.main.state == server.main.state == "logged_in"

    server.receive_data(client.send("CreatDataSocket", {"user": "demo", "password": "pw"}))
    events = client.receive_data(server.send("ReturnDataSocketPort", {"port": 9001}))
    assert events[0].request.message.user == "demo"

    c_data, s_data = client.open_data(9001), server.accept_data(9001)
    for i, cam in enumerate(["A", "B"], 1):
        got = s_data.receive_data(c_data.send("UploadCaramer", {
            "camera_id": cam, "camera_password": "1234", "current": i, "total": 2}))
        assert isinstance(got[0], Request)
        ans = c_data.receive_data(s_data.send("UploadSucess", {
            "camera_id": cam, "online": True, "synced": i, "total": 2}))
        assert ans[0].request.message.camera_id == cam
    assert c_data.state == "uploaded"
    closing = c_data.receive_eof()
    assert kinds(closing) == ["Closed"] and closing[-1] == Closed("uploaded")


def test_peer_mistakes_are_events_not_exceptions() -> None:
    server = ServerConversation()
    events = server.main.receive_data(encode("CreatDataSocket", "demo|pw")
                                      + b"garbage without a name\r\n"
                                      + encode("CheckCaramerOnlineStatus",
                                               ";".join(f"C{i}" for i in range(21))))
    rules = [(e.rule, e.direction) for e in events if isinstance(e, ViolationEvent)]
    assert ("before_login", "c2s") in rules and ("check_too_many_ids", "c2s") in rules
    assert all(server.main.by_peer(e) for e in events if isinstance(e, ViolationEvent))
    assert any(isinstance(e, Other) and e.message.error for e in events)
    assert any(isinstance(e, NoteEvent) for e in events)  # the unreadable frame


def test_an_unannounced_data_port_is_the_clients_violation() -> None:
    client = ClientConversation()
    client.main.receive_data(b"")  # nothing announced
    data = client.open_data(9009)
    events = data.sent(encode("DownLoadCaramer", "0"))
    assert [e.rule for e in events if isinstance(e, ViolationEvent)] == ["unannounced_data_port"]


def test_caller_mistakes_raise() -> None:
    client, server = ClientConversation(), ServerConversation()
    with pytest.raises(LocalProtocolError, match="sent by the server"):
        client.send("LoginOk", {"camera_count": 1})
    with pytest.raises(LocalProtocolError, match="data connection"):
        client.send("UploadCaramer", {"camera_id": "A"})
    with pytest.raises(LocalProtocolError, match="not a command"):
        client.send("NoSuchCommand")
    with pytest.raises(LocalProtocolError, match="answers no request"):
        server.send("LoginOk", {"camera_count": 1, "last_login_time": "", "last_login_ip": ""})
    with pytest.raises(LocalProtocolError, match="no push before the client said"):
        server.send("PrushCaramerOnlineStatus", {"camera_id": "A", "online": True})
    data = client.open_data(1)
    data.send("DownLoadCaramer", {"downloaded": 0})
    with pytest.raises(LocalProtocolError, match="not allowed on a data connection"):
        data.send("UploadCaramer", {"camera_id": "A", "camera_password": "p", "current": 1,
                                    "total": 1})
    # send_raw is for testing a peer's defences: unchecked, but still accounted for
    assert client.main.send_raw("UploadFail", "x").startswith(b"SocketCommand")
    with pytest.raises(LocalProtocolError):
        Peer(Conversation(), "middle")


def test_pushes_and_late_answers() -> None:
    client, server = ClientConversation(), ServerConversation()
    server.receive_data(client.send("Login", "demo|pw"))
    client.receive_data(server.send("LoginOk", "2||"))
    server.receive_data(client.send("CheckCaramerOnlineStatus", {"ids": ["A"]}))
    push = server.send("PrushCaramerAlarmInfo", {"camera_id": "A", "alarm_type": "motion"})
    answer = server.send("ReturnCaramerOnlineStatus", "A;true")
    events = client.receive_data(push + answer)
    assert isinstance(events[0], Push)
    assert isinstance(events[1], Answer) and events[1].request.command == \
        "CheckCaramerOnlineStatus"


def test_a_download_retry_is_served_by_one_answer() -> None:
    conv = Conversation("data")
    conv.feed("c2s", encode("DownLoadCaramer", "0") + encode("DownLoadCaramer", "0"))
    events = conv.feed("s2c", encode("DownloadSucess", "A|pw|true|1|1"))
    assert events[0].request.index == 1 and [w.index for w in events[0].retries] == [0]
    assert not [e for e in events if isinstance(e, ViolationEvent)]
    assert conv.state == "downloaded"


def test_incomplete_sync_at_close_and_heartbeat_gaps_from_the_callers_clock() -> None:
    conv = Conversation("data")
    conv.feed("c2s", encode("UploadCaramer", "A|p|1|3"))
    conv.feed("s2c", encode("UploadSucess", "A|true|1|3"))
    events = conv.close()
    assert [e.rule for e in events if isinstance(e, ViolationEvent)] == ["incomplete_sync"]
    assert conv.close() == []
    with pytest.raises(LocalProtocolError):
        conv.feed_message("c2s", events[0].message)

    main = Conversation("main", heartbeat_timeout_ns=30 * S)
    main.feed("c2s", encode("Heartbeat"), ts_ns=0)
    late = main.feed("c2s", encode("Heartbeat"), ts_ns=31 * S)
    assert [e.rule for e in late if isinstance(e, ViolationEvent)] == ["heartbeat_gap"]


_SCRIPT = b"".join([
    encode("Login", "demo|pw"), b"\xff\xfe junk\r\n", encode("Heartbeat"),
    encode("CreatDataSocket", "demo|pw"), encode("CheckCaramerOnlineStatus", "A;B"),
    encode("Unknown.Thing", "x|y"), b"SocketCommand.LoginCommand.Login|half",
])


@given(st.lists(st.integers(0, len(_SCRIPT)), max_size=12))
def test_events_do_not_depend_on_how_bytes_are_cut(cuts: list[int]) -> None:
    whole = Conversation()
    expected = whole.feed("c2s", _SCRIPT) + whole.close()
    conv = Conversation()
    got = []
    bounds = [0, *sorted(cuts), len(_SCRIPT)]
    for a, b in itertools.pairwise(bounds):
        got += conv.feed("c2s", _SCRIPT[a:b])
    got += conv.close()
    assert got == expected


@given(st.binary(max_size=300), st.binary(max_size=300), st.sampled_from(["main", "data"]))
def test_hostile_bytes_never_raise(c2s: bytes, s2c: bytes, channel: str) -> None:
    conv = Conversation(channel)
    events = conv.feed("c2s", c2s) + conv.feed("s2c", s2c) + conv.close()
    assert isinstance(events[-1], Closed)
    for e in events:
        if isinstance(e, ViolationEvent):
            assert e.rule in {"before_login", "check_too_many_ids", "upload_sequence",
                              "download_sequence", "unannounced_data_port",
                              "incomplete_sync", "malformed_params", "heartbeat_gap"}


def test_an_extended_catalogue_types_and_pairs_a_new_command() -> None:
    """A new request/answer command is one catalogue entry away from being conversed."""
    ask = CommandSpec(16, "NormalCommand", "GetServerTime", Direction.C2S, Channel.MAIN,
                      Layout.PIPE, (Field("zone", Kind.TEXT),), "Ask the server's time.",
                      answers=("ReturnServerTime",))
    tell = CommandSpec(17, "NormalCommand", "ReturnServerTime", Direction.S2C, Channel.MAIN,
                       Layout.PIPE, (Field("time", Kind.TEXT),), "The server's time.")
    cat = CATALOGUE.extended(ask, tell)
    client, server = ClientConversation(catalogue=cat), ServerConversation(catalogue=cat)
    server.receive_data(client.send("Login", "demo|pw"))
    client.receive_data(server.send("LoginOk", "0||"))
    got = server.receive_data(client.send("GetServerTime", {"zone": "UTC"}))
    assert isinstance(got[0], Request) and got[0].message.zone == "UTC"
    events = client.receive_data(server.send("ReturnServerTime", {"time": "12:00"}))
    assert isinstance(events[0], Answer) and events[0].message.time == "12:00"
    assert events[0].request.message.zone == "UTC"
    assert not [e for e in events if isinstance(e, ViolationEvent)]
    with pytest.raises(ValueError, match="twice"):
        cat.extended(ask)


def test_a_flood_of_unanswered_requests_is_bounded() -> None:
    from camprotool.protocol.pairing import MAX_WAITING

    conv = Conversation("data")
    flood = b"".join(encode("UploadCaramer", f"C{i}|p|{i}|99999")
                     for i in range(1, MAX_WAITING + 50))
    conv.feed("c2s", flood)
    assert len(conv.pairing) == MAX_WAITING
    assert len(conv.session.pending) == MAX_WAITING
    events = conv.feed("s2c", encode("UploadSucess", "C50|true|50|99999"))
    assert events[0].request.message.camera_id == "C50"  # the oldest still waiting


def test_the_linking_rule_names_the_announcement() -> None:
    """One linking rule: which ReturnDataSocketPort announced a data connection (replay
    links by it; data_port_announced is whether there is one)."""
    from camprotool.protocol.rules import Announcement, announcing, data_port_announced

    anns = [Announcement(9001, 0, 10, 1), Announcement(9002, 1, 20, 1),
            Announcement(9001, 2, 30, 2), Announcement(None, 3, 40, 1)]
    assert announcing(9001, 35, anns).message == 2  # the latest naming the port
    assert announcing(9002, 25, anns).message == 1
    assert announcing(9002, 45, anns) is None  # an empty answer on main 1 came after
    assert announcing(9001, 45, anns).message == 2  # main 2's is still usable
    assert announcing(9001, 5, anns) is None  # not announced yet
    for port, ts in [(9001, 35), (9002, 45), (9003, 50)]:
        assert data_port_announced(port, ts, anns) == (announcing(port, ts, anns) is not None)


_MAIN_REQUESTS = {"Login": {"user": "demo", "password": "pw"},
                  "CreatDataSocket": {"user": "demo", "password": "pw"},
                  "CheckCaramerOnlineStatus": {"ids": ["A", "B"]}}
_MAIN_ANSWERS = {"LoginOk": "1||", "LoginError": "no", "ReturnDataSocketPort": "9001",
                 "ReturnCaramerOnlineStatus": "A;true|B;null"}


@given(st.lists(st.tuples(st.sampled_from(sorted(_MAIN_REQUESTS)), st.integers(0, 3),
                          st.booleans()), max_size=25))
def test_both_ends_agree_on_which_request_each_answer_answers(script) -> None:
    """A client pipelining requests and a server answering some of them in order (with
    any answer the catalogue allows, or none): the client pairs every answer with the
    request the server answered."""
    client, server = ClientConversation(), ServerConversation()
    answered: list[int] = []  # the server's request indexes, in the order it answered
    paired: list[int] = []
    for name, pick, answer_now in script:
        for e in server.receive_data(client.send(name, _MAIN_REQUESTS[name])):
            assert not isinstance(e, ViolationEvent) or e.rule == "before_login"
        if not answer_now or not server.main.pairing.waiting:
            continue
        oldest = server.main.pairing.waiting[0]
        answers = CATALOGUE.answers[oldest.command]
        reply = answers[pick % len(answers)]
        answered.append(oldest.index)
        events = client.receive_data(server.send(reply, _MAIN_ANSWERS[reply]))
        paired += [e.request.index for e in events if isinstance(e, Answer)]
    assert paired == answered

"""The one request/answer pairing rule: oldest it can answer, retries, dropped, nothing waiting."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from camprotool.protocol.catalogue import ANSWERS, BY_NAME, CATALOGUE
from camprotool.protocol.messages import build_message
from camprotool.protocol.pairing import Pairing


def m(name: str, params: str = ""):
    return build_message(BY_NAME[name], name, params)


def test_the_catalogue_lists_each_requests_answers() -> None:
    assert ANSWERS == {
        "Login": ("LoginOk", "LoginError"),
        "CreatDataSocket": ("ReturnDataSocketPort", "LoginError"),
        "CheckCaramerOnlineStatus": ("ReturnCaramerOnlineStatus", "LoginError"),
        "UploadCaramer": ("UploadSucess", "UploadFail"),
        "DownLoadCaramer": ("DownloadSucess", "DownloadFail"),
    }
    assert CATALOGUE.answered_by["LoginError"] == ("Login", "CreatDataSocket",
                                                   "CheckCaramerOnlineStatus")
    assert [s.name for s in CATALOGUE.commands if s.retries] == ["DownLoadCaramer"]


def test_an_answer_takes_the_oldest_request_it_can_answer() -> None:
    p = Pairing()
    assert p.request(0, m("UploadCaramer", "A|1|1|2"))
    assert p.request(1, m("UploadCaramer", "B|1|2|2"))
    assert not p.request(2, m("Heartbeat"))  # expects no answer
    got = p.answer(m("UploadSucess", "A|true|1|2"))
    assert got.request.index == 0 and got.retries == () and got.dropped == ()
    assert p.answer(m("UploadFail", "B|x|2|2")).request.index == 1
    assert p.answer(m("UploadFail", "B|x|2|2")).request is None  # nothing waiting
    assert len(p) == 0


def test_a_later_answer_settles_older_requests_as_never_answered() -> None:
    p = Pairing()
    p.request(0, m("CheckCaramerOnlineStatus", "A"))
    p.request(1, m("Login", "demo|demo"))
    got = p.answer(m("LoginOk", "1||"))
    assert got.request.index == 1
    assert [w.index for w in got.dropped] == [0]
    assert p.waiting == []


def test_login_error_answers_any_main_request_in_order() -> None:
    p = Pairing()
    p.request(0, m("CreatDataSocket", "demo|demo"))
    p.request(1, m("Login", "demo|demo"))
    assert p.can_answer("LoginError") and not p.can_answer("UploadSucess")
    assert p.expects() == ("ReturnDataSocketPort", "LoginError")
    assert p.answer(m("LoginError", "no")).request.index == 0
    assert p.answer(m("LoginOk", "1||")).request.index == 1


def test_a_retried_download_request_is_served_by_one_answer() -> None:
    p = Pairing()
    p.request(0, m("DownLoadCaramer", "0"))
    p.request(1, m("DownLoadCaramer", "0"))
    got = p.answer(m("DownloadSucess", "A|pw|true|1|2"))
    assert got.request.index == 1 and [w.index for w in got.retries] == [0]
    assert len(p) == 0


_REQUESTS = sorted(ANSWERS)
_ANSWERS = sorted({a for answers in ANSWERS.values() for a in answers})


@given(st.lists(st.one_of(st.tuples(st.just("q"), st.sampled_from(_REQUESTS)),
                          st.tuples(st.just("a"), st.sampled_from(_ANSWERS))), max_size=40))
def test_every_request_is_settled_once(script: list[tuple[str, str]]) -> None:
    """Each request ends answered, a retry, dropped or still waiting: exactly one of them;
    an answer is only ever paired with a request its catalogue entry lists."""
    p = Pairing()
    settled: list[int] = []
    sent = []
    for i, (what, name) in enumerate(script):
        msg = build_message(BY_NAME[name], name, "")
        if what == "q":
            p.request(i, msg)
            sent.append(i)
            continue
        got = p.answer(msg)
        if got.request is not None:
            assert name in ANSWERS[got.request.command]
            assert all(w.command == got.request.command for w in got.retries)
            assert all(w.index < got.request.index for w in got.dropped + got.retries)
            settled += [got.request.index, *(w.index for w in got.retries + got.dropped)]
    settled += [w.index for w in p.waiting]
    assert sorted(settled) == sent

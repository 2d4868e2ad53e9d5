"""The data-connection linking rule (camprotool.protocol.linking): its cases, and the
vectorised ``link`` held to a plain loop over ``announcing``, the definition."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from camprotool.protocol.linking import NONE, Announcement, announcing, link

# main 1 announces 9001 and 9002, main 2 announces 9001, then main 1 has no free port
ANNS = [Announcement(9001, 0, 10, 1), Announcement(9002, 1, 20, 1),
        Announcement(9001, 2, 30, 2), Announcement(None, 3, 40, 1)]


def test_the_latest_usable_announcement_naming_the_port():
    assert announcing(9001, 25, ANNS) == ANNS[0]
    assert announcing(9001, 35, ANNS) == ANNS[2]  # the latest naming the port
    assert announcing(9002, 25, ANNS) == ANNS[1]
    assert announcing(9003, 25, ANNS) is None
    assert announcing(9001, 5, ANNS) is None  # not announced yet
    assert announcing(9001, 10, ANNS) == ANNS[0]  # at the announcement's time: announced


def test_an_older_port_stays_usable_until_an_empty_answer_on_its_main():
    assert announcing(9001, 25, ANNS[:2]) == ANNS[0]  # 9002 came after, 9001 still usable
    assert announcing(9002, 45, ANNS) is None  # main 1's empty answer cleared it
    assert announcing(9001, 45, ANNS) == ANNS[2]  # main 2's is still usable
    assert announcing(9001, 45, [ANNS[0], ANNS[3]]) is None


def test_equal_times_follow_the_message_order():
    tied = [Announcement(9001, 5, 10, 1), Announcement(None, 6, 10, 1)]
    assert announcing(9001, 10, tied) is None  # the empty answer came after it
    assert announcing(9001, 10, tied[::-1]) is None  # whatever order they are passed in
    two = [Announcement(9001, 8, 10, 2), Announcement(9001, 7, 10, 1)]
    assert announcing(9001, 10, two).conn == 2


def _arrays(anns: list[Announcement], scopes: list[int]) -> tuple[np.ndarray, ...]:
    return (np.array(scopes, np.int64), np.array([-1 if a.port is None else a.port
                                                  for a in anns], np.int64),
            np.array([a.ts_ns for a in anns], np.int64),
            np.array([a.conn for a in anns], np.int64))


def test_link_keeps_to_the_scope_and_answers_positions():
    anns = [*ANNS, Announcement(9001, 4, 50, 3)]
    scopes = [0, 0, 0, 0, 1]  # main 3 announced in another scope
    got = link(np.array([0, 0, 1, 1, 0]), np.array([9001, 9002, 9001, 9001, 9003]),
               np.array([45, 25, 45, 55, 25]), *_arrays(anns, scopes))
    assert got.tolist() == [2, 1, NONE, 4, NONE]


def test_link_with_nothing_to_link():
    empty = np.zeros(0, np.int64)
    assert link(empty, empty, empty, *_arrays(ANNS, [0] * 4)).tolist() == []
    one = np.array([0])
    assert link(one, np.array([9001]), np.array([99]), empty, empty, empty,
                empty).tolist() == [NONE]
    only_empty = [Announcement(None, 0, 1, 1)]
    assert link(one, np.array([9001]), np.array([99]), *_arrays(only_empty, [0])).tolist() \
        == [NONE]


# Few ports, mains, scopes and times, so that ties, clearings and reuse are common.
_ann = st.tuples(st.integers(0, 2), st.one_of(st.none(), st.integers(9001, 9003)),
                 st.integers(0, 30), st.integers(0, 3))  # scope, port, time, main
_data = st.tuples(st.integers(0, 2), st.integers(9000, 9003), st.integers(0, 35))


@settings(max_examples=400, deadline=None)
@given(st.lists(_ann, max_size=40), st.lists(_data, max_size=25))
def test_link_equals_a_loop_over_announcing(anns, data):
    """Whatever the announcements (ties, empty answers, several mains and scopes), each
    data connection gets the announcement ``announcing`` names within its scope."""
    # the arrays' order is the message order; a main belongs to one scope
    records = [Announcement(port, i, ts, main * 3 + scope)
               for i, (scope, port, ts, main) in enumerate(anns)]
    scopes = [scope for scope, *_ in anns]
    expected = []
    for scope, port, opened in data:
        mine = [a for a, s in zip(records, scopes, strict=True) if s == scope]
        found = announcing(port, opened, mine)
        expected.append(NONE if found is None else found.message)
    got = link(np.array([d[0] for d in data], np.int64), np.array([d[1] for d in data]),
               np.array([d[2] for d in data]), *_arrays(records, scopes))
    assert got.tolist() == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1000), st.booleans(), st.integers(0, 5)),
                min_size=1, max_size=300), st.lists(st.integers(0, 1100), max_size=60))
def test_link_equals_the_loop_on_long_runs_of_cleared_announcements(anns, opens):
    """One port announced and cleared over and over by a few mains: the latest naming
    the port is often cleared, so ``link`` searches back through older ones."""
    records = [Announcement(9001 if named else None, i, ts, main)
               for i, (ts, named, main) in enumerate(anns)]
    expected = []
    for opened in opens:
        found = announcing(9001, opened, records)
        expected.append(NONE if found is None else found.message)
    zeros = np.zeros(len(opens), np.int64)
    got = link(zeros, zeros + 9001, np.array(opens, np.int64),
               *_arrays(records, [0] * len(records)))
    assert got.tolist() == expected

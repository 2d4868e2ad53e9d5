"""The handover of pass two: jobs made on a worker thread, done on the caller's."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camprotool.capture.fast.handover import Handover


def _producer(n: int, made: list[int], fail_at: int | None = None):
    def produce(hand) -> None:
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"broke at {i}")
            made.append(i)
            hand(i)
    return produce


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 40), st.integers(1, 3))
def test_every_job_reaches_the_caller_in_order_on_its_thread(n, depth):
    made: list[int] = []
    threads = set()
    got = []
    with Handover(_producer(n, made), depth=depth) as handover:
        for job in handover.jobs():
            threads.add(threading.current_thread())
            got.append(job)
    assert got == list(range(n)) == made
    assert threads <= {threading.current_thread()}


def test_an_error_of_the_producer_comes_after_the_jobs_handed_before_it():
    got = []
    with pytest.raises(ValueError, match="broke at 3"), \
            Handover(_producer(10, [], fail_at=3)) as handover:
        for job in handover.jobs():
            got.append(job)
    assert got == [0, 1, 2]


def test_depth_one_lets_the_producer_run_one_job_ahead_at_most():
    """With depth 1 the producer waits at ``hand`` until the caller is done with the
    job before: it has made at most the job after the one the caller holds."""
    made: list[int] = []
    ahead = []
    with Handover(_producer(8, made), depth=1) as handover:
        for job in handover.jobs():
            # the producer may be making the next job, or waiting to hand it: never more
            ahead.append(len(made) - 1 - job)
    assert max(ahead) <= 1
    assert made == list(range(8))


def test_a_caller_that_stops_early_stops_the_producer():
    made: list[int] = []
    with Handover(_producer(10_000, made), depth=1) as handover:
        for job in handover.jobs():
            assert job == 0
            break
    assert not handover._thread.is_alive()
    assert len(made) <= 2


def test_an_error_of_the_caller_stops_the_producer_and_propagates():
    made: list[int] = []
    with pytest.raises(KeyboardInterrupt), Handover(_producer(10_000, made)) as handover:
        for job in handover.jobs():
            if job == 2:
                raise KeyboardInterrupt
    assert not handover._thread.is_alive()
    assert len(made) <= 4


def test_a_caller_busy_before_taking_any_job_still_stops_the_producer():
    """The caller may fail before it asks for a job (on work of its own)."""
    made: list[int] = []
    with pytest.raises(RuntimeError), Handover(_producer(10_000, made)) as handover:
        raise RuntimeError("the caller's own work failed")
    assert not handover._thread.is_alive()
    assert len(made) <= 2


def test_a_producer_that_checks_stops_between_jobs():
    """A producer with no job for a while stops at its next ``check``."""
    rounds = []

    def produce(hand) -> None:
        hand("first")
        while True:
            rounds.append(1)
            handover.check()

    handover = Handover(produce)
    with handover:
        for job in handover.jobs():
            assert job == "first"
            break
    assert not handover._thread.is_alive()


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth"):
        Handover(_producer(1, []), depth=0)

"""The brute-force brake: growing delays, a temporary lockout, reset by a success.

The pure counters run on a fake clock; the wire tests run the emulator with
the delays scaled down (the defaults' minutes are checked on the fake clock).
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from camprotool.net.brake import BrakeConfig, LoginBrake
from camprotool.net.testing import LoopbackPair, RawConnection

ATTACKER = "127.0.0.2"  # the guesser; the real user logs in from 127.0.0.1


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def guess(brake: LoginBrake, clock: FakeClock, user: str, host: str, ok: bool = False
          ) -> float | None:
    """One attempt that sleeps out its turn on the fake clock: its wait, or None if refused."""
    admission = brake.admit(user, host)
    brake.release(admission)
    if admission.refused is not None:
        return None
    clock.now += admission.wait
    (brake.succeeded if ok else brake.failed)(user, host)
    return admission.wait


def test_the_defaults_delay_after_five_failures_and_lock_out_at_twenty() -> None:
    clock = FakeClock()
    brake = LoginBrake(BrakeConfig(), clock=clock)
    waits = [guess(brake, clock, "demo", ATTACKER) for _ in range(40)]
    assert waits[:6] == [0.0] * 6  # five free failures; the 6th attempt comes right after
    assert waits[6:11] == [1.0, 2.0, 4.0, 8.0, 16.0]  # doubling ...
    assert waits[11:20] == [16.0] * 9  # ... up to max_delay
    assert waits[20:] == [None] * 20  # locked out after the 20th failure
    assert brake.stats["brake_lockouts"] == 2  # the address and the account
    spent = clock.now - 1000.0
    assert spent == 1 + 2 + 4 + 8 + 16 * 10  # 191 s for 20 guesses, then 900 s of nothing
    clock.now += 901.0  # the lockout ends; the counter is remembered until forget_after
    assert guess(brake, clock, "demo", ATTACKER) == 0.0  # one guess per lockout ...
    assert brake.admit("demo", ATTACKER).refused is not None  # ... then locked again
    clock.now += 901.0 + 901.0  # forgotten forget_after after the lockout's end
    assert brake.failures(host=ATTACKER) == 0
    assert guess(brake, clock, "demo", ATTACKER) == 0.0


def test_an_address_without_failures_is_not_braked_by_the_account() -> None:
    clock = FakeClock()
    brake = LoginBrake(BrakeConfig(), clock=clock)
    for _ in range(25):
        guess(brake, clock, "demo", ATTACKER)
    assert brake.admit("demo", ATTACKER).refused
    assert brake.admit("alice", ATTACKER).refused  # the address is locked for every account
    assert brake.admit("demo", "127.0.0.1") == brake.admit("demo", "127.0.0.1")
    assert brake.admit("demo", "127.0.0.1").wait == 0.0
    # a distributed guesser: each fresh address gets one free guess on the account, then
    # meets the account's lockout
    assert guess(brake, clock, "demo", "10.0.0.9") == 0.0
    assert brake.admit("demo", "10.0.0.9").refused and "account 'demo'" in (
        brake.admit("demo", "10.0.0.9").refused or "")


def test_a_success_resets_its_address_and_account_not_the_attackers() -> None:
    clock = FakeClock()
    brake = LoginBrake(BrakeConfig(), clock=clock)
    for _ in range(8):
        guess(brake, clock, "demo", ATTACKER)
    guess(brake, clock, "demo", "127.0.0.1")  # the real user mistypes once
    assert brake.failures(user="demo") == 9
    # having failed on demo, the real user now waits the account's turn too, then gets in
    assert 0 < (guess(brake, clock, "demo", "127.0.0.1", ok=True) or 0) <= 16.0
    assert brake.failures(user="demo") == 0
    assert brake.failures(host="127.0.0.1") == 0
    assert brake.failures(host=ATTACKER) == 8  # still braked by its own counter
    assert guess(brake, clock, "demo", ATTACKER) == 0.0  # its turn came while demo waited
    assert brake.admit("demo", ATTACKER).wait == 8.0  # after its 9th failure


def test_parallel_attempts_wait_in_line_and_a_long_line_is_refused() -> None:
    """A hundred connections at once do not get a hundred free guesses."""
    clock = FakeClock()
    brake = LoginBrake(BrakeConfig(), clock=clock)
    for _ in range(5):
        guess(brake, clock, "demo", ATTACKER)
    admissions = [brake.admit("demo", ATTACKER) for _ in range(100)]
    waits = [a.wait for a in admissions if a.refused is None]
    assert waits == sorted(waits) and len(waits) < 10
    assert sum(a.refused is not None for a in admissions) > 90


def test_counters_are_forgotten_and_bounded() -> None:
    clock = FakeClock()
    brake = LoginBrake(BrakeConfig(max_tracked=50, forget_after=60), clock=clock)
    for i in range(500):
        guess(brake, clock, f"user{i}", f"10.0.{i // 250}.{i % 250}")
    assert len(brake._addresses) <= 50 and len(brake._accounts) <= 50
    assert brake.failures(host="10.0.1.249") == 1
    clock.now += 61
    assert brake.failures(host="10.0.1.249") == 0


def test_off_and_bad_configs() -> None:
    brake = LoginBrake.from_option(False)
    assert not brake.enabled and brake.admit("demo", ATTACKER).wait == 0
    brake.failed("demo", ATTACKER)
    assert brake.failures(host=ATTACKER) == 0
    assert LoginBrake.from_option(True).config == BrakeConfig()
    for bad in ({"base_delay": -1}, {"lockout_after": 0}, {"max_delay": 0.5},
                {"lockout": float("inf")}):
        with pytest.raises(ValueError, match="brake"):
            BrakeConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="brake"):
        LoginBrake.from_option("yes")  # type: ignore[arg-type]


# ------------------------------------------------------------------ on the wire

#: The defaults' shape with seconds made tenths of a second short, so a test runs fast.
FAST = BrakeConfig(free_failures=5, base_delay=0.01, max_delay=0.16, lockout_after=20,
                   lockout=60.0)


def attempt(address: tuple[str, int], user: str, password: str, source: str) -> str:
    """One login on a fresh connection: LoginOk, or LoginError's reason."""
    with RawConnection(address, source=source) as raw:
        raw.send("Login", f"{user}|{password}")
        answer = raw.receive(10)
    return "LoginOk" if answer.command == "LoginOk" else answer.reason  # type: ignore[attr-defined]


def test_forty_wrong_passwords_meet_the_brake_while_the_right_one_logs_in_elsewhere(
        caplog: pytest.LogCaptureFixture) -> None:
    """The issue's must-show: 40 wrong passwords on demo from 127.0.0.2, one connection
    each (the handler's per-connection close does not help against that); the attempts
    slow down, then the address is locked out; meanwhile demo/demo from 127.0.0.1 logs in,
    several times, and the lockout is logged."""
    from camprotool.net.handlers import REASONS

    with LoopbackPair(brake=FAST) as pair, \
            caplog.at_level(logging.INFO, logger="camprotool.net.brake"):
        address = pair.server.address
        answers: list[str] = []
        waits: list[float] = []
        done = threading.Event()

        def attack() -> None:
            try:
                for _ in range(40):
                    started = time.monotonic()
                    answers.append(attempt(address, "demo", "wrong", ATTACKER))
                    waits.append(time.monotonic() - started)
            finally:
                done.set()

        attacker = threading.Thread(target=attack)
        attacker.start()
        logins = 0
        while not done.is_set() or logins < 3:
            client = pair.new_client()
            assert client.login("demo", "demo").camera_count == 3
            client.close()
            logins += 1
        attacker.join(30)
        brake = pair.server.brake
        assert answers[:20] == [REASONS["login"]] * 20
        assert answers[20:] == [REASONS["too_many_failures"]] * 20  # refused unchecked
        assert brake.failures(host=ATTACKER) == 20
        assert brake.stats["brake_delayed"] >= 10  # 14 unless a reconnect outlasts a turn
        assert brake.stats["brake_refused"] == 20
        # the delayed attempts took their turns (the 11th-20th wait max_delay each)
        assert sum(waits[10:20]) >= 10 * FAST.max_delay * 0.9
        assert attempt(address, "demo", "demo", ATTACKER) == REASONS["too_many_failures"]
        assert attempt(address, "demo", "demo", "127.0.0.1") == "LoginOk"
    text = [r.getMessage() for r in caplog.records]
    assert f"address {ATTACKER} locked out for 60 s after 20 failed logins" in text
    assert any(f"address {ATTACKER} locked out for another" in t for t in text)


def test_the_brake_can_be_turned_off() -> None:
    with LoopbackPair(brake=False) as pair:
        address = pair.server.address
        for _ in range(25):
            assert attempt(address, "alice", "wrong", ATTACKER) != "LoginOk"
        assert attempt(address, "alice", "alice", ATTACKER) == "LoginOk"

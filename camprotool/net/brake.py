"""The brute-force brake: failed logins slow down, then lock out, the address and account.

Scrypt alone limits a guesser to what the CPU can hash (46 guesses a second
on the 2-core test machine, issue 12), and reconnecting after the handler's
five-failures-per-connection close costs nothing. So the emulator keeps two
kinds of failure counters that outlive connections:

* **per address** (every account tried from one IP): after ``free_failures``
  failures each further attempt from that address waits its turn, the turns
  ``base_delay`` apart, doubling per failure up to ``max_delay``; after
  ``lockout_after`` failures the address is locked out for ``lockout``
  seconds (every login from it is refused without checking the password);
* **per account** (one user name from every address): the same delays and
  lockout, but applied only to the addresses that have failed on that
  account. An address with no failure on it is not slowed or locked by the
  account's counter, so the right password from another address still works
  during an attack; a distributed guesser gets one free guess per fresh
  address, then joins the braked ones.

A successful login resets the counters of its address and of its account
(the attacker's own address keeps its counter). Counters are forgotten
``forget_after`` seconds after their last failure or the end of their
lockout, whichever is later (so after a lockout, one more failure locks the
address out again: one guess per lockout in a sustained attack), and at most
``max_tracked`` addresses and accounts are remembered (the least recently
failed go first), so a flood of user names cannot grow memory without bound.

Turns are *reserved*, not slept out per connection: a guesser opening a
hundred connections at once waits a hundred turns, not one. An attempt whose
turn is further away than ``max_delay`` is refused at once (and not
counted: no password was checked) instead of holding a connection.

Pure bookkeeping with an injectable clock (:class:`LoginBrake.admit`,
``failed``, ``succeeded``); :meth:`LoginBrake.login` is the asyncio wrapper
the emulator's handler calls.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from camprotool.net.addresses import canonical_host

log = logging.getLogger("camprotool.net.brake")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BrakeConfig:
    """The brake's figures; the defaults are what ``camprotool serve`` uses."""

    free_failures: int = 5  # failures with no delay (typos); the 6th waits base_delay
    base_delay: float = 1.0  # seconds between turns after the free failures
    max_delay: float = 16.0  # the delay stops doubling here; turns further away: refused
    lockout_after: int = 20  # failures that lock the address (or account) out
    lockout: float = 900.0  # seconds a lockout lasts
    forget_after: float = 900.0  # seconds after the last failure a counter is forgotten
    max_tracked: int = 10_000  # addresses (and accounts) remembered at most

    def __post_init__(self) -> None:
        if self.free_failures < 0 or self.lockout_after < 1 or self.max_tracked < 1:
            raise ValueError("brake: free_failures must be >= 0, lockout_after and "
                             "max_tracked >= 1")
        for name in ("base_delay", "max_delay", "lockout", "forget_after"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"brake: {name} must be a finite number >= 0, got {value}")
        if self.max_delay < self.base_delay:
            raise ValueError("brake: max_delay must be >= base_delay")

    def delay(self, failures: int) -> float:
        """Seconds between turns once ``failures`` failures are counted."""
        over = failures - self.free_failures
        if over <= 0:
            return 0.0
        return min(self.max_delay, self.base_delay * 2.0 ** min(over - 1, 62))


@dataclass(slots=True)
class _Counter:
    failures: int = 0
    last: float = 0.0  # clock of the last failure
    turn: float = 0.0  # clock of the next free turn
    locked_until: float = 0.0
    pending: int = 0  # attempts admitted and not yet judged (counted as failures for turns)
    failed_from: set[str] = field(default_factory=set)  # accounts: addresses that failed


@dataclass(frozen=True, slots=True)
class Admission:
    """What :meth:`LoginBrake.admit` decided: wait ``wait`` s, or ``refused`` (why)."""

    wait: float = 0.0
    refused: str | None = None
    charged: tuple[_Counter, ...] = field(default=(), repr=False)  # pending on these


class LoginBrake:
    """Failure counters per address and per account; see the module docstring.

    ``config=None`` turns the brake off (every attempt admitted at once).
    ``stats`` counts ``brake_delayed``, ``brake_refused`` and ``brake_lockouts``.
    """

    def __init__(self, config: BrakeConfig | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._addresses: OrderedDict[str, _Counter] = OrderedDict()
        self._accounts: OrderedDict[str, _Counter] = OrderedDict()
        self.stats: dict[str, int] = {"brake_delayed": 0, "brake_refused": 0,
                                      "brake_lockouts": 0}

    @classmethod
    def from_option(cls, option: LoginBrake | BrakeConfig | bool | None) -> LoginBrake:
        """``True``/``None``: the defaults; ``False``: off; a config or a brake as given."""
        if isinstance(option, LoginBrake):
            return option
        if isinstance(option, BrakeConfig):
            return cls(option)
        if option is None or option is True:
            return cls(BrakeConfig())
        if option is False:
            return cls(None)
        raise TypeError(f"brake: expected a BrakeConfig, a LoginBrake or a bool, got {option!r}")

    @property
    def enabled(self) -> bool:
        return self.config is not None

    def __repr__(self) -> str:
        return (f"<LoginBrake {'on' if self.enabled else 'off'}: "
                f"{len(self._addresses)} addresses, {len(self._accounts)} accounts tracked>")

    # ------------------------------------------------------------ bookkeeping
    def _get(self, table: OrderedDict[str, _Counter], key: str, now: float) -> _Counter | None:
        counter = table.get(key)
        if counter is None:
            return None
        cfg = self.config
        assert cfg is not None
        if (counter.locked_until <= now and not counter.pending
                and now - max(counter.last, counter.locked_until) > cfg.forget_after):
            # forgotten: the last failure (and the lockout's end) is long past. Counted from
            # the lockout's end, so a guesser back right after a lockout is locked out again
            # at its next failure instead of starting afresh with free guesses
            del table[key]
            return None
        return counter

    def _touch(self, table: OrderedDict[str, _Counter], key: str, now: float) -> _Counter:
        counter = self._get(table, key, now)
        if counter is None:
            counter = table[key] = _Counter()
        table.move_to_end(key)
        assert self.config is not None
        while len(table) > self.config.max_tracked:
            table.popitem(last=False)
        return counter

    def failures(self, user: str | None = None, host: str | None = None) -> int:
        """Failures counted now for ``host`` (or for the account ``user``)."""
        if self.config is None:
            return 0
        now = self.clock()
        if host is not None:
            counter = self._get(self._addresses, canonical_host(host), now)
        else:
            counter = self._get(self._accounts, user or "", now)
        return counter.failures if counter else 0

    def admit(self, user: str, host: str) -> Admission:
        """May ``host`` try a password for ``user`` now, after a wait, or not at all?

        Reserves the attempt's turn: call :meth:`failed` or :meth:`succeeded`
        with its outcome once the password is checked.
        """
        cfg = self.config
        if cfg is None:
            return Admission()
        now = self.clock()
        host = canonical_host(host)
        counters = []
        address = self._get(self._addresses, host, now)
        if address is not None:
            if address.locked_until > now:
                return self._refuse(f"address {host} locked out for another "
                                    f"{address.locked_until - now:.0f} s")
            counters.append(address)
        account = self._get(self._accounts, user, now)
        if account is not None and host in account.failed_from:
            if account.locked_until > now:
                return self._refuse(f"account {user!r} locked out for {host} for another "
                                    f"{account.locked_until - now:.0f} s")
            counters.append(account)
        turn = max([now, *(c.turn for c in counters)])
        wait = turn - now
        if wait > cfg.max_delay:
            return self._refuse(f"{host} is {wait:.0f} s of turns behind on {user!r}")
        for c in counters:
            c.pending += 1  # an attempt in flight spaces the next one as a failure would
            c.turn = turn + cfg.delay(c.failures + c.pending)
        if wait > 0:
            self.stats["brake_delayed"] += 1
        return Admission(wait=wait, charged=tuple(counters))

    @staticmethod
    def release(admission: Admission) -> None:
        """The admitted attempt is over (judged, or abandoned): no longer pending."""
        for c in admission.charged:
            c.pending = max(0, c.pending - 1)

    def _refuse(self, why: str) -> Admission:
        self.stats["brake_refused"] += 1
        log.info("login refused unchecked: %s", why)
        return Admission(refused=why)

    def failed(self, user: str, host: str) -> None:
        """A password check failed: count it for ``host`` and for ``user``."""
        cfg = self.config
        if cfg is None:
            return
        now = self.clock()
        host = canonical_host(host)
        address = self._touch(self._addresses, host, now)
        account = self._touch(self._accounts, user, now)
        if host not in account.failed_from and len(account.failed_from) >= cfg.max_tracked:
            account.failed_from.pop()  # bounded; a dropped address gets one more free guess
        account.failed_from.add(host)
        for counter, what in ((address, f"address {host}"), (account, f"account {user!r}")):
            counter.failures += 1
            counter.last = now
            counter.turn = max(counter.turn, now + cfg.delay(counter.failures))
            if counter.failures == cfg.lockout_after or (
                    counter.failures > cfg.lockout_after and counter.locked_until <= now):
                counter.locked_until = now + cfg.lockout
                self.stats["brake_lockouts"] += 1
                log.warning("%s locked out for %g s after %d failed logins%s", what,
                            cfg.lockout, counter.failures,
                            "" if counter is address else " (for the addresses that failed)")
            elif counter.failures > cfg.free_failures:
                log.info("%s: %d failed logins, next attempt %g s after the last", what,
                         counter.failures, cfg.delay(counter.failures))

    def succeeded(self, user: str, host: str) -> None:
        """A login succeeded: forget the failures of its address and of its account."""
        if self.config is None:
            return
        host = canonical_host(host)
        had = [what for table, key, what in ((self._addresses, host, f"address {host}"),
                                             (self._accounts, user, f"account {user!r}"))
               if table.pop(key, None) is not None]
        if had:
            log.info("login of %r from %s: failure counters of %s reset", user, host,
                     " and ".join(had))

    # ------------------------------------------------------------ asyncio
    async def login(self, check: Callable[[str, str, str], Awaitable[T | None]], user: str,
                    password: str, host: str) -> tuple[T | None, bool]:
        """Wait for the turn, run ``check(user, password, host)``, count its outcome.

        Returns ``(result, locked)``: ``locked`` True means the attempt was
        refused without checking (lockout, or too many turns queued), and
        ``result`` is then None.
        """
        admission = self.admit(user, host)
        if admission.refused is not None:
            return None, True
        try:
            if admission.wait > 0:
                await asyncio.sleep(admission.wait)
            result = await check(user, password, host)
        finally:
            self.release(admission)
        if result is None:
            self.failed(user, host)
        else:
            self.succeeded(user, host)
        return result, False

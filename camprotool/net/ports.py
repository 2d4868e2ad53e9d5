"""The data-port pool: which port is free, promised to whom, or in use.

The source says a data connection needs no authentication: the server knows
who it is for only because it handed the port out. That is all the protocol
allows, so the pool makes the most of it. A reservation is

* **single-use**: the first connection from the announced address consumes
  it; a second connection to the port while the first runs is refused;
* **short-lived**: it expires unused after ``data_port_timeout`` (10 s);
* **address-bound**: a connection from another IP address is refused and
  leaves the reservation for its owner;
* **drawn at random** (from the operating system's randomness) among the
  least recently used half of the free ports, so a peer cannot predict the
  next port from the last one, and a latecomer to a port that just expired
  or closed is refused rather than let into someone else's transfer.

A connection to a port nobody reserved (before the announcement, or after
the reservation was used or expired) is refused too. Every refusal is logged
with its reason and counted in :attr:`DataPortPool.refusals`.

What no server of this protocol can do is tell two programs on the same
address apart: a process on the client's host (or behind its NAT) that
connects to the announced port before the real client takes the transfer.
docs/security.md says so; ``Capture.violations`` flags the traces it leaves
(rule ``data_port_hijack``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from camprotool.net.addresses import same_host

log = logging.getLogger("camprotool.net.server")

DEFAULT_DATA_PORT_COUNT = 20


@dataclass(slots=True)
class Reservation:
    port: int
    host: str  # the IP address allowed to connect
    user: str  # the account the transfer belongs to
    main_conn: int  # log id of the main connection that asked
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class DataPortPool:
    """Pure bookkeeping; the server owns the listeners and the clock."""

    def __init__(self, ports: Iterable[int], rng: random.Random | None = None) -> None:
        self.ports = tuple(ports)
        self._free: deque[int] = deque(self.ports)  # least recently used first
        self._reserved: dict[int, Reservation] = {}
        self._busy: dict[int, Reservation] = {}
        self._rng = rng if rng is not None else random.SystemRandom()
        #: refused connections by reason: ``unreserved``, ``wrong_address``, ``in_use``
        self.refusals: Counter[str] = Counter()

    @property
    def free(self) -> int:
        return len(self._free)

    def reserve(self, host: str, user: str, main_conn: int) -> Reservation | None:
        """A random port among the least recently used half of the free ones, or None."""
        if not self._free:
            return None
        pick = self._rng.randrange((len(self._free) + 1) // 2)
        port = self._free[pick]
        del self._free[pick]
        res = Reservation(port, host, user, main_conn)
        self._reserved[port] = res
        return res

    def claim(self, port: int, peer_host: str) -> Reservation | None:
        """A connection arrived on ``port`` from ``peer_host``: its reservation, or None
        (refused: the reason is logged and counted)."""
        res = self._reserved.get(port)
        if res is None or not same_host(res.host, peer_host):
            self._refused(port, peer_host, res)
            return None
        del self._reserved[port]
        if res.timer is not None:
            res.timer.cancel()
        self._busy[port] = res
        return res

    def _refused(self, port: int, peer_host: str, reserved: Reservation | None) -> None:
        busy = self._busy.get(port)
        if reserved is not None:
            reason, why = "wrong_address", (f"reserved for {reserved.user} from "
                                            f"{reserved.host}, not {peer_host}")
        elif busy is not None:
            reason, why = "in_use", (f"already in use by the data connection of {busy.user} "
                                     f"(main conn {busy.main_conn}, from {busy.host}): a "
                                     f"second connection to one announcement")
        else:
            reason, why = "unreserved", "not handed out (no announcement, or it was used "\
                "or expired)"
        self.refusals[reason] += 1
        log.warning("data port %d: connection from %s refused: %s", port, peer_host, why)

    def expire(self, port: int) -> bool:
        """The reservation timed out unused: the port is free again."""
        res = self._reserved.pop(port, None)
        if res is None:
            return False
        self._free.append(port)
        return True

    def release(self, port: int) -> None:
        """The data connection on ``port`` ended."""
        if self._busy.pop(port, None) is not None:
            self._free.append(port)

    def cancel_all(self) -> None:
        for res in self._reserved.values():
            if res.timer is not None:
                res.timer.cancel()


def parse_data_ports(spec: str | int | Iterable[int] | None) -> list[int] | int:
    """``9001-9020`` / ``9001,9005`` / ``auto`` / ``auto:N`` / an int N / ports -> ports or count.

    A count means "pick that many free ports" (port 0 for each). Raises
    ``ValueError`` with a one-line reason.
    """
    if spec is None:
        return DEFAULT_DATA_PORT_COUNT
    if isinstance(spec, bool):
        raise ValueError(f"bad data ports {spec!r}")
    if isinstance(spec, int):
        if spec < 0:
            raise ValueError(f"data port count must be >= 0, got {spec}")
        return spec
    if not isinstance(spec, str):
        ports = [int(p) for p in spec]
        _check_ports(ports, str(spec))
        return ports
    text = spec.strip().lower()
    if text == "auto":
        return DEFAULT_DATA_PORT_COUNT
    if text.startswith("auto:"):
        count = text[5:]
        if not count.isdigit():
            raise ValueError(f"bad data ports {spec!r}: expected auto:COUNT")
        return int(count)
    ports = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ValueError(f"bad data ports {spec!r}: expected A-B, A,B,C, auto or auto:N")
        first, last = int(lo), int(hi) if dash else int(lo)
        if last < first:
            raise ValueError(f"bad data ports {spec!r}: {first}-{last} is an empty range")
        ports.extend(range(first, last + 1))
    _check_ports(ports, spec)
    return ports


def _check_ports(ports: list[int], spec: str) -> None:
    bad = [p for p in ports if not 1 <= p <= 65535]
    if bad:
        raise ValueError(f"bad data ports {spec!r}: {bad[0]} is outside 1-65535")
    if len(set(ports)) != len(ports):
        raise ValueError(f"bad data ports {spec!r}: a port is listed twice")


def describe_ports(ports: Iterable[int]) -> str:
    """``[9001, ..., 9020]`` -> ``9001-9020``; non-contiguous lists as ``a,b-c``."""
    ports = sorted(ports)
    if not ports:
        return "none"
    runs, start, prev = [], ports[0], ports[0]
    for p in ports[1:]:
        if p != prev + 1:
            runs.append((start, prev))
            start = p
        prev = p
    runs.append((start, prev))
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in runs)

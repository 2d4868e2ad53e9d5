"""Generate a fleet's captures: several sensors' ring buffers over a few days.

Why: the questions camprotool's datasets and Dask tables answer (which cameras
alarm most, which server refuses uploads, who hits the two-accounts limit)
need many captures from many sensors, and real ones cannot be shared. This
makes them in seconds, reproducibly (one seed), with the project's own pieces:
the capture writer's scripted TCP (``camprotool.capture.writer``), the codec,
and the emulator's store, reason texts and event mix (``camprotool.net``).

Each sensor watches one server and writes a dumpcap ring buffer
(``sensor-a_00001_20261130000000.pcapng`` ...), so phones that stay logged in
across a file boundary give connections that cross files. Visits follow a
day's rhythm (busy evenings, quiet nights)::

    from camprotool.fleet import FleetSpec, generate_fleet
    fleet = generate_fleet("captures-dir", FleetSpec(sensors=3, days=2, clients=300))
    fleet.paths      # every ring-buffer file, sensor by sensor

or ``python -m camprotool.fleet DIR --sensors 3 --days 2 --clients 300``.
"""

from __future__ import annotations

import os
import random
import string
import time
from dataclasses import dataclass, field
from pathlib import Path

from camprotool.fleet.ring import PacketHeap, RingWriter
from camprotool.fleet.sessions import S, Visit, VisitPlan
from camprotool.fleet.world import Server, build_server
from camprotool.protocol.dialect import Dialect

__all__ = ["Fleet", "FleetSpec", "generate_fleet"]

DAY_NS = 86_400 * S
#: relative share of visits starting in each UTC hour (people check their cameras
#: in the morning and the evening)
HOURLY = (2, 1, 1, 1, 1, 2, 4, 7, 8, 6, 5, 5, 6, 5, 5, 5, 6, 7, 9, 10, 10, 9, 6, 4)


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """What to generate.

    ``clients``: phones (accounts) over all sensors; ``visits_per_day``: logins per
    phone and day on average; ``stay_minutes``: mean time a phone stays logged in
    (exponential, at most four hours). Ring buffer: a new file every
    ``ring_seconds`` (dumpcap ``-b duration``) and/or at ``ring_bytes``
    (``-b filesize``). Every third server speaks ``lp32le:gbk``, the others ``line``.
    """

    sensors: int = 3
    days: int = 2
    clients: int = 300
    visits_per_day: float = 2.0
    stay_minutes: float = 20.0
    start: str = "2026-11-30"
    ring_seconds: float | None = 6 * 3600
    ring_bytes: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("sensors", "days", "clients"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {value!r} is not a positive whole number")
        if self.clients < self.sensors:
            raise ValueError(f"clients: {self.clients} is fewer than one per sensor")
        if self.visits_per_day <= 0 or self.stay_minutes <= 0:
            raise ValueError("visits_per_day and stay_minutes must be positive")
        if self.ring_seconds is None and self.ring_bytes is None:
            raise ValueError("give ring_seconds, ring_bytes or both")
        if self.sensors > 26 * 10:
            raise ValueError("at most 260 sensors")


@dataclass(slots=True)
class Fleet:
    """What :func:`generate_fleet` wrote."""

    folder: Path
    files: dict[str, list[Path]] = field(default_factory=dict)  # sensor -> its files
    messages: int = 0
    packets: int = 0
    visits: int = 0
    seconds: float = 0.0

    @property
    def paths(self) -> list[Path]:
        return [p for files in self.files.values() for p in files]

    @property
    def bytes(self) -> int:
        return sum(p.stat().st_size for p in self.paths)

    def __repr__(self) -> str:
        return (f"<Fleet {str(self.folder)!r}: {len(self.files)} sensors, {len(self.paths)} "
                f"files, {self.visits:,} visits, {self.messages:,} messages>")


def _start_ns(day: str) -> int:
    return int(time.mktime(time.strptime(day, "%Y-%m-%d")) - time.timezone) * S


def plan_visits(server: Server, spec: FleetSpec, t0: int, rng: random.Random) -> list[VisitPlan]:
    """Every visit of the server's phones over the capture, sorted by start."""
    plans = []
    hours = range(24)
    for index in range(len(server.phones)):
        for day in range(spec.days):
            # Poisson number of visits this day (a sum of exponential gaps inside one day)
            t = rng.expovariate(spec.visits_per_day)
            while t < 1.0:
                hour = rng.choices(hours, HOURLY)[0]
                start = t0 + day * DAY_NS + hour * 3600 * S + rng.randrange(3600 * S)
                stay = min(rng.expovariate(1 / (spec.stay_minutes * 60)), 4 * 3600)
                plans.append(VisitPlan(start, int(stay * S), index))
                t += rng.expovariate(spec.visits_per_day)
    plans.sort(key=lambda p: (p.start_ns, p.phone))
    return plans


def generate_sensor(folder: Path, index: int, spec: FleetSpec) -> tuple[list[Path], int, int,
                                                                         int]:
    """One sensor's ring buffer; returns (files, messages, packets, visits)."""
    rng = random.Random(f"{spec.seed}/{index}")
    per_sensor = spec.clients // spec.sensors + (index < spec.clients % spec.sensors)
    dialect = "lp32le:gbk" if index % 3 == 2 else "line"
    server = build_server(index, per_sensor, rng, dialect)
    t0 = _start_ns(spec.start)
    end = t0 + spec.days * DAY_NS
    plans = plan_visits(server, spec, t0, rng)
    heap = PacketHeap()
    visit = Visit(server, heap, Dialect.parse(dialect), rng, end)
    prefix = f"sensor-{string.ascii_lowercase[index % 26]}{index // 26 or ''}"
    with RingWriter(folder, prefix, seconds=spec.ring_seconds,
                    max_bytes=spec.ring_bytes) as ring:
        for i, plan in enumerate(plans):
            visit.run(plan)
            until = plans[i + 1].start_ns if i + 1 < len(plans) else end
            for ts, frame in heap.pop_before(min(until, end)):
                ring.write(ts, frame)
        # what is still held was sent after the sensor stopped: never captured
    server.store.close()
    return ring.paths, visit.messages, ring.packets, len(plans)


def generate_fleet(folder: str | os.PathLike[str], spec: FleetSpec | None = None) -> Fleet:
    """Write the fleet's ring-buffer files into ``folder`` (made if needed)."""
    spec = spec or FleetSpec()
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(out)
    started = time.perf_counter()
    for index in range(spec.sensors):
        paths, messages, packets, visits = generate_sensor(out, index, spec)
        if paths:
            fleet.files[paths[0].name.rsplit("_", 2)[0]] = paths
        fleet.messages += messages
        fleet.packets += packets
        fleet.visits += visits
    fleet.seconds = time.perf_counter() - started
    return fleet

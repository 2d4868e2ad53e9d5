"""Optional life for the emulator: cameras go on and offline and raise alarms.

Events arrive as a Poisson process of ``rate`` events per second (exponential
gaps from a seeded ``random.Random``, so a run is reproducible). Each event
picks a camera that some account owns (pushes to nobody would be invisible)
and either flips its status (3 in 4 events: unknown -> online, online <->
offline) or raises an alarm of one of :data:`ALARM_TYPES`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from camprotool.net.server import EmulatorServer

log = logging.getLogger("camprotool.net.server")

ALARM_TYPES = ("motion", "sound", "tamper", "io")
STATUS_SHARE = 0.75


def next_event(server: EmulatorServer, rng: random.Random) -> tuple[str, str, object] | None:
    """One simulated event ``(kind, camera_id, value)`` applied to ``server``, or None."""
    owned = sorted({cid for _, cid in server.store.bindings()})
    if not owned:
        return None
    cid = rng.choice(owned)
    if rng.random() < STATUS_SHARE:
        cam = server.store.camera(cid)
        status = True if cam is None or cam.online is None else not cam.online
        server._set_online(cid, status)
        return ("status", cid, status)
    alarm = rng.choice(ALARM_TYPES)
    server._push(cid, "PrushCaramerAlarmInfo", {"camera_id": cid, "alarm_type": alarm})
    return ("alarm", cid, alarm)


async def simulate(server: EmulatorServer, rate: float, rng: random.Random) -> None:
    """Run until cancelled; a failing event is logged and the simulation goes on."""
    while True:
        await asyncio.sleep(rng.expovariate(rate))
        try:
            event = next_event(server, rng)
        except Exception:
            log.exception("simulation event failed")
            continue
        if event is not None:
            log.debug("simulated %s %s %s", *event)

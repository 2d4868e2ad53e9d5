"""The optional simulation: seeded, visible to owners, harmless to the rest."""

from __future__ import annotations

import random

from camprotool.net import EmulatorServer
from camprotool.net.simulation import next_event
from camprotool.net.testing import LoopbackPair

FAST = {"scrypt_n": 1 << 10}


def test_events_are_reproducible_with_a_seed() -> None:
    def run(seed: int) -> list:
        srv = EmulatorServer(**FAST)  # not started: events only touch the store
        rng = random.Random(seed)
        return [next_event(srv, rng) for _ in range(20)]

    assert run(7) == run(7)
    assert run(7) != run(8)
    kinds = {e[0] for e in run(7)}
    assert kinds == {"status", "alarm"}


def test_a_simulating_server_pushes_to_owners() -> None:
    with LoopbackPair(simulate=200.0, seed=1) as pair:
        pair.client.login("demo", "demo")
        pushes = [pair.client.next_push(2) for _ in range(5)]
        assert {m.command for m in pushes} <= {"PrushCaramerOnlineStatus",
                                               "PrushCaramerAlarmInfo"}
        assert all(m.camera_id.startswith("DEMO") and m.error is None for m in pushes)

"""One phone's visit to its server, scripted packet by packet.

A visit follows PROTOCOL.md's flows: log in (now and then a mistyped password
first), ask the status of up to 20 cameras, sync over a data connection when
there is something to sync (the first visit uploads the phone's cameras; later
ones sometimes download, sometimes upload again), then stay logged in with a
heartbeat every 30 s while the server pushes status changes and alarms of the
account's cameras, and leave. A few transfers are cut short and a few main
connections end with a reset. Every answer comes from the server's store
(``camprotool.fleet.world``), with the emulator's reason texts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from camprotool.capture.writer import TcpConversation
from camprotool.fleet.ring import PacketHeap
from camprotool.fleet.world import DATA_PORTS, MAIN_PORT, Phone, Server
from camprotool.net.handlers import REASONS
from camprotool.net.simulation import ALARM_TYPES, STATUS_SHARE
from camprotool.net.store import BindOutcome
from camprotool.protocol.catalogue import MAX_STATUS_IDS
from camprotool.protocol.codec import encode
from camprotool.protocol.dialect import Dialect

if TYPE_CHECKING:
    from camprotool.capture.writer import _CaptureWriter

MS = 1_000_000
S = 1_000 * MS
HEARTBEAT_S = 30
#: status/alarm events per hour for a camera of weight 1
EVENTS_PER_HOUR = 2.0
_TEXT = {True: "true", False: "false", None: "null"}


@dataclass(frozen=True, slots=True)
class VisitPlan:
    """When a visit starts and how long its phone stays logged in."""

    start_ns: int
    stay_ns: int
    phone: int  # index in server.phones


def _when(ts_ns: int) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts_ns // S))


class Visit:
    """Writes one visit's packets to ``heap``; ``messages`` counts what it sent before
    ``end`` (when the sensor stops: later packets are never captured)."""

    def __init__(self, server: Server, heap: PacketHeap, dialect: Dialect,
                 rng: random.Random, end: int) -> None:
        self.server = server
        self.end = end
        self.heap = heap
        # TcpConversation writes through a capture writer's two methods, which the heap has
        self.writer = cast("_CaptureWriter", heap)
        self.dialect = dialect
        self.rng = rng
        self.messages = 0
        self.now = 0
        self._bare: dict[str, bytes] = {}

    def send(self, conn: TcpConversation, direction: str, command: str, params: str = "",
             gap_ms: float = 2) -> None:
        self.now += int(gap_ms * MS)
        if params:
            data = encode(command, params, self.dialect)
        elif command in self._bare:  # heartbeats are most of the traffic: encoded once
            data = self._bare[command]
        else:
            data = self._bare[command] = encode(command, "", self.dialect)
        conn.send(direction, data, self.now)
        self.messages += self.now < self.end

    def run(self, plan: VisitPlan) -> None:
        srv, rng = self.server, self.rng
        phone = srv.phones[plan.phone]
        self.now = plan.start_ns
        main = TcpConversation(self.writer, (phone.ip, phone.port()), (srv.ip, MAIN_PORT),
                               self.now, isn_client=rng.getrandbits(32),
                               isn_server=rng.getrandbits(32))
        if rng.random() < 0.04:
            self.send(main, "c2s", "Login", f"{phone.user}|{phone.password}x", 5)
            self.send(main, "s2c", "LoginError", REASONS["login"], 30)
            self.now += rng.randint(2, 9) * S  # typing it again
        self.send(main, "c2s", "Login", f"{phone.user}|{phone.password}", 5)
        info = srv.store.login(phone.user, phone.password, phone.ip, when=_when(self.now))
        if info is None:  # the world made this account with this password
            raise RuntimeError(f"the store refused {phone.user}'s own password")
        self.send(main, "s2c", "LoginOk",
                  f"{info.camera_count}|{info.last_login_time}|{info.last_login_ip}", 30)
        if phone.cameras:
            ids = [cid for cid, _ in phone.cameras[:MAX_STATUS_IDS]]
            self.send(main, "c2s", "CheckCaramerOnlineStatus", ";".join(ids), 40)
            statuses = srv.store.statuses(ids)
            self.send(main, "s2c", "ReturnCaramerOnlineStatus",
                      "|".join(f"{cid};{_TEXT[statuses[cid]]}" for cid in ids), 20)
        first = phone.sessions == 0
        phone.sessions += 1
        roll = rng.random()
        if phone.cameras and (first or roll < 0.05):
            self.sync(main, phone, upload=True)
        elif not phone.cameras or roll < 0.2:
            self.sync(main, phone, upload=False)
        self.idle(main, phone, plan.start_ns + plan.stay_ns)

    def sync(self, main: TcpConversation, phone: Phone, *, upload: bool) -> None:
        srv, rng = self.server, self.rng
        self.send(main, "c2s", "CreatDataSocket", f"{phone.user}|{phone.password}", 300)
        port = rng.choice(DATA_PORTS)
        self.send(main, "s2c", "ReturnDataSocketPort", str(port), 5)
        data = TcpConversation(self.writer, (phone.ip, phone.port()), (srv.ip, port),
                               self.now + 2 * MS, isn_client=rng.getrandbits(32),
                               isn_server=rng.getrandbits(32))
        self.now += 3 * MS
        cut = rng.random() < 0.03
        if upload:
            total = len(phone.cameras)
            for i, (cid, pw) in enumerate(phone.cameras, 1):
                if cut and i > total // 2:
                    break
                self.send(data, "c2s", "UploadCaramer", f"{cid}|{pw}|{i}|{total}",
                          rng.uniform(5, 40))
                outcome, cam = srv.store.bind(phone.user, cid, pw)
                if outcome.ok:
                    online = cam.online if cam is not None else None
                    self.send(data, "s2c", "UploadSucess", f"{cid}|{_TEXT[online]}|{i}|{total}",
                              rng.uniform(2, 15))
                else:
                    reason = REASONS["full" if outcome is BindOutcome.FULL else "mismatch"]
                    self.send(data, "s2c", "UploadFail", f"{cid}|{reason}|{i}|{total}",
                              rng.uniform(2, 15))
        else:
            cams = srv.store.cameras_of(phone.user)
            if not cams:
                self.send(data, "c2s", "DownLoadCaramer", "0", 10)
                self.send(data, "s2c", "DownloadFail", REASONS["no_cameras"], 5)
            for i, cam in enumerate(cams):
                if cut and i >= len(cams) // 2:
                    break
                self.send(data, "c2s", "DownLoadCaramer", str(i), rng.uniform(5, 40))
                self.send(data, "s2c", "DownloadSucess",
                          f"{cam.id}|{cam.password}|{_TEXT[cam.online]}|{i + 1}|{len(cams)}",
                          rng.uniform(2, 15))
        data.close(self.now + 5 * MS, how="rst" if cut else "fin")
        self.now += 10 * MS

    def idle(self, main: TcpConversation, phone: Phone, until: int) -> None:
        """Heartbeats every 30 s and the server's pushes until ``until``, then leave."""
        srv, rng = self.server, self.rng
        owned = [c.id for c in srv.store.cameras_of(phone.user)]
        weights = [srv.weight[cid] for cid in owned]
        rate = EVENTS_PER_HOUR * sum(weights) / 3600 / S  # events per ns
        events: list[tuple[int, str]] = []
        t = self.now
        while owned and rate > 0:
            t += int(rng.expovariate(rate))
            if t >= until:
                break
            events.append((t, rng.choices(owned, weights)[0]))
        beat = self.now + HEARTBEAT_S * S
        pending = iter(events)
        event = next(pending, None)
        while True:
            if event is not None and event[0] < beat:
                ts, cid = event
                event = next(pending, None)
                self.now = ts
                if rng.random() < STATUS_SHARE:
                    cam = srv.store.camera(cid)
                    online = not (cam is not None and cam.online)
                    srv.store.set_online(cid, online)
                    self.send(main, "s2c", "PrushCaramerOnlineStatus",
                              f"{cid}:{_TEXT[online]}", 0)
                else:
                    alarm = rng.choices(ALARM_TYPES, weights=(6, 2, 1, 1))[0]
                    self.send(main, "s2c", "PrushCaramerAlarmInfo", f"{cid}:{alarm}", 0)
                continue
            if beat >= until:
                break
            self.now = beat
            self.send(main, "c2s", "Heartbeat", "", 0)
            beat += int(rng.uniform(HEARTBEAT_S - 2, HEARTBEAT_S) * S)
        main.close(max(self.now, until) + 10 * MS, how="rst" if rng.random() < 0.01 else "fin")

"""The connection table: who is client and server, main or data channel, and the main<->data links.

Decisions, in order of evidence:

* **Roles.** A seen handshake decides (the reassembler reports it). Without
  one, the commands decide: the side that sends client commands (Login,
  UploadCaramer, Heartbeat, ...) is the client; on a tie the first sender
  stays the client.
* **Channel.** Known commands vote: Login/status/push commands mean ``main``,
  upload/download commands mean ``data``. A connection with no vote is
  ``data`` when its server port was announced by a ``ReturnDataSocketPort``
  to that client address, else ``unknown``.
* **Links.** A data connection belongs to the main connection whose
  ``ReturnDataSocketPort`` announced its server port to the same client IP
  most recently before the data connection's first packet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from camprotool.capture.packets import format_endpoint
from camprotool.capture.streams import ConnState
from camprotool.protocol.catalogue import COMMANDS, Channel, Direction

_CLIENT_COMMANDS = [c.name for c in COMMANDS if c.direction is Direction.C2S]
_MAIN_COMMANDS = [c.name for c in COMMANDS if c.channel is Channel.MAIN]
_DATA_COMMANDS = [c.name for c in COMMANDS if c.channel is Channel.DATA]


@dataclass
class ConnectionRecord:
    """One row of ``Capture.connections``."""

    conn: int
    client_ip: bytes
    client_port: int
    server_ip: bytes
    server_port: int
    swapped: bool  # roles reversed from the reassembler's first guess
    handshake_seen: bool
    start_ns: int
    end_ns: int
    close_reason: str | None
    dialect: str | None
    bytes_c2s: int
    bytes_s2c: int
    lost_c2s: int
    lost_s2c: int
    messages: int = 0
    channel: str = "unknown"
    main_conn: int | None = None
    announced: bool | None = None  # data channel only; None: no main connection to judge by
    table: pa.Table | None = field(default=None, repr=False)

    @property
    def client(self) -> str:
        return format_endpoint(self.client_ip, self.client_port)

    @property
    def server(self) -> str:
        return format_endpoint(self.server_ip, self.server_port)


def _count(table: pa.Table, direction: str, commands: list[str]) -> int:
    mask = pc.and_(pc.equal(table["direction"], direction),
                   pc.is_in(table["command"], pa.array(commands, pa.large_string())))
    return int(pc.sum(mask).as_py() or 0)


def build_connections(states: dict[int, ConnState]) -> list[ConnectionRecord]:
    """One record per decoded connection, roles and channels settled, data linked to main."""
    records = []
    for conn_id, state in sorted(states.items()):
        if state.status != "decoding":
            continue
        info = state.info
        tables = []
        for direction, d in state.dirs.items():
            for t in d.tables:
                tables.append(t.append_column(
                    "direction", pa.array(np.full(t.num_rows, direction), pa.string())))
        table = pa.concat_tables(tables) if tables else None
        swapped = False
        if table is not None and not info.syn_seen:
            swapped = _count(table, "s2c", _CLIENT_COMMANDS) > _count(
                table, "c2s", _CLIENT_COMMANDS)
        c2s, s2c = state.dirs["c2s"], state.dirs["s2c"]
        if swapped:
            c2s, s2c = s2c, c2s
            flipped = pc.if_else(pc.equal(table["direction"], "c2s"), "s2c", "c2s")
            table = table.set_column(table.schema.get_field_index("direction"), "direction",
                                     flipped)
        rec = ConnectionRecord(
            conn=conn_id,
            client_ip=info.b_ip if swapped else info.a_ip,
            client_port=info.b_port if swapped else info.a_port,
            server_ip=info.a_ip if swapped else info.b_ip,
            server_port=info.a_port if swapped else info.b_port,
            swapped=swapped,
            handshake_seen=info.syn_seen,
            start_ns=info.first_ts_ns,
            end_ns=state.close_ts if state.close_ts is not None else state.last_ts,
            close_reason=state.close_reason,
            dialect=_dialect_name(state),
            bytes_c2s=c2s.bytes,
            bytes_s2c=s2c.bytes,
            lost_c2s=c2s.lost,
            lost_s2c=s2c.lost,
            messages=table.num_rows if table is not None else 0,
            table=table,
        )
        if table is not None:
            main = _count(table, "c2s", _MAIN_COMMANDS) + _count(table, "s2c", _MAIN_COMMANDS)
            data = _count(table, "c2s", _DATA_COMMANDS) + _count(table, "s2c", _DATA_COMMANDS)
            if main or data:
                rec.channel = "main" if main >= data else "data"
        records.append(rec)
    _link(records)
    return records


def _dialect_name(state: ConnState) -> str | None:
    """The connection's dialect, GBK when frames had to be re-read as GBK."""
    if state.dialect is None:
        return None
    fell_back = [d.fallback for d in state.dirs.values() if d.fell_back]
    return str(fell_back[0]) if fell_back else str(state.dialect)


def _announcements(records: list[ConnectionRecord]) -> list[tuple[int, int | None, bytes, int]]:
    """(ts_ns, port or None, client ip, main conn) for every ReturnDataSocketPort, by time."""
    found = []
    for rec in records:
        if rec.table is None or rec.channel != "main":
            continue
        t = rec.table
        mask = pc.and_(pc.equal(t["command"], "ReturnDataSocketPort"), pc.is_null(t["error"]))
        picked = t.filter(mask)
        for ts, port in zip(picked["ts_ns"].to_pylist(), picked["port"].to_pylist(), strict=True):
            found.append((ts, port, rec.client_ip, rec.conn))
    found.sort(key=lambda a: a[0])
    return found


def _link(records: list[ConnectionRecord]) -> None:
    announcements = _announcements(records)
    clients_with_main = {r.client_ip for r in records if r.channel == "main"}
    for rec in records:
        if rec.channel == "main":
            continue
        latest = None
        for ts, port, client_ip, main in announcements:
            if ts > rec.start_ns:
                break
            if client_ip == rec.client_ip:
                latest = (port, main)
        if latest is not None and latest[0] == rec.server_port:
            rec.main_conn = latest[1]
            rec.announced = True
            if rec.channel == "unknown":
                rec.channel = "data"
        elif rec.channel == "data":
            # A main connection of this client was seen: the port should have been announced.
            rec.announced = False if rec.client_ip in clients_with_main else None

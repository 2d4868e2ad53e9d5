"""The connection table: who is client and server, main or data channel, and the main<->data links.

Decisions, in order of evidence:

* **Roles.** A seen handshake decides (the reassembler reports it). Without
  one, the commands decide: the side that sends client commands (Login,
  UploadCaramer, Heartbeat, ...) is the client, and a side that sends server
  commands (answers, pushes) votes for the other side being the client; on a
  tie the first sender stays the client.
* **Channel.** Known commands vote: Login/status/push commands mean ``main``,
  upload/download commands mean ``data``. A connection with no vote is
  ``data`` when its server port was announced by a ``ReturnDataSocketPort``
  to that client address, else ``unknown``. A connection that closed without
  carrying a byte is listed only when its port was announced (an empty data
  connection).
* **Links.** A data connection belongs to the main connection whose
  ``ReturnDataSocketPort`` it used, by the one linking rule
  (:mod:`camprotool.protocol.linking`): the latest announcement of its server
  port to the same client IP by the same server IP, at or before its first
  packet, that no empty answer on its main connection cleared since.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from camprotool.capture.packets import format_endpoint
from camprotool.capture.streams import ConnState
from camprotool.protocol import linking
from camprotool.protocol.bulk import SCHEMA
from camprotool.protocol.catalogue import COMMANDS, Channel, Direction
from camprotool.protocol.dialect import Dialect

_CLIENT_COMMANDS = [c.name for c in COMMANDS if c.direction is Direction.C2S]
_SERVER_COMMANDS = [c.name for c in COMMANDS if c.direction is not Direction.C2S]
_MAIN_COMMANDS = [c.name for c in COMMANDS if c.channel is Channel.MAIN]
_DATA_COMMANDS = [c.name for c in COMMANDS if c.channel is Channel.DATA]


@dataclass(slots=True)
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
    first_gap_s2c: int | None = None  # server->client stream offset of the first lost bytes

    @property
    def client(self) -> str:
        return format_endpoint(self.client_ip, self.client_port)

    @property
    def server(self) -> str:
        return format_endpoint(self.server_ip, self.server_port)


@dataclass(slots=True)
class SettledBatch:
    """Connections the fast engine decoded column-wise, as columns: what each one's
    ``ConnState`` would hold after its close (their rows are in the engine's
    ``bulk_tables``). A handshake was seen (the engine's in-order flows start with
    one), nothing was lost, and ``a`` is the client."""

    conn: np.ndarray  # provisional ids until renumbered
    a_ip: list[bytes]
    a_port: list[int]
    b_ip: list[bytes]
    b_port: list[int]
    start_ns: list[int]
    end_ns: list[int]
    close_reason: list[str | None]  # None: still open (a chunked reader's view)
    dialect: list[str]
    bytes_c2s: list[int]
    bytes_s2c: list[int]


_EXTRA = [("conn", pa.int64()), ("direction", pa.string()), ("ts_ns", pa.int64()),
          ("frame", pa.int64())]
MESSAGES_SCHEMA = pa.schema(list(SCHEMA) + [pa.field(n, t) for n, t in _EXTRA])


_MAX_CHUNKS = 64  # the most chunks a merged column keeps unjoined


def _merged(states: list[tuple[int, ConnState]], extra: list[pa.Table] | None = None,
            ) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Every decoded row of every connection in one table, plus per-row conn and direction.

    Built once, column-wise: a capture may hold many thousands of short
    connections, and per-connection Arrow calls would cost more than decoding.
    ``extra``: rows already merged for many connections (the fast engine's), each
    table with ``conn`` and ``dir`` (0 c2s, 1 s2c) columns.
    """
    tables, conns, dirs = [], [], []
    for t in extra or ():
        conns.append(t["conn"].to_numpy())
        dirs.append(t["dir"].to_numpy().astype(np.int8))
        tables.append(t.drop_columns(["conn", "dir"]))
    for conn_id, state in states:
        for code, d in enumerate(state.dirs.values()):
            if not d.tables:
                continue
            for t in d.tables:
                tables.append(t)
                conns.append(np.full(t.num_rows, conn_id, np.int64))
                dirs.append(np.full(t.num_rows, code, np.int8))
            d.tables = []
    if not tables:
        stamped = SCHEMA.append(pa.field("ts_ns", pa.int64())).append(
            pa.field("frame", pa.int64()))
        return stamped.empty_table(), np.zeros(0, np.int64), np.zeros(0, np.int8)
    # Few chunks stay as they are (the fast engine's, a window each: joining them would
    # copy every column, the largest allocation of a decode); thousands of small ones
    # (the sink's, a connection each) are joined, as kernels cost per chunk.
    merged = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    if any(c.num_chunks > _MAX_CHUNKS for c in merged.columns):
        merged = merged.combine_chunks()
    return merged, np.concatenate(conns), np.concatenate(dirs)


def _command_codes(table: pa.Table) -> tuple[np.ndarray, list[str]]:
    """Each row's command as a small integer code, and the command of each code."""
    encoded = pc.dictionary_encode(table["command"]).combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary.to_pylist()


def _command_flags(codes: tuple[np.ndarray, list[str]], names: list[str]) -> np.ndarray:
    """Per row: whether its command is one of ``names`` (looked up once per distinct name)."""
    indices, dictionary = codes
    wanted = np.array([name in names for name in dictionary] + [False], bool)
    return wanted[indices] if len(indices) else np.zeros(0, bool)


@overload
def build_connections(
    states: dict[int, ConnState], extra: list[pa.Table] | None = None, *,
    sort: Literal[True] = True, settled: list[SettledBatch] | None = None,
) -> tuple[list[ConnectionRecord], pa.Table]: ...


@overload
def build_connections(
    states: dict[int, ConnState], extra: list[pa.Table] | None = None, *,
    sort: Literal[False], settled: list[SettledBatch] | None = None,
) -> tuple[list[ConnectionRecord], pa.Table, np.ndarray | None]: ...


def build_connections(
    states: dict[int, ConnState], extra: list[pa.Table] | None = None, *, sort: bool = True,
    settled: list[SettledBatch] | None = None,
) -> tuple[list[ConnectionRecord], pa.Table] | tuple[list[ConnectionRecord], pa.Table,
                                                     np.ndarray | None]:
    """One record per decoded connection (roles and channels settled, data linked to main),
    and the messages of them all as one Arrow table sorted by time (MESSAGES_SCHEMA).
    ``settled``: connections the fast engine settled column-wise (final ids; their
    rows are in ``extra``). With ``sort=False`` the table is left in stream order and
    the order that sorts it (None: already sorted) comes third."""
    decoding = [(i, st) for i, st in sorted(states.items()) if st.status == "decoding"]
    # Connections that closed without a byte are kept until _link: an announced
    # data port makes them (empty) data connections; the others are dropped.
    kept = [(i, st) for i, st in sorted(states.items()) if st.status == "decoding" or st.empty]
    settled = [b for b in settled or () if len(b.conn)]
    table, conn, direction = _merged(decoding, extra)
    size = max([kept[-1][0] + 1 if kept else 0]
               + [int(b.conn.max()) + 1 for b in settled])
    is_c2s = direction == 0

    def per_conn(flags: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        sel = flags if mask is None else flags & mask
        return np.bincount(conn[sel], minlength=size)

    codes = _command_codes(table)
    client_cmd = _command_flags(codes, _CLIENT_COMMANDS)
    sent_by_a = per_conn(client_cmd, is_c2s)
    sent_by_b = per_conn(client_cmd, ~is_c2s)
    server_cmd = _command_flags(codes, _SERVER_COMMANDS)
    served_by_a = per_conn(server_cmd, is_c2s)
    served_by_b = per_conn(server_cmd, ~is_c2s)
    main_votes = per_conn(_command_flags(codes, _MAIN_COMMANDS))
    data_votes = per_conn(_command_flags(codes, _DATA_COMMANDS))
    rows = np.bincount(conn, minlength=size)
    swap = np.zeros(size, bool)
    records = []
    for conn_id, state in kept:
        info = state.info
        swapped = bool(not info.syn_seen and sent_by_b[conn_id] + served_by_a[conn_id]
                       > sent_by_a[conn_id] + served_by_b[conn_id])
        swap[conn_id] = swapped
        c2s, s2c = state.dirs["c2s"], state.dirs["s2c"]
        if swapped:
            c2s, s2c = s2c, c2s
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
            messages=int(rows[conn_id]),
            first_gap_s2c=s2c.first_gap,
        )
        main, data = main_votes[conn_id], data_votes[conn_id]
        if main or data:
            rec.channel = "main" if main >= data else "data"
        records.append(rec)
    if settled:
        for batch in settled:
            records += _settled_records(batch, rows, main_votes, data_votes)
        records.sort(key=_by_conn)
    direction = np.where(swap[conn], ~is_c2s, is_c2s)
    names = pa.DictionaryArray.from_arrays(
        pa.array(np.where(direction, 0, 1).astype(np.int8)), pa.array(["c2s", "s2c"]))
    table = table.append_column("conn", pa.array(conn)).append_column(
        "direction", names.cast(pa.string()))
    table = table.select(MESSAGES_SCHEMA.names).cast(MESSAGES_SCHEMA)
    _link(records, table)
    empty = {i for i, st in kept if st.status != "decoding"}
    if empty:
        records = [r for r in records if r.conn not in empty or r.channel != "unknown"]
    # by time; ties (one packet completing several messages) in stream order
    keys = (table["end"].to_numpy(), conn, table["frame"].to_numpy(), table["ts_ns"].to_numpy())
    order = None if _is_sorted(keys) else _sorting_order(keys)
    if not sort:
        return records, table, order
    if order is not None:
        table = table.take(pa.array(order))
    return records, table


def _by_conn(rec: ConnectionRecord) -> int:
    return rec.conn


def _settled_records(batch: SettledBatch, rows: np.ndarray, main_votes: np.ndarray,
                     data_votes: np.ndarray) -> list[ConnectionRecord]:
    """The records of connections settled column-wise: never swapped (their handshake
    was seen), nothing lost; channel by the same votes as the others."""
    ids = batch.conn
    main, data = main_votes[ids], data_votes[ids]
    channel = np.where(main + data == 0, "unknown", np.where(main >= data, "main", "data"))
    return [ConnectionRecord(c, a_ip, a_port, b_ip, b_port, False, True, start, end, why, dn,
                             up, down, 0, 0, n, ch)
            for c, a_ip, a_port, b_ip, b_port, start, end, why, dn, up, down, n, ch in zip(
                ids.tolist(), batch.a_ip, batch.a_port, batch.b_ip, batch.b_port,
                batch.start_ns, batch.end_ns, batch.close_reason, batch.dialect,
                batch.bytes_c2s, batch.bytes_s2c, rows[ids].tolist(), channel.tolist(),
                strict=True)]


def _sorting_order(keys: tuple[np.ndarray, ...]) -> np.ndarray:
    """``np.lexsort(keys)``, usually by one stable sort on time: the fast engine's rows
    are in order but for a few carried across a window seam, and a merge sort of
    nearly sorted times is cheap where a four-key lexsort is not. When that order
    leaves the other keys unsorted among equal times, the full lexsort decides."""
    order = np.argsort(keys[-1], kind="stable")
    if _is_sorted(tuple(k[order] for k in keys)):
        return order  # the same permutation: both sorts are stable on the whole key
    return np.lexsort(keys)


def _is_sorted(keys: tuple[np.ndarray, ...]) -> bool:
    """Are the rows already in ``np.lexsort(keys)`` order (last key first)?

    The fast engine decodes in that order, so this usually saves the sort.
    """
    if len(keys[0]) < 2:
        return True
    tied = np.ones(len(keys[0]) - 1, bool)  # rows equal on the keys checked so far
    for key in reversed(keys):
        step = np.diff(key)
        if np.any(tied & (step < 0)):
            return False
        tied &= step == 0
    return True


def _dialect_name(state: ConnState) -> str | None:
    """The connection's dialect, GBK when frames had to be re-read as GBK."""
    if state.dialect is None:
        return None
    fell_back = [d.fallback for d in state.dirs.values() if d.fell_back]
    return _dialect_text(fell_back[0] if fell_back else state.dialect)


@functools.lru_cache(maxsize=64)
def _dialect_text(dialect: Dialect) -> str:
    return str(dialect)  # a few microseconds each: thousands of connections share a handful


def _link(records: list[ConnectionRecord], table: pa.Table) -> None:
    """Link each data (or unknown) connection to the main connection whose announcement
    it used, by the one linking rule (:mod:`camprotool.protocol.linking`; scope: the
    same client IP and server IP). A linked ``unknown`` connection is ``data``; an
    unlinked ``data`` one is ``announced=False`` when a main connection of that scope
    was seen (its port should have been announced), else None (cannot tell)."""
    scopes: dict[tuple[bytes, bytes], int] = {}
    main_scope = {r.conn: scopes.setdefault((r.client_ip, r.server_ip), len(scopes))
                  for r in records if r.channel == "main"}
    with_main = len(scopes)  # scope codes below this have a main connection
    linkable = [r for r in records if r.channel != "main"]
    if not linkable:
        return
    anns = _announcements(table, main_scope)
    data_scope = np.array([scopes.setdefault((r.client_ip, r.server_ip), len(scopes))
                           for r in linkable], np.int64)
    used = linking.link(data_scope, np.array([r.server_port for r in linkable], np.int64),
                        np.array([r.start_ns for r in linkable], np.int64), *anns)
    ann_main = anns[3]
    for rec, at, scope in zip(linkable, used.tolist(), data_scope.tolist(), strict=True):
        if at != linking.NONE:
            rec.main_conn = int(ann_main[at])
            rec.announced = True
            if rec.channel == "unknown":
                rec.channel = "data"
        elif rec.channel == "data":
            rec.announced = False if scope < with_main else None


def _announcements(table: pa.Table, main_scope: dict[int, int]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every ReturnDataSocketPort a server sent on a main connection, in the capture's
    message order (time, then frame and connection, as ``build_connections`` sorts):
    linking's (scope, port or -1, ts_ns, main conn) arrays."""
    mains = np.fromiter(main_scope, np.int64, len(main_scope))
    # the command first: the other tests then run over a few rows, not every message
    picked = table.filter(pc.equal(table["command"], "ReturnDataSocketPort"))
    picked = picked.filter(pc.and_(pc.and_(pc.is_null(picked["error"]),
                                           pc.equal(picked["direction"], "s2c")),
                                   pc.is_in(picked["conn"], pa.array(mains))))
    conn = picked["conn"].to_numpy()
    ts = picked["ts_ns"].to_numpy()
    order = np.lexsort((picked["end"].to_numpy(), conn, picked["frame"].to_numpy(), ts))
    conn, ts = conn[order], ts[order]
    port = pc.fill_null(picked["port"], -1).to_numpy(zero_copy_only=False)
    port = port.astype(np.int64)[order]
    scope_of = np.zeros(int(mains.max()) + 1 if len(mains) else 0, np.int64)
    scope_of[mains] = list(main_scope.values())
    return scope_of[conn], port, ts, conn

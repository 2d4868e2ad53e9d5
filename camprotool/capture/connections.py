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

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from camprotool.capture.conntable import (
    DATA,
    MAIN,
    NO_VALUE,
    UNKNOWN,
    Addresses,
    ConnectionRecord,
    ConnectionTable,
)
from camprotool.capture.streams import ConnState
from camprotool.protocol import linking
from camprotool.protocol.bulk import SCHEMA
from camprotool.protocol.catalogue import COMMANDS, Channel, Direction
from camprotool.protocol.dialect import Dialect

#: a row's kind of command: who sends it (client, or server: answers and pushes) and
#: on which channel; a command not in the catalogue is of no kind
_CLIENT_MAIN, _CLIENT_DATA, _SERVER_MAIN, _SERVER_DATA, _NO_KIND = range(5)
_KINDS = _NO_KIND + 1
# the kinds each vote counts, as slices (views of the tallies, not copies)
_CLIENT_KINDS = slice(_CLIENT_MAIN, _SERVER_MAIN)
_SERVER_KINDS = slice(_SERVER_MAIN, _NO_KIND)
_MAIN_KINDS = slice(_CLIENT_MAIN, _NO_KIND, 2)
_DATA_KINDS = slice(_CLIENT_DATA, _NO_KIND, 2)
_CATALOGUE_POSITION = {c.name: i for i, c in enumerate(COMMANDS)}
_CATALOGUE = pa.array([c.name for c in COMMANDS], pa.string())
#: the kind of each command of the catalogue, by position; last: a name not there
_KIND_OF = np.array([2 * (c.direction is not Direction.C2S) + (c.channel is Channel.DATA)
                     for c in COMMANDS] + [_NO_KIND], np.int64)
_RETURN_DATA_PORT = next(i for i, c in enumerate(COMMANDS) if c.name == "ReturnDataSocketPort")


@dataclass(slots=True)
class SettledBatch:
    """Connections the fast engine decoded column-wise, as columns: what each one's
    ``ConnState`` would hold after its close (their rows are in the engine's
    ``bulk_tables``). A handshake was seen (the engine's in-order flows start with
    one), nothing was lost, and ``a`` is the client."""

    conn: np.ndarray  # provisional ids until renumbered
    a_ip: Addresses
    a_port: np.ndarray  # int64
    b_ip: Addresses
    b_port: np.ndarray
    start_ns: np.ndarray
    end_ns: np.ndarray
    close_reason: np.ndarray  # object: str, None while still open (a chunked reader's view)
    dialect: np.ndarray  # object: str
    bytes_c2s: np.ndarray
    bytes_s2c: np.ndarray


#: ``direction`` as codes into ``c2s``/``s2c`` (a byte a row: the text cost 7 bytes a row
#: more, 1.3 MB of 185,000 messages held beside the frame, which reads the codes)
DIRECTION_TYPE = pa.dictionary(pa.int8(), pa.string())
_EXTRA = [("conn", pa.int64()), ("direction", DIRECTION_TYPE), ("ts_ns", pa.int64()),
          ("frame", pa.int64())]
#: ``command`` as codes, the decoder's type (:data:`camprotool.protocol.bulk.COMMAND_CODES`)
#: with one dictionary for the whole table: the catalogue's names first (a row's code
#: is its command's position there), then the other names the rows hold, sorted; null
#: where none (:func:`coded_commands`). The frame makes its ``command`` from the codes.
COMMAND_TYPE = SCHEMA.field("command").type
MESSAGES_SCHEMA = pa.schema(list(SCHEMA) + [pa.field(n, t) for n, t in _EXTRA])


_DIRECTIONS = pa.array(["c2s", "s2c"], pa.string())  # a row's by its s2c flag
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


def coded_commands(column: pa.ChunkedArray | pa.Array) -> tuple[pa.ChunkedArray, list[str]]:
    """The column as :data:`COMMAND_TYPE` codes with one dictionary, and its names: the
    catalogue's, then the other names the rows hold, sorted.

    A column of codes (the decoder's, any dictionary per chunk) is read as it is: a
    chunk whose dictionary is the catalogue's names (every chunk, unless a name is
    not in the catalogue) keeps its codes, shared; another chunk's few names are
    looked up once and its codes mapped through them. Text is coded first (one hash
    lookup a row)."""
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    parts = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    remapped: dict[int, tuple[list[str], np.ndarray]] = {}  # chunk -> names, codes
    extra: set[str] = set()
    for k, chunk in enumerate(parts):
        if chunk.dictionary.equals(_CATALOGUE) and chunk.indices.type == pa.int32():
            continue
        names = chunk.dictionary.to_pylist()
        index = _indices(chunk)
        position = np.array([_CATALOGUE_POSITION.get(name, -1) for name in names], np.int32)
        unknown = np.flatnonzero(position < 0)
        if len(unknown):  # only names the rows use: a decoder's dictionary may hold more
            used = np.bincount(index[index >= 0], minlength=len(names)) > 0
            extra.update(names[i] for i in unknown[used[unknown]].tolist())
        remapped[k] = names, index
    all_names = [c.name for c in COMMANDS] + sorted(extra)
    dictionary = pa.array(all_names, pa.string())
    code_of = {name: code for code, name in enumerate(all_names)}
    out = []
    for k, chunk in enumerate(parts):
        if k not in remapped:
            indices = chunk.indices
        else:
            names, index = remapped[k]
            lookup = np.array([code_of.get(name, -1) for name in names] + [-1],
                              np.int32)  # the last: a null's (-1 indexes it)
            codes = lookup[index]
            indices = pa.array(codes, mask=codes < 0)
        out.append(pa.DictionaryArray.from_arrays(indices, dictionary, safe=False))
    return pa.chunked_array(out, COMMAND_TYPE), all_names


def command_codes(column: pa.ChunkedArray) -> np.ndarray:
    """The codes of a :func:`coded_commands` column, one array (int32, -1 for none)."""
    if not len(column):
        return np.zeros(0, np.int32)
    return np.concatenate([_indices(chunk) for chunk in column.chunks])


def _indices(chunk: pa.DictionaryArray) -> np.ndarray:
    """A dictionary chunk's codes as int32 NumPy (-1 for a null; a view when none)."""
    indices = chunk.indices
    if indices.null_count:
        indices = pc.fill_null(indices, -1)
    return indices.to_numpy().astype(np.int32, copy=False)


@overload
def build_connections(
    states: dict[int, ConnState], extra: list[pa.Table] | None = None, *,
    sort: Literal[True] = True, settled: list[SettledBatch] | None = None,
) -> tuple[ConnectionTable, pa.Table]: ...


@overload
def build_connections(
    states: dict[int, ConnState], extra: list[pa.Table] | None = None, *,
    sort: Literal[False], settled: list[SettledBatch] | None = None,
) -> tuple[ConnectionTable, pa.Table, np.ndarray | None]: ...


def build_connections(
    states: dict[int, ConnState], extra: list[pa.Table] | None = None, *, sort: bool = True,
    settled: list[SettledBatch] | None = None,
) -> tuple[ConnectionTable, pa.Table] | tuple[ConnectionTable, pa.Table, np.ndarray | None]:
    """The connection table (roles and channels settled, data linked to main; a row per
    decoded connection, by id), and the messages of them all as one Arrow table sorted
    by time (MESSAGES_SCHEMA). ``settled``: connections the fast engine settled
    column-wise (final ids; their rows are in ``extra``). With ``sort=False`` the table
    is left in stream order and the order that sorts it (None: already sorted) comes
    third. The table's ``command`` is codes (:data:`COMMAND_TYPE`) from the catalogue
    lookup the roles were read from: ``Capture.messages`` reads them, not the text."""
    decoding = [(i, st) for i, st in sorted(states.items()) if st.status == "decoding"]
    # Connections that closed without a byte are kept until _link: an announced
    # data port makes them (empty) data connections; the others are dropped.
    kept = [(i, st) for i, st in sorted(states.items()) if st.status == "decoding" or st.empty]
    settled = [b for b in settled or () if len(b.conn)]
    table, conn, direction = _merged(decoding, extra)
    size = max([kept[-1][0] + 1 if kept else 0]
               + [int(b.conn.max()) + 1 for b in settled])
    commands, names = coded_commands(table["command"])
    table = table.set_column(table.schema.get_field_index("command"), "command", commands)
    command = command_codes(commands)
    if len(names) > len(COMMANDS):
        command[command >= len(COMMANDS)] = -1  # catalogue positions only
    # per kind of command, sending side (the reassembler's first guess of the client:
    # 0, of the server: 1) and connection, the rows counted in one pass; connections
    # last, so that each sum below adds whole rows
    tallies = np.bincount((_KIND_OF[command] * 2 + direction) * size + conn,
                          minlength=_KINDS * 2 * size).reshape(_KINDS, 2, size)
    # client commands sent by the first guess of the client and of the server, then
    # server commands by each: the votes that swap the roles
    client, server = (tallies[kinds].sum(axis=0) for kinds in (_CLIENT_KINDS, _SERVER_KINDS))
    votes = (client[0], client[1], server[0], server[1])
    conns = _concat([_state_rows(kept, votes)]
                    + [_settled_rows(b) for b in settled])
    main_votes, data_votes = (tallies[kinds].sum(axis=(0, 1))[conns.conn]
                              for kinds in (_MAIN_KINDS, _DATA_KINDS))
    conns.messages = tallies.sum(axis=(0, 1))[conns.conn]
    conns.channel = np.where(main_votes + data_votes == 0, UNKNOWN,
                             np.where(main_votes >= data_votes, MAIN, DATA)).astype(np.int8)
    swap = np.zeros(size, bool)
    swap[conns.conn[conns.swapped]] = True
    s2c = (direction != 0) ^ swap[conn]
    table = table.append_column("conn", pa.array(conn)).append_column(
        "direction", pa.DictionaryArray.from_arrays(pa.array(s2c.view(np.int8)), _DIRECTIONS))
    table = table.select(MESSAGES_SCHEMA.names).cast(MESSAGES_SCHEMA)
    # by time; ties (one packet completing several messages) in stream order
    keys = (table["end"].to_numpy(), conn, table["frame"].to_numpy(), table["ts_ns"].to_numpy())
    returns = np.flatnonzero(command == _RETURN_DATA_PORT)
    _link(conns, table, returns[s2c[returns]], keys)
    empty = np.array([i for i, st in kept if st.status != "decoding"], np.int64)
    if len(empty):
        conns = conns.take(np.flatnonzero(~np.isin(conns.conn, empty)
                                          | (conns.channel != UNKNOWN)))
    order = None if _is_sorted(keys) else _sorting_order(keys)
    if not sort:
        return conns, table, order
    if order is not None:
        table = table.take(pa.array(order))
    return conns, table


def _unjudged(n: int) -> dict[str, np.ndarray]:
    """The columns ``build_connections`` fills after the rows are together, unfilled."""
    return {"messages": np.zeros(n, np.int64), "channel": np.full(n, UNKNOWN, np.int8),
            "main_conn": np.full(n, NO_VALUE, np.int64),
            "announced": np.full(n, NO_VALUE, np.int8)}


def _objects(values: list) -> np.ndarray:
    """A column of Python values (a few distinct strings, shared between rows)."""
    out = np.empty(len(values), object)
    out[:] = values
    return out


def _state_rows(kept: list[tuple[int, ConnState]],
                votes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> ConnectionTable:
    """The rows of connections the sink decoded (a state each): roles swapped where no
    handshake was seen and the commands say the other side is the client."""
    n = len(kept)
    ids = np.fromiter((i for i, _ in kept), np.int64, n)
    infos = [st.info for _, st in kept]
    syn = np.fromiter((info.syn_seen for info in infos), bool, n)
    sent_by_a, sent_by_b, served_by_a, served_by_b = (v[ids] for v in votes)
    swapped = ~syn & (sent_by_b + served_by_a > sent_by_a + served_by_b)
    a_ip, b_ip = Addresses.of([i.a_ip for i in infos]), Addresses.of([i.b_ip for i in infos])
    a_port = np.fromiter((i.a_port for i in infos), np.int64, n)
    b_port = np.fromiter((i.b_port for i in infos), np.int64, n)

    def per_dir(name: str, attr: str) -> np.ndarray:
        return np.fromiter((getattr(st.dirs[name], attr) for _, st in kept), np.int64, n)

    def gap(name: str) -> np.ndarray:
        return np.fromiter((NO_VALUE if st.dirs[name].first_gap is None
                            else st.dirs[name].first_gap for _, st in kept), np.int64, n)

    def roles(c2s: np.ndarray, s2c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.where(swapped, s2c, c2s), np.where(swapped, c2s, s2c)

    bytes_c2s, bytes_s2c = roles(per_dir("c2s", "bytes"), per_dir("s2c", "bytes"))
    lost_c2s, lost_s2c = roles(per_dir("c2s", "lost"), per_dir("s2c", "lost"))
    return ConnectionTable(
        conn=ids, client_ip=a_ip.where(swapped, b_ip),
        client_port=np.where(swapped, b_port, a_port), server_ip=b_ip.where(swapped, a_ip),
        server_port=np.where(swapped, a_port, b_port), swapped=swapped, handshake_seen=syn,
        start_ns=np.fromiter((i.first_ts_ns for i in infos), np.int64, n),
        end_ns=np.fromiter((st.close_ts if st.close_ts is not None else st.last_ts
                            for _, st in kept), np.int64, n),
        close_reason=_objects([st.close_reason for _, st in kept]),
        dialect=_objects([_dialect_name(st) for _, st in kept]),
        bytes_c2s=bytes_c2s, bytes_s2c=bytes_s2c, lost_c2s=lost_c2s, lost_s2c=lost_s2c,
        first_gap_s2c=roles(gap("c2s"), gap("s2c"))[1], **_unjudged(n))


def _settled_rows(batch: SettledBatch) -> ConnectionTable:
    """The rows of connections settled column-wise: never swapped (their handshake was
    seen), nothing lost."""
    n = len(batch.conn)
    zeros = np.zeros(n, np.int64)
    return ConnectionTable(
        conn=batch.conn, client_ip=batch.a_ip, client_port=batch.a_port,
        server_ip=batch.b_ip, server_port=batch.b_port, swapped=np.zeros(n, bool),
        handshake_seen=np.ones(n, bool), start_ns=batch.start_ns, end_ns=batch.end_ns,
        close_reason=batch.close_reason, dialect=batch.dialect, bytes_c2s=batch.bytes_c2s,
        bytes_s2c=batch.bytes_s2c, lost_c2s=zeros, lost_s2c=zeros,
        first_gap_s2c=np.full(n, NO_VALUE, np.int64), **_unjudged(n))


def _concat(parts: list[ConnectionTable]) -> ConnectionTable:
    """The rows of ``parts``, ordered by ``conn``."""
    joined = parts[0]
    if len(parts) > 1:
        columns: dict[str, Any] = {
            f.name: (Addresses.concat if f.name.endswith("_ip") else np.concatenate)(
                [getattr(p, f.name) for p in parts]) for f in dataclasses.fields(ConnectionTable)}
        joined = ConnectionTable(**columns)
    order = np.argsort(joined.conn, kind="stable")
    if np.array_equal(order, np.arange(len(order))):
        return joined
    return joined.take(order)


def _sorting_order(keys: tuple[np.ndarray, ...]) -> np.ndarray:
    """``np.lexsort(keys)``, usually by one stable sort on time: the fast engine's rows
    are in order but for a few carried across a window seam, and a merge sort of
    nearly sorted times is cheap where a four-key lexsort is not. When that order
    leaves the other keys unsorted among equal times, the full lexsort decides."""
    order = np.argsort(keys[-1], kind="stable")
    if _is_sorted(keys, order):
        return order  # the same permutation: both sorts are stable on the whole key
    return np.lexsort(keys)


def _is_sorted(keys: tuple[np.ndarray, ...], order: np.ndarray | None = None) -> bool:
    """Are the rows (taken in ``order``, if given) in ``np.lexsort(keys)`` order (last
    key first)?

    The fast engine decodes in that order, so this usually saves the sort. Only the
    last key is compared on every row: a key before it matters only where the keys
    after it tie, a tenth of the rows or fewer, so those are compared at the ties
    alone (and ``order`` is followed there, not applied to whole keys).
    """
    if len(keys[0]) < 2:
        return True
    last = keys[-1] if order is None else keys[-1][order]
    if np.any(last[1:] < last[:-1]):
        return False
    # the pairs of neighbouring rows equal on the keys compared so far
    tied = np.flatnonzero(last[1:] == last[:-1])
    this, after = (tied, tied + 1) if order is None else (order[tied], order[tied + 1])
    for key in reversed(keys[:-1]):
        if not len(this):
            break
        first, second = key[this], key[after]
        if np.any(second < first):
            return False
        same = second == first
        this, after = this[same], after[same]
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


def _link(conns: ConnectionTable, table: pa.Table, returns: np.ndarray,
          keys: tuple[np.ndarray, ...]) -> None:
    """Link each data (or unknown) connection to the main connection whose announcement
    it used, by the one linking rule (:mod:`camprotool.protocol.linking`; scope: the
    same client IP and server IP). A linked ``unknown`` connection is ``data``; an
    unlinked ``data`` one is ``announced=False`` when a main connection of that scope
    was seen (its port should have been announced), else None (cannot tell).
    ``returns``: the rows of ``table`` a server sent whose command is
    ReturnDataSocketPort; ``keys``: the table's sorting keys, as ``build_connections``
    sorts (end, conn, frame, ts_ns)."""
    is_main = conns.channel == MAIN
    linkable = np.flatnonzero(~is_main)
    if not len(linkable):
        return
    scope = _scopes(conns.client_ip, conns.server_ip)
    with_main = np.zeros(int(scope.max()) + 1, bool)
    with_main[scope[is_main]] = True
    anns = _announcements(table, returns, keys, conns.conn[is_main], scope[is_main])
    used = linking.link(scope[linkable], conns.server_port[linkable],
                        conns.start_ns[linkable], *anns)
    found = used != linking.NONE
    rows = linkable[found]
    conns.main_conn[rows] = anns[3][used[found]]
    conns.announced[rows] = 1
    conns.channel[rows[conns.channel[rows] == UNKNOWN]] = DATA
    judged = linkable[~found & (conns.channel[linkable] == DATA)]
    conns.announced[judged] = np.where(with_main[scope[judged]], 0, NO_VALUE)


def _scopes(client: Addresses, server: Addresses) -> np.ndarray:
    """A code per row for its (client IP, server IP): equal pairs, equal codes."""
    columns = (client.v6, client.hi, client.lo, server.v6, server.hi, server.lo)
    order = np.lexsort(columns)
    step = np.zeros(len(order), bool)
    step[0] = True
    for column in columns:
        ordered = column[order]
        step[1:] |= ordered[1:] != ordered[:-1]
    codes = np.empty(len(order), np.int64)
    codes[order] = np.cumsum(step) - 1
    return codes


def _announcements(table: pa.Table, returns: np.ndarray, keys: tuple[np.ndarray, ...],
                   mains: np.ndarray, main_scope: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every ReturnDataSocketPort (``returns``: the rows of ``table`` a server sent with
    that command, picked by its code: the other tests then run over a few rows, not
    every message) on a main connection (``mains``, each of scope ``main_scope``) that
    is not an error, in the capture's message order (``keys``: time, then frame and
    connection, as ``build_connections`` sorts): linking's (scope, port or -1, ts_ns,
    main conn) arrays."""
    end, conn, frame, ts = (key[returns] for key in keys)
    fine = pc.is_null(_rows_of(table["error"], returns)).to_numpy()
    picked = np.flatnonzero(fine & np.isin(conn, mains))
    order = picked[np.lexsort((end[picked], conn[picked], frame[picked], ts[picked]))]
    port = pc.fill_null(_rows_of(table["port"], returns), -1).to_numpy()
    scope_of = np.zeros(int(mains.max()) + 1 if len(mains) else 0, np.int64)
    scope_of[mains] = main_scope
    return scope_of[conn[order]], port.astype(np.int64)[order], ts[order], conn[order]


def _rows_of(column: pa.ChunkedArray, rows: np.ndarray) -> pa.ChunkedArray:
    """``column.take(rows)`` for ascending ``rows``, chunk by chunk: ``take`` joins every
    chunk first, a copy of the whole column (the fast engine's has a chunk per window)
    for the few rows wanted."""
    parts, start = [], 0
    for chunk in column.chunks:
        first, stop = np.searchsorted(rows, [start, start + len(chunk)])
        parts.append(chunk.take(pa.array(rows[first:stop] - start)))
        start += len(chunk)
    return pa.chunked_array(parts, column.type)


__all__ = ["COMMAND_TYPE", "MESSAGES_SCHEMA", "ConnectionRecord", "ConnectionTable",
           "SettledBatch", "build_connections", "coded_commands", "command_codes"]

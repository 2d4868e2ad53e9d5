"""Decoded capture -> pandas dataframes, built column-wise through the schema map."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from operator import attrgetter

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from camprotool.analysis import schema
from camprotool.analysis.masking import CATALOGUE_NAMES, Commands, encode_commands, mask_messages
from camprotool.capture.connections import ConnectionRecord, ConnectionTable
from camprotool.capture.packets import format_endpoint
from camprotool.protocol.catalogue import FIELD_NAMES

CHANNELS = ["main", "data", "unknown"]  # the same categories in every table
_CHANNEL_NAMES = pa.array(CHANNELS, pa.string())
#: ``command`` categories: every catalogue command, so tables of two captures
#: concatenate as categoricals; names not in the catalogue follow, sorted
COMMAND_CATEGORIES = CATALOGUE_NAMES


def messages_frame(
    table: pa.Table, connections: ConnectionTable | Sequence[ConnectionRecord], *,
    reveal_passwords: bool = False, order: np.ndarray | None = None,
) -> pd.DataFrame:
    """``Capture.messages`` from the decoder's Arrow table, in ``order`` (None: as it is).

    Built column by column straight into the schema's dtypes, each column
    reordered once: NumPy for numbers (nullable ones from the Arrow buffers),
    Arrow ``take`` for text and lists (zero-copy into pandas' Arrow-backed
    ``str``), codes for categories (``client`` and ``server`` too: a code a row,
    not a string; ``command`` from the codes masking looked passwords up by).
    Text columns with no value (``error`` mostly) all share one array of nulls.
    """
    commands = encode_commands(table["command"])
    if not reveal_passwords:
        table, commands = mask_messages(table, commands)
    take = _Reorder(order, table.num_rows)
    conn_ids = take.numpy(table["conn"])
    ends = _Ends(connections, conn_ids)
    columns: dict[str, object] = {
        "ts": _utc(take.numpy(table["ts_ns"])),
        "conn": conn_ids,
        "channel": ends.channels(),
        "direction": pd.Categorical.from_codes(_s2c(table["direction"], take),
                                               dtype=_DIRECTIONS, validate=False),
        "client": ends.endpoints("client"),
        "server": ends.endpoints("server"),
        "command": _commands(commands, take),
        "params": take.text(table["params"]),
        "error": take.text(table["error"]),
    }
    for name in FIELD_NAMES:
        columns[name] = take.field(table[name], schema.FIELD_DTYPES[name])
    columns["frame"] = take.numpy(table["frame"])
    columns["stream_offset"] = take.numpy(table["end"])
    columns["raw"] = take.objects(table["raw"])
    return schema.conform(pd.DataFrame(columns, copy=False), schema.MESSAGES)


def _one_chunk(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One array, without a copy when there is one chunk (``combine_chunks`` copies)."""
    if not isinstance(column, pa.ChunkedArray):
        return column
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _chunks(column: pa.ChunkedArray | pa.Array) -> list[pa.Array]:
    return column.chunks if isinstance(column, pa.ChunkedArray) else [column]


def _utc(ns: np.ndarray) -> pd.Series:
    """Nanoseconds since the epoch as ``datetime64[ns, UTC]`` (the Series constructor
    takes them as they are; ``pd.array``, ``tz_localize`` or ``DatetimeIndex`` went
    through a conversion costing 5 times a copy)."""
    return pd.Series(ns.view("datetime64[ns]"), dtype=schema.UTC_NS)


_DIRECTIONS = pd.CategoricalDtype(pd.Index(["c2s", "s2c"], dtype="str"))
_CHANNELS = pd.CategoricalDtype(pd.Index(CHANNELS, dtype="str"))


def _s2c(column: pa.ChunkedArray | pa.Array, take: _Reorder) -> np.ndarray:
    """Per row, 1 where the direction is ``s2c``, else 0 (``direction``'s codes)."""
    parts = [_s2c_chunk(chunk) for chunk in _chunks(column)]
    return take.numpy(np.concatenate(parts) if parts else np.zeros(0, np.int8))


def _s2c_chunk(chunk: pa.Array) -> np.ndarray:
    """:func:`_s2c` of one chunk. Every value is ``c2s`` or ``s2c``, so when every one
    is 3 bytes the bytes are compared in place (a string ``equal`` cost 1 ms per
    100,000 rows)."""
    n = len(chunk)
    string = pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)
    if n and string and not chunk.null_count:
        width = np.int32 if pa.types.is_string(chunk.type) else np.int64
        _, offsets_buf, data_buf = chunk.buffers()
        offsets = np.frombuffer(offsets_buf, width, count=n + 1,
                                offset=chunk.offset * np.dtype(width).itemsize)
        if data_buf is not None and (np.diff(offsets) == 3).all():
            text = np.frombuffer(data_buf, np.uint8)[offsets[0]:offsets[-1]].reshape(n, 3)
            s2c = (text[:, 0] == ord("s")) & (text[:, 1] == ord("2")) & (text[:, 2] == ord("c"))
            return s2c.view(np.int8)
    return pc.equal(chunk, "s2c").fill_null(False).to_numpy(zero_copy_only=False).view(np.int8)


def _code_type(categories: int) -> type[np.signedinteger]:
    """The codes' integer type pandas gives ``categories`` categories (so it keeps ours)."""
    for kind in (np.int8, np.int16, np.int32):
        if categories < np.iinfo(kind).max:
            return kind
    return np.int64


@functools.lru_cache(maxsize=64)
def _category_dtype(names: tuple[str, ...]) -> pd.CategoricalDtype:
    return pd.CategoricalDtype(pd.Index(list(names), dtype="str"))


def _commands(commands: Commands, take: _Reorder) -> pd.Categorical:
    """``command`` from its codes (:class:`~camprotool.analysis.masking.Commands`: the
    catalogue's names, then the others the rows hold, sorted)."""
    codes = take.numpy(commands.codes.astype(_code_type(len(commands.names))))
    return pd.Categorical.from_codes(codes, dtype=_category_dtype(tuple(commands.names)),
                                     validate=False)


class _Ends:
    """Each row's connection, for the columns that come from it.

    ``connections``: a capture's :class:`ConnectionTable` (read column-wise: a
    capture may hold 200,000), or records (the live table's) in any order;
    ``conn_ids``: each row's ``conn``.
    """

    def __init__(self, connections: ConnectionTable | Sequence[ConnectionRecord],
                 conn_ids: np.ndarray) -> None:
        self.table = connections if isinstance(connections, ConnectionTable) else None
        if self.table is not None:  # ordered by conn
            ids = self.table.conn
            self.records = []
            self.lookup = conn_ids
            if len(ids) and len(conn_ids) and ids[-1] != len(ids) - 1:  # not ids 0..k-1
                position = np.zeros(int(ids[-1]) + 1, np.int64)  # a gather, not a search
                position[ids] = np.arange(len(ids))
                self.lookup = position[conn_ids]
            return
        ids = np.fromiter(map(attrgetter("conn"), connections), np.int64, len(connections))
        if not len(conn_ids):
            self.records, self.lookup = list(connections), np.zeros(0, np.int64)
        elif np.array_equal(ids, np.arange(len(ids))):  # a capture's: ids 0..k-1 in order
            self.records, self.lookup = list(connections), conn_ids
        else:
            by_id = np.argsort(ids, kind="stable")
            self.records = [connections[i] for i in by_id.tolist()]
            self.lookup = np.searchsorted(ids[by_id], conn_ids)

    def channels(self) -> pd.Categorical:
        if self.table is not None:  # codes in CHANNELS order
            return pd.Categorical.from_codes(self.table.channel.astype(np.int8)[self.lookup],
                                             dtype=_CHANNELS, validate=False)
        names = pa.array(list(map(attrgetter("channel"), self.records)), pa.string())
        codes = pc.index_in(names, value_set=_CHANNEL_NAMES)
        if codes.null_count:
            raise ValueError(f"not a channel: {names.filter(pc.is_null(codes)).to_pylist()}")
        return pd.Categorical.from_codes(codes.to_numpy().astype(np.int8)[self.lookup],
                                         dtype=_CHANNELS, validate=False)

    def endpoints(self, side: str) -> pd.Categorical:
        """Per row, its connection's ``ip:port`` at ``side`` (``client``, ``server``).

        A capture has thousands of rows per endpoint, so a row holds a code into the
        endpoints, not a string of its own. The categories are the endpoints of the
        connections that have rows, sorted: what ``astype("category")`` of the text
        gives, so sorting, ``value_counts`` and ``groupby`` say what the text said and
        two frames of the same connections have the same categories.
        """
        if self.table is not None:
            per_conn = (self.table.client_texts() if side == "client"
                        else self.table.server_texts())[1]
        else:
            per_conn = _endpoint_texts(self.records, side)
        used = np.zeros(len(per_conn), bool)
        used[self.lookup] = True
        present = pc.unique(per_conn.filter(pa.array(used))).drop_null()
        categories = present.take(pc.array_sort_indices(present))
        code_of = pc.index_in(per_conn, value_set=categories).fill_null(-1).to_numpy()
        codes = code_of.astype(_code_type(len(categories)))[self.lookup]
        dtype = pd.CategoricalDtype(pd.Index(pd.array(categories, dtype="str")))
        return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)


def _endpoint_texts(records: Sequence[ConnectionRecord], side: str) -> pa.Array:
    """Each record's ``ip:port`` at ``side``, as ``format_endpoint`` writes it, made
    column-wise: formatting each record's took 8 ms for 6,000 connections. Records
    without packed addresses (the live table's) give their own text."""
    try:
        ips = pa.array(list(map(attrgetter(side + "_ip"), records)), pa.binary())
        ports = pa.array(list(map(attrgetter(side + "_port"), records)), pa.int64())
    except AttributeError:
        return pa.array([getattr(r, side) for r in records], pa.large_string())
    return pc.binary_join_element_wise(_hosts(ips), ports.cast(pa.large_string()),
                                       pa.scalar(":", pa.large_string()))


def _hosts(ips: pa.Array) -> pa.Array:
    """Each packed address as an endpoint's text writes it: ``a.b.c.d`` or ``[v6]``.

    IPv4 ones (all of them, mostly) from their bytes column-wise; else each
    distinct address through ``format_endpoint`` once (a capture has thousands
    of connections and a handful of addresses).
    """
    text = pa.large_string()
    n = len(ips)
    if not n:
        return pa.array([], text)
    if pc.all(pc.equal(pc.binary_length(ips), 4)).as_py():
        first = int(np.frombuffer(ips.buffers()[1], np.int32, count=1, offset=4 * ips.offset)[0])
        octets = np.frombuffer(ips.buffers()[2], np.uint8, count=4 * n, offset=first)
        return pc.binary_join_element_wise(
            *(pa.array(octets[k::4]).cast(text) for k in range(4)), pa.scalar(".", text))
    hosts = pc.dictionary_encode(ips)
    # what format_endpoint writes for port 0, less the ":0"
    texts = [format_endpoint(ip, 0)[:-2] for ip in hosts.dictionary.to_pylist()]
    return pa.array(texts, text).take(hosts.indices)


class _Reorder:
    """Apply one row order to columns of several kinds.

    ``n``: the table's rows. Every text column without a value shares one array
    of ``n`` nulls (each its own would be ``8 * n`` bytes of offsets and a validity
    bitmap: about 1 MB a column for a capture of 126,000 messages).
    """

    def __init__(self, order: np.ndarray | None, n: int = 0) -> None:
        self.order = order
        self.indices = None if order is None else pa.array(order)
        self.n = n
        self._null_text: pa.Array | None = None
        self.pieces = None if order is None else _pieces(order)
        self.numpy_pieces = None if self.pieces is None else [
            (start, length, None if local is None else local.to_numpy())
            for start, length, local in self.pieces]

    def null_text(self, found: pa.Array) -> pa.Array:
        """The shared all-null text array; ``found``: an all-null column of the table.

        Without a reorder the first such column is it (the caller's table holds it
        already, so it costs nothing); with one, ``n`` nulls made once (zero-filled,
        one buffer for validity and offsets)."""
        if self._null_text is None:
            self._null_text = found if self.indices is None \
                else pa.nulls(self.n, pa.large_string())
        return self._null_text

    def numpy(self, column) -> np.ndarray:
        values = column.to_numpy() if isinstance(column, pa.ChunkedArray | pa.Array) else column
        if isinstance(column, pa.ChunkedArray | pa.Array) and column.null_count:
            values = column.to_numpy(zero_copy_only=False)
        if self.order is None:
            return values
        if self.numpy_pieces is None:
            return values[self.order]
        out = np.empty_like(values)  # the slices copied whole: a third cheaper than a gather
        at = 0
        for start, length, local in self.numpy_pieces:
            piece = values[start:start + length]
            size = length if local is None else len(local)
            out[at:at + size] = piece if local is None else piece[local]
            at += size
        return out

    def arrow(self, column: pa.ChunkedArray | pa.Array) -> pa.Array | pa.ChunkedArray:
        """The column in order: as it is (chunks too: pandas wraps them without a copy,
        where joining them would copy) when no reorder is asked."""
        if self.indices is None:
            return column
        if column.null_count == len(column):
            return pa.nulls(len(column), column.type)
        if self.pieces is not None:  # mostly in order: slices of it, and a few takes
            chunked = column if isinstance(column, pa.ChunkedArray) \
                else pa.chunked_array([column])
            return pa.chunked_array(
                [c for start, length, local in self.pieces for c in (
                    chunked.slice(start, length).chunks if local is None
                    # only the rows around: a take over every chunk would join them all
                    else chunked.slice(start, length).take(local).chunks)], column.type)
        return _one_chunk(column).take(self.indices)

    def text(self, column: pa.ChunkedArray | pa.Array) -> pd.api.extensions.ExtensionArray:
        """A ``str`` column, zero-copy over Arrow; one with no value is the shared nulls."""
        array = column
        if array.null_count == len(array) == self.n and pa.types.is_large_string(array.type):
            array = self.null_text(array)
        else:
            array = self.arrow(array)
        return pd.array(array, dtype="str")

    def field(self, column: pa.ChunkedArray | pa.Array,
              dtype: str | pd.ArrowDtype) -> pd.api.extensions.ExtensionArray:
        if isinstance(dtype, pd.ArrowDtype):
            return pd.arrays.ArrowExtensionArray(self.arrow(column))
        if dtype == "str":
            return self.text(column)
        if dtype == "boolean":
            return pd.arrays.BooleanArray(*self.nullable(column, np.bool_))
        return pd.arrays.IntegerArray(*self.nullable(column, np.uint16 if dtype == "UInt16"
                                                     else np.int64))

    def nullable(self, column: pa.ChunkedArray | pa.Array,
                 kind: type[np.generic]) -> tuple[np.ndarray, np.ndarray]:
        """An int or bool column as pandas' masked arrays hold it: values (0 where null,
        as ``kind``) and missing flags, in order.

        Read from each chunk's buffers into one array of each: a ``fill_null`` and
        an ``is_valid`` per chunk, then joining them, copied every column twice.
        """
        n = len(column)
        if column.null_count == n:  # no value: nothing to read (and nothing to reorder)
            return np.zeros(n, kind), np.ones(n, bool)
        values, missing = np.empty(n, kind), np.zeros(n, bool)
        at = 0
        for chunk in _chunks(column):
            size = len(chunk)
            if size:
                validity, data = chunk.buffers()[:2]
                part = values[at:at + size]
                part[:] = _bits(data, chunk.offset, size) if kind is np.bool_ \
                    else np.frombuffer(data, chunk.type.to_pandas_dtype(), count=size,
                                       offset=chunk.offset * chunk.type.byte_width)
                if chunk.null_count:
                    valid = _bits(validity, chunk.offset, size)
                    part *= valid  # 0 under a null, as fill_null(0) gave
                    np.logical_not(valid, out=missing[at:at + size])
            at += size
        return self.numpy(values), self.numpy(missing)

    def objects(self, column: pa.ChunkedArray | pa.Array) -> pd.Series:
        """Python objects (``raw``: bytes), None for a null; a column with no value
        is not converted value by value. A Series of ``object`` dtype: a bare
        object array makes pandas look at every value for text to infer ``str``."""
        if column.null_count == len(column):
            values = np.empty(len(column), object)  # numpy fills it with None
        else:
            values = self.arrow(column).to_numpy(zero_copy_only=False)
        return pd.Series(values, dtype=object, copy=False)


def _bits(buffer: pa.Buffer, offset: int, size: int) -> np.ndarray:
    """Bits ``offset`` to ``offset + size`` of an Arrow bitmap (validity or booleans),
    as bools."""
    first = offset // 8
    packed = np.frombuffer(buffer, np.uint8, count=(offset + size + 7) // 8 - first,
                           offset=first)
    start = offset - 8 * first
    return np.unpackbits(packed, bitorder="little")[start:start + size].view(bool)


#: a run of rows already in order this long is kept as a slice when reordering
_RUN = 4096


def _pieces(order: np.ndarray) -> list[tuple[int, int, pa.Array | None]] | None:
    """``order`` as pieces (start, length, local): zero-copy slices of the rows already
    in order (``local`` None), and for what lies between them a ``take`` (``local``,
    counted from ``start``) from the few rows they come from; None when it is too
    scattered.

    Why: the fast engine's rows are in order but for a few rows carried across a
    window seam; reordering every column (a copy of the whole table) for those
    would double the table in memory, where slices share its buffers.
    """
    n = len(order)
    if n < 2 * _RUN:
        return None
    cut = np.flatnonzero(np.diff(order) != 1) + 1
    starts = np.concatenate([[0], cut])
    lengths = np.diff(np.concatenate([starts, [n]]))
    long_runs = np.flatnonzero(lengths >= _RUN)
    if lengths[long_runs].sum() < n * 0.9:
        return None
    pieces: list[tuple[int, int, pa.Array | None]] = []

    def take(rows: np.ndarray) -> None:
        lo, hi = int(rows.min()), int(rows.max()) + 1
        pieces.append((lo, hi - lo, pa.array(rows - lo)))

    at = 0
    for r in long_runs.tolist():
        s, m = int(starts[r]), int(lengths[r])
        if s > at:
            take(order[at:s])
        pieces.append((int(order[s]), m, None))
        at = s + m
    if at < n:
        take(order[at:])
    return pieces


def connections_frame(connections: ConnectionTable | list[ConnectionRecord]) -> pd.DataFrame:
    """``Capture.connections``: one row per decoded TCP connection, column by column from
    the connection table (no Python object per row: a capture may hold 200,000)."""
    if not isinstance(connections, ConnectionTable):
        connections = ConnectionTable.from_records(connections)
    if not len(connections):
        df = schema.empty_frame(schema.CONNECTIONS)
        df["channel"] = pd.Categorical([], categories=CHANNELS)
        return df
    t = connections
    client_ip, client = t.client_texts()
    server_ip, server = t.server_texts()
    rows = {
        "conn": t.conn,
        "channel": pd.Categorical.from_codes(t.channel, categories=CHANNELS),
        "client": pd.array(client, dtype="str"),
        "server": pd.array(server, dtype="str"),
        "client_ip": pd.array(client_ip, dtype="str"),
        "client_port": t.client_port,
        "server_ip": pd.array(server_ip, dtype="str"),
        "server_port": t.server_port,
        "main_conn": pd.arrays.IntegerArray(t.main_conn, t.main_conn < 0),
        "announced": pd.arrays.BooleanArray(t.announced == 1, t.announced < 0),
        "dialect": pd.Series(t.dialect).astype("category"),
        "handshake_seen": t.handshake_seen,
        "start": pd.Series(t.start_ns.view("datetime64[ns]")).dt.tz_localize("UTC"),
        "end": pd.Series(t.end_ns.view("datetime64[ns]")).dt.tz_localize("UTC"),
        "close_reason": pd.Series(t.close_reason).astype("category"),
        "messages": t.messages,
        "bytes_c2s": t.bytes_c2s,
        "bytes_s2c": t.bytes_s2c,
        "lost_c2s": t.lost_c2s,
        "lost_s2c": t.lost_s2c,
    }
    df = pd.DataFrame(rows)
    df["duration"] = df["end"] - df["start"]
    df = schema.conform(df, schema.CONNECTIONS)
    return df.set_index(pd.Index(df["conn"].to_numpy(), name=None))


def problems_frame(problems: list[tuple[int | None, str, str]]) -> pd.DataFrame:
    if not problems:
        return schema.empty_frame(schema.PROBLEMS)
    df = pd.DataFrame(problems, columns=["frame", "kind", "detail"])
    return schema.conform(df, schema.PROBLEMS)

"""Decoded capture -> pandas dataframes, built column-wise through the schema map."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from operator import attrgetter

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from camprotool.analysis import schema
from camprotool.analysis.masking import CATALOGUE_NAMES, Commands, encode_commands, mask_messages
from camprotool.capture.connections import ConnectionRecord, ConnectionTable
from camprotool.capture.conntable import endpoint_texts
from camprotool.capture.packets import format_endpoint
from camprotool.capture.reorder import Reorder, chunks
from camprotool.protocol.catalogue import FIELD_NAMES

CHANNELS = ["main", "data", "unknown"]  # the same categories in every table
_CHANNEL_NAMES = pa.array(CHANNELS, pa.string())
#: ``command`` categories: every catalogue command, so tables of two captures
#: concatenate as categoricals; names not in the catalogue follow, sorted
COMMAND_CATEGORIES = CATALOGUE_NAMES


def messages_frame(
    table: pa.Table, connections: ConnectionTable | Sequence[ConnectionRecord], *,
    reveal_passwords: bool = False, order: np.ndarray | None = None,
    numbers: Mapping[str, tuple[np.ndarray, np.ndarray | None]] | None = None,
    params_masked: bool = False, commands: Commands | None = None,
) -> pd.DataFrame:
    """``Capture.messages`` from the decoder's Arrow table, in ``order`` (None: as it is).

    Built column by column straight into the schema's dtypes, each column
    reordered once: NumPy for numbers (nullable ones from the Arrow buffers),
    Arrow ``take`` for text and lists (zero-copy into pandas' Arrow-backed
    ``str``), codes for categories (``client`` and ``server`` too: a code a row,
    not a string; ``command`` from the codes masking looked passwords up by).
    Text columns with no value (``error`` mostly) all share one array of nulls.
    ``numbers``: the table's int64 columns as NumPy arrays it views
    (:meth:`DecodedCapture.put_in_order`; ``order`` must then be None), taken as
    they are, so the frame and the table hold their numbers once. ``params_masked``:
    the table's ``params`` are masked already (``DecodedCapture.mask_params``);
    ``commands``: its ``command`` column encoded already (:func:`encode_commands`).
    """
    if numbers and order is not None:
        raise ValueError("numbers are given for rows in order: no order to apply")
    if commands is None:
        commands = encode_commands(table["command"])
    if not reveal_passwords:
        table, commands = mask_messages(table, commands, params_masked=params_masked)
    take = _Columns(order, table.num_rows, numbers or {})
    conn_ids = take.integers(table, "conn")
    ends = _Ends(connections, conn_ids)
    columns: dict[str, object] = {
        "ts": _utc(take.integers(table, "ts_ns")),
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
        columns[name] = take.field(table, name, schema.FIELD_DTYPES[name])
    columns["frame"] = take.integers(table, "frame")
    columns["stream_offset"] = take.integers(table, "end")
    columns["raw"] = take.objects(table["raw"])
    return schema.conform(pd.DataFrame(columns, copy=False), schema.MESSAGES)


def _utc(ns: np.ndarray) -> pd.Series:
    """Nanoseconds since the epoch as ``datetime64[ns, UTC]``, over ``ns`` itself.

    Every public constructor of a zoned column copies (``tz_localize`` and
    ``DatetimeIndex`` convert, costing 5 times a copy; the Series constructor
    copies once), and ``ns`` is the decoder's own ``ts_ns`` column, which the
    frame would then hold twice. ``DatetimeArray._simple_new`` wraps the array as
    it is; a pandas without it gets the Series constructor's copy.
    """
    values = ns.view("datetime64[ns]")
    try:
        wrapped = pd.arrays.DatetimeArray._simple_new(values, dtype=_UTC)
    except (AttributeError, TypeError):
        return pd.Series(values, dtype=schema.UTC_NS)
    return pd.Series(wrapped, copy=False)


_UTC = pd.DatetimeTZDtype("ns", "UTC")
_DIRECTIONS = pd.CategoricalDtype(pd.Index(["c2s", "s2c"], dtype="str"))
_DIRECTION_NAMES = pa.array(["c2s", "s2c"], pa.string())
_CHANNELS = pd.CategoricalDtype(pd.Index(CHANNELS, dtype="str"))


def _s2c(column: pa.ChunkedArray | pa.Array, take: _Columns) -> np.ndarray:
    """Per row, 1 where the direction is ``s2c``, else 0 (``direction``'s codes)."""
    parts = [_s2c_chunk(chunk) for chunk in chunks(column)]
    return take.numpy(np.concatenate(parts) if parts else np.zeros(0, np.int8))


def _s2c_chunk(chunk: pa.Array) -> np.ndarray:
    """:func:`_s2c` of one chunk: the codes themselves where it holds them (the
    decoder's ``direction``). Every value is ``c2s`` or ``s2c``, so for text of 3 bytes
    each the bytes are compared in place (a string ``equal`` cost 1 ms per 100,000
    rows)."""
    n = len(chunk)
    if pa.types.is_dictionary(chunk.type) and not chunk.null_count \
            and chunk.dictionary.equals(_DIRECTION_NAMES):
        return chunk.indices.to_numpy().astype(np.int8, copy=False)  # the codes as they are
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


def _commands(commands: Commands, take: _Columns) -> pd.Categorical:
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
        #: the table's connections (positions) that some message row belongs to
        self._with_rows: np.ndarray | None = None
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
            fast = self._ipv4_endpoints(side)
            if fast is not None:
                return fast
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
        dtype = _distinct_categories(categories)
        return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)

    def _ipv4_endpoints(self, side: str) -> pd.Categorical | None:
        """:meth:`endpoints` of a connection table whose addresses are all IPv4 (None
        otherwise), the endpoints told apart by number: an IPv4 address and a port are
        one 48-bit number, so the distinct endpoints of the connections with rows are a
        ``unique`` of integers and only they are written as text (a capture of 6,000
        connections has 100 servers). The categories and codes are what the text
        route gives: the same texts, sorted as text.
        """
        assert self.table is not None
        ips = self.table.client_ip if side == "client" else self.table.server_ip
        ports = self.table.client_port if side == "client" else self.table.server_port
        if ips.v6.any() or not len(ports) or int(ports.min()) < 0 or int(ports.max()) > 0xFFFF \
                or int(ips.lo.max()) > 0xFFFFFFFF:
            return None
        if self._with_rows is None:  # the same for both sides
            used = np.zeros(len(ports), bool)
            used[self.lookup] = True
            self._with_rows = np.flatnonzero(used)
        with_rows = self._with_rows
        numbers = (ips.lo[with_rows] << np.uint64(16)) | ports[with_rows].astype(np.uint64)
        distinct, first, which = np.unique(numbers, return_index=True, return_inverse=True)
        picked = with_rows[first]  # a connection of each endpoint
        addresses = ips.take(picked)
        texts = endpoint_texts(addresses, addresses.texts(), ports[picked])
        by_text = pc.array_sort_indices(texts).to_numpy()
        rank = np.empty(len(distinct), np.int64)
        rank[by_text] = np.arange(len(distinct))
        code_of = np.full(len(ports), -1, _code_type(len(distinct)))
        code_of[with_rows] = rank[which.reshape(-1)]
        categories = texts.take(pa.array(by_text))
        dtype = _distinct_categories(categories)
        return pd.Categorical.from_codes(code_of[self.lookup], dtype=dtype, validate=False)


def _distinct_categories(texts: pa.Array) -> pd.CategoricalDtype:
    """The ``str`` categories ``texts`` (distinct already: a ``unique`` made them), not
    checked again: ``CategoricalDtype`` hashes every category to check that they are
    unique (about 1 ms of ``Capture.messages`` on 6,000 connections).
    ``_from_fastpath`` is the constructor pandas uses for categories it made itself;
    a pandas without it gets the checked one."""
    index = pd.Index(pd.array(texts, dtype="str"))
    try:
        return pd.CategoricalDtype._from_fastpath(index, False)
    except (AttributeError, TypeError):
        return pd.CategoricalDtype(index)


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


class _Columns(Reorder):
    """A table's columns as the frame holds them, in one row order.

    ``numbers``: int64 columns already held as NumPy arrays (values, null flags),
    taken as they are. Every text column without a value shares one array of
    ``n`` nulls (each its own would be ``8 * n`` bytes of offsets and a validity
    bitmap: about 1 MB a column for a capture of 126,000 messages).
    """

    def __init__(self, order: np.ndarray | None, n: int,
                 numbers: Mapping[str, tuple[np.ndarray, np.ndarray | None]]) -> None:
        super().__init__(order, n)
        self.numbers = numbers
        self._null_text: pa.Array | None = None

    def integers(self, table: pa.Table, name: str) -> np.ndarray:
        """A column without nulls (``conn``, ``ts_ns``, ...) as NumPy, in order."""
        if name in self.numbers:
            return self.numbers[name][0]
        return self.numpy(table[name])

    def null_text(self, found: pa.Array) -> pa.Array:
        """The shared all-null text array; ``found``: an all-null column of the table.

        The first such column is it: the caller's table holds it already, so it
        costs nothing (nulls in any order are the same nulls)."""
        if self._null_text is None:
            self._null_text = found
        return self._null_text

    def text(self, column: pa.ChunkedArray | pa.Array) -> pd.api.extensions.ExtensionArray:
        """A ``str`` column, zero-copy over Arrow; one with no value is the shared nulls."""
        array = column
        if array.null_count == len(array) == self.n and pa.types.is_large_string(array.type):
            array = self.null_text(array)
        else:
            array = self.arrow(array)
        return pd.array(array, dtype="str")

    def field(self, table: pa.Table, name: str,
              dtype: str | pd.ArrowDtype) -> pd.api.extensions.ExtensionArray:
        column = table[name]
        if isinstance(dtype, pd.ArrowDtype):
            return pd.arrays.ArrowExtensionArray(self.arrow(column))
        if dtype == "str":
            return self.text(column)
        if dtype == "boolean":
            return pd.arrays.BooleanArray(*self.nullable(column, np.bool_))
        if dtype == "Int64" and name in self.numbers:
            values, missing = self.numbers[name]
            return pd.arrays.IntegerArray(
                values, np.zeros(len(values), bool) if missing is None else missing)
        return pd.arrays.IntegerArray(*self.nullable(column, np.uint16 if dtype == "UInt16"
                                                     else np.int64))

    def objects(self, column: pa.ChunkedArray | pa.Array) -> pd.Series:
        """Python objects (``raw``: bytes), None for a null; a column with no value
        is not converted value by value. A Series of ``object`` dtype: a bare
        object array makes pandas look at every value for text to infer ``str``."""
        if column.null_count == len(column):
            values = np.empty(len(column), object)  # numpy fills it with None
        else:
            values = self.arrow(column).to_numpy(zero_copy_only=False)
        return pd.Series(values, dtype=object, copy=False)


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

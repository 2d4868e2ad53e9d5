"""Decoded capture -> pandas dataframes, built column-wise through the schema map."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from camprotool.analysis import schema
from camprotool.analysis.masking import mask_table
from camprotool.capture.connections import ConnectionRecord, ConnectionTable
from camprotool.protocol.catalogue import COMMANDS, FIELD_NAMES

CHANNELS = ["main", "data", "unknown"]  # the same categories in every table

def messages_frame(
    table: pa.Table, connections: list[ConnectionRecord], *, reveal_passwords: bool = False,
    order: np.ndarray | None = None,
) -> pd.DataFrame:
    """``Capture.messages`` from the decoder's Arrow table, in ``order`` (None: as it is).

    Built column by column straight into the schema's dtypes, each column
    reordered once: NumPy for numbers, Arrow ``take`` for text and lists
    (zero-copy into pandas' Arrow-backed ``str``), codes for categories
    (``client`` and ``server`` too: a code a row, not a string). Text columns
    with no value (``error`` mostly) all share one array of nulls.
    """
    if not reveal_passwords:
        table = mask_table(table)
    n = table.num_rows
    take = _Reorder(order, n)
    conn_ids = take.numpy(table["conn"])
    ids = np.array(sorted(rec.conn for rec in connections), np.int64)
    by_conn = {rec.conn: rec for rec in connections}
    if not n:
        lookup = np.zeros(0, np.int64)
    elif len(ids) and ids[-1] == len(ids) - 1:  # ids 0..k-1 (a capture's): no search
        lookup = conn_ids
    else:
        lookup = np.searchsorted(ids, conn_ids)
    recs = [by_conn[i] for i in ids.tolist()]
    channel_codes = np.array([CHANNELS.index(r.channel) for r in recs], np.int8)
    direction = take.numpy(pc.equal(table["direction"], "s2c")).astype(np.int8)
    columns: dict[str, object] = {
        "ts": pd.Series(take.numpy(table["ts_ns"]).view("datetime64[ns]")).dt.tz_localize("UTC"),
        "conn": conn_ids,
        "channel": pd.Categorical.from_codes(channel_codes[lookup] if n else [],
                                             categories=CHANNELS),
        "direction": pd.Categorical.from_codes(direction, categories=["c2s", "s2c"]),
        "client": _endpoints([r.client for r in recs], lookup),
        "server": _endpoints([r.server for r in recs], lookup),
        "command": _commands(table["command"], take),
        "params": take.text(table["params"]),
        "error": take.text(table["error"]),
    }
    for name in FIELD_NAMES:
        columns[name] = take.field(table[name], schema.FIELD_DTYPES[name])
    columns["frame"] = take.numpy(table["frame"])
    columns["stream_offset"] = take.numpy(table["end"])
    columns["raw"] = take.arrow(table["raw"]).to_pandas()
    df = pd.DataFrame({k: (v.reset_index(drop=True) if isinstance(v, pd.Series) else v)
                       for k, v in columns.items()}, copy=False)
    return schema.conform(df, schema.MESSAGES)


def _one_chunk(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One array, without a copy when there is one chunk (``combine_chunks`` copies)."""
    if not isinstance(column, pa.ChunkedArray):
        return column
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


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
        return values if self.order is None else values[self.order]

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

    def text(self, column: pa.ChunkedArray | pa.Array) -> pd.Series:
        """A ``str`` column, zero-copy over Arrow; one with no value is the shared nulls."""
        array = column
        if array.null_count == len(array) == self.n and pa.types.is_large_string(array.type):
            array = self.null_text(array)
        else:
            array = self.arrow(array)
        return pd.Series(pd.array(array, dtype="str"))

    def field(self, column: pa.ChunkedArray | pa.Array, dtype) -> pd.Series:
        if isinstance(dtype, pd.ArrowDtype):
            return pd.Series(pd.arrays.ArrowExtensionArray(self.arrow(column)))
        if dtype == "str":
            return self.text(column)
        array = self.arrow(column)
        valid = array.is_valid().to_numpy(zero_copy_only=False)
        if dtype == "boolean":
            values = array.fill_null(False).to_numpy(zero_copy_only=False)
            return pd.Series(pd.arrays.BooleanArray(values.astype(bool), ~valid))
        values = array.fill_null(0).to_numpy()
        if dtype == "UInt16":
            return pd.Series(pd.arrays.IntegerArray(values.astype(np.uint16), ~valid))
        return pd.Series(pd.arrays.IntegerArray(values.astype(np.int64, copy=False), ~valid))


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


def _endpoints(names: list[str], lookup: np.ndarray) -> pd.Categorical:
    """Per row, its connection's ``ip:port`` as a category (``names``: one per connection,
    ``lookup``: each row's connection).

    A capture has thousands of rows per endpoint, so a row holds a code into the
    endpoints, not a string of its own. The categories are the endpoints of the
    connections that have rows, sorted: what ``astype("category")`` of the text
    gives, so sorting, ``value_counts`` and ``groupby`` say what the text said and
    two frames of the same connections have the same categories.
    """
    per_conn = pa.array(names, pa.large_string())
    used = np.bincount(lookup, minlength=len(names)).astype(bool) if len(lookup) \
        else np.zeros(len(names), bool)
    present = pc.unique(per_conn.filter(pa.array(used))).drop_null()
    categories = present.take(pc.array_sort_indices(present))
    code_of = pc.index_in(per_conn, value_set=categories).fill_null(-1).to_numpy()
    dtype = pd.CategoricalDtype(pd.Index(pd.array(categories, dtype="str")))
    return pd.Categorical.from_codes(code_of[lookup], dtype=dtype, validate=False)


#: ``command`` categories: every catalogue command, so tables of two captures
#: concatenate as categoricals; names not in the catalogue follow, sorted
COMMAND_CATEGORIES = [spec.name for spec in COMMANDS]


def _commands(column: pa.ChunkedArray | pa.Array, take: _Reorder) -> pd.Categorical:
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    if not len(encoded):
        return pd.Categorical.from_codes([], categories=pd.Index(COMMAND_CATEGORIES, dtype="str"))
    names = encoded.dictionary.to_pylist()
    extra = sorted(set(names) - set(COMMAND_CATEGORIES))
    categories = COMMAND_CATEGORIES + extra
    position = {name: i for i, name in enumerate(categories)}
    remap = np.array([position[name] for name in names], np.int64)
    codes = remap[take.numpy(encoded.indices.to_numpy(zero_copy_only=False))]
    return pd.Categorical.from_codes(codes, categories=pd.Index(categories, dtype="str"))


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

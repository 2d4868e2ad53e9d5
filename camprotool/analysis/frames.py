"""Decoded capture -> pandas dataframes, built column-wise through the schema map."""

from __future__ import annotations

import ipaddress

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from camprotool.analysis import schema
from camprotool.analysis.masking import mask_table
from camprotool.capture.connections import ConnectionRecord
from camprotool.protocol.catalogue import FIELD_NAMES

CHANNELS = ["main", "data", "unknown"]  # the same categories in every table

_TYPES = {
    pa.int64(): pd.Int64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def messages_frame(
    table: pa.Table, connections: list[ConnectionRecord], *, reveal_passwords: bool = False
) -> pd.DataFrame:
    """``Capture.messages`` from the decoder's Arrow table."""
    if not reveal_passwords:
        table = mask_table(table)
    n = table.num_rows
    by_conn = {rec.conn: rec for rec in connections}
    conn_ids = table["conn"].to_numpy()
    ids = sorted(by_conn)
    lookup = np.searchsorted(ids, conn_ids) if n else np.zeros(0, np.int64)

    clients = [by_conn[i].client for i in ids]
    servers = [by_conn[i].server for i in ids]
    channels = [by_conn[i].channel for i in ids]
    columns: dict[str, object] = {
        "ts": pd.to_datetime(table["ts_ns"].to_numpy(), unit="ns", utc=True),
        "conn": conn_ids,
        "channel": pd.Categorical(np.asarray(channels, dtype=object)[lookup] if n else [],
                                  categories=CHANNELS),
        "direction": pd.Categorical(table["direction"].to_pylist(), categories=["c2s", "s2c"]),
        "client": pd.array(np.asarray(clients, dtype=object)[lookup] if n else [], dtype="str"),
        "server": pd.array(np.asarray(servers, dtype=object)[lookup] if n else [], dtype="str"),
        "command": _categorical(table["command"]),
        "params": table["params"].to_pandas(),
        "error": table["error"].to_pandas(),
    }
    # list columns stay Arrow lists (pd.ArrowDtype): Python objects per camera
    # cost more than the rest of the table together
    lists = [name for name in FIELD_NAMES if pa.types.is_large_list(table.schema.field(name).type)]
    scalars = [name for name in FIELD_NAMES if name not in lists]
    fields = table.select(scalars).to_pandas(types_mapper=_TYPES.get)
    for name in FIELD_NAMES:
        columns[name] = (pd.Series(pd.arrays.ArrowExtensionArray(table[name].combine_chunks()))
                         if name in lists else fields[name])
    columns["frame"] = table["frame"].to_numpy()
    columns["stream_offset"] = table["end"].to_numpy()
    columns["raw"] = table["raw"].to_pandas()
    df = pd.DataFrame(columns)
    return schema.conform(df, schema.MESSAGES)


def _categorical(column: pa.ChunkedArray | pa.Array) -> pd.Categorical:
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    return pd.Categorical.from_codes(
        encoded.indices.to_numpy(zero_copy_only=False),
        categories=encoded.dictionary.to_pylist(),
    ) if len(encoded) else pd.Categorical([])


def _ip(packed: bytes) -> str:
    return str(ipaddress.ip_address(packed))


def connections_frame(connections: list[ConnectionRecord]) -> pd.DataFrame:
    """``Capture.connections``: one row per decoded TCP connection."""
    if not connections:
        df = schema.empty_frame(schema.CONNECTIONS)
        df["channel"] = pd.Categorical([], categories=CHANNELS)
        return df
    rows = {
        "conn": [r.conn for r in connections],
        "channel": pd.Categorical([r.channel for r in connections], categories=CHANNELS),
        "client": [r.client for r in connections],
        "server": [r.server for r in connections],
        "client_ip": [_ip(r.client_ip) for r in connections],
        "client_port": [r.client_port for r in connections],
        "server_ip": [_ip(r.server_ip) for r in connections],
        "server_port": [r.server_port for r in connections],
        "main_conn": [r.main_conn for r in connections],
        "announced": [r.announced for r in connections],
        "dialect": [r.dialect for r in connections],
        "handshake_seen": [r.handshake_seen for r in connections],
        "start": pd.to_datetime([r.start_ns for r in connections], unit="ns", utc=True),
        "end": pd.to_datetime([r.end_ns for r in connections], unit="ns", utc=True),
        "close_reason": [r.close_reason for r in connections],
        "messages": [r.messages for r in connections],
        "bytes_c2s": [r.bytes_c2s for r in connections],
        "bytes_s2c": [r.bytes_s2c for r in connections],
        "lost_c2s": [r.lost_c2s for r in connections],
        "lost_s2c": [r.lost_s2c for r in connections],
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

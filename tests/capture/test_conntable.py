"""The connection table as columns equals the records it is made of, row for row."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from camprotool.analysis import schema
from camprotool.analysis.frames import CHANNELS, connections_frame
from camprotool.capture.conntable import Addresses, ConnectionRecord, ConnectionTable

_V4 = st.binary(min_size=4, max_size=4) | st.sampled_from(
    [b"\x0a\x00\x00\x00", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff"])
_V6 = st.binary(min_size=16, max_size=16) | st.sampled_from(
    [ipaddress.IPv6Address(a).packed for a in ("::1", "::", "::ffff:10.0.0.1", "fd00::2")])
_IP = _V4 | _V6
_PORT = st.integers(0, 65535)
_NS = st.integers(0, 1 << 62)
_COUNT = st.integers(0, 1 << 40)


@st.composite
def records(draw) -> list[ConnectionRecord]:
    ids = sorted(draw(st.sets(st.integers(0, 10_000), max_size=12)))
    return [ConnectionRecord(
        conn, draw(_IP), draw(_PORT), draw(_IP), draw(_PORT), draw(st.booleans()),
        draw(st.booleans()), draw(_NS), draw(_NS),
        draw(st.sampled_from([None, "fin", "rst", "end_of_capture"])),
        draw(st.sampled_from([None, "line", "line:gbk", "lp32le"])), draw(_COUNT),
        draw(_COUNT), draw(_COUNT), draw(_COUNT), draw(_COUNT),
        draw(st.sampled_from(["main", "data", "unknown"])),
        draw(st.none() | st.integers(0, 10_000)), draw(st.none() | st.booleans()),
        draw(st.none() | _COUNT)) for conn in ids]


@settings(max_examples=200, deadline=None)
@given(records())
def test_rows_are_the_records_the_table_was_made_of(recs):
    table = ConnectionTable.from_records(recs)
    assert len(table) == len(recs)
    assert list(table) == recs
    if recs:
        assert table[0] == recs[0] and table[-1] == recs[-1]
    reverse = np.arange(len(recs))[::-1].copy()
    assert list(table.take(reverse)) == recs[::-1]


@settings(max_examples=200, deadline=None)
@given(records())
def test_texts_are_format_endpoint_s(recs):
    """Addresses are formatted column-wise (IPv4 in Arrow, IPv6 once per address) as
    ``format_endpoint`` formats one record: trailing zero bytes, ``::1`` (not an IPv4
    address), mapped IPv4 addresses."""
    table = ConnectionTable.from_records(recs)
    ip, endpoint = table.client_texts()
    assert endpoint.to_pylist() == [r.client for r in recs]
    assert ip.to_pylist() == [str(ipaddress.ip_address(r.client_ip)) for r in recs]
    ip, endpoint = table.server_texts()
    assert endpoint.to_pylist() == [r.server for r in recs]
    assert ip.to_pylist() == [str(ipaddress.ip_address(r.server_ip)) for r in recs]
    assert table.first_gaps_s2c() == {r.conn: r.first_gap_s2c for r in recs
                                      if r.first_gap_s2c is not None}


@given(st.lists(st.tuples(_IP, _IP, st.booleans()), max_size=10))
def test_where_picks_per_row(rows):
    a = Addresses.of([x for x, _, _ in rows])
    b = Addresses.of([y for _, y, _ in rows])
    pick = np.array([p for _, _, p in rows], bool)
    got = a.where(pick, b)
    assert [got.packed(i) for i in range(len(rows))] == [y if p else x for x, y, p in rows]


def test_an_index_past_the_end_is_an_index_error():
    table = ConnectionTable.from_records([])
    with pytest.raises(IndexError):
        table[0]
    assert list(table) == []


def _frame_per_record(recs: list[ConnectionRecord]) -> pd.DataFrame:
    """``Capture.connections`` built a record at a time, as it was before the table had
    columns: the reference the column-wise frame must equal."""
    def text(packed: bytes) -> str:
        return socket.inet_ntoa(packed) if len(packed) == 4 else str(ipaddress.ip_address(packed))

    def endpoint(ip: str, port: int) -> str:
        return f"{ip}:{port}" if ":" not in ip else f"[{ip}]:{port}"

    client_ip = [text(r.client_ip) for r in recs]
    server_ip = [text(r.server_ip) for r in recs]
    df = pd.DataFrame({
        "conn": [r.conn for r in recs],
        "channel": pd.Categorical([r.channel for r in recs], categories=CHANNELS),
        "client": [endpoint(ip, r.client_port) for ip, r in zip(client_ip, recs, strict=True)],
        "server": [endpoint(ip, r.server_port) for ip, r in zip(server_ip, recs, strict=True)],
        "client_ip": client_ip,
        "client_port": [r.client_port for r in recs],
        "server_ip": server_ip,
        "server_port": [r.server_port for r in recs],
        "main_conn": [r.main_conn for r in recs],
        "announced": [r.announced for r in recs],
        "dialect": [r.dialect for r in recs],
        "handshake_seen": [r.handshake_seen for r in recs],
        "start": pd.to_datetime([r.start_ns for r in recs], unit="ns", utc=True),
        "end": pd.to_datetime([r.end_ns for r in recs], unit="ns", utc=True),
        "close_reason": [r.close_reason for r in recs],
        "messages": [r.messages for r in recs],
        "bytes_c2s": [r.bytes_c2s for r in recs],
        "bytes_s2c": [r.bytes_s2c for r in recs],
        "lost_c2s": [r.lost_c2s for r in recs],
        "lost_s2c": [r.lost_s2c for r in recs],
    })
    df["duration"] = df["end"] - df["start"]
    df = schema.conform(df, schema.CONNECTIONS)
    return df.set_index(pd.Index(df["conn"].to_numpy(), name=None))


@settings(max_examples=150, deadline=None)
@given(records())
def test_the_frame_of_the_columns_is_the_frame_of_the_records(recs):
    """``connections_frame`` reads the columns (no record per row); it gives the frame a
    record at a time gives: values, dtypes, categories, nulls."""
    recs = [replace(r, start_ns=r.start_ns >> 2, end_ns=(r.start_ns >> 2) + (r.end_ns >> 3))
            for r in recs]  # durations that fit in a timedelta
    assume(recs)
    got = connections_frame(ConnectionTable.from_records(recs))
    pd.testing.assert_frame_equal(got, _frame_per_record(recs))
    pd.testing.assert_frame_equal(connections_frame(recs), got)

"""How ``Capture.messages`` holds its columns: endpoints as categories, one shared array
of nulls for every text column without a value (issue 9: compact tables)."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camprotool import encode, read_capture
from camprotool.analysis.frames import messages_frame
from camprotool.capture.writer import PcapngWriter

T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def heartbeats(clients: list[tuple[str, int]]) -> bytes:
    """Each client sends two heartbeats, answered by none."""
    w = PcapngWriter()
    t = T0
    for k, client in enumerate(clients):
        c = w.tcp(client, ("10.0.0.2", 9000 + k % 2), t)
        for _ in range(2):
            t += MS
            c.send("c2s", encode("Heartbeat", ""), t)
        c.close(t + MS)
    return w.getvalue()


@pytest.fixture(scope="module")
def cap():
    return read_capture(heartbeats([("10.0.0.9", 50001), ("10.0.0.1", 50000),
                                    ("10.0.0.5", 50002)]))


def test_endpoints_are_categories_of_the_connections_with_rows(cap):
    m, conns = cap.messages, cap.connections
    assert len(conns) == 3 and len(m) == 6
    for name in ("client", "server"):
        assert isinstance(m[name].dtype, pd.CategoricalDtype), name
        assert m[name].cat.categories.dtype == "str"
        # each row its connection's endpoint, as the connections table (str) says
        assert m[name].astype(str).tolist() == conns.loc[m["conn"], name].tolist(), name
        # the endpoints that have rows, sorted: what astype("category") of the text gives
        assert list(m[name].cat.categories) == sorted(set(m[name].astype(str))), name
    assert m["client"].cat.codes.dtype == np.int8  # a byte a row, not a string


def test_a_connection_without_rows_is_no_category(cap):
    """As in a chunk of ``iter_capture``: categories are what the rows hold."""
    d = cap.decoded
    quiet = replace(d.connections[0], conn=len(d.connections), client_port=50003)
    m = messages_frame(d.rows, [*d.connections, quiet], order=d.order)
    assert quiet.client not in m["client"].cat.categories
    pd.testing.assert_frame_equal(m, cap.messages)


def test_endpoints_still_compare_sort_and_group_as_text(cap):
    m = cap.messages
    assert (m["client"] == "10.0.0.1:50000").sum() == 2
    assert m["client"].str.endswith(":50000").sum() == 2
    assert m.sort_values("client", kind="stable")["client"].astype(str).tolist() == sorted(
        m["client"].astype(str))
    assert m.groupby("server").size().to_dict() == {"10.0.0.2:9000": 4, "10.0.0.2:9001": 2}
    merged = m.merge(cap.connections[["client", "start"]], on="client")
    assert len(merged) == len(m)


def _null_text_buffers(m: pd.DataFrame) -> dict[str, int]:
    """Each all-null ``str`` column's offsets buffer address."""
    out = {}
    for name in m.columns:
        if str(m[name].dtype) == "str" and m[name].isna().all():
            chunks = m[name].array._pa_array.chunks
            assert len(chunks) == 1, name
            out[name] = chunks[0].buffers()[1].address
    return out


@pytest.mark.parametrize("reordered", [False, True])
def test_text_columns_without_a_value_share_one_array(cap, reordered):
    d = cap.decoded
    order = np.arange(d.rows.num_rows)[::-1].copy() if reordered else d.order
    m = messages_frame(d.rows, d.connections, order=order)
    shared = _null_text_buffers(m)
    assert {"error", "user", "password", "reason", "camera_id"} <= shared.keys()
    assert len(set(shared.values())) == 1, shared
    assert m["params"].notna().all()  # "" is a value: params keeps its own array


def test_concatenating_two_captures_gives_text_or_unions_categories(cap):
    """The documented conversion: pandas' concat of category columns whose categories
    differ gives ``str`` (same values); ``union_categoricals`` keeps categories."""
    other = read_capture(heartbeats([("10.0.0.3", 50004)])).messages
    mine = cap.messages
    both = pd.concat([mine, other], ignore_index=True)
    assert str(both["client"].dtype) == "str"
    assert both["client"].tolist() == [*mine["client"].astype(str), *other["client"]]
    union = pd.api.types.union_categoricals([mine["client"], other["client"]],
                                            sort_categories=True)
    assert list(union.categories) == sorted(set(both["client"]))
    assert list(union.astype(str)) == both["client"].tolist()
    same = pd.concat([mine, mine], ignore_index=True)  # same categories: stay categories
    assert same["client"].dtype == mine["client"].dtype


def test_empty_capture_has_empty_endpoint_categories():
    m = read_capture(PcapngWriter().getvalue()).messages
    for name in ("client", "server"):
        assert isinstance(m[name].dtype, pd.CategoricalDtype)
        assert len(m[name].cat.categories) == 0


def test_a_mostly_sorted_order_is_applied_by_slices_and_gives_the_same_frame(monkeypatch):
    """Rows carried across a window seam: the frame is made of zero-copy slices and small
    takes, and equals the frame a take of every column makes."""
    from camprotool.analysis import frames
    from camprotool.capture import reorder
    from camprotool.capture.decode import decode_file

    d = decode_file(heartbeats([("10.0.1.1", 40000 + k) for k in range(60)]))
    n = d.rows.num_rows
    assert n == 120
    order = np.arange(n)
    order[n // 3:n // 3 + 5] = order[n // 3:n // 3 + 5][::-1]  # a few rows displaced
    order[-3:] = order[-3:][::-1]
    monkeypatch.setattr(reorder, "RUN", 4)
    pieces = reorder.pieces(order)
    assert pieces is not None and any(local is not None for _, _, local in pieces)
    sliced = frames.messages_frame(d.rows, d.connections, order=order)
    monkeypatch.setattr(reorder, "pieces", lambda order: None)
    taken = frames.messages_frame(d.rows, d.connections, order=order)
    pd.testing.assert_frame_equal(sliced, taken)
    assert sliced["frame"].tolist() == d.rows["frame"].to_numpy()[order].tolist()


def test_endpoint_texts_are_what_format_endpoint_writes():
    """IPv4 ones are made column-wise, others through format_endpoint: the same text."""
    from camprotool.analysis.frames import _endpoint_texts
    from camprotool.capture.packets import format_endpoint

    v4 = [bytes([10, 0, k, 255 - k]) for k in range(3)] + [bytes(4)]
    v6 = [bytes(15) + b"\x01", bytes.fromhex("20010db8000000000000000000000001")]
    for ips in (v4, v4 + v6, v6, []):
        records = [SimpleNamespace(client_ip=ip, client_port=port)
                   for ip, port in zip(ips, range(0, 70000, 9000), strict=False)]
        assert _endpoint_texts(records, "client").to_pylist() == [
            format_endpoint(r.client_ip, r.client_port) for r in records]
    live = [SimpleNamespace(server="10.0.0.2:9000"), SimpleNamespace(server="[::1]:9001")]
    assert _endpoint_texts(live, "server").to_pylist() == ["10.0.0.2:9000", "[::1]:9001"]


def _chunked(values: list, kind: pa.DataType, cuts: list[int], skip: int) -> pa.ChunkedArray:
    """``values`` in chunks cut at ``cuts``, each a slice starting ``skip`` rows inside
    a larger array (as a window's chunk is); numbers have junk under their nulls
    (Arrow leaves those bytes undefined)."""
    bounds = [0, *sorted(c % (len(values) + 1) for c in cuts), len(values)]
    return pa.chunked_array([_junk_under_nulls(pa.array([None] * skip + values[a:b], kind))
                             .slice(skip) for a, b in pairwise(bounds)], kind)


def _junk_under_nulls(array: pa.Array) -> pa.Array:
    if array.type != pa.int64() or not array.null_count:
        return array
    values = np.frombuffer(array.buffers()[1], np.int64, count=len(array)).copy()
    values[~array.is_valid().to_numpy(zero_copy_only=False)] = 12345
    return pa.Array.from_buffers(array.type, len(array),
                                 [array.buffers()[0], pa.py_buffer(values)], array.null_count)


@settings(max_examples=200, deadline=None)
@given(st.data(), st.sampled_from([("Int64", pa.int64()), ("UInt16", pa.int64()),
                                   ("boolean", pa.bool_())]),
       st.lists(st.integers(0, 60), max_size=3), st.integers(0, 9), st.booleans())
def test_nullable_columns_from_buffers_equal_arrow_conversion(data, kinds, cuts, skip,
                                                              reorder):
    """Values and validity read from each chunk's buffers (any chunking, slices, an
    order or none) give what ``fill_null`` and ``to_pandas`` give."""
    from camprotool.analysis.frames import _Columns

    dtype, kind = kinds
    value = st.booleans() if kind == pa.bool_() else st.integers(0, 2**40)
    values = data.draw(st.lists(st.one_of(st.none(), value), max_size=50))
    column = _chunked(values, kind, cuts, skip)
    order = np.array(data.draw(st.permutations(range(len(values)))), np.int64) \
        if reorder else None
    got = _Columns(order, len(values), {}).field(pa.table({"x": column}), "x", dtype)
    want = pd.array(values, dtype="Int64" if dtype == "UInt16" else dtype)
    if dtype == "UInt16":
        want = want.astype("UInt16")  # the port column keeps the low 16 bits, as before
    if order is not None:
        want = want[order]
    pd.testing.assert_extension_array_equal(got, want)
    assert (got._data[got.isna()] == 0).all()  # 0 under a null, as fill_null(0) gave


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["c2s", "s2c", "s2x", "sc", "s2cc"]), max_size=20),
       st.lists(st.integers(0, 30), max_size=2), st.integers(0, 4))
def test_directions_are_read_in_place_or_compared(values, cuts, skip):
    from camprotool.analysis.frames import _Columns, _s2c

    for kind in (pa.string(), pa.large_string()):
        column = _chunked(values, kind, cuts, skip)
        got = _s2c(column, _Columns(None, len(values), {}))
        assert got.dtype == np.int8
        assert got.tolist() == [int(v == "s2c") for v in values]


@pytest.mark.parametrize("name", ["sample.pcapng", "download.pcapng", "failed_sync.pcapng"])
def test_a_connection_table_and_its_records_give_the_same_frame(name):
    """``messages_frame`` reads a capture's :class:`ConnectionTable` column-wise and a
    live table's records one by one: both give the same frame, records in any order."""
    from pathlib import Path

    d = read_capture(Path(__file__).parents[2] / "captures" / name).decoded
    table = d.connections
    records = list(table)[::-1]
    by_table = messages_frame(d.rows, table, order=d.order)
    by_records = messages_frame(d.rows, records, order=d.order)
    assert len(by_table)
    pd.testing.assert_frame_equal(by_table, by_records)


def test_the_frame_holds_the_decoders_numbers_and_users_can_write_to_them():
    """``Capture.messages`` takes the int64 columns ``put_in_order`` made as they are
    (one copy of the numbers between frame and decoder), and they are writable: a
    capture read in one window once gave read-only views of Arrow's buffers."""
    cap = read_capture(heartbeats([("10.0.1.1", 40000 + k) for k in range(3)]))
    m = cap.messages
    numbers = cap.decoded.numbers
    assert np.shares_memory(m["conn"].to_numpy(), numbers["conn"][0])
    assert np.shares_memory(m["frame"].to_numpy(), numbers["frame"][0])
    assert np.shares_memory(m["stream_offset"].to_numpy(), numbers["end"][0])
    assert np.shares_memory(m["ts"].array._ndarray, numbers["ts_ns"][0])
    assert np.shares_memory(m["camera_count"].array._data, numbers["camera_count"][0])
    before = m.loc[1, "ts"]
    for name in ("ts", "conn", "frame", "stream_offset", "camera_count", "port", "online"):
        m.loc[0, name] = m.loc[1, name]
    assert m.loc[0, "ts"] == before and m.loc[0, "conn"] == m.loc[1, "conn"]


_ipv4 = st.binary(min_size=4, max_size=4)
_ipv6 = st.binary(min_size=16, max_size=16)


@settings(max_examples=200, deadline=None)
@given(st.data(), st.lists(st.tuples(st.one_of(_ipv4, _ipv4, _ipv6), st.integers(0, 65535)),
                           min_size=1, max_size=30))
def test_endpoints_told_apart_by_number_are_those_told_apart_by_text(data, ends):
    """An all-IPv4 connection table's endpoints are found by number (address and port
    as one integer), only the distinct ones written as text: the same categories and
    codes as the text of every connection gives (a table with IPv6 takes that route)."""
    from camprotool.analysis.frames import _Ends
    from camprotool.capture.conntable import ConnectionRecord, ConnectionTable

    few = data.draw(st.lists(st.sampled_from(ends), min_size=len(ends), max_size=len(ends)))
    records = [ConnectionRecord(k, ip, port, sip, sport, False, True, 0, 0, None, None,
                                0, 0, 0, 0)
               for k, ((ip, port), (sip, sport)) in enumerate(zip(ends, few, strict=True))]
    table = ConnectionTable.from_records(records)
    rows = np.array(data.draw(st.lists(st.integers(0, len(records) - 1), max_size=40)),
                    np.int64)
    for side in ("client", "server"):
        by_number = _Ends(table, rows).endpoints(side)
        by_text = _Ends(records, rows).endpoints(side)
        assert list(by_number.categories) == list(by_text.categories)
        assert by_number.codes.tolist() == by_text.codes.tolist()
        assert by_number.codes.dtype == by_text.codes.dtype
        # categories not checked again (distinct by making) equal checked ones
        checked = pd.CategoricalDtype(pd.Index(list(by_number.categories), dtype="str"))
        assert by_number.dtype == checked and by_text.dtype == checked

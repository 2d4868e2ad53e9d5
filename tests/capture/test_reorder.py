"""Row orders applied to Arrow columns (``camprotool.capture.reorder``), and the
decoded rows put in time order column by column (``DecodedCapture.put_in_order``)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pyarrow as pa
import pytest
from conversations import T0, main_session
from hypothesis import given, settings
from hypothesis import strategies as st

from camprotool.capture import reorder
from camprotool.capture.decode import DecodedCapture, decode_file
from camprotool.capture.writer import PcapngWriter

_maybe_int = st.one_of(st.none(), st.integers(-2**63, 2**63 - 1))


@settings(max_examples=200, deadline=None)
@given(st.lists(_maybe_int, max_size=80))
def test_a_number_view_is_the_arrow_array_of_its_values(values):
    """The view over NumPy values (0 under a null) and null flags reads as Arrow's own
    array of the same numbers, without a copy of them."""
    missing = np.array([v is None for v in values], bool)
    numbers = np.array([0 if v is None else v for v in values], np.int64)
    view = reorder.number_view(numbers, missing)
    assert view.equals(pa.array(values, pa.int64()))
    assert view.buffers()[1].address == numbers.ctypes.data
    plain = reorder.number_view(numbers, None)
    assert plain.null_count == 0 and plain.to_pylist() == numbers.tolist()


@settings(max_examples=100, deadline=None)
@given(st.data(), st.integers(0, 60), st.lists(st.integers(1, 59), max_size=3))
def test_arrow_and_numpy_reorders_equal_a_take(data, n, cuts):
    """Any order, as slices and takes or one take, gives what ``take`` gives; a column
    of nulls only is its own reorder."""
    order = np.array(data.draw(st.permutations(range(n))), np.int64)
    values = data.draw(st.lists(st.one_of(st.none(), st.text(max_size=3)), min_size=n,
                                max_size=n))
    bounds = [0, *sorted(c for c in cuts if c < n), n]
    column = pa.chunked_array([pa.array(values[a:b], pa.large_string())
                               for a, b in pairwise(bounds)],
                              pa.large_string())
    want = column.take(pa.array(order)).to_pylist()
    for run in (2, 4096):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(reorder, "RUN", run)
            r = reorder.Reorder(order, n)
            assert r.arrow(column).to_pylist() == want
            numbers = np.arange(n, dtype=np.int64) * 3
            assert r.numpy(numbers).tolist() == (numbers[order]).tolist()
    nulls = pa.chunked_array([pa.nulls(n, pa.large_string())])
    assert reorder.Reorder(order, n).arrow(nulls) is nulls


@settings(max_examples=150, deadline=None)
@given(st.data(), st.integers(0, 80), st.lists(st.integers(1, 79), max_size=3))
def test_spans_permuted_in_place_equal_a_take(data, n, cuts):
    """An order that is the identity but for spans each permuted within itself (the
    fast engine's rows near a window seam) is applied by permuting those spans of a
    whole copy: numbers, nullable numbers and text equal a ``take``."""
    order = np.arange(n)
    marks = sorted(set(data.draw(st.lists(st.integers(0, n), max_size=6))))
    for lo, hi in zip(marks[::2], marks[1::2], strict=False):
        order[lo:hi] = lo + np.array(data.draw(st.permutations(range(hi - lo))), np.int64)
    values = data.draw(st.lists(_maybe_int, min_size=n, max_size=n))
    bounds = [0, *sorted(c for c in cuts if c < n), n]
    column = pa.chunked_array([pa.array(values[a:b], pa.int64()) for a, b in pairwise(bounds)],
                              pa.int64())
    want = column.take(pa.array(order)).to_pylist()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reorder, "RUN", 2)
        mp.setattr(reorder, "SPAN_SHARE", 1.0)  # spans however wide: this test's orders
        r = reorder.Reorder(order, n)
        assert r.spans is not None
        again = np.arange(n)
        for start, local in r.spans:
            again[start:start + len(local)] = start + local
        assert again.tolist() == order.tolist()
        got, missing = r.nullable(column, np.int64)
        assert [None if m else int(v) for v, m in zip(got, missing, strict=True)] == want
        numbers = np.arange(n, dtype=np.int64) * 7
        assert r.numpy(numbers).tolist() == numbers[order].tolist()
        text = column.cast(pa.large_string())
        assert r.arrow(text).to_pylist() == text.take(pa.array(order)).to_pylist()


def _capture(connections: int) -> bytes:
    w = PcapngWriter()
    for k in range(connections):
        main_session(w, T0 + k * 1_000_000, client=("10.0.0.9", 41000 + k)).close(T0 + 10**9)
    return w.getvalue()


def test_put_in_order_sorts_every_column_and_shares_the_numbers():
    d = decode_file(_capture(4))
    n = d.rows.num_rows
    order = np.arange(n)[::-1].copy()  # as if the decoder's rows came reversed
    reversed_rows = d.rows.take(pa.array(order))
    shuffled = DecodedCapture(d.source, d.format, d.packets, reversed_rows, d.connections,
                              order=order)
    shuffled.put_in_order()
    assert shuffled.order is None
    assert shuffled.rows.equals(d.rows)
    for name, (values, missing) in shuffled.numbers.items():
        column = shuffled.rows[name]
        assert column.num_chunks == 1
        assert column.chunk(0).buffers()[1].address == values.ctypes.data
        assert values.flags.writeable
        assert missing is None or missing.tolist() == column.is_null().to_pylist()
    rows = shuffled.rows
    shuffled.put_in_order()  # once only
    assert shuffled.rows is rows
    assert shuffled.messages is rows


def test_a_failed_sort_says_so_instead_of_leaving_rows_half_sorted(monkeypatch):
    d = decode_file(_capture(2))
    d.order = np.arange(d.rows.num_rows)[::-1].copy()

    def fail(self, column):
        raise MemoryError("no room")

    monkeypatch.setattr(reorder.Reorder, "numpy", fail)
    with pytest.raises(MemoryError):
        d.put_in_order()
    with pytest.raises(RuntimeError, match=r"lost when rewriting them in place failed.*no room"):
        d.messages  # noqa: B018


def test_nullable_columns_are_new_arrays_whatever_their_chunks():
    """Values and null flags are arrays of their own (0 under a null), never views of
    the column's buffers, which can be writable when made from NumPy: writing to a
    frame's column must not change the decoder's rows."""
    values = np.array([5, 7, 9], np.int64)
    column = pa.Array.from_buffers(pa.int64(), 3, [None, pa.py_buffer(values)])
    with_nulls = pa.array([1, None, 3], pa.int64())
    for order in (None, np.array([2, 0, 1])):
        take = reorder.Reorder(order, 3)
        for col in (column, pa.chunked_array([column]), with_nulls):
            got, missing = take.nullable(col, np.int64)
            want = col.take(pa.array(order)) if order is not None else col
            assert got.tolist() == [0 if v is None else v for v in want.to_pylist()]
            assert missing.tolist() == [v is None for v in want.to_pylist()]
            got[:] = -1
    assert values.tolist() == [5, 7, 9]

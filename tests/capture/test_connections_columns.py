"""The column helpers of ``build_connections`` equal the plain NumPy/Arrow operations
they stand in for (they exist only to do less work on large captures)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from camprotool.capture.connections import (
    _command_positions,
    _is_sorted,
    _rows_of,
    _sorting_order,
)
from camprotool.protocol.bulk import SCHEMA
from camprotool.protocol.catalogue import COMMANDS


@st.composite
def sort_keys(draw) -> tuple[np.ndarray, ...]:
    """Four keys of few values (many ties on each), often already in order or nearly."""
    n = draw(st.integers(0, 40))
    keys = tuple(np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), np.int64)
                 for _ in range(4))
    if n and draw(st.booleans()):
        order = np.lexsort(keys)
        moved = draw(st.lists(st.integers(0, n - 1), max_size=3))  # a few rows out of place
        order = np.array([i for i in order if i not in moved] + moved, np.int64)
        keys = tuple(k[order] for k in keys)
    return keys


def _in_order(keys: tuple[np.ndarray, ...]) -> bool:
    return bool(np.array_equal(np.lexsort(keys), np.arange(len(keys[0]))))


@settings(max_examples=300, deadline=None)
@given(sort_keys(), st.randoms(use_true_random=False))
def test_is_sorted_is_lexsort_leaving_the_rows_in_place(keys, random):
    assert _is_sorted(keys) == _in_order(keys)
    order = np.array(random.sample(range(len(keys[0])), len(keys[0])), np.int64)
    assert _is_sorted(keys, order) == _in_order(tuple(k[order] for k in keys))


@settings(max_examples=300, deadline=None)
@given(sort_keys())
def test_sorting_order_is_lexsort(keys):
    assert np.array_equal(_sorting_order(keys), np.lexsort(keys))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.none() | st.text(max_size=3), max_size=6), max_size=5),
       st.randoms(use_true_random=False))
def test_rows_of_is_take(chunks, random):
    column = pa.chunked_array([pa.array(c, pa.large_string()) for c in chunks],
                              pa.large_string())
    rows = np.array(sorted(random.sample(range(len(column)), random.randint(0, len(column)))),
                    np.int64)
    assert _rows_of(column, rows).to_pylist() == column.take(pa.array(rows)).to_pylist()


_NAMES = [c.name for c in COMMANDS]


@given(st.lists(st.lists(st.sampled_from(_NAMES) | st.text(max_size=25), max_size=6),
                max_size=4))
def test_command_positions_are_catalogue_positions(chunks):
    column = pa.chunked_array([pa.array(c, pa.large_string()) for c in chunks],
                              pa.large_string())
    table = pa.table({"command": column}, schema=pa.schema([SCHEMA.field("command")]))
    expected = [_NAMES.index(name) if name in _NAMES else -1 for c in chunks for name in c]
    assert _command_positions(table).tolist() == expected

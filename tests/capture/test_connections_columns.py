"""The column helpers of ``build_connections`` equal the plain NumPy/Arrow operations
they stand in for (they exist only to do less work on large captures)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from camprotool.capture.connections import (
    COMMAND_TYPE,
    _is_sorted,
    _rows_of,
    _sorting_order,
    coded_commands,
    command_codes,
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


@given(st.lists(st.tuples(st.lists(st.text("aZ.|界", max_size=8), max_size=4, unique=True),
                          st.lists(st.integers(0, 200) | st.none(), max_size=8)),
                max_size=4))
def test_decoder_codes_read_as_catalogue_positions_then_other_names_sorted(chunks):
    """Each chunk as the decoder codes it (the catalogue's names, then the others met, in
    any order; rows may use any of them or none): codes into one list of names, the
    catalogue's first, then the names the rows use, sorted."""
    arrays, flat = [], []
    for others, picks in chunks:
        others = [n for n in others if n not in _NAMES]
        names = _NAMES + others
        rows = [None if p is None else p % len(names) for p in picks]
        arrays.append(pa.DictionaryArray.from_arrays(pa.array(rows, pa.int32()),
                                                     pa.array(names, pa.string())))
        flat += [None if r is None else names[r] for r in rows]
    column = pa.chunked_array(arrays, SCHEMA.field("command").type)
    coded, names = coded_commands(column)
    assert names == _NAMES + sorted({n for n in flat if n is not None} - set(_NAMES))
    assert coded.type == COMMAND_TYPE and coded.to_pylist() == flat
    assert all(chunk.dictionary.to_pylist() == names for chunk in coded.chunks)
    codes = command_codes(coded)
    assert codes.dtype == np.int32
    assert [None if c < 0 else names[c] for c in codes.tolist()] == flat
    # text codes the same way
    text_coded, text_names = coded_commands(pa.chunked_array(
        [a.cast(pa.large_string()) for a in arrays], pa.large_string()))
    assert text_names == names and command_codes(text_coded).tolist() == codes.tolist()

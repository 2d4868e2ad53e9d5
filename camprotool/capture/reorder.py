"""Put Arrow columns in one row order, sharing buffers where the rows already are.

The fast engine's rows come out in time order but for a few carried across a
window seam; a ``take`` of every column for those would copy the whole table.
:class:`Reorder` copies only what moves: runs of rows already in order stay
zero-copy slices, and what lies between them is taken from the few rows it
comes from. Integer columns become NumPy arrays (what pandas holds them as),
and :func:`number_view` gives Arrow a view of such an array back, so the
decoder's table and the dataframe made from it hold their numbers once.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

#: a run of rows already in order this long is kept as a slice when reordering
RUN = 4096
#: the largest share of the rows an order's spans (:func:`spans`) may hold
SPAN_SHARE = 0.1


class Reorder:
    """Apply one row order (``order``: row positions, None: as they are) to columns of
    several kinds; ``n``: the table's rows."""

    def __init__(self, order: np.ndarray | None, n: int = 0) -> None:
        self.order = order
        self.indices = None if order is None else pa.array(order)
        self.n = n
        #: when the order moves few rows, each within a short span (the fast engine's
        #: rows out of place near a window seam): (start, local) of each span, so a NumPy
        #: column is copied whole, then each span permuted in place (:meth:`gathered`)
        self.spans = None if order is None else spans(order)
        self.pieces = None if order is None else pieces(order) if self.spans is None \
            else _span_pieces(self.spans, len(order))
        self.numpy_pieces = None if self.pieces is None else [
            (start, length, None if local is None else local.to_numpy())
            for start, length, local in self.pieces]
        # the rows the take pieces move, as positions in their sources laid end to end
        # (one take a column: :meth:`arrow`)
        self._moved: pa.Array | None = None
        if self.numpy_pieces is not None:
            at, moved = 0, []
            for _, length, local in self.numpy_pieces:
                if local is not None:
                    moved.append(local + at)
                    at += length
            self._moved = pa.array(np.concatenate(moved)) if moved else None

    def numpy(self, column: pa.ChunkedArray | pa.Array | np.ndarray) -> np.ndarray:
        """``column`` (nulls as Arrow's ``to_numpy`` gives them) in order, as NumPy."""
        if isinstance(column, np.ndarray):
            return self.gathered([column])
        if column.null_count:
            return self.gathered([column.to_numpy(zero_copy_only=False)])
        if self.order is None:
            return column.to_numpy()
        return self.gathered([c.to_numpy() for c in chunks(column)])  # views of each chunk

    def gathered(self, parts: list[np.ndarray]) -> np.ndarray:
        """The rows of a column held as consecutive ``parts`` (views of its chunks), in
        order, in one new array (as they are when there is no order and one part).

        Why from the parts: joining them first, then reordering, made two arrays of
        the whole column where one is kept (a column of 185,000 int64 is 366 fresh
        pages each time).
        """
        if len(parts) == 1 and self.order is None:
            return parts[0]
        bounds = np.zeros(len(parts) + 1, np.int64)
        np.cumsum([len(p) for p in parts], out=bounds[1:])
        out = np.empty(int(bounds[-1]), parts[0].dtype)
        if self.order is None:
            return np.concatenate(parts, out=out)
        if self.spans is not None:
            np.concatenate(parts, out=out)
            for start, within in self.spans:
                span = out[start:start + len(within)]
                span[:] = span[within]  # the fancy index reads a copy first
            return out
        if self.numpy_pieces is None:  # scattered: the whole column, then one gather
            np.take(np.concatenate(parts), self.order, out=out)
            return out
        at = 0
        for start, length, local in self.numpy_pieces:
            if local is None:  # rows in order: straight from the parts they are in
                for piece in _rows(parts, bounds, start, start + length):
                    out[at:at + len(piece)] = piece
                    at += len(piece)
            else:
                rows = _rows(parts, bounds, start, start + length)
                whole = rows[0] if len(rows) == 1 else np.concatenate(rows)
                np.take(whole, local, out=out[at:at + len(local)])
                at += len(local)
        return out

    def arrow(self, column: pa.ChunkedArray | pa.Array) -> pa.Array | pa.ChunkedArray:
        """The column in order: as it is (chunks too: pandas wraps them without a copy,
        where joining them would copy) when no reorder is asked."""
        if self.indices is None or column.null_count == len(column):
            return column  # nulls in any order are the same nulls
        if self.pieces is not None:  # mostly in order: slices of it, and a few takes
            chunked = column if isinstance(column, pa.ChunkedArray) \
                else pa.chunked_array([column])
            moved = None
            if self._moved is not None:
                # one take of every moved row from the rows around them (a take over
                # the whole column would join all its chunks; one a piece cost a call
                # each)
                sources = [c for start, length, local in self.pieces if local is not None
                           for c in chunked.slice(start, length).chunks]
                moved = pa.chunked_array(sources, column.type).take(self._moved)
            out, at = [], 0
            for start, length, local in self.pieces:
                if local is None:
                    out += chunked.slice(start, length).chunks
                else:
                    assert moved is not None
                    out += moved.slice(at, len(local)).chunks
                    at += len(local)
            return pa.chunked_array(out, column.type)
        return one_chunk(column).take(self.indices)

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
        values: list[np.ndarray] = []  # views of the chunks' buffers where they can be
        missing: list[np.ndarray] = []
        for chunk in chunks(column):
            size = len(chunk)
            if not size:
                continue
            validity, data = chunk.buffers()[:2]
            part = bits(data, chunk.offset, size) if kind is np.bool_ \
                else np.frombuffer(data, chunk.type.to_pandas_dtype(), count=size,
                                   offset=chunk.offset * chunk.type.byte_width)
            values.append(part)
            missing.append(~bits(validity, chunk.offset, size) if chunk.null_count
                           else np.zeros(size, bool))
        if not values:
            return np.zeros(0, kind), np.zeros(0, bool)
        # one new array of each, then 0 under the nulls in place (as fill_null(0) gave):
        # zeroing each chunk first made a second copy of every value. By a product with
        # the valid flags, not ``out[flags] = 0``: an assignment through a mask branches
        # on every row (0.7 ms against 0.1 for 185,000 rows, 60 % null)
        out = self.gathered_copy(values, kind)
        flags = self.gathered_copy(missing)
        if column.null_count:
            np.multiply(out, ~flags, out=out)
        return out, flags

    def gathered_copy(self, parts: list[np.ndarray],
                      dtype: type[np.generic] | None = None) -> np.ndarray:
        """:meth:`gathered` as ``dtype`` (None: the parts'), always a new array, never
        one of ``parts`` (a view of an Arrow buffer, writable when the buffer was made
        from NumPy): pandas users write to their columns, and the caller may write to
        it. Made once: a cast is the copy."""
        out = self.gathered(parts)
        if dtype is not None and out.dtype != dtype:
            return out.astype(dtype)
        return out.copy() if any(out is part for part in parts) else out


def number_view(values: np.ndarray, missing: np.ndarray | None,
                nulls: int | None = None) -> pa.Array:
    """An Arrow integer array over ``values`` (no copy; ``missing``: null flags or None;
    ``nulls``: how many, when known: no pass over the flags to count them).

    Why: pandas holds a number column as a NumPy array of its own; an Arrow view
    of that array lets the decoder's table drop its copy of the same numbers.
    """
    arrow_type = pa.from_numpy_dtype(values.dtype)
    if missing is not None and nulls is None:
        nulls = int(np.count_nonzero(missing))
    if missing is None or not nulls:
        return pa.Array.from_buffers(arrow_type, len(values), [None, pa.py_buffer(values)])
    validity = pa.py_buffer(np.packbits(~missing, bitorder="little"))
    return pa.Array.from_buffers(arrow_type, len(values), [validity, pa.py_buffer(values)],
                                 null_count=nulls)


def one_chunk(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One array, without a copy when there is one chunk (``combine_chunks`` copies)."""
    if not isinstance(column, pa.ChunkedArray):
        return column
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def spans(order: np.ndarray) -> list[tuple[int, np.ndarray]] | None:
    """``order`` as the spans it permutes within themselves, (start, local: positions
    counted from start) each, the rows outside them staying where they are; None when
    those spans hold more than :data:`SPAN_SHARE` of the rows.

    Why: the fast engine's rows are out of order only where a window's first rows
    belong before the last rows of the window before. Copying a column whole and
    permuting those spans in place costs one copy and a few small gathers, where a
    slice and a copy a piece cost Python work per piece and column (8 ms of
    185,000 messages, 15 pieces). A span ends at each moved row ``i`` where the
    rows up to it are exactly rows 0 to ``i`` (the running maximum of ``order`` is
    ``i``): only the moved rows are read for it.
    """
    moved = np.flatnonzero(order != np.arange(len(order)))
    if len(moved) > len(order) * SPAN_SHARE:
        return None
    # rows in their place between moved ones do not change the running maximum
    ends = moved[np.maximum.accumulate(order[moved]) == moved]
    starts = moved[np.searchsorted(moved, ends[:-1], "right")] if len(ends) > 1 else moved[:0]
    starts = np.concatenate([moved[:1], starts])
    if int((ends - starts + 1).sum()) > len(order) * SPAN_SHARE:
        return None
    return [(int(lo), order[lo:hi + 1] - lo) for lo, hi in zip(starts.tolist(), ends.tolist(),
                                                              strict=True)]


def _span_pieces(spans: list[tuple[int, np.ndarray]], n: int
                 ) -> list[tuple[int, int, pa.Array | None]]:
    """:func:`pieces` of an order that permutes ``spans`` only (:func:`spans`): a slice
    between two spans, a take in each."""
    out: list[tuple[int, int, pa.Array | None]] = []
    at = 0
    for start, local in spans:
        if start > at:
            out.append((at, start - at, None))
        out.append((start, len(local), pa.array(local)))
        at = start + len(local)
    if at < n:
        out.append((at, n - at, None))
    return out


def _rows(parts: list[np.ndarray], bounds: np.ndarray, lo: int, hi: int) -> list[np.ndarray]:
    """Rows ``lo`` to ``hi`` of the column ``parts`` hold one after another (``bounds``:
    where each part starts), as views of the parts they are in."""
    first = int(np.searchsorted(bounds, lo, "right")) - 1
    last = int(np.searchsorted(bounds, hi, "left"))
    return [parts[k][max(lo - int(bounds[k]), 0):min(hi, int(bounds[k + 1])) - int(bounds[k])]
            for k in range(first, last)]


def chunks(column: pa.ChunkedArray | pa.Array) -> list[pa.Array]:
    return column.chunks if isinstance(column, pa.ChunkedArray) else [column]


def bits(buffer: pa.Buffer, offset: int, size: int) -> np.ndarray:
    """Bits ``offset`` to ``offset + size`` of an Arrow bitmap (validity or booleans),
    as bools."""
    first = offset // 8
    packed = np.frombuffer(buffer, np.uint8, count=(offset + size + 7) // 8 - first,
                           offset=first)
    start = offset - 8 * first
    return np.unpackbits(packed, bitorder="little")[start:start + size].view(bool)


def pieces(order: np.ndarray) -> list[tuple[int, int, pa.Array | None]] | None:
    """``order`` as pieces (start, length, local): zero-copy slices of the rows already
    in order (``local`` None), and for what lies between them a ``take`` (``local``,
    counted from ``start``) from the few rows they come from; None when it is too
    scattered (less than 90 % of the rows in runs of :data:`RUN`).
    """
    n = len(order)
    if n < 2 * RUN:
        return None
    cut = np.flatnonzero(np.diff(order) != 1) + 1
    starts = np.concatenate([[0], cut])
    lengths = np.diff(np.concatenate([starts, [n]]))
    long_runs = np.flatnonzero(lengths >= RUN)
    if lengths[long_runs].sum() < n * 0.9:
        return None
    out: list[tuple[int, int, pa.Array | None]] = []

    def take(rows: np.ndarray) -> None:
        lo, hi = int(rows.min()), int(rows.max()) + 1
        out.append((lo, hi - lo, pa.array(rows - lo)))

    at = 0
    for r in long_runs.tolist():
        s, m = int(starts[r]), int(lengths[r])
        if s > at:
            take(order[at:s])
        out.append((int(order[s]), m, None))
        at = s + m
    if at < n:
        take(order[at:])
    return out

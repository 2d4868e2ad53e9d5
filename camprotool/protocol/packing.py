"""Pack byte ranges into an Arrow binary array with one compiled copy loop.

Why: the bulk decoder builds every text column (parameters, names, ids) from
ranges of one source buffer. Arrow's ``take`` over a "tiling" of the source
does it without Python per value but walks the tiles generically; a plain
loop that sums lengths and copies bytes is several times faster. numba is
imported on first use, so the protocol core stays light for the client and
server, which never pack large columns.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_kernels = None


def _compiled():
    global _kernels
    if _kernels is None:
        from numba import njit

        @njit(cache=True, nogil=True)
        def sizes(starts, ends, slots, null, offsets):
            at = 0
            offsets[0] = 0
            for k in range(len(slots)):
                if not null[k]:
                    i = slots[k]
                    at += ends[i] - starts[i]
                offsets[k + 1] = at

        @njit(cache=True, nogil=True)
        def copy(data, starts, slots, null, offsets, out):
            for k in range(len(slots)):
                if not null[k]:
                    o = starts[slots[k]]
                    out[offsets[k]:offsets[k + 1]] = data[o:o + offsets[k + 1] - offsets[k]]

        _kernels = (sizes, copy)
    return _kernels


def pack_ranges(data: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                slots: np.ndarray | None = None, null: np.ndarray | None = None) -> pa.Array:
    """``large_binary`` array of ``data[starts[i]:ends[i]]``, or of range ``slots[k]``
    per value (null where ``null``)."""
    sizes, copy = _compiled()
    starts = np.ascontiguousarray(starts, np.int64)
    ends = np.ascontiguousarray(ends, np.int64)
    if slots is None:
        slots = np.arange(len(starts), dtype=np.int64)
    slots = np.ascontiguousarray(slots, np.int64)
    n = len(slots)
    nulls = np.zeros(n, np.bool_) if null is None else np.ascontiguousarray(null, np.bool_)
    offsets = np.empty(n + 1, np.int64)
    sizes(starts, ends, slots, nulls, offsets)
    out = np.empty(int(offsets[-1]), np.uint8)
    copy(np.ascontiguousarray(data, np.uint8), starts, slots, nulls, offsets, out)
    null_count = int(nulls.sum())
    validity = None
    if null_count:
        validity = pa.py_buffer(np.packbits(~nulls, bitorder="little"))
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(out)], null_count)

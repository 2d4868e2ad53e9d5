"""Pack byte ranges into an Arrow binary array with one compiled copy loop.

Why: the bulk decoder builds every text column (parameters, names, ids) from
ranges of one source buffer. Arrow's ``take`` over a "tiling" of the source
does it without Python per value but walks the tiles generically; a plain
loop that sums lengths and copies 8 bytes at a time is several times faster
(:mod:`camprotool.protocol.bulk_kernels`). numba is imported on first use, so
the protocol core stays light for the client and server, which never pack
large columns.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_kernels = None


def _compiled():
    global _kernels
    if _kernels is None:
        from camprotool.protocol.bulk_kernels import copy_ranges, range_offsets, readonly

        _kernels = (range_offsets, copy_ranges, readonly)
    return _kernels


def pack_ranges(data: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                slots: np.ndarray | None = None, null: np.ndarray | None = None) -> pa.Array:
    """``large_binary`` array of ``data[starts[i]:ends[i]]`` (null where ``starts[i]`` is
    negative), or of range ``slots[k]`` per value (null where ``null``)."""
    offsets_of, copy, readonly = _compiled()
    starts = np.asarray(starts, np.int64)
    ends = np.asarray(ends, np.int64)
    if slots is not None:
        starts, ends = starts[slots], ends[slots]
        if null is not None:
            starts = np.where(null, -1, starts)
    starts = np.ascontiguousarray(starts)
    ends = np.ascontiguousarray(ends)
    n = len(starts)
    offsets = np.empty(n + 1, np.int64)
    null_count = offsets_of(starts, ends, offsets)
    size = int(offsets[-1])
    out = np.empty(size + 32, np.uint8)  # copy_ranges writes whole words
    copy(readonly(np.ascontiguousarray(data, np.uint8)), starts, offsets, out)
    validity = None
    if null_count:
        validity = pa.py_buffer(np.packbits(starts >= 0, bitorder="little"))
    buffers = [validity, pa.py_buffer(offsets), pa.py_buffer(out[:size])]
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, buffers, null_count)

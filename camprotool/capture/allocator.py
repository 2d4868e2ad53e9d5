"""Arrow's allocator while decoding captures: the system one, unless the user chose.

Why: pyarrow's default pool on Linux (mimalloc) keeps the pages of freed
buffers resident for reuse. Decoding frees a window's worth of buffers
every 32,768 packets, so with mimalloc those pages pile up; with the system
allocator (glibc) large buffers go back to the kernel when freed. Measured
with ``../shared/bench/speed.sh`` on a 2-core Xeon VM: per-file peak memory
115 MB -> 89 MB on 126,719 messages and 161 MB -> 119 MB on 185,156, at the
same speed (docs/capture-engine.md, "Memory").

Two steps, because Arrow's C++ code (compute kernels) reads its default pool
once, when pyarrow is imported: ``import camprotool`` sets
``ARROW_DEFAULT_MEMORY_POOL=system`` if pyarrow is not imported yet and the
variable is not set; the first decode then makes the system pool pyarrow's
default for Python-side allocations too. A user who sets
``ARROW_DEFAULT_MEMORY_POOL`` (``mimalloc``, ``jemalloc``, ``system``)
keeps the pool it names: camprotool then leaves the pool alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import mmap
import os
import sys
from collections.abc import Callable

import numpy as np
import pyarrow as pa

_chosen = False


def prefer_system_allocator() -> None:
    """Make the system allocator Arrow's default pool, once per process, unless
    ``ARROW_DEFAULT_MEMORY_POOL`` says otherwise."""
    global _chosen
    if _chosen:
        return
    _chosen = True
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL", "system") != "system":
        return
    pa.set_memory_pool(pa.system_memory_pool())


def _glibc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


_trim = _glibc_trim() if sys.platform.startswith("linux") else None


def _libc_madvise() -> Callable[[int, int, int], int] | None:
    """The C library's ``madvise`` (ctypes lets go of the GIL while it runs), or None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise


_madvise = _libc_madvise() if sys.platform.startswith("linux") else None


def drop_file_pages(mm: mmap.mmap, offset: int, length: int) -> None:
    """Let the kernel drop the whole pages of bytes ``offset`` to ``offset + length`` of
    the file map ``mm`` from this process (``MADV_DONTNEED``: they stay in the page
    cache): from the page holding ``offset`` to the one holding the end, not that one,
    and nothing past the map's end.

    Why not ``mmap.madvise``: it holds the GIL for the call, a fifth of a
    millisecond per window of a capture, while the capture engine's other thread
    waits to run Python. The map's address is read from the map at each call, never
    kept: a range is only ever one of this map's. Elsewhere than Linux,
    ``mmap.madvise`` where it exists.
    """
    page = mmap.PAGESIZE
    lo, hi = (offset // page) * page, (min(offset + length, len(mm)) // page) * page
    if lo < 0 or hi <= lo:
        return
    if _madvise is not None:
        view = np.frombuffer(mm, np.uint8)  # the map's address, for this call only
        _madvise(view.ctypes.data + lo, hi - lo, mmap.MADV_DONTNEED)
        del view
    elif hasattr(mm, "madvise"):
        with contextlib.suppress(OSError, ValueError):
            mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


def give_back_free_memory() -> None:
    """Return the C heap's free pages to the kernel (glibc's ``malloc_trim``).

    Why: glibc serves the window-sized buffers decoding makes (hundreds of KB)
    from its heap once it has seen larger ones freed, and keeps their pages
    when they are freed. After a decode those pages are 16 MB of resident
    memory no one uses on a capture of 185,000 messages (14 MB on 126,719):
    the peak of the dataframe built next stacks on them. A trim costs about
    a millisecond per 3 MB returned; elsewhere (musl, macOS) it does nothing.
    """
    if _trim is not None:
        _trim(0)

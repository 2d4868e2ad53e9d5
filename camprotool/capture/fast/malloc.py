"""Give big freed buffers back to the system (glibc's malloc), once per process.

Why: a decode allocates and frees NumPy buffers of every size from a few
hundred kilobytes to tens of megabytes, window after window. glibc raises
its mmap threshold to the size of each large block freed (up to 32 MiB), so
later buffers of that size come from the heap, and a freed heap block goes
back to the system only when it sits at the top. Measured on a 126,719-message
capture, that kept 30-50 MB resident that nothing used (``docs/capture-engine.md``).
Fixing the threshold at glibc's own starting value (128 KiB) stops the
drift: every big buffer is its own mapping and is unmapped when freed. It is
process-wide, as any ``mallopt`` is; ``CAMPROTOOL_MALLOC=keep`` leaves
malloc as it is. Other C libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
THRESHOLD = 128 * 1024  # glibc's own initial mmap threshold

_done = False


def return_big_buffers() -> bool:
    """Set glibc's mmap and trim thresholds once (True if they were set here)."""
    global _done
    if _done:
        return False
    _done = True
    if os.environ.get("CAMPROTOOL_MALLOC") == "keep" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        if not hasattr(libc, "gnu_get_libc_version"):
            return False  # not glibc
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD)) & bool(mallopt(M_TRIM_THRESHOLD,
                                                                      THRESHOLD))

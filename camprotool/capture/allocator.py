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

import os

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

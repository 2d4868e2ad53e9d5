"""Arrow's pool while decoding: the system allocator unless the user named one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = (
    "import {first}camprotool, pyarrow as pa\n"
    "from camprotool.capture.allocator import prefer_system_allocator\n"
    "prefer_system_allocator()\n"
    "print(pa.default_memory_pool().backend_name)\n"
)


def _pool(first: str = "", **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE.format(first=first)], env=environ,
                         capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.split()[-1]


def test_importing_camprotool_first_picks_the_system_pool() -> None:
    assert _pool() == "system"


def test_pyarrow_imported_before_still_decodes_with_the_system_pool() -> None:
    assert _pool(first="pyarrow, ") == "system"


@pytest.mark.parametrize("name", ["jemalloc", "mimalloc"])
def test_a_pool_the_user_names_is_kept(name: str) -> None:
    import pyarrow as pa

    if name not in pa.supported_memory_backends():
        pytest.skip(f"this pyarrow has no {name}")
    assert _pool(ARROW_DEFAULT_MEMORY_POOL=name) == name


def _mapped_kb(path) -> int:
    """Resident kB of this process's map of ``path`` (``/proc/self/smaps``)."""
    from pathlib import Path

    found, lines = None, Path("/proc/self/smaps").read_text().splitlines()
    for line in lines:
        if line.endswith(str(path)):
            found = 0
        elif found is not None and line.startswith("Rss:"):
            return int(line.split()[1])
    raise AssertionError(f"{path} is not mapped")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's madvise")
def test_dropped_file_pages_leave_the_process_and_read_back_the_same(tmp_path) -> None:
    """``drop_file_pages`` lets the kernel unmap a file map's pages from the process
    (the capture engine's resident memory follows its window); reading them again
    maps the same bytes back from the file."""
    import mmap

    import numpy as np

    from camprotool.capture.allocator import drop_file_pages

    data = bytes(range(256)) * (64 * 1024 // 256)
    path = tmp_path / "map.bin"
    path.write_bytes(data)
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    view = np.frombuffer(mm, np.uint8)
    assert int(view.sum()) == sum(data)  # every page read: mapped
    assert _mapped_kb(path) == 64
    drop_file_pages(mm, 4096, 8 * 4096)
    assert _mapped_kb(path) == 64 - 32
    assert bytes(view[4096:9 * 4096]) == data[4096:9 * 4096]
    del view
    mm.close()

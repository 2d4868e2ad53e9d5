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

"""glibc's thresholds are fixed once per process, and left alone when asked."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = ("from camprotool.capture.fast.malloc import return_big_buffers as r; "
        "print(r(), r())")


def _run(**env: str) -> str:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         env={**os.environ, **env}, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_set_once_per_process():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert _run() == "True False"


def test_keep_leaves_malloc_alone():
    assert _run(CAMPROTOOL_MALLOC="keep") == "False False"

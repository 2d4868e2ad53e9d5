"""The public surface: what the Contract promises is importable, and __all__ is complete."""

from __future__ import annotations

import subprocess
import sys

import camprotool

CONTRACT = {"read_capture", "Dialect", "encode", "Decoder", "Client", "EmulatorServer", "Proxy"}


def test_all_names_resolve():
    for name in camprotool.__all__:
        assert getattr(camprotool, name) is not None, name


def test_contract_names_are_exported():
    assert set(camprotool.__all__) >= CONTRACT


def test_all_covers_every_public_attribute():
    public = {n for n in dir(camprotool) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(camprotool, n)).__name__ == "module"}
    assert public - modules - {"annotations", "importlib", "TYPE_CHECKING", "Any"} <= set(
        camprotool.__all__
    )


def test_importing_the_core_does_not_load_pandas():
    code = "import sys, camprotool; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

"""Packaging: the extras fit the uses, make targets install only what they need, the wheel
is typed, ``--version`` works, and a missing extra is named in one line."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import camprotool

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_core_library_needs_no_jupyter_and_no_pyshark() -> None:
    core = _names(PYPROJECT["project"]["dependencies"])
    assert core == {"numpy", "pandas", "matplotlib", "pyarrow", "numba", "jinja2"}
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"jupyterlab", "ipywidgets", "ipykernel"} <= _names(extras["jupyter"])
    assert _names(extras["pyshark"]) == {"pyshark"}
    assert {"dask", "distributed"} <= _names(extras["dask"])
    # the suite tests everything, so the test extra pulls in the others
    itself = [r for r in extras["test"] if r.startswith("camprotool[")]
    assert len(itself) == 1
    assert set(itself[0][len("camprotool["):-1].split(",")) == {"jupyter", "pyshark", "dask"}


def test_version_everywhere() -> None:
    # one place: camprotool/_version.py, which the build reads (hatch's dynamic version)
    assert "version" not in PYPROJECT["project"]
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "camprotool/_version.py"
    from camprotool._version import __version__

    assert camprotool.__version__ == __version__ == importlib.metadata.version("camprotool")
    result = subprocess.run([sys.executable, "-m", "camprotool", "--version"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert result.stdout.strip() == f"camprotool {camprotool.__version__}"


def test_the_package_is_marked_typed() -> None:
    assert (ROOT / "camprotool" / "py.typed").is_file()
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["packages"] == ["camprotool"]  # every file under camprotool/ ships
    assert "py.typed" not in str(wheel.get("exclude", ""))


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120, cwd=ROOT).stdout


def test_importing_camprotool_does_not_import_pyshark_or_ipywidgets() -> None:
    out = _run("import sys, camprotool\n"
               "camprotool.pyshark_capture, camprotool.from_pyshark, camprotool.demo_server\n"
               "print('pyshark' in sys.modules, 'ipywidgets' in sys.modules)")
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("module", ["camprotool.widgets.explorer",
                                    "camprotool.widgets.client_panel",
                                    "camprotool.widgets.commands"])
def test_a_widget_module_without_ipywidgets_names_the_extra(module: str) -> None:
    out = _run("import sys; sys.modules['ipywidgets'] = None  # as if not installed\n"
               "try:\n"
               f"    import {module}\n"
               "except ModuleNotFoundError as exc:\n"
               "    print(exc.name, '|', exc)\n")
    assert out.strip().splitlines() == [
        "ipywidgets | ipywidgets is not installed, and camprotool's Jupyter widgets cannot "
        "work without it: install camprotool's [jupyter] extra "
        "(pip install 'camprotool[jupyter]')"]


def test_demo_server_needs_no_ipywidgets() -> None:
    out = _run("import sys; sys.modules['ipywidgets'] = None\n"
               "from camprotool.widgets import demo_server\n"
               "print(callable(demo_server))")
    assert out.strip() == "True"


def _dry_run(target: str) -> str:
    """The commands ``make TARGET`` would run from scratch (nothing is executed)."""
    result = subprocess.run(["make", "-n", "-B", target], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_each_make_target_installs_what_it_needs() -> None:
    demo = _dry_run("demo")
    assert "pip install -q -e .\n" in demo and "[test]" not in demo and "[jupyter]" not in demo
    assert "touch .venv/.installed-core" in demo
    assert "camprotool.demo --output demo-output" in demo
    test = _dry_run("test")
    assert "-e '.[test]'" in test and "touch .venv/.installed-test" in test
    lab = _dry_run("lab")
    assert "-e '.[jupyter]'" in lab and "touch .venv/.installed-jupyter" in lab
    # JupyterLab refuses to start as root without --allow-root
    assert ("--allow-root" in lab) == (os.geteuid() == 0)

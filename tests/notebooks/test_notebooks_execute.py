"""The notebooks in notebooks/ run top to bottom in the venv's kernel, and are stored clean.

Each notebook runs in a fresh kernel with nbclient, from the notebooks folder
(so ``../captures/...`` resolves as in JupyterLab). A cell that raises, or that
prints a traceback or an error on stderr (a background thread's failure lands
there), fails the test; so does a notebook that no longer shows what its text
promises (``EXPECTED``). The executed copy is saved in the test's tmp_path for
a look after a failure.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from unittest import mock

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from notebooks_support import KERNEL_NAME, NOTEBOOKS, NOTEBOOKS_DIR

CELL_TIMEOUT = 60  # seconds; the slowest cell (04's capture) takes about 3 s
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

#: text each notebook's outputs must contain: what its markdown promises to show.
EXPECTED: dict[str, list[str]] = {
    "01-quickstart.ipynb": ["UploadCaramer", "ID和密码不匹配", "complete", "<PlotFigure"],
    "02-debug-a-failed-sync.ipynb": [
        "upload_sequence", "incomplete_sync", "heartbeat_gap", "check_too_many_ids",
        "unannounced_data_port", "cut_short", "frame cut by 15 lost bytes", "<PlotFigure",
        "该摄像头绑定账号已满", "'bound': 3, 'refused': 1, 'failed': 2", "lost_bytes",
        "previous segment not captured", "wireshark -r ../captures/failed_sync.pcapng -g 20"],
    "03-interactive-client.ipynb": [
        "logged in as demo", "DEMO0002 offline", "'DEMO0002': True", "downloaded 3 camera(s)",
        "DownloadSucess"],
    "04-explorer.ipynb": ["30,", "transfers cut short", "messages selected", "(parquet)"],
    "05-fleet.ipynb": ["('sensor-c', 12)", "3 up to date", "Dask DataFrame Structure",
                       "<Figure", "failed %", "ID和密码不匹配",
                       "uploads by the two-accounts limit (该摄像头绑定账号已满)"],
}
#: how many widget views each notebook displays (panel, explorer)
WIDGETS = {"03-interactive-client.ipynb": 1, "04-explorer.ipynb": 1}
ERROR_TEXT = re.compile(r"Traceback|Error|Exception")


def ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_the_notebooks_are_there() -> None:
    assert [p.name for p in NOTEBOOKS] == list(EXPECTED)


@pytest.fixture(scope="module")
def kernel_env(jupyter_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The kernel's environment: IPython's history goes to a temporary dir, not ~/.ipython."""
    env = dict(os.environ)
    env["IPYTHONDIR"] = str(tmp_path_factory.mktemp("ipython"))
    env.pop("MPLBACKEND", None)  # the inline backend, as in JupyterLab
    return env


def run(nb: nbformat.NotebookNode, data_dir: Path, env: dict) -> None:
    """Execute ``nb`` in place, in a fresh kernel that is shut down (and waited for) after.

    The kernelspec is found through ``JUPYTER_PATH`` rather than by handing nbclient a
    KernelManager: nbclient leaves a kernel it was given running.
    """
    with mock.patch.dict(os.environ, {"JUPYTER_PATH": str(data_dir)}):
        client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=KERNEL_NAME,
                                resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
        client.execute(env=env)


def test_kernel_is_the_venvs(jupyter_data_dir: Path, kernel_env: dict) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os, sys\nprint(sys.executable)\nprint(os.getcwd())\nimport camprotool")])
    run(nb, jupyter_data_dir, kernel_env)
    printed = nb.cells[0].outputs[0].text.split("\n")
    assert printed[0] == sys.executable
    assert Path(printed[1]) == NOTEBOOKS_DIR


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_notebook_runs(path: Path, jupyter_data_dir: Path, kernel_env: dict,
                       tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    try:
        run(nb, jupyter_data_dir, kernel_env)
    except CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{exc}", pytrace=False)
    finally:
        nbformat.write(nb, tmp_path / path.name)

    problems, texts, views = [], [], 0
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            kind = out["output_type"]
            if kind == "error":
                problems.append(f"cell {index}: {out['ename']}: {out['evalue']}")
            elif kind == "stream":
                texts.append(out["text"])
                if out["name"] == "stderr" and ERROR_TEXT.search(out["text"]):
                    problems.append(f"cell {index} wrote to stderr:\n{out['text']}")
            else:
                data = out.get("data", {})
                texts.append(data.get("text/plain", ""))
                views += WIDGET_VIEW in data
    assert not problems, f"{path.name} (executed copy: {tmp_path / path.name}):\n" + \
        "\n".join(problems)
    shown = "\n".join(texts)
    missing = [text for text in EXPECTED[path.name] if text not in shown]
    assert not missing, f"{path.name} no longer shows {missing}"
    assert views == WIDGETS.get(path.name, 0), f"{path.name}: {views} widget views"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_notebook_is_stored_clean(path: Path) -> None:
    """No outputs, execution counts or widget state in git; narrated; the venv kernel."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.outputs or c.execution_count is not None)]
    assert not dirty, (f"{path.name}: cells {dirty} have outputs; in JupyterLab: Edit > Clear "
                       "Outputs of All Cells, then save")
    assert "widgets" not in nb.metadata, f"{path.name} stores widget state"
    assert nb.metadata.kernelspec.name == KERNEL_NAME
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    code = sum(c.cell_type == "code" for c in nb.cells)
    assert sum(c.cell_type == "markdown" for c in nb.cells) * 2 >= code, "not narrated enough"
    sources = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "benchmarks" not in sources and "/work/" not in sources

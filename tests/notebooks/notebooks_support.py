"""What the notebook tests share: where the notebooks are, and a kernelspec that is the venv's.

Why a kernelspec of our own: Jupyter looks for ``python3`` in the user's data
directory (``~/.local/share/jupyter/kernels``) *before* the venv's, so a
kernelspec installed there by anything else would run the notebooks in another
Python, without camprotool. :func:`write_kernelspec` writes a ``python3``
kernelspec whose ``argv[0]`` is this interpreter (``sys.executable``: the
venv's python when the suite runs from ``.venv``) into a temporary data
directory; nbclient gets it through a ``KernelSpecManager``, JupyterLab through
``JUPYTER_PATH`` (first in Jupyter's search path). Nothing is installed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
KERNEL_NAME = "python3"  # what the notebooks' metadata asks for


def write_kernelspec(data_dir: Path) -> Path:
    """Write ``data_dir/kernels/python3/kernel.json`` (runs sys.executable); return kernels/."""
    spec_dir = data_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "metadata": {"debugger": True},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return data_dir / "kernels"

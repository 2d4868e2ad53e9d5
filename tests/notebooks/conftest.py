"""Fixtures of the notebook tests (the shared constants are in ``notebooks_support``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from notebooks_support import write_kernelspec


@pytest.fixture(scope="session")
def jupyter_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jupyter data directory whose only kernelspec, ``python3``, runs ``sys.executable``."""
    data = tmp_path_factory.mktemp("jupyter-data")
    write_kernelspec(data)
    return data

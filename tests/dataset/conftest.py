"""A small generated fleet (two sensors' ring buffers over a day) and its dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from camprotool.dataset import write_dataset
from camprotool.fleet import Fleet, FleetSpec, generate_fleet

#: two sensors, 30 phones, one day, a ring-buffer file every 6 hours: ~5,000 messages,
#: with connections across file boundaries and refusals of both kinds
SMALL = FleetSpec(sensors=2, days=1, clients=30, visits_per_day=3, ring_seconds=6 * 3600,
                  seed=7)


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return generate_fleet(tmp_path_factory.mktemp("fleet"), SMALL)


@pytest.fixture(scope="session")
def dataset(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fleet written once as a dataset (tests only read it)."""
    root = tmp_path_factory.mktemp("dataset") / "ds"
    write_dataset(fleet.folder, root)
    return root

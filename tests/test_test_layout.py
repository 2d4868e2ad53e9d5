"""The test tree itself: pytest imports test modules by basename (no packages), so two
files of one name in different folders stop the whole run at collection."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_every_test_module_has_its_own_name():
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, k in names.items() if k > 1] == []


def test_helper_modules_do_not_shadow_each_other():
    helpers = Counter(p.name for p in TESTS.rglob("*.py")
                      if not p.name.startswith("test_") and p.name != "conftest.py")
    assert [n for n, k in helpers.items() if k > 1] == []

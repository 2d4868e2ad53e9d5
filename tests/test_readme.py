"""The README's Python examples run as written (from the repository root)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, monkeypatch):
    monkeypatch.chdir(ROOT)
    namespace: dict[str, object] = {}
    if "cpt." in BLOCKS[index] and "import camprotool as cpt" not in BLOCKS[index]:
        exec("import camprotool as cpt", namespace)
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), namespace)


def test_readme_commands_exist_in_the_makefile():
    makefile = (ROOT / "Makefile").read_text()
    for target in set(re.findall(r"make ([a-z]+)", (ROOT / "README.md").read_text())):
        assert re.search(rf"^{target}:", makefile, re.M), target


def test_readme_cli_verbs_exist():
    from camprotool.cli import build_parser

    verbs = set(build_parser()._subparsers._group_actions[0].choices)
    used = set(re.findall(r"\.venv/bin/camprotool (\w+)", (ROOT / "README.md").read_text()))
    assert used and used <= verbs, used - verbs

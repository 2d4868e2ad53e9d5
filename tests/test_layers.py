"""The layers keep their direction (docs/architecture.md, issue 11 item 6).

protocol -> capture -> analysis -> net/widgets/cli: a layer imports only the
layers below it, so the sans-I/O core can be read, tested and reused (a Lua
tool, a proxy) without pandas, sockets or the command line. Read with ``ast``
from the source files, every import counts: function-level and
``TYPE_CHECKING`` ones too, since a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "camprotool"

#: per layer (the first component under camprotool), the modules of camprotool it may import
#: (first components; "" is the package root)
ALLOWED = {
    "protocol": {"protocol", "_version"},
    "capture": {"protocol", "capture", "_version"},
}
#: what analysis must not import: the layers above it and the package root (which imports all)
ANALYSIS_FORBIDDEN = {"net", "widgets", "cli", ""}
#: programs, not library: they may drive the command line
ENTRY_POINTS = {"__main__", "demo", "cli"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> list[tuple[str, int]]:
    """Every ``camprotool...`` module ``path`` imports, relative imports resolved, with
    ``from camprotool import x`` read as the package root (that is what it loads)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            found.append((name, node.lineno))
    return [(name, line) for name, line in found
            if name == "camprotool" or name.startswith("camprotool.")]


def layer_of(module: str) -> str:
    """The first component under camprotool (``""`` for the package root itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


SOURCES = sorted(PACKAGE.rglob("*.py"))


def offences(rule) -> list[str]:
    bad = []
    for path in SOURCES:
        source = layer_of(module_name(path))
        for name, line in imported(path):
            if rule(source, layer_of(name)):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    return bad


def test_the_scan_sees_imports() -> None:
    """The checks below would pass on an empty scan: make sure they read real imports."""
    pairs = {(layer_of(module_name(p)), layer_of(n)) for p in SOURCES for n, _ in imported(p)}
    assert {("capture", "protocol"), ("analysis", "capture"), ("net", "protocol"),
            ("cli", "analysis")} <= pairs
    assert module_name(PACKAGE / "protocol" / "__init__.py") == "camprotool.protocol"


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_lower_layers_import_only_what_is_below(layer: str) -> None:
    allowed = ALLOWED[layer]
    assert offences(lambda src, dst: src == layer and dst not in allowed) == []


def test_analysis_imports_no_consumer_nor_the_package_root() -> None:
    assert offences(lambda src, dst: src == "analysis" and dst in ANALYSIS_FORBIDDEN) == []


def test_nothing_in_the_library_imports_the_command_line() -> None:
    assert offences(lambda src, dst: dst == "cli" and src not in ENTRY_POINTS) == []


def test_the_checks_catch_an_offence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A protocol module importing the package root, absolutely or relatively, is seen."""
    fake = tmp_path / "camprotool"
    (fake / "protocol").mkdir(parents=True)
    bad = fake / "protocol" / "bad.py"
    bad.write_text("from .. import __version__\nimport camprotool.analysis.capture\n")
    monkeypatch.setitem(globals(), "PACKAGE", fake)
    monkeypatch.setitem(globals(), "SOURCES", [bad])
    assert offences(lambda src, dst: src == "protocol" and dst not in ALLOWED["protocol"]) == [
        "camprotool/protocol/bad.py:1 imports camprotool",
        "camprotool/protocol/bad.py:2 imports camprotool.analysis.capture",
    ]

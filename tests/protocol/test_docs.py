"""docs/protocol.md is generated from the catalogue and must be kept current."""

from __future__ import annotations

import difflib
import subprocess
import sys

from camprotool.protocol import COMMANDS
from camprotool.protocol.docs import DOC_PATH, REGENERATE, main, render_protocol_markdown


def test_docs_protocol_md_is_current():
    expected = render_protocol_markdown()
    actual = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
    if actual != expected:
        diff = "".join(list(difflib.unified_diff(
            actual.splitlines(keepends=True), expected.splitlines(keepends=True),
            "docs/protocol.md (committed)", "docs/protocol.md (rendered)"))[:40])
        raise AssertionError(
            f"docs/protocol.md is stale: regenerate it with `{REGENERATE}`\n{diff}")


def test_every_command_and_its_fields_are_documented():
    text = render_protocol_markdown()
    for spec in COMMANDS:
        assert f"| `{spec.full_name}` | `{spec.name}` |" in text
        for f in spec.fields:
            assert f"`{f.name}`" in text
    for section in ("## Commands", "## Fields", "### Parsing and leniencies", "## Dialects",
                    "### Framing rules"):
        assert section in text
    assert "Leniencies" in text and "trailing `;`" in text  # from fields.py's docstring
    assert "`gap(n)`" in text and "resynchronises" in text  # from codec.py's docstring
    assert "``" not in text and ":func:" not in text  # reST markup converted


def test_rendering_is_deterministic_and_ends_with_one_newline():
    text = render_protocol_markdown()
    assert text == render_protocol_markdown()
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_write_option(tmp_path):
    out = tmp_path / "sub" / "protocol.md"
    assert main(["--write", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render_protocol_markdown()


def test_runs_as_a_module_and_prints_the_page():
    done = subprocess.run([sys.executable, "-m", "camprotool.protocol.docs"],
                          capture_output=True, check=True, timeout=60)
    assert done.stdout.decode("utf-8") == render_protocol_markdown()

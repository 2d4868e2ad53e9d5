"""The files rendered from the catalogue are current, and mean what the catalogue says.

``camprotool/protocol/typed_messages.py`` and ``camprotool/protocol/camproto.lua``
are checked in (type checkers and Lua tools read them as they are);
``scripts/render_generated.py`` rewrites them after a catalogue edit.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from camprotool.protocol import typed_messages
from camprotool.protocol.catalogue import BY_NAME, COMMANDS
from camprotool.protocol.generate import GENERATED, REPO_ROOT, stale
from camprotool.protocol.lua import packaged_dissector, render_dissector
from camprotool.protocol.message_base import Message, field_annotation
from camprotool.protocol.messages import MESSAGE_TYPES, build_message, message_type

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_the_checked_in_file_is_a_fresh_rendering(name: str) -> None:
    checked_in = (REPO_ROOT / name).read_text(encoding="utf-8")
    assert checked_in == GENERATED[name](), (
        f"{name} is stale: run python scripts/render_generated.py")


def test_the_packaged_dissector_is_the_command_lines_default() -> None:
    assert packaged_dissector().read_text(encoding="utf-8") == render_dissector(
        "line", "9000", heuristic=True)


def test_stale_names_a_changed_or_missing_file(tmp_path: Path) -> None:
    for name, render in GENERATED.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(render(), encoding="utf-8")
    assert stale(tmp_path) == []
    lua, typed = "camprotool/protocol/camproto.lua", "camprotool/protocol/typed_messages.py"
    (tmp_path / lua).write_text("-- edited by hand\n", encoding="utf-8")
    (tmp_path / typed).unlink()
    assert sorted(stale(tmp_path)) == [lua, typed]


def test_the_script_checks_the_repository() -> None:
    result = subprocess.run([sys.executable, "scripts/render_generated.py", "--check"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (0, "")


def test_one_generated_class_per_command_with_the_catalogues_fields() -> None:
    assert [cls.SPEC for cls in typed_messages.MESSAGE_CLASSES] == list(COMMANDS)
    hints_of = typing.get_type_hints
    for spec in COMMANDS:
        cls = getattr(typed_messages, spec.name)
        assert MESSAGE_TYPES[spec.name] is cls and message_type(spec) is cls
        assert issubclass(cls, Message) and cls.SPEC is BY_NAME[spec.name]
        own = [f for f in dataclasses.fields(cls) if f.name in spec.field_names]
        assert [f.name for f in own] == list(spec.field_names)
        hints = hints_of(cls)
        for f in spec.fields:
            assert hints[f.name] == eval(field_annotation(spec, f.kind))


def test_a_parsed_message_has_the_typed_class_and_values() -> None:
    msg = build_message(BY_NAME["UploadSucess"], "UploadSucess", "CAM00001|true|2|3")
    assert isinstance(msg, typed_messages.UploadSucess)
    assert (msg.camera_id, msg.online, msg.synced, msg.total) == ("CAM00001", True, 2, 3)
    assert msg.spec is BY_NAME["UploadSucess"] and msg.error is None

"""Generate ``docs/protocol.md`` from the catalogue and the protocol modules' docstrings.

The command table comes from :data:`~camprotool.protocol.catalogue.COMMANDS`;
the prose on layouts, parsing leniencies and framing rules is lifted from the
docstrings of ``catalogue.py``, ``fields.py`` and ``codec.py``, so the page
cannot drift from the code (``tests/protocol/test_docs.py`` fails when the
committed file is stale)::

    python -m camprotool.protocol.docs --write      # rewrite docs/protocol.md
    python -m camprotool.protocol.docs > other.md   # or print it
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path

from camprotool.protocol import catalogue, codec, dialect, fields
from camprotool.protocol.catalogue import (
    COMMANDS,
    MAX_STATUS_IDS,
    CommandSpec,
    Direction,
    Kind,
    Layout,
)

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
REGENERATE = "python -m camprotool.protocol.docs --write"

_DIRECTIONS = {Direction.C2S: "C→S", Direction.S2C: "S→C", Direction.PUSH: "S→C push"}

_KINDS = {
    Kind.TEXT: "free text, kept as a string",
    Kind.SECRET: "a string masked in tables unless revealed",
    Kind.COUNT: "non-negative integer, ASCII digits only, at most 2⁶³−1",
    Kind.PORT: "TCP port 1–65535, or empty (no free port) read as none",
    Kind.STATUS: "`true` / `false` / `null` read as True / False / None",
    Kind.CAMERA_ID: "a string without the separators `|` `;` `:`",
}

_FRAMINGS = {
    "line": "body + `\\r\\n` (a lone `\\n` is also accepted when reading)",
    "lp32le": "4-byte unsigned little-endian body length, then the body",
    "lp32be": "4-byte unsigned big-endian body length, then the body",
}


# ------------------------------------------------------------------ docstrings -> markdown


def _inline(text: str) -> str:
    """reST inline markup to markdown: ``code``, :func:`f`, :class:`C`."""
    text = re.sub(r":func:`~?([\w.]+)`", lambda m: f"`{m.group(1).rpartition('.')[2]}()`", text)
    text = re.sub(r":(?:class|data|attr|meth|mod):`~?([\w.]+)`",
                  lambda m: f"`{m.group(1).rpartition('.')[2]}`", text)
    return re.sub(r"``(.+?)``", r"`\1`", text)


def _paragraphs(doc: str | None) -> list[list[str]]:
    lines = inspect.cleandoc(doc or "").splitlines()
    out: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            out[-1].append(line.rstrip())
        elif out[-1]:
            out.append([])
    return [p for p in out if p]


def _paragraph_md(par: list[str]) -> str:
    if par[0].startswith("* "):  # bullet list, continuation lines indented
        items: list[str] = []
        for line in par:
            if line.startswith("* "):
                items.append(line[2:].strip())
            else:
                items[-1] += " " + line.strip()
        return "\n".join(f"- {_inline(item)}" for item in items)
    entries: list[list[str]] = []  # a definition list: terms, then indented definitions
    for line in par:
        if line.startswith(" ") and entries:
            entries[-1].append(line.strip())
        else:
            entries.append([line.strip()])
    if len(par) > 1 and not par[0].startswith(" ") and all(len(e) > 1 for e in entries):
        return "\n".join(f"- {_inline(e[0])}: {_inline(' '.join(e[1:]))}" for e in entries)
    if par[0].endswith("::"):
        par = [*par[:-1], par[-1][:-1]]
    return _inline(" ".join(p.strip() for p in par))


def docstring_md(module: object, after: str | None = None) -> str:
    """A module docstring as markdown, without its title line.

    ``after`` names a reST section heading: only what follows it is kept.
    """
    pars = _paragraphs(getattr(module, "__doc__", ""))[1:]
    if after is not None:
        for i, par in enumerate(pars):
            if par[0].strip() == after:
                pars = pars[i:]
                pars[0] = pars[0][2:]  # drop the heading and its underline
                pars = [p for p in pars if p]
                break
    out: list[str] = []
    for par in pars:
        md = _paragraph_md(par)
        if out and md.startswith("- ") and out[-1].startswith("- "):
            out[-1] += "\n" + md  # keep one list together
        else:
            out.append(md)
    return "\n\n".join(out)


# ------------------------------------------------------------------ tables


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _template(spec: CommandSpec) -> str:
    names = spec.field_names
    if spec.layout is Layout.IDS:
        return "id;id;…"
    if spec.layout is Layout.STATUS_LIST:
        return "id;status|id;status…"
    if spec.layout is Layout.COLON_PAIR:
        return f"{names[0]}:{names[1]}"
    return "|".join(names)


def _fields_cell(spec: CommandSpec) -> str:
    if not spec.fields:
        return "(none)"
    if spec.layout is Layout.IDS:
        kinds = f"ids: {MAX_STATUS_IDS} camera_id at most"
    elif spec.layout is Layout.STATUS_LIST:
        kinds = "statuses: (camera_id, status) pairs"
    else:
        kinds = ", ".join(f"{f.name}: {f.kind}" for f in spec.fields)
    return f"`{_cell(_template(spec))}`<br>{_cell(kinds)}"


def command_table() -> str:
    rows = [
        "| # | full name | short name | direction | channel | fields (kind) | description |",
        "|---|---|---|---|---|---|---|",
    ]
    for spec in sorted(COMMANDS, key=lambda s: (s.number == 0, s.number)):
        number = str(spec.number) if spec.number else "—"
        rows.append(
            f"| {number} | `{spec.full_name}` | `{spec.name}` | {_DIRECTIONS[spec.direction]} "
            f"| {spec.channel} | {_fields_cell(spec)} | {_cell(spec.doc)} |"
        )
    return "\n".join(rows)


def field_table() -> str:
    rows = ["| field | kind | meaning | used by |", "|---|---|---|---|"]
    seen: dict[str, list[str]] = {}
    docs: dict[str, tuple[str, str]] = {}
    for spec in COMMANDS:
        for f in spec.fields:
            seen.setdefault(f.name, []).append(spec.name)
            docs.setdefault(f.name, (str(f.kind), f.doc))
    for name, users in seen.items():
        kind, doc = docs[name]
        rows.append(f"| `{name}` | {kind} | {_cell(doc)} | {', '.join(users)} |")
    return "\n".join(rows)


def kind_table() -> str:
    rows = ["| kind | value |", "|---|---|"]
    rows += [f"| {kind} | {_cell(_KINDS[kind])} |" for kind in Kind]
    return "\n".join(rows)


def dialect_table() -> str:
    rows = ["| framing | frame | body |", "|---|---|---|"]
    rows += [f"| `{name}` | {_FRAMINGS[name]} | `<command>\\|<params>` |"
             for name in dialect.FRAMINGS]
    return "\n".join(rows)


# ------------------------------------------------------------------ the page


def render_protocol_markdown() -> str:
    """The whole of ``docs/protocol.md``."""
    encodings = sorted(set(dialect.ENCODINGS.values()))
    names = [f for f in dialect.FRAMINGS] + [f"{f}:gbk" for f in dialect.FRAMINGS]
    parts = [
        "# SocketCommand protocol reference",
        f"<!-- Generated from camprotool/protocol by `{REGENERATE}`. Do not edit by hand. -->",
        "The protocol's story (actors, sync flows, conformance rules) is told in "
        "PROTOCOL.md; this page is the reference generated from the code.",
        "## Commands",
        docstring_md(catalogue),
        command_table(),
        f"`#` is the command's position in the source document; `—` marks the heartbeat, "
        f"our assumption for the part of the document that is missing. Its name is a dialect "
        f"setting, `{dialect.DEFAULT_HEARTBEAT}` by default.",
        "## Fields",
        field_table(),
        "### Kinds",
        kind_table(),
        "### Parsing and leniencies",
        docstring_md(fields),
        "## Dialects",
        docstring_md(dialect),
        dialect_table(),
        f"Text encodings: {', '.join(f'`{e}`' for e in encodings)} (`utf8` is accepted for "
        f"`utf-8`). A dialect is written `framing[:encoding]`: "
        f"{', '.join(f'`{n}`' for n in names)}. `auto` is not a dialect: readers resolve it per "
        f"connection. Readers enforce a maximum frame size, {dialect.DEFAULT_MAX_FRAME} bytes "
        f"by default; in `line` it counts the `\\r` before the `\\n`.",
        "### Framing rules",
        docstring_md(codec, after="Theory of operation"),
    ]
    return "\n\n".join(p.strip() for p in parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m camprotool.protocol.docs",
        description="Print docs/protocol.md generated from the protocol catalogue.",
    )
    parser.add_argument("--write", nargs="?", const=str(DOC_PATH), metavar="PATH",
                        help=f"write the page (default {DOC_PATH}) instead of printing it")
    args = parser.parse_args(argv)
    text = render_protocol_markdown()
    if args.write:
        path = Path(args.write)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    else:
        sys.stdout.buffer.write(text.encode("utf-8"))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

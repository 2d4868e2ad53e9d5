"""The command picker: one form per client command, generated from the catalogue.

Nothing here names a command's fields: each :class:`CommandForm` reads them
from :data:`camprotool.protocol.catalogue.COMMANDS`, so a command added to the
catalogue appears in the picker with the right inputs.

Input per field kind: counts and ports ``IntText``; statuses a ``Dropdown``
of true/false/null; secrets a ``Password``; text and camera ids ``Text``; the
``ids`` list of ``CheckCaramerOnlineStatus`` one ``Text`` where ids are
separated by commas, semicolons or spaces.
"""

from __future__ import annotations

import html
import re
from typing import Any

from camprotool.protocol import format_params
from camprotool.protocol.catalogue import COMMANDS, CommandSpec, Direction, Field, Kind, Layout
from camprotool.protocol.errors import LocalProtocolError
from camprotool.widgets._ipywidgets import widgets  # names the extra if missing

STATUS_OPTIONS = (("true", True), ("false", False), ("null", None))
_SEPARATORS = re.compile(r"[\s,;]+")
_STYLE = {"description_width": "120px"}


def client_commands() -> list[CommandSpec]:
    """Every command a client sends, in catalogue order."""
    return [spec for spec in COMMANDS if spec.direction is Direction.C2S]


def is_list_field(spec: CommandSpec, field: Field) -> bool:
    return spec.layout is Layout.IDS or spec.layout is Layout.STATUS_LIST


def field_widget(field: Field, spec: CommandSpec | None = None) -> widgets.Widget:
    """The input widget for one field of ``spec``."""
    desc = field.name
    tip = field.doc
    layout = widgets.Layout(width="420px")
    if spec is not None and is_list_field(spec, field):
        return widgets.Text(description=desc, tooltip=tip, style=_STYLE, layout=layout,
                            placeholder="ids separated by commas or spaces, at most 20")
    if field.kind in (Kind.COUNT, Kind.PORT):
        return widgets.IntText(value=0 if field.kind is Kind.COUNT else 1, description=desc,
                               tooltip=tip, style=_STYLE, layout=layout)
    if field.kind is Kind.STATUS:
        return widgets.Dropdown(options=STATUS_OPTIONS, value=True, description=desc,
                                tooltip=tip, style=_STYLE, layout=layout)
    if field.kind is Kind.SECRET:
        return widgets.Password(description=desc, tooltip=tip, style=_STYLE, layout=layout,
                                placeholder=tip)
    return widgets.Text(description=desc, tooltip=tip, style=_STYLE, layout=layout,
                        placeholder=tip)


def split_ids(text: str) -> list[str]:
    return [i for i in _SEPARATORS.split(text.strip()) if i]


class CommandForm:
    """The inputs of one command and what they mean as typed values."""

    def __init__(self, spec: CommandSpec) -> None:
        self.spec = spec
        self.inputs: dict[str, widgets.Widget] = {f.name: field_widget(f, spec)
                                                  for f in spec.fields}
        doc = widgets.HTML(f"<small><code>{spec.full_name}</code> ({spec.channel} connection): "
                           f"{_escape(spec.doc)}</small>")
        children: list[widgets.Widget] = [doc, *self.inputs.values()]
        if not spec.fields:
            children.append(widgets.HTML("<small><i>no parameters</i></small>"))
        self.box = widgets.VBox(children)

    def values(self) -> dict[str, Any]:
        """Typed values; ``ValueError`` naming the field when one cannot be sent."""
        out: dict[str, Any] = {}
        for f in self.spec.fields:
            w = self.inputs[f.name]
            value = w.value
            if is_list_field(self.spec, f):
                value = split_ids(str(value))
                if not value:
                    raise ValueError(f"{self.spec.name}: enter at least one camera id")
            elif f.kind in (Kind.COUNT, Kind.PORT):
                if value is None or int(value) < 0:
                    raise ValueError(f"{self.spec.name}.{f.name} must be 0 or more, "
                                     f"not {value}")
                value = int(value)
            elif f.kind is not Kind.STATUS:
                value = str(value)
            out[f.name] = value
        return out

    def params(self) -> str:
        """The parameter string these values make on the wire."""
        try:
            return format_params(self.spec, self.values())
        except LocalProtocolError as exc:
            raise ValueError(str(exc)) from None

    def all_widgets(self) -> list[widgets.Widget]:
        return [*self.box.children, self.box]


def _escape(text: str) -> str:
    return html.escape(text)

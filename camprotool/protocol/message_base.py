"""The base of every message: what was on the wire, what went wrong, and a masked ``repr``.

Split from :mod:`camprotool.protocol.messages` so the generated one-class-per-command
module (:mod:`camprotool.protocol.typed_messages`) can subclass it, and the renderer
(:mod:`camprotool.protocol.generate`) can read :func:`field_annotation`, without
importing the generated module they produce.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from camprotool.protocol.catalogue import CommandSpec, Kind, Layout
from camprotool.protocol.masking import MASK, mask_params

__all__ = ["Message", "UnknownMessage", "field_annotation", "masked_params"]


def masked_params(msg: Message) -> str:
    """``params`` with every secret field's text replaced by ``***`` (the one masking
    rule, :func:`camprotool.protocol.masking.mask_params`)."""
    if msg.spec is None:
        return msg.params
    return mask_params(msg.command, msg.params, msg.spec)


def _repr(self: Message) -> str:
    spec = self.spec
    secret = {f.name for f in spec.fields if f.kind is Kind.SECRET} if spec else set()
    shown = []
    for f in fields(self):
        if not f.repr:
            continue
        value = getattr(self, f.name)
        if f.name == "params":
            value = masked_params(self)
        elif f.name in secret and value is not None:
            value = MASK
        shown.append(f"{f.name}={value!r}")
    return f"{type(self).__name__}({', '.join(shown)})"


@dataclass(frozen=True, slots=True, repr=False)
class Message:
    """A decoded frame. ``command`` is the short name, or the raw name if unknown.

    ``repr`` masks secret fields (see :mod:`camprotool.protocol.messages`)."""

    #: the command a class is made for (``None``: the base and unknown commands)
    SPEC: ClassVar[CommandSpec | None] = None

    command: str
    params: str = ""
    error: str | None = None
    raw: bytes = field(default=b"", repr=False)

    spec: CommandSpec | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A message built directly (not by build_message) still knows its command.
        object.__setattr__(self, "spec", type(self).SPEC)

    @property
    def known(self) -> bool:
        return self.spec is not None

    @property
    def fields(self) -> dict[str, Any]:
        """The typed fields as a dict (empty for unknown commands)."""
        if self.spec is None:
            return {}
        return {name: getattr(self, name) for name in self.spec.field_names}

    __repr__ = _repr


@dataclass(frozen=True, slots=True, repr=False)
class UnknownMessage(Message):
    """A command nobody knows: not an error, its raw name and parameters are kept."""


_TYPES = {
    Kind.TEXT: "str | None",
    Kind.SECRET: "str | None",
    Kind.CAMERA_ID: "str | None",
    Kind.COUNT: "int | None",
    Kind.PORT: "int | None",
    Kind.STATUS: "bool | None",
}


def field_annotation(spec: CommandSpec, kind: Kind) -> str:
    """The type of a field of ``kind`` in ``spec``'s message, as annotation text (what
    :func:`camprotool.protocol.fields.parse_params` makes of its text; ``None`` when a
    message built directly leaves it out)."""
    if spec.layout is Layout.IDS:
        return "tuple[str, ...] | None"
    if spec.layout is Layout.STATUS_LIST:
        return "tuple[tuple[str, bool | None], ...] | None"
    return _TYPES[kind]

"""Typed messages: one frozen dataclass per command, generated from the catalogue.

Every message keeps what was on the wire (``params``, ``raw``) beside the typed
fields, and ``error`` says why something could not be decoded: a peer's
mistake is a value here, never an exception.

>>> from camprotool.protocol.messages import MESSAGE_TYPES
>>> m = MESSAGE_TYPES["Login"](command="Login", params="demo|demo", user="demo", password="demo")
>>> m.user
'demo'
>>> m
Login(command='Login', params='demo|***', error=None, user='demo', password='***')

``repr`` masks the secret fields (``Kind.SECRET``: account and camera
passwords), in the typed field and in ``params``, so a message printed in a
notebook, a log or a traceback does not show a password; the attributes keep
the real values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any

from camprotool.protocol.catalogue import COMMANDS, CommandSpec, Kind, Layout
from camprotool.protocol.fields import parse_params
from camprotool.protocol.masking import MASK, mask_params


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

    ``repr`` masks secret fields (see the module's doc)."""

    command: str
    params: str = ""
    error: str | None = None
    raw: bytes = field(default=b"", repr=False)

    spec: Any = field(default=None, init=False, repr=False, compare=False)

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


def _field_type(spec: CommandSpec, kind: Kind) -> str:
    if spec.layout is Layout.IDS:
        return "tuple[str, ...]"
    if spec.layout is Layout.STATUS_LIST:
        return "tuple[tuple[str, bool | None], ...]"
    return _TYPES[kind]


def _post_init(self: Message) -> None:
    # A message built directly (not by build_message) still knows its command.
    object.__setattr__(self, "spec", type(self).SPEC)  # type: ignore[attr-defined]


def _make_type(spec: CommandSpec) -> type[Message]:
    cls = make_dataclass(
        spec.name,
        [(f.name, _field_type(spec, f.kind), field(default=None)) for f in spec.fields],
        bases=(Message,),
        frozen=True,
        slots=True,
        repr=False,
        namespace={"__doc__": f"{spec.full_name}: {spec.doc}", "SPEC": spec,
                   "__post_init__": _post_init},
    )
    cls.__module__ = __name__
    return cls


MESSAGE_TYPES: dict[str, type[Message]] = {spec.name: _make_type(spec) for spec in COMMANDS}
globals().update(MESSAGE_TYPES)
#: types made for commands of an extended catalogue (see ``Catalogue.extended``)
_EXTRA_TYPES: dict[CommandSpec, type[Message]] = {}


def message_type(spec: CommandSpec) -> type[Message]:
    """The message class of ``spec``: the catalogue's, or one made once for a spec
    of an extended catalogue (a command a deployment or a test adds)."""
    cls = MESSAGE_TYPES.get(spec.name)
    if cls is not None and cls.SPEC is spec:  # type: ignore[attr-defined]
        return cls
    cls = _EXTRA_TYPES.get(spec)
    if cls is None:
        cls = _EXTRA_TYPES[spec] = _make_type(spec)
    return cls


def build_message(
    spec: CommandSpec | None,
    command: str,
    params: str,
    raw: bytes = b"",
    error: str | None = None,
) -> Message:
    """Make the typed message for ``spec`` (or an :class:`UnknownMessage`), parsing fields."""
    if spec is None:
        return UnknownMessage(command=command, params=params, error=error, raw=raw)
    values, field_error = parse_params(spec, params)
    if field_error:
        error = f"{error}; {field_error}" if error else field_error
    msg = message_type(spec)(command=spec.name, params=params, error=error, raw=raw,
                                   **values)
    object.__setattr__(msg, "spec", spec)
    return msg

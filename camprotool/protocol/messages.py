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

The classes of the protocol's commands are written out in
:mod:`camprotool.protocol.typed_messages` (rendered from the catalogue by
``scripts/render_generated.py`` and checked in), so type checkers see their
fields: narrow a message with ``isinstance(msg, LoginOk)`` and ``msg.camera_count``
is an ``int | None``. A command of an extended catalogue (``Catalogue.extended``)
gets a class made here at run time, the same way.
"""

from __future__ import annotations

from dataclasses import field, make_dataclass

from camprotool.protocol.catalogue import CommandSpec
from camprotool.protocol.fields import parse_params
from camprotool.protocol.message_base import (
    Message,
    UnknownMessage,
    field_annotation,
    masked_params,
)
from camprotool.protocol.typed_messages import *  # noqa: F403 (one name per command, as ever)
from camprotool.protocol.typed_messages import MESSAGE_CLASSES

__all__ = [
    "MESSAGE_TYPES",
    "Message",
    "UnknownMessage",
    "build_message",
    "masked_params",
    "message_type",
]

#: the protocol's commands: short name -> message class
MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.SPEC.name: cls for cls in MESSAGE_CLASSES if cls.SPEC is not None}
#: types made for commands of an extended catalogue (see ``Catalogue.extended``)
_EXTRA_TYPES: dict[CommandSpec, type[Message]] = {}


def _make_type(spec: CommandSpec) -> type[Message]:
    """A class for a command the generated module does not have: the same shape as the
    generated ones (``SPEC``, the fields typed as :func:`field_annotation` says)."""
    cls = make_dataclass(
        spec.name,
        [(f.name, field_annotation(spec, f.kind), field(default=None)) for f in spec.fields],
        bases=(Message,),
        frozen=True,
        slots=True,
        repr=False,
        namespace={"__doc__": f"{spec.full_name}: {spec.doc}", "SPEC": spec},
    )
    cls.__module__ = __name__
    return cls


def message_type(spec: CommandSpec) -> type[Message]:
    """The message class of ``spec``: the catalogue's, or one made once for a spec
    of an extended catalogue (a command a deployment or a test adds)."""
    cls = MESSAGE_TYPES.get(spec.name)
    if cls is not None and cls.SPEC is spec:
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

"""Parameter strings <-> typed field values, driven by the catalogue.

:func:`parse_params` is the reference parser: it never raises. A value that
cannot be typed becomes ``None`` and the returned error names the field and
the reason; the other fields keep their values. The bulk decoder's vectorised
fast path only accepts rows this function would accept with the same values,
and hands every other row to it, so both decoders agree by construction.

Leniencies (what real peers plausibly send, documented in docs/protocol.md):
``true``/``false``/``null`` in any letter case; a trailing ``;`` after the
last id and a trailing ``|`` after the last status pair; a ``reason`` that
itself contains ``|`` (in ``UploadFail`` it takes the surplus fields).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from camprotool.protocol.catalogue import (
    MAX_STATUS_IDS,
    CommandSpec,
    Kind,
    Layout,
)
from camprotool.protocol.errors import LocalProtocolError

_STATUS = {"true": True, "false": False, "null": None}
_INT64_MAX = (1 << 63) - 1

Values = dict[str, Any]


def parse_count(text: str) -> int:
    """ASCII digits only (``int()`` would also take ``+1``, ``1_0``, ``١``)."""
    if not text or not text.isascii() or not text.isdigit():
        raise ValueError(f"{text!r} is not a non-negative integer")
    value = int(text)
    if value > _INT64_MAX:
        raise ValueError(f"{text!r} is too large")
    return value


def parse_status(text: str) -> bool | None:
    try:
        return _STATUS[text.lower()]
    except KeyError:
        raise ValueError(f"{text!r} is not true, false or null") from None


def parse_port(text: str) -> int | None:
    if text == "":
        return None
    value = parse_count(text) if text.isdigit() else None
    if value is None:
        raise ValueError(f"{text!r} is not a port number")
    if not 1 <= value <= 65535:
        raise ValueError(f"{value} is outside 1-65535")
    return value


_PARSERS: dict[Kind, Callable[[str], Any]] = {
    Kind.TEXT: str,
    Kind.SECRET: str,
    Kind.CAMERA_ID: str,
    Kind.COUNT: parse_count,
    Kind.STATUS: parse_status,
    Kind.PORT: parse_port,
}


def parse_params(spec: CommandSpec, params: str) -> tuple[Values, str | None]:
    """Type the fields of ``params`` for ``spec``. Never raises."""
    layout = spec.layout
    if layout is Layout.PIPE:
        return _parse_pipe(spec, params)
    if layout is Layout.IDS:
        ids = tuple(i for i in params.split(";") if i)
        if not ids:
            return {"ids": ids}, "ids: no camera id"
        return {"ids": ids}, None
    if layout is Layout.STATUS_LIST:
        return _parse_status_list(params)
    return _parse_colon_pair(spec, params)


def _parse_pipe(spec: CommandSpec, params: str) -> tuple[Values, str | None]:
    fields = spec.fields
    n = len(fields)
    if n == 0:
        return {}, None
    if n == 1:
        parts = [params]
    else:
        parts = params.split("|")
        if len(parts) > n and "reason" in spec.field_names:
            # A free-text reason may itself contain '|': it takes the surplus.
            at = spec.field_names.index("reason")
            surplus = len(parts) - n
            parts[at : at + surplus + 1] = ["|".join(parts[at : at + surplus + 1])]
    if len(parts) != n:
        names = "|".join(spec.field_names)
        return (
            dict.fromkeys(spec.field_names),
            f"expected {n} fields ({names}), got {len(parts)}",
        )
    values: Values = {}
    errors = []
    for field, text in zip(fields, parts, strict=True):
        try:
            values[field.name] = _PARSERS[field.kind](text)
        except ValueError as exc:
            values[field.name] = None
            errors.append(f"{field.name}: {exc}")
    return values, "; ".join(errors) if errors else None


def _parse_status_list(params: str) -> tuple[Values, str | None]:
    pairs = []
    errors = []
    items = params.split("|")
    if items and items[-1] == "":
        items.pop()  # tolerate a trailing separator
    for i, item in enumerate(items, 1):
        cam, sep, status = item.partition(";")
        if not sep or ";" in status:
            errors.append(f"statuses: item {i} {item!r} is not id;status")
            continue
        try:
            pairs.append((cam, parse_status(status)))
        except ValueError as exc:
            errors.append(f"statuses: item {i}: {exc}")
    if not items:
        errors.append("statuses: no id;status pair")
    return {"statuses": tuple(pairs)}, "; ".join(errors) if errors else None


def _parse_colon_pair(spec: CommandSpec, params: str) -> tuple[Values, str | None]:
    first, second = spec.fields
    cam, sep, value = params.partition(":")
    if not sep:
        return (
            {first.name: None, second.name: None},
            f"expected {first.name}:{second.name}, got {params!r}",
        )
    try:
        return {first.name: cam, second.name: _PARSERS[second.kind](value)}, None
    except ValueError as exc:
        return {first.name: cam, second.name: None}, f"{second.name}: {exc}"


# ---------------------------------------------------------------- formatting


def _format_value(spec: CommandSpec, name: str, kind: Kind, value: Any, sep: str) -> str:
    if kind is Kind.STATUS:
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "true" if value else "false"
        text = str(value)
        try:
            parse_status(text)
        except ValueError as exc:  # a caller's mistake: name the field
            raise LocalProtocolError(f"{spec.name}.{name}: {exc}") from None
        return text.lower()
    if kind is Kind.COUNT:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise LocalProtocolError(
                f"{spec.name}.{name}: expected a non-negative int, got {value!r}"
            )
        if value > _INT64_MAX:  # parse_count refuses it: it would not come back
            raise LocalProtocolError(f"{spec.name}.{name}: {value} is too large (max 2**63-1)")
        return str(value)
    if kind is Kind.PORT:
        if value is None or value == "":
            return ""
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise LocalProtocolError(f"{spec.name}.{name}: {value!r} is not a port 1-65535")
        return str(value)
    text = str(value)
    forbidden = sep + (";:" if kind is Kind.CAMERA_ID else "")
    bad = [c for c in forbidden if c and c in text]
    if bad:
        raise LocalProtocolError(
            f"{spec.name}.{name}: {'the value' if kind is Kind.SECRET else repr(text)} "
            f"contains {bad[0]!r}, which separates fields here"
        )
    return text


def format_params(spec: CommandSpec, values: Mapping[str, Any]) -> str:
    """Build a parameter string from typed values, refusing what cannot be carried."""
    unknown = set(values) - set(spec.field_names)
    if unknown:
        raise LocalProtocolError(
            f"{spec.name} has no field {sorted(unknown)[0]!r} "
            f"(fields: {', '.join(spec.field_names) or 'none'})"
        )
    missing = [f.name for f in spec.fields if f.name not in values]
    if missing and not (spec.fields and spec.fields[0].kind is Kind.PORT):
        raise LocalProtocolError(f"{spec.name}: missing field {missing[0]!r}")
    layout = spec.layout
    if layout is Layout.IDS:
        ids = values["ids"]
        if isinstance(ids, str):
            ids = [ids]
        ids = list(ids)
        if not ids:
            raise LocalProtocolError(f"{spec.name}: no camera id")
        if len(ids) > MAX_STATUS_IDS:
            raise LocalProtocolError(
                f"{spec.name}: {len(ids)} ids, the protocol allows at most {MAX_STATUS_IDS} "
                "per query (Client.check_status splits longer lists)"
            )
        if any(str(i) == "" for i in ids):  # parse_params drops empty ids
            raise LocalProtocolError(f"{spec.name}.ids: an empty camera id cannot be carried")
        return ";".join(_format_value(spec, "ids", Kind.CAMERA_ID, i, "|") for i in ids)
    if layout is Layout.STATUS_LIST:
        if not values["statuses"]:  # parse_params reports an empty list as an error
            raise LocalProtocolError(f"{spec.name}.statuses: no id;status pair")
        return "|".join(
            _format_value(spec, "statuses", Kind.CAMERA_ID, cam, "|") + ";"
            + _format_value(spec, "statuses", Kind.STATUS, status, "|")
            for cam, status in values["statuses"]
        )
    if layout is Layout.COLON_PAIR:
        first, second = spec.fields
        return (
            _format_value(spec, first.name, first.kind, values[first.name], "|")
            + ":"
            + _format_value(spec, second.name, second.kind, values[second.name], "")
        )
    sep = "|" if len(spec.fields) > 1 else ""
    return "|".join(
        _format_value(spec, f.name, f.kind, values.get(f.name), sep) for f in spec.fields
    )

"""The one password-masking rule, for a parameter string: tables, logs, exports and ``repr``.

It lives in the sans-I/O core because a message's ``repr`` needs it
(:func:`camprotool.protocol.messages.masked_params`) and the core imports
nothing above it; :mod:`camprotool.analysis.masking` applies the same rule
column-wise to whole captures and is held to it by tests.

The catalogue marks secret fields (account and camera passwords); their text
becomes ``***`` by position in the ``|``-split string. When the field count
is wrong nobody can tell where a password is (it may itself contain ``|``),
so everything after the first field becomes one ``***``.
"""

from __future__ import annotations

from camprotool.protocol.catalogue import COMMANDS, CommandSpec, Kind, Layout

MASK = "***"

#: command -> positions (in the |-split parameter string) of its secret fields
def secret_positions(spec: CommandSpec) -> tuple[int, ...]:
    """Where ``spec``'s secret fields sit in its ``|``-split parameter string."""
    if spec.layout is not Layout.PIPE:
        return ()
    return tuple(i for i, f in enumerate(spec.fields) if f.kind is Kind.SECRET)


SECRET_POSITIONS: dict[str, tuple[int, ...]] = {
    spec.name: secret_positions(spec) for spec in COMMANDS if secret_positions(spec)
}
#: command -> number of fields, for the commands in SECRET_POSITIONS
FIELD_COUNTS: dict[str, int] = {
    spec.name: len(spec.fields) for spec in COMMANDS if spec.name in SECRET_POSITIONS
}


def mask_params(command: str, params: str, spec: CommandSpec | None = None) -> str:
    """``params`` with the secret fields of ``command`` replaced by ``***``.

    ``spec``: the command's spec when it may come from an extended catalogue
    (default: the protocol's command of that name)."""
    if spec is None:
        positions = SECRET_POSITIONS.get(command)
        count = FIELD_COUNTS.get(command, 0)
    else:
        positions, count = secret_positions(spec), len(spec.fields)
    if not positions:
        return params
    parts = params.split("|")
    if len(parts) != count:
        return parts[0] + "|" + MASK if len(parts) > 1 else MASK
    for i in positions:
        parts[i] = MASK
    return "|".join(parts)

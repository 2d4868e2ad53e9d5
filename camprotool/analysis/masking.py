"""Password masking: protocol passwords never reach a table, log or export unless asked.

The catalogue marks secret fields (account and camera passwords). Masking
replaces their typed values with ``***`` and the same text inside ``params``
(by field position); the raw frame bytes of such messages are dropped. When
the field count is wrong nobody can tell where a password is (it may itself
contain ``|``), so everything after the first field becomes one ``***``, as
:func:`camprotool.net.table.mask_params` does for live sessions.

A frame whose command could not be read (cut by lost bytes, garbage) may
hold a password anywhere: its ``params`` and ``command`` become ``***``, the
name quoted in its error is replaced by ``***`` and its raw bytes are dropped;
``reveal_passwords=True`` shows them all.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from camprotool.protocol.catalogue import BY_NAME, COMMANDS, SECRET_FIELDS, Kind, Layout

MASK = "***"

#: command -> positions (in the |-split parameter string) of its secret fields
SECRET_POSITIONS: dict[str, tuple[int, ...]] = {
    spec.name: tuple(i for i, f in enumerate(spec.fields) if f.kind is Kind.SECRET)
    for spec in COMMANDS
    if spec.layout is Layout.PIPE and any(f.kind is Kind.SECRET for f in spec.fields)
}
#: command -> number of fields, for the commands in SECRET_POSITIONS
_FIELD_COUNTS: dict[str, int] = {
    spec.name: len(spec.fields) for spec in COMMANDS if spec.name in SECRET_POSITIONS
}


#: the quoted name in the codec's "not a command name: 'xyz'" error
_QUOTED_NAME = r"""not a command name: (?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""


def mask_params(command: str, params: str) -> str:
    """``params`` with the secret fields of ``command`` replaced by ``***``."""
    positions = SECRET_POSITIONS.get(command)
    if not positions:
        return params
    parts = params.split("|")
    if len(parts) != _FIELD_COUNTS[command]:
        return parts[0] + "|" + MASK if len(parts) > 1 else MASK
    for i in positions:
        parts[i] = MASK
    return "|".join(parts)


def mask_table(table: pa.Table) -> pa.Table:
    """Mask an Arrow message table (bulk decoder schema) column-wise."""
    for name in SECRET_FIELDS:
        if name in table.column_names:
            col = table[name]
            masked = pc.if_else(pc.is_valid(col), pa.scalar(MASK, col.type), col)
            table = table.set_column(table.schema.get_field_index(name), name, masked)
    params = table["params"]
    raw = table["raw"]
    pipes = pc.count_substring(params, "|")
    for command, positions in SECRET_POSITIONS.items():
        rows = pc.equal(table["command"], command)
        well_formed = pc.and_(rows, pc.equal(pipes, _FIELD_COUNTS[command] - 1))
        for i in positions:
            pattern = rf"^((?:[^|]*\|){{{i}}})[^|]*"
            replaced = pc.replace_substring_regex(params, pattern, r"\1" + MASK,
                                                  max_replacements=1)
            params = pc.if_else(well_formed, replaced, params)
        # Wrong field count: keep the first field only (see the module docstring).
        cut = pc.replace_substring_regex(params, r"(?s)^([^|]*\|)?.*", r"\1" + MASK,
                                         max_replacements=1)
        params = pc.if_else(pc.and_(rows, pc.invert(well_formed)), cut, params)
        raw = pc.if_else(rows, pa.scalar(None, raw.type), raw)
    # A frame no command could be read from (cut by lost bytes, garbage) may
    # still carry a password: keep its error, hide its text and bytes.
    known = pc.is_in(table["command"], pa.array(list(BY_NAME), table["command"].type))
    unreadable = pc.and_(pc.is_valid(table["error"]), pc.invert(known))
    params = pc.if_else(pc.and_(unreadable, pc.greater(pc.binary_length(params), 0)),
                        pa.scalar(MASK, params.type), params)
    raw = pc.if_else(unreadable, pa.scalar(None, raw.type), raw)
    # Its "command name" may itself be password text (a cut Login tail): hide it,
    # and the name the error quotes.
    command = table["command"]
    command = pc.if_else(pc.and_(unreadable, pc.greater(pc.binary_length(command), 0)),
                         pa.scalar(MASK, command.type), command)
    error = pc.replace_substring_regex(table["error"], _QUOTED_NAME, "not a command name: " + MASK)
    table = table.set_column(table.schema.get_field_index("command"), "command", command)
    table = table.set_column(table.schema.get_field_index("error"), "error", error)
    table = table.set_column(table.schema.get_field_index("params"), "params", params)
    return table.set_column(table.schema.get_field_index("raw"), "raw", raw)

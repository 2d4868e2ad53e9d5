"""Password masking: protocol passwords never reach a table, log or export unless asked.

The catalogue marks secret fields (account and camera passwords). Masking
replaces their typed values with ``***`` and the same text inside ``params``
(by field position, so a malformed message is masked too); the raw frame
bytes of such messages are dropped.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from camprotool.protocol.catalogue import COMMANDS, SECRET_FIELDS, Kind, Layout

MASK = "***"

#: command -> positions (in the |-split parameter string) of its secret fields
SECRET_POSITIONS: dict[str, tuple[int, ...]] = {
    spec.name: tuple(i for i, f in enumerate(spec.fields) if f.kind is Kind.SECRET)
    for spec in COMMANDS
    if spec.layout is Layout.PIPE and any(f.kind is Kind.SECRET for f in spec.fields)
}


def mask_params(command: str, params: str) -> str:
    """``params`` with the secret fields of ``command`` replaced by ``***``."""
    positions = SECRET_POSITIONS.get(command)
    if not positions:
        return params
    parts = params.split("|")
    for i in positions:
        if i < len(parts):
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
    for command, positions in SECRET_POSITIONS.items():
        rows = pc.equal(table["command"], command)
        for i in positions:
            pattern = rf"^((?:[^|]*\|){{{i}}})[^|]*"
            replaced = pc.replace_substring_regex(params, pattern, r"\1" + MASK,
                                                  max_replacements=1)
            params = pc.if_else(rows, replaced, params)
        raw = pc.if_else(rows, pa.scalar(None, raw.type), raw)
    table = table.set_column(table.schema.get_field_index("params"), "params", params)
    return table.set_column(table.schema.get_field_index("raw"), "raw", raw)

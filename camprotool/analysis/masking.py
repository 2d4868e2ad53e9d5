"""Password masking: protocol passwords never reach a table, log or export unless asked.

The catalogue marks secret fields (account and camera passwords). Masking
replaces their typed values with ``***`` and the same text inside ``params``
(by field position); the raw frame bytes of such messages are dropped. When
the field count is wrong nobody can tell where a password is (it may itself
contain ``|``), so everything after the first field becomes one ``***``, as
:func:`camprotool.protocol.masking.mask_params` (the one rule) says.

A frame whose command could not be read (cut by lost bytes, garbage) may
hold a password anywhere: its ``params`` and ``command`` become ``***``, the
name quoted in its error is replaced by ``***`` and its raw bytes are dropped;
``reveal_passwords=True`` shows them all.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from camprotool.protocol.catalogue import BY_NAME, SECRET_FIELDS

# The one masking rule and its tables live in the sans-I/O core (a message's repr
# needs them); this module applies the rule column-wise to whole captures.
from camprotool.protocol.masking import FIELD_COUNTS as _FIELD_COUNTS
from camprotool.protocol.masking import MASK, SECRET_POSITIONS, mask_params

__all__ = ["MASK", "SECRET_POSITIONS", "mask_params", "mask_table"]

#: the quoted name in the codec's "not a command name: 'xyz'" error
_QUOTED_NAME = r"""not a command name: (?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""


def _masked_fields(commands: pa.Array, params: pa.Array) -> pa.Array:
    """:func:`mask_params` of each row, column-wise for rows with the right field count."""
    n = len(params)
    encoded = pc.dictionary_encode(commands)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    distinct = encoded.dictionary.to_pylist()
    # fields the command has (0: no secret), looked up once per distinct name
    want = np.array([*(_FIELD_COUNTS.get(c, 0) for c in distinct), 0], np.int64)[codes] \
        if n else np.zeros(0, np.int64)
    names = np.array([*distinct, None], dtype=object)
    parts = pc.split_pattern(pc.fill_null(params, ""), "|")
    counts = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    well = (want > 0) & (counts == want) & params.is_valid().to_numpy(zero_copy_only=False)
    offsets = parts.offsets.to_numpy()
    hide = np.zeros(len(parts.values), bool)
    for code, command in enumerate(distinct):
        positions = SECRET_POSITIONS.get(command, ())
        mine = np.flatnonzero(well & (codes == code)) if positions else ()
        for i in positions:
            hide[offsets[mine] + i] = True
    values = pc.replace_with_mask(parts.values, pa.array(hide),
                                  pa.array([MASK] * int(hide.sum()), parts.values.type))
    joined = pc.binary_join(type(parts).from_arrays(parts.offsets, values),
                            pa.scalar("|", parts.values.type))
    out = pc.if_else(pa.array(well), joined, params)
    odd = np.flatnonzero(~well & (want > 0) & params.is_valid().to_numpy(zero_copy_only=False))
    if len(odd):  # wrong field count: mask_params words it
        fixed = [mask_params(c, p) for c, p in zip(names[codes[odd]],
                                                   params.take(pa.array(odd)).to_pylist(),
                                                   strict=True)]
        mask = np.zeros(n, bool)
        mask[odd] = True
        out = pc.replace_with_mask(out, pa.array(mask), pa.array(fixed, params.type))
    return out


def _array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One array, without a copy when there is one chunk (``combine_chunks`` copies)."""
    if not isinstance(column, pa.ChunkedArray):
        return column
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def mask_table(table: pa.Table) -> pa.Table:
    """Mask an Arrow message table (bulk decoder schema) column-wise, chunk by chunk.

    A table the fast engine decoded holds a chunk per window: each is masked
    on its own, so a chunk without a password is kept as it is and nothing is
    joined (joining copies every column; a decode's largest allocation).
    """
    if all(c.num_chunks <= 1 for c in table.columns):
        return _mask_one(table)
    batches = table.to_batches()  # zero-copy slices on the columns' common chunking
    return pa.concat_tables([_mask_one(pa.Table.from_batches([b])) for b in batches]) \
        if batches else table


def _mask_one(table: pa.Table) -> pa.Table:
    """:func:`mask_table` of a table whose columns are one chunk each (or none).

    Only the rows that can hold a password (commands with secret fields,
    frames no command could be read from) are touched: they are taken out,
    masked with :func:`mask_params` and put back with one
    ``replace_with_mask`` per column, so the cost follows the Login count,
    not the capture's length.
    """
    for name in SECRET_FIELDS:
        if name in table.column_names:
            col = table[name]
            if col.null_count == len(col):
                continue
            masked = pc.if_else(pc.is_valid(col), pa.scalar(MASK, col.type), col)
            table = table.set_column(table.schema.get_field_index(name), name, masked)
    command, params, raw, error = (_array(table[name])
                                   for name in ("command", "params", "raw", "error"))
    secret = pc.is_in(command, pa.array(list(SECRET_POSITIONS), command.type))
    # A frame no command could be read from (cut by lost bytes, garbage) may
    # still carry a password: keep its error, hide its text and bytes.
    known = pc.is_in(command, pa.array(list(BY_NAME), command.type))
    unreadable = pc.and_(pc.is_valid(error), pc.invert(known))
    touched = pc.fill_null(pc.or_(secret, unreadable), False)
    # the name an error quotes may be password text too
    has_error = pc.is_valid(error)
    if error.null_count < len(error):
        quoted = pc.replace_substring_regex(error.filter(has_error), _QUOTED_NAME,
                                            "not a command name: " + MASK)
        error = pc.replace_with_mask(error, has_error, quoted)
        table = table.set_column(table.schema.get_field_index("error"), "error", error)
    if not pc.any(touched).as_py():
        return table
    rows = pa.array(np.flatnonzero(touched.to_numpy(zero_copy_only=False)))
    t_cmd = command.take(rows)
    t_params = _masked_fields(t_cmd, params.take(rows))
    t_unreadable = unreadable.take(rows)
    # its "command name" may itself be password text (a cut Login tail)
    t_params = pc.if_else(pc.and_(t_unreadable, pc.greater(pc.binary_length(t_params), 0)),
                          pa.scalar(MASK, params.type), t_params)
    t_cmd = pc.if_else(pc.and_(t_unreadable, pc.greater(pc.binary_length(t_cmd), 0)),
                       pa.scalar(MASK, command.type), t_cmd)
    params = pc.replace_with_mask(params, touched, t_params)
    command = pc.replace_with_mask(command, touched, t_cmd)
    raw = pc.if_else(touched, pa.scalar(None, raw.type), raw)
    table = table.set_column(table.schema.get_field_index("command"), "command", command)
    table = table.set_column(table.schema.get_field_index("error"), "error", error)
    table = table.set_column(table.schema.get_field_index("params"), "params", params)
    return table.set_column(table.schema.get_field_index("raw"), "raw", raw)

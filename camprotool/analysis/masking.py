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


def _all_masked(column: pa.Array) -> pa.Array:
    """``column`` with every value ``***`` (nulls stay null), made from its validity
    alone: an ``if_else`` over the column cost a pass over its text."""
    if not pa.types.is_large_string(column.type):
        return pc.if_else(pc.is_valid(column), pa.scalar(MASK, column.type), column)
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(column) + 1, np.int64)
    np.cumsum(valid * len(MASK), out=offsets[1:])
    bitmap = pa.array(valid).buffers()[1] if column.null_count else None
    return pa.Array.from_buffers(
        column.type, len(column),
        [bitmap, pa.py_buffer(offsets), pa.py_buffer(MASK.encode() * int(valid.sum()))],
        null_count=column.null_count)


def _masked_params(commands: pa.Array, params: pa.Array, whole: np.ndarray) -> pa.Array:
    """``params`` with every secret field of the rows of commands that have one shown as
    ``***`` (and the rows ``whole`` says, all of it unless empty), in one compiled pass
    over the column's bytes (:func:`bulk_kernels.mask_fields`): where splitting and
    joining the touched rows' fields cost a split, a replace and a join per chunk.
    A row with the wrong number of fields is worded by :func:`mask_params`."""
    from camprotool.protocol import bulk_kernels as BK

    n = len(params)
    encoded = pc.dictionary_encode(commands)
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    distinct = encoded.dictionary.to_pylist()
    bits = np.array([*(sum(1 << i for i in SECRET_POSITIONS.get(c, ())) for c in distinct),
                     0], np.int64)
    want = np.array([*(_FIELD_COUNTS.get(c, 0) for c in distinct), 0], np.int64)[codes]
    hide = bits[codes]
    hide[whole] = -1
    valid = params.is_valid().to_numpy(zero_copy_only=False)
    hide[~valid] = 0
    base = params.offset
    validity, offsets_buf, data_buf = params.buffers()
    offsets = np.frombuffer(offsets_buf, np.int64)[base:base + n + 1] if n else \
        np.zeros(1, np.int64)
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None and data_buf.size \
        else np.zeros(0, np.uint8)
    out = np.empty(int(offsets[-1] - offsets[0]) + 3 * n, np.uint8)
    # the new offsets start ``base`` slots in, so the validity bitmap is reused as it is
    out_offsets = np.zeros(base + n + 1, np.int64)
    ok = np.ones(n, bool)
    size = BK.mask_fields(BK.readonly(data), offsets, hide, want, ok, out,
                          out_offsets[base:])
    masked = pa.Array.from_buffers(pa.large_string(), n, [
        validity, pa.py_buffer(out_offsets), pa.py_buffer(out[:size])],
        null_count=params.null_count, offset=base)
    odd = np.flatnonzero(~ok)
    if len(odd):  # wrong field count: mask_params words it
        fixed = [mask_params(c, p) for c, p in zip(
            commands.take(pa.array(odd)).to_pylist(),
            params.take(pa.array(odd)).to_pylist(), strict=True)]
        mask = np.zeros(n, bool)
        mask[odd] = True
        masked = pc.replace_with_mask(masked, pa.array(mask), pa.array(fixed, params.type))
    return masked


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
            masked = _all_masked(_array(col))
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
    hide_all = pc.fill_null(unreadable, False).to_numpy(zero_copy_only=False)
    params = _masked_params(command, params, hide_all)
    if hide_all.any():  # its "command name" may itself be password text (a cut Login tail)
        rows = pa.array(np.flatnonzero(hide_all))
        t_cmd = command.take(rows)
        t_cmd = pc.if_else(pc.greater(pc.binary_length(t_cmd), 0),
                           pa.scalar(MASK, command.type), t_cmd)
        command = pc.replace_with_mask(command, pa.array(hide_all), t_cmd)
    raw = pc.if_else(touched, pa.scalar(None, raw.type), raw)
    table = table.set_column(table.schema.get_field_index("command"), "command", command)
    table = table.set_column(table.schema.get_field_index("error"), "error", error)
    table = table.set_column(table.schema.get_field_index("params"), "params", params)
    return table.set_column(table.schema.get_field_index("raw"), "raw", raw)

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

How: the ``command`` column is read once into a code a row (:class:`Commands`);
which rows hold a password, how many fields they need and which to hide are
then lookups by code, and only the chunks holding such rows are rewritten.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from camprotool.capture.connections import coded_commands, command_codes
from camprotool.protocol.catalogue import COMMANDS, SECRET_FIELDS

# The one masking rule and its tables live in the sans-I/O core (a message's repr
# needs them); this module applies the rule column-wise to whole captures.
from camprotool.protocol.masking import FIELD_COUNTS as _FIELD_COUNTS
from camprotool.protocol.masking import MASK, SECRET_POSITIONS, mask_params

__all__ = ["CATALOGUE_NAMES", "MASK", "SECRET_POSITIONS", "Commands", "encode_commands",
           "mask_messages", "mask_params", "mask_table"]

#: the quoted name in the codec's "not a command name: 'xyz'" error
_QUOTED_NAME = r"""not a command name: (?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""

#: every catalogue command name, in catalogue order: the first codes of :class:`Commands`
CATALOGUE_NAMES: list[str] = [spec.name for spec in COMMANDS]
_KNOWN = len(CATALOGUE_NAMES)
#: per catalogue command: its secret fields as bits by position (0: none), its field count
_SECRET_BITS = np.array([sum(1 << i for i in SECRET_POSITIONS.get(name, ()))
                         for name in CATALOGUE_NAMES], np.int64)
_FIELD_COUNT = np.array([_FIELD_COUNTS.get(name, 0) for name in CATALOGUE_NAMES], np.int64)
#: per catalogue command: whether it has a secret field
_HAS_SECRET = _SECRET_BITS != 0
#: the most ``***`` one row's params can gain (each at most 3 bytes longer than its field)
_MAX_STARS = 3 * max([len(p) for p in SECRET_POSITIONS.values()] + [1])


class Commands(NamedTuple):
    """A ``command`` column as a code a row: ``names[codes[i]]``, -1 for a null.

    ``names``: the catalogue's, in catalogue order, then the other names the rows
    hold, sorted; what ``Capture.messages`` has as ``command`` categories, so the
    codes are its codes. Why: masking and the frame each ask per row which command
    it is; reading the text once and looking the rest up by code costs a fraction
    of an ``is_in`` or ``dictionary_encode`` of the text per question.
    """

    codes: np.ndarray  # int32
    names: list[str]

    def lookup(self, per_known: np.ndarray) -> np.ndarray:
        """``per_known`` (a value per catalogue command) of each row; 0 for others and nulls."""
        table = np.zeros(len(self.names) + 1, per_known.dtype)  # the last one: code -1
        table[:_KNOWN] = per_known
        return table[self.codes]

    def column(self, type_: pa.DataType) -> pa.Array:
        """The names as text again."""
        codes = pa.array(self.codes, pa.int64(), mask=self.codes < 0)
        return pa.array(self.names, type_).take(codes)


def encode_commands(column: pa.ChunkedArray | pa.Array) -> Commands:
    """:class:`Commands` of a command column: the decoder table's codes
    (:data:`~camprotool.capture.connections.COMMAND_TYPE`) as they are, text coded as
    ``build_connections`` codes it (:func:`~camprotool.capture.connections.coded_commands`)."""
    if not len(column):
        return Commands(np.zeros(0, np.int32), CATALOGUE_NAMES)
    coded, names = coded_commands(column)
    return Commands(command_codes(coded), names)


def mask_table(table: pa.Table) -> pa.Table:
    """Mask an Arrow message table (bulk decoder schema): :func:`mask_messages`."""
    return mask_messages(table, encode_commands(table["command"]))[0]


def mask_messages(table: pa.Table, commands: Commands, *, params_masked: bool = False
                  ) -> tuple[pa.Table, Commands]:
    """``table`` (bulk decoder schema) masked, and its commands after masking
    (``commands``: its ``command`` column, :func:`encode_commands`).

    Only the rows that can hold a password (commands with secret fields, frames
    no command could be read from) are rewritten, and only in the chunks holding
    them: a chunk (a fast-engine window) without one keeps its buffers.
    ``params_masked``: the ``params`` column is masked already (:class:`ParamsMasker`).
    """
    table = _mask_secret_columns(table)
    error = table["error"]
    unreadable = _unreadable(error, commands)
    if error.null_count < len(error):  # the name an error quotes may be password text too
        table = _set(table, "error", _per_chunk(error, _unquoted))
    touched = commands.lookup(_HAS_SECRET) | unreadable  # bools: a byte a row, not 8
    if not touched.any():
        return table, commands
    if not params_masked:
        table = _set(table, "params", _per_chunk(table["params"], ParamsMasker(table, commands)
                                                 .masked))
    if unreadable.any():  # its "command name" may itself be password text (a cut Login tail)
        commands = _renamed(table["command"], commands, unreadable)
        table = _set(table, "command", commands.column(table.schema.field("command").type))
    raw = table["raw"]
    if raw.null_count < len(raw):
        table = _set(table, "raw", _per_chunk(raw, lambda chunk, rows: _nulls_where(
            chunk, touched[rows])))
    return table, commands


def _unreadable(error: pa.ChunkedArray | pa.Array, commands: Commands) -> np.ndarray:
    """Per row: a frame no command could be read from (cut by lost bytes, garbage),
    which may still carry a password: it keeps its error, its text and bytes are hidden."""
    codes = commands.codes
    if error.null_count == len(error):  # no error (most captures): no pass over the codes
        return np.zeros(len(codes), bool)
    return _valid(error) & ((codes < 0) | (codes >= _KNOWN))


class ParamsMasker:
    """How :func:`mask_messages` masks a ``params`` column, chunk by chunk.

    ``masked(chunk, rows)``: the chunk (``rows``: its rows in the whole column)
    masked; ``split(chunk, rows)``: which of its rows masking may change, and the
    chunk masked, each row's secret fields looked up once for both. For a caller
    that replaces the column as it goes, keeping the real values of those rows
    (``DecodedCapture.mask_params``): the masked column then serves both the
    decoder's rows and the dataframe.
    """

    def __init__(self, table: pa.Table, commands: Commands) -> None:
        self.commands = commands
        self.unreadable = _unreadable(table["error"], commands)

    def _of(self, rows: slice) -> tuple[Commands, np.ndarray]:
        return Commands(self.commands.codes[rows], self.commands.names), self.unreadable[rows]

    def masked(self, chunk: pa.Array, rows: slice) -> pa.Array | pa.ChunkedArray:
        return self.split(chunk, rows)[1]

    def split(self, chunk: pa.Array, rows: slice) -> tuple[np.ndarray, pa.Array | pa.ChunkedArray]:
        commands, whole = self._of(rows)
        return _masked_as(chunk, commands, _hide(chunk, commands, whole))


def _per_chunk(column: pa.ChunkedArray | pa.Array,
               step: Callable[[pa.Array, slice], pa.Array | pa.ChunkedArray]
               ) -> pa.ChunkedArray:
    """``step(chunk, rows)`` of each chunk (``rows``: its rows in the whole column)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    out: list[pa.Array] = []
    at = 0
    for chunk in chunks:
        done = step(chunk, slice(at, at + len(chunk)))
        out.extend(done.chunks if isinstance(done, pa.ChunkedArray) else [done])
        at += len(chunk)
    return pa.chunked_array(out, column.type)


def _set(table: pa.Table, name: str, column: pa.ChunkedArray | pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, column)


def _valid(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Per row: not null (no pass over the column when it has no null, or no value)."""
    if not column.null_count:
        return np.ones(len(column), bool)
    if column.null_count == len(column):
        return np.zeros(len(column), bool)
    return column.is_valid().to_numpy(zero_copy_only=False)


def _mask_secret_columns(table: pa.Table) -> pa.Table:
    """Every value of the typed password columns ``***``."""
    stars = _Stars()
    for name in sorted(SECRET_FIELDS):
        if name in table.column_names and table[name].null_count < len(table[name]):
            table = _set(table, name, _per_chunk(table[name], lambda c, _: stars.over(c)))
    return table


class _Stars:
    """Columns of ``***`` over other columns' validity, sharing one text of stars.

    A ``large_string`` chunk whose every value is ``***`` is the same offsets
    (0, 3, 6, ...) and text (``******...``) whatever its length; only which rows
    are null differs. So every masked chunk is that one pair of buffers under the
    original chunk's own validity bitmap (and offset): no bytes a row. Building
    offsets a chunk cost 8 bytes a row for each password column (3 MB of 185,000
    messages), and an ``if_else`` over the text cost a pass over it.
    """

    def __init__(self) -> None:
        self.rows = 0
        self.offsets: pa.Buffer | None = None
        self.text: pa.Buffer | None = None

    def over(self, column: pa.Array) -> pa.Array:
        """``column`` with every value ``***`` (nulls stay null); one without a value is
        kept as it is (most chunks hold no login)."""
        if column.null_count == len(column):
            return column
        if not pa.types.is_large_string(column.type):
            return pc.if_else(pc.is_valid(column), pa.scalar(MASK, column.type), column)
        end = column.offset + len(column)
        if end > self.rows:  # room for the longest chunk, made once
            self.rows = max(end, 2 * self.rows)
            self.offsets = pa.py_buffer(np.arange(self.rows + 1, dtype=np.int64) * len(MASK))
            self.text = pa.py_buffer(MASK.encode() * self.rows)
        return pa.Array.from_buffers(column.type, len(column),
                                     [column.buffers()[0], self.offsets, self.text],
                                     null_count=column.null_count, offset=column.offset)


def _unquoted(error: pa.Array, _: slice) -> pa.Array:
    """``error`` with the name a "not a command name" error quotes replaced by ``***``."""
    if error.null_count == len(error):
        return error
    return pc.replace_substring_regex(error, _QUOTED_NAME, "not a command name: " + MASK)


#: a run of at least this many rows without a password is kept as a zero-copy slice
_KEEP = 4096


def _masked_params(params: pa.Array, commands: Commands,
                   whole: np.ndarray) -> pa.Array | pa.ChunkedArray:
    """``params`` (one chunk; ``commands``: its rows') with every secret field of the
    rows of commands that have one shown as ``***``, and the rows ``whole`` says all
    ``***`` unless empty.

    Only the stretches holding such rows are rewritten; the long runs without one
    between them (``_KEEP`` rows or more: a capture's logins and uploads come in
    bursts) stay slices of ``params``, so the result is a few chunks sharing its
    buffers where a copy of all of it cost more time and memory than the masking.
    """
    return _masked_as(params, commands, _hide(params, commands, whole))[1]


def _masked_as(params: pa.Array, commands: Commands, hide: np.ndarray
               ) -> tuple[np.ndarray, pa.Array | pa.ChunkedArray]:
    """:func:`_masked_params` as ``hide`` (:func:`_hide`) says, and the rows it may
    change (those ``hide`` flags)."""
    touched = np.flatnonzero(hide)
    if not len(touched):
        return touched, params
    if not pa.types.is_large_string(params.type):
        params = params.cast(pa.large_string())
    want = commands.lookup(_FIELD_COUNT)
    pieces = [_rewritten(params.slice(lo, hi - lo), hide[lo:hi], want[lo:hi],
                         Commands(commands.codes[lo:hi], commands.names))
              if rewrite else params.slice(lo, hi - lo)
              for lo, hi, rewrite in _stretches(touched, len(params))]
    return touched, pieces[0] if len(pieces) == 1 else pa.chunked_array(pieces, params.type)


def _hide(params: pa.Array, commands: Commands, whole: np.ndarray) -> np.ndarray:
    """Per row of ``params``: its secret fields as bits, -1 to hide it whole, 0 to keep it."""
    hide = commands.lookup(_SECRET_BITS)
    hide[whole] = -1
    if params.null_count:
        hide[~_valid(params)] = 0
    return hide


def _stretches(touched: np.ndarray, n: int) -> list[tuple[int, int, bool]]:
    """Rows 0 to ``n`` as stretches (start, stop, rewrite): the runs of ``_KEEP`` rows or
    more between two ``touched`` rows are kept (False), the rest is rewritten."""
    gap_lo = np.concatenate([[0], touched + 1])
    gap_hi = np.concatenate([touched, [n]])
    out: list[tuple[int, int, bool]] = []
    at = 0
    for g in np.flatnonzero(gap_hi - gap_lo >= _KEEP).tolist():
        lo, hi = int(gap_lo[g]), int(gap_hi[g])
        if lo > at:
            out.append((at, lo, True))
        out.append((lo, hi, False))
        at = hi
    if at < n:
        out.append((at, n, True))
    return out


def _rewritten(params: pa.Array, hide: np.ndarray, want: np.ndarray,
               commands: Commands) -> pa.Array:
    """``params`` (large_string) masked as ``hide`` and ``want`` say
    (:func:`bulk_kernels.mask_rows`: one compiled pass copying the rows between two
    masked ones at once). A row with the wrong number of fields is worded by
    :func:`mask_params`."""
    from camprotool.protocol import bulk_kernels as BK

    n, base = len(params), params.offset
    validity, offsets_buf, data_buf = params.buffers()
    offsets = np.frombuffer(offsets_buf, np.int64, count=n + 1, offset=8 * base)
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None and data_buf.size \
        else np.zeros(0, np.uint8)
    out = np.empty(int(offsets[-1] - offsets[0]) + _MAX_STARS * int(np.count_nonzero(hide))
                   + 8, np.uint8)
    if validity is None:
        base = 0
    # else the new offsets start ``base`` slots in, so the validity bitmap is reused as it is
    out_offsets = np.zeros(base + n + 1, np.int64)
    ok = np.ones(n, bool)
    # read-only views: the one signature bulk_kernels.warm_up loads
    size = BK.mask_rows(BK.readonly(data), BK.readonly(offsets), hide, want, ok, out,
                        out_offsets[base:])
    masked = pa.Array.from_buffers(pa.large_string(), n, [
        validity, pa.py_buffer(out_offsets), pa.py_buffer(out[:size])],
        null_count=params.null_count, offset=base)
    odd = np.flatnonzero(~ok)
    if len(odd):  # wrong field count: mask_params words it
        fixed = [mask_params(commands.names[c], p) for c, p in zip(
            commands.codes[odd].tolist(), params.take(pa.array(odd)).to_pylist(), strict=True)]
        mask = np.zeros(n, bool)
        mask[odd] = True
        masked = pc.replace_with_mask(masked, pa.array(mask), pa.array(fixed, masked.type))
    return masked


def _renamed(column: pa.ChunkedArray | pa.Array, commands: Commands,
             unreadable: np.ndarray) -> Commands:
    """``commands`` with the name of each ``unreadable`` row ``***`` (an empty or null
    one stays as it is), the other names again only those the rows hold, sorted."""
    rows = np.flatnonzero(unreadable)
    names = column.take(pa.array(rows))
    if pa.types.is_dictionary(names.type):
        names = names.cast(names.type.value_type)
    sizes = pc.binary_length(names).fill_null(0)
    named = rows[sizes.to_numpy() > 0]
    if not len(named):
        return commands
    codes = commands.codes.copy()
    codes[named] = len(commands.names)
    names = [*commands.names, MASK]
    other = codes >= _KNOWN
    used = np.unique(codes[other]).tolist()
    extra = sorted({names[c] for c in used})
    new_code = {name: _KNOWN + k for k, name in enumerate(extra)}
    remap = np.arange(len(names), dtype=codes.dtype)
    for c in used:
        remap[c] = new_code[names[c]]
    codes[other] = remap[codes[other]]
    return Commands(codes, CATALOGUE_NAMES + extra)


def _nulls_where(column: pa.Array, rows: np.ndarray) -> pa.Array:
    """``column`` with the ``rows`` (flags) null."""
    if not rows.any():
        return column
    return pc.if_else(pa.array(rows), pa.scalar(None, column.type), column)

"""Bulk decoder: a whole reassembled stream -> Arrow columns, without a Python object per message.

Capture decoding spends its time here, so the common case is vectorised:

1. framing: newline positions (``line``) come from one NumPy comparison; the
   length walk (``lp*``) is a tight loop over precompiled ``struct`` calls;
2. the frame bodies are copied once into one contiguous buffer that becomes
   an Arrow binary array (UTF-8 validated in C++);
3. each body splits at its first ``|`` and every known command's parameters
   are matched by one RE2 pattern with a named group per field (generated from
   the catalogue), then counts are cast and statuses mapped, column-wise.

Everything irregular goes to the reference path instead: rows whose
parameters the pattern does not accept (a wrong field count, a bad number...)
are decoded by :func:`camprotool.protocol.fields.parse_params`, and any part
of the stream that is not a clean run of frames (a partial frame after a gap,
an impossible length, an over-long line) is handed to the incremental
:class:`~camprotool.protocol.codec.Decoder`, which keeps its state across
calls. The patterns only accept rows the reference parser accepts with the
same values, so both decoders agree exactly (a property test checks it).

GBK bodies are decoded to text per row in Python (Arrow has no GBK codec);
the rest of the pipeline is shared.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from camprotool.protocol.catalogue import (
    BY_NAME,
    COMMANDS,
    FIELD_NAMES,
    CommandSpec,
    Kind,
    Layout,
    normalize_name,
)
from camprotool.protocol.codec import _NAME_RE, BodyDecoder, Decoder
from camprotool.protocol.dialect import LINE, Dialect
from camprotool.protocol.messages import Message

_STATUS_STRUCT = pa.struct([("camera_id", pa.large_string()), ("online", pa.bool_())])


def _column_type(name: str) -> pa.DataType:
    if name == "ids":
        return pa.large_list(pa.large_string())
    if name == "statuses":
        return pa.large_list(_STATUS_STRUCT)
    kind = next(f.kind for c in COMMANDS for f in c.fields if f.name == name)
    if kind in (Kind.COUNT, Kind.PORT):
        return pa.int64()
    if kind is Kind.STATUS:
        return pa.bool_()
    return pa.large_string()


#: The bulk decoder's output columns, in order. ``end`` is the stream offset
#: just past each frame (lost bytes count); ``raw`` is kept for error rows only.
SCHEMA = pa.schema(
    [
        ("end", pa.int64()),
        ("command", pa.large_string()),
        ("params", pa.large_string()),
        ("error", pa.large_string()),
        ("raw", pa.large_binary()),
    ]
    + [(name, _column_type(name)) for name in FIELD_NAMES]
)

_DIGITS = r"\d{1,18}"  # fits int64; longer numbers take the reference path
_STATUS_RE = r"(?i:true|false|null)"


def _field_pattern(name: str, kind: Kind, last: bool) -> str:
    if kind is Kind.COUNT:
        body = _DIGITS
    elif kind is Kind.PORT:
        body = r"\d{0,5}"
    elif kind is Kind.STATUS:
        body = _STATUS_RE
    elif name == "reason" or last:
        body = ".*"
    else:
        body = "[^|]*"
    return f"(?P<{name}>{body})"


def _pattern(spec: CommandSpec) -> str | None:
    """An RE2 pattern that accepts exactly the clean parameter strings of ``spec``."""
    if spec.layout in (Layout.IDS, Layout.STATUS_LIST):
        return None  # list-valued: the reference parser handles them
    if spec.layout is Layout.COLON_PAIR:
        first, second = spec.fields
        value = _STATUS_RE if second.kind is Kind.STATUS else ".*"
        return f"(?s)^(?P<{first.name}>[^:]*):(?P<{second.name}>{value})$"
    if not spec.fields:
        return "(?s)^.*$"
    if len(spec.fields) == 1:
        f = spec.fields[0]
        return "(?s)^" + _field_pattern(f.name, f.kind, last=True) + "$"
    parts = []
    for f in spec.fields:
        p = _field_pattern(f.name, f.kind, last=False)
        if f.name != "reason" and f.kind in (Kind.TEXT, Kind.SECRET, Kind.CAMERA_ID):
            p = f"(?P<{f.name}>[^|]*)"
        parts.append(p)
    return "(?s)^" + r"\|".join(parts) + "$"


_PATTERNS: dict[str, str | None] = {spec.name: _pattern(spec) for spec in COMMANDS}
_SPLIT_NAME = r"(?s)^(?P<name>[^|]*)(?:\|(?P<params>.*))?$"


class BulkDecoder:
    """Same contract as :class:`~camprotool.protocol.codec.Decoder`, returning Arrow tables.

    ``feed``, ``gap`` and ``finish`` each return a :class:`pyarrow.Table` with
    :data:`SCHEMA`; concatenated in call order they are the stream's messages.
    """

    def __init__(self, dialect: Dialect | str = LINE) -> None:
        self.dialect = Dialect.parse(dialect)
        self._inc = Decoder(self.dialect)
        self._body = BodyDecoder(self.dialect)
        self._length = struct.Struct("<I" if self.dialect.byteorder == "little" else ">I")
        self._name_specs: dict[str, tuple[CommandSpec | None, str | None]] = {}

    @property
    def offset(self) -> int:
        return self._inc.offset

    # ------------------------------------------------------------- public API
    def feed(self, data: bytes) -> pa.Table:
        inc = self._inc
        if not data:
            return _empty()
        tables: list[pa.Table] = []
        view = memoryview(data)
        # Let the incremental decoder finish any irregular state first, in
        # pieces, so the fast path can take over as soon as the stream is clean.
        pos = 0
        while pos < len(data) and not self._clean():
            step = 65536
            tables.append(_rows_to_table(inc.feed_with_ends(bytes(view[pos : pos + step]))))
            pos += step
        if pos < len(data):
            if inc._buf:
                buf = bytes(inc._buf) + bytes(view[pos:])
            else:
                buf = data if pos == 0 else bytes(view[pos:])
            base = inc._base
            inc._buf.clear()
            tables.append(self._fast(buf, base))
        return _concat(tables)

    def gap(self, nbytes: int) -> pa.Table:
        return _rows_to_table(self._inc.gap_with_ends(nbytes))

    def finish(self) -> pa.Table:
        return _rows_to_table(self._inc.finish_with_ends())

    def decode(self, data: bytes) -> pa.Table:
        """Feed ``data`` and finish: a whole stream in one call."""
        return _concat([self.feed(data), self.finish()])

    # ------------------------------------------------------------- framing
    def _clean(self) -> bool:
        inc = self._inc
        return inc._resync is None and not inc._overflow and not inc._after_gap

    def _fast(self, buf: bytes, base: int) -> pa.Table:
        """Decode ``buf`` (starting at stream offset ``base``) on the vectorised path."""
        if self.dialect.is_line:
            starts, body_ends, ends, consumed, specials = self._frame_line(buf)
            handoff = consumed
        else:
            starts, body_ends, ends, handoff = self._frame_lp(buf)
            specials = None
        frame_starts = starts if self.dialect.is_line else starts - 4
        tables = [self._bodies(buf, starts, body_ends, ends, frame_starts, base)]
        if specials is not None and len(specials):
            # Over-long lines: the incremental decoder words their error rows.
            rows = []
            for s, e in specials:
                dec = Decoder(self.dialect)
                for _end, msg in dec.feed_with_ends(buf[s:e]):
                    rows.append((base + e, msg))
            tables.append(_rows_to_table(rows))
            table = pa.concat_tables(tables)
            tables = [table.take(pc.sort_indices(table["end"]))]
        # Whatever is left (a partial frame, or an irregular lp frame) goes to
        # the incremental decoder, which carries it into the next call.
        self._inc._base = base + handoff
        tables.append(_rows_to_table(self._inc.feed_with_ends(buf[handoff:])))
        return _concat(tables)

    def _frame_line(self, buf: bytes):
        arr = np.frombuffer(buf, dtype=np.uint8)
        nl = np.flatnonzero(arr == 10)
        if not len(nl):
            empty = np.zeros(0, np.int64)
            return empty, empty, empty, 0, None
        ends = nl + 1
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1]
        has_cr = (nl > starts) & (arr[np.maximum(nl - 1, 0)] == 13)
        body_ends = nl - has_cr
        sizes = nl - starts
        keep = body_ends > starts  # empty lines carry nothing
        over = sizes > self.dialect.max_frame
        specials = None
        if over.any():
            specials = np.stack([starts[over], ends[over]], axis=1)
            keep &= ~over
        return starts[keep], body_ends[keep], ends[keep], int(ends[-1]), specials

    def _frame_lp(self, buf: bytes):
        unpack_from = self._length.unpack_from
        limit = self.dialect.max_frame
        n = len(buf)
        pos = 0
        starts = []
        append = starts.append
        while pos + 4 <= n:
            (length,) = unpack_from(buf, pos)
            if length == 0 or length > limit or pos + 4 + length > n:
                break
            append(pos)
            pos += 4 + length
        s = np.fromiter(starts, dtype=np.int64, count=len(starts))
        ends = np.empty_like(s)
        ends[:-1] = s[1:]
        if len(s):
            ends[-1] = pos
        return s + 4, ends, ends, pos

    # ------------------------------------------------------------- bodies
    def _bodies(self, buf: bytes, starts: np.ndarray, body_ends: np.ndarray,
                ends: np.ndarray, frame_starts: np.ndarray, base: int) -> pa.Table:
        n = len(starts)
        if n == 0:
            return _empty()
        lengths = body_ends - starts
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        arr = np.frombuffer(buf, dtype=np.uint8)
        if offsets[-1] == len(buf):
            packed = arr
        else:
            # Gather the bodies into one buffer: mark each body's first byte
            # +1 and the byte after it -1; the running sum is the keep mask.
            marks = np.zeros(len(buf) + 1, dtype=np.int8)
            marks[starts] += 1
            marks[body_ends] -= 1
            packed = arr[np.cumsum(marks[:-1], dtype=np.int8).view(bool)]
        binary = pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(packed)]
        )
        texts, bad = self._texts(binary)
        frames = (buf, frame_starts, ends)
        return self._parse(texts, bad, binary, frames).set_column(
            0, "end", pa.array(ends + base, pa.int64())
        )

    def _texts(self, binary: pa.Array) -> tuple[pa.Array, np.ndarray]:
        """Body text, and a mask of rows that need the reference path (bad encoding)."""
        n = len(binary)
        if self.dialect.encoding == "utf-8":
            try:
                return binary.cast(pa.large_string()), np.zeros(n, bool)
            except pa.ArrowInvalid:
                pass
        enc = self.dialect.encoding
        out: list[str | None] = []
        bad = np.zeros(n, bool)
        for i, body in enumerate(binary.to_pylist()):
            try:
                out.append(body.decode(enc))
            except UnicodeDecodeError:
                out.append(None)
                bad[i] = True
        return pa.array(out, pa.large_string()), bad

    def _lookup(self, name: str) -> tuple[CommandSpec | None, str | None]:
        """(spec, command column value) for a name; (None, None) means reference path."""
        try:
            return self._name_specs[name]
        except KeyError:
            pass
        spec = self._body.spec(name)
        if spec is not None:
            found: tuple[CommandSpec | None, str | None] = (spec, spec.name)
        elif _NAME_RE.fullmatch(name):
            found = (None, normalize_name(name))
        else:
            found = (None, None)
        if len(self._name_specs) < 4096:
            self._name_specs[name] = found
        return found

    def _parse(self, texts: pa.Array, bad: np.ndarray, binary: pa.Array,
               frames: tuple[bytes, np.ndarray, np.ndarray]) -> pa.Table:
        n = len(texts)
        split = pc.extract_regex(texts, _SPLIT_NAME)
        names = split.field("name")
        params = split.field("params")
        dictionary = names.dictionary_encode()
        uniques = dictionary.dictionary.to_pylist()
        codes = dictionary.indices.to_numpy(zero_copy_only=False)
        slow = bad | pc.is_null(names).to_numpy(zero_copy_only=False)
        groups: list[tuple[np.ndarray, pa.Table]] = []
        unknown_rows = []
        unknown_names = []
        for code, name in enumerate(uniques):
            if name is None:
                continue
            rows = np.flatnonzero((codes == code) & ~slow)
            if not len(rows):
                continue
            spec, command = self._lookup(name)
            if command is None:
                slow[rows] = True
            elif spec is None:
                unknown_rows.append(rows)
                unknown_names.append((command, len(rows)))
            else:
                pattern = _PATTERNS[spec.name]
                if pattern is None:
                    slow[rows] = True
                    continue
                table, ok = _typed(spec, pattern, params.take(rows))
                if not ok.all():
                    slow[rows[~ok]] = True
                    rows = rows[ok]
                    table = table.filter(pa.array(ok))
                groups.append((rows, table))
        if unknown_rows:
            rows = np.concatenate(unknown_rows)
            commands = pa.array([c for c, _ in unknown_names], pa.large_string()).take(
                pa.array(np.repeat(np.arange(len(unknown_names)), [k for _, k in unknown_names]))
            )
            groups.append((rows, _table(len(rows), command=commands, params=params.take(rows))))
        slow_rows = np.flatnonzero(slow)
        if len(slow_rows):
            decode = self._body.decode
            buf, frame_starts, frame_ends = frames
            bodies = binary.take(slow_rows).to_pylist()
            msgs = [
                (0, decode(body, buf[frame_starts[i] : frame_ends[i]]))
                for body, i in zip(bodies, slow_rows.tolist(), strict=True)
            ]
            groups.append((slow_rows, _rows_to_table(msgs)))
        order = np.concatenate([rows for rows, _ in groups])
        table = pa.concat_tables([t for _, t in groups])
        if len(order) != n:  # pragma: no cover - every row lands in exactly one group
            raise AssertionError("bulk decoder lost rows")
        if not (len(groups) == 1 and np.array_equal(order, np.arange(n))):
            table = table.take(pa.array(np.argsort(order, kind="stable")))
        return table


def _typed(spec: CommandSpec, pattern: str, params: pa.Array) -> tuple[pa.Table, np.ndarray]:
    """Typed columns for one command's rows, and which rows the pattern accepted."""
    n = len(params)
    matched = pc.extract_regex(params, pattern)
    ok = pc.is_valid(matched).to_numpy(zero_copy_only=False)
    columns: dict[str, pa.Array] = {}
    for field in spec.fields:
        text = matched.field(field.name)
        kind = field.kind
        if kind is Kind.COUNT:
            text = pc.if_else(pa.array(ok), text, "0")
            columns[field.name] = pc.cast(text, pa.int64())
        elif kind is Kind.PORT:
            empty = pc.equal(pc.binary_length(text), 0)
            safe = pc.if_else(pc.or_(empty, pa.array(~ok)), "1", text)
            port = pc.cast(safe, pa.int64())
            in_range = pc.and_(pc.greater_equal(port, 1), pc.less_equal(port, 65535))
            ok &= pc.or_(empty, in_range).to_numpy(zero_copy_only=False)
            columns[field.name] = pc.if_else(empty, pa.scalar(None, pa.int64()), port)
        elif kind is Kind.STATUS:
            low = pc.utf8_lower(text)
            columns[field.name] = pc.if_else(
                pc.equal(low, "null"), pa.scalar(None, pa.bool_()), pc.equal(low, "true")
            )
        else:
            columns[field.name] = text.cast(pa.large_string())
    return _table(n, command=_repeat(spec.name, n), params=params, **columns), ok


def _repeat(text: str, n: int) -> pa.Array:
    return pa.array([text], pa.large_string()).take(pa.array(np.zeros(n, dtype=np.int64)))


def _table(n: int, **columns: Any) -> pa.Table:
    arrays = []
    for field in SCHEMA:
        col = columns.get(field.name)
        if col is None:
            arrays.append(pa.nulls(n, field.type))
        else:
            arrays.append(col if col.type == field.type else col.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _empty() -> pa.Table:
    return SCHEMA.empty_table()


def _concat(tables: list[pa.Table]) -> pa.Table:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return _empty()
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def _rows_to_table(rows: list[tuple[int, Message]]) -> pa.Table:
    """Messages from the reference path -> the bulk schema."""
    if not rows:
        return _empty()
    cols: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    for end, msg in rows:
        cols["end"].append(end)
        cols["command"].append(msg.command)
        cols["params"].append(msg.params)
        cols["error"].append(msg.error)
        cols["raw"].append(msg.raw if msg.error else None)
        values = msg.fields
        for name in FIELD_NAMES:
            value = values.get(name)
            if name == "statuses" and value is not None:
                value = [{"camera_id": c, "online": s} for c, s in value]
            elif name == "ids" and value is not None:
                value = list(value)
            cols[name].append(value)
    return pa.Table.from_pydict(cols, schema=SCHEMA)


def decode_stream(data: bytes, dialect: Dialect | str = LINE) -> pa.Table:
    """Decode one whole stream with the bulk decoder."""
    return BulkDecoder(dialect).decode(data)


__all__ = ["BY_NAME", "SCHEMA", "BulkDecoder", "decode_stream"]

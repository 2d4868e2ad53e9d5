"""Bulk decoder: a whole reassembled stream -> Arrow columns, without a Python object per message.

Capture decoding spends its time here, so the common case runs as compiled
loops (:mod:`camprotool.protocol.bulk_kernels`, numba, imported on first use),
NumPy and Arrow kernels over the raw bytes, with no Python code per message:

1. Framing. ``line``: a compiled pass collects every newline (64 bytes
   compared at a time), a second turns them into frames. ``lp*``: the length
   walk is sequential by nature, so :class:`_LpWalker` guesses every frame
   start at once (positions whose 4-byte length is plausible and that another
   plausible frame ends at) and the walk then follows runs of guesses that
   chain exactly (each frame ends where the next guess starts) in one step;
   it steps frame by frame, in Python, only where the chain breaks. A frame
   is accepted only by the incremental decoder's own rule, so a wrong guess
   costs time, never correctness.
2. Text. UTF-8 bodies are parsed where they are and validated once, when the
   parameter strings are packed (``|`` never occurs inside a UTF-8
   sequence, so a body is valid iff its name and its parameters are). GBK
   cannot be split on raw bytes (a trail byte may be ``|``): its pure-ASCII
   bodies read the same as UTF-8, the others are transcoded together (joined
   by NUL, which cannot be the second byte of a GBK character) and appended
   as UTF-8.
3. Names. A compiled loop finds each body's first pipe (8 bytes at a time)
   and numbers the distinct names (a hash table, every hit confirmed byte by
   byte); each distinct name is looked up once (spaces around dots, vendor
   commands and the dialect's heartbeat name resolve exactly as the
   reference decoder resolves them).
4. Fields. The parameter strings are packed once, in row order: that buffer
   is the ``params`` column, and every field is a byte range of it. Rows are
   grouped by command (a counting sort) and one kernel per layout reads each
   row's string once: the pipes of a ``|`` layout, the first ``:``, the
   ``;``-separated ids, the ``id;status|...`` items. Counts and ports take 1
   to 18 ASCII digits; statuses are compared as 4/5 bytes with the
   lower-case bit set.
5. Columns are built once each, in row order (:class:`_Assembler`): numbers
   by scattering into preallocated arrays, text by one compiled copy of the
   wanted ranges, whole words at a time
   (:func:`camprotool.protocol.packing.pack_ranges` when every row has a
   value, ``scatter_text`` when some have); no table is built per command,
   reordered or padded with null columns.

Everything irregular takes the reference path: a body the fast path does not
accept exactly (a wrong field count, a bad number, a 19-digit count, a bad
encoding, an invalid name...) is decoded by
:meth:`camprotool.protocol.codec.BodyDecoder.decode`, and what the framing
cannot take (a frame cut by the end of the data, a zero or impossible length,
over-long lines, the state after a gap) goes to the incremental
:class:`~camprotool.protocol.codec.Decoder`, which keeps its state across
calls; the fast path takes over again as soon as that decoder is clean. The
fast path only accepts what the reference accepts, with the same values, so
both decoders agree exactly (``tests/protocol/test_bulk.py`` checks it on
corrupt, gapped, chunked streams in every dialect).

Where the time goes: see the "Protocol codec" section of ``docs/benchmarks.md``
(``benchmarks/bench_codec.py``: 1M messages, 0.2-0.4 s of CPU per dialect).
The reference path costs some microseconds per row it takes.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from camprotool.protocol.catalogue import (
    BY_NAME,
    COMMANDS,
    FIELD_NAMES,
    CommandSpec,
    Field,
    Kind,
    Layout,
    normalize_name,
)
from camprotool.protocol.codec import _NAME_RE, BodyDecoder, Decoder
from camprotool.protocol.dialect import LINE, Dialect
from camprotool.protocol.messages import Message
from camprotool.protocol.packing import pack_ranges

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


#: ``command`` as codes into the names the decoder met: the catalogue's first (a row's
#: code is then its command's position there), then the others in the order they came.
#: Why codes: the decoder looks every name up anyway, and the capture's connection table
#: reads each row's catalogue position (its kind of command); as text it cost a copy of
#: the name a row (22 bytes) and a hash lookup a row to find the position again.
COMMAND_CODES = pa.dictionary(pa.int32(), pa.string())

#: The bulk decoder's output columns, in order. ``end`` is the stream offset
#: just past each frame (lost bytes count); ``raw`` is kept for error rows only.
SCHEMA = pa.schema(
    [
        ("end", pa.int64()),
        ("command", COMMAND_CODES),
        ("params", pa.large_string()),
        ("error", pa.large_string()),
        ("raw", pa.large_binary()),
    ]
    + [(name, _column_type(name)) for name in FIELD_NAMES]
)

_TEXT, _LIST, _NUMBER = range(3)
#: (name, type, how it is built) of each column of SCHEMA: reading a pyarrow schema
#: makes new field and type objects each time, some microseconds a table.
_COLUMNS = [(f.name, f.type, _TEXT if f.type in (pa.large_string(), pa.large_binary())
             else _LIST if pa.types.is_large_list(f.type) else _NUMBER) for f in SCHEMA]



def _text_slots() -> tuple[tuple[str, ...], ...]:
    """The typed text columns in groups no command has two of (greedy colouring of
    which fields share a command): the columns of a group can share one offsets
    buffer and one text buffer, each only its own validity (``_Assembler``)."""
    text = [name for name, type_, form in _COLUMNS
            if form == _TEXT and name in FIELD_NAMES and type_ == pa.large_string()]
    together: dict[str, set[str]] = {name: set() for name in text}
    for spec in COMMANDS:
        names = [f.name for f in spec.fields if f.name in together]
        for name in names:
            together[name].update(n for n in names if n != name)
    slots: list[list[str]] = []
    for name in text:
        free = next((slot for slot in slots if not together[name] & set(slot)), None)
        if free is None:
            slots.append([name])
        else:
            free.append(name)
    return tuple(tuple(slot) for slot in slots if len(slot) > 1)


#: e.g. (user, last_login_time, reason, camera_password, alarm_type) and (password,
#: last_login_ip, camera_id): a row has a value in one column of a group at most
_TEXT_SLOTS = _text_slots()

_STEP = 65536  # bytes handed to the incremental decoder at a time
_MAX_DIGITS = 18  # any 18-digit number fits int64; longer ones take the reference path
_SPEC_INDEX = {spec.name: i for i, spec in enumerate(COMMANDS)}
_PIPE, _SEMICOLON, _COLON = ord("|"), ord(";"), ord(":")
_I64 = np.int64
_kernels: Any = None


def _k() -> Any:
    """:mod:`camprotool.protocol.bulk_kernels`, imported on first use (it imports numba)."""
    global _kernels
    if _kernels is None:
        from camprotool.protocol import bulk_kernels

        _kernels = bulk_kernels
    return _kernels


def _i64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, _I64)


_NameSpecs = dict[bytes, tuple[CommandSpec | None, str | None]]
_NAME_SPECS: dict[str, _NameSpecs] = {}  # see _name_specs


def _name_specs(heartbeat_name: str) -> _NameSpecs:
    """The name lookups (:meth:`BulkDecoder._lookup`) of every decoder whose dialect has
    this heartbeat name, the only part of a dialect a lookup depends on.

    Why shared: the capture engine makes a decoder per window and per detection
    call, and looking a stream's dozen names up again cost each of those feeds
    some 60 us. Bounded: a few heartbeat names are shared, others get their own.
    """
    specs = _NAME_SPECS.get(heartbeat_name)
    if specs is None:
        specs = {}
        if len(_NAME_SPECS) < 16:
            _NAME_SPECS[heartbeat_name] = specs
    return specs


#: what the framing reads: bytes, or a view of a byte array (never copied)
_Buf = bytes | memoryview


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
        self._name_specs = _name_specs(self.dialect.heartbeat_name)

    @property
    def offset(self) -> int:
        return self._inc.offset

    @property
    def idle(self) -> bool:
        """Nothing pending: ``finish()`` now would report nothing."""
        return self._inc.idle

    @property
    def held_from(self) -> int:
        """See :attr:`camprotool.protocol.codec.Decoder.held_from`."""
        return self._inc.held_from

    # ------------------------------------------------------------- public API
    def feed(self, data: bytes | np.ndarray,
             columns: tuple[str, ...] | None = None) -> pa.Table:
        """Decode ``data``: regular frames on the fast path, the rest incrementally.

        ``data`` may be a byte array (``uint8``), read where it is: the capture
        engine's windows of joined lines are megabytes, and copying each into
        ``bytes`` first cost a copy and its fresh pages. The array must not change
        while the returned table is used. ``columns``: only these of :data:`SCHEMA`
        (in its order), for a caller that reads a few (dialect detection reads
        ``end``, ``command`` and ``error``: every row is still parsed in full, as
        that decides its error, but the other columns are not built).
        """
        if isinstance(data, np.ndarray) and (data.dtype != np.uint8 or data.ndim != 1):
            raise TypeError(f"feed takes bytes or a 1-D uint8 array, not {data.dtype} "
                            f"of {data.ndim} dimensions")
        view: _Buf = memoryview(np.ascontiguousarray(data).data) \
            if isinstance(data, np.ndarray) else data
        if not len(view):
            empty = _empty()
            return empty if columns is None else empty.select(
                [name for name in SCHEMA.names if name in columns])
        inc = self._inc
        head = bytes(inc._buf) if self._clean() else b""
        buf = head + view if head else view
        batch = _Batch(base=inc.offset - len(head))  # stream offset of buf[0]
        walker = None
        seen = len(head)  # buf[:seen] has been given to the incremental decoder
        while True:
            start = seen - len(inc._buf)  # where the incremental decoder's pending frame starts
            if self._clean() and start >= 0 and seen < len(buf):
                # Take over: the pending frame (if any) is in buf, parse from its start.
                inc._buf.clear()
                if self.dialect.is_line:
                    frames, used = _walk_lines(buf, start, self.dialect.max_frame)
                else:
                    if walker is None:
                        walker = _LpWalker(buf, self.dialect.byteorder, self.dialect.max_frame)
                    frames, used = walker.walk(start)
                batch.add_frames(frames)
                inc._base = batch.base + used
                give_from, give_to = used, used + self._handoff(buf, used)
            elif seen < len(buf):
                give_from, give_to = seen, min(len(buf), seen + _STEP)
            else:
                break
            if give_to > give_from:
                batch.add_messages(inc.feed_with_ends(bytes(buf[give_from:give_to])))
            seen = give_to
        return self._decode(buf, batch, columns)

    def gap(self, nbytes: int) -> pa.Table:
        return rows_to_table(self._inc.gap_with_ends(nbytes))

    def finish(self) -> pa.Table:
        return rows_to_table(self._inc.finish_with_ends())

    def decode(self, data: bytes) -> pa.Table:
        """Feed ``data`` and finish: a whole stream in one call."""
        return _concat([self.feed(data), self.finish()])

    # ------------------------------------------------------------- framing
    def _clean(self) -> bool:
        inc = self._inc
        return inc._resync is None and not inc._overflow and not inc._after_gap

    def _handoff(self, buf: _Buf, at: int) -> int:
        """How many bytes from ``at`` (where the fast framing stopped) the incremental
        decoder needs before the fast path can try again."""
        rest = len(buf) - at
        if self.dialect.is_line or rest < 4:
            return rest  # no complete line / length left: it buffers the tail
        (length,) = self._length.unpack_from(buf, at)
        if length == 0:
            return 4  # an error row, then regular frames again
        if length > self.dialect.max_frame:
            return min(rest, _STEP)  # it resynchronises, piece by piece
        return rest  # an incomplete frame: it buffers it

    # ------------------------------------------------------------- bodies
    def _decode(self, buf: _Buf, batch: _Batch,
                columns: tuple[str, ...] | None = None) -> pa.Table:
        frames, fast_rows, msg_rows, messages = batch.rows()
        asm = _Assembler(len(fast_rows) + len(msg_rows))
        asm.ends[fast_rows] = frames.ends + batch.base
        asm.ends[msg_rows] = [end for end, _ in messages]
        asm.add_messages(msg_rows, [msg for _, msg in messages])
        if len(fast_rows):
            self._fast_rows(buf, frames, fast_rows, asm)
        return asm.table(columns)

    def _fast_rows(self, buf: _Buf, frames: _Frames, rows: np.ndarray, asm: _Assembler) -> None:
        """Type every frame the fast path accepts; decode the others by the reference path."""
        regular = np.flatnonzero(~frames.long)
        slow = frames.long.copy()
        if len(regular):
            bodies = _utf8_bodies(
                buf, frames.starts[regular], frames.body_ends[regular], self.dialect.encoding
            )
            if frames.name_ends is not None and self.dialect.encoding == "utf-8":
                bodies.known_name_ends = frames.name_ends[regular] - frames.starts[regular[0]]
            rejected = self._parse(bodies, rows[regular], asm)
            slow[regular[rejected]] = True
        self._reference(buf, frames, np.flatnonzero(slow), rows, asm)

    def _reference(self, buf: _Buf, frames: _Frames, which: np.ndarray, rows: np.ndarray,
                   asm: _Assembler) -> None:
        """Decode frames ``which`` with the reference decoder (over-long lines as it words them)."""
        if not len(which):
            return
        msgs = []
        decode = self._body.decode
        for i in which.tolist():
            fs, end = int(frames.frame_starts[i]), int(frames.ends[i])
            if frames.long[i]:
                ((_end, msg),) = Decoder(self.dialect).feed_with_ends(bytes(buf[fs:end]))
            else:
                msg = decode(bytes(buf[frames.starts[i] : frames.body_ends[i]]),
                             bytes(buf[fs:end]))
            msgs.append(msg)
        asm.add_messages(rows[which], msgs)

    def _parse(self, bodies: _Bodies, rows: np.ndarray, asm: _Assembler) -> np.ndarray:
        """Type ``bodies`` (table rows ``rows``) into ``asm``.

        Returns the indices of the bodies left for the reference path.
        """
        name_ends = bodies.name_ends()
        codes = self._name_codes(bodies, name_ends, asm)
        codes[bodies.bad] = _REFERENCE
        # Every parameter string, packed in row order: fields are read from it,
        # and the params and text columns are cut from it.
        params = bodies.pack(np.minimum(name_ends + 1, bodies.ends), bodies.ends)
        offsets = np.frombuffer(params.buffers()[1], _I64, len(params) + 1)
        text = _k().readonly(_buffer_bytes(params.buffers()[2], int(offsets[-1])))
        invalid = _invalid_utf8(text, offsets) if self.dialect.encoding == "utf-8" else None
        if invalid is not None:
            codes[invalid] = _REFERENCE
        asm.source = text
        for code, which in _groups(codes):
            group = _Group(_i64(offsets[which]), _i64(offsets[which + 1]))
            parsed = _parse_group(COMMANDS[code], group, text)
            parsed.store(asm, rows[which])
            if not parsed.ok.all():
                codes[which[~parsed.ok]] = _REFERENCE
        named = np.where(codes >= 0, codes, _UNKNOWN - codes)  # a command_names index
        if (codes != _REFERENCE).all():
            accepted = np.arange(len(codes))
            asm.command_codes[rows] = named
        else:
            accepted = np.flatnonzero(codes != _REFERENCE)
            asm.command_codes[rows[accepted]] = named[accepted]
        if len(accepted) == asm.n:  # every row of the table: the packed strings are the column
            asm.ready["params"] = params.view(pa.large_string())
        else:
            asm.add_text("params", rows[accepted], offsets[accepted], offsets[accepted + 1])
        return np.flatnonzero(codes == _REFERENCE)

    def _name_codes(self, bodies: _Bodies, name_ends: np.ndarray, asm: _Assembler) -> np.ndarray:
        """Each name's COMMANDS index, ``_REFERENCE``, or for an unknown command
        ``_UNKNOWN - its code in asm``; looked up once per distinct name."""
        kernels = _k()
        data, starts, ends = kernels.readonly(bodies.data), _i64(bodies.starts), _i64(name_ends)
        ids = np.empty(len(starts), _I64)
        firsts = np.empty(len(starts), _I64)
        distinct = kernels.distinct_ranges(data, starts, ends, ids, firsts)
        codes = []
        for i in firsts[:distinct].tolist():
            spec, command = self._lookup(data[starts[i] : ends[i]].tobytes())
            if spec is not None:
                codes.append(_SPEC_INDEX[spec.name])
            elif command is not None:
                codes.append(_UNKNOWN - asm.command_code(command))
            else:
                codes.append(_REFERENCE)
        return np.array(codes, dtype=_I64)[ids]

    def _lookup(self, raw: bytes) -> tuple[CommandSpec | None, str | None]:
        """(spec, command column value) for a name; (None, None) means reference path."""
        try:
            return self._name_specs[raw]
        except KeyError:
            pass
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None, None
        spec = self._body.spec(name)
        if spec is not None:
            found: tuple[CommandSpec | None, str | None] = (spec, spec.name)
        elif _NAME_RE.fullmatch(name):
            found = (None, normalize_name(name))
        else:
            found = (None, None)
        if len(self._name_specs) < 4096:
            self._name_specs[raw] = found
        return found


def _groups(codes: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(code, indices) for every COMMANDS index in ``codes``: one counting sort."""
    bounds = np.empty(len(COMMANDS) + 1, _I64)
    order = np.empty(len(codes), _I64)
    _k().group_by_code(_i64(codes), bounds, order)
    return [(code, order[bounds[code] : bounds[code + 1]])
            for code in np.flatnonzero(np.diff(bounds)).tolist()]


# ------------------------------------------------------------------ framing

_REFERENCE, _UNKNOWN = -1, -4  # name codes besides a COMMANDS index (see _name_codes)


@dataclass
class _Frames:
    """Frames found in one buffer: positions of the frame, of its body, and its end."""

    frame_starts: np.ndarray
    starts: np.ndarray
    body_ends: np.ndarray
    ends: np.ndarray
    long: np.ndarray  # over-long lines: error rows the incremental decoder words
    name_ends: np.ndarray | None = None  # each body's first ``|`` (else end), if known

    @classmethod
    def concat(cls, parts: list[_Frames]) -> _Frames:
        if len(parts) == 1:
            return parts[0]
        frames = cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                       ("frame_starts", "starts", "body_ends", "ends", "long")))
        if all(p.name_ends is not None for p in parts):
            frames.name_ends = np.concatenate([p.name_ends for p in parts])
        return frames

    @classmethod
    def empty(cls) -> _Frames:
        none = np.zeros(0, _I64)
        return cls(none, none, none, none, np.zeros(0, bool))


@dataclass
class _Batch:
    """One ``feed`` call's rows in stream order: fast-path frames and finished messages."""

    base: int  # stream offset of the buffer's first byte
    parts: list[_Frames | list[tuple[int, Message]]] = field(default_factory=list)

    def add_frames(self, frames: _Frames) -> None:
        if len(frames.starts):
            self.parts.append(frames)

    def add_messages(self, messages: list[tuple[int, Message]]) -> None:
        if messages:
            self.parts.append(messages)

    def rows(self) -> tuple[_Frames, np.ndarray, np.ndarray, list[tuple[int, Message]]]:
        """All frames, their row numbers, the messages' row numbers, the messages."""
        frames, fast_rows, msg_rows, messages = [], [], [], []
        row = 0
        for part in self.parts:
            if isinstance(part, _Frames):
                frames.append(part)
                fast_rows.append(np.arange(row, row + len(part.starts)))
                row += len(part.starts)
            else:
                msg_rows.append(np.arange(row, row + len(part)))
                messages += part
                row += len(part)
        return (
            _Frames.concat(frames) if frames else _Frames.empty(),
            np.concatenate(fast_rows) if fast_rows else np.zeros(0, _I64),
            np.concatenate(msg_rows) if msg_rows else np.zeros(0, _I64),
            messages,
        )


def _walk_lines(buf: _Buf, start: int, limit: int) -> tuple[_Frames, int]:
    """Every complete line from ``start``; returns the frames and where the tail begins."""
    kernels = _k()
    arr = kernels.readonly(np.frombuffer(buf, dtype=np.uint8))
    newline = np.empty((len(arr) - start) // 32 + 64, _I64)  # room for lines of 32 bytes
    count, at = kernels.newlines(arr, start, newline)
    while at < len(arr):  # shorter lines: more room
        more = np.empty(2 * len(newline), _I64)
        more[:count] = newline[:count]
        found, at = kernels.newlines(arr, at, more[count:])
        newline, count = more, count + found
    if not count:
        return _Frames.empty(), start
    starts, body_ends, ends, name_ends = (np.empty(count, _I64) for _ in range(4))
    long = np.empty(count, bool)
    found, used = kernels.line_frames(arr, start, limit, newline[:count], starts, body_ends,
                                      ends, long, name_ends)
    if found < count:  # empty lines carry nothing
        starts, body_ends, ends, long, name_ends = (
            a[:found] for a in (starts, body_ends, ends, long, name_ends))
    return _Frames(starts, starts, body_ends, ends, long, name_ends), used


class _LpWalker:
    """The chain of length-prefixed frames through one buffer, vectorised where it is regular.

    Candidates are the positions whose 4-byte length is plausible (1..limit,
    complete in the buffer) and that some other candidate's frame ends at; a
    true frame start is one, except the first of a walk. Between two
    candidates where the chain is regular (the frame ends exactly at the next
    candidate) no Python runs; elsewhere the walk steps frame by frame.
    """

    def __init__(self, buf: _Buf, byteorder: str, limit: int) -> None:
        self.buf, self.limit = buf, limit
        self.unpack_from = struct.Struct("<I" if byteorder == "little" else ">I").unpack_from
        self.starts, self.ends = self._candidates(byteorder)
        regular = self.ends[:-1] == self.starts[1:]
        self.breaks = np.append(np.flatnonzero(~regular), len(self.starts) - 1)

    def _candidates(self, byteorder: str) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.buf)
        top = self.limit >> 24  # the most significant byte of any acceptable length
        if n < 8 or top >= 16:
            return np.zeros(0, _I64), np.zeros(0, _I64)  # too many positions would qualify
        arr = np.frombuffer(self.buf, dtype=np.uint8)
        msb = arr[3:] if byteorder == "little" else arr[: n - 3]
        pos = np.flatnonzero(msb <= top)
        dtype = "<u4" if byteorder == "little" else ">u4"
        lengths = np.ndarray((n - 3,), dtype=dtype, buffer=self.buf, strides=(1,))[pos]
        ends = pos + 4 + lengths.astype(_I64)
        ok = (lengths >= 1) & (lengths <= self.limit) & (ends <= n)
        pos, ends = pos[ok], ends[ok]
        hit = np.zeros(n + 1, dtype=bool)
        for _ in range(2):  # keep the positions a candidate points at
            hit[ends] = True
            keep = hit[pos]
            hit[ends] = False
            pos, ends = pos[keep], ends[keep]
        return pos, ends

    def walk(self, pos: int) -> tuple[_Frames, int]:
        """Frames from ``pos`` on, exactly as the incremental decoder's loop takes them."""
        buf, n, limit, unpack_from = self.buf, len(self.buf), self.limit, self.unpack_from
        cand_starts, cand_ends, breaks = self.starts, self.ends, self.breaks
        chunks: list[tuple[np.ndarray, np.ndarray]] = []
        single: list[int] = []
        while True:
            i = int(np.searchsorted(cand_starts, pos)) if len(cand_starts) else 0
            if i < len(cand_starts) and cand_starts[i] == pos:
                if single:
                    chunks.append(_stepped(single, buf, unpack_from))
                    single = []
                b = int(breaks[np.searchsorted(breaks, i)])
                chunks.append((cand_starts[i : b + 1], cand_ends[i : b + 1]))
                pos = int(cand_ends[b])
                continue
            if pos + 4 > n:
                break
            (length,) = unpack_from(buf, pos)
            if length == 0 or length > limit or pos + 4 + length > n:
                break
            single.append(pos)
            pos += 4 + length
        if single:
            chunks.append(_stepped(single, buf, unpack_from))
        if not chunks:
            return _Frames.empty(), pos
        frame_starts = np.concatenate([c[0] for c in chunks])
        ends = np.concatenate([c[1] for c in chunks])
        return _Frames(frame_starts, frame_starts + 4, ends, ends, np.zeros(len(ends), bool)), pos


def _stepped(starts: list[int], buf: _Buf, unpack_from: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.array(starts, dtype=_I64)
    return s, s + 4 + np.array([unpack_from(buf, p)[0] for p in starts], dtype=_I64)


# ------------------------------------------------------------------ text


@dataclass
class _Bodies:
    """Frame bodies as UTF-8: ``data[starts[i]:ends[i]]``; ``bad`` ones failed to decode.

    (GBK: transcoded bodies are appended after the others in ``data``.)
    """

    data: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    bad: np.ndarray
    known_name_ends: np.ndarray | None = None  # found by the framing (UTF-8 lines)

    def name_ends(self) -> np.ndarray:
        """Where each body's name ends: at its first ``|``, else at its end."""
        if self.known_name_ends is not None:
            return self.known_name_ends
        kernels = _k()
        out = np.empty(len(self.starts), _I64)
        kernels.first_byte(kernels.readonly(self.data), _i64(self.starts), _i64(self.ends), _PIPE,
                           out)
        return out

    def pack(self, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
        """Sub-ranges of the bodies (one per body), packed in row order."""
        return _take_ranges(self.data, starts, ends)


def _utf8_bodies(buf: _Buf, starts: np.ndarray, ends: np.ndarray, encoding: str) -> _Bodies:
    """The bodies ``[starts, ends)`` of ``buf`` as UTF-8.

    UTF-8 bodies stay where they are (they are validated later, column-wise).
    GBK bodies that are not pure ASCII are transcoded and appended as UTF-8;
    the ones that do not decode are ``bad`` (the reference path words the
    error).
    """
    lo, hi = int(starts[0]), int(ends[-1])
    data = np.frombuffer(buf, dtype=np.uint8)[lo:hi]
    bodies = _Bodies(data, starts - lo, ends - lo, np.zeros(len(starts), bool))
    if encoding == "utf-8":
        return bodies
    tiles = _tiles(data, bodies.starts, bodies.ends).view(pa.large_string())  # only scanned
    wide = np.flatnonzero(~pc.string_is_ascii(tiles).to_numpy(zero_copy_only=False)[0::2])
    if not len(wide):
        return bodies
    blob, blob_starts, blob_ends, bad = _transcode(
        _take_ranges(data, bodies.starts[wide], bodies.ends[wide]), encoding
    )
    bodies.bad[wide[bad]] = True  # left in place: the reference path reads the original
    moved = wide[~bad]
    if len(moved):
        bodies.starts[moved] = len(data) + blob_starts
        bodies.ends[moved] = len(data) + blob_ends
        bodies.data = np.concatenate([data, np.frombuffer(blob, np.uint8)])
    return bodies


def _transcode(texts: pa.Array, encoding: str
               ) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    """``texts`` from ``encoding`` to UTF-8: (UTF-8 bytes, each good text's bounds in
    them, which texts do not decode).

    All at once when every text decodes: joined by NUL bytes, which cannot be
    the second byte of a GBK character (so a text ending inside one fails as
    it would alone), and split again at the NULs of the UTF-8 output (unless
    a text holds a NUL of its own). Otherwise one by one.
    """
    whole = pa.LargeListArray.from_arrays(pa.array([0, len(texts)], pa.int64()), texts)
    joined = pc.binary_join(whole, pa.scalar(b"\0", pa.large_binary()))[0].as_buffer()
    fine = np.zeros(len(texts), bool)
    try:
        utf8 = str(joined, encoding).encode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        cuts = np.flatnonzero(np.frombuffer(utf8, np.uint8) == 0)
        if len(cuts) == len(texts) - 1:  # no NUL of their own
            return utf8, np.concatenate([[0], cuts + 1]), np.append(cuts, len(utf8)), fine
    good: list[bytes] = []
    bad = np.zeros(len(texts), bool)
    for i, value in enumerate(texts.to_pylist()):
        try:
            good.append(value.decode(encoding).encode("utf-8"))
        except UnicodeDecodeError:
            bad[i] = True
    ends = np.cumsum([len(g) for g in good], dtype=_I64)
    return b"".join(good), ends - [len(g) for g in good], ends, bad


def _invalid_utf8(data: np.ndarray, offsets: np.ndarray) -> np.ndarray | None:
    """Which values (``data[offsets[i]:offsets[i + 1]]``) are not UTF-8, or None when all
    are (one compiled pass: :func:`~camprotool.protocol.bulk_kernels.utf8_rows`)."""
    valid = np.empty(len(offsets) - 1, bool)
    if not _k().utf8_rows(data, _i64(offsets), valid):
        return None
    return ~valid


def _buffer_bytes(buffer: pa.Buffer | None, size: int) -> np.ndarray:
    """The first ``size`` bytes of an Arrow buffer, zero-copy."""
    if buffer is None:
        return np.zeros(0, np.uint8)
    return np.frombuffer(buffer, np.uint8, size)


def _tiles(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """A zero-copy binary array over ``data``: range 0, gap, range 1, gap, ... range m-1.

    The ranges must be increasing and disjoint; value ``2 i`` is range ``i``.
    """
    bounds = np.empty(2 * len(starts), _I64)
    bounds[0::2] = starts
    bounds[1::2] = ends
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(bounds) - 1, [None, pa.py_buffer(bounds), pa.py_buffer(data)]
    )


def _bitmap(flags: np.ndarray) -> pa.Buffer:
    """An Arrow bitmap (validity or boolean values) of a bool array."""
    return pa.py_buffer(np.packbits(flags, bitorder="little"))


def _take_ranges(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """The byte ranges ``[starts, ends)`` of ``data`` packed, null where ``starts`` is
    negative (:func:`camprotool.protocol.packing.pack_ranges`)."""
    if not len(starts):
        return pa.nulls(0, pa.large_binary())
    return pack_ranges(data, starts, ends)


@dataclass
class _Group:
    """The parameter strings of one command's rows: ``[starts, ends)`` of the packed text."""

    starts: np.ndarray
    ends: np.ndarray


# ------------------------------------------------------------------ fields


@dataclass
class _Parsed:
    """Typed fields of one command's rows; ``ok`` rows are exactly what the reference gives."""

    ok: np.ndarray
    texts: list[tuple[str, np.ndarray, np.ndarray]] = field(default_factory=list)
    numbers: list[tuple[str, np.ndarray, np.ndarray | None]] = field(default_factory=list)
    lists: list[tuple[str, _ListPart]] = field(default_factory=list)

    def add(self, f: Field, text: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        """Parse field ``f`` from ``[starts, ends)``; rows it rejects are no longer ok."""
        kind = f.kind
        if kind is Kind.COUNT:
            values, ok = _counts(text, starts, ends)
            self.numbers.append((f.name, values, None))
        elif kind is Kind.PORT:
            values, ok = _counts(text, starts, ends)
            empty = ends == starts
            ok = empty | (ok & (values >= 1) & (values <= 65535))
            self.numbers.append((f.name, values, ~empty))
        elif kind is Kind.STATUS:
            online, valid, ok = _statuses(text, starts, ends)
            self.numbers.append((f.name, online, valid))
        else:
            self.texts.append((f.name, starts, ends))
            return
        self.ok &= ok

    def store(self, asm: _Assembler, rows: np.ndarray) -> None:
        ok = self.ok
        every = ok.all()
        kept = rows if every else rows[ok]
        for name, starts, ends in self.texts:
            asm.add_text(name, kept, starts if every else starts[ok], ends if every else ends[ok])
        for name, values, valid in self.numbers:
            if not every:
                values, valid = values[ok], None if valid is None else valid[ok]
            asm.numbers[name].append((kept, values, valid))
        for name, part in self.lists:
            asm.lists[name].append(part.keep(ok, rows))


def _parse_group(spec: CommandSpec, g: _Group, text: np.ndarray) -> _Parsed:
    parsed = _Parsed(np.ones(len(g.starts), bool))
    layout = spec.layout
    if layout is Layout.PIPE:
        for f, (a, b) in zip(spec.fields, _pipe_fields(spec, g, text, parsed), strict=True):
            parsed.add(f, text, a, b)
    elif layout is Layout.COLON_PAIR:
        colon = np.empty(len(g.starts), _I64)
        _k().first_byte(text, g.starts, g.ends, _COLON, colon)
        parsed.ok &= colon < g.ends
        first, second = spec.fields
        parsed.add(first, text, g.starts, colon)
        parsed.add(second, text, np.minimum(colon + 1, g.ends), g.ends)
    elif layout is Layout.IDS:
        _parse_ids(g, text, parsed)
    else:
        _parse_status_list(g, text, parsed)
    return parsed


def _pipe_fields(spec: CommandSpec, g: _Group, text: np.ndarray,
                 parsed: _Parsed) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each field's bounds; a ``reason`` takes the surplus fields (and their pipes)."""
    n = len(spec.fields)
    if n <= 1:
        return [(g.starts, g.ends)] * n  # a lone field takes the whole string
    reason = spec.field_names.index("reason") if "reason" in spec.field_names else n
    bounds = np.empty((2 * n, len(g.starts)), _I64)
    ok = np.empty(len(g.starts), bool)
    _k().pipe_fields(text, g.starts, g.ends, n, reason, bounds, ok)
    parsed.ok &= ok
    return [(bounds[2 * j], bounds[2 * j + 1]) for j in range(n)]


def _parse_ids(g: _Group, text: np.ndarray, parsed: _Parsed) -> None:
    """``a;b;;c;`` -> the non-empty ids; none at all is an error."""
    m = len(g.starts)
    counts = np.empty(m, _I64)
    item_offsets, out = _item_room(g)
    k, size = _k().id_lists(text, g.starts, g.ends, counts, item_offsets, out)
    parsed.ok &= counts > 0
    items = _strings(item_offsets, out, k, size)
    parsed.lists.append(("ids", _ListPart.of(counts, items)))


def _parse_status_list(g: _Group, text: np.ndarray, parsed: _Parsed) -> None:
    """``id;status|id;status[|]``: each item exactly one ``;``, the status true/false/null."""
    m = len(g.starts)
    counts = np.empty(m, _I64)
    item_offsets, out = _item_room(g)
    online, valid = np.empty(len(item_offsets), bool), np.empty(len(item_offsets), bool)
    k, size = _k().status_lists(text, g.starts, g.ends, counts, item_offsets, out, online,
                                valid)
    parsed.ok &= counts > 0
    status = _booleans(online[:k], valid[:k])
    items = pa.StructArray.from_arrays([_strings(item_offsets, out, k, size), status],
                                       fields=list(_STATUS_STRUCT))
    parsed.lists.append(("statuses", _ListPart.of(counts, items)))


def _item_room(g: _Group) -> tuple[np.ndarray, np.ndarray]:
    """Item offsets and bytes enough for every list item of ``g``'s strings: an item
    takes a byte and its separator (the last one none), and no more than its string."""
    sizes = g.ends - g.starts
    return np.empty(int((sizes // 2).sum()) + len(sizes) + 1, _I64), np.empty(
        int(sizes.sum()) + 8, np.uint8)


def _strings(offsets: np.ndarray, data: np.ndarray, k: int, size: int) -> pa.Array:
    """A ``large_string`` array over ``k`` packed values (already UTF-8). ``offsets`` was
    sized for the most items the text could hold, several times what most lists
    have: the array keeps a copy of the part used, not the whole reservation
    (address space counts under a memory limit even where no page is touched)."""
    used = offsets[: k + 1]
    if 2 * (k + 1) < len(offsets):
        used = used.copy()
    buffers = [None, pa.py_buffer(used), pa.py_buffer(data[:size])]
    return pa.Array.from_buffers(pa.large_string(), k, buffers, 0)


def _booleans(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    """A ``bool`` array, null where not ``valid``, from its bitmaps."""
    nulls = len(valid) - int(np.count_nonzero(valid))
    buffers = [_bitmap(valid) if nulls else None, _bitmap(values)]
    return pa.Array.from_buffers(pa.bool_(), len(values), buffers, nulls)


def _counts(text: np.ndarray, starts: np.ndarray,
            ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1 to 18 ASCII digits -> int64 (``parse_count`` also takes 19 digits: reference path)."""
    values, ok = np.empty(len(starts), _I64), np.empty(len(starts), bool)
    _k().parse_counts(text, _i64(starts), _i64(ends), _MAX_DIGITS, values, ok)
    return values, ok


def _statuses(text: np.ndarray,
              starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """true / false / null in any letter case -> (value, valid, ok), comparing the bytes."""
    online, valid, ok = (np.empty(len(starts), bool) for _ in range(3))
    _k().parse_statuses(text, _i64(starts), _i64(ends), online, valid, ok)
    return online, valid, ok


@dataclass
class _ListPart:
    """List values of some rows: ``counts[j]`` items of ``items`` for row ``owners[j]``,
    items in row order (the rows increasing)."""

    owners: np.ndarray  # rows (indices into the group, later into the table) holding a list
    counts: np.ndarray  # items per row
    items: pa.Array

    @classmethod
    def of(cls, counts: np.ndarray, items: pa.Array) -> _ListPart:
        """The lists of a group's rows whose count is positive (the others have no items)."""
        owners = np.flatnonzero(counts > 0)
        return cls(owners, counts[owners], items)

    def keep(self, ok: np.ndarray, rows: np.ndarray) -> _ListPart:
        """Only the ``ok`` rows, numbered by ``rows``."""
        mine = ok[self.owners]
        if mine.all():
            return _ListPart(rows[self.owners], self.counts, self.items)
        items = self.items.filter(pa.array(np.repeat(mine, self.counts)))
        return _ListPart(rows[self.owners[mine]], self.counts[mine], items)

    @classmethod
    def merge(cls, parts: list[_ListPart]) -> _ListPart:
        """Parts of different rows as one, in row order."""
        owners = np.concatenate([p.owners for p in parts])
        counts = np.concatenate([p.counts for p in parts])
        order = np.argsort(owners, kind="stable")
        firsts = np.cumsum(counts) - counts  # each list's first item, as concatenated
        sizes = counts[order]
        moved = np.repeat(firsts[order] - (np.cumsum(sizes) - sizes), sizes)
        items = pa.concat_arrays([p.items for p in parts])
        return cls(owners[order], sizes, items.take(pa.array(moved + np.arange(len(moved)))))


# ------------------------------------------------------------------ columns


class _Assembler:
    """The rows of one table: fast-path values by column, reference messages by row.

    Each output column is built once, in row order. Text values are byte ranges
    of ``source`` (the UTF-8 text of the fast rows); the reference messages'
    strings are appended after it, so one ``take`` builds a text column.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.ends = np.zeros(n, _I64)
        self.source = np.zeros(0, np.uint8)
        self.command_names = [spec.name for spec in COMMANDS]
        self._command_index = {name: i for i, name in enumerate(self.command_names)}
        self.command_codes = np.full(n, -1, np.int32)
        self.texts: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = defaultdict(list)
        self.numbers: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]] = (
            defaultdict(list))
        self.lists: dict[str, list[_ListPart]] = defaultdict(list)
        self._messages: list[tuple[np.ndarray, list[Message]]] = []
        self.ready: dict[str, pa.Array] = {}  # columns complete as they are
        self._zeros: pa.Buffer | None = None  # shared by the all-null columns

    def command_code(self, name: str) -> int:
        code = self._command_index.get(name)
        if code is None:
            code = self._command_index[name] = len(self.command_names)
            self.command_names.append(name)
        return code

    def add_text(self, name: str, rows: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        if len(rows):
            self.texts[name].append((rows, starts, ends))

    def add_messages(self, rows: np.ndarray, messages: list[Message]) -> None:
        if messages:
            self._messages.append((rows, messages))

    # -- building
    def table(self, only: tuple[str, ...] | None = None) -> pa.Table:
        """The rows as a :data:`SCHEMA` table (``only``: just those columns)."""
        slow = self._expand_messages()
        source = self._append_strings(slow)
        if only is None:
            for slot in _TEXT_SLOTS:
                self.ready.update(self._shared_text(slot, source))
        arrays = []
        for name, type_, form in _COLUMNS:
            if only is not None and name not in only:
                continue
            if name in self.ready:
                arrays.append(self.ready[name])
            elif name == "end":
                arrays.append(pa.array(self.ends, pa.int64()))
            elif name == "command":
                arrays.append(self._commands())
            elif form == _TEXT:
                arrays.append(self._text_column(name, type_, source))
            elif form == _LIST:
                arrays.append(self._list_column(name, type_, slow.pop(name, None)))
            else:
                arrays.append(self._number_column(name, type_, slow.pop(name, None)))
        if only is not None:
            return pa.Table.from_arrays(arrays, schema=pa.schema(
                [f for f in SCHEMA if f.name in only]))
        return pa.Table.from_arrays(arrays, schema=SCHEMA)

    def _commands(self) -> pa.Array:
        """The command column: each row's code into the names met (:data:`COMMAND_CODES`),
        as the decoder found them."""
        return pa.DictionaryArray.from_arrays(pa.array(self.command_codes, pa.int32()),
                                              pa.array(self.command_names, pa.string()))

    def _expand_messages(self) -> dict[str, tuple[list[int], list[Any]]]:
        """The messages' values by column (``None`` values left out)."""
        columns: dict[str, tuple[list[int], list[Any]]] = defaultdict(lambda: ([], []))

        def put(name: str, row: int, value: Any) -> None:
            rows, values = columns[name]
            rows.append(row)
            values.append(value)

        if not self._messages:
            return columns
        rows = np.concatenate([r for r, _ in self._messages])
        messages = [m for _, ms in self._messages for m in ms]
        for i in np.argsort(rows, kind="stable").tolist():  # appended text follows row order
            row, msg = int(rows[i]), messages[i]
            self.command_codes[row] = self.command_code(msg.command)
            put("params", row, msg.params)
            if msg.error is not None:
                put("error", row, msg.error)
            if msg.error:
                put("raw", row, msg.raw)
            for name, value in msg.fields.items():
                if name == "statuses":
                    value = [{"camera_id": c, "online": s} for c, s in value]
                elif name == "ids":
                    value = list(value)
                if value is not None:
                    put(name, row, value)
        return columns

    def _append_strings(self, slow: dict[str, tuple[list[int], list[Any]]]) -> np.ndarray:
        """Append the messages' strings to the source; their ranges join ``texts``."""
        pieces: list[bytes] = []
        at = len(self.source) + 1  # past a separator byte: no range of source starts there
        for name, _, form in _COLUMNS:
            if form != _TEXT or name not in slow:
                continue
            rows, values = slow.pop(name)
            encoded = [v if isinstance(v, bytes) else v.encode("utf-8") for v in values]
            sizes = np.array([len(v) for v in encoded], _I64)
            ends = at + np.cumsum(sizes)
            self.texts[name].append((np.array(rows, _I64), ends - sizes, ends))
            pieces += encoded
            at = int(ends[-1])
        if not pieces:
            return self.source
        appended = np.frombuffer(b"\0" + b"".join(pieces), np.uint8)
        return np.concatenate([self.source, appended])

    def _text_column(self, name: str, type_: pa.DataType, source: np.ndarray) -> pa.Array:
        parts = self.texts.get(name)
        if not parts:
            return self._nulls(type_)
        if len(parts) == 1 and len(parts[0][0]) == self.n:  # every row, in order
            _, starts, ends = parts[0]
            column = _take_ranges(source, starts, ends)
        else:
            column = self._sparse_text(parts, source)
        return column if type_ == pa.large_binary() else column.view(type_)

    def _shared_text(self, names: tuple[str, ...], source: np.ndarray) -> dict[str, pa.Array]:
        """The text columns ``names`` (a :data:`_TEXT_SLOTS` group) over one offsets and
        one text buffer, each with its own validity; {} when fewer than two of them
        have values here (each is then built on its own).

        Why: a column of values in a few rows still needs an offset for every row
        (8 bytes a row, about 1.5 MB a column of 185,000 messages). The columns of a
        group never have values in the same row, so the rows of all of them fit in
        one set of offsets; Arrow allows a null's slot to span bytes, so each
        column's nulls simply cover the others' values.
        """
        present = [name for name in names if self.texts.get(name)]
        if len(present) < 2:
            return {}
        taken = np.zeros(self.n, bool)
        owned: dict[str, np.ndarray] = {}
        for name in present:
            rows = np.concatenate([p[0] for p in self.texts[name]])
            if taken[rows].any():  # two values in one row (cannot happen): each its own
                return {}
            taken[rows] = True
            owned[name] = rows
        _, offsets, text = self._scatter_text(
            [p for name in present for p in self.texts[name]], source)
        shared = [pa.py_buffer(offsets), pa.py_buffer(text)]
        columns = {}
        for name in present:
            mine = np.zeros(self.n, bool)
            mine[owned[name]] = True
            nulls = self.n - len(owned[name])
            validity = pa.py_buffer(np.packbits(mine, bitorder="little")) if nulls else None
            columns[name] = pa.Array.from_buffers(pa.large_string(), self.n,
                                                  [validity, *shared], nulls)
        return columns

    def _sparse_text(self, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                     source: np.ndarray) -> pa.Array:
        """A text column of some rows: offsets over every row, bytes copied only for the
        rows that have a value (most rows have none), in one compiled pass."""
        valid, offsets, text = self._scatter_text(parts, source)
        nulls = self.n - int(sum(len(p[0]) for p in parts))
        buffers = [pa.py_buffer(valid) if nulls else None, pa.py_buffer(offsets),
                   pa.py_buffer(text)]
        return pa.Array.from_buffers(pa.large_binary(), self.n, buffers, nulls)

    def _scatter_text(self, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                      source: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The values ``parts`` give (rows, and their ranges of ``source``) as a
        validity bitmap, offsets over every row and the text, in one compiled pass."""
        if len(parts) == 1:
            rows, starts, ends = parts[0]
        else:
            rows, starts, ends = (np.concatenate([p[k] for p in parts]) for k in range(3))
        offsets = np.empty(self.n + 1, _I64)
        valid = np.zeros((self.n + 7) // 8, np.uint8)
        kernels = _k()
        out = kernels.scatter_text(kernels.readonly(source), _i64(rows), _i64(starts),
                                   _i64(ends), offsets, valid)
        return valid, offsets, out[: int(offsets[-1])]

    def _number_column(self, name: str, type_: pa.DataType,
                       slow: tuple[list[int], list[Any]] | None) -> pa.Array:
        parts = self.numbers.get(name)
        if not parts and slow is None:
            return self._nulls(type_)
        dtype = bool if type_ == pa.bool_() else _I64
        values = np.zeros(self.n, dtype)
        valid = np.zeros((self.n + 7) // 8, np.uint8)  # a validity bitmap
        scatter = _k().scatter_values
        every = _ALL_VALID
        count = 0
        for rows, vals, ok in parts or ():
            count += scatter(_i64(rows), np.ascontiguousarray(vals, dtype),
                             every if ok is None else np.ascontiguousarray(ok, bool), values,
                             valid)
        if slow is not None:
            count += scatter(np.array(slow[0], _I64), np.array(slow[1], dtype), every, values,
                             valid)
        nulls = self.n - count
        data = _bitmap(values) if dtype is bool else pa.py_buffer(values)
        return pa.Array.from_buffers(type_, self.n, [pa.py_buffer(valid) if nulls else None,
                                                     data], nulls)

    def _nulls(self, type_: pa.DataType) -> pa.Array:
        """An all-null column; every one of a table shares the same zero buffers (a
        null string or list column still needs offsets for every row)."""
        if self._zeros is None:
            self._zeros = pa.py_buffer(np.zeros(self.n + 1, _I64))
        zeros = self._zeros
        if pa.types.is_large_list(type_):
            return pa.Array.from_buffers(type_, self.n, [zeros, zeros], self.n,
                                         children=[pa.nulls(0, type_.value_type)])
        if type_ in (pa.large_string(), pa.large_binary()):
            return pa.Array.from_buffers(type_, self.n, [zeros, zeros, _NO_BYTES], self.n)
        return pa.Array.from_buffers(type_, self.n, [zeros, zeros], self.n)

    def _list_column(self, name: str, type_: pa.DataType,
                     slow: tuple[list[int], list[Any]] | None) -> pa.Array:
        parts = self.lists.get(name)
        if not parts and slow is None:
            return self._nulls(type_)
        column = self._fast_lists(parts, type_) if parts else self._nulls(type_)
        if slow is None:
            return column
        rows = np.array(slow[0], _I64)
        order = np.arange(self.n)
        order[rows] = self.n + np.arange(len(rows))
        return pa.concat_arrays([column, pa.array(slow[1], type_)]).take(pa.array(order))

    def _fast_lists(self, parts: list[_ListPart], type_: pa.DataType) -> pa.Array:
        """The list column of the fast rows: the parts' items as they are, and offsets."""
        part = parts[0] if len(parts) == 1 else _ListPart.merge(parts)
        offsets = np.empty(self.n + 1, _I64)
        _k().row_offsets(_i64(part.owners), _i64(part.counts), offsets)
        valid = np.zeros(self.n, bool)
        valid[part.owners] = True
        nulls = self.n - len(part.owners)
        validity = _bitmap(valid) if nulls else None
        return pa.Array.from_buffers(type_, self.n, [validity, pa.py_buffer(offsets)], nulls,
                                     children=[part.items])


_EMPTY = SCHEMA.empty_table()
_ALL_VALID = np.zeros(0, bool)  # scatter_values: every value is valid
_NO_BYTES = pa.py_buffer(b"")


def _empty() -> pa.Table:
    return _EMPTY  # tables are immutable: one empty table serves every caller


def _concat(tables: list[pa.Table]) -> pa.Table:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return _empty()
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def rows_to_table(rows: list[tuple[int, Message]]) -> pa.Table:
    """(end offset, message) pairs, as the incremental decoder gives them -> the bulk schema."""
    if not rows:
        return _empty()
    asm = _Assembler(len(rows))
    asm.ends[:] = [end for end, _ in rows]
    asm.add_messages(np.arange(len(rows)), [msg for _, msg in rows])
    return asm.table()


def feed_many(items: list[tuple[BulkDecoder, bytes]]) -> list[pa.Table]:
    """``[dec.feed(data) for dec, data in items]``, with one fast-path pass for them all.

    A capture has thousands of short connections; each ``feed`` call has a
    fixed cost of a millisecond or two (NumPy and Arrow set-up), more than a
    short stream's decoding. Here every decoder that is clean (no partial
    state beyond a buffered frame) contributes the complete frames of its
    data to one buffer, decoded in one pass and split back per stream. Frames
    never straddle two streams, and decoding a frame does not depend on the
    frames around it, so the rows are exactly what each ``feed`` would give.
    Decoders in an irregular state, or whose data hold an irregular lp frame,
    take their own ``feed``.
    """
    results: list[pa.Table | None] = [None] * len(items)
    by_dialect: dict[Dialect, list[int]] = defaultdict(list)
    for k, (dec, data) in enumerate(items):
        if not data:
            results[k] = _empty()
        elif dec._clean():
            by_dialect[dec.dialect].append(k)
        else:
            results[k] = dec.feed(data)
    for dialect, members in by_dialect.items():
        _feed_group(dialect, [items[k] for k in members], members, results)
    return results


def _feed_group(dialect: Dialect, items: list[tuple[BulkDecoder, bytes]], members: list[int],
                results: list[pa.Table | None]) -> None:
    """One fast-path pass over the complete frames of several clean decoders of one dialect."""
    parts: list[bytes] = []
    tails: list[tuple[int, BulkDecoder, bytes, int]] = []  # (member, decoder, tail, base)
    lp_frames: list[tuple[int, int]] = []  # (frame start, frame end) in the joined buffer
    bounds = [0]  # where each member's complete frames start in the joined buffer
    joined = 0
    limit = dialect.max_frame
    for k, (dec, data) in zip(members, items, strict=True):
        inc = dec._inc
        buf = bytes(inc._buf) + data if inc._buf else data
        base = inc._base
        if dialect.is_line:
            used = buf.rfind(b"\n") + 1
        else:
            used, starts, ok = _lp_prefix(buf, dec._length.unpack_from, limit)
            if not ok:  # an irregular frame in there: this stream decodes on its own
                results[k] = dec.feed(data)
                continue
            lp_frames += [(joined + a, joined + b) for a, b in starts]
        parts.append(buf[:used])
        tails.append((k, dec, buf[used:], base + used))
        joined += used
        bounds.append(joined)
    big = b"".join(parts)
    if dialect.is_line:
        frames, _ = _walk_lines(big, 0, limit)
    elif lp_frames:
        fs = np.array([a for a, _ in lp_frames], dtype=_I64)
        ends = np.array([b for _, b in lp_frames], dtype=_I64)
        frames = _Frames(fs, fs + 4, ends, ends, np.zeros(len(ends), bool))
    else:
        frames = _Frames.empty()
    table = _empty()
    if len(frames.ends):
        batch = _Batch(base=0)
        batch.add_frames(frames)
        table = items[0][0]._decode(big, batch)
    ends = table["end"].to_numpy()
    owner = np.searchsorted(np.asarray(bounds[1:], dtype=_I64), ends, side="left")
    cuts = np.searchsorted(owner, np.arange(len(tails) + 1), side="left")
    starts_in_big = np.asarray(bounds[:-1], dtype=_I64)
    for j, (k, dec, tail, tail_base) in enumerate(tails):
        lo, hi = int(cuts[j]), int(cuts[j + 1])
        part = table.slice(lo, hi - lo)
        if hi > lo:
            # joined-buffer offsets -> this stream's offsets
            shift = (tail_base - (bounds[j + 1] - starts_in_big[j])) - starts_in_big[j]
            part = part.set_column(0, "end", pc.add(part["end"], pa.scalar(int(shift))))
        inc = dec._inc
        inc._buf.clear()
        inc._base = tail_base
        rows = inc.feed_with_ends(tail) if tail else []
        results[k] = _concat([part, rows_to_table(rows)]) if rows else part


def _lp_prefix(buf: bytes, unpack_from: Any, limit: int) -> tuple[int, list[tuple[int, int]], bool]:
    """The complete regular frames at the start of ``buf``: (bytes used, frames, regular).

    ``regular`` is False when the walk stopped at a zero or impossible length
    (the incremental decoder must word that), True when it stopped at the end
    or at an incomplete frame.
    """
    pos, n = 0, len(buf)
    frames: list[tuple[int, int]] = []
    while pos + 4 <= n:
        (length,) = unpack_from(buf, pos)
        if length == 0 or length > limit:
            return pos, frames, False
        end = pos + 4 + length
        if end > n:
            break
        frames.append((pos, end))
        pos = end
    return pos, frames, True


def decode_stream(data: bytes, dialect: Dialect | str = LINE) -> pa.Table:
    """Decode one whole stream with the bulk decoder."""
    return BulkDecoder(dialect).decode(data)


__all__ = ["BY_NAME", "SCHEMA", "BulkDecoder", "decode_stream", "feed_many", "rows_to_table"]

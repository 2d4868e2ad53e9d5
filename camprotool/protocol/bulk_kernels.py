"""Compiled loops of the bulk decoder (:mod:`camprotool.protocol.bulk`).

Why compiled: on a capture's streams the NumPy passes spent more time
allocating and re-reading position arrays than reading the bytes (finding
every separator of the whole text once per separator byte, splitting with
``searchsorted``/``repeat``, packing each name only to hash it). Each kernel
here is one plain loop over the bytes of the ranges it is given, reading 8
bytes at a time where it searches (an unaligned little-endian load and the
exact "which bytes are zero" bit trick), so short fields cost a few
nanoseconds each.

Every kernel computes exactly what the NumPy code it replaced computed; the
hypothesis tests of ``tests/protocol/test_bulk.py`` compare the decoder with
the reference one, and those of this module each kernel with a plain Python
reading of its contract.

Conventions: byte arrays are 1-D, C-contiguous ``uint8`` and passed
read-only (:func:`readonly`), index arrays C-contiguous ``int64``, flags
``bool``, so each kernel has one signature, loaded by :func:`warm_up` before
the first capture is read. This module imports numba: the bulk decoder
imports it on first use only (the client and server never do).
"""

from __future__ import annotations

import sys

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_BIG_ENDIAN = sys.byteorder == "big"


@intrinsic
def _load8(typingctx, data, at):
    """``data[at:at + 8]`` as a little-endian uint64, unaligned (needs ``at + 8 <= len``)."""
    if not (isinstance(data, types.Array) and data.ndim == 1 and data.layout == "C"
            and data.dtype == types.uint8 and isinstance(at, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        index = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = builder.bitcast(builder.gep(ary.data, [index]), ir.IntType(64).as_pointer())
        word = builder.load(ptr, align=1)
        if _BIG_ENDIAN:
            word = builder.bswap(word)
        return word

    return types.uint64(data, at), codegen


@intrinsic
def _store8(typingctx, data, at, word):
    """Write ``word`` little-endian at ``data[at:at + 8]``, unaligned (needs ``at + 8 <= len``)."""
    if not (isinstance(data, types.Array) and data.ndim == 1 and data.layout == "C"
            and data.dtype == types.uint8 and data.mutable and isinstance(at, types.Integer)
            and word == types.uint64):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        index = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = builder.bitcast(builder.gep(ary.data, [index]), ir.IntType(64).as_pointer())
        value = builder.bswap(args[2]) if _BIG_ENDIAN else args[2]
        builder.store(value, ptr, align=1)
        return context.get_dummy_value()

    return types.none(data, at, word), codegen


@intrinsic
def _ctz(typingctx, word):
    """Trailing zero bits of a non-zero uint64."""
    if word != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i64, [i64, ir.IntType(1)]), "llvm.cttz.i64")
        return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 1)])

    return types.uint64(word), codegen


_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_HIGH = np.uint64(0x8080808080808080)
_BYTES = np.uint64(0x0101010101010101)
_ZERO = np.uint64(0)
_ONE = np.uint64(1)
_THREE = np.uint64(3)
_LOWER4, _LOWER5 = np.uint64(0x20202020), np.uint64(0x2020202020)
_TRUE, _NULL, _FALSE = (np.uint64(int.from_bytes(w, "little")) for w in (b"true", b"null",
                                                                          b"false"))
_LF, _CR, _PIPE, _SEMI, _COLON = 10, 13, 124, 59, 58
_MIX1, _MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xFF51AFD7ED558CCD)


@njit(cache=True, nogil=True, inline="always")
def _zero_bytes(x):
    """The high bit of every byte of ``x`` that is zero, and no other bit (exact: no
    carry crosses bytes)."""
    return ~(((x & _LOW7) + _LOW7) | x | _LOW7)


@njit(cache=True, nogil=True, inline="always")
def _find(data, at, end, byte):
    """The first position of ``byte`` in ``data[at:end]``, else ``end``."""
    n = len(data)
    pattern = np.uint64(byte) * _BYTES
    while at + 8 <= n and at < end:
        hits = _zero_bytes(_load8(data, at) ^ pattern)
        if hits != _ZERO:
            q = at + np.int64(_ctz(hits) >> _THREE)
            return q if q < end else end
        at += 8
    while at < end:
        if data[at] == byte:
            return at
        at += 1
    return end


@njit(cache=True, nogil=True, inline="always")
def _count(data, at, end, byte):
    """How many ``byte`` in ``data[at:end]``."""
    c = 0
    part = data[at:end]  # indices from 0: no negative-index check, so LLVM vectorises
    for j in range(len(part)):
        c += part[j] == byte
    return c


@njit(cache=True, nogil=True, inline="always")
def _word(data, at, end):
    """The bytes ``data[at:min(at + 8, end)]`` as a little-endian uint64, zero-padded."""
    size = end - at
    if at + 8 <= len(data):
        word = _load8(data, at)
        if size < 8:
            word &= (_ONE << np.uint64(8 * size)) - _ONE
        return word
    word = _ZERO
    for j in range(min(size, 8)):
        word |= np.uint64(data[at + j]) << np.uint64(8 * j)
    return word


# ------------------------------------------------------------------ framing


@njit(cache=True, nogil=True)
def newlines(data, at, out):
    """Positions of the ``\n`` in ``data[at:]``, into ``out`` until fewer than 64 places
    are left in it. Returns (how many, where the search stopped: ``len(data)`` when
    it is complete)."""
    n = len(data)
    k = 0
    room = len(out) - 64
    while at + 64 <= n and k <= room:
        block = data[at : at + 64]
        hits = _ZERO  # bit j: block[j] is a newline (LLVM compares the 64 bytes at once)
        for j in range(64):
            hits |= np.uint64(block[j] == _LF) << np.uint64(j)
        while hits != _ZERO:
            out[k] = at + np.int64(_ctz(hits))
            k += 1
            hits &= hits - _ONE
        at += 64
    if k <= room:
        for q in range(at, n):
            if data[q] == _LF:
                out[k] = q
                k += 1
        at = n
    return k, at


@njit(cache=True, nogil=True)
def line_frames(data, start, limit, newline, starts, body_ends, ends, long, name_ends):
    """The frames of the lines ending at the ``newline`` positions (the line before
    the first starts at ``start``): body bounds (without the ``\r`` before the
    ``\n``), end (past the ``\n``), whether the line is longer than ``limit``, and
    where its name ends (its first ``|``, else the body's end: read here, while the
    line is in cache, rather than in a pass of its own); empty lines are skipped.
    Returns (frames, where the next line begins)."""
    k = 0
    line = start
    for i in range(len(newline)):
        q = newline[i]
        body_end = q - 1 if q > line and data[q - 1] == _CR else q
        over = q - line > limit
        starts[k] = line
        body_ends[k] = body_end
        ends[k] = q + 1
        long[k] = over
        name_ends[k] = _find(data, line, body_end, _PIPE)
        k += (body_end > line) | over  # empty lines carry nothing
        line = q + 1
    return k, line


@njit(cache=True, nogil=True)
def first_byte(data, starts, ends, byte, out):
    """``out[i]``: the first ``byte`` in ``data[starts[i]:ends[i]]``, else ``ends[i]``."""
    for i in range(len(starts)):
        out[i] = _find(data, starts[i], ends[i], byte)


# ------------------------------------------------------------------ names


@njit(cache=True, nogil=True, inline="always")
def _hash(data, at, end):
    h = np.uint64(end - at) * _MIX1
    while at + 8 <= end:
        h = (h ^ _load8(data, at)) * _MIX2
        h ^= h >> np.uint64(32)
        at += 8
    if at < end:
        h = (h ^ _word(data, at, end)) * _MIX2
        h ^= h >> np.uint64(32)
    return h


@njit(cache=True, nogil=True, inline="always")
def _same(data, a, b, size):
    """``data[a:a + size] == data[b:b + size]``.

    The words' differences are ORed together and tested once: a test per word
    (a branch whose count depends on each name's length) cost half of
    :func:`distinct_ranges`' time in mispredictions."""
    if size < 8:
        return _word(data, a, a + size) == _word(data, b, b + size)
    diff = _load8(data, a + size - 8) ^ _load8(data, b + size - 8)  # the last word
    for j in range(0, size - 8, 8):  # the others, without a branch per word
        diff |= _load8(data, a + j) ^ _load8(data, b + j)
    return diff == _ZERO


@njit(cache=True, nogil=True)
def distinct_ranges(data, starts, ends, ids, firsts):
    """Number the distinct byte strings ``data[starts[i]:ends[i]]`` in order of first
    appearance: ``ids[i]`` is the string's number, ``firsts[j]`` the first range with
    number ``j``. Returns how many there are.

    Each string is first compared with the last one seen of the same length and
    last 8 bytes (a small direct-mapped cache: a stream has few distinct names),
    then looked up in an open-addressing hash table; every hit is confirmed
    byte by byte.
    """
    size = 1024
    table = np.full(size, -1, np.int64)
    recent = np.full(1024, -1, np.int64)
    hashes = np.empty(len(starts), np.uint64)
    count = 0
    for i in range(len(starts)):
        s, e = starts[i], ends[i]
        length = e - s
        key = np.int64(((_word(data, max(s, e - 8), e) ^ np.uint64(length)) * _MIX2)
                       >> np.uint64(54))
        j = recent[key]
        if j >= 0 and ends[firsts[j]] - starts[firsts[j]] == length and _same(
                data, starts[firsts[j]], s, length):
            ids[i] = j
            continue
        h = _hash(data, s, e)
        slot = np.int64(h & np.uint64(size - 1))
        while True:
            j = table[slot]
            if j < 0:
                table[slot] = j = count
                hashes[count] = h
                firsts[count] = i
                count += 1
                break
            f = firsts[j]
            if hashes[j] == h and ends[f] - starts[f] == length and _same(data, starts[f], s,
                                                                          length):
                break
            slot = (slot + 1) & (size - 1)
        ids[i] = j
        recent[key] = j
        if 2 * count > size:  # grow: reinsert every string by its hash
            size *= 4
            table = np.full(size, -1, np.int64)
            for j in range(count):
                slot = np.int64(hashes[j] & np.uint64(size - 1))
                while table[slot] >= 0:
                    slot = (slot + 1) & (size - 1)
                table[slot] = j
    return count


@njit(cache=True, nogil=True)
def group_by_code(codes, bounds, order):
    """Stable counting sort of the indices whose code is in ``0..len(bounds) - 2``: the
    indices of code ``c`` are ``order[bounds[c]:bounds[c + 1]]``, in index order (other
    codes are left out)."""
    bounds[:] = 0
    for i in range(len(codes)):
        c = codes[i]
        if 0 <= c < len(bounds) - 1:
            bounds[c + 1] += 1
    for c in range(1, len(bounds)):
        bounds[c] += bounds[c - 1]
    at = bounds[:-1].copy()
    for i in range(len(codes)):
        c = codes[i]
        if 0 <= c < len(bounds) - 1:
            order[at[c]] = i
            at[c] += 1


# ------------------------------------------------------------------ fields


@njit(cache=True, nogil=True)
def pipe_fields(text, starts, ends, fields, reason, bounds, ok):
    """Split each ``text[starts[i]:ends[i]]`` into ``fields`` (>= 2) fields at ``|``.

    Exactly ``fields - 1`` pipes are needed, or with a reason field (index
    ``reason``; ``fields`` when there is none) at least as many: the reason
    takes the surplus ones. Field ``j`` is ``[bounds[2j, i], bounds[2j+1, i])``
    (empty at the string's start when the row is not ``ok``).
    """
    top = 0
    for i in range(len(starts)):
        top = max(top, ends[i] - starts[i])
    pipes = np.empty(top, np.int64)
    n = len(text)
    pattern = np.uint64(_PIPE) * _BYTES
    for i in range(len(starts)):
        s, e = starts[i], ends[i]
        c = 0
        at = s
        while at < e:  # every pipe of the string, 8 bytes at a time
            word = _load8(text, at) if at + 8 <= n else _word(text, at, e)
            hits = _zero_bytes(word ^ pattern)
            if e - at < 8:  # not the bytes past the string
                hits &= (_ONE << np.uint64(8 * (e - at))) - _ONE
            while hits != _ZERO:
                pipes[c] = at + np.int64(_ctz(hits) >> _THREE)
                c += 1
                hits &= hits - _ONE
            at += 8
        surplus = c - (fields - 1)
        good = surplus == 0 if reason == fields else surplus >= 0
        ok[i] = good
        if not good:
            for j in range(2 * fields):
                bounds[j, i] = s
            continue
        for j in range(fields):
            bounds[2 * j, i] = s if j == 0 else pipes[j - 1 + (surplus if j > reason else 0)] + 1
            bounds[2 * j + 1, i] = e if j == fields - 1 else pipes[
                j + (surplus if j >= reason else 0)]


@njit(cache=True, nogil=True)
def parse_counts(text, starts, ends, limit, values, ok):
    """1 to ``limit`` (<= 18) ASCII digits -> ``values[i]`` (0 where not ``ok``)."""
    for i in range(len(starts)):
        s, e = starts[i], ends[i]
        good = 1 <= e - s <= limit
        value = 0
        if good:
            for j in range(s, e):
                d = np.int64(text[j]) - 48
                if d < 0 or d > 9:
                    good = False
                    break
                value = value * 10 + d
        values[i] = value if good else 0
        ok[i] = good


@njit(cache=True, nogil=True, inline="always")
def _status(text, s, e):
    """true / false / null in any letter case: 1 / 0 / 2, else -1 (the bytes with the
    lower-case bit set, compared)."""
    if e - s == 4:
        word = _word(text, s, e) | _LOWER4
        if word == _TRUE:
            return 1
        if word == _NULL:
            return 2
    elif e - s == 5 and (_word(text, s, e) | _LOWER5) == _FALSE:
        return 0
    return -1


@njit(cache=True, nogil=True)
def parse_statuses(text, starts, ends, online, valid, ok):
    """true / false / null (any letter case) -> online, valid (not null), ok."""
    for i in range(len(starts)):
        code = _status(text, starts[i], ends[i])
        online[i] = code == 1
        valid[i] = code == 0 or code == 1
        ok[i] = code >= 0


@njit(cache=True, nogil=True, inline="always")
def _copy_words(data, src, out, dst, size, words_below):
    """``out[dst:dst + size] = data[src:src + size]``: whole 8-byte words while the offset
    is below ``words_below`` (and the source has a whole word), then byte by byte."""
    n = len(data)
    j = 0
    while j < words_below and src + j + 8 <= n:
        _store8(out, dst + j, _load8(data, src + j))
        j += 8
    while j < size:
        out[dst + j] = data[src + j]
        j += 1


@njit(cache=True, nogil=True, inline="always")
def _copy(data, src, out, dst, size):
    """``out[dst:dst + size] = data[src:src + size]``, 8 bytes at a time: the last word
    may spill up to 7 bytes past ``dst + size`` (``out`` needs that slack; whatever is
    written next overwrites the spill)."""
    _copy_words(data, src, out, dst, size, size)


@njit(cache=True, nogil=True)
def id_lists(text, starts, ends, counts, item_offsets, out):
    """The non-empty pieces of each string ``text[starts[i]:ends[i]]`` split at ``;``,
    copied one after another into ``out`` (item ``k`` is
    ``out[item_offsets[k]:item_offsets[k + 1]]``); ``counts[i]`` pieces of string ``i``.

    One pass reads each string and writes its items while its bytes are in
    cache: the list column is these buffers as they are. ``item_offsets`` needs
    room for every piece plus one, ``out`` the strings' bytes plus 8. Returns
    (items, bytes).
    """
    k = 0
    pos = 0
    item_offsets[0] = 0
    for i in range(len(starts)):
        s, e = starts[i], ends[i]
        before = k
        while True:
            q = _find(text, s, e, _SEMI)
            if q > s:
                _copy(text, s, out, pos, q - s)
                pos += q - s
                k += 1
                item_offsets[k] = pos
            if q >= e:
                break
            s = q + 1
        counts[i] = k - before
    return k, pos


@njit(cache=True, nogil=True)
def status_lists(text, starts, ends, counts, item_offsets, out, online, valid):
    """The items ``id;status`` of each string split at ``|`` (a last empty piece is a
    trailing separator, not an item): ids copied into ``out`` as :func:`id_lists`
    does, statuses into ``online``/``valid`` (not null).

    A string with an item that has not exactly one ``;`` or a status other than
    true/false/null, or with no item, gets ``counts[i] = -1`` and leaves nothing
    behind (its items are taken back): the reference path decodes it. Returns
    (items, bytes).
    """
    k = 0
    pos = 0
    item_offsets[0] = 0
    for i in range(len(starts)):
        s, e = starts[i], ends[i]
        before, at = k, pos
        wrong = False
        while True:
            q = _find(text, s, e, _PIPE)
            if q < e or q > s:  # not the empty last piece
                semi = _find(text, s, q, _SEMI)
                code = -1
                if semi < q and _find(text, semi + 1, q, _SEMI) == q:
                    code = _status(text, semi + 1, q)
                if code < 0:
                    wrong = True
                    break
                _copy(text, s, out, pos, semi - s)
                pos += semi - s
                online[k] = code == 1
                valid[k] = code != 2
                k += 1
                item_offsets[k] = pos
            if q >= e:
                break
            s = q + 1
        if wrong or k == before:
            k, pos = before, at
            counts[i] = -1
        else:
            counts[i] = k - before
    return k, pos


# ------------------------------------------------------------------ packing


@njit(cache=True, nogil=True)
def row_offsets(rows, sizes, offsets):
    """List (or string) offsets of ``len(offsets) - 1`` rows: row ``rows[j]`` (increasing)
    has ``sizes[j]`` values, every other row none. One pass, where ``cumsum`` over a
    scattered array takes three."""
    at = 0
    r = 0
    offsets[0] = 0
    for j in range(len(rows)):
        row = rows[j]
        while r < row:
            offsets[r + 1] = at
            r += 1
        at += sizes[j]
        offsets[row + 1] = at
        r = row + 1
    while r < len(offsets) - 1:
        offsets[r + 1] = at
        r += 1


@njit(cache=True, nogil=True)
def range_offsets(starts, ends, offsets):
    """``offsets``: where each range's bytes go when packed (a negative start is a null,
    with no bytes); returns how many nulls."""
    at = 0
    nulls = 0
    offsets[0] = 0
    for k in range(len(starts)):
        if starts[k] >= 0:
            at += ends[k] - starts[k]
        else:
            nulls += 1
        offsets[k + 1] = at
    return nulls


@njit(cache=True, nogil=True)
def copy_ranges(data, starts, offsets, out):
    """Range ``k`` of ``data`` (from ``starts[k]``, unless negative) to
    ``out[offsets[k]:offsets[k + 1]]``, 32 then 8 bytes at a time.

    ``out`` needs 32 bytes of slack after ``offsets[-1]``: a value's last words
    may spill past its end, where the next value (written after it) or the
    slack is.
    """
    n = len(data)
    for k in range(len(starts)):
        src = starts[k]
        dst = offsets[k]
        size = offsets[k + 1] - dst
        j = 0
        while j + 8 < size and src + j + 32 <= n:
            a, b = _load8(data, src + j), _load8(data, src + j + 8)
            c, d = _load8(data, src + j + 16), _load8(data, src + j + 24)
            _store8(out, dst + j, a)
            _store8(out, dst + j + 8, b)
            _store8(out, dst + j + 16, c)
            _store8(out, dst + j + 24, d)
            j += 32
        _copy_words(data, src + j, out, dst + j, size - j, size - j)


@njit(cache=True, nogil=True)
def scatter_values(rows, values, valid, out, bitmap):
    """``out[rows[j]] = values[j]`` and bit ``rows[j]`` of ``bitmap`` (an Arrow validity
    bitmap) set where ``valid[j]``, or for every ``j`` when ``valid`` is empty.
    Returns how many of those bits were clear before.

    Why one kernel: a number column took five NumPy passes over every row
    (scattering values and flags, zeroing the flags, counting, packing), each
    with its call overhead, for values that one or two commands have.
    """
    every = len(valid) == 0
    count = 0
    for j in range(len(rows)):
        row = rows[j]
        out[row] = values[j]
        if every or valid[j]:
            bit = np.uint8(1 << (row & 7))
            count += (bitmap[row >> 3] & bit) == 0
            bitmap[row >> 3] |= bit
    return count


@njit(cache=True, nogil=True)
def scatter_text(data, rows, starts, ends, offsets, valid):
    """A text column of ``len(offsets) - 1`` rows in which only row ``rows[j]`` (distinct,
    in any order) has a value, ``data[starts[j]:ends[j]]``: fills ``offsets`` for every
    row, sets the rows' bits in ``valid`` (an Arrow bitmap, zeroed by the caller) and
    returns the bytes (with 8 bytes of slack after them).

    Why one kernel: most of a table's text columns hold a value in few rows, from
    one or two commands; building one took a dozen NumPy passes over every row
    (zeroing scratch sizes and flags, scattering, a cumulative sum, counting,
    packing the flags), each with its call overhead. Here the values are copied
    in row order (``offsets`` first holds each row's ``j + 1``), so the output
    is written front to back, whole words at a time.
    """
    offsets[:] = 0
    total = 0
    for j in range(len(rows)):
        row = rows[j]
        offsets[row + 1] = j + 1
        valid[row >> 3] |= np.uint8(1 << (row & 7))
        total += ends[j] - starts[j]
    out = np.empty(total + 8, np.uint8)
    at = 0
    for row in range(1, len(offsets)):
        j = offsets[row] - 1
        if j >= 0:
            size = ends[j] - starts[j]
            _copy(data, starts[j], out, at, size)  # its spill is overwritten next
            at += size
        offsets[row] = at
    return out


@njit(cache=True, nogil=True, inline="always")
def _utf8(data, at, end):
    """Whether ``data[at:end]`` is well-formed UTF-8, as Python's strict decoder (and
    Arrow's check) define it: Unicode's table 3-7, so no overlong form, no surrogate,
    nothing past U+10FFFF. ASCII runs are skipped 8 bytes at a time."""
    while at < end:
        if at + 8 <= end and (_load8(data, at) & _HIGH) == _ZERO:
            at += 8
            continue
        b = data[at]
        if b < 0x80:
            at += 1
            continue
        if b < 0xC2 or b > 0xF4:
            return False
        lo, hi = 0x80, 0xBF  # the second byte's range
        if b < 0xE0:
            size = 2
        elif b < 0xF0:
            size = 3
            if b == 0xE0:
                lo = 0xA0
            elif b == 0xED:
                hi = 0x9F
        else:
            size = 4
            if b == 0xF0:
                lo = 0x90
            elif b == 0xF4:
                hi = 0x8F
        if at + size > end or not lo <= data[at + 1] <= hi:
            return False
        for j in range(2, size):
            if not 0x80 <= data[at + j] <= 0xBF:
                return False
        at += size
    return True


@njit(cache=True, nogil=True)
def utf8_rows(data, offsets, out):
    """``out[i]``: whether ``data[offsets[i]:offsets[i + 1]]`` is valid UTF-8 (see
    :func:`_utf8`). Returns how many are not.

    Why here: most rows are ASCII and cost a word or two each; checking the others
    with Arrow meant gathering them into an array of their own first (a ``take``
    and a cast per table: half a millisecond when a window has a thousand rows of
    Chinese text)."""
    n = len(data)
    bad = 0
    for i in range(len(offsets) - 1):
        at, end = offsets[i], offsets[i + 1]
        high = _ZERO  # the bytes ORed together: ASCII when no high bit is set
        while at + 8 <= end:
            high |= _load8(data, at)
            at += 8
        if at < end:
            high |= _word(data, at, end) if at + 8 > n else _load8(data, at) & (
                (_ONE << np.uint64(8 * (end - at))) - _ONE)
        good = (high & _HIGH) == _ZERO or _utf8(data, offsets[i], end)
        out[i] = good
        bad += not good
    return bad


# ------------------------------------------------------------------ loading


def readonly(data: np.ndarray) -> np.ndarray:
    """``data`` (uint8) as a read-only view: the one signature the kernels are compiled for."""
    if data.flags.writeable:
        data = data.view()
        data.flags.writeable = False
    return data


def warm_up() -> None:
    """Load every kernel with the argument types the bulk decoder gives it."""
    text = readonly(np.zeros(16, np.uint8))
    i64 = np.zeros(1, np.int64)
    flags = np.zeros(1, np.bool_)
    newlines(text, 0, np.zeros(65, np.int64))
    line_frames(text, 0, 16, i64, i64, i64, i64, flags, i64)
    first_byte(text, i64, i64, _PIPE, i64)
    distinct_ranges(text, i64, i64, i64, i64)
    group_by_code(i64, np.zeros(2, np.int64), i64)
    pipe_fields(text, i64, i64, 2, 2, np.zeros((4, 1), np.int64), flags)
    parse_counts(text, i64, i64, 18, i64, flags)
    parse_statuses(text, i64, i64, flags, flags, flags)
    u8 = np.zeros(32, np.uint8)
    id_lists(text, i64, i64, i64, np.zeros(2, np.int64), u8)
    status_lists(text, i64, i64, i64, np.zeros(2, np.int64), u8, flags, flags)
    row_offsets(i64, i64, np.zeros(2, np.int64))
    range_offsets(i64, i64, np.zeros(2, np.int64))
    scatter_text(text, i64, i64, i64, np.zeros(2, np.int64), np.zeros(1, np.uint8))
    for values in (i64, flags):
        scatter_values(i64, values, flags, values.copy(), np.zeros(1, np.uint8))
    copy_ranges(text, i64, np.zeros(2, np.int64), np.zeros(32, np.uint8))
    utf8_rows(text, np.zeros(2, np.int64), flags)
    mask_rows(text, readonly(np.zeros(2, np.int64)), i64, i64, flags, np.zeros(32, np.uint8),
              np.zeros(2, np.int64))


# ------------------------------------------------- password masking (analysis/masking.py)
# Not a decoder kernel: camprotool.analysis.masking masks ``params`` with it.


@njit(cache=True, nogil=True, inline="always")
def _stars(out, at):
    """Write ``***`` at ``out[at]``; returns the position after it."""
    out[at] = 0x2A
    out[at + 1] = 0x2A
    out[at + 2] = 0x2A
    return at + 3


@njit(cache=True, nogil=True)
def mask_rows(data, offsets, hide, want, ok, out, out_offsets):
    """Copy ``n`` strings (``data[offsets[i]:offsets[i + 1]]``) to ``out``, hiding fields;
    ``out`` needs 8 bytes of slack after the bytes written.

    ``hide[i]``: 0 copies row i as it is; -1 replaces it with ``***`` unless it is
    empty; else bit k set hides its field k (``|``-separated) as ``***``, when it
    has exactly ``want[i]`` fields (``ok[i]`` is cleared, and the row copied as it
    is, when it has not). Returns the bytes written.

    Few rows of a column hide anything, so the rows between two that do are one
    copy, 8 bytes at a time, and a hidden row's ``|`` are found 8 bytes at a time,
    once (a row-by-row copy with slice assignments, which numba compiles to a byte
    at a time, cost more than the masking: 2.3 ms for 126,000 rows).
    """
    rows = len(hide)
    o = 0
    done = offsets[0]  # the bytes before it are in out[:o]
    out_offsets[0] = 0
    ends = np.empty(want.max() + 2 if rows else 1, np.int64)  # a hidden row's field ends
    for i in range(rows + 1):
        if i < rows and hide[i] == 0:
            out_offsets[i + 1] = offsets[i + 1] - done + o
            continue
        lo = offsets[i]
        _copy(data, done, out, o, lo - done)  # the rows since the last one hiding anything
        o += lo - done
        if i == rows:
            break
        hi, h = offsets[i + 1], hide[i]
        if h == -1:
            if hi > lo:
                o = _stars(out, o)
        else:
            w = want[i]
            fields = 0  # the ends of its fields, up to one too many
            at = lo
            while fields <= w:
                end = _find(data, at, hi, _PIPE)
                ends[fields] = end
                fields += 1
                if end == hi:
                    break
                at = end + 1
            if fields != w:
                ok[i] = False
                _copy(data, lo, out, o, hi - lo)
                o += hi - lo
            else:
                at = lo
                for k in range(fields):
                    if (h >> k) & 1:
                        o = _stars(out, o)
                    else:
                        _copy(data, at, out, o, ends[k] - at)
                        o += ends[k] - at
                    if ends[k] < hi:
                        out[o] = _PIPE
                        o += 1
                    at = ends[k] + 1
        done = hi
        out_offsets[i + 1] = o
    return o

"""Whole flows in one pass: detection, decoding and stamping for many connections at once.

Why: the sink's per-connection path costs tens of microseconds per
connection (objects, per-chunk detection tries, one decoder and one Arrow
table per direction), which is most of the time on captures of thousands of
short connections. A flow whose whole life (first packet to close) lies in
one window of the fast engine is decided here column-wise instead:

* every direction is decoded at once as ``line`` (one joined buffer of the
  complete lines of all streams: the fast path of ``bulk.feed_many``), the
  tail after a stream's last newline by the incremental decoder;
* dialect detection (``auto``) is replayed exactly: the same attempts the
  sink would make (each packet that takes a sample past 128/1024/8192/64Ki
  bytes, then the close), the same framing votes (a compiled port of
  ``detect.detect_framing``), and the same "one clean frame" test, read off
  the decoded rows. Only samples that are ASCII with ``line`` framing are
  decided here; anything else (``lp*`` framing, non-ASCII samples, where
  the encoding trial matters) is handed back to the sink, packet by packet;
* each row gets the time and frame of the packet that completed it by one
  ``searchsorted`` over the window's packet ends.

The outcome per flow equals what :class:`~camprotool.capture.streams.MessageSink`
gives (``tests/capture/test_fast_engine.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from camprotool.capture.fast import kernels as K
from camprotool.protocol.bulk import BulkDecoder, rows_to_table
from camprotool.protocol.catalogue import BY_NAME
from camprotool.protocol.codec import Decoder, error_message
from camprotool.protocol.detect import _MAX_HITS, _NAMES
from camprotool.protocol.dialect import Dialect

# verdicts (kernels.detect_flows): DECODE as line UTF-8 with the GBK fallback (ASCII
# samples), DECODE_UTF8 without it, IGNORE (not ours), FALLBACK (the sink decides)
DECODE, IGNORE, FALLBACK, DECODE_UTF8 = K.V_DECODE, K.V_IGNORE, K.V_FALLBACK, K.V_DECODE_UTF8
V_NONE = K.V_NONE  # not decided yet: the flow is open and no attempt settled it

_NAME_BYTES = [n.encode() for n in _NAMES]
_NAME_TABLE = np.zeros((len(_NAME_BYTES), max(map(len, _NAME_BYTES))), np.uint8)
for _i, _n in enumerate(_NAME_BYTES):
    _NAME_TABLE[_i, : len(_n)] = list(_n)
_NAME_LEN = np.array([len(n) for n in _NAME_BYTES], np.int64)
_PREFIX = np.frombuffer(b"SocketCommand", np.uint8).copy()
_KNOWN = pa.array(sorted(BY_NAME), pa.string())  # the type of the codes' names
_LINE = Dialect.parse("line")
_LINE_GBK = Dialect.parse("line:gbk")


@dataclass
class Groups:
    """The window's delivered packets, gathered per (flow, direction)."""

    data: np.ndarray  # uint8: each group's bytes, one group after the other
    order: np.ndarray  # window packet index of each gathered packet
    ends: np.ndarray  # offset in ``data`` just past each gathered packet
    flow: np.ndarray  # per group
    direction: np.ndarray  # per group: 0 c2s, 1 s2c
    first: np.ndarray  # per group: index of its first packet in ``order``
    stop: np.ndarray  # per group: one past its last packet in ``order``

    def start_byte(self, g: np.ndarray) -> np.ndarray:
        first = self.first[g]
        lens = self.ends[first] - np.where(first > 0, self.ends[np.maximum(first - 1, 0)], 0)
        return self.ends[first] - lens

    def stop_byte(self, g: np.ndarray) -> np.ndarray:
        return self.ends[self.stop[g] - 1]


@dataclass
class Outcome:
    """What became of the window's flows."""

    verdict: dict[int, int]  # flow -> DECODE / IGNORE / FALLBACK (V_NONE: undecided yet)
    table: pa.Table  # rows of DECODE flows: bulk SCHEMA + flow, direction (int8), ts_ns, frame
    fell_back: set[tuple[int, int]]  # (flow, direction) whose frames were re-read as GBK
    # groups of flows decoded and still open: group index, and the bytes of the group
    # decoded (complete lines; what follows is the tail the next window continues)
    open_groups: np.ndarray
    open_used: np.ndarray


def decide(groups: Groups, flows: np.ndarray,
           pkt_flow: np.ndarray, pkt_dir: np.ndarray, pkt_len: np.ndarray,
           dialect: Dialect | None, ts: np.ndarray, frames: np.ndarray, *,
           known: np.ndarray | None = None, closing: np.ndarray | None = None,
           base: np.ndarray | None = None) -> Outcome:
    """Decide and decode the flows ``flows`` (sorted) of one window.

    ``pkt_flow``/``pkt_dir``/``pkt_len``: their delivered packets grouped by flow,
    each flow's in capture order; ``ts`` and
    ``frames`` are per window packet. ``known``: per flow, the verdict an earlier
    window reached (-1: detect now); ``closing``: per flow, whether it ends in this
    window (default: all do), else its complete lines are decoded and the rest is
    left to the next window; ``base``: per group (of ``groups``), the stream offset
    of its first byte (a flow continued from an earlier window).
    """
    nf = len(flows)
    known = np.full(nf, V_NONE, np.int64) if known is None else known
    closing = np.ones(nf, bool) if closing is None else closing
    g_sel = np.flatnonzero(np.isin(groups.flow, flows))
    g_start = groups.start_byte(g_sel)
    g_stop = groups.stop_byte(g_sel)
    g_len = g_stop - g_start
    g_pos = np.searchsorted(flows, groups.flow[g_sel])  # each group's flow, in ``flows``
    used = np.zeros(len(g_sel), np.int64)
    K.last_newlines(groups.data, g_start, g_stop, used)
    speculative = dialect if dialect is not None else _LINE
    table, owner, stream_end, pkt = _decode_lines(groups.data, g_start, used, speculative, groups,
                                             g_sel, ts, frames)
    # detection, for the flows no earlier window decided
    out = known.copy()
    unknown = np.flatnonzero(known == V_NONE)
    if len(unknown):
        if dialect is None:
            good_end = _first_end(table, owner, stream_end, len(g_sel), _clean_rows(table))
            bad_end = _first_end(table, owner, stream_end, len(g_sel), _invalid_utf8_rows(table))
            out[unknown] = _detect(groups, flows, unknown, closing, pkt_flow, pkt_dir, pkt_len,
                                   g_sel, g_start, g_pos, good_end, bad_end)
        else:
            out[unknown] = DECODE
    verdict = dict(zip(flows.tolist(), out.tolist(), strict=True))
    # rows of the decoded flows (tails of those that end here), stamped
    decoded = (out == DECODE) | (out == DECODE_UTF8)
    keep_groups = decoded[g_pos]
    ends_groups = closing[g_pos]
    parts: list[tuple[pa.Table, np.ndarray, np.ndarray, np.ndarray | None]] = []
    if table.num_rows:
        mask = keep_groups[owner]
        if mask.all():
            parts.append((table, owner, stream_end, pkt))
        else:
            parts.append((table.filter(pa.array(mask)), owner[mask], stream_end[mask],
                          pkt[mask]))
    tail_table, tail_owner = _tails(groups.data, g_start, used,
                                    np.where(ends_groups, g_len, used), speculative)
    if tail_table.num_rows:
        mine = keep_groups[tail_owner]
        if not mine.all():
            tail_table, tail_owner = tail_table.filter(pa.array(mine)), tail_owner[mine]
        parts.append((tail_table, tail_owner, tail_table["end"].to_numpy(), None))
    still = np.flatnonzero(keep_groups & ~ends_groups)
    open_groups, open_used = g_sel[still], used[still]
    group_base = np.zeros(len(g_sel), np.int64) if base is None else base[g_sel]
    fell_back: set[tuple[int, int]] = set()
    if not parts:
        none = np.zeros(0, np.int64)
        return Outcome(verdict, _stamped(table.slice(0, 0), none, none, groups, g_sel, none,
                                         ts, frames, group_base), fell_back, open_groups,
                       open_used)
    rows = pa.concat_tables([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    own = np.concatenate([p[1] for p in parts])
    end = np.concatenate([p[2] for p in parts])
    pkt = np.concatenate([p[3] if p[3] is not None
                          else _completing_packet(p[1], p[2], groups, g_sel, g_start)
                          for p in parts])
    if dialect is None:
        gi = g_sel[own]
        rows = _reread_as_gbk(rows, groups.flow[gi], groups.direction[gi], fell_back,
                              (out == DECODE)[g_pos][own])
    return Outcome(verdict, _stamped(rows, own, end, groups, g_sel, pkt, ts, frames, group_base),
                   fell_back, open_groups, open_used)


def detect(groups: Groups, flows: np.ndarray, closing: np.ndarray, pkt_flow: np.ndarray,
           pkt_dir: np.ndarray, pkt_len: np.ndarray, dialect: Dialect | None) -> np.ndarray:
    """Verdicts for flows no earlier window decided (``flows``, sorted; ``groups`` holds
    their bytes and no one else's), decoding only what detection reads.

    Why: :func:`decide` decodes every line of every stream before it knows which
    flows are the protocol's; deciding first lets the decided flows' lines be
    decoded once, in capture order, with the streaming ones
    (``FastEngine._lines_in_time_order``). Detection reads two things of each
    stream's decoded rows within its first 64 KiB: where the first clean row ends
    and where the first "invalid utf-8" row ends. :func:`sample_ends` finds both
    from the first row and the few rows that could be invalid.
    ``pkt_*``: the flows' packets grouped by flow, each flow's in capture order.
    """
    if dialect is not None:
        return np.full(len(flows), DECODE, np.int64)
    g_sel = np.arange(len(groups.flow))
    g_start, g_stop = groups.start_byte(g_sel), groups.stop_byte(g_sel)
    g_pos = np.searchsorted(flows, groups.flow)
    # the server's first row is decoded only for flows the client's samples leave
    # hanging on it: in most conversations the client's first clean line settles
    # detection, and a decoded row costs as much as the rest of detection does
    server = groups.direction == 1
    good_end, bad_end = sample_ends(groups.data, g_start, g_stop, later=server)
    verdict = _detect(groups, flows, np.arange(len(flows)), closing, pkt_flow, pkt_dir,
                      pkt_len, g_sel, g_start, g_pos, good_end, bad_end)
    need = verdict == K.V_NEED
    if need.any():
        now = np.flatnonzero(server & need[g_pos])
        good_end[now] = sample_ends(groups.data, g_start[now], g_stop[now])[0]
        again = np.flatnonzero(need)
        verdict[again] = _detect(groups, flows, again, closing, pkt_flow, pkt_dir, pkt_len,
                                 g_sel, g_start, g_pos, good_end, bad_end)
    return verdict


_QUOTED = np.frombuffer(b"invalid utf-8", np.uint8).copy()
#: the columns of decoded rows detection reads (:func:`_clean_rows`, :func:`_first_end`)
_DETECTED = ("end", "command", "error")
_NEVER = np.iinfo(np.int64).max


def sample_ends(data: np.ndarray, g_start: np.ndarray, g_stop: np.ndarray,
                later: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per stream ``data[g_start:g_stop]``: the end (stream offset) of its first clean
    row and of its first row with an "invalid utf-8" error, as :func:`_first_end`
    gives them over all its decoded rows, for rows within a sample's reach.

    Decodes the first row of each stream; if it is clean, that is the first
    clean row. Invalid rows can only be rows holding a byte past ASCII (or
    quoting the words), so only those are decoded to find the first. A stream
    whose first row is not clean has its whole reach decoded, as before.
    ``later``: streams whose first clean row is left for later (``UNKNOWN_END``,
    where they have a row at all).
    """
    n = len(g_start)
    first_start, first_end = np.empty(n, np.int64), np.empty(n, np.int64)
    room = K.count_byte(data, 0x0A)
    c_start, c_end, c_group = (np.empty(room, np.int64) for _ in range(3))
    k = K.sample_lines(data, g_start, g_stop, K.LONG, _LINE.max_frame, _QUOTED, first_start,
                       first_end, c_start, c_end, c_group)
    good, bad = np.full(n, _NEVER, np.int64), np.full(n, _NEVER, np.int64)
    if later is None:
        has = np.flatnonzero(first_start >= 0)
    else:
        row = first_start >= 0
        good[row & later] = K.UNKNOWN_END
        has = np.flatnonzero(row & ~later)
    c_start, c_end, c_group = c_start[:k], c_end[:k], c_group[:k]
    # one decoder pass for both (a pass costs about a millisecond however few the rows)
    rows = _decode_ranges(data, np.concatenate([first_start[has], c_start]),
                          np.concatenate([first_end[has], c_end]))
    clean = _clean_rows(rows.slice(0, len(has)))
    good[has[clean]] = (first_end - g_start)[has[clean]]
    if k:
        invalid = _invalid_utf8_rows(rows.slice(len(has)))
        np.minimum.at(bad, c_group[invalid], (c_end - g_start[c_group])[invalid])
    unsure = has[~clean]
    if len(unsure):  # a first row that is not clean: decode all the sample's rows
        starts = g_start[unsure]
        used = np.zeros(len(unsure), np.int64)
        K.last_newlines(data, starts, np.minimum(g_stop[unsure], starts + K.LONG), used)
        joined, _, _, owner, end = _joined_lines(data, starts, used, _LINE)
        rows = BulkDecoder(_LINE).feed(joined, _DETECTED)
        good[unsure] = _first_end(rows, owner, end, len(unsure), _clean_rows(rows))
        bad[unsure] = _first_end(rows, owner, end, len(unsure), _invalid_utf8_rows(rows))
    return good, bad


def _decode_ranges(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> pa.Table:
    """The rows of the lines ``data[starts[i]:ends[i]]`` (each one row), decoded as
    ``line``."""
    lens = ends - starts
    joined = np.empty(int(lens.sum()), np.uint8)
    K.copy_ranges(data, starts, lens, joined)
    rows = BulkDecoder(_LINE).feed(joined, _DETECTED)
    if rows.num_rows != len(starts):  # cannot happen: each range is one row
        raise AssertionError(f"{rows.num_rows} rows from {len(starts)} lines")
    return rows


def _detect(groups: Groups, flows: np.ndarray, unknown: np.ndarray, closing: np.ndarray,
            pkt_flow: np.ndarray, pkt_dir: np.ndarray, pkt_len: np.ndarray, g_sel: np.ndarray,
            g_start: np.ndarray, g_pos: np.ndarray, good_end: np.ndarray,
            bad_end: np.ndarray) -> np.ndarray:
    """The sink's dialect detection replayed for the flows ``flows[unknown]``: each
    attempt the sink would make on their packets here (a flow still open and
    undecided stays V_NONE). ``good_end``/``bad_end``: per group (of ``g_sel``), where
    its first clean row and its first "invalid utf-8" row end."""
    if len(unknown) == len(flows):  # every flow: every packet
        p_flow, p_dir, p_len = pkt_flow, pkt_dir, pkt_len
    else:
        mine = np.isin(pkt_flow, flows[unknown])
        p_flow, p_dir, p_len = pkt_flow[mine], pkt_dir[mine], pkt_len[mine]
    n = len(p_flow)
    totals = np.zeros((int(flows.max()) + 1, 2), np.int64)
    a_flow, a_c2s, a_s2c = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    k = K.detection_attempts(p_flow, p_dir, p_len, n, a_flow, a_c2s, a_s2c, totals)
    group_of = np.full((len(flows), 2), -1, np.int64)
    group_of[g_pos, groups.direction[g_sel]] = np.arange(len(g_sel))
    these = flows[unknown]
    verdicts = np.empty(len(these), np.int64)
    K.detect_flows(these, closing[unknown].astype(np.int8), group_of[unknown],
                   np.searchsorted(these, a_flow[:k]), a_c2s, a_s2c, k, totals, groups.data,
                   g_start, good_end, bad_end, _NAME_TABLE, _NAME_LEN, _PREFIX,
                   _LINE.max_frame, _MAX_HITS, verdicts)
    return verdicts


def _decode_lines(data: np.ndarray, g_start: np.ndarray, used: np.ndarray, dialect: Dialect,
                  groups: Groups, g_sel: np.ndarray, ts: np.ndarray, frames: np.ndarray,
                  ) -> tuple[pa.Table, np.ndarray, np.ndarray, np.ndarray]:
    """The complete lines of every group, decoded in one pass; owner group and stream end.

    The lines are put in the order ``Capture.messages`` has (time, frame,
    connection, stream offset) before decoding, so the decoded columns never
    need reordering: moving bytes is cheaper than reordering typed columns.
    """
    if not int(used.sum()):
        empty = BulkDecoder(dialect).feed(b"")
        return empty, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    joined, starts, ends, owner, stream_end = _joined_lines(data, g_start, used, dialect)
    n = len(ends)
    pkt = _completing_packet(owner, stream_end, groups, g_sel, g_start)
    order = _time_order(pkt, stream_end, groups.flow[g_sel][owner], ts, frames)
    if np.any(order[1:] < order[:-1]):
        lens = (ends - starts)[order]
        dest = np.empty(n, np.int64)
        dest[order] = np.cumsum(lens) - lens
        moved = np.empty(int(lens.sum()), np.uint8)
        K.scatter(joined, starts, ends - starts, dest, moved)
        joined = moved
        owner, stream_end, pkt = owner[order], stream_end[order], pkt[order]
    table = BulkDecoder(dialect).feed(joined)
    del joined  # held twice at most: the decoder's input and its columns
    if table.num_rows != n:  # cannot happen: the decoder frames lines as line_frames does
        raise AssertionError(f"{table.num_rows} rows from {n} lines")
    return table, owner, stream_end, pkt


def _joined_lines(data: np.ndarray, g_start: np.ndarray, used: np.ndarray, dialect: Dialect
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The first ``used`` bytes of each stream (from ``g_start``, complete lines) joined,
    with the lines the decoder frames in them: (joined bytes, line starts and ends in
    them, each line's stream, its end as a stream offset)."""
    total = int(used.sum())
    if total == len(data) and np.array_equal(g_start, np.cumsum(used) - used):
        joined = data  # every byte, in order
    else:
        joined = np.empty(total, np.uint8)
        K.copy_ranges(data, g_start, used, joined)
    bounds = np.cumsum(used)
    cap = K.count_byte(joined, 0x0A)
    starts, ends = np.empty(cap, np.int64), np.empty(cap, np.int64)
    n = K.line_frames(joined, dialect.max_frame, starts, ends)
    starts, ends = starts[:n], ends[:n]
    owner = np.searchsorted(bounds, ends, side="left")
    return joined, starts, ends, owner, ends - (bounds - used)[owner]


def _time_order(pkt: np.ndarray, stream_end: np.ndarray, flow: np.ndarray, ts: np.ndarray,
                frames: np.ndarray) -> np.ndarray:
    """The order of ``Capture.messages``: time, frame, connection, stream offset.

    A packet belongs to one flow (and has a frame of its own), so the order is
    (the packet's place in time and frame order, offset): one integer key. The
    packets are in that order already unless some were carried from an earlier
    window (they come first); then their places come from one sort of the packets,
    far fewer than the rows.
    """
    if len(stream_end) and int(stream_end.max()) < 1 << 32 and len(ts) < 1 << 31:
        if np.any(ts[1:] < ts[:-1]) or np.any(frames[1:] < frames[:-1]):
            place = np.empty(len(ts), np.int64)
            place[np.lexsort((frames, ts))] = np.arange(len(ts))
            return np.argsort((place[pkt] << 32) | stream_end, kind="stable")
        return np.argsort((pkt << 32) | stream_end, kind="stable")
    return np.lexsort((stream_end, flow, frames[pkt], ts[pkt]))


def _completing_packet(own: np.ndarray, end: np.ndarray, groups: Groups, g_sel: np.ndarray,
                       g_start: np.ndarray) -> np.ndarray:
    """Window index of the packet that completed each row (``MessageSink._stamp``'s rule)."""
    gi = g_sel[own]
    j = np.searchsorted(groups.ends, g_start[own] + end, side="left")
    return groups.order[np.minimum(j, groups.stop[gi] - 1)]


def _tails(data: np.ndarray, g_start: np.ndarray, used: np.ndarray, g_len: np.ndarray,
           dialect: Dialect) -> tuple[pa.Table, np.ndarray]:
    """Bytes after a stream's last newline: the incremental decoder reports them at close,
    one table for them all; also each row's group.

    A ``line`` tail holds no newline, so the decoder's whole answer is one row made
    by ``error_message``: the tail (its first ``max_frame`` bytes) as ``raw`` and
    "stream ended inside a frame (N bytes of it seen)", ending where the stream
    ends. Those rows are built as columns (thousands of short connections cut
    mid-message cost a decoder each otherwise); the row's other values come from
    the decoder's own row for an empty tail, so both stay one definition.
    """
    if dialect.is_line:
        return _line_tails(data, g_start, used, g_len, dialect)
    return decoder_tails(data, g_start, used, g_len, dialect)


def decoder_tails(data: np.ndarray, g_start: np.ndarray, used: np.ndarray, g_len: np.ndarray,
                  dialect: Dialect) -> tuple[pa.Table, np.ndarray]:
    """:func:`_tails` by one incremental decoder a tail (any dialect; the reference)."""
    rows, owner = [], []
    for j in np.flatnonzero(used < g_len).tolist():
        lo, hi = int(g_start[j] + used[j]), int(g_start[j] + g_len[j])
        dec = Decoder(dialect)
        dec._base = int(used[j])
        found = dec.feed_with_ends(data[lo:hi].tobytes()) + dec.finish_with_ends()
        rows += found
        owner += [j] * len(found)
    return rows_to_table(rows), np.asarray(owner, np.int64)


def _line_tails(data: np.ndarray, g_start: np.ndarray, used: np.ndarray, g_len: np.ndarray,
                dialect: Dialect) -> tuple[pa.Table, np.ndarray]:
    owner = np.flatnonzero(used < g_len)
    n = len(owner)
    if not n:
        return rows_to_table([]), owner
    size = g_len[owner] - used[owner]
    keep = np.minimum(size, dialect.max_frame)
    values = np.empty(int(keep.sum()), np.uint8)
    K.copy_ranges(data, g_start[owner] + used[owner], keep, values)
    offsets = np.concatenate([[0], np.cumsum(keep)]).astype(np.int64)
    raw = pa.Array.from_buffers(pa.large_binary(), n,
                                [None, pa.py_buffer(offsets), pa.py_buffer(values)])
    template = rows_to_table([(0, error_message(b"", ""))])
    columns = template.take(pa.array(np.zeros(n, np.int64)))
    error = pa.array([f"stream ended inside a frame ({k} bytes of it seen)"
                      for k in size.tolist()], pa.large_string())
    for name, column in (("end", pa.array(g_len[owner], pa.int64())), ("raw", raw),
                         ("error", error)):
        at = columns.schema.get_field_index(name)
        columns = columns.set_column(at, columns.schema.field(at), column)
    return columns, owner


def _clean_rows(table: pa.Table) -> np.ndarray:
    """Rows the detector counts as clean: a known command, no error."""
    if not table.num_rows:
        return np.zeros(0, bool)
    known = pc.is_in(table["command"], _KNOWN)
    error = table["error"]
    good = known if error.null_count == len(error) else pc.and_(pc.is_null(error), known)
    return good.to_numpy(zero_copy_only=False)


def _invalid_utf8_rows(table: pa.Table) -> np.ndarray:
    """Rows the detector counts as badly encoded under UTF-8."""
    if table["error"].null_count == table.num_rows:  # no error (most samples): none
        return np.zeros(table.num_rows, bool)
    bad = pc.fill_null(pc.match_substring(table["error"], "invalid utf-8"), False)
    return bad.to_numpy(zero_copy_only=False)


def _first_end(table: pa.Table, owner: np.ndarray, stream_end: np.ndarray, groups: int,
               which: np.ndarray) -> np.ndarray:
    """Per group: the end of its first row among ``which`` (or the int64 maximum)."""
    out = np.full(groups, np.iinfo(np.int64).max, np.int64)
    if table.num_rows:
        np.minimum.at(out, owner[which], stream_end[which])
    return out


def _reread_as_gbk(rows: pa.Table, row_flow: np.ndarray, row_dir: np.ndarray,
                   fell_back: set[tuple[int, int]], eligible: np.ndarray) -> pa.Table:
    """``MessageSink._reread_as_gbk`` for the rows of ASCII-detected flows (``eligible``,
    per row; ``row_flow``/``row_dir``: each row's stream)."""
    errors = rows["error"]
    if errors.null_count == rows.num_rows:
        return rows
    suspects = pc.fill_null(pc.match_substring(errors, "invalid utf-8"), False)
    idx = np.flatnonzero(suspects.to_numpy(zero_copy_only=False) & eligible)
    if not len(idx):
        return rows
    gbk = _LINE_GBK
    raws = rows["raw"].take(pa.array(idx)).to_pylist()
    ends = rows["end"].take(pa.array(idx)).to_pylist()
    keep = np.ones(rows.num_rows, bool)
    new, where = [], []
    for i, raw, end in zip(idx.tolist(), raws, ends, strict=True):
        dec = Decoder(gbk)
        found = dec.feed(raw) + dec.finish()
        if len(found) == 1 and not (found[0].error and "invalid gbk" in found[0].error):
            new.append((end, found[0]))
            where.append(i)
            keep[i] = False
            fell_back.add((int(row_flow[i]), int(row_dir[i])))
    if not new:
        return rows
    replaced = rows_to_table(new).select(rows.column_names).cast(rows.schema)
    # same position, same end: rows keep their order
    positions = np.concatenate([np.flatnonzero(keep), np.asarray(where, np.int64)])
    merged = pa.concat_tables([rows.filter(pa.array(keep)), replaced])
    return merged.take(pa.array(np.argsort(positions, kind="stable")))


def lines_in_time_order(data: np.ndarray, c_pkt: np.ndarray, c_end: np.ndarray,
                        c_offset: np.ndarray, flow: np.ndarray, direction: np.ndarray,
                        ts: np.ndarray, frames: np.ndarray, dialect: Dialect | None,
                        ascii_flow: np.ndarray, fell_back: set[tuple[int, int]]) -> pa.Table:
    """Rows of complete lines already joined in the order they complete.

    Why: once every stream of a window is decided, the lines can be joined in
    capture order of the packets that complete them
    (:func:`kernels.lines_in_time_order`), which is the order of
    ``Capture.messages`` (time, frame, then offset): no gathering per stream,
    no reordering. ``c_*``: the kernel's contributions (completing packet, end
    in ``data``, stream offset there); ``flow``/``direction``/``ts``/``frames``
    per packet; ``ascii_flow``: per flow, whether its frames may be re-read as GBK.
    """
    speculative = dialect if dialect is not None else _LINE
    rows = BulkDecoder(speculative).feed(data)
    ends = rows["end"].to_numpy()  # where each line ends in ``data`` (a fresh decoder)
    n = len(ends)
    stream_end, row_flow, row_ts, row_frame = (np.empty(n, np.int64) for _ in range(4))
    row_dir = np.empty(n, np.int8)
    K.stamp_rows(ends, c_end, c_pkt, c_offset, flow, direction, ts, frames, stream_end,
                 row_flow, row_dir, row_ts, row_frame)
    if dialect is None:
        rows = _reread_as_gbk(rows, row_flow, row_dir, fell_back, ascii_flow[row_flow])
    return _with_stamps(rows, stream_end, row_flow, row_dir, row_ts, row_frame)


def tail_rows(data: np.ndarray, t_start: np.ndarray, t_len: np.ndarray, end: np.ndarray,
              flow: np.ndarray, direction: np.ndarray, ts: np.ndarray, frames: np.ndarray,
              dialect: Dialect | None) -> pa.Table:
    """The rows of streams that close inside a frame: ``data[t_start:t_start+t_len]``
    is each one's unfinished frame, ``end`` its stream offset at the close, ``ts`` and
    ``frames`` those of the packet that brought its last byte."""
    speculative = dialect if dialect is not None else _LINE
    rows, owner = _tails(data, t_start, np.zeros(len(t_start), np.int64), t_len, speculative)
    return _with_stamps(rows, end[owner], flow[owner], direction[owner], ts[owner],
                        frames[owner])


def _with_stamps(rows: pa.Table, end: np.ndarray, flow: np.ndarray, direction: np.ndarray,
                 ts: np.ndarray, frames: np.ndarray) -> pa.Table:
    rows = rows.set_column(0, "end", pa.array(end, pa.int64()))
    return (rows.append_column("flow", pa.array(flow, pa.int64()))
            .append_column("dir", pa.array(direction.astype(np.int8, copy=False)))
            .append_column("ts_ns", pa.array(ts, pa.int64()))
            .append_column("frame", pa.array(frames, pa.int64())))


def _stamped(rows: pa.Table, own: np.ndarray, end: np.ndarray, groups: Groups,
             g_sel: np.ndarray, pkt: np.ndarray, ts: np.ndarray,
             frames: np.ndarray, group_base: np.ndarray) -> pa.Table:
    """Rows with flow, direction, and the ts and frame of the packet ``pkt`` that completed
    each; ``end`` is made a stream offset by each group's ``group_base``."""
    gi = g_sel[own]
    rows = rows.set_column(0, "end", pa.array(end + group_base[own], pa.int64()))
    return (rows.append_column("flow", pa.array(groups.flow[gi], pa.int64()))
            .append_column("dir", pa.array(groups.direction[gi].astype(np.int8)))
            .append_column("ts_ns", pa.array(ts[pkt], pa.int64()))
            .append_column("frame", pa.array(frames[pkt], pa.int64())))

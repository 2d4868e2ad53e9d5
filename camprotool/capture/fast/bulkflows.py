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
from camprotool.protocol.codec import Decoder
from camprotool.protocol.detect import _MAX_HITS, _NAMES, SAMPLE_SIZE
from camprotool.protocol.dialect import Dialect

DECODE, IGNORE, FALLBACK = 0, 1, 2

_NAME_BYTES = [n.encode() for n in _NAMES]
_NAME_TABLE = np.zeros((len(_NAME_BYTES), max(map(len, _NAME_BYTES))), np.uint8)
for _i, _n in enumerate(_NAME_BYTES):
    _NAME_TABLE[_i, : len(_n)] = list(_n)
_NAME_LEN = np.array([len(n) for n in _NAME_BYTES], np.int64)
_PREFIX = np.frombuffer(b"SocketCommand", np.uint8).copy()
_KNOWN = pa.array(sorted(BY_NAME), pa.large_string())
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
    """What became of the window's whole flows."""

    verdict: dict[int, int]  # flow -> DECODE / IGNORE / FALLBACK
    table: pa.Table  # rows of DECODE flows: bulk SCHEMA + flow, direction (int8), ts_ns, frame
    fell_back: set[tuple[int, int]]  # (flow, direction) whose frames were re-read as GBK
    totals: dict[int, tuple[int, int]]  # flow -> stream bytes (c2s, s2c)


def decide(groups: Groups, flows: np.ndarray, capture_order: np.ndarray,
           pkt_flow: np.ndarray, pkt_dir: np.ndarray, pkt_len: np.ndarray,
           dialect: Dialect | None, ts: np.ndarray, frames: np.ndarray) -> Outcome:
    """Decide and decode the whole flows ``flows`` (sorted) of one window.

    ``capture_order``: their delivered packets grouped by flow, each flow's in
    capture order, with ``pkt_flow``/``pkt_dir``/``pkt_len`` of each; ``ts`` and
    ``frames`` are per window packet.
    """
    g_sel = np.flatnonzero(np.isin(groups.flow, flows))
    g_start = groups.start_byte(g_sel)
    g_stop = groups.stop_byte(g_sel)
    g_len = g_stop - g_start
    used = np.zeros(len(g_sel), np.int64)
    K.last_newlines(groups.data, g_start, g_stop, used)
    speculative = dialect if dialect is not None else _LINE
    table, owner, stream_end = _decode_lines(groups.data, g_start, used, speculative)
    tails = _tails(groups.data, g_start, used, g_len, speculative)
    # detection
    totals_arr = np.zeros((int(flows.max()) + 1 if len(flows) else 0, 2), np.int64)
    verdict: dict[int, int] = {}
    g_of = {(int(f), int(d)): j for j, (f, d) in enumerate(
        zip(groups.flow[g_sel].tolist(), groups.direction[g_sel].tolist(), strict=True))}
    if dialect is None:
        n = len(capture_order)
        a_flow, a_c2s, a_s2c = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
        k = K.detection_attempts(pkt_flow, pkt_dir, pkt_len, n, a_flow, a_c2s, a_s2c,
                                 totals_arr)
        good_end = _first_good_end(table, owner, stream_end, len(g_sel))
        attempts: dict[int, list[tuple[int, int]]] = {}
        for f, c, s in zip(a_flow[:k].tolist(), a_c2s[:k].tolist(), a_s2c[:k].tolist(),
                           strict=True):
            attempts.setdefault(f, []).append((c, s))
        for f in flows.tolist():
            verdict[f] = _detect(f, attempts.get(f, ()), totals_arr[f], g_of, g_start,
                                 groups.data, good_end)
    else:
        K.detection_attempts(pkt_flow, pkt_dir, pkt_len, len(capture_order),
                             np.empty(len(capture_order), np.int64),
                             np.empty(len(capture_order), np.int64),
                             np.empty(len(capture_order), np.int64), totals_arr)
        verdict = dict.fromkeys(flows.tolist(), DECODE)
    totals = {f: (int(totals_arr[f, 0]), int(totals_arr[f, 1])) for f in flows.tolist()}
    # rows of the decoded flows, tails included, stamped
    keep_groups = np.array([verdict[int(f)] == DECODE for f in groups.flow[g_sel]], bool)
    parts = []
    if table.num_rows:
        mask = keep_groups[owner]
        if mask.all():
            parts.append((table, owner, stream_end))
        else:
            parts.append((table.filter(pa.array(mask)), owner[mask], stream_end[mask]))
    for j, tail_table in tails:
        if keep_groups[j] and tail_table.num_rows:
            parts.append((tail_table, np.full(tail_table.num_rows, j, np.int64),
                          tail_table["end"].to_numpy()))
    fell_back: set[tuple[int, int]] = set()
    if not parts:
        return Outcome(verdict, _stamped(table.slice(0, 0), np.zeros(0, np.int64),
                                         np.zeros(0, np.int64), groups, g_sel, g_start, ts,
                                         frames), fell_back, totals)
    rows = pa.concat_tables([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    own = np.concatenate([p[1] for p in parts])
    end = np.concatenate([p[2] for p in parts])
    if dialect is None:
        rows = _reread_as_gbk(rows, own, groups, g_sel, fell_back)
    return Outcome(verdict, _stamped(rows, own, end, groups, g_sel, g_start, ts, frames),
                   fell_back, totals)


def _decode_lines(data: np.ndarray, g_start: np.ndarray, used: np.ndarray, dialect: Dialect
                  ) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """The complete lines of every group, decoded in one pass; owner group and stream end."""
    total = int(used.sum())
    if not total:
        empty = BulkDecoder(dialect).feed(b"")
        return empty, np.zeros(0, np.int64), np.zeros(0, np.int64)
    joined = np.empty(total, np.uint8)
    K.copy_ranges(data, g_start, used, joined)
    table = BulkDecoder(dialect).feed(joined.tobytes())
    bounds = np.cumsum(used)
    ends = table["end"].to_numpy()
    owner = np.searchsorted(bounds, ends, side="left")
    stream_end = ends - (bounds - used)[owner]
    return table, owner, stream_end


def _tails(data: np.ndarray, g_start: np.ndarray, used: np.ndarray, g_len: np.ndarray,
           dialect: Dialect) -> list[tuple[int, pa.Table]]:
    """Bytes after a stream's last newline: the incremental decoder reports them at close."""
    out = []
    for j in np.flatnonzero(used < g_len).tolist():
        lo, hi = int(g_start[j] + used[j]), int(g_start[j] + g_len[j])
        dec = Decoder(dialect)
        dec._base = int(used[j])
        rows = dec.feed_with_ends(data[lo:hi].tobytes()) + dec.finish_with_ends()
        out.append((j, rows_to_table(rows)))
    return out


def _first_good_end(table: pa.Table, owner: np.ndarray, stream_end: np.ndarray,
                    groups: int) -> np.ndarray:
    """Per group: the end of its first cleanly decoded frame of a known command (or max)."""
    out = np.full(groups, np.iinfo(np.int64).max, np.int64)
    if table.num_rows:
        good = pc.and_(pc.is_null(table["error"]), pc.is_in(table["command"], _KNOWN))
        good = good.to_numpy(zero_copy_only=False)
        np.minimum.at(out, owner[good], stream_end[good])
    return out


def _detect(f: int, attempts, totals: np.ndarray, g_of: dict, g_start: np.ndarray,
            data: np.ndarray, good_end: np.ndarray) -> int:
    """The sink's detection for one flow: DECODE (line, UTF-8 with GBK fallback), IGNORE
    or FALLBACK (a case only the sink's own detector can settle)."""
    for c, s in attempts:
        result = _attempt(f, (c, s), False, g_of, g_start, data, good_end)
        if result is not None:
            return result
        if max(c, s) >= SAMPLE_SIZE:
            return IGNORE
    final = (min(int(totals[0]), SAMPLE_SIZE), min(int(totals[1]), SAMPLE_SIZE))
    result = _attempt(f, final, True, g_of, g_start, data, good_end)
    return IGNORE if result is None else result


def _attempt(f: int, sizes: tuple[int, int], final: bool, g_of: dict, g_start: np.ndarray,
             data: np.ndarray, good_end: np.ndarray) -> int | None:
    found = False
    for d, size in enumerate(sizes):
        if not size:
            continue
        j = g_of.get((f, d))
        lo = int(g_start[j])
        if K.first_non_ascii(data, lo, lo + size) >= 0:
            return FALLBACK  # the encoding trial decides: the sink's detector does it
        framing = K.detect_framing(data, lo, lo + size, _NAME_TABLE, _NAME_LEN, _PREFIX,
                                   _LINE.max_frame, _MAX_HITS)
        if framing in (2, 3):
            return FALLBACK
        if framing == 1 and (final or good_end[j] <= size):
            found = True
    return DECODE if found else None


def _reread_as_gbk(rows: pa.Table, own: np.ndarray, groups: Groups, g_sel: np.ndarray,
                   fell_back: set[tuple[int, int]]) -> pa.Table:
    """``MessageSink._reread_as_gbk`` for the rows of ASCII-detected flows."""
    errors = rows["error"]
    if errors.null_count == rows.num_rows:
        return rows
    suspects = pc.fill_null(pc.match_substring(errors, "invalid utf-8"), False)
    idx = np.flatnonzero(suspects.to_numpy(zero_copy_only=False))
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
            j = int(g_sel[own[i]])
            fell_back.add((int(groups.flow[j]), int(groups.direction[j])))
    if not new:
        return rows
    replaced = rows_to_table(new).select(rows.column_names).cast(rows.schema)
    # same position, same end: rows keep their order
    positions = np.concatenate([np.flatnonzero(keep), np.asarray(where, np.int64)])
    merged = pa.concat_tables([rows.filter(pa.array(keep)), replaced])
    return merged.take(pa.array(np.argsort(positions, kind="stable")))


def _stamped(rows: pa.Table, own: np.ndarray, end: np.ndarray, groups: Groups,
             g_sel: np.ndarray, g_start: np.ndarray, ts: np.ndarray,
             frames: np.ndarray) -> pa.Table:
    """Rows with flow, direction, and the ts and frame of the packet that completed each."""
    gi = g_sel[own]
    pos = g_start[own] + end
    j = np.searchsorted(groups.ends, pos, side="left")
    j = np.minimum(j, groups.stop[gi] - 1)
    pkt = groups.order[j]
    rows = rows.set_column(0, "end", pa.array(end, pa.int64()))
    return (rows.append_column("flow", pa.array(groups.flow[gi], pa.int64()))
            .append_column("dir", pa.array(groups.direction[gi].astype(np.int8)))
            .append_column("ts_ns", pa.array(ts[pkt], pa.int64()))
            .append_column("frame", pa.array(frames[pkt], pa.int64())))

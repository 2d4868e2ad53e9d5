"""The fast capture engine: whole columns of packets per step, the exact path only where needed.

Why two passes over the file: whether a TCP 4-tuple can take the fast path
(every segment in order, nothing lost, buffered or reused) is known only at
its end, and memory must not grow with the capture, so nothing per packet is
kept between passes. Pass one indexes records and parses headers (compiled
kernels), finds each packet's flow and follows every flow through the
in-order subset of TCP, keeping a few dozen bytes per flow. Pass two walks
the file again in windows: packets of in-order flows become stream bytes in
one gather per window and reach the protocol sink in bulk; packets of the
other flows become ``TcpSegment`` tuples for the exact
:class:`~camprotool.capture.reassembly.Reassembler`, in capture order.

Both paths drive one :class:`~camprotool.capture.streams.MessageSink`, so
detection, decoding and stamping are the same code for every connection.
Connection ids are settled at the end, by each connection's first packet,
as the reassembler alone would number them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np
import pyarrow as pa

from camprotool.capture.allocator import drop_file_pages
from camprotool.capture.captureset import CaptureSet
from camprotool.capture.connections import SettledBatch, _dialect_text
from camprotool.capture.conntable import Addresses
from camprotool.capture.fast import bulkflows
from camprotool.capture.fast import kernels as K
from camprotool.capture.fast.handover import Handover
from camprotool.capture.fast.walk import RecordWalk, Walked, walk_in_line
from camprotool.capture.packets import TcpSegment, decode_tcp
from camprotool.capture.readers import CaptureFile, RawPacket
from camprotool.capture.reassembly import ConnectionInfo, Reassembler
from camprotool.capture.streams import MessageSink
from camprotool.protocol.dialect import Dialect

_I64 = np.int64
_T = TypeVar("_T")
#: records per window: bounds the per-packet arrays (about 200 bytes a record), the file
#: pages resident at once and each window's decoding buffers; flows longer than a window
#: stream on column-wise. 32,768 against 65,536, per-file (speed.sh's way, 7 runs):
#: peak 60 MB against 72-74 on 211,305 packets, 95 against 103 on 262,453 packets of
#: 6,000 connections, time the same within noise (warm, one process: -12 and +9 ms)
WINDOW = 1 << 15
SLOW_BASE = 1 << 40  # provisional ids of connections the exact reassembler opens
_NOWHERE = 1 << 62  # a file offset past any file
_DIRS = ("c2s", "s2c")


class _Slices:
    """A ``cut`` for the record loops that hands out (start, end) instead of bytes."""

    def __getitem__(self, s: slice) -> tuple[int, int]:
        return s.start, s.stop


def _unparsed() -> np.ndarray:
    """A header column of a window not parsed yet (``_parse`` sets them all)."""
    return np.zeros(0, _I64)


@dataclass
class _Window:
    """One window of records: the record index, then the parsed headers."""

    n: int
    frame_no: np.ndarray  # frame number of each record
    rec_off: np.ndarray
    cap_len: np.ndarray
    orig_len: np.ndarray
    ts: np.ndarray
    linktype: np.ndarray
    # parsed (filled by _parse)
    status: np.ndarray = field(default_factory=_unparsed)
    fam: np.ndarray = field(default_factory=_unparsed)
    s_hi: np.ndarray = field(default_factory=_unparsed)
    s_lo: np.ndarray = field(default_factory=_unparsed)
    d_hi: np.ndarray = field(default_factory=_unparsed)
    d_lo: np.ndarray = field(default_factory=_unparsed)
    sport: np.ndarray = field(default_factory=_unparsed)
    dport: np.ndarray = field(default_factory=_unparsed)
    seq: np.ndarray = field(default_factory=_unparsed)
    ack: np.ndarray = field(default_factory=_unparsed)
    flags: np.ndarray = field(default_factory=_unparsed)
    pay_off: np.ndarray = field(default_factory=_unparsed)
    pay_len: np.ndarray = field(default_factory=_unparsed)
    missing: np.ndarray = field(default_factory=_unparsed)
    half: np.ndarray = field(default_factory=_unparsed)  # -1: no TCP segment
    # a capture set's window holds its records' bytes (offsets are into ``buf``);
    # a single file's window points into the file's map (None)
    buf: np.ndarray | None = None
    # packets decode_tcp took: index -> its segment (or None) and its problem
    python: dict[int, TcpSegment | None] | None = None
    # parsed as it was indexed (kernels.index_pcap), its flows found for the first
    # ``looked`` records; where the walk stopped in the file, and what the next record needs
    looked: int = -1
    rec_off_end: int = 0
    need: int = 16


#: pass one's windows are kept for pass two (37 bytes a record) up to this many records
#: (at most 39 MB; 200,000 short connections, 1.6 M packets, are read twice instead)
KEEP_RECORDS = 1 << 20


@dataclass
class _Compact:
    """What pass two reads of a window pass one parsed, in narrow columns (37 bytes a
    record instead of about 200): reading and parsing the file again cost more.
    Only for a single file none of whose flows needs the exact reassembler (whose
    segments would need the addresses and ports too)."""

    n: int
    frame_no: np.ndarray  # int32
    ts: np.ndarray
    half: np.ndarray  # int32
    flags: np.ndarray  # uint8
    seq: np.ndarray  # uint32
    pay_off: np.ndarray
    pay_len: np.ndarray  # int32
    missing: np.ndarray  # int32
    span: tuple[int, int, int]  # first record's offset, last record's offset and length
    python: dict[int, TcpSegment | None] | None

    @classmethod
    def of(cls, w: _Window) -> _Compact:
        span = (int(w.rec_off[0]), int(w.rec_off[-1]), int(w.cap_len[-1])) if w.n \
            else (0, 0, 0)
        # copies all (the record walk fills the window's columns again)
        return cls(w.n, w.frame_no.astype(np.int32), w.ts.copy(), w.half.astype(np.int32),
                   w.flags.astype(np.uint8), w.seq.astype(np.uint32), w.pay_off.copy(),
                   w.pay_len.astype(np.int32), w.missing.astype(np.int32), span, w.python)

    def window(self) -> _Window:
        """The window again, with the columns pass two reads (int64, as the kernels take)."""
        first, last, size = self.span
        w = _Window(self.n, self.frame_no.astype(_I64), np.array([first, last], _I64),
                    np.array([0, size], _I64), _unparsed(), self.ts, _unparsed())
        w.half, w.flags = self.half.astype(_I64), self.flags.astype(_I64)
        w.seq, w.pay_off = self.seq.astype(_I64), self.pay_off
        w.pay_len, w.missing = self.pay_len.astype(_I64), self.missing.astype(_I64)
        w.python = self.python
        return w


#: a flow still open at the end of a window is deferred to the next one (and settled
#: column-wise when it closes) while it has at most this many payload packets; longer
#: ones go to the sink, so what is carried stays small
CARRY_PACKETS = 64


@dataclass
class _Packets:
    """Payload packets of in-order flows, in capture order: where their bytes are in the
    file, when and which frame, direction (0 c2s) and flow."""

    pay_off: np.ndarray
    pay_len: np.ndarray
    ts: np.ndarray
    frame: np.ndarray
    dir: np.ndarray
    flow: np.ndarray

    def _take(self, keep: np.ndarray) -> _Packets:
        return _Packets(self.pay_off[keep], self.pay_len[keep], self.ts[keep],
                        self.frame[keep], self.dir[keep], self.flow[keep])

    def only(self, flows: np.ndarray) -> _Packets:
        return self._take(np.isin(self.flow, flows))

    def drop(self, flows: np.ndarray) -> _Packets:
        return self._take(~np.isin(self.flow, flows)) if len(flows) else self

    def then(self, later: _Packets) -> _Packets:
        return _Packets(*(np.concatenate([a, b]) for a, b in zip(
            (self.pay_off, self.pay_len, self.ts, self.frame, self.dir, self.flow),
            (later.pay_off, later.pay_len, later.ts, later.frame, later.dir, later.flow),
            strict=True)))


def _empty(n: int, dtype=_I64) -> np.ndarray:
    return np.zeros(n, dtype)


class FastEngine:
    """Decode one open :class:`CaptureFile` into a :class:`MessageSink`; see the module doc."""

    def __init__(self, capture: CaptureFile | CaptureSet, sink: MessageSink, *,
                 window: int | None = None, keep_pass_one: bool = True) -> None:
        self.capture = capture
        self.sink = sink
        self.window = window or WINDOW
        # keep what pass two needs of pass one's windows (KEEP_RECORDS at most), rather
        # than reading and parsing the file again; a streaming reader does not
        self.keep_pass_one = keep_pass_one
        self._set = isinstance(capture, CaptureSet)
        self._use(np.zeros(0, np.uint8) if isinstance(capture, CaptureSet) else
                  np.frombuffer(capture._view, dtype=np.uint8))
        # payloads of packets carried from an earlier window whose bytes are no longer in
        # ``buf`` (capture sets): their ``pay_off`` is negative, counted from this end
        self._side = np.zeros(0, np.uint8)
        # flow table (grown on demand)
        self.table = np.full(1 << 12, -1, _I64)
        self.keys = np.zeros((1 << 11, 7), np.uint64)
        self.nflows = 0
        self.last_ts: int | None = None
        self.reassembler = Reassembler(_SlowSink(self))
        # first frame of each connection: per fast flow (-1: none opened; sized in pass
        # two), and of the exact reassembler's connections by provisional id
        self.first_frame = np.zeros(0, _I64)
        self.slow_first_frame: dict[int, int] = {}
        self._reread_from = _NOWHERE  # file offset of the first carried packet read again
        # where pass two's lines joined in time order go to be decoded (None: decoded
        # in line, as a streaming reader's steps do)
        self._hand_lines: Callable[[_LinesJob], None] | None = None
        self.bulk_tables: list[pa.Table | None] = []  # None: a place held (run)

    # ------------------------------------------------------------ records
    def _use(self, buf: np.ndarray) -> None:
        """Read packets from ``buf`` (the file's map, or a set's window) from now on."""
        self.buf = buf
        self._view = buf.data
        self._base_addr = buf.ctypes.data if len(buf) else 0

    @property
    def _file(self) -> CaptureFile:
        """The capture, which is one file here (a set has windows and records of its own)."""
        cap = self.capture
        assert isinstance(cap, CaptureFile)
        return cap

    @property
    def _capture_set(self) -> CaptureSet:
        """The capture, which is a set here (merged packets, copied windows)."""
        cap = self.capture
        assert isinstance(cap, CaptureSet)
        return cap

    def _windows(self, record_problems: bool, reuse: bool = False) -> Iterator[_Window]:
        """The capture's windows of records. ``reuse``: the caller holds no view of a
        window's columns once it asks for the next one (a pcap walk then fills the
        same columns again)."""
        if self._set:
            yield from self._set_windows()
            return
        cap = self._file
        if cap.format == "pcap" and cap._pcap_wanted:
            yield from self._pcap_windows(record_problems, reuse)
        else:
            yield from self._generic_windows()

    def _pcap_windows(self, record_problems: bool, reuse: bool) -> Iterator[_Window]:
        cap = self._file
        cap._start()
        record = cap._pcap_record
        assert record is not None  # _start() chose it for a pcap file
        big = record.format.startswith(">")
        mult = cap._pcap_mult
        linktype = cap._pcap_linktype
        size = len(self.buf)
        off, frame0, need = 24, 0, 16
        progress = cap.progress
        walk: RecordWalk | None = None
        walks: Iterator[Walked]
        with contextlib.ExitStack() as stack:
            if reuse:  # ahead, on the second core, in two sets of columns
                walk = stack.enter_context(
                    RecordWalk(self.buf, off, size, big, mult, linktype, self.window))
                walks = walk
            else:  # in line, fresh columns a window (the caller may keep views of them)
                walks = walk_in_line(self.buf, off, size, big, mult, linktype, self.window)
            for walked in walks:
                w = self._indexed(walked, linktype, frame0)
                n, off, need = w.n, w.rec_off_end, w.need
                if n:
                    if record_problems:
                        for i in np.flatnonzero(w.cap_len < w.orig_len):
                            cap._snaplen(frame0 + 1 + int(i), int(w.cap_len[i]),
                                         int(w.orig_len[i]))
                    frame0 += n
                    yield w
                    if progress:
                        progress(off)
                if walk is not None:
                    del w
                    walk.give_back(walked)
        if record_problems:
            cap.frames, cap._stop, cap._need = frame0, off, need
            cap._stopped(off, size, 0, True, progress)
        else:
            cap.frames = frame0

    def _indexed(self, walked: Walked, linktype: int, frame0: int) -> _Window:
        """The window the record walk indexed and parsed (:func:`kernels.index_pcap`), its
        packets' flows found up to the first one left to Python
        (:func:`kernels.ipv4_halves`); ``_parse`` does the rest."""
        n = walked.n
        status, src, dst, sport, dport, half = (walked.status, walked.src, walked.dst,
                                                walked.sport, walked.dport, walked.half)
        looked = 0
        while True:  # the table grows where a new flow does not fit
            self.nflows, looked, full = K.ipv4_halves(status, src, sport, dst, dport, looked,
                                                      n, half, self.table, self.keys,
                                                      self.nflows)
            if not full:
                break
            self._grow()
        w = _Window(n, np.arange(frame0 + 1, frame0 + 1 + n, dtype=_I64), walked.rec_off[:n],
                    walked.cap_len[:n], walked.orig_len[:n], walked.ts[:n],
                    np.full(n, linktype, _I64))
        w.status, w.sport, w.dport, w.seq, w.ack = (status[:n], sport[:n], dport[:n],
                                                    walked.seq[:n], walked.ack[:n])
        w.flags, w.pay_off, w.pay_len, w.missing = (walked.flags[:n], walked.pay_off[:n],
                                                    walked.pay_len[:n], walked.missing[:n])
        w.s_lo, w.d_lo, w.half = src[:n].view(np.uint64), dst[:n].view(np.uint64), half[:n]
        w.looked, w.rec_off_end, w.need = looked, walked.end, walked.need
        return w

    def _generic_windows(self) -> Iterator[_Window]:
        """pcapng (and anything the record loops know): the Python record loop, indexed."""
        cap = self._file
        cap._start()
        v = cap._view
        if cap.format == "pcap":
            records = cap._pcap_records(v, _Slices(), 24, cap.size, at_end=True,
                                        progress=cap.progress, step=cap._progress_step())
        else:
            records = cap._pcapng_blocks(v, _Slices(), 0, cap.size, at_end=True,
                                         progress=cap.progress, step=cap._progress_step())
        batch: list[RawPacket] = []
        for raw in records:
            batch.append(raw)
            if len(batch) >= self.window:
                yield self._index(batch)
                batch = []
        if batch:
            yield self._index(batch)

    def _set_windows(self) -> Iterator[_Window]:
        """A capture set: its merged packets, each window's bytes copied into one buffer
        (the files stay mapped; the pages read are let go as windows are made)."""
        cap = self._capture_set
        batch: list[RawPacket] = []
        for raw in cap:
            batch.append(raw)
            if len(batch) >= self.window:
                yield self._copied(batch)
                batch = []
        if batch:
            yield self._copied(batch)

    def _copied(self, batch: list[RawPacket]) -> _Window:
        w = self._index(batch, offsets=False)
        w.rec_off = np.cumsum(w.cap_len) - w.cap_len
        w.buf = np.frombuffer(b"".join([r.data for r in batch]), np.uint8)
        self._capture_set.release_consumed()
        return w

    @staticmethod
    def _index(batch: list[RawPacket], offsets: bool = True) -> _Window:
        """The window of records ``batch``: ``offsets`` reads each record's offset from
        its ``data`` (a (start, stop) pair there), else they are left for the caller."""
        n = len(batch)
        frames = np.fromiter((r.frame for r in batch), _I64, n)
        w = _Window(n, frames,
                    np.fromiter((r.data[0] for r in batch), _I64, n) if offsets
                    else np.zeros(n, _I64),
                    np.fromiter((r.cap_len for r in batch), _I64, n),
                    np.fromiter((r.orig_len for r in batch), _I64, n),
                    np.fromiter((r.ts_ns for r in batch), _I64, n),
                    np.fromiter((r.linktype for r in batch), _I64, n))
        return w

    # ------------------------------------------------------------ headers
    def _parse(self, w: _Window, packet_problems: bool) -> None:
        if w.buf is not None:
            self._use(w.buf)
        n = w.n
        if w.looked < 0:  # not parsed as it was indexed
            w.status = np.empty(n, np.int8)
            src, dst = _empty(n), _empty(n)
            w.sport, w.dport, w.seq, w.ack = _empty(n), _empty(n), _empty(n), _empty(n)
            w.flags, w.pay_off, w.pay_len, w.missing = (_empty(n), _empty(n), _empty(n),
                                                        _empty(n))
            K.parse_packets(self.buf, w.linktype, w.rec_off, w.cap_len, n, w.status, src, dst,
                            w.sport, w.dport, w.seq, w.ack, w.flags, w.pay_off, w.pay_len,
                            w.missing)
            w.s_lo, w.d_lo = src.view(np.uint64), dst.view(np.uint64)
            w.half = np.full(n, -1, _I64)
        # IPv4 (family 0) in the low words; pages of the zero arrays stay unwritten
        w.fam = np.zeros(n, np.uint64)
        w.s_hi = np.zeros(n, np.uint64)
        w.d_hi = np.zeros(n, np.uint64)
        tcp = w.status == K.PKT_TCP
        w.python = {}
        frames = w.frame_no
        for i in np.flatnonzero(~tcp).tolist():
            o, c = int(w.rec_off[i]), int(w.cap_len[i])
            raw = RawPacket(int(frames[i]), int(w.ts[i]), int(w.linktype[i]),
                            self._view[o:o + c], int(w.orig_len[i]), c)
            r = decode_tcp(raw)
            seg: TcpSegment | None = None
            if isinstance(r, TcpSegment):
                seg = r
            elif r.problem:
                if packet_problems:
                    self.capture.add_problem(raw.frame, r.kind, r.detail)
                seg = r.segment
            if seg is None:
                continue
            w.python[i] = seg
            self._store_segment(w, i, seg)
            tcp[i] = True
        idx = np.flatnonzero(tcp[max(w.looked, 0):]) + max(w.looked, 0)
        if len(idx):
            self._halves(w, idx)

    def _store_segment(self, w: _Window, i: int, seg: TcpSegment) -> None:
        """Put a segment decode_tcp found into the window's columns."""
        for ip, hi_arr, lo_arr in ((seg.src_ip, w.s_hi, w.s_lo), (seg.dst_ip, w.d_hi, w.d_lo)):
            v = int.from_bytes(ip, "big")
            hi_arr[i] = v >> 64
            lo_arr[i] = v & 0xFFFFFFFFFFFFFFFF
        w.fam[i] = 0 if len(seg.src_ip) == 4 else 6
        w.sport[i], w.dport[i] = seg.src_port, seg.dst_port
        w.seq[i], w.ack[i], w.flags[i] = seg.seq, seg.ack, seg.flags
        w.missing[i] = seg.missing
        payload = seg.payload
        w.pay_len[i] = len(payload)
        w.pay_off[i] = self._offset_of(payload)

    def _offset_of(self, payload) -> int:
        if not len(payload):
            return 0
        arr = np.frombuffer(payload, dtype=np.uint8)
        return arr.ctypes.data - self._base_addr

    def _halves(self, w: _Window, idx: np.ndarray) -> None:
        done = 0
        while done < len(idx):
            self.nflows, done = K.lookup_halves(
                self.table, self.keys, w.fam, w.s_hi, w.s_lo, w.sport, w.d_hi, w.d_lo, w.dport,
                idx, done, w.half, self.nflows)
            if done < len(idx):
                self._grow()

    def _grow(self) -> None:
        keys = np.zeros((self.keys.shape[0] * 2, 7), np.uint64)
        keys[: self.keys.shape[0]] = self.keys
        self.keys = keys
        self.table = np.full(len(self.table) * 2, -1, _I64)
        K.rehash(self.table, self.keys, self.nflows)

    # ------------------------------------------------------------ flows
    def _new_flow_state(self, size: int) -> dict[str, np.ndarray]:
        return {
            "fstate": _empty(size, np.int8), "fa": np.full(size, -1, _I64),
            "hbase": _empty(2 * size, np.int8), "hnxt": _empty(2 * size),
            "hfin": _empty(2 * size, np.int8), "hisn": _empty(2 * size),
            "fclose": _empty(size, np.int8), "fclose_ts": _empty(size),
            "fclose_frame": _empty(size), "ffirst": np.full(size, -1, _I64),
            "opened": _empty(size, np.bool_),
        }

    @staticmethod
    def _fit(state: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
        """Grow the per-flow arrays to at least ``size`` flows, keeping their values."""
        have = len(state["fstate"])
        if size <= have:
            return state
        new = max(size, 2 * have)
        out = {}
        for name, arr in state.items():
            per = len(arr) // have if have else (2 if name.startswith("h") else 1)
            fill = -1 if name in ("fa", "ffirst") else 0
            grown = np.full(new * per, fill, arr.dtype)
            grown[: len(arr)] = arr
            out[name] = grown
        return out

    def _track(self, w: _Window, state: dict[str, np.ndarray], slow_known: np.ndarray,
               emit: bool) -> np.ndarray:
        pkt_dir = np.full(w.n, -1, np.int8) if emit else np.zeros(0, np.int8)
        K.track_flows(w.half, w.flags, w.seq, w.pay_len, w.missing, w.ts,
                      w.frame_no, w.n, state["fstate"], state["fa"],
                      state["hbase"], state["hnxt"], state["hfin"], state["hisn"],
                      state["fclose"], state["fclose_ts"], state["fclose_frame"],
                      state["ffirst"], slow_known, pkt_dir, emit)
        if emit:  # flows first seen in this window, and the window index of that packet
            new = np.flatnonzero((state["ffirst"] >= 0) & ~state["opened"])
            state["opened"][new] = True
            self._opened, self._opened_at = new, state["ffirst"][new]
        return pkt_dir

    # ------------------------------------------------------------ run
    def run(self) -> None:
        """Both passes; afterwards ``sink.conns`` has every connection, ids provisional.
        What the passes kept per flow goes then (the flow table and the column-wise
        path's state: 38 MB for 200,000 short connections): a whole run is read after
        only for ``first_frame``, ``bulk_tables``, ``settled`` and the reassembler.
        (A streaming reader drives ``steps`` instead, and keeps it between them.)

        Once a window of pass two has lines joined in time order, the rest of
        pass two runs on a worker thread and hands each window's lines to this
        thread, which decodes them meanwhile (:mod:`~camprotool.capture.fast.handover`):
        a first read of 185,000 messages of 6,000 connections takes 20 ms less (of 175).
        Until then it runs here: a capture of short connections with no complete line
        has nothing to decode beside it, and what pass two keeps of those connections
        (rows of unfinished frames, settled records: 72 MB for 200,000) is best made
        on the thread whose memory pass one freed (glibc's arena of the thread).
        """
        kept = self._pass_one()
        state, slow, windows = self._pass_two_start(kept)
        steps = self._pass_two_windows(state, slow, windows, kept.found)
        first: list[tuple[int, _LinesJob]] = []  # the first lines, decoded beside the rest

        def held(job: _LinesJob) -> None:
            if len(job.c_pkt):
                first.append((self._hold_place(), job))
            else:
                self._decode_here(job)

        self._hand_lines = held
        last = False
        for last in steps:
            if first or last:
                break
        self._hand_lines = None
        if last:  # nothing to decode beside: one window, or no complete line but there
            fell_back: set[tuple[int, int]] = set()
            for slot, job in first:
                fell_back |= self._decode_into(slot, job)
        else:
            fell_back = self._decode_beside(steps, first)
        self.bulk_tables = [t for t in self.bulk_tables if t is not None]
        if fell_back and self.sink.dialect is None:
            # the connections settled since were worded as ``line``: a flow's lines
            # are all handed before it settles, so every re-read is known now
            self._fell_back |= fell_back
            for batch in self.settled:
                self._mark_gbk(batch.conn, batch.dialect)
        self._forget_flows()

    def _decode_beside(self, steps: Iterator[bool], first: list[tuple[int, _LinesJob]]
                       ) -> set[tuple[int, int]]:
        """The rest of pass two (``steps``) on a worker, the lines it joins decoded here,
        ``first`` (lines pass two joined here, and their places) while it starts.
        Returns the (flow, direction) whose frames decoding re-read as GBK."""
        def produce(hand: Callable[[tuple[int, _LinesJob]], None]) -> None:
            self._hand_lines = lambda job: hand((self._hold_place(), job))
            for _ in steps:
                handover.check()  # between windows: a stop need not wait for a job

        def in_order(handover: Handover[tuple[int, _LinesJob]]
                     ) -> Iterator[tuple[int, _LinesJob]]:
            while first:  # decoded while the worker makes the next window's
                yield first.pop(0)
            yield from handover.jobs()

        fell_back: set[tuple[int, int]] = set()
        handover = Handover(produce, name="camprotool-pass-two")
        with handover:
            for slot, job in in_order(handover):
                fell_back |= self._decode_into(slot, job)
                del job  # its buffers go back to the worker's arena before it makes more
        self._hand_lines = None
        return fell_back

    def _hold_place(self) -> int:
        """A place in ``bulk_tables`` for rows decoded later (None until then)."""
        self.bulk_tables.append(None)
        return len(self.bulk_tables) - 1

    def _decode_into(self, slot: int, job: _LinesJob) -> set[tuple[int, int]]:
        """Decode a window's lines into their place in ``bulk_tables``; returns the
        (flow, direction) whose frames were re-read as GBK."""
        table, fell_back = _decoded_lines(job)
        if table.num_rows:
            self.bulk_tables[slot] = table
        return fell_back

    def _decode_here(self, job: _LinesJob) -> None:
        """Decode a window's lines now, on this thread."""
        table, fell_back = _decoded_lines(job)
        self._fell_back |= fell_back
        if table.num_rows:
            self.bulk_tables.append(table)

    def _forget_flows(self) -> None:
        """Drop the per-flow state ``steps`` keeps between windows."""
        for name in ("table", "keys", "_state_fa", "_done", "_verdict", "_streaming",
                     "_ignored", "_bytes", "_base", "_open_ts", "_deferred", "_fell_back",
                     "_carry", "_tails", "_tail_data", "_side", "_slot"):
            if hasattr(self, name):
                delattr(self, name)

    def steps(self) -> Iterator[bool]:
        """Both passes, pausing after each window of pass two (True after the last, once
        every connection is closed): a streaming reader takes the rows decoded so far."""
        kept = self._pass_one()
        yield from self._pass_two_windows(*self._pass_two_start(kept), kept.found)

    def _pass_one(self) -> _PassOne:
        """Which flows are in order (the reader's problems are collected here), and
        what pass two may take of pass one's windows rather than read them again."""
        K.warm_up()
        state = self._new_flow_state(1024)
        empty_slow = np.zeros(0, np.int8)
        # a capture of one window is not read twice: its window is kept (no walk fills
        # its columns again, as there is no other), with the file span to let go if
        # another comes; the windows' columns are not held past their turn (reuse)
        first: _Window | None = None
        first_span: tuple[int, int] | None = None
        # what pass two needs of each window, in narrow columns (see _Compact)
        compact: list[_Compact] | None = [] if self.keep_pass_one and not self._set else None
        records = 0
        for w in self._windows(record_problems=True, reuse=True):
            self._parse(w, packet_problems=True)
            state = self._fit(state, self.nflows)
            self._track(w, state, empty_slow, emit=False)
            if compact is not None:
                compact.append(_Compact.of(w))
                if records + w.n > KEEP_RECORDS:
                    compact = None
            if not records:
                first, first_span = w, self._span(w)
            else:  # more than one window: pass two reads the file again
                if first_span is not None:
                    self._release_span(*first_span)
                first = first_span = None
                self._release_span(*self._span(w))
            records += w.n
            del w
        slow = (state["fstate"][: self.nflows] == K.FLOW_SLOW).astype(np.int8)
        del state
        cap = self.capture
        return _PassOne(slow, first, compact,
                        (cap.problems, cap.counts, cap.skipped, cap.frames))

    def _pass_two_start(self, kept: _PassOne) -> tuple[dict[str, np.ndarray], np.ndarray,
                                                        Iterator[tuple[_Window, bool]]]:
        """Pass two's state per flow, and its windows (to be walked). Made on the thread
        that read pass one, whose per-flow state it reuses the memory of (made on the
        worker, in another glibc arena, it stacked on it: 24 MB more at the peak of
        200,000 connections)."""
        slow, first, compact = kept.slow, kept.first, kept.compact
        kept.first = kept.compact = None
        state = self._fit(self._new_flow_state(max(self.nflows, 1)), self.nflows)
        self._state_fa = state["fa"]
        slow = np.concatenate([slow, np.zeros(len(state["fstate"]) - len(slow), np.int8)])
        self._done = np.zeros(len(state["fstate"]), bool)  # closed in the sink (or settled)
        self.first_frame = np.full(len(state["fstate"]), -1, _I64)
        self._open_ts = np.zeros(len(state["fstate"]), _I64)  # first packet's time, per flow
        self._carry: _Packets | None = None  # packets of deferred flows
        self._deferred = np.zeros(0, _I64)
        flows = len(state["fstate"])
        # flows decoded column-wise window after window (their verdict), until they close
        self._verdict = np.full(flows, bulkflows.V_NONE, np.int8)
        self._slot = np.full(flows, -1, _I64)  # scratch of _decide_first, -1 between calls
        self._streaming = np.zeros(flows, bool)
        self._ignored = np.zeros(flows, bool)  # not ours: their packets are dropped
        self._bytes = np.zeros((flows, 2), _I64)  # stream bytes so far, per direction
        self._base = np.zeros((flows, 2), _I64)  # stream offset of the bytes carried over
        self._fell_back: set[tuple[int, int]] = set()
        # what streaming flows carry into the next window: the bytes after their last
        # complete line, as packets of their own (negative offsets, into ``_tail_data``)
        self._tails: _Packets | None = None
        self._tail_data = np.zeros(0, np.uint8)
        self.bulk_tables = []
        self.settled: list[SettledBatch] = []
        if first is not None:
            windows = iter([(first, True)])
        elif compact is not None and not slow.any():
            windows = ((c.window(), last) for c, last in _with_last(_drained(compact)))
        else:
            windows = ((self._parsed(w), last) for w, last in
                       _with_last(self._windows(record_problems=False)))
        return state, slow, windows

    def _pass_two_windows(self, state: dict[str, np.ndarray], slow: np.ndarray,
                          windows: Iterator[tuple[_Window, bool]], found: tuple
                          ) -> Iterator[bool]:
        """Pass two's windows, each delivered (see :meth:`steps`)."""
        cap = self.capture
        for w, last in windows:
            pkt_dir = self._track(w, state, slow, emit=True)
            self._deliver(w, state, pkt_dir, last)
            if not last:
                yield False
        cap.problems, cap.counts, cap.skipped, cap.frames = found
        self._finish(state)
        yield True

    def _parsed(self, w: _Window) -> _Window:
        self._parse(w, packet_problems=False)
        return w

    # ------------------------------------------------------------ pass two
    def _deliver(self, w: _Window, state: dict[str, np.ndarray], pkt_dir: np.ndarray,
                 last: bool) -> None:
        frames = w.frame_no
        tcp = np.flatnonzero(w.half >= 0)
        if len(tcp):
            i = int(tcp[-1])
            self.last_ts = int(w.ts[i])
        fstate = state["fstate"]
        # packets of the exact reassembler's flows (a look at each packet only if it has some)
        slow_packets = tcp[fstate[w.half[tcp] >> 1] == K.FLOW_SLOW] \
            if (fstate == K.FLOW_SLOW).any() else tcp[:0]
        fast = fstate[self._opened] != K.FLOW_SLOW
        opened, at = self._opened[fast], self._opened_at[fast]
        self.first_frame[opened] = frames[at]
        self._open_ts[opened] = w.ts[at]
        # flows deferred from earlier windows come first
        carried = len(self._carry.flow) if self._carry is not None else 0
        packets = self._delivered(w, pkt_dir, self._carry)
        if self._carry is not None:
            in_file = self._carry.pay_off[self._carry.pay_off >= 0]
            if len(in_file):
                self._reread_from = int(in_file.min())
        # Flows not yet in the sink (opened here, or deferred) whose whole life is known
        # now (closed here, or the capture ends) are decided column-wise; one still open
        # is decided on what it has: once detection settles it, it streams on, window
        # after window (its rows come out in time order with the others'); one still
        # undecided is carried to the next window while short, else opens in the sink.
        fresh = _union(opened, self._deferred)
        state_now = fstate[fresh]
        ends_here = (state_now == K.FLOW_CLOSED) | (last & (state_now == K.FLOW_OPEN))
        counts = np.bincount(packets.flow, minlength=len(fstate))[fresh] if len(packets.flow) \
            else np.zeros(len(fresh), _I64)
        bulk = self._bulk_ok()
        open_now = ~ends_here & (state_now == K.FLOW_OPEN) & bulk
        has_bytes = counts > 0
        waiting_here = open_now & ~has_bytes  # no byte yet: nothing to decide on
        whole_here = ends_here & has_bytes & bulk
        partial_here = open_now & has_bytes
        whole, partial = fresh[whole_here], fresh[partial_here]
        self._deferred, self._carry = fresh[waiting_here], None
        carry_from = self._side
        streams = np.flatnonzero(self._streaming)
        s_state = fstate[streams]
        s_closing = streams[(s_state == K.FLOW_CLOSED) | (last & (s_state == K.FLOW_OPEN))]
        for f in fresh[~(whole_here | partial_here | waiting_here)].tolist():
            self._open_fast(f)  # the sink decodes them
        if self._set:
            self._side = np.zeros(0, np.uint8)
        elif len(whole) or len(partial):
            # deferred flows with no packet since: detection would read what it read
            new = np.bincount(packets.flow[carried:], minlength=len(fstate))[fresh] \
                if carried else counts
            stale = fresh[partial_here & (new == 0)]
            decided = self._decide_first(packets, whole, partial, counts, fresh, stale)
            if decided is not None:  # the new flows stream on with the others (or wait)
                packets, whole, partial = decided, fresh[:0], fresh[:0]
                streams = np.flatnonzero(self._streaming)
                s_state = fstate[streams]
                s_closing = streams[(s_state == K.FLOW_CLOSED)
                                    | (last & (s_state == K.FLOW_OPEN))]
        if not len(whole) and not len(partial) and self._in_time_order(packets):
            self._lines_in_time_order(w, packets, s_closing)
            if len(s_closing):
                self._settle_closed(state, s_closing)
            self._closes(state, skip=self._deferred)
            for i in slow_packets.tolist():
                self.reassembler.add(self._segment(w, i, frames))
            return
        if self._tails is not None:  # what streaming flows carried over goes first
            packets.pay_off[packets.pay_off < 0] -= len(self._tail_data)
            packets = self._tails.then(packets)
            carry_from = np.concatenate([carry_from, self._tail_data])
            self._tails, self._tail_data = None, np.zeros(0, np.uint8)
        groups = self._gather(w, packets, carry_from)
        done_here: set[int] = set()
        if groups is not None:
            here = np.intersect1d(streams, groups.flow)
            flows = _union(_union(whole, partial), here)
            if len(flows):
                done_here, undecided = self._column_wise(state, groups, flows, whole,
                                                         s_closing, packets, last)
                self._defer(undecided, packets, counts, fresh, carry_from)
            self._fast_data(packets, groups, set(whole.tolist()) | set(partial.tolist()))
        quiet = np.setdiff1d(s_closing, np.fromiter(done_here, _I64, len(done_here)))
        if len(quiet):  # streams that closed with nothing left to decode
            self._settle_closed(state, quiet)
        self._closes(state, skip=self._deferred)
        for i in slow_packets.tolist():
            self.reassembler.add(self._segment(w, i, frames))

    def _delivered(self, w: _Window, pkt_dir: np.ndarray, first: _Packets | None) -> _Packets:
        """The window's delivered packets after ``first``'s (if any): each one's bytes
        counted for its flow (``_bytes``), those of ignored flows then left out."""
        nc = len(first.flow) if first is not None else 0
        size = nc + int(np.count_nonzero(pkt_dir >= 0))  # not the window's: memory peaks here
        cols = [np.empty(size, _I64) for _ in range(6)]
        if first is not None:
            for col, have in zip(cols, (first.pay_off, first.pay_len, first.ts, first.frame,
                                        first.dir, first.flow), strict=True):
                col[:nc] = have
        end = K.delivered_packets(pkt_dir, w.half, w.pay_off, w.pay_len, w.ts, w.frame_no,
                                  self._ignored, self._bytes, nc, *cols)
        return _Packets(*(col[:end] for col in cols))

    def _in_time_order(self, p: _Packets) -> bool:
        """Can the window's lines be joined in capture order? Every packet's flow
        streams (decided earlier), and packet times never go back."""
        if not len(p.flow) or not self._streaming[p.flow].all():
            return False
        if np.any(p.pay_off < 0) or np.any(p.ts[1:] < p.ts[:-1]):
            return False
        tails = self._tails
        return tails is None or not len(tails.ts) or int(tails.ts.max()) <= int(p.ts[0])

    def _lines_in_time_order(self, w: _Window, packets: _Packets, closing: np.ndarray) -> None:
        """Decode a window of streaming flows with their lines joined in the order they
        complete (:func:`kernels.lines_in_time_order`); what each stream has after its
        last newline is carried on, or reported if the stream closes here."""
        p, side = packets, self._tail_data
        if self._tails is not None:
            p = self._tails.then(packets)
        self._tails, self._tail_data = None, np.zeros(0, np.uint8)
        n = len(p.flow)
        total = int(p.pay_len.sum())
        out, tail_out = np.empty(total, np.uint8), np.empty(total, np.uint8)
        prev, chain, c_pkt, c_end, c_off = (np.empty(n, _I64) for _ in range(5))
        t_stream, t_start, t_len, t_last = (np.empty(n, _I64) for _ in range(4))
        o, c, t = K.lines_in_time_order(self.buf, side, p.pay_off, p.pay_len, p.flow * 2 + p.dir,
                                        self._base.reshape(-1), prev, chain, out, c_pkt, c_end,
                                        c_off, tail_out, t_stream, t_start, t_len, t_last)
        del prev, chain
        self._release(w)
        job = _LinesJob(out[:o], c_pkt[:c], c_end[:c], c_off[:c], p.flow, p.dir, p.ts, p.frame,
                        self.sink.dialect, self._verdict == bulkflows.DECODE)
        del out
        if self._hand_lines is not None:
            self._hand_lines(job)  # decoded on the caller's thread meanwhile (run)
        else:
            self._decode_here(job)
        if not t:
            return
        t_stream, t_start, t_len, t_last = t_stream[:t], t_start[:t], t_len[:t], t_last[:t]
        flow, direction = t_stream >> 1, t_stream & 1
        ends = np.isin(flow, closing)
        if ends.any():
            at = np.flatnonzero(ends)
            end = self._base.reshape(-1)[t_stream[at]] + t_len[at]
            self.bulk_tables.append(bulkflows.tail_rows(
                tail_out, t_start[at], t_len[at], end, flow[at], direction[at],
                p.ts[t_last[at]], p.frame[t_last[at]], self.sink.dialect))
        keep = np.flatnonzero(~ends)
        if len(keep):
            self._carry_on(tail_out, t_start[keep], t_len[keep], t_last[keep], p,
                           direction[keep], flow[keep])

    def _bulk_ok(self) -> bool:
        """The column-wise path knows ``line`` streams (and detection) only."""
        d = self.sink.dialect
        return not self.sink.ports and (d is None or d.is_line)

    def _open_fast(self, f: int) -> None:
        k = self.keys[int(self._state_fa[f])]
        fam = int(k[0])
        a_ip = _ip_bytes(fam, int(k[1]), int(k[2]))
        b_ip = _ip_bytes(fam, int(k[4]), int(k[5]))
        ts, frame = int(self._open_ts[f]), int(self.first_frame[f])
        self.sink.on_open(ConnectionInfo(f, a_ip, int(k[3]), b_ip, int(k[6]), True, ts, frame))

    def _rehome(self, carry: _Packets, side: np.ndarray) -> np.ndarray:
        """A capture set's next window has other bytes: copy the payloads of the packets
        carried over into a buffer of their own (negative offsets count from its end)."""
        dest = np.cumsum(carry.pay_len) - carry.pay_len
        data = np.empty(int(carry.pay_len.sum()), np.uint8)
        K.scatter_sided(self.buf, side, carry.pay_off, carry.pay_len, dest, data)
        carry.pay_off = dest - len(data)
        return data

    def _decide_first(self, p: _Packets, whole: np.ndarray, partial: np.ndarray,
                      counts: np.ndarray, fresh: np.ndarray,
                      stale: np.ndarray) -> _Packets | None:
        """Detect the window's new flows (``whole``: ending here, ``partial``: still open)
        on what detection reads alone (:func:`bulkflows.detect`), so that the decided
        ones stream at once and every line of the window is decoded in one pass, in
        capture order (no decoding of all streams and then dropping the undecided).

        Returns the packets left to decode (less those of flows ignored, or carried
        to the next window undecided), or None, changing nothing, where the general
        path must run: packets of flows the sink decodes, or a flow detection hands
        to the sink (FALLBACK, or undecided and too long to carry). ``stale``: open flows
        carried undecided with no packet since (detection would read what it read:
        they stay undecided).
        """
        flows = _union(whole, partial)
        slot = self._slot  # each flow's position in ``flows`` (-1: not a new flow)
        slot[flows] = np.arange(len(flows))
        at = slot[p.flow]
        slot[flows] = -1
        mine = at >= 0
        if not (mine | self._streaming[p.flow]).all() or np.any(p.pay_off[mine] < 0):
            return None
        verdict = np.full(len(flows), bulkflows.V_NONE, np.int64)
        todo = np.flatnonzero(~np.isin(flows, stale)) if len(stale) else np.arange(len(flows))
        if len(todo) == len(flows):
            verdict = self._detect(p, flows, at, whole)
        elif len(todo):
            place = np.full(len(flows) + 1, -1, _I64)  # the last: where -1 (not new) reads
            place[todo] = np.arange(len(todo))
            verdict[todo] = self._detect(p, flows[todo], place[at], whole)
        undecided = flows[verdict == bulkflows.V_NONE]
        if (verdict == bulkflows.FALLBACK).any() or (
                counts[np.searchsorted(fresh, undecided)] > CARRY_PACKETS).any():
            return None
        decoded = (verdict == bulkflows.DECODE) | (verdict == bulkflows.DECODE_UTF8)
        self._verdict[flows[decoded]] = verdict[decoded]
        self._streaming[flows[decoded]] = True
        ignoring = verdict == bulkflows.IGNORE
        ignored = flows[ignoring]
        self._done[ignored] = self._ignored[ignored] = True
        self.sink.ignored += len(ignored)
        waiting = verdict == bulkflows.V_NONE
        if not len(ignored) and not len(undecided):
            return p
        if len(undecided):
            self._deferred = _union(self._deferred, undecided)
            self._carry = p._take(waiting[at] & mine)
        # ``at`` is -1 for packets of streaming flows: ``mine`` masks what that reads
        return p._take(~((ignoring | waiting)[at] & mine))

    def _detect(self, p: _Packets, flows: np.ndarray, at: np.ndarray,
                whole: np.ndarray) -> np.ndarray:
        """Verdicts of ``flows`` (sorted) on their packets in ``p`` (``at``: each packet's
        flow's position in ``flows``, -1 for others; ``whole``: the flows that end here).
        Most flows are settled by their first attempt: that is tried on the few packets
        up to it (:func:`kernels.first_attempt_packets`, a walk in capture order), and
        a flow's bytes are read again in full only if it has packets after it and that
        attempt left it open. A flow with no packet after it is tried as a whole at
        once (the close's attempt too, if it ends here)."""
        sel = np.empty(len(at), _I64)
        more = np.zeros(len(flows), np.bool_)
        k = K.first_attempt_packets(at, p.dir, p.pay_len, len(flows), int(K.DETECT_AT[0]),
                                    sel, more)
        ends_here = np.zeros(len(flows), bool)  # ``whole`` is sorted, and may hold others
        at_whole = np.searchsorted(flows, whole)
        hit = at_whole < len(flows)
        hit[hit] = flows[at_whole[hit]] == whole[hit]
        ends_here[at_whole[hit]] = True
        verdict = self._detect_on(p, flows, sel[:k], ends_here & ~more)
        again = np.flatnonzero((verdict == bulkflows.V_NONE) & more)
        if len(again):
            rest = flows[again]
            verdict[again] = self._detect_on(p, rest, np.flatnonzero(np.isin(p.flow, rest)),
                                             ends_here[again])
        return verdict

    def _detect_on(self, p: _Packets, flows: np.ndarray, sel: np.ndarray,
                   closing: np.ndarray) -> np.ndarray:
        """:func:`bulkflows.detect` for ``flows`` on their packets ``p[sel]`` (``sel``
        ascending: capture order); ``closing``: which flows end here."""
        groups = self._groups(p, sel, np.zeros(0, np.uint8))
        by_flow = sel[np.argsort(p.flow[sel], kind="stable")]  # capture order kept
        return bulkflows.detect(groups, flows, closing, p.flow[by_flow], p.dir[by_flow],
                                p.pay_len[by_flow], self.sink.dialect)

    def _gather(self, w: _Window, p: _Packets, side: np.ndarray) -> bulkflows.Groups | None:
        """The payloads of packets ``p``, copied per (flow, direction) in capture order
        (``side``: where carried packets with a negative offset are)."""
        if not len(p.flow):
            self._release(w)
            return None
        groups = self._groups(p, np.arange(len(p.flow)), side)
        self._release(w)
        return groups

    def _groups(self, p: _Packets, sel: np.ndarray, side: np.ndarray) -> bulkflows.Groups:
        """The payloads of packets ``p[sel]`` (``sel`` ascending: capture order), copied
        per (flow, direction); ``order`` holds indices into ``p``."""
        grouped = np.argsort(p.flow[sel] * 2 + p.dir[sel], kind="stable")
        by_group = sel[grouped]
        lens = p.pay_len[by_group]
        data = np.empty(int(lens.sum()), np.uint8)
        dest = np.empty(len(sel), _I64)
        dest[grouped] = np.cumsum(lens) - lens
        off, size = p.pay_off[sel], p.pay_len[sel]  # read in capture order: file order
        if len(side):  # carried bytes (a set's, or streams' tails) have negative offsets
            K.scatter_sided(self.buf, side, off, size, dest, data)
        else:
            K.scatter(self.buf, off, size, dest, data)
        key = p.flow[by_group] * 2 + p.dir[by_group]
        cut = np.flatnonzero(np.diff(key)) + 1
        first = np.concatenate([[0], cut]).astype(_I64)
        stop = np.concatenate([cut, [len(by_group)]]).astype(_I64)
        return bulkflows.Groups(data, by_group, np.cumsum(lens), key[first] >> 1,
                                key[first] & 1, first, stop)

    def _release(self, w: _Window) -> None:
        """The window's payloads are copied out: let the kernel drop the file's pages we
        read (they stay in the page cache), so resident memory follows the window.

        The pages of packets carried from earlier windows (flows not decided yet) go
        too: reading them again with this window's mapped them back (200,000 short
        connections, open up to 30 s each: 110 MB of the file resident at the end)."""
        if self._set or not w.n:
            return  # a set's window buffer goes with it
        lo, hi = self._span(w)
        self._release_span(min(lo, self._reread_from), hi)
        self._reread_from = _NOWHERE

    def _span(self, w: _Window) -> tuple[int, int]:
        """Where the window's records are in the file (0, 0 for none)."""
        if not w.n:
            return 0, 0
        return int(w.rec_off[0]), int(w.rec_off[-1] + w.cap_len[-1])

    def _release_span(self, lo: int, hi: int) -> None:
        """Let the kernel drop the file's whole pages from ``lo`` to ``hi``."""
        if self._set:
            return
        mm = self._file._mmap
        if mm is not None:
            drop_file_pages(mm, lo, hi - lo)

    def _column_wise(self, state: dict[str, np.ndarray], groups: bulkflows.Groups,
                     flows: np.ndarray, whole: np.ndarray, s_closing: np.ndarray, p: _Packets,
                     last: bool) -> tuple[set[int], list[int]]:
        """Decide and decode ``flows`` (sorted) column-wise: new flows, closed here
        (``whole``) or still open, and streaming flows (closing if in ``s_closing``).
        Returns the flows settled (or dropped) here, and the open ones still undecided."""
        sel = np.flatnonzero(np.isin(p.flow, flows))
        sel = sel[np.argsort(p.flow[sel], kind="stable")]  # by flow, capture order kept
        closing = np.isin(flows, whole) | np.isin(flows, s_closing)
        out = bulkflows.decide(groups, flows, p.flow[sel], p.dir[sel], p.pay_len[sel],
                               self.sink.dialect, p.ts, p.frame,
                               known=self._verdict[flows].astype(_I64), closing=closing,
                               base=self._base[groups.flow, groups.direction])
        self._fell_back |= out.fell_back
        ended: list[int] = []
        gone: set[int] = set()
        undecided: list[int] = []
        for f, verdict, closes in zip(flows.tolist(), (out.verdict[f] for f in flows.tolist()),
                                      closing.tolist(), strict=True):
            if verdict == bulkflows.V_NONE:
                undecided.append(f)  # open, and no attempt settled it yet
                continue
            if verdict == bulkflows.FALLBACK:
                self._open_fast(f)  # the sink decides (this window's bytes reach it next)
                continue
            if verdict == bulkflows.IGNORE:
                self._done[f] = self._ignored[f] = True
                self.sink.ignored += 1
                gone.add(f)
                continue
            self._verdict[f] = verdict
            if closes:
                ended.append(f)
            else:
                self._streaming[f] = True
        self._carry_tails(groups, p, out.open_groups, out.open_used)
        if ended:
            flows_ended = np.asarray(ended, _I64)
            self._settle_closed(state, flows_ended)
            gone.update(ended)
        if out.table.num_rows:
            self.bulk_tables.append(out.table)
        return gone, undecided

    def _defer(self, undecided: list[int], p: _Packets, counts: np.ndarray, fresh: np.ndarray,
               side: np.ndarray) -> None:
        """Flows detection has not settled yet: a short one waits for the next window with
        its packets (decided again on all of them there), a long one opens in the sink
        (which gets this window's bytes next)."""
        if not undecided:
            return
        flows = np.asarray(undecided, _I64)
        short = counts[np.searchsorted(fresh, flows)] <= CARRY_PACKETS
        for f in flows[~short].tolist():
            self._open_fast(f)
        carried = flows[short]
        if not len(carried):
            return
        self._deferred = _union(self._deferred, carried)
        self._carry = p.only(carried)
        if self._set:
            self._side = self._rehome(self._carry, side)

    def _carry_tails(self, groups: bulkflows.Groups, p: _Packets, open_groups: np.ndarray,
                     used: np.ndarray) -> None:
        """Streaming groups: what follows their last complete line waits for the next
        window, as one packet each (stamped as the last packet that brought bytes)."""
        if not len(open_groups):
            return
        flow, direction = groups.flow[open_groups], groups.direction[open_groups]
        self._base[flow, direction] += used
        start = groups.start_byte(open_groups) + used
        size = groups.stop_byte(open_groups) - start
        keep = np.flatnonzero(size > 0)
        if not len(keep):
            return
        self._carry_on(groups.data, start[keep], size[keep],
                       groups.order[groups.stop[open_groups[keep]] - 1], p,
                       direction[keep], flow[keep])

    def _carry_on(self, src: np.ndarray, start: np.ndarray, size: np.ndarray,
                  last: np.ndarray, p: _Packets, direction: np.ndarray,
                  flow: np.ndarray) -> None:
        """Streams' bytes after their last newline (``src[start:start+size]``) wait for
        the next window as one packet each, stamped as ``p``'s packet ``last`` (the last
        that brought bytes), its payload in ``_tail_data`` (a negative offset)."""
        data = np.empty(int(size.sum()), np.uint8)
        K.copy_ranges(src, start, size, data)
        offsets = np.cumsum(size) - size - len(data)  # negative: counted from the end
        self._tails = _Packets(offsets, size.astype(_I64), p.ts[last], p.frame[last],
                               direction.astype(_I64), flow.astype(_I64))
        self._tail_data = data

    def _settle_closed(self, state: dict[str, np.ndarray], flows: np.ndarray) -> None:
        """Flows decoded column-wise that end now (closed, or the capture ends): their
        connections are settled (their rows are in ``bulk_tables``)."""
        self._done[flows] = True
        self._streaming[flows] = False
        closed = state["fstate"][flows] == K.FLOW_CLOSED
        last_ts = self.last_ts
        assert last_ts is not None  # flows were decoded: packets were read
        close_ts = np.where(closed, state["fclose_ts"][flows], last_ts)
        close_why = np.full(len(flows), "end_of_capture", object)
        close_why[closed & (state["fclose"][flows] == K.CLOSE_FIN)] = "fin"
        close_why[closed & (state["fclose"][flows] == K.CLOSE_RST)] = "rst"
        self.settled.append(self._batch(flows, close_ts, close_why))

    def _batch(self, flows: np.ndarray, close_ts: np.ndarray,
               close_why: np.ndarray) -> SettledBatch:
        """Connections decoded column-wise as one :class:`SettledBatch`: columns, not a
        sink state each (thousands of short connections would cost a kilobyte of Python
        objects apiece)."""
        k = self.keys[self._state_fa[flows]]
        auto = self.sink.dialect is None
        dialects = np.full(len(flows), _dialect_text(_LINE if auto else self.sink.dialect),
                           object)
        if auto and self._fell_back:
            self._mark_gbk(flows, dialects)
        v6 = k[:, 0] != 0
        totals = self._bytes[flows]
        return SettledBatch(
            conn=flows.astype(_I64),
            a_ip=Addresses(v6, k[:, 1], k[:, 2]), a_port=k[:, 3].astype(_I64),
            b_ip=Addresses(v6, k[:, 4], k[:, 5]), b_port=k[:, 6].astype(_I64),
            start_ns=self._open_ts[flows], end_ns=close_ts.astype(_I64),
            close_reason=close_why, dialect=dialects, bytes_c2s=totals[:, 0].copy(),
            bytes_s2c=totals[:, 1].copy())

    def _mark_gbk(self, flows: np.ndarray, dialects: np.ndarray) -> None:
        """``line:gbk`` in ``dialects`` for the ``flows`` decoded as ``line`` whose
        frames decoding re-read as GBK (``_fell_back``)."""
        fell_back = self._fell_back
        gbk = np.fromiter(((f, 0) in fell_back or (f, 1) in fell_back
                           for f in flows.tolist()), bool, len(flows))
        dialects[gbk & (self._verdict[flows] == bulkflows.DECODE)] = _dialect_text(_LINE_GBK)

    def streaming_batch(self) -> SettledBatch | None:
        """The connections still streaming (open, decoded column-wise), as they stand: a
        chunked reader needs their records for the rows it hands out now."""
        flows = np.flatnonzero(self._streaming)
        if not len(flows):
            return None
        last = self.last_ts if self.last_ts is not None else 0
        return self._batch(flows.astype(_I64), np.full(len(flows), last, _I64),
                           np.full(len(flows), None, object))

    def _fast_data(self, p: _Packets, groups: bulkflows.Groups, whole: set[int]) -> None:
        # ``whole``: flows decided column-wise here (those settled or streaming are skipped)
        """Flows not settled column-wise: chunks into the sink (chunk by chunk while it
        detects, in bulk once it decodes)."""
        ends, order = groups.ends, groups.order
        lens = np.diff(np.concatenate([[0], ends]))
        raw = None
        frames = p.frame
        conns = self.sink.conns
        g, ng = 0, len(groups.flow)
        while g < ng:
            f = int(groups.flow[g])
            gs = [g]
            if g + 1 < ng and int(groups.flow[g + 1]) == f:
                gs.append(g + 1)
            g += len(gs)
            if f in whole and self._done[f]:
                continue
            st = conns.get(f)
            if st is None:
                continue
            spans = [(int(groups.first[x]), int(groups.stop[x]), _DIRS[int(groups.direction[x])])
                     for x in gs]
            if raw is None:
                raw = groups.data.tobytes()
            if st.status == "detecting":
                spans = self._detecting(f, spans, order, ends, lens, raw, p.ts, frames)
            for lo, hi, dname in spans:
                self._bulk(f, lo, hi, dname, order, ends, lens, raw, p.ts, frames)

    def _bulk(self, f, lo, hi, dname, order, ends, lens, raw, ts, frames) -> None:
        if lo >= hi:
            return
        state = self.sink.conns[f]
        b0, b1 = int(ends[lo] - lens[lo]), int(ends[hi - 1])
        idx = order[lo:hi]
        if state.status == "decoding":
            self.sink.on_data_many(f, dname, raw[b0:b1], ends[lo:hi] - b0, ts[idx], frames[idx])
            return
        for j in range(lo, hi):  # ignored (or still detecting): as on_data does
            i = int(order[j])
            self.sink.on_data(f, dname, raw[int(ends[j] - lens[j]):int(ends[j])], int(ts[i]),
                              int(frames[i]))

    def _detecting(self, f, spans, order, ends, lens, raw, ts, frames):
        """Feed chunk by chunk, in capture order, until detection settles the flow."""
        sink = self.sink
        pos = [lo for lo, _, _ in spans]
        state = sink.conns[f]
        while state.status == "detecting":
            best = None
            for x, (_, hi, _) in enumerate(spans):
                if pos[x] < hi and (best is None or order[pos[x]] < order[pos[best]]):
                    best = x
            if best is None:
                break
            j = pos[best]
            pos[best] = j + 1
            i = int(order[j])
            sink.on_data(f, spans[best][2], raw[int(ends[j] - lens[j]):int(ends[j])],
                         int(ts[i]), int(frames[i]))
        return [(pos[x], hi, dname) for x, (_, hi, dname) in enumerate(spans)]

    def _closes(self, state: dict[str, np.ndarray], skip: np.ndarray) -> None:
        """Fast flows closed in this window (by FIN or RST) close in the sink now."""
        done = self._done
        closed = (state["fstate"][: len(done)] == K.FLOW_CLOSED) & ~done
        closed[skip] = False
        now = np.flatnonzero(closed)
        if not len(now):
            return
        done[now] = True
        reasons = {K.CLOSE_FIN: "fin", K.CLOSE_RST: "rst"}
        for f in now[np.argsort(state["fclose_frame"][now], kind="stable")].tolist():
            if f in self.sink.conns:
                self.sink.on_close(f, int(state["fclose_ts"][f]),
                                   reasons[int(state["fclose"][f])])

    def _finish(self, state: dict[str, np.ndarray]) -> None:
        """End of capture: every open connection closes, as Reassembler.finish does."""
        ts = self.last_ts if self.last_ts is not None else 0
        still = [f for f in sorted(self.sink.conns) if f < SLOW_BASE and not self._done[f]
                 and state["fstate"][f] == K.FLOW_OPEN]
        for f in still:
            self.sink.on_close(f, ts, "end_of_capture")
        self.reassembler.finish(self.last_ts)

    def _segment(self, w: _Window, i: int, frames: np.ndarray) -> TcpSegment:
        seg = w.python.get(i) if w.python else None
        if seg is not None:
            return seg
        o, n = int(w.pay_off[i]), int(w.pay_len[i])
        return TcpSegment(int(frames[i]), int(w.ts[i]), int(w.s_lo[i]).to_bytes(4, "big"),
                          int(w.sport[i]), int(w.d_lo[i]).to_bytes(4, "big"), int(w.dport[i]),
                          int(w.seq[i]), int(w.ack[i]), int(w.flags[i]), 0,
                          self._view[o:o + n], int(w.missing[i]))


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.union1d`` of two sorted arrays of distinct flow ids, in linear time: a stable
    sort of two sorted runs is a merge, where ``union1d`` hashes every id (0.5 s of
    4.7 on 200,000 short connections, in windows of thousands of deferred flows)."""
    if not len(a) or not len(b):
        return (b if not len(a) else a).astype(_I64, copy=False)
    both = np.concatenate([a, b]).astype(_I64, copy=False)
    both.sort(kind="stable")
    keep = np.empty(len(both), bool)
    keep[0] = True
    np.not_equal(both[1:], both[:-1], out=keep[1:])
    return both[keep]


@dataclass
class _PassOne:
    """What pass one hands pass two."""

    slow: np.ndarray  # int8 per flow: 1 where the exact reassembler takes it
    first: _Window | None  # the one window of a capture that has one
    compact: list[_Compact] | None  # the windows, narrow (see _Compact)
    found: tuple  # the reader's problems, counts, skipped and frames


@dataclass
class _LinesJob:
    """A window's complete lines joined in time order, and what stamps their rows
    (:func:`bulkflows.lines_in_time_order`'s arguments but the set it fills)."""

    data: np.ndarray
    c_pkt: np.ndarray
    c_end: np.ndarray
    c_offset: np.ndarray
    flow: np.ndarray
    direction: np.ndarray
    ts: np.ndarray
    frames: np.ndarray
    dialect: Dialect | None
    ascii_flow: np.ndarray


def _decoded_lines(job: _LinesJob) -> tuple[pa.Table, set[tuple[int, int]]]:
    """A job's rows, and the (flow, direction) whose frames were re-read as GBK."""
    fell_back: set[tuple[int, int]] = set()
    table = bulkflows.lines_in_time_order(
        job.data, job.c_pkt, job.c_end, job.c_offset, job.flow, job.direction, job.ts,
        job.frames, job.dialect, job.ascii_flow, fell_back)
    return table, fell_back


def _drained(items: list[_T]) -> Iterator[_T]:
    """The items in order, each let go of as it is handed out: pass one's columns of a
    window are not needed once pass two has read them (7.8 MB for 211,305 records
    otherwise held to the end, when the decoded rows are largest)."""
    items.reverse()
    while items:
        yield items.pop()


def _with_last(items: Iterator[_T]) -> Iterator[tuple[_T, bool]]:
    """Each window, and whether it is the last one."""
    held = None
    for item in items:
        if held is not None:
            yield held, False
        held = item
    if held is not None:
        yield held, True


def _ip_bytes(fam: int, hi: int, lo: int) -> bytes:
    if fam == 0:
        return lo.to_bytes(4, "big")
    return ((hi << 64) | lo).to_bytes(16, "big")


_LINE = Dialect.parse("line")
_LINE_GBK = Dialect.parse("line:gbk")




class _SlowSink:
    """The exact reassembler's sink: the shared MessageSink, under provisional ids."""

    def __init__(self, engine: FastEngine) -> None:
        self.engine = engine
        self.sink = engine.sink

    def on_open(self, conn: ConnectionInfo) -> None:
        conn = replace(conn, conn_id=conn.conn_id + SLOW_BASE)
        self.engine.slow_first_frame[conn.conn_id] = conn.first_frame
        self.sink.on_open(conn)

    def on_data(self, conn_id, direction, data, ts_ns, frame) -> None:
        self.sink.on_data(conn_id + SLOW_BASE, direction, data, ts_ns, frame)

    def on_gap(self, conn_id, direction, nbytes, ts_ns, frame) -> None:
        self.sink.on_gap(conn_id + SLOW_BASE, direction, nbytes, ts_ns, frame)

    def on_close(self, conn_id, ts_ns, reason) -> None:
        self.sink.on_close(conn_id + SLOW_BASE, ts_ns, reason)


@dataclass
class FinalIds:
    """Provisional connection id -> final id (connections numbered by first packet):
    an array over the fast engine's flows (ids 0..n-1; -1 where no connection opened)
    and a dict for the exact reassembler's few (ids from ``SLOW_BASE``), rather than a
    dict entry per connection (200,000 short connections: 15 MB)."""

    fast: np.ndarray
    slow: dict[int, int]

    def __getitem__(self, conn: int) -> int:
        if conn >= SLOW_BASE:
            return self.slow[conn]
        found = int(self.fast[conn]) if 0 <= conn < len(self.fast) else -1
        if found < 0:
            raise KeyError(conn)
        return found

    def __len__(self) -> int:
        return int(np.count_nonzero(self.fast >= 0)) + len(self.slow)

    def of_flows(self, flows: np.ndarray) -> np.ndarray:
        """The final ids of fast-engine flow ids."""
        return self.fast[flows]

    def number(self, first_frame: np.ndarray, slow_first_frame: dict[int, int]) -> None:
        """Number the connections not numbered yet (by first frame, then provisional
        id), after those that are: ``first_frame`` per fast flow (-1: none), and the
        exact reassembler's by provisional id."""
        if len(self.fast) < len(first_frame):
            self.fast = np.concatenate([self.fast, np.full(len(first_frame) - len(self.fast),
                                                           -1, np.int64)])
        flows = np.flatnonzero((first_frame >= 0) & (self.fast[:len(first_frame)] < 0))
        slow = [c for c in slow_first_frame if c not in self.slow]
        ids = np.concatenate([flows, np.array(slow, np.int64)])
        frames = np.concatenate([first_frame[flows],
                                 np.array([slow_first_frame[c] for c in slow], np.int64)])
        order = np.lexsort((ids, frames))
        final = len(self) + np.arange(len(ids), dtype=np.int64)
        fast_now = order < len(flows)
        self.fast[flows[order[fast_now]]] = final[fast_now]
        for c, f in zip(ids[order[~fast_now]].tolist(), final[~fast_now].tolist(), strict=True):
            self.slow[c] = f


def final_ids(first_frame: np.ndarray, slow_first_frame: dict[int, int]) -> FinalIds:
    """Provisional id -> final id: connections numbered by their first packet."""
    ids = FinalIds(np.zeros(0, np.int64), {})
    ids.number(first_frame, slow_first_frame)
    return ids


def renumber(sink: MessageSink, mapping: FinalIds,
             settled: list[SettledBatch] | None = None) -> None:
    """Give every connection in ``sink`` (and in ``settled``) its final id."""
    conns = {}
    for old, st in sink.conns.items():
        new = mapping[old]
        st.info.conn_id = new
        conns[new] = st
    sink.conns = conns
    for batch in settled or ():
        batch.conn = mapping.of_flows(batch.conn)


__all__ = ["FastEngine", "FinalIds", "final_ids", "renumber"]

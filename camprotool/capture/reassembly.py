# TCP stream reassembly: segments in, ordered byte streams out, pushed into a sink.
#
# Rules this module keeps:
# - A connection is one 4-tuple between a SYN (or the first packet seen) and its close.
#   conn_ids are 0, 1, 2... in order of first packet. Side `a` is the client when the
#   handshake was seen (SYN from a, or SYN-ACK to a), else the sender of the first packet.
#   Direction 'c2s' is a->b, 's2c' is b->a.
# - Per direction the SYN fixes the start (ISN+1 is the first data byte); without a SYN the
#   first segment carrying data or FIN starts the stream. Sequence numbers are modulo 2**32.
# - Data reaches the sink in stream order, each chunk stamped with the ts/frame of the packet
#   that made it available (a buffered segment gets the stamp of the packet filling the hole;
#   past a hole declared lost, buffered segments keep the stamp they arrived with).
# - Every stream offset is either delivered once (on_data) or declared lost once (on_gap):
#   delivered bytes + gap bytes always add up to the stream length seen so far.
# - First copy wins: retransmitted bytes are dropped, and a differing overlap is recorded as
#   a problem, never raised. Bytes before the stream start are ignored.
# - A hole becomes a gap when the peer ACKs past it, when the out-of-order buffer of that
#   direction exceeds max_buffered, on RST, on port reuse, or at finish(). A FIN alone does not
#   close a hole: the sender may still retransmit; the peer's ACK of the FIN does.
# - Bytes cut by the snaplen (`missing`) are a gap right after the captured bytes.
# - A connection closes when both FINs are delivered, on RST, on reuse of its 4-tuple by a new
#   SYN, or at finish(). Segments on a closed 4-tuple are ignored until a new SYN.
# - Nothing is raised for bad traffic: anomalies go to `Reassembler.problems`.
"""Streaming TCP reassembly with bounded memory, independent of the capture format."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from operator import itemgetter
from typing import Protocol

__all__ = ["ConnectionInfo", "Reassembler", "StreamSink"]

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_MASK = 0xFFFFFFFF
# Offsets farther than this from the expected sequence number are not plausible TCP
# (the largest scaled window is 2**30): such segments are recorded and dropped.
_WINDOW = 1 << 30
# A SYN on an open 4-tuple whose stream started without a SYN belongs to that stream only
# when it sits this close to it (a late SYN); farther away it opens a new connection.
_SYN_NEAR = 1 << 20

_end_of = itemgetter(1)


def _signed(delta: int) -> int:
    """Map a 32-bit sequence difference to -2**31..2**31-1, so wrap-around compares right."""
    return delta - 0x100000000 if delta & 0x80000000 else delta


class _Segment(Protocol):
    """What the reassembler reads from a segment: capture.packets.TcpSegment, duck-typed.

    Read-only properties, so that a NamedTuple satisfies the protocol for type checkers.
    """

    @property
    def frame(self) -> int: ...
    @property
    def ts_ns(self) -> int: ...
    @property
    def src_ip(self) -> bytes: ...
    @property
    def src_port(self) -> int: ...
    @property
    def dst_ip(self) -> bytes: ...
    @property
    def dst_port(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def ack(self) -> int: ...
    @property
    def flags(self) -> int: ...
    @property
    def payload(self) -> bytes | memoryview: ...
    @property
    def missing(self) -> int: ...


@dataclass(slots=True)
class ConnectionInfo:
    """What the sink learns about a connection when its first packet is seen.

    `syn_seen` is True when the first packet was a SYN or SYN-ACK, i.e. `a` is known to be
    the client; otherwise `a` is just whoever sent first and the caller may swap roles.
    """

    conn_id: int
    a_ip: bytes
    a_port: int
    b_ip: bytes
    b_port: int
    syn_seen: bool
    first_ts_ns: int
    first_frame: int


class StreamSink(Protocol):
    """Receives the reassembled streams; direction is 'c2s' (a->b) or 's2c' (b->a)."""

    def on_open(self, conn: ConnectionInfo) -> None: ...

    def on_data(
        self, conn_id: int, direction: str, data: bytes, ts_ns: int, frame: int
    ) -> None: ...

    def on_gap(self, conn_id: int, direction: str, nbytes: int, ts_ns: int, frame: int) -> None: ...

    def on_close(self, conn_id: int, ts_ns: int, reason: str) -> None: ...


class _Conn:
    """A connection: its public info, its two halves and whether it is closed."""

    __slots__ = ("c2s", "closed", "info", "s2c")

    def __init__(self, info: ConnectionInfo) -> None:
        self.info = info
        self.closed = False
        self.c2s = _Half(self, "c2s")
        self.s2c = _Half(self, "s2c")
        self.c2s.peer = self.s2c
        self.s2c.peer = self.c2s


class _Half:
    """One direction of a connection.

    Positions (`pos`, pending starts/ends, `fin_pos`) are unwrapped stream offsets counted
    from the first data byte, so ordering never has to think about 2**32 wrap-around; `nxt`
    is the same place as a 32-bit sequence number, kept for the fast path's one comparison.
    `nxt` is None before the stream starts and -1 once it can take no more data, so that the
    fast path's `seq == nxt` test fails for both without an extra check.
    """

    __slots__ = (
        "base",
        "blocked",
        "conn",
        "conn_id",
        "direction",
        "fin_done",
        "fin_pos",
        "isn",
        "nxt",
        "peer",
        "pend_bytes",
        "pending",
        "pos",
        "tail",
    )

    def __init__(self, conn: _Conn, direction: str) -> None:
        self.conn = conn
        self.conn_id = conn.info.conn_id
        self.direction = direction
        self.peer: _Half = self
        self.isn: int | None = None  # sequence number of this direction's SYN, if seen
        self.base: int | None = None  # sequence number of stream offset 0
        self.nxt: int | None = None
        self.pos = 0  # stream offset of the next byte to deliver
        # Out-of-order data: sorted, non-overlapping (start, end, data, missing) tuples where
        # data covers [start, start+len(data)) and `missing` snaplen-cut bytes follow it.
        # (start, end, data, missing, ts, frame): buffered out-of-order pieces, by start
        self.pending: list[tuple[int, int, bytes, int, int, int]] = []
        self.pend_bytes = 0
        self.fin_pos: int | None = None
        self.fin_done = False
        # True while a hole waits for data or for a peer ACK (pending data or an early FIN):
        # the only thing a pure ACK from the peer has to look at.
        self.blocked = False
        # The last delivered chunk, which ends at `pos`: retransmissions overlapping it are
        # compared with it. Older bytes are not kept, so memory stays bounded.
        self.tail: bytes = b""


class Reassembler:
    """Feed TCP segments in capture order with add(); call finish() at end of capture.

    `max_buffered` bounds the out-of-order bytes held per direction; past it the earliest
    hole is declared lost. Anomalies are appended to `problems` as
    (frame, conn_id, kind, detail) instead of being raised.
    """

    def __init__(self, sink: StreamSink, *, max_buffered: int = 4 << 20) -> None:
        self.sink = sink
        self.max_buffered = max_buffered
        self.problems: list[tuple[int, int, str, str]] = []
        # Keyed by the 4-tuple as the sender sees it: both directions of a connection have an
        # entry, which spares the per-packet canonical ordering of the addresses.
        self._halves: dict[tuple[bytes, int, bytes, int], _Half] = {}
        self._next_id = 0
        self._last: _Segment | None = None
        self._on_data = sink.on_data  # bound once: the fast path calls it per segment

    def add(self, seg: _Segment) -> None:
        """Take one segment. In-order data with nothing buffered is delivered right here."""
        self._last = seg
        h = self._halves.get((seg.src_ip, seg.src_port, seg.dst_ip, seg.dst_port))
        flags = seg.flags
        if h is None or flags & (SYN | FIN | RST):
            self._slow(seg, h)
            return
        payload = seg.payload
        if payload:
            seq = seg.seq
            if seq != h.nxt or h.blocked or seg.missing:
                self._slow(seg, h)
                return
            data = bytes(payload)
            h.nxt = (seq + len(data)) & _MASK
            h.pos += len(data)
            h.tail = data
            self._on_data(h.conn_id, h.direction, data, seg.ts_ns, seg.frame)
        if flags & ACK and h.peer.blocked:
            self._acked(h.peer, seg.ack, seg.ts_ns, seg.frame)

    def finish(self, ts_ns: int | None = None) -> None:
        """End of capture: holes become gaps, buffered data is delivered, all conns close.

        `ts_ns` stamps these events; by default the time of the last segment added.
        """
        last = self._last
        if ts_ns is None:
            ts_ns = last.ts_ns if last is not None else 0
        frame = last.frame if last is not None else 0
        self._last = None  # its payload may pin the capture's memory map
        conns = {h.conn.info.conn_id: h.conn for h in self._halves.values() if not h.conn.closed}
        for conn_id in sorted(conns):
            self._close(conns[conn_id], ts_ns, frame, "end_of_capture")
        self._halves.clear()

    # -- everything below is off the fast path ---------------------------------------------

    def _slow(self, seg: _Segment, h: _Half | None) -> None:
        """Handle a segment the fast path does not: new conns, flags, holes, odd data."""
        flags = seg.flags
        ts, frame = seg.ts_ns, seg.frame
        if h is None or (flags & SYN and not flags & ACK and self._is_reuse(h, seg.seq)):
            if h is not None and not h.conn.closed:
                self._close(h.conn, ts, frame, "reused")
            h = self._open(seg)
        conn = h.conn
        payload, missing = seg.payload, seg.missing
        if conn.closed:
            if payload or missing:
                self._problem(frame, h, "segment_after_close", f"{len(payload) + missing} bytes")
            return
        if flags & RST:
            self._close(conn, ts, frame, "rst")
            return
        seq = seg.seq
        if flags & SYN:
            if h.base is None:
                h.isn = seq
                self._start(h, (seq + 1) & _MASK)
            seq = (seq + 1) & _MASK  # any data follows the SYN's sequence number
        elif h.base is None and (payload or missing or flags & FIN):
            self._start(h, seq)
        if h.base is not None and not h.fin_done:
            if flags & FIN:
                self._fin_seen(h, (seq + len(payload) + missing) & _MASK, frame)
            if payload or missing:
                self._data(h, seq, payload, missing, ts, frame)
            else:
                self._release(h, h.pos, ts, frame)  # a FIN may just have become deliverable
        elif payload and h.fin_done:
            self._data_after_fin(h, seq, payload, frame)
        if flags & ACK and h.peer.blocked:
            self._acked(h.peer, seg.ack, ts, frame)
        if h.fin_done and h.peer.fin_done and not conn.closed:
            self._close(conn, ts, frame, "fin")

    def _is_reuse(self, h: _Half, seq: int) -> bool:
        """Does a SYN (no ACK) on a known 4-tuple start a new connection?"""
        if h.conn.closed:
            return True
        if h.base is None:  # this side never spoke: it is this connection's SYN
            return False
        if h.isn is not None:  # same ISN: a retransmitted SYN
            return seq != h.isn
        here = (h.base + h.pos) & _MASK
        return abs(_signed((seq + 1 - here) & _MASK)) > _SYN_NEAR

    def _open(self, seg: _Segment) -> _Half:
        """Create the connection for this segment's 4-tuple and announce it."""
        flags = seg.flags
        client_is_dst = flags & (SYN | ACK) == SYN | ACK  # a SYN-ACK travels server->client
        src = (seg.src_ip, seg.src_port)
        dst = (seg.dst_ip, seg.dst_port)
        (a_ip, a_port), (b_ip, b_port) = (dst, src) if client_is_dst else (src, dst)
        info = ConnectionInfo(
            self._next_id, a_ip, a_port, b_ip, b_port, bool(flags & SYN), seg.ts_ns, seg.frame
        )
        self._next_id += 1
        conn = _Conn(info)
        self._halves[(a_ip, a_port, b_ip, b_port)] = conn.c2s
        self._halves[(b_ip, b_port, a_ip, a_port)] = conn.s2c
        self.sink.on_open(info)
        return conn.s2c if client_is_dst else conn.c2s

    @staticmethod
    def _start(h: _Half, first_seq: int) -> None:
        h.base = h.nxt = first_seq
        h.pos = 0

    def _fin_seen(self, h: _Half, fin_seq: int, frame: int) -> None:
        """Remember where this direction's FIN sits; it completes when delivery reaches it."""
        assert h.nxt is not None and h.nxt >= 0
        fin_pos = h.pos + _signed((fin_seq - h.nxt) & _MASK)
        if fin_pos < h.pos or abs(fin_pos - h.pos) > _WINDOW:
            self._problem(frame, h, "bad_fin", f"FIN at offset {fin_pos}, stream at {h.pos}")
        elif h.fin_pos is None:
            h.fin_pos = fin_pos
            h.blocked = True  # until delivery reaches the FIN
        elif fin_pos != h.fin_pos:
            self._problem(frame, h, "bad_fin", f"FIN at offset {fin_pos}, first at {h.fin_pos}")

    def _data(
        self, h: _Half, seq: int, payload: bytes | memoryview, missing: int, ts: int, frame: int
    ) -> None:
        """Place a segment's bytes in the stream: drop old ones, buffer, deliver what can be."""
        assert h.nxt is not None and h.nxt >= 0
        payload = memoryview(payload)
        n = len(payload)
        d = _signed((seq - h.nxt) & _MASK)  # offset of the segment from the next byte due
        if abs(d) > _WINDOW:
            self._problem(frame, h, "out_of_window", f"{n + missing} bytes at {d:+} from stream")
            return
        if d < 0:
            if d == -1 and n + missing <= 1:
                return  # keep-alive or zero-window probe: its byte is garbage by design
            self._check_old(h, d, payload, frame)
            cut = -d
            if cut >= n + missing:
                return  # old retransmission
            if cut <= n:
                payload = payload[cut:]
            else:
                missing -= cut - n
                payload = payload[:0]
            n, d = len(payload), 0
        start = h.pos + d
        if h.fin_pos is not None and start + n + missing > h.fin_pos:
            self._problem(frame, h, "data_after_fin", f"{start + n + missing - h.fin_pos} bytes")
            keep = max(h.fin_pos - start, 0)
            missing = max(min(missing, keep - n), 0)
            payload = payload[:keep]
            n = len(payload)
            if not n + missing:
                return
        self._insert(h, start, payload, missing, ts, frame)
        self._release(h, h.pos, ts, frame)
        while h.pend_bytes > self.max_buffered:
            self._problem(frame, h, "buffer_limit", f"{h.pend_bytes} bytes buffered")
            self._release(h, h.pending[0][0], ts, frame)

    def _data_after_fin(self, h: _Half, seq: int, payload: bytes | memoryview, frame: int) -> None:
        """After the FIN only retransmissions are legitimate; anything new is a problem."""
        assert h.base is not None
        d = _signed((seq - h.base - h.pos) & _MASK)  # offset from the FIN's sequence number
        if d + len(payload) <= 0:
            self._check_old(h, d, memoryview(payload), frame)
        else:
            self._problem(frame, h, "data_after_fin", f"{len(payload)} bytes")

    def _check_old(self, h: _Half, d: int, payload: memoryview, frame: int) -> None:
        """Compare the already-delivered part of a segment with the kept tail, if it overlaps."""
        tail = h.tail
        t0 = -len(tail)  # the tail covers offsets [t0, 0) relative to h.pos
        lo, hi = max(d, t0), min(d + len(payload), 0)
        if lo < hi and payload[lo - d : hi - d] != memoryview(tail)[lo - t0 : hi - t0]:
            self._conflict(h, h.pos + lo, hi - lo, frame)

    def _insert(
        self, h: _Half, start: int, payload: memoryview, missing: int, ts: int, frame: int
    ) -> None:
        """Buffer the parts of [start, end) not buffered yet (first copy wins)."""
        n = len(payload)
        data_end = start + n
        end = data_end + missing
        pend = h.pending
        i = j = bisect_right(pend, start, key=_end_of)  # first entry ending after start
        merged: list[tuple[int, int, bytes, int, int, int]] = []
        cur = start
        while j < len(pend) and pend[j][0] < end:
            s0, e0, d0, *_ = old = pend[j]
            if s0 > cur:
                merged.append(self._piece(h, start, payload, data_end, cur, s0, ts, frame))
            lo, hi = max(s0, start), min(s0 + len(d0), data_end)
            if lo < hi and payload[lo - start : hi - start] != memoryview(d0)[lo - s0 : hi - s0]:
                self._conflict(h, lo, hi - lo, frame)
            merged.append(old)
            cur = max(cur, e0)
            j += 1
        if cur < end:
            merged.append(self._piece(h, start, payload, data_end, cur, end, ts, frame))
        pend[i:j] = merged

    @staticmethod
    def _piece(
        h: _Half, start: int, payload: memoryview, data_end: int, lo: int, hi: int, ts: int,
        frame: int,
    ) -> tuple[int, int, bytes, int, int, int]:
        """Copy [lo, hi) of a segment into a pending entry (the capture may reuse buffers)."""
        data = bytes(payload[lo - start : min(hi, data_end) - start]) if lo < data_end else b""
        h.pend_bytes += len(data)
        return (lo, hi, data, max(hi - max(lo, data_end), 0), ts, frame)

    def _release(self, h: _Half, limit: int, ts: int, frame: int) -> None:
        """Deliver buffered data from h.pos on; offsets not buffered below `limit` are gaps.

        Contiguous buffered data goes out as one on_data call, stamped with this packet:
        it made those bytes available. Past a hole declared lost, nothing was waited
        for: each buffered piece keeps the time and frame it arrived with.
        """
        pend = h.pending
        pos = h.pos
        run: list[bytes] = []
        stamp = (ts, frame)  # when the bytes in `run` became available
        past_gap = False
        i = 0
        while True:
            if i < len(pend) and pend[i][0] == pos:
                _, end, data, miss, p_ts, p_frame = pend[i]
                i += 1
                h.pend_bytes -= len(data)
                if past_gap and (p_ts, p_frame) != stamp:
                    self._emit(h, run, *stamp)
                    stamp = (p_ts, p_frame)
                if data:
                    run.append(data)
                pos += len(data)
                if miss:
                    self._emit(h, run, *stamp)
                    h.tail = b""
                    self.sink.on_gap(h.conn_id, h.direction, miss, *stamp)
                    pos = end
                    past_gap = True
            elif pos < limit:
                hole_end = min(pend[i][0], limit) if i < len(pend) else limit
                self._emit(h, run, *stamp)
                h.tail = b""
                self.sink.on_gap(h.conn_id, h.direction, hole_end - pos, ts, frame)
                pos = hole_end
                past_gap = True
            else:
                break
        self._emit(h, run, *stamp)
        del pend[:i]
        h.pos = pos
        assert h.base is not None
        h.nxt = (h.base + pos) & _MASK
        if pos == h.fin_pos:
            h.fin_done = True
            h.nxt = -1
        h.blocked = bool(pend) or (h.fin_pos is not None and not h.fin_done)

    def _emit(self, h: _Half, run: list[bytes], ts: int, frame: int) -> None:
        """Send a run of contiguous buffered chunks as one on_data call, then empty it."""
        if run:
            data = run[0] if len(run) == 1 else b"".join(run)
            run.clear()
            h.tail = data
            self._on_data(h.conn_id, h.direction, data, ts, frame)

    def _acked(self, h: _Half, ack: int, ts: int, frame: int) -> None:
        """The peer acknowledged up to `ack`: whatever h still misses below it is lost."""
        if h.nxt is None or h.nxt < 0:
            return
        d = _signed((ack - h.nxt) & _MASK)
        if d <= 0 or d > _WINDOW:
            return
        # The ACK of a FIN counts the FIN itself. Without a known FIN, the stretch past the
        # last buffered byte is left open: the ACK may count a FIN the capture missed. The next
        # segment there will be out of order, and the next ACK past it settles the hole.
        known_end = h.fin_pos if h.fin_pos is not None else h.pending[-1][1]
        limit = min(h.pos + d, known_end)
        self._release(h, limit, ts, frame)
        if h.fin_done and h.peer.fin_done and not h.conn.closed:
            self._close(h.conn, ts, frame, "fin")

    def _close(self, conn: _Conn, ts: int, frame: int, reason: str) -> None:
        """Flush both directions (holes become gaps up to the last known byte) and close."""
        for h in (conn.c2s, conn.s2c):
            if h.base is not None and not h.fin_done:
                limit = h.pending[-1][1] if h.pending else h.pos
                if h.fin_pos is not None:
                    limit = max(limit, h.fin_pos)
                self._release(h, limit, ts, frame)
            h.nxt = -1
            h.blocked = False
            h.pending.clear()
            h.pend_bytes = 0
            h.tail = b""
        conn.closed = True
        self.sink.on_close(conn.info.conn_id, ts, reason)

    def _conflict(self, h: _Half, pos: int, nbytes: int, frame: int) -> None:
        self._problem(
            frame, h, "conflicting_retransmission", f"{nbytes}-byte overlap differs at offset {pos}"
        )

    def _problem(self, frame: int, h: _Half, kind: str, detail: str) -> None:
        self.problems.append((frame, h.conn_id, kind, f"{h.direction}: {detail}"))

"""From reassembled TCP streams to decoded message rows (Arrow tables), per connection.

:class:`MessageSink` receives the reassembler's events. For each connection
it finds the dialect by content (unless one was given), then feeds each
direction to a protocol decoder and stamps every decoded message with the
capture time and frame of the packet that completed it.

Memory stays bounded on huge captures: until a connection's dialect is known
at most :data:`~camprotool.protocol.detect.SAMPLE_SIZE` bytes per direction
are held; afterwards each direction holds at most ``batch_bytes`` of
undecoded data, plus the decoder's partial frame and the packet marks not
yet matched to a message.

Two engines give identical rows: ``bulk`` (default, vectorised, decodes in
batches) and ``incremental`` (decodes every chunk as it arrives: the path a
live capture takes).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from camprotool.capture.reassembly import ConnectionInfo
from camprotool.protocol.bulk import BulkDecoder, feed_many, rows_to_table
from camprotool.protocol.codec import Decoder
from camprotool.protocol.detect import (
    DETECT_AT,
    LONG_SAMPLE,
    SAMPLE_SIZE,
    detect_connection,
    names_a_command,
)
from camprotool.protocol.dialect import Dialect
from camprotool.protocol.messages import Message

ENGINES = ("bulk", "incremental")


@dataclass
class DirectionState:
    """One direction of one connection."""

    decoder: BulkDecoder | Decoder | None = None
    ops: list[bytes | int] = field(default_factory=list)  # undecoded data, or int: a gap
    finishing: bool = False  # the connection closed: finish after the ops
    offset: int = 0  # stream offset delivered so far (gaps count)
    bytes: int = 0  # bytes actually captured
    lost: int = 0  # bytes declared lost
    first_gap: int | None = None  # stream offset of the first lost bytes
    mark_end: list[int] = field(default_factory=list)
    mark_ts: list[int] = field(default_factory=list)
    mark_frame: list[int] = field(default_factory=list)
    rows: list[tuple[int, Message]] = field(default_factory=list)  # incremental engine
    # auto-detection saw only ASCII: GBK is as likely as UTF-8 (see _reread_as_gbk)
    fallback: Dialect | None = None
    fell_back: bool = False
    sample: bytearray = field(default_factory=bytearray)
    tables: list[pa.Table] = field(default_factory=list)

    def mark(self, ts_ns: int, frame: int) -> None:
        self.mark_end.append(self.offset)
        self.mark_ts.append(ts_ns)
        self.mark_frame.append(frame)


@dataclass
class ConnState:
    info: ConnectionInfo
    dialect: Dialect | None = None
    status: str = "detecting"  # detecting, decoding, ignored
    # ignored because it closed before carrying a byte (kept if its port was announced)
    empty: bool = False
    events: list[tuple] = field(default_factory=list)  # replayed once the dialect is known
    close_ts: int | None = None
    close_reason: str | None = None
    last_ts: int = 0
    last_frame: int = 0  # of the last packet that carried bytes (for problem rows)
    dirs: dict[str, DirectionState] = field(
        default_factory=lambda: {"c2s": DirectionState(), "s2c": DirectionState()}
    )


class MessageSink:
    """A reassembly sink that decodes the protocol; see the module docstring.

    Call :meth:`flush` after the reassembler's ``finish`` to decode what is
    still pending.
    """

    def __init__(
        self,
        dialect: Dialect | str | None = None,
        *,
        ports: set[int] | None = None,
        engine: str = "bulk",
        batch_bytes: int = 32 << 20,
        batch_rows: int = 4096,
        eager_detect_below: int = 0,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        self.dialect = None if dialect in (None, "auto") else Dialect.parse(dialect)
        self.ports = ports
        self.engine = engine
        self.batch_bytes = batch_bytes
        self.batch_rows = batch_rows
        # Live capture: try detection on every chunk while a direction's sample is
        # below this many bytes (a short Login frame never reaches the 128-byte mark).
        self.eager_detect_below = eager_detect_below
        self.rows = 0  # messages decoded and stamped so far
        self.ignored = 0  # closed connections that were not this protocol
        #: (frame, conn, kind, detail) of connections detection gave up on
        self.problems: list[tuple[int, int, str, str]] = []
        self.conns: dict[int, ConnState] = {}
        self._dirty: dict[int, DirectionState] = {}
        self._pending = 0

    # ------------------------------------------------------------ sink API
    def on_open(self, conn: ConnectionInfo) -> None:
        state = ConnState(conn, last_ts=conn.first_ts_ns, last_frame=conn.first_frame)
        if self.ports and conn.a_port not in self.ports and conn.b_port not in self.ports:
            state.status = "ignored"
        elif self.dialect is not None:
            self._start(state, self.dialect)
        self.conns[conn.conn_id] = state

    def on_data(self, conn_id: int, direction: str, data: bytes, ts_ns: int, frame: int) -> None:
        state = self.conns[conn_id]
        state.last_ts = ts_ns
        state.last_frame = frame
        d = state.dirs[direction]
        d.bytes += len(data)
        if state.status == "decoding":
            self._data(d, data, ts_ns, frame)
        elif state.status == "detecting":
            state.events.append(("data", direction, data, ts_ns, frame))
            if len(d.sample) < LONG_SAMPLE:
                before = len(d.sample)
                d.sample += data[: LONG_SAMPLE - before]
                if any(before < k <= len(d.sample) for k in DETECT_AT) or (
                        len(d.sample) < self.eager_detect_below):
                    self._try_detect(state, final=False)

    def on_data_many(self, conn_id: int, direction: str, data: bytes, ends: np.ndarray,
                     ts_ns: np.ndarray, frames: np.ndarray) -> None:
        """Several in-order chunks at once: the same as one ``on_data`` per chunk.

        ``data`` is the chunks joined; ``ends[i]`` is the offset in ``data``
        just past chunk ``i``. Only for a connection that is already decoding
        (the fast capture engine feeds chunk by chunk while a connection is
        still being detected, since detection looks at every chunk).
        """
        state = self.conns[conn_id]
        state.last_ts = int(ts_ns[-1])
        state.last_frame = int(frames[-1])
        d = state.dirs[direction]
        d.bytes += len(data)
        if state.status != "decoding" or isinstance(d.decoder, Decoder):
            raise RuntimeError("on_data_many: connection is not bulk-decoding")
        base = d.offset
        d.offset += len(data)
        d.mark_end.extend((ends + base).tolist())
        d.mark_ts.extend(ts_ns.tolist())
        d.mark_frame.extend(frames.tolist())
        d.ops.append(data)
        self._dirty[id(d)] = d
        self._pending += len(data)
        if self._pending >= self.batch_bytes:
            self.flush()

    def on_gap(self, conn_id: int, direction: str, nbytes: int, ts_ns: int, frame: int) -> None:
        state = self.conns[conn_id]
        state.last_ts = ts_ns
        d = state.dirs[direction]
        d.lost += nbytes
        if state.status == "decoding":
            self._gap(d, nbytes, ts_ns, frame)
        elif state.status == "detecting":
            state.events.append(("gap", direction, nbytes, ts_ns, frame))

    def on_close(self, conn_id: int, ts_ns: int, reason: str) -> None:
        state = self.conns[conn_id]
        state.close_ts = ts_ns
        state.close_reason = reason
        if state.status == "detecting":
            self._try_detect(state, final=True)
            if state.status == "detecting":
                state.status = "ignored"
                state.events.clear()
                state.empty = not any(d.bytes or d.lost for d in state.dirs.values())
        if state.status == "decoding":
            for d in state.dirs.values():
                d.finishing = True
                if isinstance(d.decoder, Decoder):
                    d.rows += d.decoder.finish_with_ends()
                    self._stamp_rows(d)
                else:
                    self._dirty[id(d)] = d
        for d in state.dirs.values():
            d.sample = bytearray()
        if state.status == "ignored" and not state.empty:
            # Not this protocol, and the reassembler sends nothing more for a closed
            # connection: forget it, or a capture of mostly other traffic grows
            # without bound. Only the count is kept.
            del self.conns[conn_id]
            self.ignored += 1

    def flush(self) -> None:
        """Decode everything pending (the bulk engine batches until now).

        Each direction's ops run in order up to its last gap; the data after
        it, for every direction at once, goes through one
        :func:`~camprotool.protocol.bulk.feed_many` pass, so thousands of
        short connections cost one vectorised decode, not thousands.
        """
        dirty, self._dirty = self._dirty, {}
        self._pending = 0
        directions = list(dirty.values())
        tables: list[list[pa.Table]] = []
        batch: list[tuple[BulkDecoder, bytes]] = []
        for d in directions:
            dec = d.decoder
            assert isinstance(dec, BulkDecoder)  # only the bulk engine batches ops
            mine: list[pa.Table] = []
            last_gap = max((i for i, op in enumerate(d.ops) if isinstance(op, int)), default=-1)
            run: list[bytes] = []
            for op in d.ops[: last_gap + 1]:
                if isinstance(op, int):
                    if run:
                        mine.append(dec.feed(b"".join(run)))
                        run = []
                    mine.append(dec.gap(op))
                else:
                    run.append(op)
            rest = [op for op in d.ops[last_gap + 1 :] if not isinstance(op, int)]  # all data
            batch.append((dec, rest[0] if len(rest) == 1 else b"".join(rest)))
            d.ops.clear()
            tables.append(mine)
        for mine, table in zip(tables, feed_many(batch), strict=True):
            mine.append(table)
        for d, mine in zip(directions, tables, strict=True):
            dec = d.decoder
            assert isinstance(dec, BulkDecoder)
            if d.finishing and not dec.idle:
                mine.append(dec.finish())
            mine = [t for t in mine if t.num_rows]
            if mine:
                self._stamp(d, pa.concat_tables(mine) if len(mine) > 1 else mine[0])
            self._prune(d)

    # ------------------------------------------------------------ internals
    def _try_detect(self, state: ConnState, final: bool) -> None:
        c2s, s2c = state.dirs["c2s"].sample, state.dirs["s2c"].sample
        dialect = detect_connection(bytes(c2s), bytes(s2c), final=final)
        if dialect is not None:
            self._start(state, dialect)
            if dialect.encoding == "utf-8" and c2s.isascii() and s2c.isascii():
                gbk = replace(dialect, encoding="gbk")
                for d in state.dirs.values():
                    d.fallback = gbk
            events, state.events = state.events, []
            for kind, direction, value, ts_ns, frame in events:
                d = state.dirs[direction]
                if kind == "data":
                    self._data(d, value, ts_ns, frame)
                else:
                    self._gap(d, value, ts_ns, frame)
        else:
            longest = max(len(c2s), len(s2c))
            named = longest >= SAMPLE_SIZE and (names_a_command(c2s) or names_a_command(s2c))
            if longest >= LONG_SAMPLE or (longest >= SAMPLE_SIZE and not named):
                state.status = "ignored"  # enough bytes seen: not this protocol
                state.events.clear()
                if named:
                    self._gave_up(state, f"{longest} bytes name commands but no dialect "
                                  "frames them")
            elif final and (names_a_command(c2s) or names_a_command(s2c)):
                self._gave_up(state, f"closed after {longest} bytes that name commands but "
                              "frame in no dialect")

    def _gave_up(self, state: ConnState, why: str) -> None:
        """Detection gave up on a connection that may be ours: say so (``problems``)."""
        self.problems.append((state.last_frame, state.info.conn_id, "dialect_not_found",
                              f"{why}; decode it with read_capture(dialect=...)"))

    def _start(self, state: ConnState, dialect: Dialect) -> None:
        state.dialect = dialect
        state.status = "decoding"
        for d in state.dirs.values():
            d.decoder = BulkDecoder(dialect) if self.engine == "bulk" else Decoder(dialect)
            if not state.info.syn_seen:
                # No handshake: the capture may start mid-frame. gap(0) tells the decoder the
                # stream position is unknown, so a cut first frame is an error row (line) or
                # is resynchronised past (lp*) instead of being read as a message.
                self._gap(d, 0, state.info.first_ts_ns, state.info.first_frame)

    def _data(self, d: DirectionState, data: bytes, ts_ns: int, frame: int) -> None:
        d.offset += len(data)
        d.mark(ts_ns, frame)
        if isinstance(d.decoder, Decoder):
            d.rows += d.decoder.feed_with_ends(data)
            if len(d.rows) >= self.batch_rows:
                self._stamp_rows(d)
            return
        d.ops.append(data)
        self._dirty[id(d)] = d
        self._pending += len(data)
        if self._pending >= self.batch_bytes:
            self.flush()

    def _gap(self, d: DirectionState, nbytes: int, ts_ns: int, frame: int) -> None:
        if nbytes and d.first_gap is None:
            d.first_gap = d.offset
        if isinstance(d.decoder, Decoder):
            d.rows += d.decoder.gap_with_ends(nbytes)
        else:
            d.ops.append(nbytes)
            self._dirty[id(d)] = d
        d.offset += nbytes
        d.mark(ts_ns, frame)

    def stamp_pending(self, d: DirectionState) -> None:
        """Incremental engine: stamp the messages collected so far (for a snapshot)."""
        self._stamp_rows(d)

    def _stamp_rows(self, d: DirectionState) -> None:
        """Incremental engine: turn the collected messages into a stamped table."""
        if d.rows:
            rows, d.rows = d.rows, []
            self._stamp(d, rows_to_table(rows))
        self._prune(d)

    def _stamp(self, d: DirectionState, table: pa.Table) -> None:
        """Give each row the ts and frame of the packet that completed it."""
        if d.fallback is not None:
            table = self._reread_as_gbk(d, table, d.fallback)
        ends = table.column("end").to_numpy()
        mark_end = np.asarray(d.mark_end, dtype=np.int64)
        at = np.minimum(np.searchsorted(mark_end, ends, side="left"), len(mark_end) - 1)
        ts = np.asarray(d.mark_ts, dtype=np.int64)[at]
        frames = np.asarray(d.mark_frame, dtype=np.int64)[at]
        self.rows += table.num_rows
        d.tables.append(
            table.append_column("ts_ns", pa.array(ts)).append_column("frame", pa.array(frames))
        )

    @staticmethod
    def _reread_as_gbk(d: DirectionState, table: pa.Table, fallback: Dialect) -> pa.Table:
        """Frames that are not UTF-8 but are GBK, on a connection detected from ASCII alone.

        The detector only sees a connection's first bytes; when those are all
        ASCII, UTF-8 and GBK read them alike, and the first Chinese text may come
        much later (a LoginError). PROTOCOL.md: bytes that are valid GBK but not
        UTF-8 mean GBK, so such frames are decoded again as GBK.
        """
        errors = table["error"]
        if errors.null_count == table.num_rows:
            return table  # the common case: nothing failed to decode
        suspects = pc.fill_null(pc.match_substring(errors, "invalid utf-8"), False)
        if not pc.any(suspects).as_py():
            return table
        rows = []
        keep = np.ones(table.num_rows, dtype=bool)
        ends = table["end"].to_pylist()
        raws = table["raw"].to_pylist()
        for i in np.flatnonzero(suspects.to_numpy(zero_copy_only=False)):
            dec = Decoder(fallback)
            found = dec.feed(raws[i]) + dec.finish()
            if len(found) == 1 and not (found[0].error and "invalid gbk" in found[0].error):
                rows.append((ends[i], found[0]))
                keep[i] = False
        if not rows:
            return table
        d.fell_back = True
        merged = pa.concat_tables([table.filter(pa.array(keep)), rows_to_table(rows)])
        return merged.take(pc.sort_indices(merged["end"]))

    @staticmethod
    def _prune(d: DirectionState) -> None:
        """Drop packet marks no future message can end in."""
        if d.finishing:
            d.mark_end.clear()
            d.mark_ts.clear()
            d.mark_frame.clear()
            return
        # Future rows end at or after the decoder's unconsumed bytes.
        assert d.decoder is not None  # marks are kept only once decoding started
        keep_from = d.decoder.held_from
        cut = bisect_left(d.mark_end, keep_from) - 1
        if cut > 0:
            del d.mark_end[:cut], d.mark_ts[:cut], d.mark_frame[:cut]

"""Decode a whole capture: packets -> TCP segments -> streams -> message rows.

This is the I/O edge of capture decoding: it opens the file and drives the
sans-I/O pieces (readers, reassembly, protocol decoders). The result is
Arrow tables and plain records; :mod:`camprotool.analysis.frames` turns them
into the pandas dataframes users see.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from camprotool.capture.allocator import give_back_free_memory, prefer_system_allocator
from camprotool.capture.captureset import CaptureSet, CaptureSource, open_source
from camprotool.capture.connections import build_connections
from camprotool.capture.conntable import ConnectionTable
from camprotool.capture.packets import iter_tcp_segments
from camprotool.capture.readers import CaptureFile
from camprotool.capture.reassembly import Reassembler
from camprotool.capture.reorder import Reorder, number_view, one_chunk
from camprotool.capture.streams import MessageSink
from camprotool.protocol.dialect import Dialect

if TYPE_CHECKING:
    from camprotool.capture.fast.engine import FinalIds


class ChunkMasker(Protocol):
    """How a column is masked chunk by chunk (``rows``: the chunk's rows in the column):
    :class:`camprotool.analysis.masking.ParamsMasker` for ``params``."""

    def split(self, chunk: pa.Array, rows: slice) -> tuple[np.ndarray, pa.Array | pa.ChunkedArray]:
        """The chunk's rows (positions in it) that masking may change, and the chunk
        masked."""
        ...


@dataclass
class DecodedCapture:
    """Everything decoded from one capture, before it becomes dataframes.

    ``rows`` are the decoded messages in any order and ``order`` the
    permutation that sorts them by time (None: already sorted) until
    :meth:`put_in_order` sorts them, once, on first use (``messages``,
    ``Capture.messages``). Why not sort at once: a capture read for its
    connections or problems alone never pays for it.
    """

    source: str
    format: str | None
    packets: int
    rows: pa.Table  # SCHEMA + conn, direction, ts_ns, frame
    connections: ConnectionTable  # iterates as ConnectionRecord rows
    problems: list[tuple[int | None, str, str]] = field(default_factory=list)
    order: np.ndarray | None = None
    #: after :meth:`put_in_order`: each int64 column of ``rows`` as the NumPy array
    #: its Arrow column views (values, 0 under a null; null flags or None)
    numbers: dict[str, tuple[np.ndarray, np.ndarray | None]] = field(default_factory=dict)
    #: after :meth:`mask_params`: the rows whose ``params`` ``rows`` shows masked
    #: (ascending positions) and their values as decoded (a chunk per chunk of ``rows``
    #: holding some: joined only when :attr:`messages` reads them)
    hidden: tuple[np.ndarray, pa.ChunkedArray] | None = None
    _in_order: bool = False
    _lost: BaseException | None = None

    @property
    def messages(self) -> pa.Table:
        """The rows sorted by time (ties in stream order), every value as decoded (a
        new ``params`` column when :meth:`mask_params` masked it in ``rows``)."""
        self.put_in_order()
        if self.hidden is None:
            return self.rows
        rows, values = self.hidden
        mask = np.zeros(self.rows.num_rows, bool)
        mask[rows] = True
        params = pc.replace_with_mask(one_chunk(self.rows["params"]), pa.array(mask),
                                      one_chunk(values))
        return self.rows.set_column(self.rows.schema.get_field_index("params"), "params",
                                    params)

    def mask_params(self, masker: ChunkMasker) -> None:
        """Mask ``params`` in ``rows`` (in order) chunk by chunk, keeping the values of the
        rows masking may change in ``hidden`` (``messages`` still gives them).

        Why: ``Capture.messages`` shows ``params`` masked; masked beside the decoder's
        it was a second column of nearly every row (9 MB of 185,000 messages where
        logins are everywhere). Replaced here chunk by chunk, each chunk's old
        buffers go as its masked one is made, and the frame wraps the same column.
        ``masker``: :class:`camprotool.analysis.masking.ParamsMasker`.
        """
        self.put_in_order()
        if self.hidden is not None:
            return
        schema = self.rows.schema
        at_params = schema.get_field_index("params")
        columns = self.rows.columns
        chunks: list[pa.Array | None] = list(columns[at_params].chunks)
        columns[at_params] = pa.chunked_array([], schema.field("params").type)
        self.rows = schema.empty_table()  # the only other hold on the old chunks goes
        out: list[pa.Array] = []
        kept_rows: list[np.ndarray] = []
        kept_values: list[pa.Array] = []
        at = 0
        try:
            for k, chunk in enumerate(chunks):
                chunks[k] = None
                assert chunk is not None
                rows = slice(at, at + len(chunk))
                hidden, masked = masker.split(chunk, rows)
                if len(hidden):
                    kept_rows.append(hidden + at)
                    kept_values.append(chunk.take(pa.array(hidden)))
                out.extend(masked.chunks if isinstance(masked, pa.ChunkedArray) else [masked])
                at += len(chunk)
                del chunk, masked
        except BaseException as exc:  # a failed allocation midway: some chunks are gone
            self._lost = exc
            raise
        columns[at_params] = pa.chunked_array(out, schema.field("params").type)
        self.rows = pa.Table.from_arrays(columns, schema=schema)
        self.hidden = (np.concatenate(kept_rows) if kept_rows else np.zeros(0, np.int64),
                       pa.chunked_array(kept_values, schema.field("params").type))

    def put_in_order(self) -> None:
        """Sort ``rows`` by time, column by column, with their int64 columns held as
        NumPy arrays (``numbers``) that the table's columns view.

        Why column by column: the table is let go first, so each column's old
        buffers go as soon as its sorted one is made and the peak grows by one
        column (``Table.take`` held two tables). Why NumPy: that is how pandas
        holds numbers; ``Capture.messages`` takes these arrays as they are, where
        it made copies beside the decoder's (13 MB for 185,000 messages). Rows
        already in order are kept as slices (:class:`~camprotool.capture.reorder.Reorder`).
        """
        self._check_kept()
        if self._in_order:
            return
        schema = self.rows.schema
        columns = dict(zip(schema.names, self.rows.columns, strict=True))
        self.rows = schema.empty_table()  # the only other hold on the columns goes
        try:
            self.numbers = _put_in_order(columns, schema, self.order)
        except BaseException as exc:  # a failed allocation midway: some columns are sorted
            self._lost = exc
            raise
        self.rows = pa.Table.from_arrays(list(columns.values()), schema=schema)
        self.order, self._in_order = None, True

    def _check_kept(self) -> None:
        """Raise if a failure while rewriting the rows in place lost some of them."""
        if self._lost is not None:
            raise RuntimeError(f"{self.source}: the decoded rows were lost when rewriting "
                               f"them in place failed ({self._lost!r}); read the capture again")


def _put_in_order(columns: dict[str, pa.ChunkedArray], schema: pa.Schema,
                  order: np.ndarray | None) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """:meth:`DecodedCapture.put_in_order` on ``columns`` (replaced one by one)."""
    n = len(next(iter(columns.values()))) if columns else 0
    reorder = Reorder(order, n)
    numbers: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for name in schema.names:
        column = columns[name]
        if pa.types.is_int64(column.type):
            if column.null_count:
                values, missing = reorder.nullable(column, np.int64)
                numbers[name] = values, missing
            else:
                values = reorder.numpy(column)
                if not values.flags.writeable:  # a view of the table's one chunk
                    values = values.copy()  # pandas users write to their columns
                numbers[name] = values, None
            columns[name] = pa.chunked_array([number_view(*numbers[name], column.null_count)])
        else:
            columns[name] = reorder.arrow(column)
        del column
    return numbers


#: ``fast`` (compiled packet loops, in-order flows column-wise), ``bulk`` (every packet
#: through the exact reassembler), ``incremental`` (as a live capture decodes)
ENGINES = ("fast", "bulk", "incremental")


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: decoding makes many objects and no cycles,
    and collections triggered by the allocation count cost a tenth of the time."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _normalise_ports(ports: Iterable[int] | int | None) -> set[int] | None:
    if ports is None:
        return None
    if isinstance(ports, int):
        ports = [ports]
    elif isinstance(ports, str | bytes) or not isinstance(ports, Iterable):
        raise ValueError(f"ports: {ports!r} is not a TCP port number or a list of them")
    result = set()
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"ports: {port!r} is not a TCP port number (1-65535)")
        result.add(port)
    if not result:
        raise ValueError("ports: an empty list would keep nothing; pass None for every port")
    return result


def decode_segments(
    segments: Iterable,
    *,
    dialect: Dialect | str | None = "auto",
    ports: Iterable[int] | int | None = None,
    engine: str = "bulk",
    source: str = "<segments>",
    capture_format: str | None = None,
    packets: int = 0,
    problems: list[tuple[int | None, str, str]] | None = None,
) -> DecodedCapture:
    """Decode TCP segments (from any reader, or a live capture) into messages."""
    if dialect not in (None, "auto"):
        dialect = Dialect.parse(dialect)
    sink = MessageSink(dialect, ports=_normalise_ports(ports), engine=engine)
    reassembler = Reassembler(sink)
    add = reassembler.add
    last_ts = None
    for seg in segments:
        add(seg)
        last_ts = seg.ts_ns
    reassembler.finish(last_ts)
    sink.flush()
    records, messages, order = build_connections(sink.conns, sort=False)
    found = list(problems or [])
    found += [(frame, kind, f"connection {conn}: {detail}")
              for frame, conn, kind, detail in reassembler.problems]
    found += [(frame, kind, f"connection {conn}: {detail}")
              for frame, conn, kind, detail in sorted(sink.problems)]
    return DecodedCapture(
        source=source,
        format=capture_format,
        packets=packets,
        rows=messages,
        connections=records,
        problems=found,
        order=order,
    )


def decode_file(
    path: CaptureSource,
    *,
    dialect: Dialect | str | None = "auto",
    ports: Iterable[int] | int | None = None,
    engine: str = "fast",
    progress: Callable[[int], None] | None = None,
) -> DecodedCapture:
    """Decode a pcap or pcapng file (a path, or the file's bytes), or a capture set (a
    list of paths or a glob: :mod:`camprotool.capture.captureset`).

    ``engine``: ``"fast"`` (default) indexes and parses packets in compiled
    loops and hands only out-of-order flows to the exact reassembler;
    ``"bulk"`` sends every packet through the exact reassembler; both decode
    with the bulk decoder. ``"incremental"`` decodes chunk by chunk, as a live
    capture does. All three give the same tables.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    prefer_system_allocator()
    if engine == "fast":
        with gc_paused():
            return _decode_fast(path, dialect=dialect, ports=ports, progress=progress)
    with open_source(path, progress=progress) as capture:
        decoded = decode_segments(
            iter_tcp_segments(capture),
            dialect=dialect,
            ports=ports,
            engine=engine,
            source=capture.name,
            capture_format=capture.format,
        )
        decoded.packets = capture.frames
        decoded.problems[:0] = _capture_problems(capture)
    return decoded


def _capture_problems(capture: CaptureFile | CaptureSet) -> list[tuple[int | None, str, str]]:
    return [(p.frame, p.kind, p.detail) for p in capture.problems]


def _decode_fast(
    path: CaptureSource,
    *,
    dialect: Dialect | str | None,
    ports: Iterable[int] | int | None,
    progress: Callable[[int], None] | None,
) -> DecodedCapture:
    from camprotool.capture.fast.engine import FastEngine, final_ids, renumber

    if dialect not in (None, "auto"):
        dialect = Dialect.parse(dialect)
    sink = MessageSink(dialect, ports=_normalise_ports(ports), engine="bulk")
    with open_source(path, progress=progress) as capture:
        fast = FastEngine(capture, sink)
        fast.run()
        sink.flush()
        mapping = final_ids(fast.first_frame, fast.slow_first_frame)
        renumber(sink, mapping, fast.settled)
        extra = [_with_final_ids(t, mapping) for t in fast.bulk_tables]
        fast.bulk_tables = []
        # The windows' buffers, before the tables are joined: the one trim a read makes.
        # The pages freed later (unsorted columns, unmasked chunks) are reused by what
        # comes next; trimming them too cost 3,000-5,000 page faults (10-15 ms on
        # 185,000 messages) for 7 MB of peak.
        give_back_free_memory()
        records, messages, order = build_connections(sink.conns, extra, sort=False,
                                                     settled=fast.settled)
        del extra
        problems = fast_problems(capture, fast, sink, mapping)
        return DecodedCapture(source=capture.name, format=capture.format,
                              packets=capture.frames, rows=messages,
                              connections=records, problems=problems, order=order)


def fast_problems(capture: CaptureFile | CaptureSet, fast, sink: MessageSink,
                  mapping: FinalIds) -> list[tuple[int | None, str, str]]:
    """The problems of a capture read by the fast engine, worded and ordered as the exact
    path words them: the reader's by frame, the reassembler's, then the sink's."""
    from camprotool.capture.fast.engine import SLOW_BASE

    found: list[tuple[int | None, str, str]] = [
        (p.frame, p.kind, p.detail) for p in sorted(  # a set's bad files: no frame
        capture.problems, key=lambda p: (p.frame is None, p.frame or 0))]
    found += [(frame, kind, f"connection {mapping[conn + SLOW_BASE]}: {detail}")
              for frame, conn, kind, detail in fast.reassembler.problems]
    found += [(frame, kind, f"connection {conn}: {detail}") for frame, conn, kind, detail in
              sorted((f, mapping[c], k, d) for f, c, k, d in sink.problems)]
    return found


def _with_final_ids(table: pa.Table, mapping: FinalIds) -> pa.Table:
    """A fast-engine table (``flow`` = provisional id) with ``conn`` = final id."""
    conn = mapping.of_flows(table["flow"].to_numpy())
    return table.drop_columns(["flow"]).append_column("conn", pa.array(conn, pa.int64()))

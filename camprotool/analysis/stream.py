"""``iter_capture``: the messages of a capture chunk by chunk, in bounded memory.

Why: a day of a deployment's traffic does not fit in memory as one table.
The fast engine already reads the file in windows (``FastEngine.steps``);
after each window the rows decoded so far become one or more dataframes of
at most ``chunk_size`` messages, and what the reader keeps of a closed
connection is dropped once its rows are out. Memory then follows the window,
the chunk and the connections still open, not the capture's length.

What differs from ``read_capture``: each chunk is ordered by time, and
chunks follow one another in file order, so a message completed by a packet
with an earlier timestamp later in the file comes in a later chunk.
Connection ids are the ones ``read_capture`` gives (by first packet). A
connection's roles and channel are decided from the messages decoded up to
the chunk where it first has rows (``read_capture`` looks at all of them);
they only differ for a connection whose handshake was not captured and whose
first messages do not say which side is the client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from camprotool.analysis.frames import messages_frame
from camprotool.capture.allocator import prefer_system_allocator
from camprotool.capture.captureset import CaptureSource, open_source
from camprotool.capture.connections import build_connections
from camprotool.capture.decode import (
    _normalise_ports,
    _with_final_ids,
    fast_problems,
    gc_paused,
)
from camprotool.capture.fast.engine import FastEngine, FinalIds
from camprotool.capture.streams import MessageSink
from camprotool.protocol.dialect import Dialect

#: records per window of the streaming reader: about 26 MB of packet columns
STREAM_WINDOW = 1 << 17
DEFAULT_CHUNK = 100_000


def iter_capture(
    path: CaptureSource,
    dialect: Dialect | str = "auto",
    ports: Iterable[int] | int | None = None,
    reveal_passwords: bool = False,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Callable[[int], None] | None = None,
    problems: list[tuple[int | None, str, str]] | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield ``Capture.messages``-shaped dataframes of at most ``chunk_size`` rows.

    Same arguments and columns as :func:`camprotool.read_capture`; see the
    module docstring for how chunks are ordered. Each chunk has its own
    RangeIndex; ``pd.concat(iter_capture(p), ignore_index=True)`` holds the
    same messages as ``read_capture(p).messages`` (``client``/``server`` come
    back as ``str`` where chunks have different endpoints: pandas concatenates
    categories only when they are equal; ``union_categoricals`` keeps them).
    ``problems``: a list that gets what the reader found
    (``read_capture(p).decoded.problems``: frame, kind, detail) once the last
    chunk is out.
    """
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size: {chunk_size!r} is not a positive number of messages")
    if dialect not in (None, "auto"):
        dialect = Dialect.parse(dialect)
    sink = MessageSink(dialect, ports=_normalise_ports(ports), engine="bulk")
    prefer_system_allocator()
    with open_source(path, progress=progress) as capture:
        engine = FastEngine(capture, sink, window=STREAM_WINDOW, keep_pass_one=False)
        ids = _Ids(engine)
        steps = engine.steps()
        while True:
            with gc_paused():
                last = next(steps, None)
                if last is None:
                    return
                sink.flush()
                frame = _take_rows(engine, sink, ids, reveal_passwords)
            if last and problems is not None:
                problems += fast_problems(capture, engine, sink, ids.settle())
            for start in range(0, len(frame), chunk_size):
                yield frame.iloc[start:start + chunk_size].reset_index(drop=True)
            if last:
                return


class _Ids:
    """Final connection ids, given as connections appear (by first packet, as at the end)."""

    def __init__(self, engine: FastEngine) -> None:
        self.engine = engine
        self.final = FinalIds(np.zeros(0, np.int64), {})

    def settle(self) -> FinalIds:
        self.final.number(self.engine.first_frame, self.engine.slow_first_frame)
        return self.final


def _take_rows(engine: FastEngine, sink: MessageSink, ids: _Ids,
               reveal_passwords: bool) -> pd.DataFrame:
    """The rows decoded since the last call, as a messages frame; forget what is done."""
    final = ids.settle()
    extra = [_with_final_ids(t, final) for t in engine.bulk_tables]
    engine.bulk_tables = []
    settled = engine.settled
    engine.settled = []
    streaming = engine.streaming_batch()  # still open: records as they stand, for these rows
    if streaming is not None:
        settled = [*settled, streaming]
    for batch in settled:
        batch.conn = final.of_flows(batch.conn)
    pending = {c: st for c, st in sink.conns.items()
               if any(d.tables for d in st.dirs.values())}
    in_extra = set()
    for t in extra:
        in_extra.update(t["conn"].to_numpy().tolist())
    for batch in settled:  # their rows are in extra; their records come with them
        in_extra.difference_update(batch.conn.tolist())
    by_final = {final[c]: c for c in sink.conns}
    states = {final[c]: st for c, st in pending.items()}
    for conn in in_extra:
        states.setdefault(conn, sink.conns[by_final[conn]])
    for conn, st in states.items():
        st.info.conn_id = conn
    records, table, order = build_connections(states, extra, sort=False, settled=settled)
    frame = messages_frame(table, records, reveal_passwords=reveal_passwords,
                           order=order)
    # what is closed and out can go: the reader keeps only open connections
    for c in [c for c, st in sink.conns.items()
              if st.close_ts is not None and not any(d.tables for d in st.dirs.values())]:
        del sink.conns[c]
    return frame

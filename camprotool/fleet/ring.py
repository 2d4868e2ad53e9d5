"""Packets in time order into dumpcap-style ring-buffer files.

Why two pieces: a sensor sees hundreds of phones at once, but the capture
writer's scripted TCP conversations write each connection's packets as the
script goes. :class:`PacketHeap` takes them in any order and gives them back
sorted by time once no script can still write before them; :class:`RingWriter`
writes them as ``dumpcap -b duration:N -b filesize:KB -w PREFIX.pcapng``
would: ``PREFIX_00001_20261130000000.pcapng``, ``PREFIX_00002_…`` (the number,
then the UTC time of the file's first packet), a new file when the current
one has covered its duration or reached its size.
"""

from __future__ import annotations

import heapq
import os
import time
from pathlib import Path

from camprotool.capture.readers import LINKTYPE_ETHERNET
from camprotool.capture.writer import PcapngWriter

_NS = 1_000_000_000


class PacketHeap:
    """A stand-in for a capture writer (``TcpConversation`` writes to it): it holds
    packets until :meth:`pop_before` hands them out in time order."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, bytes]] = []
        self._seq = 0

    def linktype(self, interface: int = 0) -> int:
        return LINKTYPE_ETHERNET

    def write_packet(self, ts_ns: int, frame_bytes: bytes, orig_len: int | None = None, *,
                     interface: int = 0) -> None:
        self._seq += 1  # ties keep the order they were written in
        heapq.heappush(self._heap, (ts_ns, self._seq, frame_bytes))

    def pop_before(self, ts_ns: int | None):
        """Yield ``(ts_ns, frame)`` of every packet earlier than ``ts_ns`` (None: all)."""
        heap = self._heap
        while heap and (ts_ns is None or heap[0][0] < ts_ns):
            ts, _, frame = heapq.heappop(heap)
            yield ts, frame

    def __len__(self) -> int:
        return len(self._heap)


def ring_name(prefix: str, number: int, ts_ns: int) -> str:
    """dumpcap's ring-buffer file name for file ``number`` starting at ``ts_ns``."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(ts_ns // _NS))
    return f"{prefix}_{number:05d}_{stamp}.pcapng"


class RingWriter:
    """Write packets to ring-buffer files in ``folder``; ``paths`` lists them in order."""

    def __init__(self, folder: str | os.PathLike[str], prefix: str, *,
                 seconds: float | None = None, max_bytes: int | None = None) -> None:
        if seconds is None and max_bytes is None:
            raise ValueError("a ring buffer needs seconds=, max_bytes= or both")
        self.folder = Path(folder)
        self.prefix = prefix
        self.span_ns = None if seconds is None else int(seconds * _NS)
        self.max_bytes = max_bytes
        self.paths: list[Path] = []
        self.packets = 0
        self._writer: PcapngWriter | None = None
        self._opened_at = 0
        self._bytes = 0

    def _rotate(self, ts_ns: int) -> PcapngWriter:
        self.close()
        path = self.folder / ring_name(self.prefix, len(self.paths) + 1, ts_ns)
        # dumpcap's default: microsecond timestamps, Ethernet
        writer = self._writer = PcapngWriter(path, tsresol_ns=False)
        self.paths.append(path)
        self._opened_at = ts_ns
        self._bytes = 0
        return writer

    def write(self, ts_ns: int, frame: bytes) -> None:
        writer = self._writer
        if (writer is None
                or (self.span_ns is not None and ts_ns - self._opened_at >= self.span_ns)
                or (self.max_bytes is not None and self._bytes >= self.max_bytes)):
            writer = self._rotate(ts_ns)
        writer.write_packet(ts_ns, frame)
        self._bytes += len(frame) + 32  # the enhanced packet block around it
        self.packets += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> RingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

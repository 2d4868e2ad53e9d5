"""Classic pcap and pcapng readers behind one interface.

Why our own reader instead of dpkt/scapy/pyshark: decoding a long camera-sync
session must be fast and must never lose an exact timestamp.  So the file is
memory-mapped, every record header is read with a precompiled ``struct.Struct``,
packet bytes are handed out as ``memoryview`` slices of the map (no copy) and
timestamps are integer nanoseconds (a float loses the last digits of an epoch
time in ns).

Damage is data, not an exception: once a file has been recognised as a capture,
iterating it never raises.  A record cut by the end of the file, an impossible
block length or a packet on a link type we cannot decode is recorded in
``CaptureFile.problems`` and the reader goes on (or stops, when the rest of the
file cannot be found reliably).  Only ``open_capture`` raises, for files that
are not captures at all.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import sys
from collections.abc import Callable, Iterator

from camprotool.capture.records import (
    CaptureFormatError,
    CaptureProblem,
    RawPacket,
    RecordReader,
    bad_byte_order,
    capture_format,
    section_byte_order,
)
from camprotool.capture.records import linktype_name as linktype_name

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_LOOP",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "SUPPORTED_LINKTYPES",
    "CaptureFile",
    "CaptureFormatError",
    "CaptureProblem",
    "RawPacket",
    "open_capture",
]

# Link-layer header types (https://www.tcpdump.org/linktypes.html).  They live
# here because the reader decides which packets it can hand on.
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
#: 12 and 14 are DLT_RAW values of some BSDs that leak into files as raw IP.
SUPPORTED_LINKTYPES: frozenset[int] = frozenset(
    {0, 1, 12, 14, 101, 108, 113, 228, 229, 276}
)


class CaptureFile(RecordReader):
    """An open pcap or pcapng file; iterate it for ``RawPacket`` values.

    Each iteration starts again at the first packet and clears ``problems``
    and ``counts`` (the packet layer adds its own problems during the same
    pass).  ``progress``, if given, is called with the byte offset reached
    about every MiB and once at the end, for a CLI progress bar.  The record
    formats themselves are read by ``RecordReader`` (shared with the stream
    reader); this class maps the file and runs one pass over all of it.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | bytes | bytearray | memoryview,
        *,
        progress: Callable[[int], None] | None = None,
        linktypes: frozenset[int] | None = SUPPORTED_LINKTYPES,
    ) -> None:
        self._mmap: mmap.mmap | None = None
        self._view: memoryview
        if isinstance(source, bytes | bytearray | memoryview):
            self.name = "<memory>"
            self._view = memoryview(source).cast("B")
        else:
            self.name = os.fspath(source)
            try:
                with open(self.name, "rb") as fh:
                    size = os.fstat(fh.fileno()).st_size
                    if size == 0:
                        raise CaptureFormatError(f"{self.name}: empty file, not a capture")
                    self._mmap = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except FileNotFoundError as exc:
                # the path once, as OSError words it: [Errno 2] capture file not found: 'x'
                raise FileNotFoundError(exc.errno, "capture file not found", self.name) from None
            except IsADirectoryError as exc:
                raise CaptureFormatError(f"{self.name}: is a directory, not a capture") from exc
            self._view = memoryview(self._mmap)
        self.size: int = len(self._view)
        self.progress = progress
        self.linktypes = linktypes
        self._start()
        try:
            self.format: str = self._detect()
        except CaptureFormatError:
            self.close()
            raise

    # -- set-up ----------------------------------------------------------
    def _detect(self) -> str:
        """The format, with the pcap file header read; raises for what is not a capture."""
        v, name, size = self._view, self.name, self.size
        if size == 0:
            raise CaptureFormatError(f"{name}: empty file, not a capture")
        if size < 4:
            raise CaptureFormatError(f"{name}: only {size} bytes, too short to be a capture")
        fmt = capture_format(v, name)
        if fmt == "pcap":
            if size < 24:
                raise CaptureFormatError(
                    f"{name}: pcap file header cut short ({size} of 24 bytes)"
                )
            self._read_pcap_header(v)
        else:
            if size < 12:
                raise CaptureFormatError(
                    f"{name}: pcapng section header cut short ({size} bytes)"
                )
            if section_byte_order(v, 0) is None:
                raise bad_byte_order(name)
        return fmt

    # -- iteration -------------------------------------------------------
    closed = False

    def __iter__(self) -> Iterator[RawPacket]:
        if self.closed:
            raise ValueError(f"{self.name}: capture file is closed")
        self._start()
        v = self._view
        # Packets are slices of the map itself: ``cut`` is the view, no copy.
        records = self._pcap_records if self.format == "pcap" else self._pcapng_blocks
        return records(v, v, 24 if self.format == "pcap" else 0, self.size, at_end=True,
                       progress=self.progress, step=self._progress_step())

    def _progress_step(self) -> int:
        return max(1 << 20, self.size // 1000) if self.progress else sys.maxsize

    # -- lifetime --------------------------------------------------------
    def close(self) -> None:
        """Release the map.  Packets still referenced keep it alive until dropped."""
        self.closed = True
        view = getattr(self, "_view", None)
        if view is not None:
            with contextlib.suppress(BufferError):
                view.release()
        mm = self._mmap
        self._mmap = None
        if mm is not None:
            # Slices handed out may still point into the map: it is then freed with them.
            with contextlib.suppress(BufferError):
                mm.close()

    def __enter__(self) -> CaptureFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<CaptureFile {self.name!r} {getattr(self, 'format', '?')} {self.size} bytes>"


def open_capture(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview,
    *,
    progress: Callable[[int], None] | None = None,
    linktypes: frozenset[int] | None = SUPPORTED_LINKTYPES,
) -> CaptureFile:
    """Open a pcap or pcapng capture (a path, or the file's bytes) for reading.

    The format is detected by its magic number.  Raises ``CaptureFormatError``
    if it is neither, ``FileNotFoundError`` naming the path if it is missing.
    ``linktypes`` chooses the link types whose packets are yielded (``None``:
    all); packets on others are skipped and reported once per link type.
    """
    return CaptureFile(source, progress=progress, linktypes=linktypes)

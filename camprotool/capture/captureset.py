"""Several capture files read as one capture: a *capture set*.

Why: traffic comes as many files. ``dumpcap -b filesize:...`` writes a ring
buffer (``cam_00001_20261201093000.pcapng``, ``cam_00002_...``) and several
sensors each write their own. Read one file at a time, a connection that
crosses a file boundary is cut in two: its second half starts mid-stream and
its data connection loses the announcement made in the first file. A
:class:`CaptureSet` hands out the packets of all its files as one sequence,
merged by timestamp exactly as ``mergecap`` merges them (the earliest packet
at the head of any file comes next; a file's own packets keep their order;
ties go to the file that starts first), and numbered anew from 1. Every
decoder that reads a :class:`~camprotool.capture.readers.CaptureFile` reads a
set the same way, so the tables equal those of the merged file.

Files are ordered by their first timestamp, not by name (the name only breaks
ties). A file that cannot be
read at all (missing, empty, not a capture) is a ``bad_file`` problem and the
others still decode; only when no file can be read is that an error. Problems
a file's reader finds (a truncated last record, snaplen cuts...) keep their
kind, get the merged frame number and name the file in their detail.
"""

from __future__ import annotations

import bisect
import glob
import heapq
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from camprotool.capture.allocator import drop_file_pages
from camprotool.capture.readers import (
    SUPPORTED_LINKTYPES,
    CaptureFile,
    CaptureFormatError,
    CaptureProblem,
    RawPacket,
    open_capture,
)

__all__ = ["CaptureSet", "CaptureSource", "expand_sources", "open_source"]

#: one capture (a path, or a file's bytes) or a capture set (a list of paths, or a glob)
CaptureSource = str | os.PathLike[str] | bytes | Sequence[str | os.PathLike[str]]

_GLOB_CHARS = frozenset("*?[")
_new_raw = tuple.__new__
_PROGRESS_EVERY = 4096  # records between progress calls


def _is_glob(text: str) -> bool:
    return bool(_GLOB_CHARS & set(text)) and not os.path.exists(text)


def expand_sources(source: object) -> list[str] | None:
    """The files of a capture set, or None when ``source`` is one capture (a path or
    the bytes of a file).

    A list (or tuple) of paths is a set in any case; a string with ``*``, ``?``
    or ``[`` that is not an existing file's name is a glob. Raises
    ``FileNotFoundError`` for a glob that matches nothing and ``ValueError``
    for an empty list or one holding something other than paths.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        return None
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        if not isinstance(text, str) or not _is_glob(text):
            return None
        found = sorted(p for p in glob.glob(text) if not os.path.isdir(p))
        if not found:
            raise FileNotFoundError(f"no capture file matches {text!r}")
        return found
    if isinstance(source, Iterable):
        paths = []
        for item in source:
            if not isinstance(item, str | os.PathLike):
                raise ValueError(f"a capture set is a list of paths; {item!r} is not a path")
            paths.append(os.fspath(item))
        if not paths:
            raise ValueError("an empty list of captures: give at least one path")
        return [str(p) for p in paths]
    raise ValueError(f"{source!r} is not a capture: give a path, a list of paths or a glob")


def open_source(
    source: CaptureSource,
    *,
    progress: Callable[[int], None] | None = None,
) -> CaptureFile | CaptureSet:
    """Open one capture, or a capture set (a list of paths, or a glob)."""
    paths = expand_sources(source)
    if paths is None:
        return open_capture(source, progress=progress)  # type: ignore[arg-type]
    if len(paths) == 1:  # one file: the same tables, without the merge
        return open_capture(paths[0], progress=progress)
    name = os.fspath(source) if isinstance(source, str | os.PathLike) else None
    return CaptureSet(paths, progress=progress, name=name)


class _Member:
    """One file of a set: its reader and where its frames went in the merged order."""

    def __init__(self, path: str, capture: CaptureFile, given: int, first_ts: int | None):
        self.path = path
        self.label = os.path.basename(path)
        self.capture = capture
        self.given = given
        self.first_ts = first_ts
        self.base = (np.frombuffer(capture._view, np.uint8).ctypes.data
                     if capture.size else 0)
        # runs of consecutive frames: local frame -> merged frame (both 1-based)
        self.local_starts: list[int] = []
        self.merged_starts: list[int] = []
        self.last: RawPacket | None = None

    def merged_frame(self, local: int | None) -> int | None:
        if local is None or not self.local_starts:
            return local
        k = max(bisect.bisect_right(self.local_starts, local) - 1, 0)
        return self.merged_starts[k] + (local - self.local_starts[k])

    def consumed(self) -> int:
        """Bytes of the file up to the last packet handed out."""
        last = self.last
        if last is None or not len(last.data):
            return 0
        return int(np.frombuffer(last.data, np.uint8).ctypes.data - self.base)


class CaptureSet:
    """An open capture set: iterate it for ``RawPacket`` values in merged order.

    It offers what decoders use of a :class:`CaptureFile` (``name``,
    ``format``, ``frames``, ``problems``, ``counts``, ``skipped``,
    ``add_problem``, iteration that starts again each time) so they read
    a set as they read a file. ``paths`` lists the files in merged order.
    """

    closed = False

    def __init__(
        self,
        paths: Sequence[str],
        *,
        progress: Callable[[int], None] | None = None,
        name: str | None = None,
        linktypes: frozenset[int] | None = SUPPORTED_LINKTYPES,
    ) -> None:
        self.progress = progress
        self.linktypes = linktypes
        self._bad: list[CaptureProblem] = []
        members: list[_Member] = []
        errors = []
        for given, path in enumerate(paths):
            try:
                cap = open_capture(path, linktypes=linktypes)
            except (CaptureFormatError, OSError) as exc:
                errors.append(str(exc))
                self._bad.append(CaptureProblem(None, "bad_file",
                                                f"{path}: {_reason(exc)}; file skipped"))
                continue
            first = next(iter(cap), None)
            members.append(_Member(path, cap, given, None if first is None else first.ts_ns))
        if not members:
            raise CaptureFormatError(
                f"none of the {len(paths)} files is a readable capture ({errors[0]})")
        # merged order: by first timestamp (files without packets last), then by name
        # (dumpcap numbers the files of a ring buffer), then as given
        members.sort(key=lambda m: (m.first_ts is None, m.first_ts or 0, m.path, m.given))
        self.members = members
        self.paths = [m.path for m in members]
        self.name = name or f"{members[0].path} (+{len(paths) - 1} more files)"
        formats = {m.capture.format for m in members}
        self.format = formats.pop() if len(formats) == 1 else "mixed"
        self.size = sum(m.capture.size for m in members)
        self._start()

    # -- what decoders use of a CaptureFile ---------------------------------
    def _start(self) -> None:
        self.problems: list[CaptureProblem] = []
        self.counts: Counter[str] = Counter()
        self.skipped: Counter[int] = Counter()
        self.frames = 0

    def add_problem(self, frame: int, kind: str, detail: str) -> None:
        """A problem found in a packet (its merged frame), as the packet decoders report."""
        self.counts[kind] += 1
        self.problems.append(CaptureProblem(frame, kind, detail))

    def __iter__(self) -> Iterator[RawPacket]:
        if self.closed:
            raise ValueError(f"{self.name}: capture set is closed")
        return self._merged()

    def _merged(self) -> Iterator[RawPacket]:
        self._start()
        for m in self.members:
            m.local_starts, m.merged_starts, m.last = [], [], None
        streams = [self._tagged(k, m.capture) for k, m in enumerate(self.members)]
        members = self.members
        progress = self.progress
        frame = 0
        prev = -1
        for _ts, k, raw in heapq.merge(*streams):
            frame += 1
            m = members[k]
            if k != prev:
                m.local_starts.append(raw[0])
                m.merged_starts.append(frame)
                prev = k
            m.last = raw
            if progress is not None and not frame % _PROGRESS_EVERY:
                progress(self.consumed())
            yield _new_raw(RawPacket, (frame, raw[1], raw[2], raw[3], raw[4], raw[5]))
        self.frames = frame
        self._gather_problems()
        if progress is not None:
            progress(self.size)

    @staticmethod
    def _tagged(k: int, capture: CaptureFile) -> Iterator[tuple[int, int, RawPacket]]:
        # (timestamp, file rank, packet): heapq.merge then takes the earliest head,
        # ties to the file that starts first; the packet itself is never compared
        # because a file's frames are unique and increasing.
        for raw in capture:
            yield raw[1], k, raw

    def _gather_problems(self) -> None:
        """After a pass: the files' own problems, in merged frames, with the set's own."""
        found = list(self._bad)
        for m in self.members:
            cap = m.capture
            for p in cap.problems:
                found.append(CaptureProblem(m.merged_frame(p.frame), p.kind,
                                            f"{m.label}: {p.detail}"))
            self.counts.update(cap.counts)
            self.skipped.update(cap.skipped)
        self.counts["bad_file"] += len(self._bad)
        found += self.problems  # the packet decoders' (merged frames already)
        found.sort(key=lambda p: (p.frame is None, p.frame or 0))
        self.problems = found

    # -- memory -----------------------------------------------------------
    def consumed(self) -> int:
        """Bytes of all files up to the packets handed out so far."""
        return sum(m.consumed() for m in self.members)

    def release_consumed(self) -> None:
        """Let the kernel drop the file pages of packets already handed out (they stay in
        the page cache): resident memory then follows the reader, not the set's size."""
        for m in self.members:
            mm = m.capture._mmap
            if mm is not None:
                drop_file_pages(mm, 0, m.consumed())

    # -- lifetime ---------------------------------------------------------
    def close(self) -> None:
        """Close every file of the set."""
        self.closed = True
        for m in self.members:
            m.last = None
            m.capture.close()

    def __enter__(self) -> CaptureSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<CaptureSet {self.name!r} {len(self.members)} files {self.size} bytes>"


def _reason(exc: BaseException) -> str:
    """The error without the path the problem row already names."""
    text = str(exc)
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, OSError) and not isinstance(exc, CaptureFormatError) and exc.strerror:
        return exc.strerror
    return text.split(": ", 1)[1] if ": " in text else text

"""The pcap record walk, one window ahead, on a second core.

Why: pass one is a chain per window of the record walk (:func:`kernels.index_pcap`:
record headers and packet headers into columns, half of pass one's time) and
the work on its columns that must follow in order (each packet's flow, the
in-order check). The walk of the next window needs nothing of that work, only
where the last window ended, and the kernel runs without the GIL, so a worker
thread walks window k + 1 while the caller works on window k. On 262,453
packets this takes pass one from about 30 ms to about 21 (a first read).

Bounded: two sets of columns (16 columns of ``window`` records, 8 bytes each)
serve the whole walk. The worker walks into the set the caller gave back, so it
is at most one window ahead. It stops when the caller lets go (``close``, or
the generator that uses it is closed), and the caller never sees the file
unmapped under a walk: ``close`` waits for it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from camprotool.capture.fast import kernels as K

_I64 = np.int64


@dataclass
class Walked:
    """One window of records, as :func:`kernels.index_pcap` filled its columns (length
    ``window``; the first ``n`` are records), and where the walk stopped in the file
    and what its next record needs."""

    n: int
    end: int
    need: int
    #: the columns below as :func:`new_columns` made them (to be filled again)
    columns: tuple[np.ndarray, ...] = field(repr=False)
    rec_off: np.ndarray
    cap_len: np.ndarray
    orig_len: np.ndarray
    ts: np.ndarray
    status: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    seq: np.ndarray
    ack: np.ndarray
    flags: np.ndarray
    pay_off: np.ndarray
    pay_len: np.ndarray
    missing: np.ndarray
    half: np.ndarray


def new_columns(window: int) -> tuple[np.ndarray, ...]:
    """Unfilled columns for one window of :func:`walk_window`."""
    return (*(np.empty(window, _I64) for _ in range(4)), np.empty(window, np.int8),
            *(np.empty(window, _I64) for _ in range(11)))


def walk_window(buf: np.ndarray, off: int, size: int, big: bool, mult: int, linktype: int,
                columns: tuple[np.ndarray, ...]) -> Walked:
    """Up to a window of records from ``off`` (the length of ``columns``,
    :func:`new_columns`): :func:`kernels.index_pcap` into ``columns``."""
    n, end, need = K.index_pcap(buf, off, size, big, mult, len(columns[0]), linktype,
                                *columns)
    return Walked(n, end, need, columns, *columns)


def walk_in_line(buf: np.ndarray, off: int, size: int, big: bool, mult: int, linktype: int,
                 window: int) -> Iterator[Walked]:
    """The windows :class:`RecordWalk` gives, walked in the caller's thread as they are
    asked for, each in new columns (the caller may keep views of them)."""
    while True:
        walked = walk_window(buf, off, size, big, mult, linktype, new_columns(window))
        yield walked
        if walked.n < window:
            return
        off = walked.end


class RecordWalk:
    """The windows of a pcap file's records from ``off``, walked ahead by a worker thread;
    iterate to get them in order (the last one has fewer than ``window`` records).

    The caller gives each window's columns back (:meth:`give_back`) once it holds
    no view of them, and two sets of columns serve the whole walk. Why: fresh
    columns are fresh pages, and their faults were a third of the walk on a first
    read (4 MB a window).

    Use as a context manager, or call :meth:`close`: the worker is stopped and
    waited for, so ``buf`` may be let go afterwards. An error in the walk is raised
    where its window would have come.
    """

    def __init__(self, buf: np.ndarray, off: int, size: int, big: bool, mult: int,
                 linktype: int, window: int) -> None:
        self._args = (buf, size, big, mult, linktype)
        self._window = window
        self._ready: queue.Queue[Walked | BaseException] = queue.Queue(maxsize=1)
        # columns for the walks to come, made by the caller: a thread's allocations come
        # from an arena of its own, where memory the caller frees is not used again
        self._free: queue.SimpleQueue[tuple[np.ndarray, ...] | None] = queue.SimpleQueue()
        for _ in range(2):
            self._free.put(new_columns(window))
        self._stop = threading.Event()
        self._done = False
        self._worker = threading.Thread(target=self._walk, args=(off,),
                                        name="camprotool-record-walk", daemon=True)
        self._worker.start()

    def _walk(self, off: int) -> None:
        buf, size, big, mult, linktype = self._args
        try:
            while not self._stop.is_set():
                columns = self._free.get()
                if columns is None:
                    return
                walked = walk_window(buf, off, size, big, mult, linktype, columns)
                if not self._hand_over(walked) or walked.n < self._window:
                    return
                off = walked.end
        except BaseException as exc:  # MemoryError and the like: the caller raises it
            self._hand_over(exc)

    def _hand_over(self, item: Walked | BaseException) -> bool:
        """Queue ``item`` for the caller; False if the caller let go first."""
        while not self._stop.is_set():
            try:
                self._ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> RecordWalk:
        return self

    def __next__(self) -> Walked:
        if self._done:
            raise StopIteration
        item = self._ready.get()
        if isinstance(item, BaseException):
            self._done = True
            self.close()
            raise item
        if item.n < self._window:
            self._done = True
        return item

    def give_back(self, walked: Walked) -> None:
        """The caller holds no view of ``walked``'s columns any more: the walk may fill
        them again."""
        self._free.put(walked.columns)

    def close(self) -> None:
        """Stop the worker and wait for it (a walk in progress finishes first)."""
        self._stop.set()
        self._free.put(None)
        with contextlib.suppress(queue.Empty):  # a window handed over: the worker is free
            self._ready.get_nowait()
        self._worker.join()

    def __enter__(self) -> RecordWalk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

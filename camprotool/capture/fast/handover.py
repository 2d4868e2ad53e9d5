"""A producer on a worker thread handing jobs to the caller's thread, one at a time.

Why this way round (pass two of the fast engine): the engine's bookkeeping
per window (flows, packets, joining the lines) and decoding those lines
each hold the GIL about half their time and spend the rest in compiled
loops, so the two overlap on two cores. The caller's thread does the
decoding because what decoding makes lives on (the message tables), and
glibc serves each thread from an arena of its own: tables made on a worker
were freed later into the worker's arena, where the caller's next buffers
could not reuse them (10 MB more at the peak on 185,000 messages). The
worker's own buffers are a window's scratch, freed as it goes.

The producer runs ``produce(hand)``; ``hand(job)`` waits while ``depth``
jobs are handed and not done. :meth:`Handover.jobs` yields the jobs on the
caller's thread and re-raises what the producer raised, in order after the
jobs handed before it. The producer starts as the ``with`` block opens; as
it closes, also early (an error of the caller's, a ``KeyboardInterrupt``),
the producer is stopped at its next ``hand`` and its thread waited for, so
nothing runs on after the read.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

_J = TypeVar("_J")


class Stopped(Exception):
    """Raised in the producer by ``hand`` once the caller has stopped taking jobs."""


class _Done:
    """The producer's last word: how it ended (None: it finished)."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class Handover(Generic[_J]):
    """Run ``produce(hand)`` on a worker thread and hand its jobs to the caller.

    ``depth``: how many jobs may be handed and not yet done. With 1, the
    producer waits at ``hand`` until the caller is done with the job before:
    two windows' buffers are alive at once (the one decoded, the one being
    made), not three.
    """

    def __init__(self, produce: Callable[[Callable[[_J], None]], None], *,
                 depth: int = 1, name: str = "camprotool-handover") -> None:
        if depth < 1:
            raise ValueError(f"depth: {depth!r} is not a positive number of jobs")
        self._produce = produce
        self._depth = depth
        self._waiting: collections.deque[_J | _Done] = collections.deque()
        self._busy = 0  # jobs the caller took and is not done with
        self._stopped = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _hand(self, job: _J) -> None:
        with self._changed:
            while len(self._waiting) + self._busy >= self._depth and not self._stopped:
                self._changed.wait()
            if self._stopped:
                raise Stopped
            self._waiting.append(job)
            self._changed.notify_all()

    def check(self) -> None:
        """Raise :class:`Stopped` in the producer if the caller has stopped: for a
        producer with long stretches between jobs (a ``KeyboardInterrupt`` should not
        wait for the rest of a capture)."""
        if self._stopped:
            raise Stopped

    def _run(self) -> None:
        done = _Done(None)
        try:
            self._produce(self._hand)
        except Stopped:
            pass
        except BaseException as exc:  # handed to the caller, re-raised there
            done = _Done(exc)
        with self._changed:
            self._waiting.append(done)
            self._changed.notify_all()

    def __enter__(self) -> Handover[_J]:
        """Start the producer."""
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop the producer at its next ``hand`` (if it is not done) and wait for it."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        self._thread.join()

    def jobs(self) -> Iterator[_J]:
        """The producer's jobs, in order, on the caller's thread; then its error if any.
        A job is done when the caller asks for the next one."""
        while True:
            with self._changed:
                while not self._waiting:
                    self._changed.wait()
                item = self._waiting.popleft()
                self._busy += 1
                self._changed.notify_all()
            if isinstance(item, _Done):
                if item.error is not None:
                    raise item.error
                return
            yield item
            del item
            with self._changed:
                self._busy -= 1
                self._changed.notify_all()

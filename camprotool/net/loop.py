"""A private asyncio event loop in a daemon thread, for the blocking facades.

Why: a Jupyter kernel already runs an event loop in the main thread, so
``asyncio.run`` (or ``loop.run_until_complete``) there fails with "this event
loop is already running". The synchronous :class:`~camprotool.net.Client`,
:class:`~camprotool.net.EmulatorServer` and :class:`~camprotool.net.Proxy`
therefore run their coroutines on a loop of their own in a background thread
and wait for the result with ``concurrent.futures`` (which never touches the
caller's loop). A notebook cell that calls them blocks only for as long as
the one request takes, and Ctrl-C / "interrupt kernel" cancels that request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An event loop running forever in a daemon thread until :meth:`stop`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        ready = threading.Event()

        def main() -> None:
            _leave_signals_to_the_main_thread()
            loop = asyncio.new_event_loop()
            self.loop = loop
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                _cancel_all(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
                loop.close()

        self._thread = threading.Thread(target=main, name=self.name, daemon=True)
        self._thread.start()
        ready.wait()

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (cancelled on timeout/Ctrl-C)."""
        if self.loop is None or not self.running:
            coro.close()
            raise RuntimeError(f"{self.name}: the background loop is not running")
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError(
                f"{self.name}: a blocking method was called from the object's own event loop "
                "thread (for example inside a push callback); use the Async* class there"
            )
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            # Since 3.11 this is the builtin TimeoutError, so the coroutine's own
            # timeout errors (ReplyTimeout) land here too: only ours is rewritten.
            if future.done():
                raise
            future.cancel()
            raise TimeoutError(f"{self.name}: no result within {timeout} s") from None
        except BaseException:
            future.cancel()  # KeyboardInterrupt in a notebook cancels the request
            raise

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a plain function on the loop thread and return its result."""
        if self.in_loop_thread():
            return fn(*args)

        async def wrapper() -> T:
            return fn(*args)

        return self.run(wrapper())

    def stop(self, timeout: float = 5.0) -> None:
        loop, thread = self.loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive() and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        if threading.current_thread() is not thread:
            thread.join(timeout)
        self._thread = None


#: what a terminal or a supervisor sends the process; Python handles them in the main thread
_PROCESS_SIGNALS = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                    if hasattr(signal, name)]


def _leave_signals_to_the_main_thread() -> None:
    """Block Ctrl-C and the stop signals in this thread (and the threads it starts).

    Why: the kernel hands a process-wide signal to any thread that does not
    block it. Taken by this thread, Python's handler only marks it for the
    main thread, and a main thread that waits in ``input()`` (readline's
    ``select``) is never woken: Ctrl-C at ``camprotool client``'s prompt then
    did nothing until the next key, about once in three runs on a busy machine.
    """
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, _PROCESS_SIGNALS)


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))

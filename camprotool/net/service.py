"""What the server and the proxy share: run on the caller's loop or on a thread of their own.

A subclass implements ``start_async``/``stop_async`` (and ``running``); this
base adds the blocking form (``start()``/``stop()``/``with``, a private loop
in a background thread: see :mod:`camprotool.net.loop`) and the asyncio
forms (``async with``, ``await serve()``).
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TypeVar

from camprotool.net.loop import LoopThread

T = TypeVar("T")
S = TypeVar("S", bound="BackgroundService")


class BackgroundService(ABC):
    _thread_name = "camprotool-service"

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: LoopThread | None = None
        self._stopped: asyncio.Event | None = None

    # what each service provides
    @property
    @abstractmethod
    def running(self) -> bool:
        """Whether the service is listening."""

    @abstractmethod
    async def start_async(self: S) -> S:
        """Bind and start serving on the running loop; return self."""

    @abstractmethod
    async def stop_async(self) -> None:
        """Stop listening, close connections, flush recordings."""

    # asyncio forms
    async def serve(self) -> None:
        """Start (if needed), run until cancelled or :meth:`stop`, then stop."""
        if not self.running:
            await self.start_async()
        assert self._stopped is not None
        try:
            await self._stopped.wait()
        finally:
            if self.running:
                await asyncio.shield(self.stop_async())

    async def __aenter__(self: S) -> S:
        return await self.start_async()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_async()

    # blocking forms
    def start(self: S, timeout: float = 10.0) -> S:
        """Run in a background thread with its own event loop; return once listening."""
        if self.running:
            raise RuntimeError(f"{type(self).__name__} is already running")
        thread = LoopThread(self._thread_name)
        thread.start()
        try:
            thread.run(self.start_async(), timeout)
        except BaseException:
            thread.stop()
            raise
        self._thread = thread
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop (whichever way it was started); idempotent."""
        thread, self._thread = self._thread, None
        if thread is not None:
            if thread.running and self.running:
                with contextlib.suppress(RuntimeError, TimeoutError):
                    thread.run(self.stop_async(), timeout)
            thread.stop()
        elif self.running and self._loop is not None and not self._loop.is_closed():
            loop = self._loop
            loop.call_soon_threadsafe(lambda: loop.create_task(self.stop_async()))

    def __enter__(self: S) -> S:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run_on_loop(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` on the service's loop thread (directly if already there or stopped)."""
        loop = self._loop
        if loop is None or loop.is_closed() or not self.running:
            return fn()
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            return fn()
        if self._thread is not None:
            return self._thread.call(fn)

        async def wrapper() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), loop).result(10)



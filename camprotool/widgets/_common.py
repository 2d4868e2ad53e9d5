"""What the panels share: one-line error texts, a debouncer, a one-job worker,
figures shown as PNG in Output widgets.

Threading model. A button's click handler runs on the kernel's main thread
and must return at once, so every network call or capture load runs on a
:class:`Worker` (one thread per panel: requests stay in order, and a panel
never has two of them in flight). Messages arrive on the client's own loop
thread. Neither thread touches a widget directly in a loop: they update plain
Python state under a lock and ask a :class:`Debouncer` for a redraw, which
sets a few ``value``/``outputs`` traits from its timer thread (ipywidgets
sends those over the comm from any thread). Bursts of messages thus cost one
redraw, and the client's loop thread never waits for rendering.
"""

from __future__ import annotations

import base64
import concurrent.futures
import html
import io
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("camprotool.widgets")

#: matplotlib's rc_context (used by the plots for CJK fonts) changes global state:
#: figures are built and rendered one at a time across all panels.
PLOT_LOCK = threading.Lock()

OK, ERROR, INFO = "#2b7a2b", "#c62828", "#555555"


def describe_error(exc: BaseException) -> str:
    """One line a person can read, never a traceback."""
    from camprotool.net.errors import LoginFailed

    if isinstance(exc, LoginFailed):
        text = f"{exc.command} refused by the server: {exc.reason}"
    elif isinstance(exc, OSError) and exc.strerror and str(exc).startswith("[Errno"):
        # a bare OSError ("[Errno 2] ..."): keep its words and the file it names
        filename = exc.filename
        text = exc.strerror if not filename or str(filename) in exc.strerror else \
            f"{filename}: {exc.strerror}"
    elif isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    else:
        text = str(exc)
        if not text:
            name = type(exc).__name__
            text = {"CancelledError": "cancelled", "TimeoutError": "timed out"}.get(name, name)
    line = " ".join(text.split())  # one line
    return line if len(line) <= 400 else line[:399] + "…"


def status_html(text: str, color: str = INFO, icon: str = "") -> str:
    prefix = f"{icon} " if icon else ""
    return (f'<span style="color:{color};white-space:pre-wrap">{prefix}'
            f"{html.escape(text)}</span>")


class Debouncer:
    """Call ``fn`` once, ``delay`` seconds after the first of a burst of :meth:`trigger` calls.

    Runs of ``fn`` never overlap; an exception in it is logged, not raised.
    """

    def __init__(self, delay: float, fn: Callable[[], Any], name: str = "redraw") -> None:
        self.delay = delay
        self.fn = fn
        self.name = name
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._closed = False

    def trigger(self) -> None:
        with self._lock:
            if self._closed or self._timer is not None:
                return
            timer = threading.Timer(self.delay, self._fire)
            timer.name = f"camprotool-{self.name}"
            timer.daemon = True
            self._timer = timer
        timer.start()

    @property
    def pending(self) -> bool:
        with self._lock:
            return self._timer is not None

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
            if self._closed:
                return
        self._run()

    def _run(self) -> None:
        with self._run_lock:
            try:
                self.fn()
            except Exception:
                log.exception("%s failed", self.name)

    def flush(self) -> None:
        """Run now (cancelling a pending run)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self._run()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


class Worker:
    """One background thread running a panel's jobs one at a time.

    :meth:`submit` refuses a job while another runs (the panels disable their
    buttons meanwhile, so this only guards against programmatic clicks).
    """

    def __init__(self, name: str) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._current: concurrent.futures.Future | None = None
        self.label: str | None = None

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._current is not None and not self._current.done()

    def submit(self, label: str, fn: Callable[[], Any]) -> concurrent.futures.Future | None:
        with self._lock:
            if self._current is not None and not self._current.done():
                return None
            self.label = label
            self._current = self._pool.submit(fn)
            return self._current

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running job; whether it finished within ``timeout``."""
        with self._lock:
            current = self._current
        if current is None:
            return True
        try:
            current.result(timeout)
        except concurrent.futures.TimeoutError:
            return False
        except BaseException:  # the job reports its own errors
            pass
        return True

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def figure_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", facecolor="white", dpi=80)
    return buf.getvalue()


def png_output(png: bytes, text: str = "<Figure>") -> dict:
    """A display_data output for an ``Output`` widget's ``outputs`` trait."""
    return {"output_type": "display_data",
            "data": {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": text},
            "metadata": {}}


def text_output(text: str) -> dict:
    return {"output_type": "display_data", "data": {"text/plain": text}, "metadata": {}}


def show_figure(out: Any, build: Callable[[], Any]) -> Any:
    """Build a Figure and show it as the only output of ``out`` (any thread).

    A failure shows its one-line description instead; returns the Figure or None.
    """
    try:
        with PLOT_LOCK:
            fig = build()
            png = figure_png(fig)
    except Exception as exc:
        log.debug("plot failed", exc_info=True)
        out.outputs = (text_output(f"could not draw this plot: {describe_error(exc)}"),)
        return None
    out.outputs = (png_output(png, f"<Figure: {_title(fig)}>"),)
    return fig


def _title(fig: Any) -> str:
    try:
        return fig.axes[0].get_title() or "figure"
    except (AttributeError, IndexError):
        return "figure"


def close_all(widgets: Iterable[Any]) -> None:
    for w in widgets:
        try:
            w.close()
        except Exception:  # closing is best effort
            log.debug("closing %r failed", w, exc_info=True)

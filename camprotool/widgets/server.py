"""``demo_server()``: the demo emulator inside the kernel, so a notebook needs no terminal.

::

    import camprotool as cpt
    srv = cpt.demo_server()          # started once per kernel; later calls return it
    panel = cpt.widgets.ClientPanel.for_server(srv)
    cpt.demo_server(stop=True)       # or srv.stop()

It is an :class:`~camprotool.net.EmulatorServer` with the Contract's demo
scenario (demo/demo owns DEMO0001-DEMO0003, bob/bob owns DEMO0001,
alice/alice none, CAM00001-CAM00020 unbound, camera password 1234) on
127.0.0.1 with ports the system picks, so re-running a cell never collides
with another server. It runs on its own event loop in a daemon thread.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from camprotool.net import EmulatorServer

__all__ = ["demo_server"]

_lock = threading.Lock()
_server: EmulatorServer | None = None
_atexit = False


def demo_server(stop: bool = False, **options: Any) -> EmulatorServer | None:
    """The kernel's demo :class:`~camprotool.net.EmulatorServer`, started on first call.

    Idempotent: while it runs, every call returns the same server (``options``
    apply only when one is started: ``simulate=0.5``, ``dialect="lp32le:gbk"``,
    ``record="demo.pcapng"``, any :class:`EmulatorServer` keyword). After
    ``srv.stop()`` the next call starts a fresh one. ``stop=True`` stops it and
    returns None.
    """
    global _server, _atexit
    with _lock:
        if stop:
            server, _server = _server, None
            if server is not None:
                server.stop()
            return None
        if _server is not None and _server.running:
            return _server
        from camprotool.net import EmulatorServer

        options.setdefault("host", "127.0.0.1")
        options.setdefault("port", 0)
        server = EmulatorServer(**options).start()
        _server = server
        if not _atexit:
            atexit.register(_stop_at_exit)
            _atexit = True
        return server


def _stop_at_exit() -> None:
    with contextlib.suppress(Exception):
        demo_server(stop=True)

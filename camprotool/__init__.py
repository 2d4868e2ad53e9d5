"""camprotool: decode, check, plot and talk the SocketCommand camera-sync protocol.

The protocol core is imported at once (it is small); the capture, analysis
and network layers load on first use, so ``camprotool --help`` and the
sans-I/O codec do not pay for pandas, matplotlib or asyncio.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

if "pyarrow" not in sys.modules:  # Arrow reads it once, when it is first imported
    # the system allocator gives freed buffers back: camprotool.capture.allocator says why
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

from camprotool._version import __version__
from camprotool.protocol import (
    COMMANDS,
    Decoder,
    Dialect,
    LocalProtocolError,
    Message,
    ProtocolError,
    UnknownMessage,
    decode_all,
    encode,
)

if TYPE_CHECKING:
    from camprotool.analysis.capture import Capture, read_capture
    from camprotool.analysis.live import LiveCapture
    from camprotool.analysis.stream import iter_capture
    from camprotool.dataset import read_dataset
    from camprotool.net import (
        AsyncClient,
        Client,
        EmulatorServer,
        Proxy,
        ReplayServer,
        replay_client,
    )
    from camprotool.pyshark_bridge import pyshark_capture
    from camprotool.pyshark_messages import from_pyshark
    from camprotool.widgets import CaptureExplorer, ClientPanel
    from camprotool.widgets.server import demo_server

_LAZY = {
    "Capture": "camprotool.analysis.capture",
    "LiveCapture": "camprotool.analysis.live",
    "read_capture": "camprotool.analysis.capture",
    "iter_capture": "camprotool.analysis.stream",
    "read_dataset": "camprotool.dataset",
    "AsyncClient": "camprotool.net",
    "Client": "camprotool.net",
    "EmulatorServer": "camprotool.net",
    "Proxy": "camprotool.net",
    "ReplayServer": "camprotool.net",
    "replay_client": "camprotool.net",
    "demo_server": "camprotool.widgets.server",
    "ClientPanel": "camprotool.widgets",
    "CaptureExplorer": "camprotool.widgets",
    # pyshark is imported only when a capture is opened (the `pyshark` extra)
    "pyshark_capture": "camprotool.pyshark_bridge",
    "from_pyshark": "camprotool.pyshark_messages",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'camprotool' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "COMMANDS",
    "AsyncClient",
    "Capture",
    "CaptureExplorer",
    "Client",
    "ClientPanel",
    "Decoder",
    "Dialect",
    "EmulatorServer",
    "LiveCapture",
    "LocalProtocolError",
    "Message",
    "ProtocolError",
    "Proxy",
    "ReplayServer",
    "UnknownMessage",
    "__version__",
    "decode_all",
    "demo_server",
    "encode",
    "from_pyshark",
    "iter_capture",
    "pyshark_capture",
    "read_capture",
    "read_dataset",
    "replay_client",
]

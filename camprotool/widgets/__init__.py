"""Jupyter widgets: an interactive protocol client and a capture explorer.

``ClientPanel`` talks to a server (try ``ClientPanel.for_server(demo_server())``),
``CaptureExplorer`` filters, plots and exports a capture, and ``demo_server``
starts the demo emulator inside the kernel. Names load on first use, so
``camprotool.demo_server`` does not import ipywidgets.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from camprotool.widgets.client_panel import ClientPanel
    from camprotool.widgets.explorer import CaptureExplorer
    from camprotool.widgets.server import demo_server

_LAZY = {
    "ClientPanel": "camprotool.widgets.client_panel",
    "CaptureExplorer": "camprotool.widgets.explorer",
    "demo_server": "camprotool.widgets.server",
}

__all__ = ["CaptureExplorer", "ClientPanel", "demo_server"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'camprotool.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

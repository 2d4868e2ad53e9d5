"""``ipywidgets`` for the widget modules, or one line saying to install the ``jupyter`` extra.

The widget modules import it from here (``from camprotool.widgets._ipywidgets
import widgets``) so that, in an installation of the core library only,
``import camprotool.widgets.explorer`` says which extra is missing.
``camprotool.widgets.server`` (``demo_server``) needs no ipywidgets and does not
import this module.
"""

from __future__ import annotations

from camprotool._extras import missing_extra

try:
    import ipywidgets as widgets  # a plain import keeps the module's types for checkers
except ModuleNotFoundError as exc:
    if exc.name != "ipywidgets":
        raise
    raise missing_extra("ipywidgets", "jupyter", "camprotool's Jupyter widgets") from None

__all__ = ["widgets"]

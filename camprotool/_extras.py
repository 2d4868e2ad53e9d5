"""Optional dependencies: one clear line naming the extra that installs a missing one.

The core library (pipelines, servers, the command line) needs only NumPy, pandas,
pyarrow, matplotlib and numba. The widgets need the ``jupyter`` extra and the
pyshark bridge the ``pyshark`` extra (``pyproject.toml``); without them, importing
those modules fails with a :class:`ModuleNotFoundError` whose message says what to
install, instead of a bare "No module named 'ipywidgets'" that leaves a user
guessing whether camprotool is broken.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def missing_extra(package: str, extra: str, feature: str) -> ModuleNotFoundError:
    """The error for ``feature`` needing ``package``, which the ``extra`` extra installs."""
    return ModuleNotFoundError(
        f"{package} is not installed, and {feature} cannot work without it: install "
        f"camprotool's [{extra}] extra (pip install 'camprotool[{extra}]')",
        name=package,
    )


def require(package: str, extra: str, feature: str) -> ModuleType:
    """Import ``package``, or raise :func:`missing_extra`'s error if it is not installed.

    Only the package itself being absent is translated: an ImportError from inside an
    installed package (a broken dependency of its own) propagates unchanged.
    """
    try:
        return importlib.import_module(package)
    except ModuleNotFoundError as exc:
        if exc.name != package:
            raise
        raise missing_extra(package, extra, feature) from None

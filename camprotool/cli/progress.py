"""A one-line progress bar on stderr, shown only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def progress_bar(
    total: int, label: str, *, min_size: int = 8 << 20
) -> Callable[[int], None] | None:
    """A callback taking the byte offset reached, or None when no bar should show."""
    if total < min_size or not sys.stderr.isatty():
        return None
    start = time.monotonic()

    def update(done: int) -> None:
        frac = min(1.0, done / total) if total else 1.0
        width = 30
        filled = int(frac * width)
        rate = done / max(time.monotonic() - start, 1e-9) / 1e6
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] "
                         f"{frac:6.1%} {rate:6.1f} MB/s")
        if frac >= 1.0:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return update

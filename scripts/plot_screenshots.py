#!/usr/bin/env python3
"""Redraw the plot screenshots in docs/screenshots/: ``python scripts/plot_screenshots.py``.

* ``sync-progress-failed-sync.png``: ``plots.sync_progress`` of
  captures/failed_sync.pcapng (one panel per transfer);
* ``sync-progress-5000-transfers.png``: the summary for 5,000 transfers, from a
  capture benchmarks/gen_transfers.py writes to a temporary directory;
* ``sequence-failed-sync.png``: ``plots.sequence_diagram`` of failed_sync's
  session 0.

Times are shown in UTC so the pictures do not depend on this machine's zone.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from gen_transfers import write  # noqa: E402

import camprotool as cpt  # noqa: E402
from camprotool.analysis import plots  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
DPI = 90


def save(fig, name: str) -> None:
    path = OUT / name
    fig.savefig(path, dpi=DPI, bbox_inches="tight", facecolor="white")
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> None:
    failed = cpt.read_capture(ROOT / "captures" / "failed_sync.pcapng")
    save(plots.sync_progress(failed, tz="UTC"), "sync-progress-failed-sync.png")
    save(plots.sequence_diagram(failed, 0, tz="UTC"), "sequence-failed-sync.png")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "transfers.pcap"
        write(path, 5000)
        many = cpt.read_capture(path)
    save(plots.sync_progress(many, tz="UTC"), "sync-progress-5000-transfers.png")


if __name__ == "__main__":
    main()

"""A first read in a fresh process, and its pass one, for one or more checkouts.

    .venv/bin/python benchmarks/bench_first_read.py CAPTURE [--src DIR ...] [--runs N]

Why: speed.sh's per-file work is the difference of two 1-second processes (most
of each is loading the compiled kernels and exiting), so a change of a few
milliseconds hides in its noise. Here each run is a fresh process that reads the
empty capture first (start-up paid, as speed.sh's subtraction does) and then
CAPTURE once; it reports that read's wall time and pass one's (from the fast
engine's first flow-state allocation to its second, which starts pass two).
Checkouts (``--src``, default this one) run interleaved, so a busy spell of the
machine falls on all of them; medians are printed as a table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EMPTY = Path("~/.cache/camprotool-bench/empty.pcap").expanduser()

#: run in each fresh process: the empty capture, then the capture, timed
_PROBE = """
import sys, time
import camprotool as c
from camprotool.capture.fast import engine
c.read_capture(sys.argv[2]).messages
marks = []
allocate = engine.FastEngine._new_flow_state
def marked(self, size):
    marks.append(time.perf_counter())
    return allocate(self, size)
engine.FastEngine._new_flow_state = marked
t = time.perf_counter()
c.read_capture(sys.argv[1]).messages
read = time.perf_counter() - t
pass_one = marks[1] - marks[0] if len(marks) > 1 else float("nan")
print(read, pass_one)
"""


def run_once(src: Path, capture: Path) -> tuple[float, float]:
    """(read, pass one) in seconds, in a fresh process importing ``src``'s camprotool."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(capture), str(EMPTY)],
        env=dict(os.environ, PYTHONPATH=str(src)), cwd=src, capture_output=True, text=True,
        check=True).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture", type=Path)
    ap.add_argument("--src", action="append", type=Path, default=[],
                    help="a checkout to measure (repeatable; default: this one)")
    ap.add_argument("--runs", type=int, default=15, help="fresh processes each (default 15)")
    args = ap.parse_args()
    if not EMPTY.exists():
        sys.exit(f"{EMPTY} missing: run ../shared/bench/speed.sh once (it makes it)")
    sources = args.src or [REPO]
    times: dict[Path, list[tuple[float, float]]] = {s: [] for s in sources}
    for _ in range(args.runs):
        for src in sources:
            times[src].append(run_once(src, args.capture))
    print(f"{args.capture.name}, {args.runs} fresh processes each, medians, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print("| checkout | first read ms | pass one ms |")
    print("|---|---:|---:|")
    for src, got in times.items():
        read = statistics.median(r for r, _ in got)
        pass_one = statistics.median(p for _, p in got)
        print(f"| {src} | {1e3 * read:.1f} | {1e3 * pass_one:.1f} |")


if __name__ == "__main__":
    main()

"""Packets per second of the capture readers and TCP parser (and tshark, for scale).

Why: decoding must stay faster than the tools it replaces.  The capture is
written by our own writer (1,000,000 packets by default, cached in the
temporary directory), then each stage is timed on it:

    .venv/bin/python benchmarks/bench_readers.py [--packets N] [--tshark]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from camprotool.capture.packets import iter_tcp_segments
from camprotool.capture.readers import open_capture
from camprotool.capture.writer import PcapngWriter, PcapWriter

T0 = 1_700_000_000_000_000_000


def make_capture(path: Path, packets: int, fmt: str) -> None:
    """A long request/response session: 10 data segments, then one pure ACK."""
    writer = PcapngWriter if fmt == "pcapng" else PcapWriter
    with writer(path) as w:
        c = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 9000), T0)
        ts = T0 + 1_000_000
        chunk = bytes(range(256)) * 4
        while (left := packets - 3 - w.packets) > 0:  # 3 more for the FIN exchange
            n = min(10, left - 1)
            if n:
                c.send("s2c", chunk[: 100 * n], ts, segment_size=100, ts_step_ns=1_000)
            c.ack("c2s", ts + 20_000)
            ts += 50_000
        c.close(ts)


def timed(label: str, n_expected: int | None, fn) -> tuple[str, int, float]:
    t = time.perf_counter()
    n = fn()
    dt = time.perf_counter() - t
    if n_expected is not None and n != n_expected:
        raise SystemExit(f"{label}: {n} packets, expected {n_expected}")
    return label, n, dt


def count_raw(path: Path) -> int:
    with open_capture(path) as f:
        n = 0
        for _ in f:
            n += 1
        return n


def count_tcp(path: Path) -> int:
    with open_capture(path) as f:
        n = 0
        for _ in iter_tcp_segments(f):
            n += 1
        return n


def count_tcp_bytes(path: Path) -> int:
    """Touch every payload as a consumer would (length only, still no copy)."""
    with open_capture(path) as f:
        n = total = 0
        for s in iter_tcp_segments(f):
            n += 1
            total += len(s.payload)
        return n


def count_tshark(path: Path) -> int:
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch",
         "-e", "tcp.seq_raw", "-e", "tcp.len"],
        capture_output=True, check=True,
    ).stdout
    return out.count(b"\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--format", choices=["pcapng", "pcap"], default="pcapng")
    ap.add_argument("--tshark", action="store_true", help="also time tshark field extraction")
    ap.add_argument("--dir", default=tempfile.gettempdir())
    args = ap.parse_args()

    path = Path(args.dir) / f"camprotool-bench-readers-{args.packets}.{args.format}"
    if not path.exists():
        t = time.perf_counter()
        tmp = path.with_suffix(".part")
        make_capture(tmp, args.packets, args.format)
        os.replace(tmp, path)
        dt = time.perf_counter() - t
        print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB) in {dt:.1f} s "
              f"({args.packets / dt:,.0f} packets/s)")
    n = args.packets
    rows = [
        timed("read RawPacket", n, lambda: count_raw(path)),
        timed("iter_tcp_segments", n, lambda: count_tcp(path)),
        timed("iter_tcp_segments + len(payload)", n, lambda: count_tcp_bytes(path)),
    ]
    if args.tshark:
        if shutil.which("tshark"):
            rows.append(timed("tshark -T fields (3 fields)", n, lambda: count_tshark(path)))
        else:
            print("tshark not installed: skipped")
    print(f"\n{'stage':<36}{'packets':>10}{'seconds':>10}{'packets/s':>14}")
    for label, count, dt in rows:
        print(f"{label:<36}{count:>10,}{dt:>10.2f}{count / dt:>14,.0f}")


if __name__ == "__main__":
    main()

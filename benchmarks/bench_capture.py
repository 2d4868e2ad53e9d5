"""Decode a large capture into a messages table: camprotool vs the tools users would pick.

    .venv/bin/python benchmarks/bench_capture.py [--messages N] [--pyshark-packets N]

The capture (cached in the temp directory) holds N protocol messages on many
main and data connections, one message per packet, as our writer scripts
them. Each contender does the same job as far as it can: get every protocol
message (or at least every TCP payload) out of the file.

* camprotool ``read_capture`` (bulk and incremental engines): reassembly,
  dialect detection, typed fields, the pandas table. Peak RSS measured in a
  child process.
* ``tshark -T fields -e tcp.payload``: tshark only dissects TCP and prints
  each payload in hex; no reassembly of frames into messages, no fields.
* ``pyshark`` (the project's chosen tshark wrapper) on the first
  ``--pyshark-packets`` packets, extrapolated (it is far too slow for all).
* ``scapy`` / ``dpkt`` reading packets and taking TCP payloads (no
  reassembly, no messages), on the first ``--other-packets`` packets, when
  installed (``pip install -e '.[bench]'``; ``make bench`` does it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from camprotool.capture.writer import PcapngWriter
from camprotool.protocol.codec import encode

T0 = 1_700_000_000_000_000_000


def make_capture(path: Path, messages: int) -> None:
    """Sessions of: login, port request, a 50-camera upload, pushes; until N messages."""
    written = 0
    ts = T0
    port = 20000
    with PcapngWriter(path) as w:
        while written < messages:
            port += 2
            client = (f"10.{port // 65536 % 256}.{port // 256 % 256}.{port % 256}", port)
            main = w.tcp(client, ("10.9.9.9", 9000), ts)
            main.send("c2s", encode("Login", "demo|demo"), ts + 1000)
            main.send("s2c", encode("LoginOk", "3|2025-01-01 00:00:00|10.0.0.1"), ts + 2000)
            main.send("c2s", encode("CreatDataSocket", "demo|demo"), ts + 3000)
            main.send("s2c", encode("ReturnDataSocketPort", "9001"), ts + 4000)
            data = w.tcp((client[0], port + 1), ("10.9.9.9", 9001), ts + 5000)
            for i in range(1, 51):
                t = ts + 10_000 * i
                data.send("c2s", encode("UploadCaramer", f"CAM{i:05d}|1234|{i}|50"), t)
                data.send("s2c", encode("UploadSucess", f"CAM{i:05d}|true|{i}|50"), t + 500)
            data.close(ts + 600_000)
            for i in range(6):
                main.send("s2c", encode("PrushCaramerAlarmInfo", f"CAM{i:05d}:motion"),
                          ts + 700_000 + i)
            main.close(ts + 800_000)
            written += 110
            ts += 1_000_000


def rss_child(code: str) -> tuple[float, int]:
    """Run ``code`` in a fresh interpreter; (seconds it reports, peak RSS bytes)."""
    wrapper = (
        "import resource, time, json\n"
        "t = time.perf_counter()\n" + code + "\n"
        "dt = time.perf_counter() - t\n"
        "print(json.dumps([dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024]))\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper], check=True, capture_output=True,
                         text=True).stdout
    dt, rss = json.loads(out.strip().splitlines()[-1])
    return dt, rss


def row(label: str, messages: int, seconds: float, rss: int | None, note: str = "") -> None:
    mem = f"{rss / 2**20:8.0f}" if rss else "       -"
    print(f"| {label:<34} | {messages / seconds:>12,.0f} | {seconds:>8.2f} | {mem} | {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--pyshark-packets", type=int, default=2000)
    parser.add_argument("--other-packets", type=int, default=200_000,
                        help="packets scapy and dpkt read (their rate is extrapolated)")
    args = parser.parse_args()
    path = Path(tempfile.gettempdir()) / f"camprotool-bench-{args.messages}.pcapng"
    if not path.exists():
        make_capture(path, args.messages)
    size = path.stat().st_size
    print(f"# {path} ({size / 2**20:.0f} MiB, ~{args.messages:,} messages); "
          f"{platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores")
    print("| tool                               |   messages/s |  seconds | peak MiB | note")
    print("|------------------------------------|-------------:|---------:|---------:|-----")
    for engine in ("bulk", "incremental"):
        code = (f"import camprotool as cpt\ncap = cpt.read_capture({str(path)!r}, "
                f"engine={engine!r})\nn = len(cap.messages)\n")
        dt, rss = rss_child(code)
        row(f"camprotool read_capture ({engine})", args.messages, dt, rss,
            "typed dataframe, reassembled")
    if shutil.which("tshark"):
        t = time.perf_counter()
        subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "tcp.payload"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        row("tshark -T fields -e tcp.payload", args.messages, time.perf_counter() - t, None,
            "hex payloads only, not messages")
    else:
        print("| tshark                             | not installed (make sysdeps)")
    try:
        import pyshark  # noqa: F401
    except ImportError:
        print("| pyshark                            | not installed")
    else:
        n = args.pyshark_packets
        code = (f"import pyshark\ncap = pyshark.FileCapture({str(path)!r}, keep_packets=False)\n"
                f"for i, p in enumerate(cap):\n    getattr(p, 'tcp', None)\n"
                f"    if i + 1 >= {n}: break\ncap.close()\n")
        dt, _ = rss_child(code)
        # about one message per packet in this capture
        row(f"pyshark (first {n} packets)", n, dt, None, "extrapolated rate; payloads only")
    contenders = {
        # scapy: read every packet, take TCP payloads (what a user would script)
        "scapy": (
            "from scapy.utils import PcapNgReader\nfrom scapy.layers.inet import TCP\n"
            "n = 0\nfor i, p in enumerate(PcapNgReader({path!r})):\n"
            "    if TCP in p: n += len(bytes(p[TCP].payload))\n"
            "    if i + 1 >= {limit}: break\n"
        ),
        # dpkt: parse Ethernet/IP/TCP per packet and take the payload (no reassembly)
        "dpkt": (
            "import dpkt\nn = 0\nwith open({path!r}, 'rb') as f:\n"
            "    for i, (ts, buf) in enumerate(dpkt.pcapng.Reader(f)):\n"
            "        ip = dpkt.ethernet.Ethernet(buf).data\n"
            "        if isinstance(ip.data, dpkt.tcp.TCP): n += len(ip.data.data)\n"
            "        if i + 1 >= {limit}: break\n"
        ),
    }
    for name, code in contenders.items():
        try:
            __import__(name)
        except ImportError:
            print(f"| {name:<34} | not installed (pip install -e '.[bench]')")
            continue
        limit = args.other_packets
        dt, rss = rss_child(code.format(path=str(path), limit=limit))
        row(f"{name} (first {limit:,} packets)", limit, dt, rss,
            "extrapolated rate; payloads only, no reassembly")

if __name__ == "__main__":
    main()

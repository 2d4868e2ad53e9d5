"""Decode a large capture, then build every analysis table: how long each takes.

    .venv/bin/python benchmarks/bench_analysis.py [--messages N] [--repeat R] [--reference]

The capture (cached in the temp directory as
``camprotool-bench-analysis-N.pcapng``) holds about N protocol messages on many
main and data connections, one message per packet. Each block of the mix is
one client: a login (one in eight refused once first), a status query, a data
port request, then alternately a 40-camera upload (one camera in ten refused)
or a 20-camera download, status pushes, alarms and heartbeats; one data
connection in eight is cut short, so every table gets rows of every kind
and the rule checker has work to do.

Printed: the time to decode (``read_capture`` + ``.messages`` +
``.connections``) and the time to build the analysis tables (``sessions``,
``sync``, ``transfers``, ``status``, ``alarms``, ``violations``, ``notes``)
on the decoded capture, each table's own share, and the row counts. The
analysis is timed ``--repeat`` times on fresh ``Capture`` objects sharing the
decoded data (best run reported), the decode once. ``--reference`` also times
the rule check by the session machines alone (``RuleCheck(engine="reference")``,
what ``violations`` cost before the column-wise engine) and checks that both
engines give the same ``violations`` and ``notes``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from camprotool.analysis.capture import Capture, read_capture
from camprotool.analysis.violations import RuleCheck
from camprotool.capture.writer import PcapngWriter
from camprotool.protocol.codec import encode

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
S = 1_000 * MS
SERVER = "10.9.9.9"
TABLES = ("sessions", "sync", "transfers", "status", "alarms", "violations", "notes")


def make_capture(path: Path, messages: int) -> int:
    """Write the benchmark capture to ``path``; return the number of messages written."""
    written = 0
    block = 0
    ts = T0
    with PcapngWriter(path) as w:
        while written < messages:
            block += 1
            port = 20000 + 2 * block
            ip = f"10.{port // 65536 % 256}.{port // 256 % 256}.{port % 256}"
            n = 0

            def send(conn, direction: str, command: str, params: str, at: int) -> None:
                nonlocal n
                conn.send(direction, encode(command, params), at)
                n += 1

            main = w.tcp((ip, port), (SERVER, 9000), ts)
            t = ts + MS
            if block % 8 == 0:
                send(main, "c2s", "Login", "demo|wrong", t)
                send(main, "s2c", "LoginError", "用户名或者密码错误!", t + MS)
                t += S
            send(main, "c2s", "Login", "demo|demo", t)
            send(main, "s2c", "LoginOk", "3|2025-01-01 00:00:00|10.0.0.1", t + MS)
            ids = [f"CAM{(block + k) % 5000:05d}" for k in range(3)]
            send(main, "c2s", "CheckCaramerOnlineStatus", ";".join(ids), t + 2 * MS)
            send(main, "s2c", "ReturnCaramerOnlineStatus",
                 "|".join(f"{c};{'true' if (block + k) % 3 else 'false'}"
                          for k, c in enumerate(ids)), t + 3 * MS)
            send(main, "c2s", "CreatDataSocket", "demo|demo", t + 4 * MS)
            send(main, "s2c", "ReturnDataSocketPort", "9001", t + 5 * MS)
            data = w.tcp((ip, port + 1), (SERVER, 9001), t + 6 * MS)
            t += 10 * MS
            cut = block % 16 in (0, 1)  # one download and one upload in 16 cut short
            if block % 2:
                total = 40
                for i in range(1, total + 1):
                    if cut and i > total // 2:
                        break
                    cam = f"CAM{(block * 7 + i) % 5000:05d}"
                    send(data, "c2s", "UploadCaramer", f"{cam}|1234|{i}|{total}", t)
                    if i % 10 == 0:
                        send(data, "s2c", "UploadFail", f"{cam}|ID和密码不匹配|{i}|{total}", t + MS)
                    else:
                        send(data, "s2c", "UploadSucess",
                             f"{cam}|{'true' if i % 3 else 'false'}|{i}|{total}", t + MS)
                    t += 2 * MS
            else:
                total = 20
                for i in range(total):
                    if cut and i >= total // 2:
                        break
                    cam = f"CAM{(block * 5 + i) % 5000:05d}"
                    send(data, "c2s", "DownLoadCaramer", str(i), t)
                    send(data, "s2c", "DownloadSucess",
                         f"{cam}|1234|{'true' if i % 4 else 'null'}|{i + 1}|{total}", t + MS)
                    t += 2 * MS
            data.close(t + MS, how="rst" if cut else "fin")
            for k in range(3):
                t += 20 * S
                send(main, "c2s", "Heartbeat", "", t)
                send(main, "s2c", "PrushCaramerOnlineStatus",
                     f"{ids[k]}:{'false' if (block + k) % 2 else 'true'}", t + S)
                send(main, "s2c", "PrushCaramerAlarmInfo", f"{ids[k]}:motion", t + 2 * S)
            main.close(t + 5 * S)
            written += n
            ts += 100 * MS
    return written


def timed(fn):
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reference", action="store_true",
                        help="also time the session machines' rule check (one run)")
    args = parser.parse_args()
    path = Path(tempfile.gettempdir()) / f"camprotool-bench-analysis-{args.messages}.pcapng"
    if not path.exists():
        tmp = path.with_suffix(".part")
        dt, n = timed(lambda: make_capture(tmp, args.messages))
        tmp.replace(path)
        print(f"# wrote {path} ({n:,} messages) in {dt:.1f} s")
    print(f"# {path} ({path.stat().st_size / 2**20:.0f} MiB); "
          f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores")

    def decode() -> Capture:
        cap = read_capture(path)
        _ = cap.messages, cap.connections
        return cap

    decode_s, cap = timed(decode)
    rows = {}
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        fresh = Capture(cap.decoded)  # same decoded data, no table built yet
        fresh.__dict__["messages"] = cap.messages  # decode products, not analysis
        fresh.__dict__["connections"] = cap.connections
        for name in TABLES:
            dt, table = timed(lambda name=name, fresh=fresh: getattr(fresh, name))
            best[name] = min(best.get(name, dt), dt)
            rows[name] = len(table)
    analysis_s = sum(best.values())
    print(f"decode (read_capture + .messages + .connections): {decode_s:8.2f} s  "
          f"({len(cap.messages):,} messages, {len(cap.connections):,} connections)")
    print(f"build all analysis tables:                      {analysis_s:8.2f} s  "
          f"({analysis_s / decode_s:.1%} of decode; best of {args.repeat})")
    for name in TABLES:
        print(f"  {name:<11} {best[name]:8.3f} s  {rows[name]:>10,} rows")
    if args.reference:
        reference(cap, fresh)


def reference(cap: Capture, fast: Capture) -> None:
    """Time the machines' rule check (violations + notes) and compare it with the fast one."""
    timeout = cap.heartbeat_timeout
    gaps = {r.conn: r.first_gap_s2c for r in cap.decoded.connections
            if r.first_gap_s2c is not None}

    def check():
        c = RuleCheck(cap.decoded.messages, cap.messages, cap.connections, engine="reference",
                      first_gap_s2c=gaps, heartbeat_timeout_ns=int(timeout * 1e9))
        return c.violations(), c.notes()

    dt, (violations, notes) = timed(check)
    same = violations.equals(fast.violations) and notes.equals(fast.notes)
    print(f"reference rule check (the session machines, one run): {dt:8.2f} s  "
          f"(violations + notes; {'identical' if same else 'DIFFERENT'} to the fast engine)")


if __name__ == "__main__":
    main()

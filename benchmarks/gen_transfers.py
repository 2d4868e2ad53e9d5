#!/usr/bin/env python3
"""Generate a capture of many upload transfers whose failures change over time.

A big capture for the plots (``plots.sync_progress`` switches to its summary
above 12 transfers) and for the sync tables, written with camprotool's own
capture writer so every packet is a real TCP segment the reader reassembles.
Each of ``--transfers`` clients, one after the other, opens a main connection
(Login, CreatDataSocket), uploads 3 to 20 cameras on the announced data port
and closes both connections. What goes wrong depends on when (the share ``f``
of the capture already written), so the summary has a story to show:

* every step: 4 % "ID和密码不匹配" (wrong camera password);
* for 0.45 <= f < 0.60: 30 % "该摄像头绑定账号已满" (camera bound to too many
  accounts), 2 % before and after;
* for 0.75 <= f < 0.80: the server stops answering 1 step in 8; the client
  waits 300 ms and resets the data connection (the transfer is cut short);
* any time: 2 % of clients reset the data connection after a random step.

    python benchmarks/gen_transfers.py --transfers 5000 --out /tmp/transfers.pcap
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from camprotool.capture.writer import PcapWriter
from camprotool.protocol.codec import encode

T0 = 1_764_316_800_000_000_000  # 2025-11-28 08:00:00 UTC
MS = 1_000_000
SERVER = "192.0.2.10"
WRONG_PASSWORD = "ID和密码不匹配"
ACCOUNT_FULL = "该摄像头绑定账号已满"


def write(out: Path, transfers: int, seed: int = 1) -> dict[str, int]:
    """Write the capture to ``out``; counts of what was scripted."""
    rng = random.Random(seed)
    counts = {"transfers": transfers, "steps": 0, "failed": 0, "cut_short": 0}
    now = T0
    with PcapWriter(out, nanosecond=True) as w:
        for i in range(transfers):
            f = i / max(transfers, 1)
            host = f"198.51.{100 + i // 60000}.{1 + (i // 250) % 250}"
            port = 20000 + (2 * i) % 40000
            main = w.tcp((host, port), (SERVER, 9000), now)

            def send(conn, direction: str, command: str, params: str, delay: int) -> None:
                nonlocal now
                now += delay
                conn.send(direction, encode(command, params, "line"), now)

            user = f"user{i}"
            send(main, "c2s", "Login", f"{user}|secret", 2 * MS)
            send(main, "s2c", "LoginOk", f"0|2025-11-27 20:00:00|{host}", MS)
            send(main, "c2s", "CreatDataSocket", f"{user}|secret", MS)
            data_port = 9001 + i % 20
            send(main, "s2c", "ReturnDataSocketPort", str(data_port), MS)
            data = w.tcp((host, port + 1), (SERVER, data_port), now + MS)
            now += 2 * MS
            total = rng.randint(3, 20)
            full = 0.30 if 0.45 <= f < 0.60 else 0.02
            silent = 1 / 8 if 0.75 <= f < 0.80 else 0.0
            drop_after = rng.randint(1, total - 1) if rng.random() < 0.02 else None
            how = "fin"
            for step in range(1, total + 1):
                camera = f"CAM{rng.randrange(100000):05d}"
                send(data, "c2s", "UploadCaramer", f"{camera}|1234|{step}|{total}",
                     rng.randint(2, 8) * MS)
                counts["steps"] += 1
                if rng.random() < silent:  # no answer: the client gives up
                    now += 300 * MS
                    how = "rst"
                    break
                reason = WRONG_PASSWORD if rng.random() < 0.04 else \
                    ACCOUNT_FULL if rng.random() < full else None
                if reason:
                    send(data, "s2c", "UploadFail", f"{camera}|{reason}|{step}|{total}", MS)
                    counts["failed"] += 1
                else:
                    send(data, "s2c", "UploadSucess", f"{camera}|true|{step}|{total}", MS)
                if step == drop_after:
                    how = "rst"
                    break
            counts["cut_short"] += how == "rst"
            data.close(now + MS, how=how)
            main.close(now + 3 * MS)
            now += rng.randint(5, 200) * MS
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.transfers < 1:
        sys.exit("gen_transfers.py: --transfers must be at least 1")
    counts = write(args.out, args.transfers, args.seed)
    print(f"wrote {args.out}: " + ", ".join(f"{v:,} {k}" for k, v in counts.items()))


if __name__ == "__main__":
    main()

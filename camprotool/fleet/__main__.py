"""``python -m camprotool.fleet DIR [--sensors N --days N --clients N ...]``."""

from __future__ import annotations

import argparse
import sys

from camprotool.fleet import FleetSpec, generate_fleet


def main(argv: list[str] | None = None) -> int:
    defaults = FleetSpec()
    p = argparse.ArgumentParser(prog="python -m camprotool.fleet",
                                description="Write a fleet of generated ring-buffer captures.")
    p.add_argument("folder")
    p.add_argument("--sensors", type=int, default=defaults.sensors)
    p.add_argument("--days", type=int, default=defaults.days)
    p.add_argument("--clients", type=int, default=defaults.clients,
                   help="phones over all sensors")
    p.add_argument("--visits-per-day", type=float, default=defaults.visits_per_day)
    p.add_argument("--stay-minutes", type=float, default=defaults.stay_minutes)
    p.add_argument("--start", default=defaults.start, help="first day, YYYY-MM-DD (UTC)")
    p.add_argument("--ring-seconds", type=float, default=defaults.ring_seconds)
    p.add_argument("--ring-bytes", type=int, default=None)
    p.add_argument("--seed", type=int, default=defaults.seed)
    args = p.parse_args(argv)
    try:
        spec = FleetSpec(sensors=args.sensors, days=args.days, clients=args.clients,
                         visits_per_day=args.visits_per_day, stay_minutes=args.stay_minutes,
                         start=args.start, ring_seconds=args.ring_seconds,
                         ring_bytes=args.ring_bytes, seed=args.seed)
        fleet = generate_fleet(args.folder, spec)
    except (ValueError, OSError) as exc:
        print(f"camprotool.fleet: error: {exc}", file=sys.stderr)
        return 2
    print(f"{fleet!r}: {fleet.bytes / 2**20:.1f} MiB in {fleet.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

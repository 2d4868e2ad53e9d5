"""``camprotool report CAPTURE [-o DIR] [--tz ZONE]``: an HTML report and every table as files."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from camprotool.cli import CliError
from camprotool.cli.decode import add_decode_options, capture_size, load, warn_problems


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write an HTML report (summary, tables, plots) of a capture",
        description="Decode a pcap or pcapng capture and write DIR/index.html: a self-contained "
        "page with a summary, the sessions, transfers, violations, alarms and connections "
        "tables and the plots, plus every table as csv and parquet in DIR/tables/. Prints the "
        "path of index.html.",
    )
    p.add_argument("capture", help="pcap or pcapng file, or a quoted glob of files read as "
                   "one capture (a ring buffer)")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="output directory (default: CAPTURE.report/ beside the capture, or in "
                   "the current directory if the capture's directory is not writable)")
    p.add_argument("--tz", metavar="ZONE", default=None,
                   help="time zone the page shows times in: an IANA name such as Europe/Paris "
                   "or UTC (default: this machine's zone); the table files stay in UTC")
    add_decode_options(p)
    p.set_defaults(run=run)


def default_output(capture: str) -> Path:
    """``<capture name>.report`` beside the capture, else in the current directory."""
    path = Path(capture)
    # a glob naming a capture set: its name without the wildcards (ring_*.pcapng -> ring_.pcapng)
    stem = re.sub(r"[*?\[\]]", "", path.name) or "capture-set"
    name = f"{stem}.report"
    beside = path.parent / name
    if os.access(path.parent, os.W_OK | os.X_OK) and (
            not beside.exists() or os.access(beside, os.W_OK | os.X_OK)):
        return beside
    return Path.cwd() / name


def run(args: argparse.Namespace) -> int:
    capture_size(args.capture)  # a missing file, or a glob matching none: one line
    out = Path(args.output) if args.output else default_output(args.capture)
    if out.exists() and not out.is_dir():
        raise CliError(f"{out}: exists and is not a directory")
    # matplotlib is imported here, not when the parser is built for every verb
    from camprotool.analysis.plots import resolve_tz
    from camprotool.analysis.report import write_report

    zone = resolve_tz(args.tz)  # a bad zone fails before the capture is decoded
    cap = load(args)
    index = write_report(cap, out, tz=zone)
    warn_problems(cap.problems)
    print(f"report of {len(cap.messages)} messages from {len(cap.connections)} connections "
          f"written to {out}", file=sys.stderr)
    print(index)
    return 0

"""``make demo``: decode the bundled samples, then talk to the embedded emulator.

Run as ``python -m camprotool.demo [-o DIR] [CAPTURE ...]``. For each capture it
prints the connections, the message counts per command, the outcome of every
data transfer, and writes the messages table as ``DIR/<name>.messages.csv``.
Then it starts the emulated server (demo scenario, 127.0.0.1, free ports) in
the background, syncs the ``demo`` account with a client, raises a status
change and an alarm, and prints the conversation. It ends by writing the HTML
report of the first capture (``DIR/<capture>.report/index.html``) and printing
where it is.

Everything goes to ``DIR`` (default ``demo-output/`` in the current directory,
which ``.gitignore`` lists), never beside the captures: ``captures/`` holds
capture files only, so code that scans it (the tests, the explorer's file
list) finds nothing else there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from camprotool.analysis.capture import Capture, read_capture
from camprotool.analysis.export import write_frame

SAMPLES = Path(__file__).resolve().parent.parent / "captures"
DEFAULT_CAPTURES = [SAMPLES / "sample.pcapng", SAMPLES / "download.pcapng"]
DEFAULT_OUTPUT = Path("demo-output")


def transfer_outcomes(cap: Capture) -> pd.DataFrame:
    """Per data connection: what it moved and how it ended, from its messages."""
    msgs = cap.messages
    rows = []
    for conn, group in msgs[msgs["channel"] == "data"].groupby("conn", observed=True):
        commands = group["command"].astype(str)
        ok = int(commands.isin(["UploadSucess", "DownloadSucess"]).sum())
        failed = group[commands.isin(["UploadFail", "DownloadFail"])]
        kind = "upload" if commands.isin(["UploadCaramer"]).any() else "download"
        totals = group["total"].dropna()
        rows.append({
            "conn": conn,
            "kind": kind,
            "client": group["client"].iloc[0],
            "total": int(totals.iloc[-1]) if len(totals) else 0,
            "ok": ok,
            "failed": len(failed),
            "failures": "; ".join(
                f"{cam or '-'}: {reason}"
                for cam, reason in zip(failed["camera_id"].fillna(""), failed["reason"],
                                       strict=True)
            ),
        })
    return pd.DataFrame(rows)


def show(path: Path, out_dir: Path) -> Capture:
    cap = read_capture(path)
    print(f"== {path.name}: {cap.decoded.packets} packets, {len(cap.connections)} connections, "
          f"{len(cap.messages)} messages")
    print("\nconnections:")
    print(cap.connections[["channel", "client", "server", "dialect", "main_conn",
                           "messages", "close_reason"]].to_string())
    print("\nmessages per command:")
    counts = cap.messages["command"].value_counts()
    print(counts[counts > 0].to_string())
    print("\ndata transfers:")
    outcomes = transfer_outcomes(cap)
    print(outcomes.to_string(index=False) if len(outcomes) else "none")
    errors = cap.messages["error"].notna().sum()
    print(f"\nmessages with decode errors: {errors}; capture problems: {len(cap.problems)}")
    out = out_dir / (path.stem + ".messages.csv")
    write_frame(cap.messages, out)
    print(f"messages table written to {out}\n")
    return cap


def live() -> None:
    """A short session against the embedded emulator, as a notebook would run it."""
    from camprotool.net import Client, EmulatorServer

    with EmulatorServer() as srv, Client(*srv.address) as client:
        print(f"== embedded emulator on {srv.address[0]}:{srv.address[1]} (demo scenario)")
        ok = client.login("demo", "demo")
        print(f"login demo: {ok.camera_count} cameras on the server")
        result = client.sync([])
        print(f"sync: {result.kind} of {len(result.cameras)} cameras")
        statuses = client.check_status(["DEMO0001", "DEMO0002", "DEMO0003"])
        print("status:", ", ".join(f"{cam}={online}" for cam, online in statuses.items()))
        srv.set_online("DEMO0003", True)
        srv.raise_alarm("DEMO0001", "motion")
        for _ in range(2):
            push = client.next_push(timeout=5)
            print("push: none within 5 s" if push is None else
                  f"push: {push.command} {push.params}")
        print("\nthe conversation, as client.messages:")
        print(client.messages[["ts", "channel", "direction", "command", "params"]].to_string())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from camprotool.cli import OneLineParser

    parser = OneLineParser(prog="camprotool demo", description="Decode the bundled sample "
                           "captures, talk to the embedded emulator, write an HTML report.")
    parser.add_argument("captures", nargs="*", type=Path, metavar="CAPTURE",
                        help="pcap or pcapng files (default: the bundled sample and download)")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, metavar="DIR",
                        help="where the tables and the report go (default: demo-output)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    paths = args.captures or DEFAULT_CAPTURES
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"camprotool demo: error: no such capture: {', '.join(missing)}", file=sys.stderr)
        return 2
    out_dir: Path = args.output
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"camprotool demo: error: {out_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 200, "display.max_colwidth", 70):
        captures = [show(path, out_dir) for path in paths]
        live()
    from camprotool.analysis.report import write_report

    index = write_report(captures[0], out_dir / f"{paths[0].name}.report")
    print(f"\n== report of {paths[0].name}: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``camprotool replay``: play a recording back, as its client or as its server.

Client playback (``--to HOST:PORT``) re-sends what the recorded client(s)
sent to a live server and prints one row per recorded server message: the
recorded answer, the live one and whether they match. Exit status: 0 when
every reply is ``same``, 1 when any reply is ``different``, ``missing`` or
``extra`` (pushes are shown but do not count: they follow events outside the
conversation), 2 for errors (missing file, bad address, refused connection).

Server playback (``--serve``) answers clients with the recorded server side
until Ctrl-C; the first stdout line is ``listening on HOST:PORT ...``.
"""

from __future__ import annotations

import argparse
import sys
import unicodedata
from typing import Any

from camprotool.cli import CliError
from camprotool.cli.serve import (
    int_arg,
    say,
    setup_logging,
    stop_signals_interrupt,
    wait_for_interrupt,
)

WIDTHS = {"request": 30, "recorded": 36, "live": 36}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "replay",
        help="replay a recording against a live server (--to) or serve it (--serve)",
        description="Client playback (--to HOST:PORT): re-send what the recorded client(s) "
                    "sent, connection by connection, and compare each live answer with the "
                    "recorded one (exit 0: all same, 1: any reply differs, 2: error). "
                    "Server playback (--serve): answer clients with the recorded server "
                    "replies and pushes until Ctrl-C.",
        epilog="LoginOk's last login time/ip and the data port number are not compared "
               "(they differ on every run); pushes are listed but do not change the exit "
               "status. See docs/replay.md.",
    )
    p.add_argument("capture", metavar="CAPTURE", help="pcap or pcapng recording")
    p.add_argument("--to", metavar="HOST:PORT", help="client playback against this server")
    p.add_argument("--serve", action="store_true", help="server playback until Ctrl-C")
    p.add_argument("--listen", default=None, metavar="HOST:PORT",
                   help="with --serve: where to listen (127.0.0.1:9000; port 0 picks one)")
    p.add_argument("--speed", default="1", metavar="X",
                   help="time scale: 1 keeps the recorded delays, 10 is ten times faster, "
                        "0 as fast as possible (1)")
    p.add_argument("--conn", action="append", default=[], metavar="N",
                   help="replay only these recorded main connections (repeat, or N,M)")
    p.add_argument("--dialect", default=None,
                   help="wire dialect of the live side (default: the recording's)")
    p.add_argument("--record", metavar="OUT.pcapng", help="record the live traffic to pcapng")
    p.add_argument("--timeout", default="10", metavar="S",
                   help="with --to: seconds to wait for each answer (10)")
    p.add_argument("--once", action="store_true",
                   help="with --serve: serve each recorded connection only once")
    p.add_argument("--max-per-address", default="100", metavar="N",
                   help="with --serve: connections open at once from one IP address (100)")
    p.add_argument("--reveal-passwords", action="store_true",
                   help="show passwords instead of ***")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="with --to: print only the rows that are not 'same', and the summary")
    p.add_argument("-v", "--verbose", action="count", default=0, help="log more")
    p.set_defaults(run=run)
    return p


def _number(option: str, text: str, *, positive: bool) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise CliError(f"{option}: {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise CliError(f"{option}: {text!r} must be {'> 0' if positive else '>= 0'}")
    return value


def _conns(values: list[str]) -> list[int] | None:
    out: list[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part.isascii() or not part.isdigit():
                raise CliError(f"--conn: {part!r} is not a connection number")
            out.append(int(part))
    return out or None


def run(args: argparse.Namespace) -> int:
    import os

    if bool(args.to) == bool(args.serve):
        raise CliError("give either --to HOST:PORT (client playback) or --serve "
                       "(server playback)")
    if args.listen and not args.serve:
        raise CliError("--listen goes with --serve; client playback uses --to")
    speed = _number("--speed", args.speed, positive=False)
    timeout = _number("--timeout", args.timeout, positive=True)
    conns = _conns(args.conn)
    if not os.path.exists(args.capture):
        raise CliError(f"{args.capture}: no such file")
    setup_logging(args.verbose, not args.verbose)
    if args.serve:
        return serve(args, speed, conns)
    return replay(args, speed, timeout, conns)


def replay(args: argparse.Namespace, speed: float, timeout: float,
           conns: list[int] | None) -> int:
    from camprotool.net import NetError
    from camprotool.net.addresses import format_endpoint, parse_endpoint
    from camprotool.net.replay import replay_client

    target = parse_endpoint(args.to)
    if target[1] == 0:
        raise CliError(f"bad address {args.to!r}: the port must not be 0")
    try:
        with stop_signals_interrupt():  # a killed playback still closes its recording
            result = replay_client(args.capture, target, dialect=args.dialect, speed=speed,
                                   conns=conns, timeout=timeout, record=args.record,
                                   reveal_passwords=args.reveal_passwords)
    except NetError as exc:
        raise CliError(str(exc)) from None
    print(f"replayed {args.capture} -> {format_endpoint(target)} "
          f"({len(result.replayed)} main connection(s), speed {speed:g}, "
          f"{result.elapsed:.2f} s)")
    print_table(result.comparison, only_differences=args.quiet)
    for note in result.notes:
        print(f"note: {note}")
    print(result.summary())
    if args.record:
        print(f"recorded to {args.record}", file=sys.stderr)
    return 0 if result.ok else 1


def serve(args: argparse.Namespace, speed: float, conns: list[int] | None) -> int:
    from camprotool.net import NetError
    from camprotool.net.addresses import format_endpoint, parse_endpoint
    from camprotool.net.replay import ReplayServer

    listen = parse_endpoint(args.listen or "127.0.0.1:9000", default_host="127.0.0.1")
    try:
        server = ReplayServer(args.capture, listen, conns=conns, dialect=args.dialect,
                              speed=speed, reuse=not args.once, record=args.record,
                              reveal_passwords=args.reveal_passwords,
                              max_per_address=int_arg("--max-per-address",
                                                      args.max_per_address, 1))
        server.start()
    except NetError as exc:
        raise CliError(str(exc)) from None
    try:
        print(f"listening on {format_endpoint(server.address)} replaying "
              f"{len(server.plan.mains)} recorded main connection(s) from {args.capture}",
              flush=True)
        for note in server.notes:
            print(f"note: {note}", file=sys.stderr)
        wait_for_interrupt()
    finally:
        server.stop()
        missed = len(server.unanswered)
        if missed:
            say(f"{missed} request(s) had no recorded answer")
        if args.record:
            say(f"recorded to {args.record}")
    return 0


# ---------------------------------------------------------------- the table


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _cell(text: str, width: int) -> str:
    """``text`` cut and padded to ``width`` terminal columns (CJK counts double)."""
    if _width(text) > width:
        out, used = "", 0
        for c in text:
            w = 2 if unicodedata.east_asian_width(c) in "WF" else 1
            if used + w > width - 1:
                break
            out, used = out + c, used + w
        text = out + "~"
    return text + " " * (width - _width(text))


def _join(command: Any, params: Any) -> str:
    if command is None or command != command:
        return "-"
    params = "" if params is None or params != params else str(params)
    return f"{command} {params}".rstrip()


def format_row(row: dict[str, Any]) -> str:
    request = ("(push)" if row["kind"] == "push"
               else _join(row["request"], row["request_params"]))
    return " ".join([
        f"{int(row['conn']):>4}", _cell(str(row["channel"]), 4),
        _cell(request, WIDTHS["request"]),
        _cell(_join(row["recorded_command"], row["recorded_params"]), WIDTHS["recorded"]),
        _cell(_join(row["live_command"], row["live_params"]), WIDTHS["live"]),
        _cell(str(row["match"]), 9), str(row["detail"] or ""),
    ]).rstrip()


def print_table(frame: Any, only_differences: bool = False) -> None:
    header = " ".join(["conn", _cell("chan", 4), _cell("request", WIDTHS["request"]),
                       _cell("recorded", WIDTHS["recorded"]), _cell("live", WIDTHS["live"]),
                       _cell("match", 9), "detail"])
    print(header)
    for row in frame.to_dict("records"):
        if only_differences and row["match"] == "same":
            continue
        print(format_row(row))

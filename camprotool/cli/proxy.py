"""``camprotool proxy``: a recording proxy between a client and a server, until Ctrl-C.

The first line on stdout is ``proxying HOST:PORT -> UPSTREAM`` (the real port
when ``--listen`` asked for port 0). Messages are logged to stderr as they
pass; ``--record`` writes them to pcapng as they pass (within about a
second, so ``kill -9`` loses at most that), flushed on Ctrl-C, SIGTERM and
SIGHUP.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from camprotool.cli import CliError
from camprotool.cli.serve import int_arg, say, setup_logging, wait_for_interrupt


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "proxy",
        help="forward and record traffic between a client and a server",
        description="Forward a client's connections to a server byte for byte, decoding and "
                    "logging every message (data connections included). Ctrl-C stops.",
    )
    p.add_argument("--listen", required=True, metavar="HOST:PORT",
                   help="where clients connect (port 0 picks a free one)")
    p.add_argument("--upstream", required=True, metavar="HOST:PORT", help="the real server")
    p.add_argument("--dialect", default="line", help="wire dialect (line)")
    p.add_argument("--record", metavar="FILE", help="record the traffic to a pcapng file")
    p.add_argument("--reveal-passwords", action="store_true",
                   help="show passwords in the log instead of ***")
    p.add_argument("--max-per-address", default="100", metavar="N",
                   help="client connections open at once from one IP address (100)")
    p.add_argument("-q", "--quiet", action="store_true", help="do not log each message")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    from camprotool.net import NetError, Proxy
    from camprotool.net.addresses import format_endpoint, parse_endpoint
    from camprotool.net.table import mask_params

    setup_logging(0, args.quiet)
    listen = parse_endpoint(args.listen, default_host="127.0.0.1")
    upstream = parse_endpoint(args.upstream)
    if upstream[1] == 0:
        raise CliError(f"bad address {args.upstream!r}: the upstream port must not be 0")
    try:
        proxy = Proxy(listen, upstream, dialect=args.dialect, record=args.record,
                      reveal_passwords=args.reveal_passwords,
                      max_per_address=int_arg("--max-per-address", args.max_per_address, 1))
        proxy.start()
    except NetError as exc:
        raise CliError(str(exc)) from None
    if not args.quiet:
        out = logging.getLogger("camprotool.proxy.traffic")

        def show(row: Any) -> None:
            params = row.message.params if args.reveal_passwords else mask_params(row.message)
            arrow = "->" if row.direction == "c2s" else "<-"
            out.info("%s %s %s %s %s", row.channel, row.client, arrow, row.message.command,
                     params)

        assert proxy.log is not None
        proxy.log.on_message(show)
    try:
        print(f"proxying {format_endpoint(proxy.address)} -> {format_endpoint(upstream)}",
              flush=True)
        wait_for_interrupt()
    finally:
        proxy.stop()
        if args.record:
            say(f"recorded to {args.record}")
    return 0

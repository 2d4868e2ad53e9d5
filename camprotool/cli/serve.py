"""``camprotool serve``: run the emulated server until Ctrl-C.

The first line on stdout is always ``listening on HOST:PORT data ports A-B``
(with the real ports when ``--port 0`` / ``--data-ports auto`` asked the
system to pick), so scripts and tests can read where to connect. Log lines go
to stderr. Ctrl-C, SIGTERM or SIGHUP (a dropped SSH session) stops cleanly
and flushes ``--record``; the recording is also written as it happens (within
about a second), so even ``kill -9`` leaves a readable file.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from camprotool.cli import CliError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve",
        help="run the emulated camera-sync server",
        description="Run the emulated camera-sync server (the demo scenario unless --scenario). "
                    "Prints 'listening on HOST:PORT data ports A-B' first; Ctrl-C stops.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", default="9000",
                   help="main port (9000); 0 picks a free one")
    p.add_argument("--data-ports", default=None, metavar="SPEC",
                   help="data ports: A-B, A,B,C, auto or auto:N (9001-9020; with --port 0: "
                        "auto, 20 free ports)")
    p.add_argument("--scenario", metavar="FILE", help="accounts and cameras (.json or .toml)")
    p.add_argument("--db", metavar="FILE",
                   help="SQLite file to keep accounts and bindings in (default: memory)")
    p.add_argument("--dialect", default="line",
                   help="wire dialect: line, lp32le, lp32be, optionally :gbk (line)")
    p.add_argument("--heartbeat-timeout", default="90", metavar="S",
                   help="drop a main connection silent this long (90)")
    p.add_argument("--data-port-timeout", default="10", metavar="S",
                   help="how long a handed-out data port waits for its connection (10)")
    p.add_argument("--simulate", default=None, metavar="RATE",
                   help="random status changes and alarms, RATE events per second")
    p.add_argument("--seed", default="0", help="random seed for --simulate (0)")
    p.add_argument("--max-connections", default="1000", metavar="N",
                   help="connections served at once (1000)")
    p.add_argument("--max-per-address", default="100", metavar="N",
                   help="connections open at once from one IP address (100)")
    p.add_argument("--no-login-brake", action="store_true",
                   help="no brute-force brake (by default, after 5 failed logins from an "
                        "address or on an account attempts wait turns of 1 s doubling to "
                        "16 s; after --lockout-after failures they are refused)")
    p.add_argument("--lockout-after", default="20", metavar="N",
                   help="failed logins that lock an address (or an account, for the "
                        "addresses that failed on it) out (20)")
    p.add_argument("--lockout", default="900", metavar="S",
                   help="how long a lockout lasts, in seconds (900)")
    p.add_argument("--login-timeout", default="20", metavar="S",
                   help="close a main connection not logged in within S seconds (20)")
    p.add_argument("--max-before-login", default="10", metavar="N",
                   help="messages other than Login (heartbeats, unknown commands...) a main "
                        "connection may send before it logs in; one more closes it (10)")
    p.add_argument("--record", metavar="FILE",
                   help="record every connection to a pcapng file (written as it happens)")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log more (-v: every connection, -vv: debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    p.set_defaults(run=run)
    return p


# Values are checked here rather than with argparse ``type=`` so a bad one is
# reported as one line (argparse would print the whole usage first).
def port_arg(option: str, text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 0 <= int(text) <= 65535:
        raise CliError(f"{option}: {text!r} is not a port 0-65535")
    return int(text)


def positive_arg(option: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CliError(f"{option}: {text!r} is not a number") from None
    if not value > 0:
        raise CliError(f"{option}: {text!r} must be greater than 0")
    if not math.isfinite(value):
        raise CliError(f"{option}: {text!r} is not a finite number")
    return value


def int_arg(option: str, text: str, minimum: int = 0) -> int:
    try:
        value = int(text)
    except ValueError:
        raise CliError(f"{option}: {text!r} is not a whole number") from None
    if value < minimum:
        raise CliError(f"{option}: {text!r} must be at least {minimum}")
    return value


def setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose >= 2 else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


#: Signals that stop a long-running verb cleanly (besides Ctrl-C): SIGTERM, and
#: SIGHUP, what a terminal or SSH session that goes away sends.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


def wait_for_interrupt() -> None:
    """Block until Ctrl-C, SIGTERM or SIGHUP (all stop cleanly)."""
    done = threading.Event()

    def on_term(signum: int, frame: Any) -> None:
        done.set()

    previous = {sig: signal.signal(sig, on_term) for sig in STOP_SIGNALS}
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Inside: SIGTERM and SIGHUP raise ``KeyboardInterrupt``, as Ctrl-C does, so a
    one-shot verb that is killed still runs its ``finally`` (and flushes its recording)."""
    previous = {sig: signal.signal(sig, signal.default_int_handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def say(text: str) -> None:
    """A last line to stderr, which may be gone (SIGHUP: the terminal closed)."""
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from camprotool.net import EmulatorServer, NetError
    from camprotool.net.brake import BrakeConfig
    from camprotool.net.ports import describe_ports

    port = port_arg("--port", args.port)
    heartbeat_timeout = positive_arg("--heartbeat-timeout", args.heartbeat_timeout)
    data_port_timeout = positive_arg("--data-port-timeout", args.data_port_timeout)
    simulate = None if args.simulate is None else positive_arg("--simulate", args.simulate)
    seed = int_arg("--seed", args.seed)
    max_connections = int_arg("--max-connections", args.max_connections, 1)
    max_before_login = int_arg("--max-before-login", args.max_before_login)
    max_per_address = int_arg("--max-per-address", args.max_per_address, 1)
    login_timeout = positive_arg("--login-timeout", args.login_timeout)
    brake = False if args.no_login_brake else BrakeConfig(
        lockout_after=int_arg("--lockout-after", args.lockout_after, 1),
        lockout=positive_arg("--lockout", args.lockout))
    data_ports = args.data_ports
    if data_ports is None:
        data_ports = "auto" if port == 0 else "9001-9020"
    setup_logging(args.verbose, args.quiet)
    try:
        server = EmulatorServer(
            args.host, port, data_ports, scenario=args.scenario, db=args.db,
            dialect=args.dialect, heartbeat_timeout=heartbeat_timeout,
            data_port_timeout=data_port_timeout, simulate=simulate, seed=seed,
            max_connections=max_connections, max_before_login=max_before_login,
            max_per_address=max_per_address, login_timeout=login_timeout,
            record=args.record, brake=brake,
        )
        server.start()
    except NetError as exc:
        raise CliError(str(exc)) from None
    try:
        host = args.host if ":" not in args.host else f"[{args.host}]"
        print(f"listening on {host}:{server.port} data ports "
              f"{describe_ports(server.data_ports)}", flush=True)
        wait_for_interrupt()
    finally:
        server.stop()
        if args.record:
            say(f"recorded to {args.record}")
    return 0

"""``camprotool client``: talk to a server interactively, or from a script on stdin.

Every message sent (``->``) and received (``<-``), pushes included, is
printed as it happens with the local time it was sent or received, so the
conversation is visible; commands print a short summary after it. Typed
commands come from stdin: a terminal gets a prompt (``camprotool>``), a pipe
(``printf 'status DEMO0001\\nquit\\n' | camprotool client ...``) is read line
by line and the exit status is 1 if any command failed.

Pushes and heartbeats arrive on the client's own thread, often while a
command is half typed: on a terminal the line is cleared, the message
printed, and the prompt redrawn with what was typed so far (readline keeps
the buffer). Ctrl-C at the prompt, or anywhere when reading a pipe, leaves
with exit status 130 as a shell expects; on a terminal, Ctrl-C during a
command only stops waiting for that command's answer.

The password for ``--user`` comes from ``--password-file`` (its first line),
else ``--password``, else the ``CAMPROTOOL_PASSWORD`` environment variable,
else a prompt on the terminal. ``--password`` still works for old scripts,
but any user of the machine can read it in ``ps``, so it prints a warning.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import getpass
import os
import sys
import threading
from typing import Any

from camprotool.cli import CliError

#: The environment variable a password for ``--user`` is read from.
PASSWORD_ENV = "CAMPROTOOL_PASSWORD"

HELP = """\
commands:
  login USER PASSWORD        log in (connects first if needed)
  status ID [ID ...]         online status (queries of at most 20 ids)
  download                   download the account's cameras (they become the local list)
  upload ID:PW [ID:PW ...]   upload cameras
  add ID PW                  add a camera to the local list
  local                      show the local list
  sync                       upload or download: local list vs the server's count
  dataport                   ask for a data port (CreatDataSocket)
  heartbeat                  send a heartbeat
  raw COMMAND [PARAMS]       send any command on the main connection
  messages [N]               the last N messages (20) as a table
  help                       this list
  quit                       close and leave"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "client",
        help="talk to a camera-sync server interactively",
        description="Connect to a server and type commands (see 'help' at the prompt). "
                    "Replies and pushes are printed as they arrive.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("address", metavar="HOST:PORT", help="the server's main port")
    p.add_argument("--user", help="log in as this account at start")
    p.add_argument("--password-file", metavar="FILE",
                   help="read the password for --user from the first line of FILE")
    p.add_argument("--password",
                   help=f"the password on the command line: visible to others in ps, prefer "
                        f"--password-file or ${PASSWORD_ENV} (else it is asked for)")
    p.add_argument("--dialect", default="line", help="wire dialect (line)")
    p.add_argument("--heartbeat", default="30", metavar="S",
                   help="heartbeat interval in seconds (30; 0 = none)")
    p.add_argument("--timeout", default="10", metavar="S",
                   help="how long to wait for an answer (10)")
    p.add_argument("--record", metavar="FILE", help="record the session to a pcapng file")
    p.add_argument("--reveal-passwords", action="store_true",
                   help="print passwords instead of ***")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only summaries and pushes, not every message")
    p.set_defaults(run=run)
    return p


PROMPT = "camprotool> "
#: carriage return + erase to the end of the line (VT100, every terminal emulator)
_CLEAR_LINE = "\r\x1b[K"


def _typed_so_far() -> str:
    """What readline holds of the line being typed ('' without readline)."""
    readline = sys.modules.get("readline")
    return readline.get_line_buffer() if readline is not None else ""


def clock(ts_ns: int) -> str:
    """``HH:MM:SS.mmm`` in local time: when a message was sent or received."""
    t = datetime.datetime.fromtimestamp(ts_ns / 1e9)
    return t.strftime("%H:%M:%S.") + f"{t.microsecond // 1000:03d}"


class Shell:
    """The command loop; printing is serialised because pushes arrive on another thread.

    ``prompt``: shown by :meth:`read_line`; when not empty and stdout is a
    terminal, a line printed while the prompt waits clears it first and
    redraws it after, with the text typed so far.
    """

    def __init__(self, client: Any, args: argparse.Namespace, prompt: str = "") -> None:
        self.client = client
        self.args = args
        self.prompt = prompt
        self.local: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._at_prompt = False
        self._redraw = bool(prompt) and sys.stdout.isatty()

    def say(self, text: str, err: bool = False) -> None:
        with self._lock:
            if self._at_prompt and self._redraw:
                sys.stdout.write(_CLEAR_LINE)
                sys.stdout.flush()
                print(text, file=sys.stderr if err else sys.stdout, flush=True)
                sys.stdout.write(self.prompt + _typed_so_far())
                sys.stdout.flush()
            else:
                print(text, file=sys.stderr if err else sys.stdout, flush=True)

    def read_line(self) -> str:
        """The next command line (``EOFError`` at the end, ``KeyboardInterrupt`` on Ctrl-C)."""
        with self._lock:
            self._at_prompt = True
        try:
            return input(self.prompt)
        finally:
            with self._lock:
                self._at_prompt = False

    def show_message(self, row: Any) -> None:
        from camprotool.net.table import mask_params

        msg = row.message
        is_push = msg.spec is not None and msg.spec.direction.value == "push"
        if self.args.quiet and not is_push:
            return
        params = msg.params if self.args.reveal_passwords else mask_params(msg)
        arrow = "->" if row.direction == "c2s" else "<-"
        tag = "" if row.channel == "main" else f"[{row.channel}] "
        note = f"  ({msg.error})" if msg.error else ""
        self.say(f"{clock(row.ts_ns)} {arrow} {tag}{msg.command} {params}{note}".rstrip())

    # ------------------------------------------------------------ commands
    def execute(self, line: str) -> bool | None:
        """Run one command line: True ok, False failed, None quit."""
        from camprotool.net import NetError

        words = line.split()
        if not words or words[0].startswith("#"):
            return True
        verb = words[0].lower()
        if verb in ("quit", "exit", "q"):
            return None
        handler = getattr(self, f"do_{verb}", None)
        if handler is None:
            self.say(f"error: unknown command {verb!r} (type 'help')", err=True)
            return False
        try:
            handler(line.split(None, 2)[1:] if verb == "raw" else words[1:])
        except KeyboardInterrupt:
            if not self.prompt:
                raise  # a script: Ctrl-C stops it (exit status 130)
            self.say("interrupted (Ctrl-C at the prompt leaves)", err=True)
            return False
        except (NetError, OSError, ValueError, TimeoutError) as exc:
            self.say(f"error: {exc}", err=True)
            return False
        return True

    def do_help(self, args: list[str]) -> None:
        self.say(HELP)

    def do_login(self, args: list[str]) -> None:
        if len(args) != 2:
            raise ValueError("usage: login USER PASSWORD")
        ok = self.client.login(args[0], args[1])
        last = (f"last login {ok.last_login_time} from {ok.last_login_ip}"
                if ok.last_login_time or ok.last_login_ip else "first login")
        self.say(f"logged in as {args[0]}: {ok.camera_count} camera(s) on the server, {last}")

    def do_status(self, args: list[str]) -> None:
        if not args:
            raise ValueError("usage: status ID [ID ...]")
        words = {True: "online", False: "offline", None: "unknown"}
        for cid, status in self.client.check_status(args).items():
            self.say(f"{cid} {words[status]}")

    def do_download(self, args: list[str]) -> None:
        cams = self.client.download()
        self.local = [(c.id, c.password) for c in cams]
        self.say(f"downloaded {len(cams)} camera(s)" + "".join(
            f"\n  {c.id} {_status_word(c.online)}" for c in cams))

    def do_upload(self, args: list[str]) -> None:
        if not args:
            raise ValueError("usage: upload ID:PASSWORD [ID:PASSWORD ...]")
        cams = []
        for item in args:
            cid, sep, pw = item.partition(":")
            if not sep or not cid:
                raise ValueError(f"{item!r}: expected ID:PASSWORD")
            cams.append((cid, pw))
        self._print_uploads(self.client.upload(cams))

    def _print_uploads(self, results: list[Any]) -> None:
        for r in results:
            self.say(f"  {r.camera_id} " + ("bound" if r.ok else f"failed: {r.reason}"))
        ok = sum(r.ok for r in results)
        self.say(f"uploaded {ok} of {len(results)} camera(s)")

    def do_add(self, args: list[str]) -> None:
        if len(args) != 2:
            raise ValueError("usage: add ID PASSWORD")
        self.local.append((args[0], args[1]))
        self.say(f"local list: {len(self.local)} camera(s)")

    def do_local(self, args: list[str]) -> None:
        self.say(f"local list: {len(self.local)} camera(s)" + "".join(
            f"\n  {cid}" for cid, _ in self.local))

    def do_sync(self, args: list[str]) -> None:
        result = self.client.sync(self.local)
        if result.kind == "download":
            self.local = [(c.id, c.password) for c in result.cameras]
            self.say(f"sync: downloaded {len(result.cameras)} camera(s) "
                     f"(local {result.local_count} < server {result.server_count})")
        elif result.kind == "upload":
            self._print_uploads(result.uploaded)
            self.say(f"sync: uploaded (local {result.local_count} > server "
                     f"{result.server_count})")
        else:
            self.say(f"sync: nothing to do ({result.local_count} camera(s) on both sides)")

    def do_dataport(self, args: list[str]) -> None:
        self.say(f"data port {self.client.create_data_socket()}")

    def do_heartbeat(self, args: list[str]) -> None:
        self.client.heartbeat()

    def do_raw(self, args: list[str]) -> None:
        if not args:
            raise ValueError("usage: raw COMMAND [PARAMS]")
        self.client.send_raw(args[0], args[1] if len(args) > 1 else "")

    def do_messages(self, args: list[str]) -> None:
        n = int(args[0]) if args else 20
        df = self.client.log.dataframe(reveal_passwords=self.args.reveal_passwords)
        cols = ["ts", "conn", "channel", "direction", "command", "params", "error"]
        self.say(df[cols].tail(n).to_string() if len(df) else "no messages yet")


def _status_word(status: bool | None) -> str:
    return {True: "online", False: "offline", None: "unknown"}[status]


def read_password(args: argparse.Namespace, interactive: bool) -> str:
    """The password for ``--user``: file, environment, command line (warned) or prompt."""
    if args.password_file is not None:
        try:
            with open(args.password_file, encoding="utf-8") as fh:
                return fh.readline().rstrip("\r\n")
        except OSError as exc:
            raise CliError(f"--password-file: cannot read {args.password_file}: "
                           f"{exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise CliError(f"--password-file: {args.password_file} is not UTF-8 text") from None
    if args.password is not None:
        print(f"warning: --password is visible to other users (ps); use --password-file or "
              f"{PASSWORD_ENV}", file=sys.stderr)
        return args.password
    env = os.environ.get(PASSWORD_ENV)
    if env is not None:
        return env
    if not interactive:
        raise CliError(f"a password is needed for --user when stdin is not a terminal: "
                       f"--password-file FILE or {PASSWORD_ENV}")
    return getpass.getpass(f"password for {args.user}: ")


def run(args: argparse.Namespace) -> int:
    from camprotool.cli.serve import positive_arg
    from camprotool.net import Client, LoginFailed, NetError
    from camprotool.net.addresses import parse_endpoint

    host, port = parse_endpoint(args.address)
    heartbeat = 0.0 if args.heartbeat in ("0", "0.0") else positive_arg("--heartbeat",
                                                                           args.heartbeat)
    timeout = positive_arg("--timeout", args.timeout)
    if port == 0:
        raise CliError(f"bad address {args.address!r}: port 0 cannot be connected to")
    interactive = sys.stdin.isatty()
    password = read_password(args, interactive) if args.user else None
    try:
        client = Client(host, port, dialect=args.dialect, timeout=timeout,
                        heartbeat_interval=heartbeat or None, record=args.record,
                        reveal_passwords=args.reveal_passwords)
    except NetError as exc:
        raise CliError(str(exc)) from None
    if interactive:
        with contextlib.suppress(ImportError):  # not on every platform
            import readline  # noqa: F401  (input() then keeps the typed line for a redraw)
    shell = Shell(client, args, PROMPT if interactive else "")
    client.log.on_message(shell.show_message)
    failed = False
    try:
        try:
            client.connect()
        except NetError as exc:
            raise CliError(str(exc)) from None
        shell.say(f"connected to {args.address} (type 'help' for commands)", err=True)
        if args.user and password is not None:
            try:
                shell.do_login([args.user, password])
            except LoginFailed as exc:
                if not interactive:
                    raise CliError(str(exc)) from None
                shell.say(f"error: {exc}", err=True)
        while True:
            try:
                line = shell.read_line()
            except EOFError:
                break
            except KeyboardInterrupt:
                shell.say("", err=True)
                return 130  # as a shell reports a command stopped by SIGINT
            outcome = shell.execute(line)
            if outcome is None:
                break
            failed = failed or not outcome
    finally:
        client.close()
    return 1 if failed and not interactive else 0

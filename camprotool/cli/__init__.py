"""The ``camprotool`` command line: one module per verb.

Each verb module has ``add_parser(subparsers)`` and ``run(args) -> int``.
Errors a user can cause (missing file, bad address, refused connection)
are raised as :class:`CliError` or an ``OSError``/``ValueError`` and printed
here as one line on stderr with a non-zero exit; never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

VERBS = ("decode", "report", "serve", "client", "proxy", "replay", "dissector")


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with a pointer to --help), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from camprotool import __version__

    parser = OneLineParser(
        prog="camprotool",
        description="Decode, check, plot and talk the SocketCommand camera-sync protocol.",
    )
    parser.add_argument("--version", action="version", version=f"camprotool {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for verb in VERBS:
        try:
            module = importlib.import_module(f"camprotool.cli.{verb}")
        except ModuleNotFoundError as exc:
            if exc.name != f"camprotool.cli.{verb}":
                raise
            continue  # verb not built yet: not offered
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("camprotool: interrupted", file=sys.stderr)
        return 130
    except (CliError, OSError, ValueError) as exc:
        print(f"camprotool {args.verb}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

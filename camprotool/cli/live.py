"""``camprotool decode --live IFACE``: print messages as they are decoded, then export.

The command-line face of :class:`~camprotool.analysis.live.LiveCapture`; it lives in
``cli/`` because printing and writing files is the command line's job, not the
capture layer's (docs/architecture.md).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import IO

import pandas as pd

from camprotool.analysis.export import output_format, write_frame
from camprotool.analysis.live import LiveCapture
from camprotool.protocol.dialect import Dialect

__all__ = ["PRINT_COLUMNS", "run_live"]

#: the columns printed per message, in this order (``frame`` is not known live)
PRINT_COLUMNS = ["ts", "conn", "channel", "direction", "command", "params", "error"]


def run_live(
    interface: str,
    *,
    ports: Iterable[int] | None = None,
    bpf: str | None = None,
    dialect: Dialect | str = "auto",
    reveal_passwords: bool = False,
    record: str | None = None,
    output: str | None = None,
    duration: float | None = None,
    max_messages: int | None = None,
    out: IO[str] | None = None,
) -> int:
    """What ``camprotool decode --live IFACE`` runs: print each message as it is
    decoded until Ctrl-C, ``duration`` seconds or ``max_messages``; then write ``output``
    (csv, json or parquet) if given. Errors are ``LiveCaptureError``/``ValueError``."""
    stream = out or sys.stdout
    if output:
        output_format(output)  # refuse a bad extension before capturing
    cap = LiveCapture(interface, ports=ports, bpf=bpf, dialect=dialect,
                      reveal_passwords=reveal_passwords, record=record,
                      max_messages=max_messages)

    def show(rows: pd.DataFrame) -> None:
        text = rows[PRINT_COLUMNS].fillna({"error": ""}).to_string(header=False)
        print(text, file=stream, flush=True)

    cap.on_message(show)
    cap.start()
    print(f"capturing on {interface}" + (f" ({cap.filter})" if cap.filter else "")
          + "; Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        cap.wait(timeout=duration)
    except KeyboardInterrupt:
        pass
    finally:
        cap.stop()
    messages = cap.messages
    if output:
        fmt = write_frame(messages, output)
        print(f"{len(messages)} messages written to {output} ({fmt})", file=sys.stderr)
    else:
        print(f"{len(messages)} messages, {cap.packets} packets", file=sys.stderr)
    return 0

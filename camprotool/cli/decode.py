"""``camprotool decode CAPTURE [-o OUT]``: every protocol message of a capture, as a table."""

from __future__ import annotations

import argparse
import os
import sys

from camprotool.cli import CliError
from camprotool.cli.progress import progress_bar

#: frame first: the packet to open in Wireshark (wireshark -r CAPTURE -g FRAME)
PREVIEW_COLUMNS = ["frame", "ts", "conn", "channel", "direction", "command", "params", "error"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "decode",
        help="decode a pcap/pcapng capture into a messages table",
        description="Decode every protocol message of a pcap or pcapng capture, or of live "
        "traffic (--live IFACE, through dumpcap). Without -o, print the messages; with -o, "
        "write them as csv, json (lines) or parquet, chosen by the extension.",
    )
    p.add_argument("capture", nargs="?", help="pcap or pcapng file (omit with --live); with "
                   "-o DIR/: files, folders or a quoted glob, decoded into a dataset")
    p.add_argument("more", nargs="*", metavar="CAPTURE", help=argparse.SUPPRESS)
    p.add_argument("-o", "--output", help="OUT.csv, OUT.json or OUT.parquet; a folder (DIR/) "
                   "writes a Parquet dataset of every table (docs/fleet.md)")
    p.add_argument("--dask", metavar="SCHEDULER", help="decode the dataset on a Dask cluster: "
                   "a scheduler address (tcp://host:8786), or local[:N] for N local workers")
    add_decode_options(p)
    live = p.add_argument_group("live capture")
    live.add_argument("--live", metavar="IFACE",
                      help="capture on this interface instead of reading a file (e.g. lo)")
    live.add_argument("--bpf", help="an extra capture filter, and-ed with --ports")
    live.add_argument("--record", help="also save the raw capture here (.pcap or .pcapng)")
    live.add_argument("--duration", type=float, help="stop after this many seconds")
    live.add_argument("--max-messages", type=int, help="stop after this many messages")
    p.set_defaults(run=run)


def add_decode_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dialect", default="auto",
                   help="wire dialect, e.g. line, lp32le:gbk (default: auto, per connection)")
    p.add_argument("--ports", type=parse_ports, default=None,
                   help="only connections on these ports, e.g. 9000,9001-9020")
    p.add_argument("--reveal-passwords", action="store_true",
                   help="keep protocol passwords instead of masking them as ***")


def parse_ports(text: str) -> list[int]:
    ports: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not a port or a range A-B") from None
        if not 0 < first <= last < 65536:
            raise argparse.ArgumentTypeError(f"{part!r} is not within 1-65535")
        ports.extend(range(first, last + 1))
    return ports


def load(args: argparse.Namespace):
    """Read the capture named on the command line, with a progress bar on a terminal."""
    from camprotool.analysis.capture import read_capture  # pandas loads only when used

    path = args.capture
    progress = progress_bar(capture_size(path), f"decoding {os.path.basename(path)}")
    return read_capture(path, dialect=args.dialect, ports=args.ports,
                        reveal_passwords=args.reveal_passwords, progress=progress)


def run(args: argparse.Namespace) -> int:
    if args.live:
        if args.capture:
            raise CliError("give a capture file or --live IFACE, not both")
        from camprotool.cli.live import run_live

        return run_live(args.live, ports=args.ports, bpf=args.bpf, dialect=args.dialect,
                        reveal_passwords=args.reveal_passwords, record=args.record,
                        output=args.output, duration=args.duration,
                        max_messages=args.max_messages)
    if not args.capture:
        raise CliError("give a capture file to decode, or --live IFACE")
    live_only = [f"--{n.replace('_', '-')}" for n in ("bpf", "record", "duration",
                                                      "max_messages") if getattr(args, n)]
    if live_only:
        raise CliError(f"{live_only[0]} only applies to --live")
    from camprotool.cli.decode_dataset import is_dataset_output, run_dataset

    if is_dataset_output(args):
        return run_dataset(args, [args.capture, *args.more])
    if args.more:
        raise CliError("several captures: quote a glob to read them as one capture "
                       "('DIR/*.pcapng'), or write a dataset with -o DIR/")
    if args.dask:
        raise CliError("--dask decodes into a dataset: give -o DIR/")
    from camprotool.analysis.export import output_format

    if args.output:
        output_format(args.output)  # refuse a bad extension before decoding
    path = args.capture
    capture_size(path)  # a missing file or a glob matching nothing: one line, now
    found: list = []
    watch = _Watch()
    chunks = watch.chunks(stream(args, path, problems=found))
    code = _write(chunks, args.output) if args.output else _print(chunks)
    if watch.done:  # problems are known once the stream ends (not after `| head`)
        warn_problems(watch.problems(found, args.dialect))
    return code


def capture_size(path: str) -> int:
    """Bytes to read for ``path``: a capture file, or a glob naming a capture set (read as
    one capture, merged by time). A missing file or an empty glob is a CliError."""
    from camprotool.capture.captureset import expand_sources

    try:
        paths = expand_sources(path) or [path]
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    if len(paths) == 1 and not os.path.exists(paths[0]):
        raise CliError(f"{path}: no such file")
    return sum(os.path.getsize(p) for p in paths if os.path.isfile(p))


def stream(args: argparse.Namespace, path: str, *, problems: list | None = None):
    """The capture's messages chunk by chunk (bounded memory), with a progress bar on a tty.
    ``problems``: a list that gets the decoder's problem rows once the last chunk is out."""
    from camprotool.analysis.stream import iter_capture

    progress = progress_bar(capture_size(path), f"decoding {os.path.basename(path)}")
    return iter_capture(path, dialect=args.dialect, ports=args.ports,
                        reveal_passwords=args.reveal_passwords, progress=progress,
                        problems=problems)


def warn_problems(problems) -> int:
    """One ``warning: KIND: COUNT (first at frame F): DETAIL`` line per kind on stderr."""
    from camprotool.analysis.problems import print_warnings

    return print_warnings(problems, sys.stderr)


class _Watch:
    """Passes the chunks through, keeping what the problem rows need from them
    (a :class:`~camprotool.analysis.problems.MessageDigest`: per connection, not per
    message) and whether the stream was read to its end."""

    def __init__(self) -> None:
        from camprotool.analysis.problems import MessageDigest

        self.digest = MessageDigest()
        self.done = False

    def chunks(self, chunks):
        for chunk in chunks:
            self.digest.add(chunk)
            yield chunk
        self.done = True

    def problems(self, found: list, dialect: str):
        """The decoder's rows, plus what the digest alone can tell: a connection whose
        every frame failed with the dialect given on the command line. Lost bytes and
        mid-stream starts need the connections table, which the stream does not give."""
        import pandas as pd

        from camprotool.analysis.problems import build_problems

        per = self.digest.per_conn
        conns = pd.DataFrame({"conn": per.index.to_numpy(), "handshake_seen": True,
                              "lost_c2s": 0, "lost_s2c": 0,
                              "dialect": None if dialect in (None, "auto") else dialect})
        return build_problems(found, conns, self.digest)


def _write(chunks, output: str) -> int:
    from camprotool.analysis.export import FrameWriter

    conns: set[int] = set()
    with FrameWriter(output) as writer:
        for chunk in chunks:
            writer.write(chunk)
            conns.update(chunk["conn"].unique().tolist())
        if writer.rows == 0 and writer.format == "parquet":
            writer.write(_empty_messages())
    print(f"{writer.rows} messages from {len(conns)} connections written to {output} "
          f"({writer.format})", file=sys.stderr)
    return 0


def _empty_messages():
    from camprotool.analysis import schema

    return schema.empty_frame(schema.MESSAGES)


def _print(chunks) -> int:
    """Print the messages as they are decoded; a reader that stops early (``| head``) ends
    the run quietly."""
    import pandas as pd

    printed = 0
    try:
        with pd.option_context("display.max_rows", None, "display.width", 200,
                               "display.max_colwidth", 60):
            for chunk in chunks:
                preview = chunk[PREVIEW_COLUMNS].fillna({"error": ""})
                preview.index = preview.index + printed
                text = preview.to_string(header=printed == 0, max_colwidth=60)
                print(text, flush=True)
                printed += len(chunk)
        if not printed:
            print("no messages")
    except BrokenPipeError:
        # the reader is gone: silence the interpreter's own flush of stdout at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0

"""``camprotool dissector [-o FILE]``: the Wireshark Lua dissector, generated from the catalogue."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from camprotool.cli import CliError

DEFAULT_PORTS = "9000"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dissector",
        help="write a Wireshark/tshark Lua dissector for the protocol",
        description="Generate the camproto Wireshark Lua dissector from camprotool's command "
        "catalogue. Without -o the Lua text goes to stdout; how to load it is printed on "
        "stderr. The dialect, ports and password display stay Wireshark preferences "
        "(Protocols > CAMPROTO, or tshark -o camproto.dialect:lp32le); the options below "
        "only set their defaults. The defaults' rendering also ships in the package as "
        "camprotool/protocol/camproto.lua (camprotool.protocol.lua.packaged_dissector()).",
        epilog="example: camprotool dissector -o camproto.lua && "
        "wireshark -X lua_script:camproto.lua capture.pcapng",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write the Lua file here")
    p.add_argument("--dialect", default="line", metavar="DIALECT",
                   help="default framing: line, lp32le, lp32be or auto (per TCP stream), "
                   "optionally :utf-8 or :gbk for the text encoding, which is otherwise "
                   "detected per frame (default: line)")
    p.add_argument("--ports", default=DEFAULT_PORTS, metavar="PORTS",
                   help="default TCP ports, e.g. 9000,9001-9020 (default: 9000; empty: none, "
                   "rely on the heuristic or Decode As)")
    p.add_argument("--no-heuristic", dest="heuristic", action="store_false",
                   help="do not register the heuristic that recognises the protocol on any "
                   "TCP port by its command names")
    p.set_defaults(run=run)


def load_instructions(path: str) -> str:
    quoted = shlex.quote(path)
    return (
        f"load it:  wireshark -X lua_script:{quoted}   (tshark takes the same option)\n"
        "or copy it into your personal Lua plugins folder (Linux/macOS: "
        "~/.local/lib/wireshark/plugins/, Windows: %APPDATA%\\Wireshark\\plugins\\; "
        "Help > About Wireshark > Folders shows it) and restart Wireshark\n"
        "then filter with: camproto   (fields: camproto.command, camproto.camera_id, ...)"
    )


def run(args: argparse.Namespace) -> int:
    from camprotool.protocol.lua import format_ports, render_dissector

    try:
        ports = format_ports(args.ports)
    except ValueError as exc:
        raise CliError(f"--ports: {exc}") from None
    try:
        text = render_dissector(args.dialect, ports, heuristic=args.heuristic)
    except ValueError as exc:
        raise CliError(f"--dialect: {exc}") from None
    data = text.encode("utf-8")
    summary = (f"camproto dissector (dialect {args.dialect}, ports {ports or 'none'}, "
               f"heuristic {'on' if args.heuristic else 'off'})")
    if args.output:
        try:
            with open(args.output, "wb") as f:
                f.write(data)
        except OSError as exc:
            raise CliError(f"{args.output}: {exc.strerror or exc}") from None
        print(f"wrote {args.output}: {summary}", file=sys.stderr)
        print(load_instructions(args.output), file=sys.stderr)
        return 0
    try:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:  # `camprotool dissector | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    print(f"{summary} written to stdout; save it as camproto.lua", file=sys.stderr)
    print(load_instructions("camproto.lua"), file=sys.stderr)
    return 0

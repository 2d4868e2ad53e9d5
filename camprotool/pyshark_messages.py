"""``from_pyshark(packets)``: the ``messages`` table of ``read_capture``, from pyshark packets.

For people whose pipeline already runs through pyshark: give it the packets
of a capture opened with :func:`camprotool.pyshark_capture` (or any pyshark
capture whose tshark loads the ``camproto`` dissector) and get the table
``read_capture(path).messages`` would give, with the same columns, dtypes
and meaning: ``ts`` (the packet that completed the message, in nanoseconds),
``conn``, ``channel``, ``direction``, ``client``, ``server``, ``command``,
``params``, ``error``, one typed column per protocol field, and ``frame``.
Passwords are ``***`` unless ``reveal_passwords=True`` (which needs packets
dissected with revealed passwords too: ``pyshark_capture(...,
reveal_passwords=True)``).

How each column is found, so the two paths agree:

* Typed fields come from camprotool's own parser run on the dissector's
  ``camproto.command`` and ``camproto.params``, not from the dissector's typed
  fields, so they have exactly ``read_capture``'s types and values. ``error``
  is that parser's complaint, else the dissector's (a frame-level problem).
* ``conn`` is tshark's TCP stream number (``tcp.stream``): both tshark and
  ``read_capture`` number every TCP connection, of any protocol, in the order
  they start, so the numbers agree (with ``ports`` too). Client and server
  and the channel follow the rules of :mod:`camprotool.capture.connections`:
  a seen handshake decides the roles (else which side sends client
  commands), command votes decide ``main``/``data``, and a connection without
  a vote is ``data`` when a ``ReturnDataSocketPort`` announced its server
  port to its client before it started.
* Where tshark reports lost bytes (``tcp.analysis.lost_segment``) it restarts
  framing inside the cut frame; an unknown "command" first in that packet is
  the frame's tail, so it becomes an error row with an empty ``command`` (its
  text in ``params``, masked as a whole unless revealed), as in ``read_capture``.
  The part of the cut frame before the hole, which ``read_capture`` reports as
  an error row of its own, tshark does not show at all.
* Two capture-reader columns are absent: ``stream_offset`` and ``raw`` (byte
  offsets in the reassembled stream, and the bytes of a bad frame), which
  tshark's dissection does not hand over.

Reassembly is tshark's: on a clean capture the tables are equal (the test
suite checks the bundled samples); where bytes were lost, only the rows of
the damaged frame differ.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from camprotool.protocol.catalogue import BY_NAME, COMMANDS, FIELD_NAMES, SECRET_FIELDS, Channel
from camprotool.protocol.catalogue import Direction as CommandDirection
from camprotool.protocol.linking import Announcement, announcing
from camprotool.protocol.messages import Message, UnknownMessage, build_message
from camprotool.protocol.typed_messages import ReturnDataSocketPort
from camprotool.pyshark_bridge import LAYER, _iterate_in_thread, _loop_running_here

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ABSENT_COLUMNS", "from_pyshark"]

#: Columns of ``Capture.messages`` that pyshark packets cannot give.
ABSENT_COLUMNS = ("stream_offset", "raw")
MASK = "***"
_TAIL = "follows lost bytes: probably the tail of a cut frame"
_SYN, _ACK = 0x02, 0x10
_CLIENT_COMMANDS = {c.name for c in COMMANDS if c.direction is CommandDirection.C2S}
_SERVER_COMMANDS = {c.name for c in COMMANDS if c.direction is not CommandDirection.C2S}


@dataclass
class _Stream:
    """One tshark TCP stream: its ends as first seen, and what the handshake said."""

    a: tuple[str, int]  # source of its first packet
    b: tuple[str, int]
    start_ns: int
    syn_client: tuple[str, int] | None = None
    rows: list[int] = field(default_factory=list)


@dataclass
class _Row:
    ts_ns: int
    stream: int
    src: tuple[str, int]
    frame: int
    message: Message
    fragment: bool = False  # the leftover tail of a frame cut by lost bytes


def _show(layer: Any, name: str) -> str | None:
    """A field's text as tshark shows it (``show``, which is ``""`` for an empty
    string, where pyshark's str value falls back to the label)."""
    found = layer.get_field(name)
    if found is None:
        return None
    return found.main_field.show


def _timestamp_ns(text: str) -> int:
    """tshark's epoch text (``1764320400.005000000``) as exact integer nanoseconds."""
    seconds, _, fraction = str(text).partition(".")
    return int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9])


def _ip_text(text: str) -> str:
    return ipaddress.ip_address(text).compressed


def _endpoint(end: tuple[str, int]) -> str:
    ip, port = end
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _message(layer: Any) -> Message:
    """The camproto layer as camprotool's typed message, parsed by camprotool."""
    command = _show(layer, f"{LAYER}.command") or ""
    params = _show(layer, f"{LAYER}.params") or ""
    error = _show(layer, f"{LAYER}.error")
    spec = BY_NAME.get(command)
    if spec is None:
        return UnknownMessage(command=command, params=params, error=error)
    msg = build_message(spec, command, params)
    if msg.error is None and error:
        object.__setattr__(msg, "error", error)  # a frame-level problem only tshark saw
    return msg


def _needed(layer: Any, name: str) -> str:
    """A field every IP or TCP layer has; a packet without it is not one tshark wrote."""
    text = _show(layer, name)
    if text is None:
        raise ValueError(f"from_pyshark: a packet without {name}")
    return text


def _check_layer(layer: Any) -> None:
    if not hasattr(layer, "_all_fields"):
        raise ValueError("from_pyshark reads pyshark's default (PDML) packets: open the "
                         "capture without use_json/use_ek/only_summaries")


def _packets(packets: Iterable[Any]) -> Iterable[Any]:
    """``packets``, read on a worker thread when it is a pyshark capture of ours and an
    event loop runs here (Jupyter); other pyshark captures get a clear error there."""
    if not _loop_running_here() or getattr(packets, "loaded", True):
        return packets
    from camprotool.pyshark_bridge import _classes

    ours = (_classes()["CamprotoFileCapture"], _classes()["CamprotoLiveCapture"])
    if isinstance(packets, ours):
        return packets  # its __iter__ moves to a thread itself
    loop = getattr(packets, "eventloop", None)
    if loop is not None and loop is asyncio.get_running_loop():
        raise RuntimeError("this pyshark capture runs on the event loop that is running here "
                           "(a notebook's): open it with cpt.pyshark_capture(...), or pass "
                           "eventloop=asyncio.new_event_loop() to pyshark")
    return _iterate_in_thread(lambda: iter(packets), "camprotool-from-pyshark")


def _collect(packets: Iterable[Any]) -> tuple[dict[int, _Stream], list[_Row]]:
    streams: dict[int, _Stream] = {}
    rows: list[_Row] = []
    for pkt in _packets(packets):
        ip = tcp = None
        for layer in pkt.layers:  # the IP header just before TCP (the inner one of a tunnel)
            name = layer.layer_name
            if name in ("ip", "ipv6"):
                ip = layer
            elif name == "tcp":
                tcp = layer
                break
        if ip is None or tcp is None:
            continue
        _check_layer(tcp)
        version = ip.layer_name
        src = (_ip_text(_needed(ip, f"{version}.src")), int(_needed(tcp, "tcp.srcport")))
        dst = (_ip_text(_needed(ip, f"{version}.dst")), int(_needed(tcp, "tcp.dstport")))
        key = int(_needed(tcp, "tcp.stream"))
        ts_ns = _timestamp_ns(pkt.sniff_timestamp)
        stream = streams.get(key)
        if stream is None:
            stream = streams[key] = _Stream(src, dst, ts_ns)
        flags = int(_show(tcp, "tcp.flags") or "0", 16)
        if flags & _SYN and stream.syn_client is None:
            stream.syn_client = dst if flags & _ACK else src
        lost = tcp.get_field("tcp.analysis.lost_segment") is not None
        for i, layer in enumerate(pkt.get_multiple_layers(LAYER)):
            msg = _message(layer)
            # After a hole tshark restarts framing mid-frame: an unknown "command" first
            # in the packet is the cut frame's tail, not a command (read_capture's rule).
            fragment = lost and i == 0 and msg.spec is None
            if fragment:
                text = f"{msg.command}|{msg.params}" if msg.params else msg.command
                msg = UnknownMessage(command="", params=text, error=_TAIL)
            stream.rows.append(len(rows))
            rows.append(_Row(ts_ns, key, src, int(pkt.number), msg, fragment))
    return streams, rows


@dataclass
class _Conn:
    conn: int
    client: tuple[str, int]
    server: tuple[str, int]
    start_ns: int
    channel: str = "unknown"


def _connections(streams: dict[int, _Stream], rows: list[_Row]) -> dict[int, _Conn]:
    """Per stream with messages: roles and channel (capture.connections' rules)."""
    conns: dict[int, _Conn] = {}
    for key in sorted(k for k in streams if streams[k].rows):
        stream = streams[key]
        if stream.syn_client is not None:
            client = stream.syn_client
        else:  # the side sending client commands (or answered by server commands) is the client
            score = 0
            for i in stream.rows:
                name, by_a = rows[i].message.command, rows[i].src == stream.a
                if name in _CLIENT_COMMANDS:
                    score += 1 if by_a else -1
                elif name in _SERVER_COMMANDS:
                    score += -1 if by_a else 1
            client = stream.a if score >= 0 else stream.b
        server = stream.b if client == stream.a else stream.a
        conn = conns[key] = _Conn(key, client, server, stream.start_ns)
        votes = {Channel.MAIN: 0, Channel.DATA: 0}
        for i in stream.rows:
            spec = rows[i].message.spec
            if spec is not None:
                votes[spec.channel] += 1
        if votes[Channel.MAIN] or votes[Channel.DATA]:
            conn.channel = "main" if votes[Channel.MAIN] >= votes[Channel.DATA] else "data"
    _link(conns, rows)
    return conns


def _link(conns: dict[int, _Conn], rows: list[_Row]) -> None:
    """A connection without a vote is ``data`` when the one linking rule
    (:func:`camprotool.protocol.linking.announcing`, scope: the same client IP and
    server IP, as the connection table links) finds the announcement it used."""
    scopes: dict[tuple[str, str], list[Announcement]] = {}
    for index, row in enumerate(rows):
        conn = conns[row.stream]
        msg = row.message
        if (conn.channel == "main" and isinstance(msg, ReturnDataSocketPort)
                and not msg.error and row.src == conn.server):  # sent by the server
            scopes.setdefault((conn.client[0], conn.server[0]), []).append(
                Announcement(msg.port, index, row.ts_ns, conn.conn))
    for conn in conns.values():
        if conn.channel == "unknown" and announcing(
                conn.server[1], conn.start_ns,
                scopes.get((conn.client[0], conn.server[0]), ())) is not None:
            conn.channel = "data"


def _field_value(name: str, value: Any, reveal: bool) -> Any:
    if value is None:
        return None
    if name in SECRET_FIELDS and not reveal:
        return MASK
    if name == "ids":
        return list(value)
    if name == "statuses":
        return [{"camera_id": cam, "online": online} for cam, online in value]
    return value


def from_pyshark(packets: Iterable[Any], *, reveal_passwords: bool = False) -> pd.DataFrame:
    """The messages table (``read_capture(...).messages``'s columns, dtypes and meaning,
    less ``stream_offset`` and ``raw``) of pyshark packets dissected by ``camproto``.

    ``packets``: a capture from :func:`camprotool.pyshark_capture`, or any iterable
    of pyshark packets (a list, ``cap.sniff_continuously(packet_count=100)``, ...);
    TCP packets without a message still count (their handshakes tell client from
    server). Passwords are ``***`` unless ``reveal_passwords``.
    """
    import pandas as pd

    from camprotool.analysis.masking import mask_params
    from camprotool.analysis.schema import MESSAGES, conform

    streams, rows = _collect(packets)
    conns = _connections(streams, rows)
    cols: dict[str, list[Any]] = {name: [] for name in (
        "ts", "conn", "channel", "direction", "client", "server", "command", "params", "error",
        "frame")}
    fields: dict[str, list[Any]] = {name: [] for name in FIELD_NAMES}
    for row in rows:
        conn, msg = conns[row.stream], row.message
        cols["ts"].append(row.ts_ns)
        cols["conn"].append(conn.conn)
        cols["channel"].append(conn.channel)
        cols["direction"].append("c2s" if row.src == conn.client else "s2c")
        cols["client"].append(_endpoint(conn.client))
        cols["server"].append(_endpoint(conn.server))
        cols["command"].append(msg.command)
        if reveal_passwords:
            cols["params"].append(msg.params)
        else:  # a fragment may hold a password anywhere
            cols["params"].append(MASK if row.fragment else mask_params(msg.command, msg.params))
        cols["error"].append(msg.error)
        cols["frame"].append(row.frame)
        values = msg.fields
        for name, column in fields.items():
            column.append(_field_value(name, values.get(name), reveal_passwords))
    data: dict[str, Any] = {
        "ts": pd.to_datetime(pd.Series(cols["ts"], dtype="int64"), unit="ns", utc=True),
        "conn": pd.Series(cols["conn"], dtype="int64"),
        "channel": pd.Categorical(cols["channel"], categories=["main", "data", "unknown"]),
        "direction": pd.Categorical(cols["direction"], categories=["c2s", "s2c"]),
        "frame": pd.Series(cols["frame"], dtype="int64"),
    }
    for name in ("client", "server", "command", "params", "error"):
        data[name] = pd.Series(cols[name], dtype="object")
    for name, column in fields.items():
        data[name] = pd.Series(column, dtype="object")
    schema = {k: v for k, v in MESSAGES.items() if k not in ABSENT_COLUMNS}
    frame = conform(pd.DataFrame(data), schema)
    # by time; ties (one packet completing several messages) in packet, then stream order
    return frame.sort_values("ts", kind="stable", ignore_index=True)

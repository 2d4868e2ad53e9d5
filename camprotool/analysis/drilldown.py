"""From a message down to its packets: ``Capture.packets`` and ``Capture.follow``.

Why a second pass over the file: the decoded tables keep one frame number
per message (the packet that completed it), not the packets themselves;
keeping every packet's headers and bytes would double the memory of a
large capture for the few packets anyone looks at. So a drill-down reads
the capture again, keeps only the packets asked for, and works out what a
Wireshark user expects to see beside them:

* the TCP flags, raw and relative sequence/acknowledgement numbers (relative
  as Wireshark counts them when the handshake is captured: the SYN is 0, the
  first data byte 1) and the stream ``offset`` of the first payload byte, on
  the same scale as ``messages.stream_offset`` (lost bytes count);
* the TCP analysis a reader needs: ``previous segment not captured`` (data
  after a hole), ``retransmission`` (nothing new), ``partial
  retransmission`` (some bytes seen before), ``zero window``;
* which messages each packet completes, and a message's packets: every
  segment of its connection and direction whose bytes overlap the message's
  bytes (from the end of the message before it to its ``stream_offset``).

Passwords stay masked unless the capture was read with
``reveal_passwords=True``: in the payload of a message with a secret field
the field's bytes are hidden (everything after its first field when its
field count is wrong, as in ``params``); a message that is not all in the
packets shown, a frame no command could be read from, bytes that belong to
no decoded message and the payload of TCP connections that were not decoded
are hidden whole. Hidden bytes read ``*`` in ``payload``.
"""

from __future__ import annotations

import ipaddress
import os
import struct
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from camprotool.analysis.hexview import PacketList
from camprotool.capture.packets import (
    ACK,
    CWR,
    ECE,
    FIN,
    PSH,
    RST,
    SYN,
    URG,
    NotTcp,
    decode_tcp,
    format_endpoint,
    iter_tcp_segments,
    parse_tcp,
)
from camprotool.capture.readers import RawPacket
from camprotool.protocol.catalogue import BY_NAME

if TYPE_CHECKING:
    from camprotool.analysis.capture import Capture

__all__ = ["capture_origin", "follow", "packets"]

_MASK32 = 0xFFFFFFFF
_FLAG_NAMES = ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST"), (PSH, "PSH"), (ACK, "ACK"),
               (URG, "URG"), (ECE, "ECE"), (CWR, "CWR"))
_STAR = ord("*")
#: bytes of a packet searched for its ports: link + IPv6 + extension headers fit
_HEAD = 128
COLUMNS = ["frame", "ts", "conn", "direction", "src", "dst", "tcp_flags", "seq", "ack", "rel_seq",
           "rel_ack", "window", "len", "offset", "frame_len", "cap_len", "analysis",
           "messages", "payload"]


def flag_names(flags: int) -> str:
    """``'SYN, ACK'``: the flags in the order Wireshark lists them."""
    return ", ".join(name for bit, name in _FLAG_NAMES if flags & bit) or "none"


def capture_origin(cap: Capture, source: Any = None) -> Any:
    """What to read the packets from: ``source``, else what ``read_capture`` was given."""
    if source is not None:
        return source
    origin = getattr(cap, "origin", None)
    if origin is not None:
        return origin
    name = cap.source
    if name == "<memory>":
        raise ValueError("this capture was read from bytes in memory: pass source= the same "
                         "bytes to see its packets")
    if not os.path.exists(name):
        raise ValueError(f"cannot read the packets again from {name!r}: pass source= the "
                         "path(s) the capture was read from")
    return name


def _open(origin: Any) -> Any:
    """One capture, or a capture set (a list of paths or a glob), numbered as decoded."""
    from camprotool.capture.captureset import open_source

    return open_source(list(origin) if isinstance(origin, tuple) else origin)


# ---------------------------------------------------------------- the pass over the file


class _Half:
    """One direction of a 4-tuple: where its stream starts and how far data reached."""

    __slots__ = ("base", "reach")

    def __init__(self) -> None:
        self.base: int | None = None  # sequence number of stream offset 0
        self.reach: int | None = None  # stream offset just past the furthest data seen


class _Seg(NamedTuple):
    raw: RawPacket
    key: tuple
    flags: int
    seq: int
    ack: int
    window: int
    payload: memoryview | bytes
    length: int  # payload bytes per the IP header (captured + cut by the snaplen)
    offset: int | None  # stream offset of the first payload byte
    rel_ack: int | None
    analysis: str


class _Tap:
    """The capture's packets up to frame ``upto``, remembering the last one handed
    on (the parser gives segments, the lengths are the raw packet's).

    ``keys``: only the packets of these 4-tuples (and the ``frames`` asked for)
    matter; the others are dropped before parsing when their first bytes do not
    hold the pair of ports (TCP's first four bytes), which makes following one
    connection in a large capture about as fast as reading it.
    """

    def __init__(self, capture: Any, frames: set[int], keys: set[tuple] | None,
                 upto: int | None) -> None:
        self.capture = capture
        self.frames = frames
        self.upto = upto
        self.needles = None if keys is None else sorted(
            {struct.pack("!HH", k[1], k[3]) for k in keys})
        self.last: RawPacket | None = None

    def __iter__(self) -> Iterator[RawPacket]:
        frames, needles, upto = self.frames, self.needles, self.upto
        for raw in self.capture:
            if upto is not None and raw.frame > upto:
                return  # frames count up, in a file and in a merged set alike
            if needles is not None and raw.frame not in frames:
                head = bytes(raw.data[:_HEAD])
                if not any(n in head for n in needles):
                    continue
            self.last = raw
            yield raw

    def add_problem(self, frame: int, kind: str, detail: str) -> None:
        """Damage was reported by the first pass (``cap.problems``)."""


def _signed(x: int) -> int:
    x &= _MASK32
    return x - (1 << 32) if x >= 1 << 31 else x


class _Pass:
    """One pass over the capture: every TCP segment up to frame ``upto`` (of the 4-tuples
    in ``keys``, and the ``frames`` asked for), with its stream offset and analysis."""

    def __init__(self, capture: Any, frames: set[int], upto: int | None,
                 keys: set[tuple] | None = None) -> None:
        self.tap = _Tap(capture, frames, keys, upto)
        self.keys = keys

    def __iter__(self) -> Iterator[_Seg]:
        tap, keys = self.tap, self.keys
        halves: dict[tuple, _Half] = {}
        for seg in iter_tcp_segments(tap):
            key = (seg.src_ip, seg.src_port, seg.dst_ip, seg.dst_port)
            if keys is not None and key not in keys and seg.frame not in tap.frames:
                continue
            h = halves.get(key)
            if h is None:
                h = halves[key] = _Half()
            peer = halves.get((seg.dst_ip, seg.dst_port, seg.src_ip, seg.src_port))
            last = tap.last
            assert last is not None  # the packet this segment was read from
            yield _analyse(seg, h, peer, last)


def _analyse(seg: Any, h: _Half, peer: _Half | None, raw: RawPacket) -> _Seg:
    """Stream offsets and Wireshark-style notes of one segment; updates its half."""
    flags, seq = seg.flags, seg.seq
    length = len(seg.payload) + seg.missing
    if flags & SYN:
        if h.base != (seq + 1) & _MASK32:  # a new ISN: a new stream on this 4-tuple
            h.base, h.reach = (seq + 1) & _MASK32, 0
        offset = None
    else:
        if h.base is None and (length or flags & FIN):
            h.base = seq
        offset = None if h.base is None else _signed(seq - h.base)
    notes = []
    if offset is not None and length and not flags & RST:
        end = offset + length
        if h.reach is not None:
            if offset > h.reach:
                notes.append("previous segment not captured")
            elif end <= h.reach:
                notes.append("retransmission")
            elif offset < h.reach:
                notes.append("partial retransmission")
        h.reach = end if h.reach is None else max(h.reach, end)
    if seg.window == 0 and not flags & (RST | SYN | FIN):
        notes.append("zero window")
    if seg.missing:
        notes.append(f"{seg.missing} bytes cut by the snapshot length")
    rel_ack = (_signed(seg.ack - peer.base) + 1 if flags & ACK and peer is not None
               and peer.base is not None else None)
    key = (seg.src_ip, seg.src_port, seg.dst_ip, seg.dst_port)
    return _Seg(raw, key, flags, seq, seg.ack, seg.window, seg.payload, length, offset,
                rel_ack, "; ".join(notes))


# ---------------------------------------------------------------- connections and messages


class _Conn(NamedTuple):
    conn: int
    start: int
    end: int
    dialect: str


class _Index:
    """The decoded connections by their 4-tuple, each direction (port reuse: by time)."""

    def __init__(self, connections: pd.DataFrame) -> None:
        self.by_key: dict[tuple, list[tuple[_Conn, str]]] = {}
        self.keys: dict[int, tuple[tuple, tuple]] = {}
        self.conns: dict[int, _Conn] = {}
        if not len(connections):
            return
        start = connections["start"].astype("int64").to_numpy()
        end = connections["end"].astype("int64").to_numpy()
        for i, r in enumerate(connections.itertuples(index=False)):
            c = _Conn(int(r.conn), int(start[i]), int(end[i]),
                      "" if pd.isna(r.dialect) else str(r.dialect))
            cip = ipaddress.ip_address(r.client_ip).packed
            sip = ipaddress.ip_address(r.server_ip).packed
            c2s = (cip, int(r.client_port), sip, int(r.server_port))
            s2c = (sip, int(r.server_port), cip, int(r.client_port))
            self.by_key.setdefault(c2s, []).append((c, "c2s"))
            self.by_key.setdefault(s2c, []).append((c, "s2c"))
            self.keys[c.conn] = (c2s, s2c)
            self.conns[c.conn] = c

    def find(self, key: tuple, ts: int) -> tuple[_Conn | None, str | None]:
        found = self.by_key.get(key)
        if not found:
            return None, None
        for c, direction in found:
            if c.start <= ts <= c.end:
                return c, direction
        # outside every connection's time: the nearest one (a packet after the last message)
        c, direction = min(found, key=lambda f: min(abs(ts - f[0].start), abs(ts - f[0].end)))
        return c, direction


class _Range(NamedTuple):
    start: int
    end: int
    label: int
    kind: str  # "safe", "secret" or "hidden"
    command: str


def _ranges(messages: pd.DataFrame, conns: Iterable[int]) -> dict[tuple[int, str], list[_Range]]:
    """Per (conn, direction): each message's bytes, from the end of the one before it to its
    ``stream_offset``, and whether they may be shown."""
    from camprotool.analysis.masking import SECRET_POSITIONS

    m = messages[messages["conn"].isin(list(conns))]
    out: dict[tuple[int, str], list[_Range]] = {}
    if not len(m) or "stream_offset" not in m:
        return out
    m = m.sort_values(["conn", "direction", "stream_offset"], kind="stable")
    for (conn, direction), g in m.groupby(["conn", m["direction"].astype(str)], sort=False,
                                           observed=True):
        ends = g["stream_offset"].to_numpy(dtype=np.int64)
        starts = np.r_[0, ends[:-1]]
        commands = g["command"].astype(str).to_numpy()
        errors = g["error"].notna().to_numpy()
        rows = []
        for label, s, e, cmd, err in zip(g.index, starts, ends, commands, errors, strict=True):
            if cmd in SECRET_POSITIONS:
                kind = "secret"
            elif err and cmd not in BY_NAME:
                kind = "hidden"
            else:
                kind = "safe"
            rows.append(_Range(int(s), int(e), int(label), kind, cmd))
        out[(int(conn), direction)] = rows
    return out


def _secret_offsets(body: bytes, start: int, command: str, line: bool) -> list[tuple[int, int]]:
    """Stream offset ranges of the secret fields in one whole message's bytes (as
    :func:`camprotool.analysis.masking.mask_params` words it: all after the first field
    when the field count is wrong). ``line``: a line frame (else a 4-byte length first)."""
    from camprotool.analysis.masking import SECRET_POSITIONS

    i, n = (0, len(body)) if line else (4, len(body))
    if line:  # empty lines before the frame, its line end after
        while i < n and body[i] in b"\r\n":
            i += 1
        while n > i and body[n - 1] in b"\r\n":
            n -= 1
    bars = [j for j in range(i, n) if body[j] == 0x7C]
    if not bars:
        return []
    # field k spans (bars[k] + 1, bars[k + 1]) ; the last runs to n
    edges = [*bars, n]
    fields = [(edges[k] + 1, edges[k + 1]) for k in range(len(bars))]
    want = len(BY_NAME[command].fields)
    if len(fields) == want:
        spans = [fields[k] for k in SECRET_POSITIONS[command]]
    elif len(fields) > 1:
        spans = [(fields[1][0], n)]
    else:
        spans = [fields[0]]
    return [(start + a, start + b) for a, b in spans if b > a]


def _hidden(rows: list[dict], ranges: dict[tuple[int, str], list[_Range]],
            dialects: dict[int, str]) -> list[np.ndarray | None]:
    """Per row, the payload bytes masking hides (None: none)."""
    # the whole bytes of each secret message, when the rows shown hold all of them
    pieces: dict[tuple[int, str, int], list[tuple[int, bytes]]] = {}
    for r in rows:
        if r["conn"] is None or r["offset"] is None or not r["payload"]:
            continue
        for rg in ranges.get((r["conn"], r["direction"]), ()):
            if rg.kind == "secret" and rg.start < r["offset"] + len(r["payload"]) \
                    and r["offset"] < rg.end:
                pieces.setdefault((r["conn"], r["direction"], rg.label), []).append(
                    (r["offset"], r["payload"]))
    secrets: dict[tuple[int, str, int], list[tuple[int, int]] | None] = {}
    for (conn, direction, label), got in pieces.items():
        rg = next(x for x in ranges[(conn, direction)] if x.label == label)
        buf = bytearray(rg.end - rg.start)
        seen = np.zeros(len(buf), bool)
        for off, data in got:
            a, b = max(off, rg.start), min(off + len(data), rg.end)
            if b > a:
                buf[a - rg.start:b - rg.start] = data[a - off:b - off]
                seen[a - rg.start:b - rg.start] = True
        line = not dialects.get(conn, "").startswith("lp")
        secrets[(conn, direction, label)] = (
            _secret_offsets(bytes(buf), rg.start, rg.command, line) if seen.all() else None)
    out: list[np.ndarray | None] = []
    for r in rows:
        data = r["payload"]
        if not data:
            out.append(None)
            continue
        hide = np.ones(len(data), bool)
        off = r["offset"]
        if r["conn"] is not None and off is not None:
            for rg in ranges.get((r["conn"], r["direction"]), ()):
                a, b = max(off, rg.start), min(off + len(data), rg.end)
                if b <= a or rg.kind == "hidden":
                    continue
                hide[a - off:b - off] = False
                if rg.kind == "secret":
                    spans = secrets.get((r["conn"], r["direction"], rg.label))
                    if spans is None:  # not all here: hide all after the command name
                        hide[a - off:b - off] = True
                        continue
                    for sa, sb in spans:
                        x, y = max(sa, a), min(sb, b)
                        if y > x:
                            hide[x - off:y - off] = True
        out.append(hide if hide.any() else None)
    return out


# ---------------------------------------------------------------- the two entry points


def _row(s: _Seg, conn: _Conn | None, direction: str | None) -> dict:
    raw = s.raw
    src_ip, src_port, dst_ip, dst_port = s.key
    return {
        "frame": raw.frame, "ts": raw.ts_ns, "conn": None if conn is None else conn.conn,
        "direction": direction, "src": format_endpoint(src_ip, src_port),
        "dst": format_endpoint(dst_ip, dst_port), "tcp_flags": flag_names(s.flags),
        "seq": s.seq, "ack": s.ack,
        "rel_seq": (0 if s.flags & SYN and s.offset is None else
                    None if s.offset is None else s.offset + 1),
        "rel_ack": s.rel_ack, "window": s.window, "len": s.length,
        "offset": s.offset, "frame_len": raw.orig_len, "cap_len": raw.cap_len,
        "analysis": s.analysis, "payload": bytes(s.payload),
    }


def _not_tcp_row(raw: RawPacket) -> dict:
    r = decode_tcp(raw)
    why = f"not TCP: {r.detail}" if isinstance(r, NotTcp) else "TCP"
    return {"frame": raw.frame, "ts": raw.ts_ns, "conn": None, "direction": None, "src": None,
            "dst": None, "tcp_flags": None, "seq": None, "ack": None, "rel_seq": None,
            "rel_ack": None, "window": None, "len": None, "offset": None,
            "frame_len": raw.orig_len, "cap_len": raw.cap_len, "analysis": why,
            "payload": b""}


def _finish(cap: Capture, rows: list[dict], origin: Any, what: str,
            index: _Index) -> PacketList:
    rows.sort(key=lambda r: r["frame"])
    m = cap.messages
    frames = [r["frame"] for r in rows]
    done = m.loc[m["frame"].isin(frames), ["frame", "conn"]]
    completes: dict[tuple[int, int], list[int]] = {}
    for label, f, c in zip(done.index, done["frame"], done["conn"], strict=True):
        completes.setdefault((int(f), int(c)), []).append(int(label))
    for r in rows:
        r["messages"] = completes.get((r["frame"], r["conn"]), []) if r["conn"] is not None \
            else []
    if cap.reveal_passwords:
        hidden: list[np.ndarray | None] = [None] * len(rows)
    else:
        conns = {r["conn"] for r in rows if r["conn"] is not None}
        hidden = _hidden(rows, _ranges(m, conns),
                         {c: index.conns[c].dialect for c in conns})
        for r, h in zip(rows, hidden, strict=True):
            if h is not None:
                data = np.frombuffer(r["payload"], np.uint8).copy()
                data[h] = _STAR
                r["payload"] = data.tobytes()
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["ts"] = pd.to_datetime(df["ts"].astype("int64"), unit="ns", utc=True)
    for col in ("conn", "seq", "ack", "rel_seq", "rel_ack", "window", "len", "offset"):
        df[col] = pd.array(df[col].tolist(), dtype="Int64")
    df["direction"] = df["direction"].astype("category")
    return PacketList(df, hidden, source=origin, what=what)


def packets(cap: Capture, what: Any, *, source: Any = None) -> PacketList:
    """The packets of ``what``: a frame number (or a list of them), a row of
    ``cap.messages`` (a Series) or several rows (a DataFrame). A message's
    packets are the segments holding its bytes, the one that completed it
    (its ``frame``) last; ``source`` is the file(s) to read when the capture
    was read from bytes."""
    origin = capture_origin(cap, source)
    index = _Index(cap.connections)
    if isinstance(what, pd.Series):
        what = what.to_frame().T
    if isinstance(what, pd.DataFrame):
        return _message_packets(cap, what, origin, index)
    frames = _frame_numbers(cap, what)
    rows = []
    wanted = set(frames)
    with _open(origin) as capture:
        # first the packets themselves (a plain read), then only their connections'
        # packets are followed, for the relative numbers and the analysis
        kept: dict[int, RawPacket] = {}
        for raw in capture:
            if raw.frame > frames[-1]:
                break
            if raw.frame in wanted:
                kept[raw.frame] = raw._replace(data=bytes(raw.data))
        keys = set()
        for raw in kept.values():
            seg = parse_tcp(raw)
            if seg is not None:
                keys |= {(seg.src_ip, seg.src_port, seg.dst_ip, seg.dst_port),
                         (seg.dst_ip, seg.dst_port, seg.src_ip, seg.src_port)}
        for s in _Pass(capture, wanted, frames[-1], keys):
            if s.raw.frame in wanted:
                conn, direction = index.find(s.key, s.raw.ts_ns)
                rows.append(_row(s, conn, direction))
    found = {r["frame"] for r in rows}
    rows += [_not_tcp_row(kept[f]) for f in frames if f not in found and f in kept]
    label = f"frame {frames[0]}" if len(frames) == 1 else f"{len(frames)} frames"
    return _finish(cap, rows, origin, label, index)


def _frame_numbers(cap: Capture, what: Any) -> list[int]:
    if isinstance(what, int | np.integer) and not isinstance(what, bool):
        frames = [int(what)]
    elif isinstance(what, Iterable) and not isinstance(what, str | bytes):
        frames = []
        for f in what:
            if not isinstance(f, int | np.integer) or isinstance(f, bool):
                raise TypeError(f"packets: {f!r} is not a frame number")
            frames.append(int(f))
    else:
        raise TypeError(f"packets: give a frame number, a list of them, or rows of "
                        f"cap.messages; not {type(what).__name__}")
    if not frames:
        raise ValueError("packets: no frame number given")
    total = cap.decoded.packets
    bad = [f for f in frames if not 1 <= f <= total]
    if bad:
        raise ValueError(f"packets: frame {bad[0]} is not in the capture (frames 1-{total})")
    return sorted(set(frames))


def _message_packets(cap: Capture, rows: pd.DataFrame, origin: Any,
                     index: _Index) -> PacketList:
    missing = [c for c in ("conn", "direction", "frame") if c not in rows]
    if missing:
        raise ValueError(f"packets: these rows have no {', '.join(missing)} column: give rows "
                         "of cap.messages")
    if not len(rows):
        raise ValueError("packets: no message given")
    conns = {int(c) for c in rows["conn"]}
    unknown = conns - set(index.conns)
    if unknown:
        raise ValueError(f"packets: connection {min(unknown)} is not in cap.connections")
    ranges = _ranges(cap.messages, conns)
    wanted: dict[tuple[int, str], list[tuple[int, int]]] = {}
    frames = set()
    for label, r in rows.iterrows():
        key = (int(r["conn"]), str(r["direction"]))
        frames.add(int(r["frame"]))
        rg = next((x for x in ranges.get(key, ()) if x.label == label), None)
        if rg is not None:
            wanted.setdefault(key, []).append((rg.start, rg.end))
    out = []
    with _open(origin) as capture:
        keys = {k for c in conns for k in index.keys[c]}
        for s in _Pass(capture, set(), max(frames), keys):
            conn, direction = index.find(s.key, s.raw.ts_ns)
            if conn is None or conn.conn not in conns:
                continue
            spans = wanted.get((conn.conn, direction or ""), ())
            take = s.raw.frame in frames  # the packet that completed a message
            if not take and s.offset is not None and s.length:
                end = s.offset + s.length
                take = any(a < end and s.offset < b for a, b in spans)
            if take:
                out.append(_row(s, conn, direction))
    n = len(rows)
    label = f"message {rows.index[0]}" if n == 1 else f"{n} messages"
    return _finish(cap, out, origin, label, index)


def follow(cap: Capture, conn: int, *, source: Any = None) -> PacketList:
    """Every packet of connection ``conn`` (an index of ``cap.connections``), both
    directions, handshake and close included, as Wireshark's *Follow TCP Stream*."""
    if isinstance(conn, bool) or not isinstance(conn, int | np.integer):
        raise TypeError(f"follow: a connection number (cap.connections.conn), not {conn!r}")
    origin = capture_origin(cap, source)
    index = _Index(cap.connections)
    c = index.conns.get(int(conn))
    if c is None:
        n = len(cap.connections)
        raise ValueError(f"follow: no connection {conn} (cap.connections has {n}: "
                         f"{'none' if not n else f'0-{n - 1}'})")
    keys = set(index.keys[c.conn])
    rows = []
    with _open(origin) as capture:
        for s in _Pass(capture, set(), None, keys):
            if s.key in keys:
                found, direction = index.find(s.key, s.raw.ts_ns)
                if found is not None and found.conn == c.conn:
                    rows.append(_row(s, c, direction))
    return _finish(cap, rows, origin, f"connection {c.conn}", index)

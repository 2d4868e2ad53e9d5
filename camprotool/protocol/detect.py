"""Dialect detection: name a stream's dialect from its first bytes, or say it is not ours.

Captures run the protocol on whatever ports a deployment chose, so readers find
it by content. A stream may start mid-frame (the capture began late), so the
detector looks for command names anywhere in the sample and asks, for each
hit, what the bytes around it say about the framing:

* ``lp32le`` / ``lp32be``: the 4 bytes before the name are a plausible length
  (1..max_frame) that ends inside the sample at the start of another plausible
  frame, or exactly at the sample's end;
* ``line``: the name starts the sample or follows a ``\\n``, and a ``\\n``
  follows within max_frame bytes (or the sample ends first).

The framing with most votes wins. The text encoding is then decided by
decoding the sample with a trial decoder: UTF-8 unless the bodies are not
valid UTF-8 but are valid GBK. Pure ASCII is UTF-8.
"""

from __future__ import annotations

import re
import struct

from camprotool.protocol.catalogue import COMMANDS
from camprotool.protocol.codec import Decoder
from camprotool.protocol.dialect import DEFAULT_MAX_FRAME, Dialect

#: a stream is judged on its first SAMPLE_SIZE bytes; one that holds a command name
#: by then may be ours with a long first frame, and is judged on up to
#: LONG_SAMPLE bytes (the default max_frame) before the reader gives up
SAMPLE_SIZE = 65536
LONG_SAMPLE = 1 << 20
#: where readers try detection as a direction's sample grows
DETECT_AT = (128, 1024, 8192, SAMPLE_SIZE, 4 * SAMPLE_SIZE, LONG_SAMPLE)
_MAX_HITS = 32
_NAMES = sorted({c.name for c in COMMANDS}, key=len, reverse=True)
_SHORT = b"|".join(re.escape(n.encode()) for n in _NAMES)
_HIT_RE = re.compile(b"SocketCommand\\s*\\.|(?:" + _SHORT + b")(?=\\||\\r?\\n)")
_LE = struct.Struct("<I")
_BE = struct.Struct(">I")


def _lp_vote(sample: bytes, pos: int, fmt: struct.Struct, limit: int) -> bool:
    if pos < 4:
        return False
    (length,) = fmt.unpack_from(sample, pos - 4)
    if not 0 < length <= limit:
        return False
    end = pos + length
    if end == len(sample):
        return True
    if end + 4 <= len(sample):
        (following,) = fmt.unpack_from(sample, end)
        return 0 < following <= limit
    return end > len(sample) or end + 4 > len(sample)


def _line_vote(sample: bytes, pos: int, limit: int) -> bool:
    if pos > 0 and sample[pos - 1] != 0x0A:
        return False
    nl = sample.find(b"\n", pos, pos + limit + 1)
    return nl >= 0 or len(sample) - pos <= limit


def detect_framing(sample: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> str | None:
    """``line``, ``lp32le``, ``lp32be``, or None when no command name is framed plausibly."""
    sample = bytes(sample[:LONG_SAMPLE])
    votes = {"line": 0, "lp32le": 0, "lp32be": 0}
    for i, hit in enumerate(_HIT_RE.finditer(sample)):
        if i >= _MAX_HITS:
            break
        pos = hit.start()
        if _lp_vote(sample, pos, _LE, max_frame):
            votes["lp32le"] += 1
        if _lp_vote(sample, pos, _BE, max_frame):
            votes["lp32be"] += 1
        if _line_vote(sample, pos, max_frame):
            votes["line"] += 1
    best = max(votes, key=lambda k: votes[k])
    return best if votes[best] else None


def _clean_in(sample: bytes, dialect: Dialect) -> tuple[int, int]:
    """(frames decoded cleanly, frames with an encoding error) under ``dialect``."""
    dec = Decoder(dialect)
    msgs = dec.gap(0) + dec.feed(sample)
    bad = sum(1 for m in msgs if m.error and "invalid " + dialect.encoding in m.error)
    good = sum(1 for m in msgs if m.spec is not None and not m.error)
    return good, bad


def names_a_command(sample: bytes | bytearray) -> bool:
    """Does the sample hold a command name as the detector looks for them?"""
    return _HIT_RE.search(bytes(sample[:LONG_SAMPLE])) is not None


def detect(sample: bytes, max_frame: int = DEFAULT_MAX_FRAME, *, final: bool = False,
           **dialect_options) -> Dialect | None:
    """The dialect of a stream from its first bytes (either direction), or None.

    Only complete frames in the sample are judged, so a sample may end
    mid-frame; a plausibly framed command name without one complete frame is
    enough only when ``final`` (the stream has nothing more to show).
    """
    sample = bytes(sample[:LONG_SAMPLE])
    framing = detect_framing(sample, max_frame)
    if framing is None:
        return None
    utf8 = Dialect(framing, "utf-8", max_frame=max_frame, **dialect_options)
    good, bad = _clean_in(sample, utf8)
    if not bad:
        return utf8 if good or final else None
    gbk = Dialect(framing, "gbk", max_frame=max_frame, **dialect_options)
    _, bad_gbk = _clean_in(sample, gbk)
    if bad_gbk < bad:
        return gbk
    return utf8


def detect_connection(*samples: bytes, max_frame: int = DEFAULT_MAX_FRAME, final: bool = False,
                      **dialect_options) -> Dialect | None:
    """One dialect for a connection from the samples of both directions.

    Framing comes from the direction that names one (the client's, usually);
    GBK wins if any direction needs it, since one program chose one encoding.
    """
    found = [
        d
        for d in (detect(s, max_frame, final=final, **dialect_options) for s in samples if s)
        if d
    ]
    if not found:
        return None
    framings = {d.framing for d in found}
    framing = found[0].framing if len(framings) == 1 else max(
        framings, key=lambda f: sum(d.framing == f for d in found)
    )
    encoding = "gbk" if any(d.encoding == "gbk" for d in found) else "utf-8"
    return Dialect(framing, encoding, max_frame=max_frame, **dialect_options)


__all__ = ["DETECT_AT", "LONG_SAMPLE", "SAMPLE_SIZE", "detect", "detect_connection",
           "detect_framing", "names_a_command"]

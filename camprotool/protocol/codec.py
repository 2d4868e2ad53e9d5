"""Sans-I/O codec: ``encode`` turns a command into bytes, ``Decoder`` bytes into messages.

Theory of operation
-------------------
The decoder is a small state machine over one byte stream (one direction of
one TCP connection). It never raises on what the peer sent and never buffers
without bound:

* ``line``: a frame is everything up to ``\\n``; one ``\\r`` before it is
  dropped. Empty lines carry nothing and are skipped. A line longer than
  ``max_frame`` becomes one error message when it ends; only its first
  ``max_frame`` bytes are kept meanwhile.
* ``lp32le``/``lp32be``: a 4-byte length, then the body. A zero length is an
  error message; a length over ``max_frame`` is impossible, so the stream is
  broken: the decoder scans for the next plausible frame (a sane length
  followed by a known command name) and reports the bytes it skipped as one
  error message.
* ``gap(n)`` says ``n`` bytes were lost (TCP reassembly found a hole, or
  ``n == 0``: the stream starts at an unknown point). A partial frame is
  reported and dropped; ``line`` then treats the next line with suspicion
  (an unknown command there is reported as the tail of a cut frame), ``lp*``
  resynchronises by scanning as above.
* ``finish()`` reports a frame left incomplete at the end of the stream.

Every message comes with the stream offset just past its last byte (lost
bytes count), which is how capture decoding gives each message the time of
the packet that completed it.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from typing import Any

from camprotool.protocol.catalogue import (
    BY_NAME,
    COMMANDS,
    HEARTBEAT,
    CommandSpec,
    normalize_name,
    spec_for,
)
from camprotool.protocol.dialect import LINE, Dialect
from camprotool.protocol.errors import LocalProtocolError
from camprotool.protocol.fields import format_params
from camprotool.protocol.messages import Message, build_message

_NAME_RE = re.compile(r"\s*[A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)*\s*", re.ASCII)
_LENGTH = {"lp32le": struct.Struct("<I"), "lp32be": struct.Struct(">I")}
_RAW_KEEP = 256  # bytes of skipped garbage kept in an error message's raw
_SPEC_CACHE_LIMIT = 4096


# ------------------------------------------------------------------ encoding


def resolve(command: str | CommandSpec, dialect: Dialect = LINE) -> tuple[CommandSpec | None, str]:
    """The spec for ``command`` (full or short name) and the name to write."""
    spec: CommandSpec | None
    if isinstance(command, CommandSpec):
        spec = command
    else:
        spec = spec_for(command, dialect.heartbeat_name)
    if spec is None:
        name = normalize_name(str(command))
        if not _NAME_RE.fullmatch(name):
            raise LocalProtocolError(f"{command!r} is not a command name")
        return None, name
    if spec.name == HEARTBEAT:
        return spec, dialect.heartbeat_name
    return spec, spec.full_name


def encode(
    command: str | CommandSpec,
    params: str | Mapping[str, Any] = "",
    dialect: Dialect | str = LINE,
) -> bytes:
    """One frame for ``command``. ``params`` is the parameter string, or a dict
    of typed fields (``{"user": "demo", "password": "demo"}``) formatted by the
    catalogue. Raises :class:`LocalProtocolError` naming what the dialect
    cannot carry.
    """
    dialect = Dialect.parse(dialect)
    spec, name = resolve(command, dialect)
    values: Mapping[str, Any] = {}
    if isinstance(params, Mapping):
        if spec is None:
            raise LocalProtocolError(f"unknown command {name!r}: pass params as a string")
        values = params
        params = format_params(spec, params)
    elif not isinstance(params, str):
        raise LocalProtocolError(f"params must be a str or a dict, not {type(params).__name__}")
    text = f"{name}|{params}" if params or (spec is not None and spec.fields) else name
    try:
        body = text.encode(dialect.encoding)
    except UnicodeEncodeError as exc:
        bad = text[exc.start:exc.end]
        raise LocalProtocolError(
            f"{_culprit(spec, name, values, bad[0])}: {bad!r} cannot be written in "
            f"{dialect.encoding}"
        ) from None
    # A line is read back with the '\r' before its '\n', so that byte must fit too.
    limit = dialect.max_frame - 1 if dialect.is_line else dialect.max_frame
    if len(body) > limit:
        raise LocalProtocolError(
            f"{name}: body of {len(body)} bytes exceeds the {limit}-byte limit of "
            f"dialect {dialect.name} (max_frame {dialect.max_frame})"
        )
    if dialect.is_line:
        for brk in "\n\r":
            if brk in text:
                raise LocalProtocolError(
                    f"{_culprit(spec, name, values, brk)}: a line break cannot be carried by "
                    "the 'line' dialect"
                )
        return body + b"\r\n"
    return _LENGTH[dialect.framing].pack(len(body)) + body


def _culprit(spec: CommandSpec | None, name: str, values: Mapping[str, Any], char: str) -> str:
    """Name the field whose value holds ``char``, for an encoder error."""

    def texts(value: Any) -> list[str]:
        if isinstance(value, list | tuple):
            return [t for v in value for t in texts(v)]
        return [str(value)]

    for key, value in values.items():
        if spec is not None and any(char in t for t in texts(value)):
            return f"{spec.name}.{key}"
    return name if char in name else f"{name} params"


def encode_message(msg: Message, dialect: Dialect | str = LINE) -> bytes:
    """Re-encode a message from its typed fields (its ``params`` for unknown ones)."""
    if msg.spec is None:
        return encode(msg.command, msg.params, dialect)
    return encode(msg.spec, msg.fields, dialect)


# ------------------------------------------------------------------ decoding


class BodyDecoder:
    """Body bytes -> message; shared by the incremental and the bulk decoder."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._specs: dict[str, CommandSpec | None] = {}

    def spec(self, name: str) -> CommandSpec | None:
        specs = self._specs
        try:
            return specs[name]
        except KeyError:
            spec = spec_for(name, self.dialect.heartbeat_name)
            if len(specs) < _SPEC_CACHE_LIMIT:
                specs[name] = spec
            return spec

    def decode(self, body: bytes, raw: bytes, note: str | None = None) -> Message:
        """Decode one frame body. ``note`` is an error the framing already found."""
        error = note
        try:
            text = body.decode(self.dialect.encoding)
        except UnicodeDecodeError as exc:
            text = body.decode(self.dialect.encoding, "replace")
            bad = f"invalid {self.dialect.encoding} at byte {exc.start}"
            error = f"{error}; {bad}" if error else bad
        name, _, params = text.partition("|")
        spec = self.spec(name)
        if spec is not None:
            return build_message(spec, spec.name, params, raw, error)
        if not _NAME_RE.fullmatch(name):
            bad = f"not a command name: {name[:40]!r}"
            error = f"{error}; {bad}" if error else bad
            # no command could be read: the error quotes the text, raw keeps the bytes
            return build_message(None, "", params, raw, error)
        return build_message(None, normalize_name(name), params, raw, error)


def error_message(raw: bytes, error: str) -> Message:
    """A frame the framing itself rejected: no command could be read."""
    return build_message(None, "", "", raw, error)


class Decoder:
    """Incremental decoder for one byte stream: feed chunks of any size."""

    def __init__(self, dialect: Dialect | str = LINE) -> None:
        self.dialect = Dialect.parse(dialect)
        self.body = BodyDecoder(self.dialect)
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]
        self._after_gap = 0  # line: the next line follows lost bytes
        self._overflow = 0  # line: bytes of the current line beyond what we keep
        self._resync: _Resync | None = None  # lp: scanning for the next frame
        if not self.dialect.is_line:
            self._length = _LENGTH[self.dialect.framing]
            self._markers = _resync_markers()

    @property
    def offset(self) -> int:
        """Stream offset reached so far (bytes fed plus bytes lost)."""
        return self._base + len(self._buf) + self._overflow

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @property
    def idle(self) -> bool:
        """Nothing pending: ``finish()`` now would report nothing."""
        return not self._buf and self._resync is None and not self._overflow

    @property
    def held_from(self) -> int:
        """The lowest stream offset a future message can still end at or after.

        Bytes before it are decoded for good, so callers may forget what they
        kept about them (capture decoding prunes its packet timestamps here).
        """
        held = len(self._buf) + (len(self._resync.raw) if self._resync is not None else 0)
        return self.offset - held - 1

    # -- public API: messages only
    def feed(self, data: bytes) -> list[Message]:
        return [m for _, m in self.feed_with_ends(data)]

    def gap(self, nbytes: int) -> list[Message]:
        return [m for _, m in self.gap_with_ends(nbytes)]

    def finish(self) -> list[Message]:
        return [m for _, m in self.finish_with_ends()]

    # -- public API: (end offset, message) pairs
    def feed_with_ends(self, data: bytes) -> list[tuple[int, Message]]:
        out: list[tuple[int, Message]] = []
        if not data:
            return out
        self._buf += data
        if self.dialect.is_line:
            self._frames_line(out)
        else:
            self._frames_lp(out)
        return out

    def gap_with_ends(self, nbytes: int) -> list[tuple[int, Message]]:
        if nbytes < 0:
            raise LocalProtocolError(f"gap of {nbytes} bytes: must be >= 0")
        out: list[tuple[int, Message]] = []
        pending = self._pending_error(f"frame cut by {nbytes} lost bytes"
                                      if nbytes else "frame cut: stream position lost")
        if pending is not None:
            out.append(pending)
        self._base += len(self._buf) + self._overflow + nbytes
        self._buf.clear()
        self._overflow = 0
        if self.dialect.is_line:
            self._after_gap = max(nbytes, 1)
        else:
            self._resync = _Resync(self._base, "after lost bytes")
        return out

    def finish_with_ends(self) -> list[tuple[int, Message]]:
        out: list[tuple[int, Message]] = []
        if not self.dialect.is_line and self._resync is not None:
            # A final scan may still accept frames that are complete.
            self._frames_lp(out, final=True)
        pending = self._pending_error("stream ended inside a frame")
        if pending is not None:
            out.append(pending)
        self._base += len(self._buf) + self._overflow
        self._buf.clear()
        self._overflow = 0
        return out

    # -- internals
    def _pending_error(self, why: str) -> tuple[int, Message] | None:
        end = self.offset
        if self._resync is not None:
            resync, self._resync = self._resync, None
            skipped = resync.skipped + len(self._buf)
            raw = bytes(resync.raw + self._buf[: max(0, _RAW_KEEP - len(resync.raw))])
            if skipped or resync.cause != "after lost bytes":
                return end, error_message(raw, resync.describe(skipped))
            return None
        if not self._buf and not self._overflow:
            return None
        size = len(self._buf) + self._overflow
        return end, error_message(bytes(self._buf), f"{why} ({size} bytes of it seen)")

    def _tail(self, body: bytes, msg: Message) -> Message:
        """The rest of a frame cut by lost bytes: an error row that names no command
        (its first word is not a command name), the whole text in ``params``."""
        note = "follows lost bytes: probably the tail of a cut frame"
        error = f"{msg.error}; {note}" if msg.error else note
        text = body.decode(self.dialect.encoding, "replace")
        return build_message(None, "", text, msg.raw, error)

    def _frames_line(self, out: list[tuple[int, Message]]) -> None:
        buf = self._buf
        limit = self.dialect.max_frame
        start = 0
        decode = self.body.decode
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            end = nl + 1
            if self._overflow:
                size = nl - start + self._overflow
                raw = bytes(buf[start : min(end, start + limit)])
                msg = error_message(raw, f"line of {size} bytes exceeds the {limit}-byte limit")
                self._base += self._overflow
                self._overflow = 0
                out.append((self._base + end, msg))
            else:
                body_end = nl - 1 if nl > start and buf[nl - 1] == 13 else nl
                size = nl - start
                if size > limit:
                    msg = error_message(bytes(buf[start : start + limit]),
                                        f"line of {size} bytes exceeds the {limit}-byte limit")
                    out.append((self._base + end, msg))
                elif body_end > start:
                    body = bytes(buf[start:body_end])
                    msg = decode(body, bytes(buf[start:end]))
                    if self._after_gap and msg.spec is None:
                        msg = self._tail(body, msg)
                    out.append((self._base + end, msg))
            self._after_gap = 0
            start = end
        if start:
            del buf[:start]
            self._base += start
        if len(buf) > limit:
            # Keep the head of an over-long line, count the rest.
            self._overflow += len(buf) - limit
            del buf[limit:]

    def _frames_lp(self, out: list[tuple[int, Message]], final: bool = False) -> None:
        buf = self._buf
        limit = self.dialect.max_frame
        unpack_from = self._length.unpack_from
        decode = self.body.decode
        start = 0
        while True:
            if self._resync is not None:
                found = self._scan(start, final)
                if found is None:
                    # Keep only what the next scan still needs.
                    keep_from = max(start, len(buf) - self._markers.longest)
                    self._resync.skip(buf[start:keep_from])
                    start = keep_from
                    break
                resync, self._resync = self._resync, None
                resync.skip(buf[start:found])
                start = found
                if resync.skipped or resync.cause != "after lost bytes":
                    out.append((self._base + start,
                                error_message(bytes(resync.raw), resync.describe(resync.skipped))))
            avail = len(buf) - start
            if avail < 4:
                break
            (length,) = unpack_from(buf, start)
            if length == 0:
                out.append((self._base + start + 4,
                            error_message(bytes(buf[start : start + 4]), "empty frame (length 0)")))
                start += 4
                continue
            if length > limit:
                self._resync = _Resync(self._base + start,
                                       f"impossible frame length {length} "
                                       f"(limit {limit})")
                self._resync.skip(buf[start : start + 1])
                start += 1
                continue
            end = start + 4 + length
            if end > len(buf):
                break
            msg = decode(bytes(buf[start + 4 : end]), bytes(buf[start:end]))
            out.append((self._base + end, msg))
            start = end
        if start:
            del buf[:start]
            self._base += start

    def _scan(self, start: int, final: bool) -> int | None:
        """Offset of the next plausible frame at or after ``start``, or None."""
        buf = self._buf
        limit = self.dialect.max_frame
        unpack_from = self._length.unpack_from
        markers = self._markers
        n = len(buf)
        pos = start
        while pos + 4 < n:
            hit = markers.regex.search(buf, pos + 4)
            if hit is None:
                return None
            cand = hit.start() - 4
            if cand < start:
                pos = hit.start() - 3
                continue
            (length,) = unpack_from(buf, cand)
            body = hit.group(0)
            if hit.end() == n and not final and not body.startswith(b"SocketCommand."):
                return None  # the byte after a short name decides: wait for it
            if 0 < length <= limit and markers.fits(body, length):
                return cand
            pos = cand + 1
        return None


class _Resync:
    """Bookkeeping while an lp stream scans for its next frame."""

    __slots__ = ("cause", "raw", "skipped", "start")

    def __init__(self, start: int, cause: str) -> None:
        self.start = start
        self.cause = cause
        self.skipped = 0
        self.raw = bytearray()

    def skip(self, data: bytes | bytearray) -> None:
        self.skipped += len(data)
        room = _RAW_KEEP - len(self.raw)
        if room > 0:
            self.raw += data[:room]

    def describe(self, skipped: int) -> str:
        return f"{self.cause}: skipped {skipped} bytes to resynchronise"


class _Markers:
    """What the body of a plausible frame starts with: a known command name."""

    def __init__(self) -> None:
        names = sorted({s.name for s in COMMANDS} | {"SocketCommand."}, key=len, reverse=True)
        alts = b"|".join(re.escape(n.encode()) for n in names)
        self.regex = re.compile(b"(?:" + alts + b")(?:\\||$)?")
        self.longest = 4 + max(len(n) for n in names) + 1

    @staticmethod
    def fits(body: bytes, length: int) -> bool:
        """A short name must end at '|' or at the frame's end; the full prefix fits anywhere."""
        if body.startswith(b"SocketCommand."):
            return True
        if body.endswith(b"|"):
            return length >= len(body)
        return length == len(body)


_MARKERS: _Markers | None = None


def _resync_markers() -> _Markers:
    global _MARKERS
    if _MARKERS is None:
        _MARKERS = _Markers()
    return _MARKERS


def decode_all(data: bytes, dialect: Dialect | str = LINE) -> list[Message]:
    """Decode a whole stream at once (a convenience over :class:`Decoder`)."""
    dec = Decoder(dialect)
    return dec.feed(data) + dec.finish()


__all__ = [
    "BY_NAME",
    "BodyDecoder",
    "Decoder",
    "decode_all",
    "encode",
    "encode_message",
]

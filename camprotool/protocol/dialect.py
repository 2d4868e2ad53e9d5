"""Wire dialects: how a command and its parameters become bytes.

The source document never says, so camprotool names the choice (PROTOCOL.md
section 4): a *framing* (``line``, ``lp32le``, ``lp32be``), a text *encoding*
(utf-8 or gbk) and the heartbeat's name. Every codec, reader, client and server
takes a :class:`Dialect`, written as text like ``lp32le:gbk``.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, replace
from typing import Literal

from camprotool.protocol.errors import LocalProtocolError

FRAMINGS = ("line", "lp32le", "lp32be")
ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "gbk": "gbk"}
DEFAULT_HEARTBEAT = "SocketCommand.NormalCommand.Heartbeat"
DEFAULT_MAX_FRAME = 1 << 20


@dataclass(frozen=True, slots=True)
class Dialect:
    """A wire dialect. Immutable and hashable, so it can key caches."""

    framing: str = "line"
    encoding: str = "utf-8"
    heartbeat_name: str = DEFAULT_HEARTBEAT
    max_frame: int = DEFAULT_MAX_FRAME

    def __post_init__(self) -> None:
        if self.framing not in FRAMINGS:
            raise LocalProtocolError(
                f"unknown framing {self.framing!r}: expected one of {', '.join(FRAMINGS)}"
            )
        if self.encoding not in ENCODINGS.values():
            raise LocalProtocolError(
                f"unknown encoding {self.encoding!r}: expected utf-8 or gbk"
            )
        if not 16 <= self.max_frame <= 0xFFFFFFFF:
            raise LocalProtocolError(f"max_frame {self.max_frame} outside 16..4294967295")

    @classmethod
    def parse(cls, text: str | Dialect, **overrides: object) -> Dialect:
        """Parse ``framing[:encoding]``, e.g. ``line``, ``lp32le:gbk``.

        ``auto`` is not a dialect (readers resolve it per connection); passing
        a :class:`Dialect` returns it, with ``overrides`` applied.
        """
        if isinstance(text, Dialect):
            return replace(text, **overrides) if overrides else text  # type: ignore[arg-type]
        framing, _, encoding = str(text).strip().lower().partition(":")
        if framing == "auto":
            raise LocalProtocolError(
                "'auto' is resolved by readers per connection; name a dialect like 'line' "
                "or 'lp32le:gbk' here"
            )
        if framing not in FRAMINGS:
            raise LocalProtocolError(
                f"unknown dialect {text!r}: expected framing {', '.join(FRAMINGS)} "
                "optionally followed by :utf-8 or :gbk"
            )
        enc = ENCODINGS.get(encoding or "utf-8")
        if enc is None:
            raise LocalProtocolError(f"unknown encoding {encoding!r} in dialect {text!r}")
        return cls(framing=framing, encoding=enc, **overrides)  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        return self.framing if self.encoding == "utf-8" else f"{self.framing}:{self.encoding}"

    @property
    def is_line(self) -> bool:
        return self.framing == "line"

    @property
    def byteorder(self) -> Literal["little", "big"]:
        return "big" if self.framing == "lp32be" else "little"

    @property
    def codec(self) -> codecs.CodecInfo:
        return codecs.lookup(self.encoding)

    def __str__(self) -> str:
        return self.name


LINE = Dialect()

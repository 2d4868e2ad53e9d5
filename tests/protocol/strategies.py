"""Shared hypothesis strategies and helpers for the protocol tests.

``tests/protocol`` has no ``__init__.py``: pytest's default ``prepend`` import
mode puts this directory on ``sys.path``, so test modules here import it as
``from strategies import ...``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cache
from itertools import pairwise
from typing import Any

from hypothesis import strategies as st

from camprotool.protocol import COMMANDS, MAX_STATUS_IDS, CommandSpec, Decoder, Dialect, Message
from camprotool.protocol.catalogue import Kind, Layout

DIALECT_NAMES = ("line", "line:gbk", "lp32le", "lp32le:gbk", "lp32be", "lp32be:gbk")
DIALECTS = tuple(Dialect.parse(n) for n in DIALECT_NAMES)
SPECS = COMMANDS  # the 15 commands and the heartbeat

# Text worth mixing in: Chinese (all in GBK), the protocol's separators, line
# breaks, dots and blanks, and characters GBK cannot write.
CHINESE = "用户名或者密码错误！摄像头在线离线报警没有绑定账号已满云端同步上传下载中文测试"
SPECIALS = "|;:.\r\n \t\x00"
NON_GBK = "😀ñßø한\U0001f4f7"

GBK_PUNCT = "·—“”‘’、。《》【】αβγАБВ①②ⅠⅡ℃×÷"

_cjk = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)  # all in GBK
_common = (_cjk, st.sampled_from(CHINESE), st.sampled_from(SPECIALS))
_utf8_char = st.one_of(st.characters(exclude_categories=("Cs",)), *_common)
# Mostly GBK-writable already, so the gbk filter below rarely rejects.
_gbk_char = st.one_of(st.characters(max_codepoint=0x7F), st.sampled_from(GBK_PUNCT), *_common)


def gbk_ok(text: str) -> bool:
    try:
        text.encode("gbk")
    except UnicodeEncodeError:
        return False
    return True


@cache
def chars(dialect: Dialect, forbidden: str = "") -> st.SearchStrategy[str]:
    """One character the dialect can carry, none of ``forbidden``."""
    bad = forbidden + ("\r\n" if dialect.is_line else "")
    if dialect.encoding == "gbk":
        return _gbk_char.filter(lambda c: c not in bad and gbk_ok(c))
    return _utf8_char.filter(lambda c: c not in bad)


@cache
def texts(dialect: Dialect, forbidden: str = "", min_size: int = 0,
          max_size: int = 12) -> st.SearchStrategy[str]:
    return st.text(chars(dialect, forbidden), min_size=min_size, max_size=max_size)


@cache
def camera_ids(dialect: Dialect, min_size: int = 0) -> st.SearchStrategy[str]:
    return texts(dialect, "|;:", min_size=min_size)


COUNTS = st.one_of(st.integers(0, 1000), st.integers(0, (1 << 63) - 1),
                   st.sampled_from([0, 1, 20, (1 << 63) - 1]))
STATUSES = st.sampled_from([True, False, None])
PORTS = st.one_of(st.none(), st.integers(1, 65535), st.sampled_from([1, 65535]))


@cache
def field_values(spec: CommandSpec, dialect: Dialect) -> st.SearchStrategy[dict[str, Any]]:
    """Random typed values for ``spec`` that ``dialect`` can carry."""
    if spec.layout is Layout.IDS:
        ids = st.lists(camera_ids(dialect, min_size=1), min_size=1, max_size=MAX_STATUS_IDS)
        return st.fixed_dictionaries({"ids": ids.map(tuple)})
    if spec.layout is Layout.STATUS_LIST:
        pairs = st.lists(st.tuples(camera_ids(dialect), STATUSES), min_size=1, max_size=6)
        return st.fixed_dictionaries({"statuses": pairs.map(tuple)})
    # A pipe-joined field may not hold '|' unless it is the only field; the
    # second half of a colon pair takes the rest of the string.
    joined = spec.layout is Layout.PIPE and len(spec.fields) > 1
    out = {}
    for f in spec.fields:
        if f.kind is Kind.COUNT:
            out[f.name] = COUNTS
        elif f.kind is Kind.STATUS:
            out[f.name] = STATUSES
        elif f.kind is Kind.PORT:
            out[f.name] = PORTS
        elif f.kind is Kind.CAMERA_ID:
            out[f.name] = camera_ids(dialect)
        else:
            out[f.name] = texts(dialect, "|" if joined else "")
    return st.fixed_dictionaries(out)


@cache
def messages(dialect: Dialect,
             specs: Sequence[CommandSpec] = SPECS) -> st.SearchStrategy[tuple[CommandSpec, dict]]:
    """A (spec, typed values) pair for any command (strategies are cached: cheap to draw)."""
    return st.one_of([
        field_values(spec, dialect).map(lambda values, spec=spec: (spec, values))
        for spec in specs
    ])


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` split into chunks: whole, one byte at a time, or at random cuts."""
    how = draw(st.sampled_from(["whole", "bytes", "random", "random"]))
    if how == "whole" or not data:
        return [data]
    if how == "bytes":
        return [data[i : i + 1] for i in range(len(data))]
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=12))))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(bounds) if b > a]


def decode_chunks(dialect: Dialect, chunks: Iterable[bytes]) -> list[tuple[int, Message]]:
    """Feed ``chunks`` one by one, then finish: every (end offset, message)."""
    dec = Decoder(dialect)
    rows: list[tuple[int, Message]] = []
    for chunk in chunks:
        rows += dec.feed_with_ends(chunk)
    rows += dec.finish_with_ends()
    return rows


def expected_fields(values: dict[str, Any]) -> dict[str, Any]:
    """Typed values as decoding returns them (sequences become tuples)."""
    out = {}
    for key, value in values.items():
        if isinstance(value, list | tuple):
            value = tuple(tuple(v) if isinstance(v, list | tuple) else v for v in value)
        out[key] = value
    return out


def cumulative(lengths: Iterable[int]) -> list[int]:
    total, out = 0, []
    for n in lengths:
        total += n
        out.append(total)
    return out


def frame(body: bytes, dialect: Dialect) -> bytes:
    """Frame a body by hand, as a peer would."""
    if dialect.is_line:
        return body + b"\r\n"
    return len(body).to_bytes(4, dialect.byteorder) + body


# Framing errors (no command could be read) and how many stream bytes each covers.
_SEEN = re.compile(r"\((\d+) bytes of it seen\)$")
_SKIPPED = re.compile(r": skipped (\d+) bytes to resynchronise$")
_LONG_LINE = re.compile(r"^line of (\d+) bytes exceeds the \d+-byte limit$")


def stream_bytes(msg: Message) -> int:
    """How many stream bytes a decoded row stands for (its raw may be cut short)."""
    if msg.command == "" and msg.params == "" and msg.error:
        if m := _SEEN.search(msg.error):
            return int(m.group(1))
        if m := _SKIPPED.search(msg.error):
            return int(m.group(1))
        if m := _LONG_LINE.match(msg.error):
            return int(m.group(1)) + 1  # the '\n' ends the line
        if msg.error == "empty frame (length 0)":
            return 4
    return len(msg.raw)


#: What the lp resynchronisation scan looks for: a body starting with one of these.
MARKERS = (*(s.name.encode() for s in COMMANDS), b"SocketCommand.")


def has_marker(data: bytes) -> bool:
    return any(m in data for m in MARKERS)

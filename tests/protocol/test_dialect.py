"""Dialect names: ``framing[:encoding]``."""

from __future__ import annotations

import pytest
from strategies import DIALECT_NAMES

from camprotool.protocol import LINE, Dialect, LocalProtocolError, ProtocolError
from camprotool.protocol.dialect import DEFAULT_HEARTBEAT, DEFAULT_MAX_FRAME


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_the_six_dialects_round_trip_through_their_names(name):
    dialect = Dialect.parse(name)
    assert str(dialect) == dialect.name == name
    assert Dialect.parse(str(dialect)) == dialect
    framing, _, encoding = name.partition(":")
    assert (dialect.framing, dialect.encoding) == (framing, encoding or "utf-8")
    assert dialect.is_line is (framing == "line")
    assert (dialect.heartbeat_name, dialect.max_frame) == (DEFAULT_HEARTBEAT, DEFAULT_MAX_FRAME)


@pytest.mark.parametrize(("text", "framing", "encoding"), [
    ("LINE", "line", "utf-8"),
    ("  lp32le  ", "lp32le", "utf-8"),
    ("LP32BE:GBK", "lp32be", "gbk"),
    ("line:utf8", "line", "utf-8"),
    ("line:UTF-8", "line", "utf-8"),
    ("lp32le:utf-8", "lp32le", "utf-8"),
])
def test_parse_is_lenient_about_case_blanks_and_utf8_spelling(text, framing, encoding):
    assert Dialect.parse(text) == Dialect(framing, encoding)


def test_defaults_and_properties():
    assert Dialect.parse("line") == Dialect() == LINE
    assert Dialect.parse("lp32be").byteorder == "big"
    assert Dialect.parse("lp32le").byteorder == "little"
    assert Dialect.parse("line:gbk").codec.name == "gbk"
    assert DEFAULT_MAX_FRAME == 1 << 20
    assert len({Dialect.parse(n) for n in DIALECT_NAMES}) == 6  # hashable, distinct


def test_parse_passes_a_dialect_through_with_overrides():
    dialect = Dialect.parse("lp32le:gbk")
    assert Dialect.parse(dialect) is dialect
    small = Dialect.parse(dialect, max_frame=64, heartbeat_name="Ping")
    assert (small.framing, small.encoding, small.max_frame, small.heartbeat_name) == (
        "lp32le", "gbk", 64, "Ping")
    assert Dialect.parse("line", max_frame=100).max_frame == 100


@pytest.mark.parametrize(("text", "message"), [
    ("auto", "'auto' is resolved by readers"),
    ("AUTO:gbk", "'auto' is resolved by readers"),
    ("", "unknown dialect"),
    ("lp16", "unknown dialect"),
    ("lp32", "unknown dialect"),
    ("gbk", "unknown dialect"),
    ("line;gbk", "unknown dialect"),
    ("line:latin-1", "unknown encoding 'latin-1'"),
    ("lp32le:gb2312", "unknown encoding 'gb2312'"),
    ("lp32le:gbk:x", "unknown encoding 'gbk:x'"),
])
def test_parse_refuses_bad_names(text, message):
    with pytest.raises(LocalProtocolError, match=message):
        Dialect.parse(text)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"framing": "LINE"}, "unknown framing 'LINE'"),
    ({"framing": "auto"}, "unknown framing 'auto'"),
    ({"encoding": "utf8"}, "unknown encoding 'utf8'"),
    ({"encoding": "latin-1"}, "unknown encoding 'latin-1'"),
    ({"max_frame": 15}, "max_frame 15 outside 16..4294967295"),
    ({"max_frame": 1 << 32}, "outside 16..4294967295"),
])
def test_the_constructor_is_strict(kwargs, message):
    with pytest.raises(LocalProtocolError, match=message):
        Dialect(**kwargs)


def test_parse_overrides_are_validated():
    with pytest.raises(LocalProtocolError, match="max_frame 8"):
        Dialect.parse("line", max_frame=8)


def test_local_errors_are_protocol_and_value_errors():
    with pytest.raises(ProtocolError):
        Dialect.parse("nope")
    with pytest.raises(ValueError):
        Dialect.parse("nope")

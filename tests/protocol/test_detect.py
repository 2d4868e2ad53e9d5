"""Dialect detection from a stream's first bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camprotool.protocol.codec import encode
from camprotool.protocol.detect import detect, detect_connection, detect_framing

DIALECTS = ["line", "lp32le", "lp32be", "line:gbk", "lp32le:gbk", "lp32be:gbk"]


def conversation(dialect: str) -> tuple[bytes, bytes]:
    c2s = encode("Login", "demo|demo", dialect) + encode("Heartbeat", "", dialect)
    s2c = encode("LoginError", "用户名或者密码错误!", dialect) + encode(
        "PrushCaramerAlarmInfo", "DEMO0001:motion", dialect
    )
    return c2s, s2c


@pytest.mark.parametrize("dialect", DIALECTS)
def test_detects_every_dialect_even_mid_frame(dialect):
    _, s2c = conversation(dialect)
    assert str(detect(s2c)) == dialect
    for cut in (1, 5, 9):
        # The capture began mid-frame: the framing is still found; the cut
        # frame was the only non-ASCII one, so the encoding is the default.
        assert detect(s2c[cut:]).framing == dialect.split(":")[0]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_connection_takes_gbk_from_either_side(dialect):
    c2s, s2c = conversation(dialect)
    # c2s alone is ASCII (utf-8); the server's Chinese reason decides the encoding.
    assert detect(c2s).encoding == "utf-8"
    assert str(detect_connection(c2s, s2c)) == dialect


def test_not_this_protocol():
    assert detect(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n") is None
    assert detect(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" * 20) is None
    assert detect(b"") is None


def test_partial_frame_needs_final():
    frame = encode("Login", "demo|demo", "lp32le")
    assert detect(frame[:-2]) is None
    assert str(detect(frame[:-2], final=True)) == "lp32le"


def test_short_names_on_the_wire():
    assert detect_framing(b"Login|demo|demo\r\nHeartbeat\r\n") == "line"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data):
    result = detect(data)
    assert result is None or result.framing in ("line", "lp32le", "lp32be")

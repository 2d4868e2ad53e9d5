"""The bulk decoder must agree exactly with the incremental decoder, on any stream."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import gbk_ok, messages

from camprotool.protocol.bulk import SCHEMA, BulkDecoder, decode_stream, feed_many
from camprotool.protocol.codec import Decoder, encode
from camprotool.protocol.dialect import Dialect
from camprotool.protocol.errors import LocalProtocolError

DIALECTS = ["line", "lp32le", "lp32be", "line:gbk", "lp32le:gbk", "lp32be:gbk"]

SAMPLES = [
    ("Login", "demo|demo"),
    ("LoginOk", "3|2024-01-01 10:00:00|1.2.3.4"),
    ("LoginError", "用户名或者密码错误!"),
    ("CreatDataSocket", "demo|demo"),
    ("ReturnDataSocketPort", "9001"),
    ("ReturnDataSocketPort", ""),
    ("ReturnDataSocketPort", "70000"),
    ("UploadCaramer", "CAM1|1234|1|3"),
    ("UploadCaramer", "CAM1|1234|x|3"),
    ("UploadCaramer", "CAM1|1234|1"),
    ("UploadSucess", "CAM1|True|1|3"),
    ("UploadSucess", "CAM1|maybe|1|3"),
    ("UploadFail", "CAM1|bound | full|2|3"),
    ("DownLoadCaramer", "0"),
    ("DownLoadCaramer", "99999999999999999999"),
    ("DownloadSucess", "CAM1|1234|null|1|2"),
    ("DownloadFail", "没有摄像头"),
    ("CheckCaramerOnlineStatus", "A;B;C;"),
    ("CheckCaramerOnlineStatus", ""),
    ("ReturnCaramerOnlineStatus", "A;true|B;null|C;false"),
    ("ReturnCaramerOnlineStatus", "A;yes"),
    ("PrushCaramerOnlineStatus", "A:false"),
    ("PrushCaramerOnlineStatus", "A"),
    ("PrushCaramerAlarmInfo", "A:motion:zone 1"),
    ("Heartbeat", ""),
    ("Vendor.Extension.Thing", "x|y"),
]


def _norm(value):
    if isinstance(value, tuple):
        return [_norm(v) for v in value]
    return value


def incremental_rows(dec: Decoder, ops) -> list[dict]:
    pairs = []
    for op, arg in ops:
        pairs += dec.feed_with_ends(arg) if op == "feed" else dec.gap_with_ends(arg)
    pairs += dec.finish_with_ends()
    rows = []
    for end, msg in pairs:
        row = dict.fromkeys(SCHEMA.names)
        row.update(end=end, command=msg.command, params=msg.params, error=msg.error,
                   raw=msg.raw if msg.error else None)
        for name, value in msg.fields.items():
            if name == "statuses":
                value = [{"camera_id": c, "online": s} for c, s in value]
            row[name] = _norm(value)
        rows.append(row)
    return rows


def bulk_rows(dec: BulkDecoder, ops) -> list[dict]:
    tables = [dec.feed(arg) if op == "feed" else dec.gap(arg) for op, arg in ops]
    tables.append(dec.finish())
    return pa.concat_tables(tables).to_pylist()


@st.composite
def streams(draw):
    dialect = draw(st.sampled_from(DIALECTS))
    frames = draw(st.lists(st.sampled_from(SAMPLES), max_size=25))
    data = bytearray(b"".join(encode(c, p, dialect) for c, p in frames))
    for _ in range(draw(st.integers(0, 3))):  # corrupt: insert random bytes
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(max_size=12))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=5)))
    ops, pos = [], 0
    for cut in cuts:
        ops.append(("feed", bytes(data[pos:cut])))
        pos = cut
        if draw(st.booleans()):
            ops.append(("gap", draw(st.integers(0, 7))))
    ops.append(("feed", bytes(data[pos:])))
    max_frame = draw(st.sampled_from([1 << 20, 40]))
    return Dialect.parse(dialect, max_frame=max_frame), ops


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_bulk_agrees_with_incremental(case):
    dialect, ops = case
    assert bulk_rows(BulkDecoder(dialect), ops) == incremental_rows(Decoder(dialect), ops)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(DIALECTS), st.lists(st.one_of(
    st.binary(max_size=40), st.sampled_from([b"Login|a|b\n", b"UploadCaramer|C|p|1|2\n",
                                             b"LoginOk|x|y|z\n", b"\xff\xfe|\n"])),
    max_size=12), st.sampled_from([("end", "command", "error"), ("params",), ("raw", "user")]))
def test_a_feed_of_some_columns_is_those_columns_of_the_whole_feed(dialect, pieces, names):
    """``feed(data, columns)`` (what detection reads) is the full feed's columns: every
    row is still parsed in full, so its error is the same."""
    d = Dialect.parse(dialect, max_frame=64)
    data = b"".join(pieces)
    whole = BulkDecoder(d).feed(data)
    some = BulkDecoder(d).feed(np.frombuffer(data, np.uint8), names)
    assert some.column_names == [n for n in SCHEMA.names if n in names]
    assert some.to_pydict() == whole.select(some.column_names).to_pydict()


def test_feed_takes_bytes_or_a_byte_array_and_says_what_else_it_got():
    data = encode("Login", "demo|pw") + encode("Heartbeat", "")
    as_bytes = BulkDecoder("line").feed(data)
    spread = np.zeros(2 * len(data), np.uint8)
    spread[::2] = np.frombuffer(data, np.uint8)
    assert BulkDecoder("line").feed(spread[::2]).equals(as_bytes)  # not contiguous: copied
    with pytest.raises(TypeError, match="1-D uint8"):
        BulkDecoder("line").feed(np.frombuffer(data[:8], np.int64))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(DIALECTS), st.binary(max_size=300))
def test_bulk_agrees_on_random_bytes(dialect, data):
    d = Dialect.parse(dialect, max_frame=64)
    assert bulk_rows(BulkDecoder(d), [("feed", data)]) == incremental_rows(
        Decoder(d), [("feed", data)]
    )


def test_typed_columns():
    first = encode("UploadSucess", "CAM1|true|2|3")
    data = first + encode("ReturnDataSocketPort", "")
    table = decode_stream(data)
    assert table.column("command").to_pylist() == ["UploadSucess", "ReturnDataSocketPort"]
    assert table.column("online").to_pylist() == [True, None]
    assert table.column("synced").to_pylist() == [2, None]
    assert table.column("port").to_pylist() == [None, None]
    assert table.column("error").to_pylist() == [None, None]
    assert table.column("end").to_pylist() == [len(first), len(data)]


def test_text_fields_no_command_has_two_of_share_their_offsets():
    """user, last_login_time, reason, camera_password and alarm_type (and password,
    last_login_ip, camera_id) never have values in one row: their columns share one
    offsets and one text buffer, each with its own validity, and read as their own."""
    from camprotool.protocol.bulk import _TEXT_SLOTS

    wire = [("Login", "demo|pw"), ("LoginOk", "3|2026-01-01 10:00:00|10.0.0.9"),
            ("LoginError", "bad password"), ("UploadCaramer", "CAM1|secret|1|2"),
            ("PrushCaramerAlarmInfo", "CAM2:motion"), ("UploadFail", "CAM3|full|0|2"),
            ("Heartbeat", "")]
    data = b"".join(encode(c, p) for c, p in wire)
    table = decode_stream(data)
    reference = Decoder(Dialect.parse("line")).feed(data)
    for name in {name for slot in _TEXT_SLOTS for name in slot}:
        assert table.column(name).to_pylist() == [m.fields.get(name) for m in reference], name
    assert table.column("camera_id").to_pylist()[3:6] == ["CAM1", "CAM2", "CAM3"]
    assert table.column("reason").to_pylist()[2::3] == ["bad password", "full"]
    for slot in _TEXT_SLOTS:
        offsets = {table.column(n).chunk(0).buffers()[1].address for n in slot}
        assert len(offsets) == 1, slot
    fields = {name for slot in _TEXT_SLOTS for name in slot}
    assert {"user", "password", "camera_id", "reason"} <= fields


# ------------------------------------------------------------------ fast-path edge cases
#
# The bulk decoder types most rows without Python: bodies are split on raw bytes
# (GBK after transcoding), names looked up once per distinct spelling, numbers
# parsed from their digits 8 at a time, statuses compared as bytes, UTF-8
# validated by Arrow, length-prefixed frames found by a vectorised guess that is
# then verified. Each test below pins one thing that machinery relies on to the
# reference decoder.


def _agree(dialect: Dialect | str, data: bytes, chunks: int = 1) -> list[dict]:
    """Bulk rows for ``data`` (fed in ``chunks`` pieces), asserting they are the reference's."""
    d = Dialect.parse(dialect)
    size = max(1, -(-len(data) // chunks))
    ops = [("feed", data[i : i + size]) for i in range(0, len(data), size)] or [("feed", b"")]
    rows = bulk_rows(BulkDecoder(d), ops)
    assert rows == incremental_rows(Decoder(d), ops)
    return rows


def _frame(body: bytes, dialect: Dialect) -> bytes:
    if dialect.is_line:
        return body + b"\r\n"
    return len(body).to_bytes(4, dialect.byteorder) + body


EDGE_BODIES = [
    # names: exact full and short spellings, spaces around dots, unknown, invalid
    "SocketCommand . CaramCommand . UploadCaramer|C|p|1|2",
    " UploadCaramer |C|p|1|2",
    "SocketCommand.CaramCommand.Login|a|b",  # wrong group: an unknown command
    "Vendor . Extension|x",
    "9bad|x",
    "|x",
    "SocketCommand.NormalCommand.Heartbeat",
    "Heartbeat|anything|at all",
    # statuses in any letter case, and near misses
    "UploadSucess|C|TRUE|1|2",
    "UploadSucess|C|False|1|2",
    "UploadSucess|C|nULL|1|2",
    "UploadSucess|C|truee|1|2",
    "UploadSucess|C|tru|1|2",
    "UploadSucess|C|falsey|1|2",
    "UploadSucess|C|nulll|1|2",
    "PrushCaramerOnlineStatus|C:FALSE",
    "PrushCaramerOnlineStatus|C:falsex",
    "UploadSucess|C||1|2",
    "PrushCaramerOnlineStatus|C:TRUE",
    "PrushCaramerOnlineStatus|C:b:true",
    "PrushCaramerOnlineStatus|C|D:null",
    # counts: 1 to 19 digits, the int64 limit, digits' neighbours '/' and ':'
    *(f"DownLoadCaramer|{'9' * n}" for n in range(1, 20)),
    "DownLoadCaramer|9223372036854775807",
    "DownLoadCaramer|9223372036854775808",
    "DownLoadCaramer|000000000000000001",
    "DownLoadCaramer|1/",
    "DownLoadCaramer|:1",
    "DownLoadCaramer|12345678/",
    "DownLoadCaramer|+1",
    "DownLoadCaramer|",
    "DownLoadCaramer|１",
    # ports: empty, the limits, beyond, zero-padded, non-ASCII digits
    *(f"ReturnDataSocketPort|{p}" for p in
      ["", "0", "1", "65535", "65536", "080", "0000000000000000000080", "٣", " 1"]),
    # surplus pipes: only a reason takes them
    "UploadFail|C|bound|full|2|3",
    "UploadFail|C||2|3",
    "Login|a|b|c",
    "LoginError|a|b|c",
    # lists
    "CheckCaramerOnlineStatus|A;;B;",
    "CheckCaramerOnlineStatus|;;",
    "ReturnCaramerOnlineStatus|A;TRUE|B;null|",
    "ReturnCaramerOnlineStatus|A;true||",
    "ReturnCaramerOnlineStatus|;false",
    "ReturnCaramerOnlineStatus|A;b;true",
    "ReturnCaramerOnlineStatus|A;falsee|B;true",
    "ReturnCaramerOnlineStatus|",
]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_edge_cases_agree(dialect):
    d = Dialect.parse(dialect)
    bodies = [b.encode(d.encoding) for b in EDGE_BODIES if gbk_ok(b) or d.encoding == "utf-8"]
    data = b"".join(_frame(b, d) for b in bodies)
    rows = _agree(d, data)
    assert len(rows) == len(bodies)
    for chunks in (2, 7, 50):
        _agree(d, data, chunks)


def test_typed_edge_values():
    d = Dialect.parse("line")
    rows = {row["params"]: row for row in _agree(d, b"".join(
        _frame(b.encode(), d) for b in [
            "UploadSucess|C|TRUE|1|2", "DownLoadCaramer|" + "9" * 18,
            "DownLoadCaramer|" + "1" * 19, "ReturnDataSocketPort|65535",
            "ReturnDataSocketPort|65536", "ReturnDataSocketPort|", "ReturnDataSocketPort|0",
            "SocketCommand . CaramCommand . DownLoadCaramer|7",
        ]))}
    assert rows["C|TRUE|1|2"]["online"] is True
    assert rows["9" * 18]["downloaded"] == 10**18 - 1
    assert rows["1" * 19]["downloaded"] == 1111111111111111111
    assert rows["65535"]["port"] == 65535
    assert rows["65536"]["port"] is None and "outside 1-65535" in rows["65536"]["error"]
    assert rows[""]["port"] is None and rows[""]["error"] is None
    assert rows["0"]["port"] is None and rows["0"]["error"]
    assert rows["7"]["command"] == "DownLoadCaramer" and rows["7"]["downloaded"] == 7


@pytest.mark.parametrize("dialect", DIALECTS)
def test_frame_size_limits(dialect):
    """max_frame=40: bodies of exactly 40 bytes (lp) / lines of 40 (line) pass, one more fails."""
    d = Dialect.parse(dialect, max_frame=40)
    fits = 40 - 1 if d.is_line else 40  # a line's limit counts its '\r'
    body = b"DownloadFail|" + b"x" * (fits - len(b"DownloadFail|"))
    frames = [_frame(body, d), _frame(body + b"y", d), _frame(b"Heartbeat", d)] * 3
    rows = _agree(d, b"".join(frames))
    assert [r["error"] is None for r in rows][:2] == [True, False]
    assert rows[0]["reason"] == "x" * (fits - len(b"DownloadFail|"))
    # over-long lines far beyond the limit, between regular ones
    if d.is_line:
        data = b"Heartbeat\n" + b"Login|" + b"a" * 500 + b"\r\nHeartbeat\r\n"
        rows = _agree(d, data, chunks=1) + _agree(d, data, chunks=9)
        assert "exceeds the 40-byte limit" in rows[1]["error"]


@pytest.mark.parametrize("max_frame", [1 << 16, 1 << 26, 0xFFFFFFFF])
@pytest.mark.parametrize("dialect", ["lp32le", "lp32be", "lp32le:gbk"])
def test_lp_irregular_frames_amid_regular_ones(dialect, max_frame):
    """Zero lengths, impossible lengths and frames that look like lengths, mid-stream."""
    d = Dialect.parse(dialect, max_frame=max_frame)
    regular = [_frame(b"SocketCommand.CaramCommand.UploadCaramer|C%d|p|1|2" % i, d)
               for i in range(300)]
    # a body whose bytes look like a length followed by a name (a false frame start)
    fake = (5).to_bytes(4, d.byteorder) + b"Login"
    tricky = _frame(b"DownloadFail|" + fake + b"|" + (1).to_bytes(4, d.byteorder), d)
    # a chain of valid-looking frames inside one body: the last ones look like frame
    # starts that another frame points at
    chain = _frame(b"LoginError|" + b"".join(_frame(b"Heartbeat", d) for _ in range(5)), d)
    zero = (0).to_bytes(4, d.byteorder)
    huge = min(max_frame + 1, 0xFFFFFFFF).to_bytes(4, d.byteorder)
    short = [_frame(b"Heartbeat", d), _frame(b"UploadFail|C|x|1|2", d)]  # short names only
    impossible = [huge, b"junk"] if max_frame < 0xFFFFFFFF else []  # else: a frame's start
    data = b"".join(regular[:100] + [tricky, zero] + regular[100:200] + impossible
                    + regular[200:] + short * 50 + [tricky] * 20
                    + [chain, regular[0]] * 20)
    for chunks in (1, 3, 40):
        rows = _agree(d, data, chunks)
    assert sum(r["error"] is None for r in rows) >= 300 + 100 + 20 + 40


@pytest.mark.parametrize("dialect", ["line:gbk", "lp32le:gbk"])
def test_gbk_trail_byte_pipe(dialect):
    """In GBK a trail byte can be 0x7C '|': the split must follow the decoded text."""
    d = Dialect.parse(dialect)
    assert "亅".encode("gbk")[1:] == b"|"
    bodies = ["UploadFail|亅|原因亅|1|2", "Login|亅|倈", "LoginError|亅",
              "UploadSucess|亅|true|1|2"]
    rows = _agree(d, b"".join(_frame(b.encode("gbk"), d) for b in bodies))
    assert rows[0]["camera_id"] == "亅" and rows[0]["reason"] == "原因亅"
    assert rows[1]["user"] == "亅" and rows[1]["password"] == "倈"
    assert all(r["error"] is None for r in rows)


@pytest.mark.parametrize("dialect", ["line:gbk", "lp32le:gbk"])
def test_gbk_bad_bodies_among_good_ones(dialect):
    """Non-ASCII GBK bodies are transcoded together when they all decode; a bad one, a
    lead byte cut at a body's end (with the next body it would make a character) or a
    NUL inside a body must not change any row."""
    d = Dialect.parse(dialect)
    good = [f"UploadFail|C{i}|该摄像头绑定账号已满|1|2".encode("gbk") for i in range(50)]
    lead = "绑".encode("gbk")
    def among(*bodies: bytes) -> list[bytes]:
        return [*good[:10], *bodies, *good[10:]]

    cases = [
        good,
        among(b"LoginError|\x81"),  # a lone lead byte at the end
        among(b"LoginError|" + lead[:1], lead[1:] + b"|x"),
        among(b"LoginError|\xff\xfe"),
        among(b"LoginError|\x80"),
    ]
    if not d.is_line:
        cases.append(among("LoginError|原因\0尾".encode("gbk")))
    for bodies in cases:
        rows = _agree(d, b"".join(_frame(b, d) for b in bodies))
        assert rows[0]["reason"] == "该摄像头绑定账号已满"


@pytest.mark.parametrize("dialect", ["line", "lp32be"])
def test_invalid_utf8_rows(dialect):
    d = Dialect.parse(dialect)
    bodies = [b"Login|\xed\xa0\x80|x", b"Login|\xc0\x80|x", b"Login|ok|\xf4\x90\x80\x80",
              b"Lo\xffgin|a|b", b"LoginError|caf\xc3\xa9", b"UploadFail|C|\xe4\xb8|1|2",
              b"Login|a|b"]
    rows = _agree(d, b"".join(_frame(b, d) for b in bodies))
    assert [r["error"] is not None for r in rows] == [True] * 4 + [False, True, False]


def test_many_unknown_command_names():
    d = Dialect.parse("line")
    names = [f"Vendor.Cmd{i % 300}" for i in range(3000)] + ["Bad Name"] * 5
    rows = _agree(d, b"".join(_frame(f"{n}|{i}".encode(), d) for i, n in enumerate(names)))
    assert rows[299]["command"] == "Vendor.Cmd299" and rows[299]["params"] == "299"


@pytest.mark.parametrize("heartbeat", ["Ping", "SocketCommand.NormalCommand.KeepAlive", "Login"])
def test_dialect_heartbeat_names(heartbeat):
    d = Dialect.parse("lp32le", heartbeat_name=heartbeat)
    bodies = [heartbeat, "Heartbeat", "KeepAlive", "SocketCommand.NormalCommand.Ping", "Login|a|b"]
    _agree(d, b"".join(_frame(b.encode(), d) for b in bodies))


@st.composite
def typed_streams(draw):
    """Random typed messages of every command (strategies.messages), plus edge bodies."""
    dialect = Dialect.parse(draw(st.sampled_from(DIALECTS)))
    frames = []
    for _ in range(draw(st.integers(0, 30))):
        if draw(st.integers(0, 3)):
            spec, values = draw(messages(dialect))
            try:
                frames.append(encode(spec, values, dialect))
            except LocalProtocolError:  # e.g. too long for the frame limit
                continue
        else:
            body = draw(st.sampled_from(EDGE_BODIES))
            if dialect.encoding == "utf-8" or gbk_ok(body):
                frames.append(_frame(body.encode(dialect.encoding), dialect))
    return dialect, b"".join(frames), draw(st.integers(1, 6))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(typed_streams())
def test_bulk_agrees_on_typed_messages(case):
    dialect, data, chunks = case
    _agree(dialect, data, chunks)


@st.composite
def _many_streams(draw):
    dialect = Dialect.parse(draw(st.sampled_from(DIALECTS)), max_frame=draw(
        st.sampled_from([1 << 20, 40])))
    streams = []
    for _ in range(draw(st.integers(1, 6))):
        frames = draw(st.lists(st.sampled_from(SAMPLES), max_size=8))
        data = bytearray(b"".join(encode(c, p, dialect.name) for c, p in frames
                                  if len(p) < 30 or dialect.max_frame > 40))
        if draw(st.booleans()):
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(max_size=8))
        cut = draw(st.integers(0, len(data)))
        streams.append((bytes(data[:cut]), bytes(data[cut:]), draw(st.booleans())))
    return dialect, streams


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_many_streams())
def test_feed_many_equals_one_feed_per_stream(case):
    dialect, streams = case
    one = [BulkDecoder(dialect) for _ in streams]
    many = [BulkDecoder(dialect) for _ in streams]
    for dec_one, dec_many, (_, _, gap) in zip(one, many, streams, strict=True):
        if gap:  # leave some decoders in an irregular state
            dec_one.gap(3)
            dec_many.gap(3)
    for step in (0, 1):
        expected = [dec.feed(s[step]) for dec, s in zip(one, streams, strict=True)]
        got = feed_many([(dec, s[step]) for dec, s in zip(many, streams, strict=True)])
        assert [t.to_pylist() for t in got] == [t.to_pylist() for t in expected]
    assert [d.finish().to_pylist() for d in many] == [d.finish().to_pylist() for d in one]


# ------------------------------------------------------------------ compiled kernels
#
# Each kernel of camprotool.protocol.bulk_kernels against a plain Python reading of
# its contract, on bytes rich in the separators it looks for, with ranges that end
# at the very end of the buffer (where 8-byte reads must fall back to bytes).

_SEPARATED = st.binary(max_size=90).flatmap(
    lambda noise: st.lists(st.sampled_from([b"|", b";", b":", b"\n", b"\r", b"\r\n", b"a",
                                            b"TRUE", b"null", b"false", b"12", b"", noise]),
                           max_size=40).map(b"".join))


@st.composite
def _ranges(draw, max_ranges: int = 12):
    """(data, starts, ends): ranges of data, some empty, some reaching its end."""
    data = draw(_SEPARATED)
    n = len(data)
    pairs = [sorted(draw(st.tuples(st.integers(0, n), st.integers(0, n))))
             for _ in range(draw(st.integers(0, max_ranges)))]
    if n and draw(st.booleans()):
        pairs.append((draw(st.integers(0, n)), n))
    starts = np.array([a for a, _ in pairs], np.int64)
    ends = np.array([b for _, b in pairs], np.int64)
    return data, starts, ends


def _kernels():
    from camprotool.protocol import bulk_kernels

    bulk_kernels.warm_up()
    return bulk_kernels


def _view(data: bytes):
    return _kernels().readonly(np.frombuffer(data, np.uint8))


@settings(max_examples=300, deadline=None)
@given(_SEPARATED, st.integers(0, 8), st.integers(1, 12), st.integers(0, 80))
def test_kernel_line_frames(data, start, limit, room):
    k = _kernels()
    start = min(start, len(data))
    newline, count, at = np.zeros(0, np.int64), 0, start
    while True:  # resumed each time ``out`` is nearly full
        out = np.zeros(64 + room, np.int64)
        found, at = k.newlines(_view(data), at, out)
        newline = np.concatenate([newline, out[:found]])
        count += found
        if at == len(data):
            break
    assert newline.tolist() == [i for i in range(start, len(data)) if data[i] == 10]
    starts, body_ends, ends, name_ends = (np.zeros(count, np.int64) for _ in range(4))
    long = np.zeros(count, bool)
    found, used = k.line_frames(_view(data), start, limit, newline, starts, body_ends, ends,
                                long, name_ends)
    expected, line = [], start
    while (nl := data.find(b"\n", line)) >= 0:
        body_end = nl - 1 if nl > line and data[nl - 1] == 13 else nl
        if body_end > line or nl - line > limit:
            pipe = data.find(b"|", line, body_end)
            expected.append((line, body_end, nl + 1, nl - line > limit,
                             body_end if pipe < 0 else pipe))
        line = nl + 1
    assert used == line
    got = list(zip(starts[:found].tolist(), body_ends[:found].tolist(), ends[:found].tolist(),
                   long[:found].tolist(), name_ends[:found].tolist(), strict=True))
    assert got == expected


@pytest.mark.parametrize("dialect", ["line", "line:gbk"])
def test_many_short_lines(dialect):
    """Lines far shorter than the framing's first guess of their number (it grows)."""
    _agree(dialect, b"\n" * 5000 + b"Heartbeat\n\r\n" * 3000 + b"\r\n" * 7000 + b"Login|a|b")


@settings(max_examples=300, deadline=None)
@given(_ranges(), st.sampled_from(b"|;:\n"))
def test_kernel_first_byte(case, byte):
    data, starts, ends = case
    out = np.zeros(len(starts), np.int64)
    _kernels().first_byte(_view(data), starts, ends, byte, out)
    for s, e, got in zip(starts.tolist(), ends.tolist(), out.tolist(), strict=True):
        found = data.find(bytes([byte]), s, e)
        assert got == (e if found < 0 else found)


_NAMES = [b"", b"a", b"b", b"Login", b"Logon", b"x" * 8, b"x" * 9, b"y" * 300, b"y" * 299 + b"z",
          b"Vendor.Cmd1", b"Vendor.Cmd2"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_NAMES), max_size=3000)
       | st.lists(st.binary(max_size=20), max_size=3000))
def test_kernel_distinct_ranges(strings):
    data = b"".join(strings)
    sizes = np.array([len(s) for s in strings], np.int64)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    ids, firsts = np.zeros(len(strings), np.int64), np.zeros(len(strings), np.int64)
    count = _kernels().distinct_ranges(_view(data), starts, ends, ids, firsts)
    numbering = {s: j for j, s in enumerate(dict.fromkeys(strings))}  # first appearance order
    assert count == len(numbering)
    assert ids.tolist() == [numbering[s] for s in strings]
    assert firsts[:count].tolist() == [strings.index(s) for s in numbering]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-5, 20), max_size=200), st.integers(0, 16))
def test_kernel_group_by_code(codes, groups):
    bounds, order = np.zeros(groups + 1, np.int64), np.zeros(len(codes), np.int64)
    _kernels().group_by_code(np.array(codes, np.int64), bounds, order)
    for c in range(groups):
        assert order[bounds[c] : bounds[c + 1]].tolist() == [
            i for i, code in enumerate(codes) if code == c]
    assert bounds[0] == 0


@settings(max_examples=300, deadline=None)
@given(_ranges(), st.integers(2, 5), st.data())
def test_kernel_pipe_fields(case, fields, draw):
    data, starts, ends = case
    reason = draw.draw(st.integers(0, fields))  # == fields: no reason field
    bounds = np.zeros((2 * fields, len(starts)), np.int64)
    ok = np.zeros(len(starts), bool)
    _kernels().pipe_fields(_view(data), starts, ends, fields, reason, bounds, ok)
    for i, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        parts = data[s:e].split(b"|")
        surplus = len(parts) - fields
        good = surplus == 0 if reason == fields else surplus >= 0
        assert ok[i] == good
        if not good:
            continue
        if reason < fields:
            cut = reason + surplus + 1
            parts = [*parts[:reason], b"|".join(parts[reason:cut]), *parts[cut:]]
        got = [data[bounds[2 * j, i] : bounds[2 * j + 1, i]] for j in range(fields)]
        assert got == parts


@settings(max_examples=300, deadline=None)
@given(_ranges())
def test_kernel_counts_and_statuses(case):
    data, starts, ends = case
    k, m = _kernels(), len(starts)
    values, ok = np.zeros(m, np.int64), np.zeros(m, bool)
    k.parse_counts(_view(data), starts, ends, 18, values, ok)
    online, valid, known = np.zeros(m, bool), np.zeros(m, bool), np.zeros(m, bool)
    k.parse_statuses(_view(data), starts, ends, online, valid, known)
    for i, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        text = data[s:e]
        digits = 1 <= len(text) <= 18 and all(48 <= c <= 57 for c in text)
        assert ok[i] == digits
        assert values[i] == (int(text) if digits else 0)
        status = {b"true": True, b"false": False, b"null": None}.get(
            bytes(c | 0x20 for c in text), "bad")
        assert known[i] == (status != "bad")
        assert (online[i], valid[i]) == (status is True, status in (True, False))


def _list_room(starts, ends):
    sizes = ends - starts
    return np.zeros(int((sizes // 2).sum()) + len(sizes) + 1, np.int64), np.zeros(
        int(sizes.sum()) + 8, np.uint8)


@settings(max_examples=300, deadline=None)
@given(_ranges())
def test_kernel_list_items(case):
    """id_lists / status_lists against splitting in Python, with the room the decoder
    gives them (bad status rows leave no item behind)."""
    data, starts, ends = case
    k, m = _kernels(), len(starts)
    view = _view(data)
    counts = np.zeros(m, np.int64)
    offsets, out = _list_room(starts, ends)
    found, size = k.id_lists(view, starts, ends, counts, offsets, out)
    pieces = [[p for p in data[s:e].split(b";") if p] for s, e in zip(starts, ends, strict=True)]
    assert counts.tolist() == [len(p) for p in pieces]
    items = [bytes(out[offsets[j] : offsets[j + 1]]) for j in range(found)]
    assert items == [p for row in pieces for p in row]
    assert size == offsets[found] == sum(map(len, items))

    offsets, out = _list_room(starts, ends)
    online, valid = np.zeros(len(offsets), bool), np.zeros(len(offsets), bool)
    found, size = k.status_lists(view, starts, ends, counts, offsets, out, online, valid)
    expected = []
    for i, (s, e) in enumerate(zip(starts, ends, strict=True)):
        pieces = data[s:e].split(b"|")
        if pieces[-1] == b"":
            pieces.pop()  # a trailing separator
        row = []
        for piece in pieces:
            status = "bad"
            if piece.count(b";") == 1:
                status = {b"true": True, b"false": False, b"null": None}.get(
                    bytes(c | 0x20 for c in piece.split(b";")[1]), "bad")
            row.append((piece.split(b";")[0], status))
        good = bool(row) and all(status != "bad" for _, status in row)
        assert counts[i] == (len(row) if good else -1)
        expected += row if good else []
    got = [(bytes(out[offsets[j] : offsets[j + 1]]), bool(online[j]) if valid[j] else None)
           for j in range(found)]
    assert got == expected
    assert size == offsets[found]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), max_size=60))
def test_kernel_row_offsets(rows):
    """row_offsets: the cumulative sizes of every row."""
    k = _kernels()
    sizes = np.array([size if has else 0 for has, size in rows], np.int64)
    expected = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    owners = np.array([i for i, (has, _) in enumerate(rows) if has], np.int64)
    offsets = np.full(len(rows) + 1, -7, np.int64)
    k.row_offsets(owners, sizes[owners], offsets)
    assert offsets.tolist() == expected.tolist()


@settings(max_examples=300, deadline=None)
@given(_ranges(max_ranges=30), st.integers(0, 40), st.randoms(use_true_random=False))
def test_kernel_scatter_text(case, spare, random):
    """scatter_text: each range lands in its row, in any order; the other rows are null."""
    data, starts, ends = case
    n = len(starts) + spare
    rows = np.array(random.sample(range(n), len(starts)), np.int64)
    offsets = np.full(n + 1, -7, np.int64)
    valid = np.zeros((n + 7) // 8, np.uint8)
    out = _kernels().scatter_text(_view(data), rows, starts, ends, offsets, valid)
    value = dict(zip(rows.tolist(), zip(starts.tolist(), ends.tolist(), strict=True),
                     strict=True))
    column = pa.Array.from_buffers(pa.large_binary(), n, [pa.py_buffer(valid),
                                   pa.py_buffer(offsets), pa.py_buffer(out)])
    column.validate(full=True)
    assert column.to_pylist() == [data[value[r][0]:value[r][1]] if r in value else None
                                  for r in range(n)]
    assert np.unpackbits(valid, bitorder="little")[n:].sum() == 0  # no bit past the rows


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 40), st.integers(-5, 5), st.booleans()),
                         max_size=20), max_size=4),
       st.integers(1, 41), st.booleans(), st.booleans())
def test_kernel_scatter_values(parts, n, flags, every):
    """scatter_values: the values land in their rows (a later part wins), the validity
    bits are those of the valid ones, and the count is the bits set, as NumPy gives it."""
    dtype = bool if flags else np.int64
    out, bitmap = np.zeros(n, dtype), np.zeros((n + 7) // 8, np.uint8)
    expected, valid, count = np.zeros(n, dtype), np.zeros(n, bool), 0
    for part in parts:
        part = [(r % n, v, ok) for r, v, ok in part]
        rows = np.array([r for r, _, _ in part], np.int64)
        values = np.array([v for _, v, _ in part], dtype)
        oks = np.ones(len(part), bool) if every else np.array([ok for *_, ok in part], bool)
        count += _kernels().scatter_values(rows, values, np.zeros(0, bool) if every else oks,
                                           out, bitmap)
        expected[rows] = values
        valid[rows[oks]] = True
    assert out.tolist() == expected.tolist()
    assert bitmap.tolist() == np.packbits(valid, bitorder="little").tolist()
    assert count == np.count_nonzero(valid)


def _decodes(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# any code point, surrogates too (encoded as such: not UTF-8)
_CODE_POINTS = st.lists(st.integers(0, 0x10FFFF).map(chr), max_size=4).map(
    lambda cs: "".join(cs).encode("utf-8", "surrogatepass"))
_UTF8_EDGES = [bytes([b]) for b in (0x7F, 0x80, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xED,
                                    0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0x8F, 0x90, 0x9F, 0xA0)]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.binary(max_size=20) | st.text(max_size=12).map(str.encode)
                | st.lists(st.sampled_from(_UTF8_EDGES), max_size=6).map(b"".join)
                | st.tuples(_CODE_POINTS, st.booleans()).map(lambda c: c[0][:-1] if c[1] else c[0]),
                max_size=30))
def test_kernel_utf8_rows(values):
    """Exactly what Python's strict decoder accepts: overlong forms, surrogates, code
    points past U+10FFFF and cut sequences are not, wherever they are in a row."""
    sizes = np.array([len(v) for v in values], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    out = np.zeros(len(values), bool)
    bad = _kernels().utf8_rows(_view(b"".join(values)), offsets, out)
    assert out.tolist() == [_decodes(v) for v in values]
    assert bad == sum(not _decodes(v) for v in values)


@pytest.mark.parametrize("value", [b"\xed\xa0\x80", b"\xed\x9f\xbf", b"\xf4\x90\x80\x80",
                                   b"\xf4\x8f\xbf\xbf", b"\xe0\x9f\xbf", b"\xe0\xa0\x80",
                                   b"\xf0\x8f\xbf\xbf", b"\xf0\x90\x80\x80", b"\xc1\xbf",
                                   b"abcdefgh\xc3\xa9", b"abcdefgh\xc3", "\U0010ffff".encode()])
def test_kernel_utf8_rows_edges(value):
    out = np.zeros(1, bool)
    _kernels().utf8_rows(_view(value), np.array([0, len(value)], np.int64), out)
    assert bool(out[0]) == _decodes(value)


@settings(max_examples=300, deadline=None)
@given(_ranges(max_ranges=40), st.data())
def test_pack_ranges(case, draw):
    from camprotool.protocol.packing import pack_ranges

    data, starts, ends = case
    null = np.array(draw.draw(st.lists(st.booleans(), min_size=len(starts),
                                       max_size=len(starts))), bool)
    starts = np.where(null, -1, starts)
    expected = [None if s < 0 else data[s:e] for s, e in zip(starts, ends, strict=True)]
    for writable in (False, True):
        buf = np.frombuffer(data, np.uint8)
        assert pack_ranges(buf.copy() if writable else buf, starts, ends).to_pylist() == expected
    slots = np.array(draw.draw(st.lists(st.integers(0, max(len(starts) - 1, 0)),
                                        max_size=10 if len(starts) else 0)), np.int64)
    some_null = np.array([draw.draw(st.booleans()) for _ in slots], bool)
    got = pack_ranges(np.frombuffer(data, np.uint8), np.maximum(starts, 0), ends, slots, some_null)
    assert got.to_pylist() == [None if z else data[max(starts[s], 0) : ends[s]]
                               for s, z in zip(slots, some_null, strict=True)]


_WARM_CHECK = """
import sys
from camprotool.capture.fast.kernels import warm_up
from camprotool.protocol import bulk_kernels
from camprotool.protocol.bulk import BulkDecoder, feed_many

warm_up()
kernels = {n: f for n, f in vars(bulk_kernels).items()
           if hasattr(f, "signatures") and not n.startswith("_")}  # helpers are inlined
before = {n: list(f.signatures) for n, f in kernels.items()}
for dialect, data in eval(sys.stdin.read()):
    BulkDecoder(dialect).decode(data)
    dec = BulkDecoder(dialect)
    for i in range(0, len(data), 97):
        dec.feed(data[i : i + 97])
    feed_many([(BulkDecoder(dialect), data), (BulkDecoder(dialect), data[:50])])
new = {n: f.signatures[len(before[n]):] for n, f in kernels.items()
       if list(f.signatures) != before[n]}
assert all(before.values()), [n for n, s in before.items() if not s]
assert not new, new
"""


def test_kernels_are_loaded_by_warm_up():
    """The capture engine's warm_up loads every kernel signature the decoder uses: none is
    compiled while a capture is read (a fresh process, so other tests cannot load them)."""
    import subprocess
    import sys

    streams = []
    for dialect in DIALECTS:
        d = Dialect.parse(dialect)
        bodies = [b.encode(d.encoding) for b in EDGE_BODIES if gbk_ok(b) or d.encoding == "utf-8"]
        streams.append((dialect, b"".join(_frame(b, d) for b in bodies)))
    subprocess.run([sys.executable, "-c", _WARM_CHECK], input=repr(streams), text=True,
                   check=True, timeout=300)


def test_list_parts_merge_and_keep():
    """Lists of several commands' rows merge in row order; rejected rows drop their items."""
    from camprotool.protocol.bulk import _Assembler, _ListPart

    def part(owners, counts, items):
        return _ListPart(np.array(owners), np.array(counts), pa.array(items, pa.large_string()))

    a = part([0, 3], [2, 1], ["a0", "a1", "a3"])
    b = part([1, 4], [1, 2], ["b1", "b4", "b4'"])
    kept = b.keep(np.array([True, True, True, True, False]), np.arange(10, 15))
    assert kept.owners.tolist() == [11] and kept.items.to_pylist() == ["b1"]
    asm = _Assembler(6)
    asm.lists["ids"] += [a, b]
    column = asm._list_column("ids", pa.large_list(pa.large_string()), None)
    assert column.to_pylist() == [["a0", "a1"], ["b1"], None, ["a3"], ["b4", "b4'"], None]

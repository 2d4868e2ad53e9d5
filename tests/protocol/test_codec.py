"""Codec properties: typed round trips in every dialect, hostile input, encoder refusals."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import (
    DIALECTS,
    NON_GBK,
    SPECS,
    camera_ids,
    chunkings,
    cumulative,
    decode_chunks,
    expected_fields,
    field_values,
    frame,
    has_marker,
    messages,
    stream_bytes,
    texts,
)

from camprotool.protocol import (
    BY_NAME,
    MESSAGE_TYPES,
    Decoder,
    Dialect,
    LocalProtocolError,
    UnknownMessage,
    decode_all,
    encode,
    encode_message,
    format_params,
)
from camprotool.protocol.catalogue import Kind, Layout

LP_DIALECTS = tuple(d for d in DIALECTS if not d.is_line)
LINE_DIALECTS = tuple(d for d in DIALECTS if d.is_line)
# Budgets per parametrised case: 6 dialects (x 16 commands for `few`) keep the
# whole protocol suite well under 30 s while every combination still runs.
few = settings(max_examples=4, deadline=None)
some = settings(max_examples=20, deadline=None)
many = settings(max_examples=40, deadline=None)


def assert_decodes_to(rows, items, frames, dialect):
    """``rows`` are exactly the messages ``items`` were encoded from, frame by frame."""
    assert [end for end, _ in rows] == cumulative(map(len, frames))
    for (_, msg), (spec, values), raw in zip(rows, items, frames, strict=True):
        assert msg.error is None, msg.error
        assert type(msg) is MESSAGE_TYPES[spec.name]
        assert msg.command == spec.name
        assert msg.spec is spec
        assert msg.fields == expected_fields(values)
        assert msg.params == format_params(spec, values)
        assert msg.raw == raw
        assert encode_message(msg, dialect) == raw


def wire_name(spec, data) -> str:
    """The command as a peer may write it: full, short, or with blanks around the dots."""
    how = data.draw(st.sampled_from(["full", "short", "spaced full", "spaced short"]), label="how")
    parts = [spec.name] if how.endswith("short") else ["SocketCommand", spec.group, spec.name]
    if how.startswith("spaced"):
        pad = st.text(" \t", max_size=2)
        parts = [data.draw(pad) + p + data.draw(pad) for p in parts]
    return ".".join(parts)


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@pytest.mark.parametrize("dialect", DIALECTS, ids=str)
@few
@given(data=st.data())
def test_typed_round_trip_every_command(dialect, spec, data):
    items = [(spec, data.draw(field_values(spec, dialect), label="values"))]
    items += data.draw(st.lists(messages(dialect), max_size=3), label="others")
    items = data.draw(st.permutations(items))
    names = [data.draw(st.sampled_from([s.full_name, s.name, s])) for s, _ in items]
    frames = [encode(name, values, dialect) for name, (_, values) in zip(names, items, strict=True)]
    chunks = data.draw(chunkings(b"".join(frames)), label="chunks")
    assert_decodes_to(decode_chunks(dialect, chunks), items, frames, dialect)


@pytest.mark.parametrize("dialect", DIALECTS, ids=str)
@many
@given(data=st.data())
def test_typed_round_trip_mixed_streams(dialect, data):
    items = data.draw(st.lists(messages(dialect), min_size=1, max_size=10), label="items")
    frames = [encode(spec, values, dialect) for spec, values in items]
    chunks = data.draw(chunkings(b"".join(frames)), label="chunks")
    assert_decodes_to(decode_chunks(dialect, chunks), items, frames, dialect)


@pytest.mark.parametrize("dialect", DIALECTS, ids=str)
@some
@given(data=st.data())
def test_raw_string_params_and_every_name_spelling(dialect, data):
    spec, values = data.draw(messages(dialect), label="message")
    params = format_params(spec, values)
    name = wire_name(spec, data)
    if data.draw(st.booleans(), label="by encode()"):
        wire = encode(name, params, dialect)  # encode writes the full name
        assert wire == encode(spec, values, dialect)
    else:  # a peer's spelling, built by hand
        text = f"{name}|{params}" if params or spec.fields else name
        wire = frame(text.encode(dialect.encoding), dialect)
    rows = decode_chunks(dialect, data.draw(chunkings(wire), label="chunks"))
    assert len(rows) == 1
    end, msg = rows[0]
    assert end == len(wire)
    assert msg.error is None
    assert msg.command == spec.name
    assert msg.fields == expected_fields(values)
    assert msg.raw == wire


@pytest.mark.parametrize("dialect", DIALECTS, ids=str)
def test_source_spelling_with_a_space_after_the_last_dot(dialect):
    body = "SocketCommand.CaramCommand. UploadSucess|摄像头1|true|3|5".encode(dialect.encoding)
    [msg] = decode_all(frame(body, dialect), dialect)
    assert msg.error is None
    assert msg.command == "UploadSucess"
    assert msg.fields == {"camera_id": "摄像头1", "online": True, "synced": 3, "total": 5}
    wire = encode("SocketCommand.CaramCommand. UploadSucess", "摄像头1|true|3|5", dialect)
    assert wire.startswith(b"SocketCommand.CaramCommand.UploadSucess|", 0 if dialect.is_line else 4)


@pytest.mark.parametrize("dialect", DIALECTS, ids=str)
def test_largest_body_the_encoder_accepts_decodes(dialect):
    """Regression: in ``line`` a body of exactly max_frame bytes was encoded, then
    rejected by the decoder (which counts the line's ``\\r``)."""
    small = Dialect(dialect.framing, dialect.encoding, max_frame=64)
    prefix = len(b"SocketCommand.LoginCommand.LoginError|")
    reason = "x" * (64 - prefix - (1 if small.is_line else 0))
    wire = encode("LoginError", {"reason": reason}, small)
    for chunks in ([wire], [wire[i : i + 1] for i in range(len(wire))]):
        [(end, msg)] = decode_chunks(small, chunks)
        assert (end, msg.error, msg.fields) == (len(wire), None, {"reason": reason})
    with pytest.raises(LocalProtocolError, match=r"body of 6[45] bytes exceeds"):
        encode("LoginError", {"reason": reason + "x"}, small)


@pytest.mark.parametrize("dialect", LP_DIALECTS, ids=str)
def test_lp_carries_line_breaks_and_separators_in_free_text(dialect):
    values = {"camera_id": "c-1", "alarm_type": "移动侦测\r\nline 2|a;b:c"}
    [msg] = decode_all(encode("PrushCaramerAlarmInfo", values, dialect), dialect)
    assert (msg.error, msg.fields) == (None, values)


def test_line_accepts_a_lone_newline_and_skips_empty_lines():
    wire = b"\r\n\n" + b"SocketCommand.LoginCommand.Login|demo|pw\n" + b"\r\n" + b"Heartbeat\r\n"
    rows = decode_chunks(Dialect(), [wire])
    assert [(end, m.command, m.error) for end, m in rows] == [
        (3 + 41, "Login", None),
        (len(wire), "Heartbeat", None),
    ]
    assert rows[0][1].raw == b"SocketCommand.LoginCommand.Login|demo|pw\n"


# ------------------------------------------------------------------ hostile input

TOKENS = [b"\r\n", b"\n", b"\r", b"|", b";", b":", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff",
          b"SocketCommand.", b"SocketCommand.LoginCommand.Login|", b"Login|", b"Heartbeat",
          b"\xff\xfe", b"\x80", "中文".encode(), "中文".encode("gbk")]


def noisy_pieces(dialect: Dialect):
    good = messages(dialect).map(lambda m: encode(m[0], m[1], dialect))
    lengths = st.one_of(st.integers(0, 80), st.integers(0, 2**32 - 1)).map(
        lambda n: n.to_bytes(4, dialect.byteorder))
    piece = st.one_of(good, st.binary(max_size=40), st.sampled_from(TOKENS), lengths)
    return st.lists(piece, max_size=12).map(b"".join)


def small_reader(dialect: Dialect, data) -> Dialect:
    max_frame = data.draw(st.sampled_from([16, 40, dialect.max_frame]), label="max_frame")
    return Dialect(dialect.framing, dialect.encoding, max_frame=max_frame)


def assert_every_byte_accounted(dialect: Dialect, stream: bytes, rows) -> None:
    """Rows tile the stream: each one's raw is (a prefix of) the bytes it stands
    for; lp rows are contiguous; line rows are separated only by empty lines."""
    prev = 0
    for end, msg in rows:
        assert msg.raw, msg
        size = stream_bytes(msg)
        assert size >= len(msg.raw)
        assert prev <= end - size
        covered = stream[end - size : end]
        assert covered.startswith(msg.raw)
        if size == len(msg.raw):
            assert covered == msg.raw
        if dialect.is_line:
            assert re.fullmatch(rb"(\r?\n)*", stream[prev : end - size])
        else:
            assert prev == end - size, (prev, end, size, msg)
        prev = end
    if dialect.is_line:
        assert re.fullmatch(rb"(\r?\n)*", stream[prev:])
    else:
        assert prev == len(stream)


@pytest.mark.parametrize("dialect", DIALECTS, ids=str)
@many
@given(data=st.data())
def test_random_bytes_never_raise_and_every_byte_is_accounted(dialect, data):
    reader = small_reader(dialect, data)
    stream = data.draw(st.one_of(st.binary(max_size=300), noisy_pieces(dialect)), label="stream")
    rows = decode_chunks(reader, data.draw(chunkings(stream), label="chunks"))
    assert_every_byte_accounted(reader, stream, rows)


@pytest.mark.parametrize("dialect", DIALECTS, ids=str)
@some
@given(data=st.data())
def test_random_bytes_and_gaps_never_raise(dialect, data):
    reader = small_reader(dialect, data)
    ops = data.draw(st.lists(st.one_of(noisy_pieces(dialect), st.integers(0, 50)), max_size=8))
    dec = Decoder(reader)
    rows, total = [], 0
    for op in ops:
        if isinstance(op, int):
            rows += dec.gap_with_ends(op)
        else:
            rows += dec.feed_with_ends(op)
        total += op if isinstance(op, int) else len(op)
        assert dec.buffered <= max(reader.max_frame + 4, 64)  # resync keeps a name's length
    rows += dec.finish_with_ends()
    assert dec.offset == total
    ends = [end for end, _ in rows]
    assert ends == sorted(set(ends))
    assert not ends or ends[-1] <= total
    assert all(msg.raw for _, msg in rows)
    assert all(isinstance(msg, UnknownMessage) for _, msg in rows if msg.command == "")


@pytest.mark.parametrize("dialect", DIALECTS, ids=str)
@some
@given(data=st.data())
def test_truncated_frame_is_one_error_row_at_finish(dialect, data):
    items = data.draw(st.lists(messages(dialect), min_size=1, max_size=4), label="items")
    frames = [encode(spec, values, dialect) for spec, values in items]
    cut = data.draw(st.integers(1, len(frames[-1]) - 1), label="cut")
    stream = b"".join(frames[:-1]) + frames[-1][:cut]
    dec = Decoder(dialect)
    rows = []
    for chunk in data.draw(chunkings(stream), label="chunks"):
        rows += dec.feed_with_ends(chunk)
    assert_decodes_to(rows, items[:-1], frames[:-1], dialect)
    [(end, msg)] = dec.finish_with_ends()
    assert end == len(stream)
    assert isinstance(msg, UnknownMessage)
    assert msg.raw == frames[-1][:cut]
    assert msg.error == f"stream ended inside a frame ({cut} bytes of it seen)"
    assert dec.finish() == []


@pytest.mark.parametrize("dialect", LP_DIALECTS, ids=str)
@some
@given(data=st.data())
def test_lp_zero_length_is_an_error_row_and_decoding_goes_on(dialect, data):
    (a, va), (b, vb) = data.draw(st.lists(messages(dialect), min_size=2, max_size=2))
    fa, fb = encode(a, va, dialect), encode(b, vb, dialect)
    stream = fa + b"\0\0\0\0" + fb
    rows = decode_chunks(dialect, data.draw(chunkings(stream)))
    assert len(rows) == 3
    end, msg = rows[1]
    assert (end, msg.error, msg.raw) == (len(fa) + 4, "empty frame (length 0)", b"\0\0\0\0")
    del rows[1]
    assert [e for e, _ in rows] == [len(fa), len(stream)]
    assert [m.fields for _, m in rows] == [expected_fields(va), expected_fields(vb)]


def _no_letters(data: bytes) -> bytes:
    return bytes(c for c in data if not (65 <= c <= 90 or 97 <= c <= 122))


JUNK = st.one_of(
    st.binary(max_size=600).map(_no_letters),
    st.sampled_from([b"", b"\xff\xff\xff\xffSocketCommand.", b"\xff\xff\xff\xffLogin|",
                     b"\x00\x00\x00\x00Heartbeat", b"\xff\xff\xffUploadCaramer|"]),
)


@pytest.mark.parametrize("dialect", LP_DIALECTS, ids=str)
@some
@given(data=st.data())
def test_lp_impossible_length_resynchronises_on_the_next_frame(dialect, data):
    reader = Dialect(dialect.framing, dialect.encoding,
                     max_frame=data.draw(st.sampled_from([4096, dialect.max_frame])))
    items = data.draw(st.lists(messages(dialect), min_size=3, max_size=3), label="items")
    frames = [encode(spec, values, reader) for spec, values in items]
    if data.draw(st.booleans(), label="short name after the junk"):
        spec, values = items[1]
        params = format_params(spec, values)
        text = f"{spec.name}|{params}" if params or spec.fields else spec.name
        frames[1] = frame(text.encode(dialect.encoding), dialect)
    bad = data.draw(st.integers(reader.max_frame + 1, 2**32 - 1)).to_bytes(4, dialect.byteorder)
    junk = data.draw(JUNK, label="junk")
    stream = frames[0] + bad + junk + frames[1] + frames[2]
    rows = decode_chunks(reader, data.draw(chunkings(stream), label="chunks"))
    assert len(rows) == 4
    end, err = rows.pop(1)
    assert end == len(frames[0]) + 4 + len(junk)
    assert err.error.startswith(f"impossible frame length {int.from_bytes(bad, dialect.byteorder)}")
    assert err.error.endswith(f"skipped {4 + len(junk)} bytes to resynchronise")
    assert err.raw == (bad + junk)[:256]
    assert [e for e, _ in rows] == [len(frames[0]), end + len(frames[1]), len(stream)]
    assert [m.error for _, m in rows] == [None, None, None]
    assert [m.fields for _, m in rows] == [expected_fields(v) for _, v in items]


@pytest.mark.parametrize("dialect", LINE_DIALECTS, ids=str)
@some
@given(data=st.data())
def test_oversize_line_is_one_error_row_and_the_next_line_decodes(dialect, data):
    reader = Dialect(dialect.framing, dialect.encoding, max_frame=48)
    long = b"x" * data.draw(st.integers(49, 300)) + data.draw(st.sampled_from([b"\n", b"\r\n"]))
    good = encode("Heartbeat", {}, reader)
    stream = good + long + good
    rows = decode_chunks(reader, data.draw(chunkings(stream), label="chunks"))
    assert [end for end, _ in rows] == [len(good), len(good) + len(long), len(stream)]
    _, err = rows[1]
    assert err.error == f"line of {len(long) - 1} bytes exceeds the 48-byte limit"
    assert err.raw == long[:48]
    assert [m.command for _, m in rows] == ["Heartbeat", "", "Heartbeat"]
    assert rows[2][1].error is None


@pytest.mark.parametrize("dialect", DIALECTS, ids=str)
def test_ten_mib_without_a_frame_end_keeps_memory_bounded(dialect):
    """10 MiB with no newline (line) or after an impossible length (lp)."""
    dec = Decoder(dialect)
    chunk = b"A" * (1 << 16) if dialect.is_line else b"\xff" * (1 << 16)
    total = 0
    for _ in range(160):  # 10 MiB
        assert dec.feed(chunk) == []
        total += len(chunk)
        assert dec.buffered <= dialect.max_frame
    good = encode("Login", {"user": "demo", "password": "密码"}, dialect)
    tail = (b"\r\n" if dialect.is_line else b"") + good
    rows = dec.feed_with_ends(tail) + dec.finish_with_ends()
    assert [end for end, _ in rows] == [total + len(tail) - len(good), total + len(tail)]
    (_, err), (_, msg) = rows
    assert err.raw and len(err.raw) <= dialect.max_frame
    if dialect.is_line:
        assert err.error == f"line of {total + 1} bytes exceeds the {dialect.max_frame}-byte limit"
    else:
        assert err.error.endswith(f"skipped {total} bytes to resynchronise")
    assert (msg.command, msg.error, msg.user, msg.password) == ("Login", None, "demo", "密码")


BAD_TEXT = {"utf-8": b"\xff\xfe", "gbk": b"\xff\x80"}


@pytest.mark.parametrize("dialect", DIALECTS, ids=str)
@pytest.mark.parametrize("chunked", [False, True])
def test_invalid_text_encoding_names_it_and_keeps_the_command(dialect, chunked):
    bad = BAD_TEXT[dialect.encoding]
    body = b"SocketCommand.LoginCommand.Login|us" + bad + "户|密码".encode(dialect.encoding)
    wire = frame(body, dialect)
    [(end, msg)] = decode_chunks(dialect, [bytes([b]) for b in wire] if chunked else [wire])
    assert end == len(wire)
    assert msg.command == "Login"
    assert msg.error == f"invalid {dialect.encoding} at byte {body.index(bad)}"
    assert msg.user.startswith("us\ufffd") and msg.user.endswith("户")
    assert msg.password == "密码"
    assert msg.raw == wire


# (command, params, what the error must say, the typed fields that must come out)
FIELD_ERRORS = [
    ("UploadCaramer", "cam|pw|x|5", "current: 'x' is not a non-negative integer",
     {"camera_id": "cam", "camera_password": "pw", "current": None, "total": 5}),
    ("UploadCaramer", "cam|pw|1|-5", "total: '-5'",
     {"camera_id": "cam", "camera_password": "pw", "current": 1, "total": None}),
    ("UploadSucess", "摄像头|maybe|1|2", "online: 'maybe' is not true, false or null",
     {"camera_id": "摄像头", "online": None, "synced": 1, "total": 2}),
    ("DownloadSucess", "cam|pw|TRUE|1|二", "total: '二'",
     {"camera_id": "cam", "camera_password": "pw", "online": True, "current": 1, "total": None}),
    ("UploadFail", "cam|坏|理由|x|5", "synced: 'x'",
     {"camera_id": "cam", "reason": "坏|理由", "synced": None, "total": 5}),
    ("LoginOk", "3|2024-01-01 10:00|10.0.0.1|extra",
     "expected 3 fields (camera_count|last_login_time|last_login_ip), got 4",
     {"camera_count": None, "last_login_time": None, "last_login_ip": None}),
    ("Login", "onlyuser", "expected 2 fields (user|password), got 1",
     {"user": None, "password": None}),
    ("DownLoadCaramer", "+1", "downloaded: '+1'", {"downloaded": None}),
    ("ReturnDataSocketPort", "70000", "port: 70000 is outside 1-65535", {"port": None}),
    ("ReturnDataSocketPort", "http", "port: 'http' is not a port number", {"port": None}),
    ("ReturnCaramerOnlineStatus", "a;true|b;maybe|c;NULL", "statuses: item 2",
     {"statuses": (("a", True), ("c", None))}),
    ("ReturnCaramerOnlineStatus", "a;true|b", "statuses: item 2 'b' is not id;status",
     {"statuses": (("a", True),)}),
    ("PrushCaramerOnlineStatus", "cam:yes", "online: 'yes'", {"camera_id": "cam", "online": None}),
    ("PrushCaramerAlarmInfo", "cam", "expected camera_id:alarm_type",
     {"camera_id": None, "alarm_type": None}),
    ("CheckCaramerOnlineStatus", ";;", "ids: no camera id", {"ids": ()}),
]


@pytest.mark.parametrize("dialect", DIALECTS, ids=str)
@pytest.mark.parametrize(("command", "params", "error", "fields"), FIELD_ERRORS,
                         ids=[f"{c[0]}:{c[1]}" for c in FIELD_ERRORS])
def test_malformed_fields_are_named_and_the_others_keep_their_values(
        dialect, command, params, error, fields):
    wire = frame(f"{BY_NAME[command].full_name}|{params}".encode(dialect.encoding), dialect)
    [msg] = decode_all(wire, dialect)
    assert msg.command == command
    assert msg.known
    assert error in msg.error
    assert msg.fields == fields
    assert msg.params == params
    assert msg.raw == wire


@pytest.mark.parametrize("dialect", DIALECTS, ids=str)
@pytest.mark.parametrize("name", [
    "SocketCommand.FooCommand.Bar", "SocketCommand.LoginCommand.Logout",
    "SocketCommand.LoginCommand.UploadSucess", "UploadSuccess", "Vendor.X_1",
])
def test_unknown_command_names_are_not_errors(dialect, name):
    wire = frame(f"{name}|x|中".encode(dialect.encoding), dialect)
    [msg] = decode_all(wire, dialect)
    assert type(msg) is UnknownMessage
    assert (msg.command, msg.params, msg.error, msg.raw) == (name, "x|中", None, wire)
    spaced = frame(f" {name.replace('.', ' . ')} |x".encode(dialect.encoding), dialect)
    [msg] = decode_all(spaced, dialect)
    assert (type(msg), msg.command, msg.error) == (UnknownMessage, name, None)


@pytest.mark.parametrize("dialect", DIALECTS, ids=str)
@pytest.mark.parametrize("name", ["", "@@@", "123", "Socket Command", "Login!", "中文", "a..b",
                                  "SocketCommand.", ".Login"])
def test_garbage_command_names_are_errors(dialect, name):
    wire = frame(f"{name}|x".encode(dialect.encoding), dialect)
    [msg] = decode_all(wire, dialect)
    assert type(msg) is UnknownMessage
    assert msg.error.startswith("not a command name")
    # an error row never invents a command: the text is in the error and raw
    assert (msg.command, msg.params, msg.raw) == ("", "x", wire)


def _cut_case(dialect, data):
    """Frames, the index of the frame cut by lost bytes, where it is cut, how much is lost."""
    items = data.draw(st.lists(messages(dialect), min_size=2, max_size=5), label="items")
    frames = [encode(spec, values, dialect) for spec, values in items]
    i = data.draw(st.integers(0, len(frames) - 2), label="cut frame")
    p = data.draw(st.integers(1, len(frames[i]) - 1), label="bytes seen")
    n = data.draw(st.integers(0, len(frames[i]) - p), label="bytes lost")
    return items, frames, i, p, n


@pytest.mark.parametrize("dialect", DIALECTS, ids=str)
@some
@given(data=st.data())
def test_gap_inside_a_frame_reports_it_and_resynchronises(dialect, data):
    items, frames, i, p, n = _cut_case(dialect, data)
    tail = frames[i][p + n :]
    if not dialect.is_line:  # a command name inside the cut frame's params could pose as a frame
        assume(not has_marker(format_params(*items[i]).encode(dialect.encoding)))
    before = b"".join(frames[:i]) + frames[i][:p]
    after = tail + b"".join(frames[i + 1 :])
    dec = Decoder(dialect)
    rows = []
    for chunk in data.draw(chunkings(before), label="chunks before"):
        rows += dec.feed_with_ends(chunk)
    rows += dec.gap_with_ends(n)
    for chunk in data.draw(chunkings(after), label="chunks after"):
        rows += dec.feed_with_ends(chunk)
    rows += dec.finish_with_ends()
    assert dec.offset == sum(map(len, frames))

    assert_decodes_to(rows[:i], items[:i], frames[:i], dialect)
    cut_at = sum(map(len, frames[:i])) + p
    end, err = rows[i]
    assert (end, err.raw) == (cut_at, frames[i][:p])
    why = f"frame cut by {n} lost bytes" if n else "frame cut: stream position lost"
    assert err.error == f"{why} ({p} bytes of it seen)"
    rest = rows[i + 1 :]
    if tail and (not dialect.is_line or tail not in (b"\n", b"\r\n")):
        end, err = rest.pop(0)  # the cut frame's tail, reported (lp) or read as a line
        assert end == cut_at + n + len(tail)
        # lp: the bytes skipped to resynchronise, the first 256 kept; line: the tail is
        # a line, kept whole as every line's error row keeps it (a tail of 257 bytes or
        # more once met the 256 of lp's rule here)
        assert err.raw == (tail if dialect.is_line else tail[:256])
        if not dialect.is_line:
            assert err.error == f"after lost bytes: skipped {len(tail)} bytes to resynchronise"
    offsets = [end - len(f) for end, f in zip(cumulative(map(len, frames)), frames, strict=True)]
    assert [end - len(m.raw) for end, m in rest] == offsets[i + 1 :]
    assert [(m.command, m.error, m.fields) for _, m in rest] == [
        (spec.name, None, expected_fields(values)) for spec, values in items[i + 1 :]
    ]


@pytest.mark.parametrize("dialect", DIALECTS, ids=str)
@some
@given(data=st.data())
def test_gap_between_frames_loses_only_the_lost_frames(dialect, data):
    items = data.draw(st.lists(messages(dialect), min_size=2, max_size=6), label="items")
    frames = [encode(spec, values, dialect) for spec, values in items]
    i = data.draw(st.integers(1, len(frames) - 1), label="first frame lost")
    j = data.draw(st.integers(i, len(frames) - 1), label="first frame kept after")
    dec = Decoder(dialect)
    rows = dec.feed_with_ends(b"".join(frames[:i]))
    assert dec.gap_with_ends(sum(map(len, frames[i:j]))) == []
    rows += dec.feed_with_ends(b"".join(frames[j:])) + dec.finish_with_ends()
    kept = list(range(i)) + list(range(j, len(frames)))
    ends = cumulative(map(len, frames))
    assert [end for end, _ in rows] == [ends[k] for k in kept]
    assert [(m.command, m.error, m.fields) for _, m in rows] == [
        (items[k][0].name, None, expected_fields(items[k][1])) for k in kept
    ]


def test_line_flags_an_unknown_line_right_after_lost_bytes():
    dec = Decoder("line")
    assert dec.gap(7) == []
    [msg] = dec.feed(b"ommand.Whatever|x\r\n")
    assert msg.error == "follows lost bytes: probably the tail of a cut frame"
    # the tail names no command: its whole text is in params, its bytes in raw
    assert (msg.command, msg.params, msg.raw) == ("", "ommand.Whatever|x", b"ommand.Whatever|x\r\n")
    [msg] = dec.feed(b"Vendor.Whatever|x\r\n")
    assert msg.error is None


def test_negative_gap_is_a_caller_error():
    with pytest.raises(LocalProtocolError, match="gap of -1 bytes"):
        Decoder().gap(-1)


# ------------------------------------------------------------------ encoder refusals


def _injections(spec, dialect):
    """(field, characters that field cannot carry in dialect) pairs."""
    out = []
    for f in spec.fields:
        bad = "\r\n" if dialect.is_line else ""
        bad += NON_GBK if dialect.encoding == "gbk" else ""
        if spec.layout in (Layout.IDS, Layout.STATUS_LIST) or f.kind is Kind.CAMERA_ID:
            bad += ";:|"
        elif f.kind in (Kind.TEXT, Kind.SECRET) and spec.layout is Layout.PIPE \
                and len(spec.fields) > 1:
            bad += "|"
        elif f.kind not in (Kind.TEXT, Kind.SECRET):
            continue
        if bad:
            out.append((f, bad))
    return out


@pytest.mark.parametrize("dialect", DIALECTS, ids=str)
@many
@given(data=st.data())
def test_encoder_refuses_what_a_field_cannot_carry_and_names_the_field(dialect, data):
    spec = data.draw(st.sampled_from([s for s in SPECS if _injections(s, dialect)]))
    values = data.draw(field_values(spec, dialect), label="values")
    field, bad = data.draw(st.sampled_from(_injections(spec, dialect)), label="field")
    char = data.draw(st.sampled_from(bad), label="char")
    text = data.draw(texts(dialect, "|;:"), label="head") + char
    if spec.layout is Layout.IDS:
        ids = list(values["ids"])
        ids[data.draw(st.integers(0, len(ids) - 1))] = text
        values["ids"] = ids
    elif spec.layout is Layout.STATUS_LIST:
        pairs = list(values["statuses"])
        k = data.draw(st.integers(0, len(pairs) - 1))
        pairs[k] = (text, pairs[k][1])
        values["statuses"] = pairs
    else:
        values[field.name] = text
    with pytest.raises(LocalProtocolError) as exc:
        encode(spec, values, dialect)
    assert f"{spec.name}.{field.name}" in str(exc.value)


@pytest.mark.parametrize("dialect", LINE_DIALECTS, ids=str)
@pytest.mark.parametrize("brk", ["\n", "\r", "\r\n"])
def test_line_refuses_a_line_break_in_a_parameter(dialect, brk):
    with pytest.raises(LocalProtocolError, match=r"LoginError\.reason: a line break .*'line'"):
        encode("LoginError", {"reason": f"用户名{brk}错误"}, dialect)
    with pytest.raises(LocalProtocolError, match="line break"):
        encode("LoginError", f"用户名{brk}错误", dialect)


@pytest.mark.parametrize(("command", "values", "field"), [
    ("Login", {"user": "a|b", "password": "p"}, "Login.user"),
    ("UploadFail", {"camera_id": "c", "reason": "x|y", "synced": 1, "total": 2},
     "UploadFail.reason"),
    ("UploadCaramer", {"camera_id": "a;b", "camera_password": "p", "current": 1, "total": 1},
     "UploadCaramer.camera_id"),
    ("PrushCaramerAlarmInfo", {"camera_id": "a:b", "alarm_type": "x"},
     "PrushCaramerAlarmInfo.camera_id"),
    ("CheckCaramerOnlineStatus", {"ids": ["ok", "a:b"]}, "CheckCaramerOnlineStatus.ids"),
    ("CheckCaramerOnlineStatus", {"ids": ["ok", ""]}, "CheckCaramerOnlineStatus.ids"),
    ("ReturnCaramerOnlineStatus", {"statuses": [("a;b", True)]},
     "ReturnCaramerOnlineStatus.statuses"),
])
def test_encoder_refuses_separators_in_fields(command, values, field):
    with pytest.raises(LocalProtocolError, match=re.escape(field)):
        encode(command, values)


def test_encoder_refuses_more_than_20_ids():
    ids = [f"cam{i}" for i in range(21)]
    with pytest.raises(LocalProtocolError, match="21 ids, the protocol allows at most 20"):
        encode("CheckCaramerOnlineStatus", {"ids": ids})
    [msg] = decode_all(encode("CheckCaramerOnlineStatus", {"ids": ids[:20]}))
    assert msg.ids == tuple(ids[:20])


@pytest.mark.parametrize("dialect", DIALECTS, ids=str)
def test_encoder_refuses_a_body_over_max_frame(dialect):
    small = Dialect(dialect.framing, dialect.encoding, max_frame=64)
    with pytest.raises(LocalProtocolError, match=r"LoginError: body of \d+ bytes exceeds .*64"):
        encode("LoginError", {"reason": "错" * 40}, small)


@pytest.mark.parametrize("dialect", [d for d in DIALECTS if d.encoding == "gbk"], ids=str)
@pytest.mark.parametrize("char", NON_GBK)
def test_encoder_refuses_what_gbk_cannot_write(dialect, char):
    with pytest.raises(LocalProtocolError, match=r"Login\.password: .* cannot be written in gbk"):
        encode("Login", {"user": "用户", "password": f"pw{char}"}, dialect)
    utf8 = Dialect(dialect.framing)
    [msg] = decode_all(encode("Login", {"user": "用户", "password": f"pw{char}"}, utf8), utf8)
    assert msg.password == f"pw{char}"


def test_encoder_caller_errors():
    with pytest.raises(LocalProtocolError, match="pass params as a string"):
        encode("Vendor.Thing", {"x": 1})
    with pytest.raises(LocalProtocolError, match="is not a command name"):
        encode("not a name!", "")
    with pytest.raises(LocalProtocolError, match="params must be a str or a dict"):
        encode("Login", 42)  # type: ignore[arg-type]
    assert encode("Vendor.Thing", "a|b") == b"Vendor.Thing|a|b\r\n"


@few
@given(ids=st.lists(camera_ids(Dialect(), min_size=1), min_size=1, max_size=20))
def test_ids_round_trip_up_to_the_limit(ids):
    [msg] = decode_all(encode("CheckCaramerOnlineStatus", {"ids": ids}))
    assert (msg.error, msg.ids) == (None, tuple(ids))


def test_a_long_line_tail_after_lost_position_keeps_its_whole_line_as_raw():
    """The tail of a cut frame is read as a line: its error row keeps the whole line,
    as every line's error row does (lp keeps the first 256 bytes it skipped)."""
    dec = Decoder("line")
    tail = b"ocketCommand.CaramCommand.CheckCaramerOnlineStatus|" + b"0;" * 110 + b"\r\n"
    login = b"SocketCommand.LoginCommand.Login||\r\n"
    rows = (dec.feed_with_ends(b"S") + dec.gap_with_ends(0) + dec.feed_with_ends(tail + login)
            + dec.finish_with_ends())
    assert [end for end, _ in rows] == [1, 1 + len(tail), 1 + len(tail) + len(login)]
    assert rows[1][1].raw == tail and len(tail) > 256
    assert rows[1][1].error == "follows lost bytes: probably the tail of a cut frame"
    assert rows[2][1].command == "Login"

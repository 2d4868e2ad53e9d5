"""Passwords never reach ``Capture.messages`` unless the caller asks for them."""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camprotool import encode, read_capture
from camprotool.analysis.masking import MASK, mask_params
from camprotool.capture.writer import PcapngWriter

T0 = 1_700_000_000_000_000_000
DIALECTS = ["line", "lp32le:gbk"]

# (command, params on the wire, params masked, typed secret column, typed value on the wire)
CASES = [
    ("Login", "demo|s3cret", "demo|***", "password", "s3cret"),
    ("CreatDataSocket", "demo|dAta-pw", "demo|***", "password", "dAta-pw"),
    ("UploadCaramer", "CAM00001|cam-pw1|1|2", "CAM00001|***|1|2", "camera_password", "cam-pw1"),
    ("DownloadSucess", "CAM00002|cam-pw2|true|1|1", "CAM00002|***|true|1|1", "camera_password",
     "cam-pw2"),
    # A bad count, but every field is there: the password is where it belongs.
    ("UploadCaramer", "CAM00003|cam-pw3|x|2", "CAM00003|***|x|2", "camera_password", "cam-pw3"),
    ("Login", "用户|密码", "用户|***", "password", "密码"),
]
# Malformed field counts: nobody can tell where the password ends, so all but the first
# field is hidden. (command, wire params, masked params)
MALFORMED = [
    ("Login", "demo|pass|word"),  # 3 fields: the password may contain "|"
    ("Login", "demo|p|a|ss"),
    ("CreatDataSocket", "demo|pass|word"),
    ("UploadCaramer", "CAM1|pw|1"),
    ("DownloadSucess", "CAM1|pw|true|1"),
]


def capture(dialect: str, extra: list[tuple[str, str]] = ()) -> bytes:
    w = PcapngWriter()
    m = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 9000), T0)
    d = w.tcp(("10.0.0.1", 50001), ("10.0.0.2", 9001), T0 + 10)
    t = T0 + 100
    for command, params, *_ in CASES + list(extra):
        conv = d if command in ("UploadCaramer", "DownloadSucess") else m
        direction = "s2c" if command == "DownloadSucess" else "c2s"
        conv.send(direction, encode(command, params, dialect), t)
        t += 100
    m.close(t)
    d.close(t + 100)
    return w.getvalue()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_passwords_are_masked_in_typed_columns_and_params(dialect):
    m = read_capture(capture(dialect)).messages
    assert len(m) == len(CASES)
    for (command, _, masked, column, _), (_, row) in zip(CASES, m.iterrows(), strict=True):
        assert row.command == command
        assert row.params == masked
        assert row[column] == MASK
        assert pd.isna(row.raw)  # the frame bytes would show the password
    for column in ("password", "camera_password"):
        assert set(m[column].dropna()) == {MASK}
    secrets = [value for *_, value in CASES]
    for column in m.columns:
        for value in m[column].dropna():
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            assert not any(secret in text for secret in secrets), (column, text)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_reveal_passwords_keeps_the_wire_text(dialect):
    m = read_capture(capture(dialect), reveal_passwords=True).messages
    for (command, wire, _, column, value), (_, row) in zip(CASES, m.iterrows(), strict=True):
        assert row.command == command
        assert row.params == wire
        assert row[column] == value
    assert not m["params"].str.contains(MASK, regex=False).any()


@pytest.mark.parametrize("command,params", MALFORMED)
def test_malformed_messages_are_masked_too(command, params):
    m = read_capture(capture("line", [(command, params, None, None, None)])).messages
    row = m.iloc[-1]
    assert row.command == command
    assert row.error.startswith("expected ")
    assert row.params == params.split("|")[0] + "|***"
    for secret in ("pass", "word", "pw", "ss"):
        assert secret not in row.params
    assert pd.isna(row.raw)
    revealed = read_capture(capture("line", [(command, params, None, None, None)]),
                            reveal_passwords=True).messages.iloc[-1]
    assert revealed.params == params
    assert revealed.raw == encode(command, params)


def test_a_login_with_one_field_is_all_masked():
    w = PcapngWriter()
    c = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 9000), T0)
    c.send("c2s", b"SocketCommand.LoginCommand.Login|hunter2\r\n", T0 + 100)
    c.send("c2s", b"SocketCommand.LoginCommand.Login\r\n", T0 + 200)
    m = read_capture(w.getvalue()).messages
    assert m["params"].tolist() == ["***", "***"]
    assert read_capture(w.getvalue(), reveal_passwords=True).messages["params"].tolist() == [
        "hunter2", ""]


def test_other_commands_are_untouched():
    w = PcapngWriter()
    c = w.tcp(("10.0.0.1", 50000), ("10.0.0.2", 9000), T0)
    c.send("s2c", encode("LoginOk", "1|t|10.0.0.1"), T0 + 100)
    c.send("s2c", encode("UploadFail", "CAM1|密码错误|1|1"), T0 + 200)
    c.send("c2s", encode("SocketCommand.X.Password", "a|b|c"), T0 + 300)
    masked = read_capture(w.getvalue()).messages
    revealed = read_capture(w.getvalue(), reveal_passwords=True).messages
    pd.testing.assert_frame_equal(masked, revealed)


def test_mask_params_matches_the_tables():
    for command, wire, masked, *_ in CASES:
        assert mask_params(command, wire) == masked
    for command, params in MALFORMED:
        assert mask_params(command, params) == params.split("|")[0] + "|***"
    assert mask_params("Login", "solo") == "***"
    assert mask_params("LoginOk", "1|a|b") == "1|a|b"


@pytest.mark.parametrize("dialect", ["line", "lp32le"])
def test_unreadable_frame_name_and_error_do_not_leak_password_text(dialect):
    # A cut Login / CreatDataSocket tail is read as a "command name": it is password text.
    w = PcapngWriter()
    c = w.tcp(("10.0.0.1", 40000), ("10.0.0.2", 9000), T0, handshake=False)
    c.send("c2s", encode("Login", "demo|Tr0ub4dor", dialect)[-8:], T0 + 1)
    c.send("s2c", encode("LoginOk", "3|2024|1.2.3.4", dialect), T0 + 2)
    msg = encode("CreatDataSocket", "demo|Hunter2-Secret", dialect)
    c.send("c2s", msg[:len(msg) - 14], T0 + 3)
    c.skip("c2s", 3)
    c.send("c2s", msg[len(msg) - 11:], T0 + 4)
    c.send("c2s", encode("Heartbeat", "", dialect), T0 + 5)
    cap = read_capture(w.getvalue())
    assert "Heartbeat" in set(cap.messages["command"])
    for frame in (cap.messages, cap.notes, cap.violations):
        text = frame.astype(str).to_csv()
        assert "ub4dor" not in text and "Secret" not in text, text
    revealed = read_capture(w.getvalue(), reveal_passwords=True).messages.astype(str).to_csv()
    assert "ub4dor" in revealed or "Secret" in revealed


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["Login", "UploadCaramer", "LoginOk", "Heartbeat",
                                           "DownloadCaramer", "Frob", None]),
                          st.one_of(st.none(), st.text("ab|*\\n界", max_size=12)),
                          st.booleans()),
                max_size=30),
       st.integers(0, 3), st.integers(1, 6))
def test_column_wise_masking_equals_mask_params(rows, skip, keep):
    """mask_table's params are mask_params of each row (the reference wording); a row
    marked whole is all ``***`` unless empty. Also on a slice of a column (a window's
    chunk cut by the rows of the others: its offsets and validity start inside), and
    with runs of ``keep`` rows without a password kept as slices of the column."""
    from camprotool.analysis import masking
    from camprotool.analysis.masking import _masked_params, encode_commands

    pad = [("Heartbeat", "x|y", False)] * skip
    rows = pad + rows
    commands = pa.array([c for c, _, _ in rows], pa.large_string()).slice(skip)
    params = pa.array([p for _, p, _ in rows], pa.large_string()).slice(skip)
    whole = np.array([w and p is not None for _, p, w in rows], bool)[skip:]
    with patch.object(masking, "_KEEP", keep):
        got = _masked_params(params, encode_commands(commands), whole)
    want = [p if p is None else (("***" if p else "") if w else
                                 mask_params(c, p) if c is not None else p)
            for (c, p, _), w in zip(rows[skip:], whole, strict=True)]
    assert got.to_pylist() == want
    assert got.type == pa.large_string()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["Login", "Heartbeat", "LoginOk", ""]),
                          st.text("aZ.*界", max_size=6)), max_size=25),
       st.integers(1, 4))
def test_commands_are_codes_into_the_catalogue_then_the_other_names_sorted(names, chunks):
    from camprotool.analysis.masking import CATALOGUE_NAMES, encode_commands

    pieces = [names[k::chunks] for k in range(chunks)]  # any chunking of the column
    column = pa.chunked_array([pa.array(p, pa.large_string()) for p in pieces],
                              pa.large_string())
    flat = [name for p in pieces for name in p]
    commands = encode_commands(column)
    extra = sorted({n for n in flat if n is not None} - set(CATALOGUE_NAMES))
    assert commands.names == CATALOGUE_NAMES + extra
    assert commands.codes.dtype == np.int32
    assert [None if c < 0 else commands.names[c] for c in commands.codes] == flat
    assert commands.column(pa.large_string()).to_pylist() == flat


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["Login", "Heartbeat", "LoginOk"]),
                          st.text("aZ.*界", max_size=6)), max_size=25),
       st.integers(1, 4))
def test_a_column_of_codes_encodes_as_its_text_does(names, chunks):
    """The decoder table's ``command`` is codes (any dictionary a chunk, names it may not
    use): the same commands as the text it stands for."""
    from camprotool.analysis.masking import encode_commands

    pieces = [names[k::chunks] for k in range(chunks)]
    text = pa.chunked_array([pa.array(p, pa.large_string()) for p in pieces],
                            pa.large_string())
    unused = pa.array(["Frob", "Heartbeat"], pa.string())  # in no chunk's rows
    codes = pa.chunked_array(
        [pa.DictionaryArray.from_arrays(
            pa.array(chunk.dictionary_encode().indices.to_numpy(zero_copy_only=False)
                     if len(chunk) else [], pa.int32(), mask=chunk.is_null().to_numpy(
                         zero_copy_only=False) if len(chunk) else None),
            pa.concat_arrays([chunk.dictionary_encode().dictionary.cast(pa.string()),
                              unused]))
         for chunk in text.chunks], pa.dictionary(pa.int32(), pa.string()))
    want, got = encode_commands(text), encode_commands(codes)
    assert got.names == want.names
    assert np.array_equal(got.codes, want.codes)


def test_unreadable_names_become_the_mask_and_unused_names_go():
    """A frame no command could be read from: its name (password text, maybe) is
    ``***`` in the commands and the table, an empty or null one stays, and a name
    only such frames held is no longer among the names."""
    from camprotool.analysis.masking import CATALOGUE_NAMES, encode_commands, mask_messages

    n = 6
    table = pa.table({
        "command": pa.array(["Heartbeat", "pw-tail", "", None, "Zed", "Login"],
                            pa.large_string()),
        "params": pa.array(["", "x|y", "z", "w", "q", "u|p"], pa.large_string()),
        "error": pa.array([None, "cut", "cut", "cut", None, None], pa.large_string()),
        "raw": pa.array([b"h", b"r", b"r", b"r", b"z", b"l"], pa.large_binary()),
        "password": pa.array([None] * 5 + ["p"], pa.large_string()),
    })
    assert table.num_rows == n
    masked, commands = mask_messages(table, encode_commands(table["command"]))
    names = ["Heartbeat", MASK, "", None, "Zed", "Login"]
    assert commands.names == CATALOGUE_NAMES + sorted(["", MASK, "Zed"])
    assert [None if c < 0 else commands.names[c] for c in commands.codes] == names
    assert masked["command"].to_pylist() == names
    assert masked["params"].to_pylist() == ["", "***", "***", "***", "q", "u|***"]
    assert masked["raw"].to_pylist() == [b"h", None, None, None, b"z", None]
    assert masked["password"].to_pylist() == [None] * 5 + [MASK]


def test_chunks_without_a_password_keep_their_buffers():
    """A window without a login is not copied: its params are the table's."""
    from camprotool.analysis.masking import mask_table

    quiet = pa.array(["a|b", "c"] * 3, pa.large_string())
    loud = pa.array(["demo|s3cret", "c"], pa.large_string())
    table = pa.table({
        "command": pa.chunked_array([pa.array(names, pa.large_string()) for names in (
            ["LoginOk", "Heartbeat"] * 3, ["Login", "Heartbeat"])]),
        "params": pa.chunked_array([quiet, loud]),
        "error": pa.nulls(8, pa.large_string()),
        "raw": pa.nulls(8, pa.large_binary()),
    })
    masked = mask_table(table)["params"]
    assert masked.to_pylist() == ["a|b", "c"] * 3 + ["demo|***", "c"]
    assert masked.chunk(0).buffers()[2].address == quiet.buffers()[2].address


def test_a_secret_column_is_masked_from_its_validity_alone():
    """Every value becomes ``***`` and every null stays null, on a slice too (a chunk cut
    from a window's table starts inside its buffers)."""
    from camprotool.analysis.masking import _Stars

    stars = _Stars()
    column = pa.array(["pw", None, "", "s3cret", None], pa.large_string())
    assert stars.over(column).to_pylist() == ["***", None, "***", "***", None]
    assert stars.over(column.slice(1, 3)).to_pylist() == [None, "***", "***"]
    assert stars.over(pa.array(["a"], pa.string())).to_pylist() == ["***"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), st.text(max_size=4)), max_size=40),
                max_size=4), st.integers(0, 5))
def test_masked_chunks_share_one_text_of_stars(chunks, skip):
    """Chunks of any length and offset, masked in any order, read as ``***`` under their
    own nulls, and all of them over the same two buffers."""
    from camprotool.analysis.masking import _Stars

    stars = _Stars()
    for values in chunks:
        column = pa.array([None] * skip + values, pa.large_string()).slice(skip)
        masked = stars.over(column)
        masked.validate(full=True)
        assert masked.to_pylist() == [None if v is None else "***" for v in values]
        if masked.null_count < len(masked):
            assert masked.buffers()[0] is None or \
                masked.buffers()[0].address == column.buffers()[0].address
    password = pa.array(["a", None, "bb"] * 10, pa.large_string())
    camera_password = pa.array([None, "c", "d"] * 10, pa.large_string())
    first, second = stars.over(password), stars.over(camera_password)
    assert [b.address for b in first.buffers()[1:]] == \
        [b.address for b in second.buffers()[1:]]  # no bytes of their own


def test_masked_params_serve_both_the_frame_and_the_decoders_rows():
    """``Capture.messages`` masks ``params`` in the decoder's rows (one column for both);
    the values it hid are kept: ``decoded.messages``, a revealing ``Capture`` of the
    same rows, the rule checks and replay still read what was decoded."""
    from pathlib import Path

    from camprotool.analysis.capture import Capture
    from camprotool.capture.decode import decode_file

    sample = str(Path(__file__).parents[2] / "captures" / "sample.pcapng")
    cap = read_capture(sample)
    real = decode_file(sample).messages["params"]
    violations_before = cap.violations  # the rule checks read the real params
    m = cap.messages
    rows = cap.decoded.rows["params"]
    assert m["params"].tolist() == rows.to_pylist()
    assert "***" in "".join(rows.to_pylist()) and rows != real
    assert cap.decoded.hidden is not None and len(cap.decoded.hidden[0])
    assert cap.decoded.messages["params"].to_pylist() == real.to_pylist()
    revealed = Capture(cap.decoded, reveal_passwords=True).messages
    assert revealed["params"].tolist() == real.to_pylist()
    pd.testing.assert_frame_equal(read_capture(sample).violations, violations_before)
    again = read_capture(sample)
    again.messages  # noqa: B018  (rows masked before the rules run)
    pd.testing.assert_frame_equal(again.violations, violations_before)

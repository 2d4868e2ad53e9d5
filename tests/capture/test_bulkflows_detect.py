"""Detection's reading of each stream, taken without decoding it all, equals what
decoding every row gives.

``bulkflows.sample_ends`` finds where a stream's first clean row and its first
"invalid utf-8" row end by decoding only its first row and the rows that
could be invalid; ``decide`` reads the same two numbers off every decoded row.
They must agree wherever a detection sample can reach (its first ``LONG``
bytes): the property below shrinks ``LONG`` so that the cut is exercised.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camprotool.capture.fast import bulkflows
from camprotool.capture.fast import kernels as K
from camprotool.protocol.bulk import BulkDecoder

_LINES = st.sampled_from([
    b"SocketCommand.LoginCommand.Login|u1|pw\n",
    b"SocketCommand.CaramCommand.UploadFail|VSTC1|\xe8\xaf\xa5\xe6\x91\x84|1|2\n",
    b"SocketCommand.CaramCommand.UploadFail|VSTC1|\xb8\xc3\xc9\xe3|1|2\n",  # GBK: bad UTF-8
    b"SocketCommand.NormalCommand.ReturnDataSocketPort|notaport\n",
    b"SocketCommand.NormalCommand.Heartbeat\r\n",
    b"invalid utf-8|x\n",  # an error message that quotes the words
    b"GET / HTTP/1.1\r\n",
    b"\n", b"\r\n", b"x" * 70 + b"\n",
    b"SocketCommand.LoginCommand.Login|u|\xff\n",
])


def _reference(data: np.ndarray, g_start: np.ndarray, g_stop: np.ndarray, reach: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Every row of every stream decoded, as ``decide`` does, then read as a sample
    would (an end past ``reach`` is never within one)."""
    used = np.zeros(len(g_start), np.int64)
    K.last_newlines(data, g_start, g_stop, used)
    joined = np.empty(int(used.sum()), np.uint8)
    K.copy_ranges(data, g_start, used, joined)
    bounds = np.cumsum(used)
    starts, ends = (np.empty(K.count_byte(joined, 0x0A), np.int64) for _ in range(2))
    n = K.line_frames(joined, bulkflows._LINE.max_frame, starts, ends)
    ends = ends[:n]
    owner = np.searchsorted(bounds, ends, side="left")
    end = ends - (bounds - used)[owner]
    rows = BulkDecoder(bulkflows._LINE).feed(joined.tobytes())
    good = bulkflows._first_end(rows, owner, end, len(g_start), bulkflows._clean_rows(rows))
    bad = bulkflows._first_end(rows, owner, end, len(g_start),
                               bulkflows._invalid_utf8_rows(rows))
    never = bulkflows._NEVER
    return np.where(good > reach, never, good), np.where(bad > reach, never, bad)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.lists(_LINES, max_size=8), st.binary(max_size=12)), max_size=6),
       st.sampled_from([16, 64, 200, 1 << 16]))
def test_sample_ends_equal_decoding_every_row(streams, reach):
    chunks, g_start, g_stop, at = [], [], [], 0
    for lines, tail in streams:
        body = b"".join(lines) + tail
        g_start.append(at)
        at += len(body)
        g_stop.append(at)
        chunks.append(body)
    data = np.frombuffer(b"".join(chunks) + b"\0", np.uint8).copy()
    starts, stops = np.asarray(g_start, np.int64), np.asarray(g_stop, np.int64)
    with pytest.MonkeyPatch.context() as patch:  # the most a sample holds
        patch.setattr(K, "LONG", reach)
        good, bad = bulkflows.sample_ends(data, starts, stops)
    want_good, want_bad = _reference(data, starts, stops, reach)
    assert good.tolist() == want_good.tolist()
    assert bad.tolist() == want_bad.tolist()



_OPENERS = st.sampled_from([
    b"SocketCommand.LoginCommand.Login|u1|pw\r\n",
    b"SocketCommand.LoginCommand.LoginOk|1|2024-05-28 14:05:16|10.0.0.1\r\n",
    b"SocketCommand.FooCommand.Frob|a|b\r\n",  # framed as lines, not clean: unknown
    b"SocketCommand.NormalCommand.ReturnDataSocketPort|notaport\n",  # not clean: a bad field
    b"SocketCommand.CaramCommand.UploadFail|VSTC1|\xb8\xc3\xc9\xe3|1|2\n",
    b"GET / HTTP/1.1\r\n", b"x" * 150 + b"\n", b"\n",
])


def _groups(flows: list[list[tuple[int, bytes]]]) -> tuple[bulkflows.Groups, np.ndarray,
                                                             np.ndarray, np.ndarray]:
    """Packets (direction, payload) of each flow, in capture order: their bytes gathered
    per (flow, direction) as the engine does, and the packets grouped by flow."""
    packets = [(f, d, b) for f, pk in enumerate(flows) for d, b in pk]
    order = sorted(range(len(packets)), key=lambda i: (packets[i][0], packets[i][1]))
    data = b"".join(packets[i][2] for i in order)
    ends = np.cumsum([len(packets[i][2]) for i in order]).astype(np.int64)
    key = np.array([packets[i][0] * 2 + packets[i][1] for i in order], np.int64)
    cut = np.flatnonzero(np.diff(key)) + 1
    first = np.concatenate([[0], cut]).astype(np.int64)
    stop = np.concatenate([cut, [len(order)]]).astype(np.int64)
    groups = bulkflows.Groups(np.frombuffer(data + b"\0", np.uint8).copy(),
                              np.asarray(order, np.int64), ends, key[first] >> 1,
                              key[first] & 1, first, stop)
    column = [np.array([p[k] if k < 2 else len(p[2]) for p in packets], np.int64)
              for k in range(3)]
    return groups, column[0], column[1], column[2]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.lists(st.tuples(st.integers(0, 1),
                                             st.lists(_OPENERS, min_size=1, max_size=3)),
                                   min_size=1, max_size=5), st.booleans()),
                min_size=1, max_size=6))
def test_detect_equals_deciding_on_every_row(flows):
    """``detect`` (the server's first row decoded only where the client's samples
    leave the verdict hanging on it) gives the verdicts ``decide`` gives from every
    decoded row, open flows and closing ones."""
    packets = [[(d, b"".join(lines)) for d, lines in pk] for pk, _ in flows]
    closing = np.array([ends for _, ends in flows], bool)
    groups, p_flow, p_dir, p_len = _groups(packets)
    ids = np.arange(len(flows), dtype=np.int64)
    got = bulkflows.detect(groups, ids, closing, p_flow, p_dir, p_len, None)
    n = len(p_flow)
    want = bulkflows.decide(groups, ids, p_flow, p_dir, p_len, None, np.arange(n),
                            np.arange(n), closing=closing).verdict
    assert got.tolist() == [want[f] for f in ids.tolist()]

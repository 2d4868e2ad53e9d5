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


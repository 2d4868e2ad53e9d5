"""The column-built tails of ``line`` streams equal what the incremental decoder reports.

A stream that ends without a newline (a connection cut mid-message) gives one
error row at its close; ``bulkflows._line_tails`` builds those rows for many
streams at once and must match the decoder row for row, including tails longer
than the dialect's frame limit.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from camprotool.capture.fast import bulkflows
from camprotool.protocol.dialect import Dialect


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=80), st.integers(0, 80)), max_size=6),
       st.sampled_from(["line", "line:gbk"]), st.sampled_from([16, 40, 1 << 20]))
def test_line_tails_equal_the_decoder(streams, name, max_frame):
    dialect = dataclasses.replace(Dialect.parse(name), max_frame=max_frame)
    chunks, g_start, used, g_len, at = [], [], [], [], 0
    for body, cut in streams:
        body = body.replace(b"\n", b"x")  # a tail is what follows the last newline
        g_start.append(at)
        used.append(min(cut, len(body)))
        g_len.append(len(body))
        chunks.append(body)
        at += len(body)
    data = np.frombuffer(b"".join(chunks) or b"\0", np.uint8)
    arrays = [np.asarray(a, np.int64) for a in (g_start, used, g_len)]
    got, owner = bulkflows._line_tails(data, arrays[0], arrays[1], arrays[2], dialect)
    want, want_owner = bulkflows.decoder_tails(data, *arrays, dialect)
    assert got.equals(want)
    assert owner.tolist() == want_owner.tolist()

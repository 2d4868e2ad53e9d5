"""The compiled kernels agree with the Python code they stand in for."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from camprotool.capture.fast import bulkflows
from camprotool.capture.fast import kernels as K
from camprotool.protocol.detect import _MAX_HITS, DETECT_AT, LONG_SAMPLE, detect_framing
from camprotool.protocol.dialect import DEFAULT_MAX_FRAME

_PIECES = [b"SocketCommand.", b"SocketCommand \t.", b"SocketCommand", b"Login", b"LoginOk",
           b"Heartbeat", b"UploadCaramer", b"|", b"\n", b"\r\n", b"\r", b"x", b" ",
           b"\x00\x00\x00\x05", b"\x05\x00\x00\x00", b"\x10\x00\x00\x00", b"\x00\x00\x00\x10",
           b"NormalCommand.", b"\xc4\xe3",
           # names sharing a first byte (and prefixes of them): tried in the regex's order
           b"Upload", b"UploadFail", b"UploadSucess", b"LoginError", b"Login|", b"Check",
           b"CreatDataSocket", b"ReturnDataSocketPort"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=60),
       st.sampled_from([DEFAULT_MAX_FRAME, 5, 16, 40]), st.binary(max_size=3))
def test_detect_framing_equals_the_regex_detector(pieces, limit, pad):
    sample = b"".join(pieces)
    buf = np.frombuffer(pad + sample + b"zz", np.uint8)
    got = K.detect_framing(buf, len(pad), len(pad) + len(sample), bulkflows._NAME_TABLE,
                           bulkflows._NAME_LEN, bulkflows._PREFIX, limit, _MAX_HITS)
    assert {0: None, 1: "line", 2: "lp32le", 3: "lp32be"}[got] == detect_framing(sample, limit)


@given(st.lists(st.tuples(st.integers(-1, 3), st.integers(0, 1), st.integers(0, 300)),
                max_size=40))
def test_first_attempt_packets_stop_at_each_flows_first_attempt(packets):
    """A flow's packets up to the one that takes either direction to the first
    threshold, in capture order; ``more`` marks the flows with packets after it.
    (Slot -1: a packet of a flow not being detected.)"""
    slot = np.array([p[0] for p in packets], np.int64)
    pdir = np.array([p[1] for p in packets], np.int64)
    plen = np.array([p[2] for p in packets], np.int64)
    sel = np.empty(len(packets), np.int64)
    more = np.zeros(4, np.bool_)
    k = K.first_attempt_packets(slot, pdir, plen, 4, int(DETECT_AT[0]), sel, more)
    want, want_more, sums = [], [False] * 4, {}
    for i, (f, d, size) in enumerate(packets):
        if f < 0:
            continue
        c, s = sums.get(f, (0, 0))
        if c < DETECT_AT[0] and s < DETECT_AT[0]:
            want.append(i)
        else:
            want_more[f] = True
        sums[f] = (c + size, s) if d == 0 else (c, s + size)
    assert sel[:k].tolist() == want
    assert more.tolist() == want_more


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1), st.integers(1, 400_000)),
                max_size=40))
def test_detection_attempts_are_the_sinks_threshold_crossings(packets):
    packets.sort(key=lambda p: p[0])  # grouped by flow, capture order kept
    flow = np.array([p[0] for p in packets], np.int64)
    pdir = np.array([p[1] for p in packets], np.int64)
    plen = np.array([p[2] for p in packets], np.int64)
    n = len(packets)
    out = [np.zeros(n, np.int64) for _ in range(3)]
    totals = np.zeros((4, 2), np.int64)
    k = K.detection_attempts(flow, pdir, plen, n, *out, totals)
    want, sums = [], {}
    for f, d, size in packets:  # MessageSink.on_data's rule
        c, s = sums.get(f, (0, 0))
        before = (c, s)[d]
        c, s = (c + size, s) if d == 0 else (c, s + size)
        sums[f] = (c, s)
        after = min(before + size, LONG_SAMPLE)
        if before < LONG_SAMPLE and any(before < t <= after for t in DETECT_AT):
            want.append((f, min(c, LONG_SAMPLE), min(s, LONG_SAMPLE)))
    got = list(zip(*(o[:k].tolist() for o in out), strict=True))
    assert got == want
    for f, (c, s) in sums.items():
        assert tuple(totals[f]) == (c, s)

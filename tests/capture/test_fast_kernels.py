"""The compiled kernels agree with the Python code they stand in for."""

from __future__ import annotations

import struct

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


def _record(kind: int, flow: int, seq: int, payload: bytes, big: bool) -> bytes:
    """One pcap record: an Ethernet IPv4 TCP packet of 4-tuple ``flow`` (either way round:
    odd flows are the reply), or (``kind``) an ARP frame, a UDP one, or a cut TCP one."""
    a, b = (f"10.0.0.{flow // 2 + 1}", 40000 + flow // 2), ("10.9.9.9", 7000)
    (sip, sp), (dip, dp) = (a, b) if flow % 2 == 0 else (b, a)
    tcp = struct.pack(">HHIIBBHHH", sp, dp, seq, 7, 5 << 4, 0x18, 512, 0, 0) + payload
    proto = 17 if kind == 2 else 6
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, proto, 0,
                     bytes(map(int, sip.split("."))), bytes(map(int, dip.split("."))))
    ether = b"\x00" * 12 + (b"\x08\x06" if kind == 1 else b"\x08\x00")
    frame = ether + ip + tcp
    orig = len(frame)
    if kind == 3:
        frame = frame[:50]
    head = struct.pack(">IIII" if big else "<IIII", seq // 2, seq % 1000, len(frame), orig)
    return head + frame


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 0, 0, 0, 1, 2, 3]), st.integers(0, 11),
                          st.integers(0, 2**32 - 1), st.binary(max_size=20)), max_size=60),
       st.booleans(), st.integers(1, 70), st.integers(0, 30))
def test_index_pcap_is_the_walk_the_parse_and_the_lookup(packets, big, limit, cut):
    """The one-pass walk and parse equal the record walk and ``parse_packets``; its
    lookups equal ``lookup_halves``: they stop where the (tiny) table must grow and go
    on after, and stop at the first packet left to Python, where ``lookup_halves``
    goes on."""
    body = b"".join(_record(k, f, s, p, big) for k, f, s, p in packets)
    buf = np.frombuffer(b"\x00" * 24 + body[:len(body) - cut], np.uint8)
    # the reference walk
    recs, off = [], 24
    while len(recs) < limit and off + 16 <= len(buf):
        sec, frac, clen, olen = struct.unpack(">IIII" if big else "<IIII", buf[off:off + 16])
        if off + 16 + clen > len(buf):
            break
        recs.append((off + 16, clen, olen, sec * 1_000_000_000 + frac * 1000))
        off += 16 + clen
    n = len(recs)
    rec_off = np.array([r[0] for r in recs], np.int64)
    cap_len = np.array([r[1] for r in recs], np.int64)
    status = np.empty(n, np.int8)
    cols_ref = [np.zeros(n, np.int64) for _ in range(10)]
    K.parse_packets(buf, np.ones(n, np.int64), rec_off, cap_len, n, status, *cols_ref)
    tcp = np.flatnonzero(status == K.PKT_TCP)
    ref_half = np.full(n, -1, np.int64)
    zero = np.zeros(n, np.uint64)
    flows, done = K.lookup_halves(np.full(1 << 10, -1, np.int64), np.zeros((1 << 9, 7), np.uint64),
                                  zero, zero, cols_ref[0].view(np.uint64), cols_ref[2], zero,
                                  cols_ref[1].view(np.uint64), cols_ref[3], tcp, 0, ref_half,
                                  0)
    assert done == len(tcp)
    # one pass, and lookups with a table that must grow after a flow, as FastEngine does
    cols = [np.empty(limit, np.int64) for _ in range(4)] + [np.empty(limit, np.int8)] + [
        np.empty(limit, np.int64) for _ in range(11)]
    table, keys = np.full(4, -1, np.int64), np.zeros((2, 7), np.uint64)

    def grow(table, keys, nflows):
        grown = np.zeros((keys.shape[0] * 2, 7), np.uint64)
        grown[: keys.shape[0]] = keys
        table = np.full(len(table) * 2, -1, np.int64)
        K.rehash(table, grown, nflows)
        return table, grown

    k, at, need = K.index_pcap(buf, 24, len(buf), big, 1000, limit, 1, *cols)
    looked, nflows, grows = 0, 0, 0
    while True:
        nflows, looked, full = K.ipv4_halves(cols[4], cols[5], cols[7], cols[6], cols[8],
                                             looked, k, cols[15], table, keys, nflows)
        if not full:
            break
        table, keys = grow(table, keys, nflows)
        grows += 1
    assert k == n and at == off
    assert need == (16 + struct.unpack(">I" if big else "<I", buf[off + 8:off + 12])[0]
                    if off + 16 <= len(buf) and len(recs) < limit else 16)
    assert cols[0][:n].tolist() == rec_off.tolist()
    assert cols[1][:n].tolist() == cap_len.tolist()
    assert cols[2][:n].tolist() == [r[2] for r in recs]
    assert cols[3][:n].tolist() == [r[3] for r in recs]
    assert cols[4][:n].tolist() == status.tolist()
    for mine, ref in zip(cols[5:15], cols_ref, strict=True):
        assert mine[:n].tolist() == ref.tolist()
    python = np.flatnonzero(status != K.PKT_TCP)
    assert looked == (python[0] if len(python) else n)
    assert grows == 0 or flows > 1
    half = cols[15][:n]
    assert half[:looked].tolist() == ref_half[:looked].tolist()
    assert (half[looked:] == -1).all()
    rest, at = tcp[tcp >= looked], 0
    while at < len(rest):  # the packets after the first left to Python, as _halves does
        nflows, at = K.lookup_halves(table, keys, zero, zero, cols_ref[0].view(np.uint64),
                                     cols_ref[2], zero, cols_ref[1].view(np.uint64),
                                     cols_ref[3], rest, at, half, nflows)
        if at < len(rest):
            table, keys = grow(table, keys, nflows)
    assert half.tolist() == ref_half.tolist() and nflows == flows


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.integers(1, 9), min_size=1, max_size=4), max_size=30),
       st.integers(0, 3))
def test_stamp_rows_is_a_search_for_each_rows_contribution(contributions, packets):
    """Each row gets the contribution that holds its end (the first whose end reaches
    it), as ``np.searchsorted`` finds it, and that contribution's packet's stamps."""
    c_end, ends = [], []
    at = 0
    for lines in contributions:  # a contribution: one packet's bytes, ending a line
        for size in lines:
            at += size
            ends.append(at)
        c_end.append(at)
    n, k = len(ends), len(c_end)
    c_end_a, ends_a = np.array(c_end, np.int64), np.array(ends, np.int64)
    c_pkt = (np.arange(k, dtype=np.int64) * 3 + packets) % max(k, 1)
    c_offset = c_end_a * 2 + 5
    npkt = max(k, 1)
    flow, direction = np.arange(npkt, dtype=np.int64) + 10, np.arange(npkt, dtype=np.int64) % 2
    ts, frames = np.arange(npkt, dtype=np.int64) * 7, np.arange(npkt, dtype=np.int64) + 1
    out = [np.empty(n, np.int64) for _ in range(4)]
    out_dir = np.empty(n, np.int8)
    K.stamp_rows(ends_a, c_end_a, c_pkt, c_offset, flow, direction, ts, frames, out[0],
                 out[1], out_dir, out[2], out[3])
    c = np.searchsorted(c_end_a, ends_a, side="left")
    pkt = c_pkt[c]
    assert out[0].tolist() == (c_offset[c] - (c_end_a[c] - ends_a)).tolist()
    assert out[1].tolist() == flow[pkt].tolist() and out_dir.tolist() == direction[pkt].tolist()
    assert out[2].tolist() == ts[pkt].tolist() and out[3].tolist() == frames[pkt].tolist()

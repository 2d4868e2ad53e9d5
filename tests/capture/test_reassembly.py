"""Tests for camprotool.capture.reassembly: exact event sequences, then properties."""

from __future__ import annotations

import itertools
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from camprotool.capture.packets import TcpSegment
from camprotool.capture.reassembly import ConnectionInfo, Reassembler

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MASK = 0xFFFFFFFF

C = (bytes([10, 0, 0, 1]), 40000)
S = (bytes([10, 0, 0, 2]), 5000)


def seg(
    frame: int,
    src: tuple[bytes, int],
    dst: tuple[bytes, int],
    seq: int,
    payload: bytes = b"",
    *,
    ack: int = 0,
    flags: int = ACK,
    missing: int = 0,
) -> TcpSegment:
    """A segment stamped ts_ns = frame * 1000, so timestamps follow frames."""
    return TcpSegment(
        frame,
        frame * 1000,
        src[0],
        src[1],
        dst[0],
        dst[1],
        seq & MASK,
        ack & MASK,
        flags,
        65535,
        memoryview(payload),
        missing,
    )


class Recorder:
    """A sink that keeps every call, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_open(self, conn: ConnectionInfo) -> None:
        self.events.append(("open", conn))

    def on_data(self, conn_id: int, direction: str, data: bytes, ts_ns: int, frame: int) -> None:
        assert type(data) is bytes
        self.events.append(("data", conn_id, direction, data, ts_ns, frame))

    def on_gap(self, conn_id: int, direction: str, nbytes: int, ts_ns: int, frame: int) -> None:
        assert nbytes > 0
        self.events.append(("gap", conn_id, direction, nbytes, ts_ns, frame))

    def on_close(self, conn_id: int, ts_ns: int, reason: str) -> None:
        self.events.append(("close", conn_id, ts_ns, reason))

    def stream(self, conn_id: int, direction: str) -> list[tuple[str, bytes | int, int]]:
        """(kind, data or gap size, frame) for one direction; also checks ts == frame*1000."""
        out = []
        for e in self.events:
            if e[0] in ("data", "gap") and e[1] == conn_id and e[2] == direction:
                assert e[4] == e[5] * 1000
                out.append((e[0], e[3], e[5]))
        return out

    def opened(self) -> list[ConnectionInfo]:
        return [e[1] for e in self.events if e[0] == "open"]

    def closed(self) -> list[tuple[int, int, str]]:
        return [e[1:] for e in self.events if e[0] == "close"]


def run(*segments: TcpSegment, finish: bool = True, **kw: Any) -> tuple[Recorder, Reassembler]:
    rec = Recorder()
    r = Reassembler(rec, **kw)
    for s in segments:
        r.add(s)
    if finish:
        r.finish()
    return rec, r


def handshake(ci: int, si: int, c: tuple = C, s: tuple = S, first: int = 1) -> list[TcpSegment]:
    """Frames first..first+2: SYN, SYN-ACK, ACK; data then starts at ci+1 and si+1."""
    return [
        seg(first, c, s, ci, flags=SYN),
        seg(first + 1, s, c, si, ack=ci + 1, flags=SYN | ACK),
        seg(first + 2, c, s, ci + 1, ack=si + 1),
    ]


CI, SI = 1000, 5000  # initial sequence numbers: client data starts at 1001, server at 5001


def test_in_order_both_directions_and_fin_close():
    rec, r = run(
        *handshake(CI, SI),
        seg(4, C, S, CI + 1, b"hello ", ack=SI + 1, flags=ACK | PSH),
        seg(5, C, S, CI + 7, b"world", ack=SI + 1),
        seg(6, S, C, SI + 1, b"ok", ack=CI + 12),
        seg(7, C, S, CI + 12, ack=SI + 3, flags=FIN | ACK),
        seg(8, S, C, SI + 3, ack=CI + 13, flags=FIN | ACK),
        seg(9, C, S, CI + 13, ack=SI + 4),
        finish=False,
    )
    assert rec.opened() == [ConnectionInfo(0, C[0], C[1], S[0], S[1], True, 1000, 1)]
    assert rec.stream(0, "c2s") == [("data", b"hello ", 4), ("data", b"world", 5)]
    assert rec.stream(0, "s2c") == [("data", b"ok", 6)]
    assert rec.closed() == [(0, 8000, "fin")]
    assert r.problems == []
    r.finish()
    assert rec.closed() == [(0, 8000, "fin")]  # nothing left to close


def test_out_of_order_is_delivered_with_the_stamp_of_the_hole_filler():
    rec, r = run(
        *handshake(CI, SI),
        seg(4, C, S, CI + 9, b"CCCC"),
        seg(5, C, S, CI + 5, b"BBBB"),
        seg(6, C, S, CI + 1, b"AAAA"),
        seg(7, C, S, CI + 13, b"DD"),
    )
    assert rec.stream(0, "c2s") == [("data", b"AAAABBBBCCCC", 6), ("data", b"DD", 7)]
    assert rec.closed() == [(0, 7000, "end_of_capture")]
    assert r.problems == []


def test_exact_retransmission_is_dropped():
    rec, r = run(
        *handshake(CI, SI),
        seg(4, C, S, CI + 1, b"AAAA"),
        seg(5, C, S, CI + 1, b"AAAA"),
        seg(6, C, S, CI + 9, b"CCCC"),
        seg(7, C, S, CI + 9, b"CCCC"),  # also a duplicate of a buffered segment
        seg(8, C, S, CI + 5, b"BBBB"),
    )
    assert rec.stream(0, "c2s") == [("data", b"AAAA", 4), ("data", b"BBBBCCCC", 8)]
    assert r.problems == []


def test_overlapping_retransmission_first_copy_wins():
    rec, r = run(
        *handshake(CI, SI),
        seg(4, C, S, CI + 1, b"abcdef"),
        seg(5, C, S, CI + 4, b"defghi"),  # overlaps delivered data, then 3 new bytes
        seg(6, C, S, CI + 14, b"nop"),  # buffered [13, 16)
        seg(7, C, S, CI + 13, b"mnopq"),  # covers it: only "m" and "q" are new
        seg(8, C, S, CI + 10, b"jkl"),
    )
    assert rec.stream(0, "c2s") == [
        ("data", b"abcdef", 4),
        ("data", b"ghi", 5),
        ("data", b"jklmnopq", 8),
    ]
    assert r.problems == []


def test_conflicting_overlap_keeps_first_copy_and_records_a_problem():
    rec, r = run(
        *handshake(CI, SI),
        seg(4, C, S, CI + 1, b"abcdef"),
        seg(5, C, S, CI + 4, b"dXfghi"),  # differs from delivered data
        seg(6, C, S, CI + 14, b"nop"),
        seg(7, C, S, CI + 13, b"mnYp"),  # differs from buffered data
        seg(8, C, S, CI + 10, b"jkl"),
    )
    assert rec.stream(0, "c2s") == [
        ("data", b"abcdef", 4),
        ("data", b"ghi", 5),
        ("data", b"jklmnop", 8),
    ]
    assert r.problems == [
        (5, 0, "conflicting_retransmission", "c2s: 3-byte overlap differs at offset 3"),
        (7, 0, "conflicting_retransmission", "c2s: 3-byte overlap differs at offset 13"),
    ]


def test_sequence_numbers_wrap_around():
    ci = 2**32 - 3  # first data byte at 2**32 - 2
    rec, r = run(
        *handshake(ci, SI),
        seg(4, C, S, ci + 7, b"ghi"),  # seq 4, after the wrap
        seg(5, C, S, ci + 1, b"abc"),  # seq 2**32 - 2 .. 0
        seg(6, C, S, ci + 4, b"def"),  # seq 1
        seg(7, C, S, ci + 10, b"jk"),
        seg(8, C, S, ci + 12, flags=FIN | ACK),
        seg(9, S, C, SI + 1, ack=ci + 13, flags=FIN | ACK),
    )
    assert rec.stream(0, "c2s") == [("data", b"abc", 5), ("data", b"defghi", 6), ("data", b"jk", 7)]
    assert rec.closed() == [(0, 9000, "fin")]
    assert r.problems == []


def test_port_reuse_after_close_opens_a_new_connection():
    first = [
        *handshake(CI, SI),
        seg(4, C, S, CI + 1, b"one"),
        seg(5, C, S, CI + 4, flags=FIN | ACK),
        seg(6, S, C, SI + 1, ack=CI + 5, flags=FIN | ACK),
        seg(7, C, S, CI + 5, ack=SI + 2),  # final ACK: after the close, ignored
    ]
    ci2, si2 = 7_000_000, 9_000_000
    rec, r = run(
        *first,
        *handshake(ci2, si2, first=8),
        seg(11, C, S, ci2 + 1, b"two"),
    )
    assert [i.conn_id for i in rec.opened()] == [0, 1]
    assert rec.opened()[1].first_frame == 8
    assert rec.stream(0, "c2s") == [("data", b"one", 4)]
    assert rec.stream(1, "c2s") == [("data", b"two", 11)]
    assert rec.closed() == [(0, 6000, "fin"), (1, 11000, "end_of_capture")]
    assert r.problems == []


def test_new_syn_with_another_isn_on_an_open_connection_replaces_it():
    rec, _ = run(
        *handshake(CI, SI),
        seg(4, C, S, CI + 1, b"one"),
        seg(5, C, S, CI + 9, b"lost-before"),  # a hole that nobody will fill
        *handshake(CI + 500_000, SI, first=6),  # e.g. the client rebooted
        seg(9, C, S, CI + 500_001, b"two"),
        seg(10, C, S, CI, flags=SYN),  # a late copy of the old SYN: yet another connection
    )
    assert rec.stream(0, "c2s") == [
        ("data", b"one", 4),
        ("gap", 5, 6),
        ("data", b"lost-before", 5),
    ]
    assert rec.stream(1, "c2s") == [("data", b"two", 9)]
    assert rec.closed() == [(0, 6000, "reused"), (1, 10000, "reused"), (2, 10000, "end_of_capture")]


def test_retransmitted_syn_does_not_open_a_connection():
    rec, _ = run(
        seg(1, C, S, CI, flags=SYN),
        seg(2, C, S, CI, flags=SYN),
        seg(3, S, C, SI, ack=CI + 1, flags=SYN | ACK),
        seg(4, C, S, CI + 1, b"x", ack=SI + 1),
    )
    assert len(rec.opened()) == 1
    assert rec.stream(0, "c2s") == [("data", b"x", 4)]


def test_mid_connection_start_without_syn():
    rec, r = run(
        seg(1, S, C, 777, b"first", ack=4242),  # the server speaks first in the capture
        seg(2, C, S, 4242, b"reply", ack=782),
        seg(3, S, C, 770, b"old-by7"),  # before the stream start: ignored
        seg(4, S, C, 782, b"more", ack=4247),
    )
    (info,) = rec.opened()
    assert (info.a_ip, info.a_port, info.b_ip, info.b_port, info.syn_seen) == (*S, *C, False)
    assert rec.stream(0, "c2s") == [("data", b"first", 1), ("data", b"more", 4)]
    assert rec.stream(0, "s2c") == [("data", b"reply", 2)]
    assert r.problems == []


def test_syn_ack_seen_first_still_makes_the_client_side_a():
    rec, _ = run(
        seg(1, S, C, SI, ack=CI + 1, flags=SYN | ACK),
        seg(2, C, S, CI + 1, b"req", ack=SI + 1),
    )
    (info,) = rec.opened()
    assert (info.a_ip, info.a_port, info.syn_seen) == (*C, True)
    assert rec.stream(0, "c2s") == [("data", b"req", 2)]


def test_lost_segment_is_declared_when_the_peer_acks_past_it():
    rec, r = run(
        *handshake(CI, SI),
        seg(4, C, S, CI + 1, b"AAAA"),
        # [CI+5, CI+9) never captured
        seg(5, C, S, CI + 9, b"CCCC"),
        seg(6, S, C, SI + 1, ack=CI + 5),  # the ACK stops at the hole: nothing happens
        seg(7, S, C, SI + 1, ack=CI + 13),  # the peer got the hole: it is lost in the capture
        seg(8, C, S, CI + 13, b"DD"),
        finish=False,
    )
    assert rec.stream(0, "c2s") == [
        ("data", b"AAAA", 4),
        ("gap", 4, 7),
        ("data", b"CCCC", 5),
        ("data", b"DD", 8),
    ]
    assert r.problems == []


def test_ack_inside_a_hole_declares_only_the_acked_part():
    rec, _ = run(
        *handshake(CI, SI),
        seg(4, C, S, CI + 1, b"AA"),
        seg(5, C, S, CI + 11, b"FF"),  # hole [2, 10)
        seg(6, S, C, SI + 1, ack=CI + 5),  # the peer has [2, 4): a 2-byte gap
        seg(7, C, S, CI + 5, b"CCCCCC"),  # retransmission fills the rest
        finish=False,
    )
    assert rec.stream(0, "c2s") == [
        ("data", b"AA", 4),
        ("gap", 2, 6),
        ("data", b"CCCCCCFF", 7),
    ]


def test_hole_before_fin_is_declared_when_the_peer_acks_the_fin():
    rec, r = run(
        *handshake(CI, SI),
        seg(4, C, S, CI + 1, b"AAAA"),
        seg(5, C, S, CI + 9, b"CCCC"),  # [4, 8) lost
        seg(6, C, S, CI + 13, ack=SI + 1, flags=FIN | ACK),
        seg(7, S, C, SI + 1, ack=CI + 14, flags=FIN | ACK),
        seg(8, C, S, CI + 14, ack=SI + 2),
        finish=False,
    )
    # the bytes after the hole keep the frame they arrived in
    assert rec.stream(0, "c2s") == [("data", b"AAAA", 4), ("gap", 4, 7), ("data", b"CCCC", 5)]
    assert rec.closed() == [(0, 7000, "fin")]
    assert r.problems == []


def test_retransmission_after_fin_still_fills_the_hole():
    rec, _ = run(
        *handshake(CI, SI),
        seg(4, C, S, CI + 1, b"AAAA"),
        seg(5, C, S, CI + 9, b"CCCC", flags=FIN | ACK),
        seg(6, S, C, SI + 1, ack=CI + 5, flags=FIN | ACK),  # peer lacks [4, 8) too: wire loss
        seg(7, C, S, CI + 5, b"BBBB", ack=SI + 2),
        finish=False,
    )
    assert rec.stream(0, "c2s") == [("data", b"AAAA", 4), ("data", b"BBBBCCCC", 7)]
    assert rec.closed() == [(0, 7000, "fin")]


def test_hole_before_fin_without_any_ack_waits_for_finish():
    rec, r = run(
        seg(1, C, S, 100, b"AAAA", flags=PSH),
        seg(2, C, S, 108, b"CCCC", flags=FIN),  # one-sided capture: nobody ACKs
        finish=False,
    )
    assert rec.stream(0, "c2s") == [("data", b"AAAA", 1)]  # a retransmission may still come
    r.finish()
    assert rec.stream(0, "c2s") == [("data", b"AAAA", 1), ("gap", 4, 2), ("data", b"CCCC", 2)]
    assert rec.closed() == [(0, 2000, "end_of_capture")]


def test_finish_uses_the_given_timestamp():
    rec = Recorder()
    r = Reassembler(rec)
    r.add(seg(1, C, S, 100, b"AAAA"))
    r.add(seg(2, C, S, 108, b"CCCC"))
    r.finish(ts_ns=99_000)
    assert rec.events[-3:] == [
        ("gap", 0, "c2s", 4, 99_000, 2),
        ("data", 0, "c2s", b"CCCC", 2000, 2),
        ("close", 0, 99_000, "end_of_capture"),
    ]


def test_snaplen_cut_payload_becomes_a_gap_after_the_captured_bytes():
    rec, r = run(
        *handshake(CI, SI),
        seg(4, C, S, CI + 1, b"head", missing=6),  # 10 bytes sent, 4 captured
        seg(5, C, S, CI + 21, b"ZZ"),  # out of order
        seg(6, C, S, CI + 11, b"tail", missing=6),
        seg(7, C, S, CI + 23, b"end"),
    )
    assert rec.stream(0, "c2s") == [
        ("data", b"head", 4),
        ("gap", 6, 4),
        ("data", b"tail", 6),
        ("gap", 6, 6),
        ("data", b"ZZ", 5),
        ("data", b"end", 7),
    ]
    assert r.problems == []


def test_rst_with_a_hole_flushes_buffered_data_and_closes():
    rec, r = run(
        *handshake(CI, SI),
        seg(4, C, S, CI + 1, b"AAAA"),
        seg(5, C, S, CI + 9, b"CCCC"),
        seg(6, C, S, CI + 15, b"EE"),
        seg(7, S, C, SI + 1, ack=CI + 5, flags=RST | ACK),
        seg(8, C, S, CI + 17, b"late"),  # after the close: ignored, recorded
    )
    assert rec.stream(0, "c2s") == [
        ("data", b"AAAA", 4),
        ("gap", 4, 7),
        ("data", b"CCCC", 5),
        ("gap", 2, 7),
        ("data", b"EE", 6),
    ]
    assert rec.closed() == [(0, 7000, "rst")]
    assert r.problems == [(8, 0, "segment_after_close", "c2s: 4 bytes")]


def test_ipv6_four_tuples_are_separate_connections():
    a = (bytes.fromhex("20010db8000000000000000000000001"), 50000)
    b = (bytes.fromhex("20010db8000000000000000000000002"), 5000)
    a2 = (a[0], 50001)
    rec, r = run(
        *handshake(1, 2, a, b, first=1),
        *handshake(10, 20, a2, b, first=4),
        seg(7, b, a, 3, b"to-a", ack=2),
        seg(8, a2, b, 11, b"from-a2", ack=21),
        seg(9, a, b, 2, b"from-a", ack=7),
    )
    infos = rec.opened()
    assert [(i.conn_id, i.a_ip, i.a_port, i.b_ip, i.b_port) for i in infos] == [
        (0, *a, *b),
        (1, *a2, *b),
    ]
    assert rec.stream(0, "c2s") == [("data", b"from-a", 9)]
    assert rec.stream(0, "s2c") == [("data", b"to-a", 7)]
    assert rec.stream(1, "c2s") == [("data", b"from-a2", 8)]
    assert r.problems == []


def test_keepalive_and_zero_window_probe_are_harmless():
    rec, r = run(
        *handshake(CI, SI),
        seg(4, C, S, CI + 1, b"abcd"),
        seg(5, C, S, CI + 4, b"\x00"),  # keep-alive: seq-1, garbage byte
        seg(6, C, S, CI + 5),  # keep-alive without data
        seg(7, C, S, CI + 5, b"e"),  # zero-window probe: the next byte, sent alone
        seg(8, C, S, CI + 5, b"efgh"),  # then the segment the probe came from
    )
    assert rec.stream(0, "c2s") == [("data", b"abcd", 4), ("data", b"e", 7), ("data", b"fgh", 8)]
    assert r.problems == []


def test_buffer_limit_declares_the_earliest_hole():
    rec, r = run(
        *handshake(CI, SI),
        seg(4, C, S, CI + 1, b"AA"),
        seg(5, C, S, CI + 5, b"CCCC"),  # hole [2, 4)
        seg(6, C, S, CI + 11, b"EEEE"),  # hole [8, 10); 8 bytes buffered
        seg(7, C, S, CI + 15, b"F"),  # 9 > max_buffered
        seg(8, C, S, CI + 9, b"DD"),
        max_buffered=8,
    )
    assert rec.stream(0, "c2s") == [
        ("data", b"AA", 4),
        ("gap", 2, 7),
        ("data", b"CCCC", 5),
        ("data", b"DDEEEEF", 8),
    ]
    assert r.problems == [(7, 0, "buffer_limit", "c2s: 9 bytes buffered")]


def test_data_after_fin_is_recorded_not_delivered():
    rec, r = run(
        *handshake(CI, SI),
        seg(4, C, S, CI + 1, b"ab", flags=FIN | ACK),
        seg(5, C, S, CI + 1, b"ab", flags=FIN | ACK),  # retransmitted with its FIN: fine
        seg(6, C, S, CI + 4, b"zz"),
    )
    assert rec.stream(0, "c2s") == [("data", b"ab", 4)]
    assert r.problems == [(6, 0, "data_after_fin", "c2s: 2 bytes")]


# -- properties --------------------------------------------------------------------------

ISNS = st.one_of(st.integers(0, MASK), st.integers(MASK - 3000, MASK))


@st.composite
def cut(draw: st.DrawFn, max_size: int = 2000) -> tuple[bytes, list[tuple[int, bytes]]]:
    """Random data and its cut into segments (offset, bytes), some of them overlapping."""
    data = draw(st.binary(min_size=1, max_size=max_size))
    n = len(data)
    points = sorted(set(draw(st.lists(st.integers(1, n - 1), max_size=40)) if n > 1 else []))
    bounds = [0, *points, n]
    segs = [(a, data[a:b]) for a, b in itertools.pairwise(bounds)]
    for _ in range(draw(st.integers(0, 5))):  # retransmissions spanning several segments
        a = draw(st.integers(0, n - 1))
        b = draw(st.integers(a + 1, n))
        segs.append((a, data[a:b]))
    return data, segs


def layout(rec: Recorder) -> list[int | None]:
    """The c2s stream as byte values, None for each gap byte."""
    out: list[int | None] = []
    for kind, value, _ in rec.stream(0, "c2s"):
        out.extend(value if kind == "data" else [None] * value)  # type: ignore[arg-type]
    return out


def feed(ci: int, n: int, order: list[tuple[int, bytes]], acks: list[int] | None = None):
    """Handshake, the shuffled client segments, then FIN and the peer's FIN|ACK of it.

    `acks[i]`, when given and not None, inserts a peer ACK of that many bytes after segment i.
    """
    segs = list(handshake(ci, SI))
    f = 4
    for i, (off, chunk) in enumerate(order):
        segs.append(seg(f, C, S, ci + 1 + off, chunk, ack=SI + 1))
        f += 1
        if acks and acks[i] is not None:
            segs.append(seg(f, S, C, SI + 1, ack=ci + 1 + acks[i]))
            f += 1
    segs.append(seg(f, C, S, ci + 1 + n, ack=SI + 1, flags=FIN | ACK))
    segs.append(seg(f + 1, S, C, SI + 1, ack=ci + 2 + n, flags=FIN | ACK))
    return run(*segs, finish=False)


@settings(max_examples=300, deadline=None)
@given(cut(), ISNS, st.randoms(use_true_random=False))
def test_shuffled_duplicated_segments_give_back_the_data(
    case: tuple[bytes, list[tuple[int, bytes]]], ci: int, rnd: random.Random
) -> None:
    data, segs = case
    order = segs + [rnd.choice(segs) for _ in range(rnd.randint(0, 5))]
    rnd.shuffle(order)
    rec, r = feed(ci, len(data), order)
    assert b"".join(v for k, v, _ in rec.stream(0, "c2s")) == data  # type: ignore[misc]
    assert all(k == "data" for k, _, _ in rec.stream(0, "c2s"))
    assert rec.closed() == [(0, rec.events[-1][2], "fin")]
    assert r.problems == []


@settings(max_examples=300, deadline=None)
@given(cut(), ISNS, st.randoms(use_true_random=False), st.booleans())
def test_dropped_segments_become_gaps_at_the_right_offsets(
    case: tuple[bytes, list[tuple[int, bytes]]], ci: int, rnd: random.Random, with_acks: bool
) -> None:
    data, segs = case
    kept = [s for s in segs if rnd.random() < 0.7]
    order = kept + [rnd.choice(kept) for _ in range(rnd.randint(0, 3))] if kept else []
    rnd.shuffle(order)
    acks = None
    if with_acks:  # the peer got everything: it may ACK any prefix at any time
        acks = [rnd.choice([None, rnd.randint(0, len(data))]) for _ in order]
    rec, r = feed(ci, len(data), order, acks)
    got = layout(rec)
    assert len(got) == len(data)
    assert all(b is None or b == data[i] for i, b in enumerate(got))
    if not with_acks:  # holes only close at the end: every captured byte is delivered
        for off, chunk in kept:
            assert None not in got[off : off + len(chunk)]
    assert rec.closed()[0][2] == "fin"
    assert not [p for p in r.problems if p[2] != "conflicting_retransmission"]
    assert not r.problems

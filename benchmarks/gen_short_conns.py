#!/usr/bin/env python3
"""Generate a classic pcap of many short TCP connections, each carrying half a message.

Standard library only, in the style of ../shared/bench/gen_big.py. Every
connection is a client that opens a main connection (server port 8700), writes
the first part of a `line`-dialect Login (``SocketCommand.LoginCommand.Login|
user..|`` and a few bytes of the password, no line end) and goes away:

* three-way handshake (SYN with MSS option, SYN/ACK, ACK);
* one PSH/ACK data segment from the client without the newline;
* the server's pure ACK of it (after a delayed-ACK wait);
* the client closes some seconds later: FIN/ACK, the server's FIN/ACK, the last ACK.

Eight packets per connection, Ethernet / IPv4 / TCP with real sequence and
acknowledgement numbers and IP and TCP checksums. Connections start spread over
``--span`` seconds (default: one every 0.5 ms) and each stays open 1-30 s, so
tens of thousands are open at the same time: a decoder that keeps per-connection
state shows it here. No message is complete, so a decoder's message table is empty.

Writes FILE (pcap, linktype 1, microsecond timestamps) and FILE.json (counts).

    python3 benchmarks/gen_short_conns.py --conns 200000 --out short.pcap
"""

import argparse
import json
import random
import struct
import sys

MSS = 1460
SERVER_IP = bytes([10, 0, 0, 1])
SERVER_MAC = bytes.fromhex("020000000001")
MAIN_PORT = 8700
LOGIN = b"SocketCommand.LoginCommand.Login|"
ALNUM = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
T0_US = 1_714_550_400_000_000  # 2024-05-01, as gen_big.py
DELACK_US = 40_000


def csum(data):
    if len(data) & 1:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


class Conn:
    """One TCP connection; frames with consistent seq/ack numbers, collected in pkts."""

    def __init__(self, pkts, rng, cip, cmac, cport, t_us):
        self.pkts, self.cip, self.cmac, self.cport = pkts, cip, cmac, cport
        self.t = t_us
        self.nxt = {True: rng.getrandbits(32), False: rng.getrandbits(32)}  # by from_client
        self.ipid = {True: rng.getrandbits(16), False: rng.getrandbits(16)}

    def frame(self, from_client, flags, payload=b"", opts=b""):
        if from_client:
            smac, dmac, sip, dip, sp, dp = (
                self.cmac,
                SERVER_MAC,
                self.cip,
                SERVER_IP,
                self.cport,
                MAIN_PORT,
            )
        else:
            smac, dmac, sip, dip, sp, dp = (
                SERVER_MAC,
                self.cmac,
                SERVER_IP,
                self.cip,
                MAIN_PORT,
                self.cport,
            )
        seq = self.nxt[from_client] & 0xFFFFFFFF
        ack = (self.nxt[not from_client] & 0xFFFFFFFF) if flags & 0x10 else 0
        thl = 20 + len(opts)
        win = 64240 if from_client else 65160
        tcp = struct.pack("!HHIIBBHHH", sp, dp, seq, ack, (thl // 4) << 4, flags, win, 0, 0) + opts
        seglen = thl + len(payload)
        pseudo = sip + dip + struct.pack("!BBH", 0, 6, seglen)
        tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp + payload)) + tcp[18:]
        self.ipid[from_client] = (self.ipid[from_client] + 1) & 0xFFFF
        ip = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + seglen,
            self.ipid[from_client],
            0x4000,
            64,
            6,
            0,
            sip,
            dip,
        )
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        self.nxt[from_client] += len(payload) + (1 if flags & 0x03 else 0)  # SYN/FIN consume one
        self.pkts.append((self.t, len(self.pkts), dmac + smac + b"\x08\x00" + ip + tcp + payload))

    def step(self, us):
        self.t += max(1, int(us))


def run_conn(pkts, rng, i, t0_us, life_us):
    """Handshake, half a Login line, the server's ACK, a client-initiated close."""
    n = i % 60000
    cip = bytes([10, 1 + i // 60000, n // 250, n % 250 + 1])
    cmac = bytes([0x02, 0x00, 0x00, 0x01, i >> 8 & 0xFF, i & 0xFF])
    rtt = rng.uniform(10_000, 80_000)
    c = Conn(pkts, rng, cip, cmac, rng.randrange(32768, 61000), t0_us)
    mss = struct.pack("!BBH", 2, 4, MSS)
    c.frame(True, 0x02, opts=mss)  # SYN
    c.step(rtt / 2)
    c.frame(False, 0x12, opts=mss)  # SYN/ACK
    c.step(rtt / 2)
    c.frame(True, 0x10)  # ACK
    c.step(rng.uniform(100, 1_000))
    pw = "".join(rng.choice(ALNUM) for _ in range(10))
    line = LOGIN + f"user{i:06d}|{pw}".encode()
    half = line[: len(LOGIN) + rng.randrange(1, len(line) - len(LOGIN))]
    c.frame(True, 0x18, half)  # no "\r\n": the rest never comes
    c.step(rtt / 2 + DELACK_US)
    c.frame(False, 0x10)  # the server acknowledges and waits for the rest of the line
    c.step(life_us)
    c.frame(True, 0x11)  # FIN/ACK
    c.step(rtt / 2)
    c.frame(False, 0x11)  # FIN/ACK
    c.step(rtt / 2)
    c.frame(True, 0x10)  # last ACK
    return len(half)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conns", type=int, default=200_000)
    ap.add_argument(
        "--span",
        type=float,
        default=None,
        help="seconds over which connections start (default: conns / 2000)",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    span_us = int((a.span if a.span is not None else a.conns / 2000) * 1e6)
    pkts = []  # (ts_us, order, frame)
    payload = 0
    for i in range(a.conns):
        payload += run_conn(
            pkts, rng, i, T0_US + rng.randrange(max(span_us, 1)), rng.uniform(1e6, 30e6)
        )
    pkts.sort(key=lambda p: (p[0], p[1]))
    with open(a.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        out = []
        for ts, _order, frame in pkts:
            out.append(
                struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(frame), len(frame))
            )
            out.append(frame)
        f.write(b"".join(out))
        size = f.tell()
    stats = {
        "file": a.out,
        "bytes": size,
        "packets": len(pkts),
        "messages": 0,
        "connections": a.conns,
        "data_segments": a.conns,
        "tcp_payload_bytes": payload,
    }
    with open(a.out + ".json", "w") as f:
        json.dump(stats, f, indent=1)
    json.dump(stats, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()

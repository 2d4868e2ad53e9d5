"""Shared helpers for the capture tests: scripted protocol conversations and result rows.

Imported as ``from conversations import ...`` (pytest puts this directory on sys.path).
"""

from __future__ import annotations

import pandas as pd

from camprotool import read_capture
from camprotool.analysis.capture import Capture
from camprotool.capture.writer import PcapngWriter, PcapWriter, TcpConversation
from camprotool.protocol.codec import encode

T0 = 1_700_000_000_000_000_000
CLIENT = ("10.0.0.1", 50000)
SERVER = ("10.0.0.2", 9000)
DIALECTS = ("line", "line:gbk", "lp32le", "lp32le:gbk", "lp32be", "lp32be:gbk")
WRITERS = {"pcapng": PcapngWriter, "pcap": PcapWriter}

LOGIN_OK = "3|2024-01-01 10:00:00|10.0.0.1"


def frame(command: str, params: str = "", dialect: str = "line") -> bytes:
    """One encoded frame (full command name on the wire)."""
    return encode(command, params, dialect)


def rows(cap: Capture | pd.DataFrame, *, t0: int = T0) -> list[tuple]:
    """(command, direction, params, error or None, ts - t0 in ns) per message, in order."""
    m = cap if isinstance(cap, pd.DataFrame) else cap.messages
    return [
        (str(c), str(d), p, None if pd.isna(e) else e, ts.value - t0)
        for c, d, p, e, ts in zip(m["command"], m["direction"], m["params"], m["error"],
                                  m["ts"], strict=True)
    ]


def read(data: bytes, **kwargs) -> Capture:
    return read_capture(data, **kwargs)


def main_session(
    w: PcapngWriter | PcapWriter,
    t: int,
    *,
    client: tuple[str, int] = CLIENT,
    server: tuple[str, int] = SERVER,
    dialect: str = "line",
    data_port: int | None = 9001,
    user: str = "demo",
    password: str = "demo",
) -> TcpConversation:
    """Handshake, Login, LoginOk, CreatDataSocket, ReturnDataSocketPort (left open).

    Packets at t + 100, 200, 300, 400 (after the handshake at t).
    """
    c = w.tcp(client, server, t)
    c.send("c2s", frame("Login", f"{user}|{password}", dialect), t + 100)
    c.send("s2c", frame("LoginOk", LOGIN_OK, dialect), t + 200)
    c.send("c2s", frame("CreatDataSocket", f"{user}|{password}", dialect), t + 300)
    port = "" if data_port is None else str(data_port)
    c.send("s2c", frame("ReturnDataSocketPort", port, dialect), t + 400)
    return c


def upload(
    w: PcapngWriter | PcapWriter,
    t: int,
    *,
    client: tuple[str, int] = ("10.0.0.1", 50001),
    server: tuple[str, int] = ("10.0.0.2", 9001),
    dialect: str = "line",
    cameras: int = 2,
    close: bool = True,
) -> TcpConversation:
    """A data connection uploading ``cameras`` cameras; packets from t + 100 on, 100 ns apart."""
    c = w.tcp(client, server, t)
    ts = t
    for i in range(1, cameras + 1):
        ts += 100
        c.send("c2s", frame("UploadCaramer", f"CAM{i:05d}|pw{i}|{i}|{cameras}", dialect), ts)
        ts += 100
        c.send("s2c", frame("UploadSucess", f"CAM{i:05d}|true|{i}|{cameras}", dialect), ts)
    if close:
        c.close(ts + 100)
    return c

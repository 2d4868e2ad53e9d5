"""``Capture``: the dataframes of one decoded capture, and ``read_capture``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from functools import cached_property

import pandas as pd

from camprotool.analysis.frames import connections_frame, messages_frame, problems_frame
from camprotool.capture.decode import DecodedCapture, decode_file
from camprotool.protocol.dialect import Dialect


class Capture:
    """The tables of one capture. Each is built once, on first use.

    ``messages``: one row per decoded protocol message, ordered by time.
    ``connections``: one row per protocol TCP connection, indexed by ``conn``.
    ``problems``: what the reader and the reassembler could not use, and why.
    """

    def __init__(self, decoded: DecodedCapture, *, reveal_passwords: bool = False) -> None:
        self.decoded = decoded
        self.reveal_passwords = reveal_passwords

    @property
    def source(self) -> str:
        return self.decoded.source

    @cached_property
    def messages(self) -> pd.DataFrame:
        return messages_frame(self.decoded.messages, self.decoded.connections,
                              reveal_passwords=self.reveal_passwords)

    @cached_property
    def connections(self) -> pd.DataFrame:
        return connections_frame(self.decoded.connections)

    @cached_property
    def problems(self) -> pd.DataFrame:
        return problems_frame(self.decoded.problems)

    def __repr__(self) -> str:
        d = self.decoded
        return (f"<Capture {d.source!r}: {d.packets} packets, {len(d.connections)} connections, "
                f"{d.messages.num_rows} messages>")


def read_capture(
    path: str | os.PathLike[str] | bytes,
    dialect: Dialect | str = "auto",
    ports: Iterable[int] | int | None = None,
    reveal_passwords: bool = False,
    *,
    engine: str = "bulk",
    progress: Callable[[int], None] | None = None,
) -> Capture:
    """Decode a pcap or pcapng capture into dataframes.

    ``dialect``: ``"auto"`` (found per connection by content, on any port) or
    a dialect such as ``"lp32le:gbk"``. ``ports``: only connections with an
    end on one of these ports. Passwords are masked as ``***`` unless
    ``reveal_passwords``. ``engine="incremental"`` decodes chunk by chunk as a
    live capture does (same result, slower).
    """
    decoded = decode_file(path, dialect=dialect, ports=ports, engine=engine, progress=progress)
    return Capture(decoded, reveal_passwords=reveal_passwords)

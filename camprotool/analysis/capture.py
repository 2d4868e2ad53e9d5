"""``Capture``: the dataframes of one decoded capture, and ``read_capture``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cached_property
from typing import TYPE_CHECKING

import pandas as pd

from camprotool.analysis import tables
from camprotool.analysis.frames import connections_frame, messages_frame
from camprotool.analysis.masking import ParamsMasker, encode_commands
from camprotool.analysis.problems import build_problems
from camprotool.analysis.violations import RuleCheck
from camprotool.capture.captureset import CaptureSource
from camprotool.capture.decode import DecodedCapture, decode_file, gc_paused
from camprotool.protocol.dialect import Dialect
from camprotool.protocol.rules import DEFAULT_HEARTBEAT_TIMEOUT_NS

if TYPE_CHECKING:
    from camprotool.analysis.hexview import PacketList


class Capture:
    """The tables of one capture. Each is built once, on first use.

    ``messages``: one row per decoded protocol message, ordered by time.
    ``connections``: one row per protocol TCP connection, indexed by ``conn``.
    ``problems``: what the reader and the reassembler could not use, and why.
    """

    def __init__(self, decoded: DecodedCapture, *, reveal_passwords: bool = False,
                 heartbeat_timeout: float | None = DEFAULT_HEARTBEAT_TIMEOUT_NS / 1e9) -> None:
        _check_timeout(heartbeat_timeout)
        self.decoded = decoded
        self.reveal_passwords = reveal_passwords
        self.heartbeat_timeout = heartbeat_timeout

    @property
    def source(self) -> str:
        return self.decoded.source

    @cached_property
    def messages(self) -> pd.DataFrame:
        d = self.decoded
        with gc_paused():  # a full collection midway (tens of ms) finds no cycles here
            d.put_in_order()  # the frame then shares the decoder's columns
            if self.reveal_passwords:
                # another Capture of these rows may have masked them: ``messages`` has all
                table = d.rows if d.hidden is None else d.messages
                return messages_frame(table, d.connections, reveal_passwords=True,
                                      numbers=d.numbers)
            commands = encode_commands(d.rows["command"])  # codes already: no text read
            d.mask_params(ParamsMasker(d.rows, commands))
            return messages_frame(d.rows, d.connections, numbers=d.numbers,
                                  params_masked=True, commands=commands)

    @cached_property
    def connections(self) -> pd.DataFrame:
        return connections_frame(self.decoded.connections)

    @cached_property
    def problems(self) -> pd.DataFrame:
        """One row per loss or oddity, by frame: what the reader, the reassembler and
        detection recorded, plus lost bytes, mid-stream starts and connections whose
        every frame failed to decode (``camprotool.analysis.problems``)."""
        return build_problems(self.decoded.problems, self.connections, self.messages)

    # -- analysis tables (camprotool.analysis.tables / .violations; docs/analysis.md)
    @cached_property
    def _prep(self) -> tables.Prep:
        # the decoder's rows for their list columns (in order once messages is made)
        return tables.Prep(self.messages, self.connections, self.decoded.rows)

    @cached_property
    def _session_index(self) -> tables.SessionIndex:
        return tables.build_sessions(self._prep)

    @cached_property
    def sessions(self) -> pd.DataFrame:
        """One row per login attempt on a main connection (and per login not captured)."""
        return self._session_index.frame

    @cached_property
    def sync(self) -> pd.DataFrame:
        """One row per upload/download step: a request and its answer."""
        return tables.build_sync(self._prep, self._session_index)

    @cached_property
    def transfers(self) -> pd.DataFrame:
        """One row per data connection: what it transferred and how it ended."""
        return tables.build_transfers(self._prep, self._session_index, self.sync)

    @cached_property
    def status(self) -> pd.DataFrame:
        """One row per observation of a camera's online status, with its transitions."""
        return tables.build_status(self._prep, self._session_index)

    @cached_property
    def alarms(self) -> pd.DataFrame:
        """One row per alarm push, with the camera's last known status."""
        return tables.build_alarms(self._prep, self._session_index, self.status)

    @cached_property
    def _rule_check(self) -> RuleCheck:
        timeout = self.heartbeat_timeout
        return RuleCheck(self.decoded.messages, self.messages, self.connections,
                         reveal_passwords=self.reveal_passwords,
                         first_gap_s2c=self.decoded.connections.first_gaps_s2c(),
                         heartbeat_timeout_ns=None if timeout is None else int(timeout * 1e9))

    @cached_property
    def violations(self) -> pd.DataFrame:
        """One row per PROTOCOL.md section 5 breach, found by the protocol core's machines."""
        return self._rule_check.violations()

    @cached_property
    def notes(self) -> pd.DataFrame:
        """What the session machines found odd that no section-5 rule covers."""
        return self._rule_check.notes()

    #: what read_capture was given (a path, paths, a glob or bytes): the packets' source
    origin: object = None

    def packets(self, what: object, *, source: object = None) -> PacketList:
        """The packets of a frame number (or a list), a row of ``messages`` or several
        rows: TCP flags, numbers, analysis and a hex view (``analysis.drilldown``)."""
        from camprotool.analysis.drilldown import packets

        return packets(self, what, source=source)

    def follow(self, conn: int, *, source: object = None) -> PacketList:
        """Every packet of connection ``conn``, as Wireshark's Follow TCP Stream."""
        from camprotool.analysis.drilldown import follow

        return follow(self, conn, source=source)

    def summary(self) -> dict[str, object]:
        """Headline numbers: messages, logins by outcome, transfers by status, violations..."""
        return tables.summary(self)

    def __repr__(self) -> str:
        d = self.decoded
        return (f"<Capture {d.source!r}: {d.packets} packets, {len(d.connections)} connections, "
                f"{d.rows.num_rows} messages>")


def _check_timeout(seconds: float | None) -> None:
    if seconds is not None and not (isinstance(seconds, int | float) and seconds > 0):
        raise ValueError(f"heartbeat_timeout: {seconds!r} is not a positive number of seconds "
                         "(None turns the heartbeat_gap rule off)")


def read_capture(
    path: CaptureSource,
    dialect: Dialect | str = "auto",
    ports: Iterable[int] | int | None = None,
    reveal_passwords: bool = False,
    *,
    engine: str = "fast",
    progress: Callable[[int], None] | None = None,
    heartbeat_timeout: float | None = DEFAULT_HEARTBEAT_TIMEOUT_NS / 1e9,
) -> Capture:
    """Decode a pcap or pcapng capture into dataframes.

    ``dialect``: ``"auto"`` (found per connection by content, on any port) or
    a dialect such as ``"lp32le:gbk"``. ``ports``: only connections with an
    end on one of these ports. Passwords are masked as ``***`` unless
    ``reveal_passwords``. ``engine="fast"`` (default) parses packets in
    compiled loops and decodes in-order flows column-wise; ``"bulk"`` sends
    every packet through the exact reassembler and ``"incremental"`` decodes
    chunk by chunk as a live capture does (same tables, slower;
    ``docs/capture-engine.md``). Memory: about 400 bytes a message once
    decoded, plus the connections; for captures larger than memory use
    :func:`camprotool.iter_capture`. ``heartbeat_timeout``: seconds of
    client silence on a main connection that ``violations`` reports as
    ``heartbeat_gap`` (PROTOCOL.md: three 30 s intervals; None: not checked).
    """
    _check_timeout(heartbeat_timeout)  # before decoding, not after
    decoded = decode_file(path, dialect=dialect, ports=ports, engine=engine, progress=progress)
    cap = Capture(decoded, reveal_passwords=reveal_passwords,
                  heartbeat_timeout=heartbeat_timeout)
    cap.origin = path  # cap.packets() reads the packets from it again
    return cap

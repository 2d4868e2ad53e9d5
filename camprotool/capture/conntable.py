"""The connection table before pandas: one column per field, one row per connection.

Why columns and not a record per connection: a capture may hold hundreds of
thousands of short connections, and a Python object per connection (a
``ConnectionRecord`` is 192 bytes, and its values as many again) was most of
what reading such a capture cost beyond its tables. ``build_connections``
fills the columns; ``analysis.frames.connections_frame`` turns them into
``Capture.connections`` column by column. Code that thinks in records (replay,
the live views) iterates the table: it makes a ``ConnectionRecord`` per row,
on demand.

Addresses are kept as numbers (:class:`Addresses`); their text is made once
per column for the dataframe (IPv4 in Arrow kernels, IPv6 once per distinct
address).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from camprotool.capture.packets import format_endpoint

#: ``channel`` codes: the position of the name here
CHANNELS = ("main", "data", "unknown")
MAIN, DATA, UNKNOWN = range(3)
#: ``main_conn`` and ``first_gap_s2c`` with no value, ``announced`` not judged
NO_VALUE = -1
_LOW64 = (1 << 64) - 1


@dataclass(slots=True)
class ConnectionRecord:
    """One row of ``Capture.connections``."""

    conn: int
    client_ip: bytes
    client_port: int
    server_ip: bytes
    server_port: int
    swapped: bool  # roles reversed from the reassembler's first guess
    handshake_seen: bool
    start_ns: int
    end_ns: int
    close_reason: str | None
    dialect: str | None
    bytes_c2s: int
    bytes_s2c: int
    lost_c2s: int
    lost_s2c: int
    messages: int = 0
    channel: str = "unknown"
    main_conn: int | None = None
    announced: bool | None = None  # data channel only; None: no main connection to judge by
    first_gap_s2c: int | None = None  # server->client stream offset of the first lost bytes

    @property
    def client(self) -> str:
        return format_endpoint(self.client_ip, self.client_port)

    @property
    def server(self) -> str:
        return format_endpoint(self.server_ip, self.server_port)


@dataclass(slots=True)
class Addresses:
    """IP addresses as columns: IPv6 or not, and the address's high and low 64 bits
    (an IPv4 address is its low 32 bits), as the fast engine's flow keys hold them."""

    v6: np.ndarray  # bool
    hi: np.ndarray  # uint64
    lo: np.ndarray  # uint64

    @classmethod
    def of(cls, packed: Sequence[bytes]) -> Addresses:
        """The addresses of packed ``bytes`` (4 or 16 of them each)."""
        n = len(packed)
        values = [int.from_bytes(ip, "big") for ip in packed]
        return cls(np.fromiter((len(ip) == 16 for ip in packed), bool, n),
                   np.fromiter((v >> 64 for v in values), np.uint64, n),
                   np.fromiter((v & _LOW64 for v in values), np.uint64, n))

    @classmethod
    def concat(cls, parts: Sequence[Addresses]) -> Addresses:
        return cls(*(np.concatenate([getattr(p, name) for p in parts])
                     for name in ("v6", "hi", "lo")))

    def __len__(self) -> int:
        return len(self.lo)

    def take(self, rows: np.ndarray) -> Addresses:
        return Addresses(self.v6[rows], self.hi[rows], self.lo[rows])

    def where(self, pick: np.ndarray, other: Addresses) -> Addresses:
        """Per row, ``other``'s address where ``pick`` holds, else this one's."""
        return Addresses(*(np.where(pick, getattr(other, name), getattr(self, name))
                           for name in ("v6", "hi", "lo")))

    def packed(self, row: int) -> bytes:
        """One address as ``bytes`` (what ``ConnectionRecord`` holds)."""
        if self.v6[row]:
            return ((int(self.hi[row]) << 64) | int(self.lo[row])).to_bytes(16, "big")
        return int(self.lo[row]).to_bytes(4, "big")

    def texts(self) -> pa.Array:
        """Each address as text (``10.0.0.1``, ``fd00::1``), as a ``large_string`` array:
        IPv4 in Arrow kernels, IPv6 once per distinct address."""
        lo = self.lo
        octets = [pc.cast(pa.array(((lo >> np.uint64(s)) & np.uint64(255)).astype(np.uint8)),
                          pa.large_string()) for s in (24, 16, 8, 0)]
        text = pc.binary_join_element_wise(*octets, _text("."))
        six = np.flatnonzero(self.v6)
        if len(six):
            pairs, which = np.unique(np.stack([self.hi[six], lo[six]], axis=1), axis=0,
                                     return_inverse=True)
            names = pa.array([_v6_text(int(h), int(v)) for h, v in pairs.tolist()],
                             pa.large_string())
            which_row = np.zeros(len(lo), np.int64)
            which_row[six] = which.reshape(-1)
            text = pc.if_else(pa.array(self.v6), names.take(pa.array(which_row)), text)
        return text


def _text(value: str) -> pa.Scalar:
    return pa.scalar(value, pa.large_string())


@functools.lru_cache(maxsize=4096)
def _v6_text(hi: int, lo: int) -> str:
    return str(ipaddress.IPv6Address((hi << 64) | lo))


def endpoint_texts(ips: Addresses, ip_text: pa.Array, port: np.ndarray) -> pa.Array:
    """``ip:port`` per row (``[ip]:port`` for IPv6), as ``format_endpoint`` writes it."""
    port_text = pc.cast(pa.array(port), pa.large_string())
    plain = pc.binary_join_element_wise(ip_text, port_text, _text(":"))
    if not ips.v6.any():
        return plain
    bracketed = pc.binary_join_element_wise(_text("["), ip_text, _text("]:"), port_text,
                                            _text(""))
    return pc.if_else(pa.array(ips.v6), bracketed, plain)


@dataclass
class ConnectionTable:
    """``Capture.connections`` as columns, ordered by ``conn``; see the module doc.

    Iterating (or indexing) gives ``ConnectionRecord`` rows, made on demand."""

    conn: np.ndarray  # int64
    client_ip: Addresses
    client_port: np.ndarray  # int64
    server_ip: Addresses
    server_port: np.ndarray  # int64
    swapped: np.ndarray  # bool: roles reversed from the reassembler's first guess
    handshake_seen: np.ndarray  # bool
    start_ns: np.ndarray  # int64
    end_ns: np.ndarray  # int64
    close_reason: np.ndarray  # object: str, or None while open
    dialect: np.ndarray  # object: str or None
    bytes_c2s: np.ndarray  # int64
    bytes_s2c: np.ndarray
    lost_c2s: np.ndarray
    lost_s2c: np.ndarray
    messages: np.ndarray  # int64
    channel: np.ndarray  # int8: a position in CHANNELS
    main_conn: np.ndarray  # int64, NO_VALUE: none
    announced: np.ndarray  # int8: 1, 0, NO_VALUE (data channel only; not judged)
    first_gap_s2c: np.ndarray  # int64, NO_VALUE: nothing lost

    def __len__(self) -> int:
        return len(self.conn)

    def __iter__(self) -> Iterator[ConnectionRecord]:
        return (self.record(i) for i in range(len(self.conn)))

    def __getitem__(self, row: int) -> ConnectionRecord:
        n = len(self.conn)
        if not -n <= row < n:
            raise IndexError(f"connection row {row} out of range ({n} rows)")
        return self.record(row % n)

    def record(self, row: int) -> ConnectionRecord:
        """Row ``row`` (a position, not a ``conn`` id) as a record."""
        main, announced, gap = (int(self.main_conn[row]), int(self.announced[row]),
                                int(self.first_gap_s2c[row]))
        return ConnectionRecord(
            int(self.conn[row]), self.client_ip.packed(row), int(self.client_port[row]),
            self.server_ip.packed(row), int(self.server_port[row]), bool(self.swapped[row]),
            bool(self.handshake_seen[row]), int(self.start_ns[row]), int(self.end_ns[row]),
            self.close_reason[row], self.dialect[row], int(self.bytes_c2s[row]),
            int(self.bytes_s2c[row]), int(self.lost_c2s[row]), int(self.lost_s2c[row]),
            int(self.messages[row]), CHANNELS[int(self.channel[row])],
            None if main == NO_VALUE else main,
            None if announced == NO_VALUE else bool(announced),
            None if gap == NO_VALUE else gap)

    def take(self, rows: np.ndarray) -> ConnectionTable:
        """The rows at positions ``rows``, in that order."""
        return ConnectionTable(**{f.name: getattr(self, f.name).take(rows) if isinstance(
            getattr(self, f.name), Addresses) else getattr(self, f.name)[rows]
            for f in fields(self)})

    @classmethod
    def from_records(cls, records: Iterable[ConnectionRecord]) -> ConnectionTable:
        """The table of ``records`` (in their order): tests, and tables built by hand."""
        rows = list(records)

        def col(name: str, dtype=np.int64) -> np.ndarray:
            return np.fromiter((getattr(r, name) for r in rows), dtype, len(rows))

        def objects(name: str) -> np.ndarray:
            out = np.empty(len(rows), object)
            out[:] = [getattr(r, name) for r in rows]
            return out

        def optional(name: str) -> np.ndarray:
            return np.fromiter((NO_VALUE if getattr(r, name) is None else getattr(r, name)
                                for r in rows), np.int64, len(rows))

        return cls(
            col("conn"), Addresses.of([r.client_ip for r in rows]), col("client_port"),
            Addresses.of([r.server_ip for r in rows]), col("server_port"), col("swapped", bool),
            col("handshake_seen", bool), col("start_ns"), col("end_ns"), objects("close_reason"),
            objects("dialect"), col("bytes_c2s"), col("bytes_s2c"), col("lost_c2s"),
            col("lost_s2c"), col("messages"),
            np.fromiter((CHANNELS.index(r.channel) for r in rows), np.int8, len(rows)),
            optional("main_conn"), optional("announced").astype(np.int8),
            optional("first_gap_s2c"))

    def client_texts(self) -> tuple[pa.Array, pa.Array]:
        """The client's ``ip`` and ``ip:port`` texts per row."""
        ip = self.client_ip.texts()
        return ip, endpoint_texts(self.client_ip, ip, self.client_port)

    def server_texts(self) -> tuple[pa.Array, pa.Array]:
        """The server's ``ip`` and ``ip:port`` texts per row."""
        ip = self.server_ip.texts()
        return ip, endpoint_texts(self.server_ip, ip, self.server_port)

    def first_gaps_s2c(self) -> dict[int, int]:
        """``conn`` -> server->client offset of its first lost bytes, where bytes were lost."""
        lost = np.flatnonzero(self.first_gap_s2c != NO_VALUE)
        return dict(zip(self.conn[lost].tolist(), self.first_gap_s2c[lost].tolist(),
                        strict=True))


__all__ = ["CHANNELS", "NO_VALUE", "Addresses", "ConnectionRecord", "ConnectionTable",
           "endpoint_texts"]

"""The fuzz targets: what each one feeds, and what it holds the code to.

Each :class:`Target` pairs a hypothesis strategy (the inputs) with a check
(the property). The same targets run twice:

* in the test suite (``tests/fuzz/test_fuzz_targets.py``), a few dozen
  examples each, so every ``make test`` exercises them;
* under ``make fuzz`` (``tests/fuzz/run.py``), for a time budget, with fresh
  random seeds batch after batch, reporting every failure with its shrunk
  input (docs/fuzzing.md).

Properties, per target:

* ``capture_files``: a bundled capture from ``captures/`` mutated (bit
  flips, overwritten, deleted, duplicated, inserted bytes, truncation,
  splices of two captures) is either read with every table built, or
  refused with ``CaptureFormatError`` (the documented error), never any
  other exception;
* ``decoders``: for every built-in dialect (three framings, UTF-8 and GBK),
  bytes made of valid frames, mutated frames, odd length prefixes and noise,
  fed in random chunks and with gaps, decode without an exception into the
  same messages as one whole feed, and the bulk decoder (the capture
  engine's) gives the same rows as the incremental one; dialect detection
  never raises;
* ``reassembler``: random TCP segments (a few 4-tuples, any flags, sequence
  numbers near and far, overlaps, snaplen cuts) never raise, every gap is
  positive, and every connection opened is closed exactly once by finish();
* ``emulator``: a running emulator, fed generated hostile requests on main
  and data connections, answers every request the protocol answers (with an
  encodable answer of the right kind, in order) or closes the connection;
  it never stays silent and no handler fails.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from camprotool import read_capture
from camprotool.capture.packets import TcpSegment
from camprotool.capture.reassembly import ConnectionInfo, Reassembler
from camprotool.capture.records import CaptureFormatError
from camprotool.protocol import COMMANDS, Decoder, Dialect, encode
from camprotool.protocol.bulk import BulkDecoder
from camprotool.protocol.detect import detect, detect_connection

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "protocol"))
from strategies import DIALECT_NAMES, messages  # tests/protocol/strategies.py

ROOT = Path(__file__).resolve().parents[2]
SEEDS = tuple(sorted(p for p in (ROOT / "captures").iterdir()
                     if p.suffix in (".pcap", ".pcapng")))
SEED_BYTES = tuple(p.read_bytes() for p in SEEDS)
TABLES = ("messages", "connections", "sessions", "sync", "transfers", "status", "alarms",
          "violations", "notes", "problems")


@dataclass
class Target:
    """A fuzz target: inputs, the property, and (for the emulator) what must be running."""

    name: str
    strategy: st.SearchStrategy
    check: Callable[[Any], None]
    context: Callable[[], contextlib.AbstractContextManager] = field(
        default=contextlib.nullcontext)
    doc: str = ""


# ------------------------------------------------------------------ capture files

_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0), st.sampled_from([0, 1, 0x7F, 0x80, 0xFF])),
    st.tuples(st.just("delete"), st.integers(0), st.integers(1, 64)),
    st.tuples(st.just("dup"), st.integers(0), st.integers(1, 256)),
    st.tuples(st.just("insert"), st.integers(0), st.binary(min_size=1, max_size=32)),
    st.tuples(st.just("truncate"), st.integers(0)),
    st.tuples(st.just("splice"), st.integers(0), st.integers(0), st.integers(0)),
)


def mutate(data: bytes, ops: list[tuple]) -> bytes:
    """Apply mutation ops (positions taken modulo the current length)."""
    buf = bytearray(data)
    for op in ops:
        kind, n = op[0], len(buf) or 1
        if kind == "flip" and buf:
            buf[op[1] % n] ^= 1 << op[2]
        elif kind == "set" and buf:
            buf[op[1] % n] = op[2]
        elif kind == "delete":
            at = op[1] % n
            del buf[at:at + op[2]]
        elif kind == "dup":
            at = op[1] % n
            buf[at:at] = buf[at:at + op[2]]
        elif kind == "insert":
            buf[op[1] % (n + 1):op[1] % (n + 1)] = op[2]
        elif kind == "truncate":
            del buf[op[1] % n:]
        elif kind == "splice":
            other = SEED_BYTES[op[1] % len(SEED_BYTES)]
            at, start = op[2] % n, op[3] % len(other)
            buf[at:] = other[start:]
    return bytes(buf)


capture_inputs = st.tuples(st.integers(0, len(SEED_BYTES) - 1),
                           st.lists(_mutation, min_size=1, max_size=8),
                           st.sampled_from(["fast", "bulk"]))


def check_capture(example: tuple[int, list[tuple], str]) -> None:
    seed, ops, engine = example
    data = mutate(SEED_BYTES[seed], ops)
    try:
        cap = read_capture(data, dialect="auto", engine=engine)
        for name in TABLES:
            getattr(cap, name)
        cap.summary()
    except CaptureFormatError:
        pass  # the documented refusal of what is not a capture


# ------------------------------------------------------------------ decoders


@st.composite
def decoder_inputs(draw: st.DrawFn) -> tuple[str, bytes, list[tuple[str, Any]]]:
    name = draw(st.sampled_from(DIALECT_NAMES))
    dialect = Dialect.parse(name)
    pieces = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["frame", "frame", "mutated", "noise", "prefix"]))
        if kind in ("frame", "mutated"):
            spec, values = draw(messages(dialect))
            try:
                frame = encode(spec.name, values, dialect)
            except ValueError:
                continue
            if kind == "mutated":
                frame = mutate(frame, draw(st.lists(_mutation.filter(lambda o: o[0] != "splice"),
                                                    min_size=1, max_size=3)))
            pieces.append(frame)
        elif kind == "noise":
            pieces.append(draw(st.binary(max_size=48)))
        else:  # a length prefix claiming anything, little or big endian
            size = draw(st.sampled_from([0, 1, 3, 64 * 1024, (1 << 20) + 1, (1 << 32) - 1]))
            pieces.append(size.to_bytes(4, draw(st.sampled_from(["little", "big"]))))
    data = b"".join(pieces)
    ops: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(data):
        size = draw(st.integers(1, max(1, len(data) - pos)))
        ops.append(("feed", data[pos:pos + size]))
        pos += size
        if draw(st.integers(0, 9)) == 0:
            ops.append(("gap", draw(st.integers(1, 40))))
    return name, data, ops


def _rows(pairs: list) -> list[tuple]:
    return [(end, m.command, m.params, m.error) for end, m in pairs]


def _incremental(dialect: Dialect, ops: list[tuple[str, Any]]) -> list[tuple]:
    dec = Decoder(dialect)
    pairs = []
    for op, arg in ops:
        pairs += dec.feed_with_ends(arg) if op == "feed" else dec.gap_with_ends(arg)
    return _rows(pairs + dec.finish_with_ends())


def _bulk(dialect: Dialect, ops: list[tuple[str, Any]]) -> list[tuple]:
    dec = BulkDecoder(dialect)
    tables = [dec.feed(arg) if op == "feed" else dec.gap(arg) for op, arg in ops]
    tables.append(dec.finish())
    rows = []
    for t in tables:
        rows += zip(t.column("end").to_pylist(), t.column("command").to_pylist(),
                    t.column("params").to_pylist(), t.column("error").to_pylist(), strict=True)
    return rows


def check_decoders(example: tuple[str, bytes, list[tuple[str, Any]]]) -> None:
    name, data, ops = example
    dialect = Dialect.parse(name)
    chunked = _incremental(dialect, ops)
    if not any(op == "gap" for op, _ in ops):
        assert chunked == _incremental(dialect, [("feed", data)]), "chunking changed messages"
    assert _bulk(dialect, ops) == chunked, "bulk and incremental decoders disagree"
    detect(data)
    detect(data, final=True)
    detect_connection(data, data[::-1], final=True)


# ------------------------------------------------------------------ reassembler

_HOSTS = [(bytes([10, 0, 0, 1]), 40000), (bytes([10, 0, 0, 2]), 9000),
          (bytes([10, 0, 0, 3]), 40001)]
_BASES = [0, 1000, 0xFFFFFFF0]  # one stream wraps around 2**32


@st.composite
def segment_lists(draw: st.DrawFn) -> list[TcpSegment]:
    segs = []
    for frame in range(1, draw(st.integers(1, 40)) + 1):
        src, dst = draw(st.permutations(_HOSTS))[:2]
        base = draw(st.sampled_from(_BASES))
        seq = (base + draw(st.one_of(st.integers(-8, 200), st.integers(0, 1 << 32)))) \
            & 0xFFFFFFFF
        ack = (draw(st.sampled_from(_BASES)) + draw(st.integers(-8, 300))) & 0xFFFFFFFF
        flags = draw(st.sampled_from([0x10, 0x18, 0x02, 0x12, 0x11, 0x04, 0x14, 0x19]))
        payload = draw(st.binary(max_size=24))
        missing = draw(st.sampled_from([0, 0, 0, 5]))
        segs.append(TcpSegment(frame, frame * 1000, src[0], src[1], dst[0], dst[1], seq, ack,
                               flags, 65535, memoryview(payload), missing))
    return segs


class _Checker:
    """A sink that checks the reassembler's promises as events arrive."""

    def __init__(self) -> None:
        self.opened: list[int] = []
        self.closed: list[int] = []

    def on_open(self, conn: ConnectionInfo) -> None:
        assert conn.conn_id == len(self.opened), "connection ids are 0, 1, 2... in order"
        self.opened.append(conn.conn_id)

    def on_data(self, conn_id: int, direction: str, data: bytes, ts_ns: int, frame: int
                ) -> None:
        assert type(data) is bytes and data and direction in ("c2s", "s2c")
        assert conn_id in self.opened and conn_id not in self.closed

    def on_gap(self, conn_id: int, direction: str, nbytes: int, ts_ns: int, frame: int) -> None:
        assert nbytes > 0 and conn_id in self.opened and conn_id not in self.closed

    def on_close(self, conn_id: int, ts_ns: int, reason: str) -> None:
        assert conn_id in self.opened and conn_id not in self.closed, "closed twice"
        self.closed.append(conn_id)


def check_reassembler(example: tuple[list[TcpSegment], int]) -> None:
    segments, max_buffered = example
    sink = _Checker()
    r = Reassembler(sink, max_buffered=max_buffered)
    for seg in segments:
        r.add(seg)
    r.finish()
    assert sorted(sink.closed) == sink.opened, "finish() closes every connection once"


reassembler_inputs = st.tuples(segment_lists(), st.sampled_from([16, 64, 4 << 20]))


# ------------------------------------------------------------------ the emulator

#: What the emulator answers, per channel and command; everything else gets no answer.
ANSWERS = {
    "main": {"Login": {"LoginOk", "LoginError"},
             "CreatDataSocket": {"ReturnDataSocketPort", "LoginError"},
             "CheckCaramerOnlineStatus": {"ReturnCaramerOnlineStatus", "LoginError"}},
    "data": {"UploadCaramer": {"UploadSucess", "UploadFail"},
             "DownLoadCaramer": {"DownloadSucess", "DownloadFail"}},
}
SILENCE = 10.0  # seconds without an answer or a close that count as silence (loaded machines)
HOSTILE_TEXT = "demo|alice|DEMO0001|CAM00001|1234|wrong|0|1|2|20|-1|99999999999999999999|" \
    "true|null|;|:|\x00|\t| |中文|\r|\n|\\|\xff|😀"
_NAMES = [*(s.full_name for s in COMMANDS), *(s.name for s in COMMANDS),
          "SocketCommand.LoginCommand. Login", " Login ", "SocketCommand.Nope.Nope", "",
          "SocketCommand", "Login\x00", "登录"]
_tokens = st.lists(st.sampled_from(HOSTILE_TEXT.split("|")) | st.text(max_size=6),
                   max_size=8).map("|".join)
_ids = st.lists(st.sampled_from(["DEMO0001", "CAM00001", "NOPE", "", "A:B", "中文"]),
                max_size=25).map(";".join)
_item = st.one_of(
    st.tuples(st.just("msg"), st.sampled_from(_NAMES), st.one_of(_tokens, _ids)),
    st.tuples(st.just("msg"), st.sampled_from(["Login", "CreatDataSocket"]),
              st.sampled_from(["demo|demo", "demo|wrong", "alice|alice", "demo|demo\x00"])),
    st.tuples(st.just("raw"), st.binary(max_size=40)),
)
emulator_inputs = st.tuples(st.sampled_from(["line", "lp32le:gbk"]),
                            st.sampled_from(["main", "data"]),
                            st.lists(_item, min_size=1, max_size=12))


def _frame(item: tuple, dialect: Dialect) -> bytes:
    if item[0] == "raw":
        return item[1]
    body = f"{item[1]}|{item[2]}".encode(dialect.encoding, "replace")
    if dialect.framing == "line":
        return body + b"\r\n"
    return len(body).to_bytes(4, "little" if dialect.framing == "lp32le" else "big") + body


class _Wire:
    """One client connection that reads the emulator's answers with our own decoder."""

    def __init__(self, address: tuple[str, int], dialect: Dialect) -> None:
        self.sock = socket.create_connection(address, timeout=SILENCE)
        self.decoder = Decoder(dialect)
        self.pending: list = []
        self.closed = False

    def send(self, data: bytes) -> None:
        with contextlib.suppress(OSError):  # the server may have closed already
            self.sock.sendall(data)

    def answer(self) -> Any:
        """The next message from the server, or None once it closed; AssertionError on
        silence."""
        while not self.pending:
            if self.closed:
                return None
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise AssertionError(f"no answer and no close within {SILENCE} s") from None
            except OSError:
                data = b""
            if not data:
                self.closed = True
                self.pending += self.decoder.finish()
            else:
                self.pending += self.decoder.feed(data)
        return self.pending.pop(0)

    def close(self) -> None:
        self.sock.close()


class EmulatorHarness:
    """An emulator per dialect, running for the whole fuzz run (started on first use)."""

    def __init__(self) -> None:
        self.servers: dict[str, Any] = {}
        self.lock = threading.Lock()

    def server(self, name: str) -> Any:
        from camprotool.net import EmulatorServer
        from camprotool.net.testing import FAST_SCRYPT_N

        with self.lock:
            if name not in self.servers:
                # no brake: it would lock the fuzzer out for 15 minutes after 20 failures,
                # and every later example would test only the lockout
                # and short-lived data ports, so ports asked for and never used come back
                self.servers[name] = EmulatorServer(dialect=name, scrypt_n=FAST_SCRYPT_N,
                                                    brake=False, data_port_timeout=0.5,
                                                    data_ports=40).start()
            return self.servers[name]

    @contextlib.contextmanager
    def running(self) -> Iterator[EmulatorHarness]:
        try:
            yield self
        finally:
            for srv in self.servers.values():
                srv.stop()
            self.servers.clear()


HARNESS = EmulatorHarness()


def check_emulator(example: tuple[str, str, list[tuple]]) -> None:
    name, channel, items = example
    srv = HARNESS.server(name)
    dialect = srv.dialect  # with the server's frame limit, so we decode what it decodes
    main = _Wire(srv.address, dialect)
    wires = [main]
    try:
        wire = main
        if channel == "data":
            main.send(encode("Login", "demo|demo", dialect))
            assert main.answer().command == "LoginOk"
            main.send(encode("CreatDataSocket", "demo|demo", dialect))
            port = main.answer().port
            assume(port is not None)  # every data port busy: nothing to test this time
            wire = _Wire((srv.host, port), dialect)
            wires.append(wire)
        sent = Decoder(dialect)  # what the server reads from our bytes
        for item in items:
            wire.send(_frame(item, dialect))
            for request in sent.feed(_frame(item, dialect)):
                spec = request.spec
                if request.error is not None and spec is None:
                    continue  # an unreadable frame: counted, not answered
                expected = ANSWERS[channel].get(spec.name if spec else "")
                if expected is None:
                    continue
                answer = wire.answer()
                if answer is None:
                    return  # closed: an allowed outcome (a limit, or too many failures)
                assert answer.command in expected, (request, answer)
                assert answer.error is None, ("unreadable answer", request, answer)
        assert srv.stats["handler_errors"] == 0, "a handler failed"
    finally:
        for w in wires:
            w.close()


# ------------------------------------------------------------------ the list

TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("capture_files", capture_inputs, check_capture,
           doc="mutated captures from captures/ through read_capture (fast and bulk engines)"),
    Target("decoders", decoder_inputs(), check_decoders,
           doc="every dialect's incremental and bulk decoders, chunked, with gaps"),
    Target("reassembler", reassembler_inputs, check_reassembler,
           doc="random TCP segments through the reassembler"),
    Target("emulator", emulator_inputs, check_emulator, context=HARNESS.running,
           doc="hostile requests on the emulator's main and data connections"),
)}

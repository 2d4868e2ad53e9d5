"""Live capture: the pcap stream reader, the capture filter, and dumpcap on loopback.

The stream reader is checked against the file reader (same bytes, any
chunking). The live tests run dumpcap on ``lo`` against an EmulatorServer on
127.0.0.1 and are skipped, with the reason, when dumpcap is missing or may not
capture on ``lo``.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import threading

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camprotool import read_capture
from camprotool.analysis.live import LiveCapture
from camprotool.capture.live import LiveCaptureError, capture_filter, error_line
from camprotool.capture.packets import iter_tcp_segments
from camprotool.capture.pcapstream import PcapStream
from camprotool.capture.readers import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_RAW,
    CaptureFormatError,
    open_capture,
)
from camprotool.capture.writer import PcapngWriter, PcapWriter, TcpConversation
from camprotool.net import EmulatorServer
from camprotool.net.testing import FAST_SCRYPT_N

T0 = 1_700_000_000_123_456_789
CONTRACT = ["channel", "direction", "client", "server", "command", "params", "error"]


# -- the stream reader --------------------------------------------------------------
def as_rows(packets) -> list[tuple]:
    return [(p.frame, p.ts_ns, p.linktype, bytes(p.data), p.orig_len, p.cap_len)
            for p in packets]


def by_file(data: bytes) -> tuple[list[tuple], list[tuple], int, str]:
    with open_capture(data) as f:
        rows = as_rows(f)
        return rows, [(p.frame, p.kind) for p in f.problems], f.frames, f.format


def by_stream(data: bytes, sizes: list[int]) -> tuple[list[tuple], list[tuple], int, str]:
    stream = PcapStream()
    rows, pos, i = [], 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)] if sizes else len(data)
        rows += as_rows(stream.feed(data[pos:pos + size]))
        pos += size
        i += 1
    stream.close()
    assert stream.bytes == len(data)
    return rows, [(p.frame, p.kind) for p in stream.problems], stream.frames, stream.format


frames = st.lists(st.tuples(st.integers(0, 10**12), st.binary(max_size=120),
                            st.integers(0, 40)), max_size=8)


@st.composite
def pcap_files(draw) -> bytes:
    w = PcapWriter(linktype=draw(st.sampled_from([LINKTYPE_ETHERNET, LINKTYPE_RAW, 105])),
                   nanosecond=draw(st.booleans()), byte_order=draw(st.sampled_from("<>")),
                   snaplen=draw(st.sampled_from([0, 64, 262144])))
    for ts, data, extra in draw(frames):
        w.write_packet(T0 + ts, data, len(data) + extra)
    return w.getvalue()


@st.composite
def pcapng_files(draw) -> bytes:
    w = PcapngWriter(linktype=None, byte_order=draw(st.sampled_from("<>")))
    for _section in range(draw(st.integers(1, 2))):
        if _section:
            w.new_section(draw(st.sampled_from("<>")))
        n_ifaces = 0
        for _ in range(draw(st.integers(1, 3))):
            w.add_interface(draw(st.sampled_from([LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, 105])),
                            tsresol=draw(st.sampled_from([6, 9, 3, 0x80 | 20])),
                            snaplen=draw(st.sampled_from([0, 64, 262144])),
                            tsoffset=draw(st.sampled_from([0, 0, 7])))
            n_ifaces += 1
        for ts, data, extra in draw(frames):
            kind = draw(st.sampled_from(["epb", "epb", "spb", "pb", "other"]))
            iface = draw(st.integers(0, n_ifaces - 1))
            if kind == "epb":
                w.write_packet(T0 + ts, data, len(data) + extra, interface=iface)
            elif kind == "spb":
                w.write_simple_packet(data, len(data) + extra)
            elif kind == "pb":
                w.write_obsolete_packet(T0 + ts, data, len(data) + extra, interface=iface)
            else:
                w.write_block(0xBAD, data)
    return w.getvalue()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(pcap_files(), pcapng_files()),
       sizes=st.lists(st.integers(1, 300), max_size=6), cut=st.integers(0, 60))
def test_the_stream_reader_reads_as_the_file_reader_in_any_chunks(data, sizes, cut) -> None:
    if cut and len(data) - cut >= 28:
        data = data[:-cut]  # a record or block cut short: reported the same way
    assert by_stream(data, sizes) == by_file(data)


def conversation(writer) -> bytes:
    conv = TcpConversation(writer, ("10.0.0.1", 40000), ("10.0.0.2", 9000), T0)
    conv.send("c2s", b"Login|demo|demo\n" * 50, T0 + 1000, segment_size=100)
    conv.skip("s2c", 10)  # a lost segment
    conv.send("s2c", b"LoginOk|3||\n", T0 + 2000)
    conv.close(T0 + 3000)
    return writer.getvalue()


@settings(max_examples=50, deadline=None)
@given(nano=st.booleans(), sizes=st.lists(st.integers(1, 500), min_size=1, max_size=5))
def test_the_stream_gives_the_files_tcp_segments(nano, sizes) -> None:
    data = conversation(PcapWriter(nanosecond=nano))
    with open_capture(data) as f:
        want = [s._replace(payload=bytes(s.payload)) for s in iter_tcp_segments(f)]
    stream, got, pos, i = PcapStream(), [], 0, 0
    while pos < len(data):
        chunk = data[pos:pos + sizes[i % len(sizes)]]
        got += [s._replace(payload=bytes(s.payload)) for s in stream.segments(chunk)]
        pos, i = pos + len(chunk), i + 1
    assert got == want and len(got) > 10


def test_the_stream_reader_refuses_what_is_not_a_capture() -> None:
    stream = PcapStream("dumpcap")
    assert stream.feed(b"hel") == [] and stream.format is None
    with pytest.raises(CaptureFormatError, match=r"dumpcap: not a pcap or pcapng"):
        stream.feed(b"lo, I am text")
    assert stream.feed(b"more") == []  # the rest is ignored, never raised again
    with pytest.raises(CaptureFormatError, match="unsupported pcap version 9"):
        PcapStream().feed(b"\xd4\xc3\xb2\xa1\x09\x00" + b"\0" * 18)


def test_a_stream_cut_in_its_header_is_a_problem_not_an_error() -> None:
    stream = PcapStream()
    stream.feed(PcapWriter().getvalue()[:10])
    stream.close()
    assert [p.kind for p in stream.problems] == ["truncated_file"]
    with pytest.raises(ValueError, match="closed"):
        stream.feed(b"x")


# -- filters and messages -------------------------------------------------------------
def test_the_capture_filter_is_built_from_ports_and_bpf() -> None:
    assert capture_filter([9000, *range(9001, 9021)]) == "tcp portrange 9000-9020"
    assert capture_filter([9000, 9005, 9006]) == "tcp port 9000 or tcp port 9005 or tcp port 9006"
    assert capture_filter(9000, "host 127.0.0.1") == "(tcp port 9000) and (host 127.0.0.1)"
    assert capture_filter(None, " udp ") == "udp"
    assert capture_filter() is None
    with pytest.raises(ValueError, match="not a TCP port"):
        capture_filter([0])
    with pytest.raises(ValueError, match="positive count"):
        LiveCapture("lo", max_messages=0)


PERMISSION = """Capturing on 'Loopback: lo'
dumpcap: You do not have permission to capture on device "lo".
(socket: Operation not permitted)
Please check to make sure you have sufficient permissions.

On Debian and Debian derivatives such as Ubuntu, if you have installed Wireshark ...
"""


def test_dumpcaps_complaints_become_one_line() -> None:
    line = error_line(PERMISSION, "/usr/bin/dumpcap", 1)
    assert line.startswith('dumpcap: You do not have permission to capture on device "lo". '
                           "(socket: Operation not permitted) (capturing needs root")
    assert "\n" not in line and "Debian" not in line
    assert error_line("Capturing on 'lo'\nFile: -\n", "/usr/bin/dumpcap", -9) == \
        "dumpcap exited with status -9"


def test_a_missing_program_says_how_to_install_it() -> None:
    with pytest.raises(LiveCaptureError, match="no-such-dumpcap not found: install tshark: "
                                               "make sysdeps"):
        LiveCapture("lo", program="no-such-dumpcap").start()


def test_before_start_the_tables_are_empty_but_typed() -> None:
    live = LiveCapture("lo")
    empty = read_capture(PcapWriter().getvalue()).messages
    pd.testing.assert_frame_equal(live.messages, empty)
    assert not live.running and live.wait(timeout=0) is False
    assert live.stop() is live.stop()  # idempotent, also before start


# -- live capture on loopback ------------------------------------------------------------
needs_dumpcap = pytest.mark.skipif(shutil.which("dumpcap") is None,
                                   reason="dumpcap is not installed (make sysdeps)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def capture_rights() -> None:
    """Skip the live tests unless a tiny capture on lo starts."""
    if shutil.which("dumpcap") is None:
        pytest.skip("dumpcap is not installed (make sysdeps)")
    try:
        LiveCapture("lo", ports=[free_port()], start_timeout=5).start().stop()
    except LiveCaptureError as exc:
        pytest.skip(f"cannot capture on lo: {exc}")


@pytest.fixture
def server(capture_rights):
    with EmulatorServer(scrypt_n=FAST_SCRYPT_N) as srv:
        yield srv


def live_on(srv: EmulatorServer, **options) -> LiveCapture:
    return LiveCapture("lo", ports=[srv.port, *srv.data_ports], **options)


def rows(df: pd.DataFrame) -> list[list[str]]:
    return df[CONTRACT].astype(str).to_numpy().tolist()


@pytest.mark.timeout(30)
def test_live_messages_are_the_clients_and_the_recordings(server, tmp_path) -> None:
    record = tmp_path / "live.pcap"
    pushed: list[pd.DataFrame] = []
    with live_on(server, record=record) as live:
        live.on_message(pushed.append)
        with server.client(heartbeat_interval=None, timeout=5) as client:
            client.login("demo", "demo")
            assert live.wait(2, timeout=5)  # the login, while the session goes on
            client.sync([])
            client.check_status(["DEMO0001", "DEMO0002", "DEMO0003"])
            server.set_online("DEMO0002", True)
            assert client.next_push(5).command == "PrushCaramerOnlineStatus"
            server.raise_alarm("DEMO0001", "motion")
            assert client.next_push(5).command == "PrushCaramerAlarmInfo"
            want = client.messages
            assert live.wait(len(want), timeout=5), live.messages.command.tolist()
            running = live.capture()
            assert live.running
            assert running.connections.close_reason.tolist() == ["end_of_capture", "fin"]
            assert running.sessions.user.tolist() == ["demo"]
    assert not live.running
    got = live.messages
    assert rows(got) == rows(want)
    assert rows(running.messages) == rows(want)
    assert len(got) == 14 and set(got.channel) == {"main", "data"}
    assert got.ts.is_monotonic_increasing and got.params.str.contains(r"\*\*\*").any()
    recorded = read_capture(record)
    pd.testing.assert_frame_equal(got, recorded.messages)
    pd.testing.assert_frame_equal(live.connections, recorded.connections)
    assert live.capture().violations.empty
    delivered = pd.concat(pushed)
    assert rows(delivered) == rows(want)  # every row once, in order
    assert live.stop() is live  # idempotent


@pytest.mark.timeout(30)
def test_max_messages_stops_the_capture_and_pcapng_records(server, tmp_path) -> None:
    record = tmp_path / "live.pcapng"
    live = live_on(server, record=record, max_messages=2, dialect="line").start()
    assert "-n" in live.command
    with server.client(heartbeat_interval=None, timeout=5) as client:
        client.login("demo", "demo")
        assert live.wait(timeout=5)  # ended by itself
    assert not live.running
    live.stop()  # no error: it was asked to stop
    assert live.messages.command.tolist()[:2] == ["Login", "LoginOk"]
    with open_capture(record) as f:
        assert f.format == "pcapng"
    pd.testing.assert_frame_equal(live.messages, read_capture(record).messages)


@pytest.mark.timeout(30)
def test_dumpcap_dying_ends_the_capture_with_an_error(server) -> None:
    live = live_on(server).start()
    os.kill(live.pid, signal.SIGKILL)
    assert live.wait(timeout=5) and not live.running
    assert live.error == "dumpcap exited with status -9"
    with pytest.raises(LiveCaptureError, match="status -9"):
        live.stop()
    live.stop()  # said once


@needs_dumpcap
def test_an_unknown_interface_is_dumpcaps_own_message() -> None:
    with pytest.raises(LiveCaptureError, match=r'dumpcap: There is no device named "nosuch0"'):
        LiveCapture("nosuch0").start()


@needs_dumpcap
def test_a_bad_filter_is_dumpcaps_own_message() -> None:
    with pytest.raises(LiveCaptureError, match=r"Invalid capture filter \"port banana\""):
        LiveCapture("lo", bpf="port banana").start()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0
                    or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run dumpcap as nobody")
def test_no_permission_is_one_line(capture_rights, tmp_path) -> None:
    wrapper = tmp_path / "dumpcap-as-nobody"
    wrapper.write_text("#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups "
                       f"{shutil.which('dumpcap')} \"$@\"\n")
    wrapper.chmod(0o755)
    with pytest.raises(LiveCaptureError) as err:
        LiveCapture("lo", program=str(wrapper), ports=[free_port()]).start()
    assert "permission" in str(err.value).lower() and "\n" not in str(err.value)


@pytest.mark.timeout(30)
def test_callbacks_run_off_the_callers_thread(server) -> None:
    threads: set[str] = set()
    with live_on(server) as live:
        live.on_message(lambda rows: threads.add(threading.current_thread().name))
        with server.client(heartbeat_interval=None, timeout=5) as client:
            client.login("demo", "demo")
        assert live.wait(2, timeout=5)
    assert threads == {"LiveCapture-notify"}


@pytest.mark.timeout(30)
def test_run_live_prints_messages_as_they_come(server, tmp_path) -> None:
    from camprotool.cli.live import run_live

    out, done = io.StringIO(), threading.Event()

    def traffic() -> None:  # logins until the capture has seen two messages
        with server.client(heartbeat_interval=None, timeout=5) as client:
            while not done.wait(0.1):
                client.login("demo", "demo")

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        status = run_live("lo", ports=[server.port], max_messages=2, duration=10, out=out,
                          output=str(tmp_path / "live.csv"))
    finally:
        done.set()
        thread.join(5)
    assert status == 0
    printed = out.getvalue().splitlines()
    assert len(printed) >= 2 and all(" Login" in line for line in printed)
    saved = pd.read_csv(tmp_path / "live.csv")
    assert len(saved) == len(printed) and set(saved.command) <= {"Login", "LoginOk"}

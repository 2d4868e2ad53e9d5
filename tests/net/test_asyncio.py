"""The asyncio forms, and the blocking facades used inside a running loop (as in Jupyter)."""

from __future__ import annotations

import asyncio

import pytest

from camprotool.net import (
    AsyncClient,
    Client,
    EmulatorServer,
    LoginFailed,
    Proxy,
    ReplyTimeout,
)
from camprotool.protocol import encode

FAST = {"scrypt_n": 1 << 10}


def test_async_server_and_client() -> None:
    async def main() -> None:
        srv = EmulatorServer(**FAST)
        # ``srv.address`` is read after ``srv`` has been entered (started)
        async with srv, AsyncClient(*srv.address, heartbeat_interval=None) as client:
            with pytest.raises(LoginFailed):
                await client.login("bob", "nope")
            await client.login("demo", "demo")
            cams, status = await asyncio.gather(client.download(),
                                                client.check_status(["DEMO0002"]))
            assert len(cams) == 3 and status == {"DEMO0002": False}
            srv.set_online("DEMO0003", False)  # called on the server's own loop
            push = await client.next_push(timeout=10)  # waits only until it comes
            assert push is not None and push.params == "DEMO0003:false"
            assert [m async for m in client.pushes(timeout=0.3)] == []  # and nothing more

    asyncio.run(main())


def test_serve_runs_until_cancelled() -> None:
    async def main() -> None:
        srv = EmulatorServer(**FAST)
        task = asyncio.create_task(srv.serve())
        while not srv.running:
            await asyncio.sleep(0.01)
        async with AsyncClient(*srv.address, heartbeat_interval=None) as client:
            assert (await client.login("alice", "alice")).camera_count == 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not srv.running

    asyncio.run(main())


def test_blocking_objects_work_inside_a_running_event_loop() -> None:
    """What a notebook cell does: the kernel's loop is running in this thread."""

    async def cell() -> None:
        with EmulatorServer(**FAST) as srv, Proxy(upstream=srv.address) as proxy, \
                Client(*proxy.address, heartbeat_interval=None) as client:
            assert client.login("demo", "demo").camera_count == 3
            assert len(client.sync([]).cameras) == 3
            assert srv.set_online("DEMO0001", False) == 1
            assert client.next_push(2).params == "DEMO0001:false"
            assert len(client.messages) == len(proxy.messages) > 0

    asyncio.run(cell())


def test_a_blocking_call_from_a_push_callback_is_refused_clearly() -> None:
    errors: list[Exception] = []
    with EmulatorServer(**FAST) as srv, srv.client(heartbeat_interval=None) as client:
        def callback(msg: object) -> None:
            try:
                client.check_status(["DEMO0001"])
            except RuntimeError as exc:
                errors.append(exc)

        client.on_push(callback)
        client.login("demo", "demo")
        srv.raise_alarm("DEMO0001")
        assert client.next_push(2) is not None
    assert errors and "push callback" in str(errors[0])


def test_start_reports_a_port_in_use() -> None:
    with EmulatorServer(**FAST) as first:
        second = EmulatorServer(port=first.port, **FAST)
        with pytest.raises(OSError, match=f"127.0.0.1:{first.port} is already in use"):
            second.start()
        assert not second.running
        with pytest.raises(OSError, match="already in use"):
            EmulatorServer(data_ports=[first.port], **FAST).start()


def test_a_late_answer_to_an_abandoned_request_is_not_taken_for_the_next_one() -> None:
    """No request ids: the answer to a request given up on (timeout, or a cancel as Ctrl-C
    does) still comes, and must not be handed to the next request of the same kind."""

    async def main() -> None:
        srv = EmulatorServer(reply_delay=0.5, require_login=False, **FAST)
        async with srv, AsyncClient(*srv.address, heartbeat_interval=None,
                                    timeout=0.1) as client:
            with pytest.raises(ReplyTimeout):
                await client.check_status(["DEMO0001", "DEMO0002"])
            client.timeout = 3
            assert await client.check_status(["DEMO0003"]) == {"DEMO0003": None}

            task = asyncio.create_task(client.check_status(["DEMO0001"]))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await client.check_status(["DEMO0002"]) == {"DEMO0002": False}
            assert client.connected

    asyncio.run(main())


def test_an_answer_to_a_later_request_settles_one_never_answered() -> None:
    """Answers come in order: once a later request is answered, an abandoned one never will
    be, so it must not swallow the next answer of its kind."""

    async def on_main(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queries = 0
        while line := await reader.readline():
            name = line.split(b"|")[0].rsplit(b".", 1)[-1].strip()
            if name == b"Login":
                writer.write(encode("LoginOk", {"camera_count": 1, "last_login_time": "",
                                                "last_login_ip": ""}))
            elif name == b"CheckCaramerOnlineStatus":
                queries += 1
                if queries > 1:  # the first query is never answered
                    writer.write(encode("ReturnCaramerOnlineStatus", "DEMO0001;true"))
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(on_main, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, AsyncClient("127.0.0.1", port, heartbeat_interval=None,
                                       timeout=0.2) as client:
            with pytest.raises(ReplyTimeout):
                await client.check_status(["DEMO0001"])
            await client.login("demo", "demo")
            assert await client.check_status(["DEMO0001"]) == {"DEMO0001": True}

    asyncio.run(main())


def test_reconnecting_after_a_lost_connection_starts_clean() -> None:
    async def main() -> None:
        async with EmulatorServer(max_login_failures=1, **FAST) as srv:
            client = AsyncClient(*srv.address, heartbeat_interval=1.0, timeout=3)
            try:
                with pytest.raises(LoginFailed):
                    await client.login("demo", "bad")  # the server then closes the connection
                async with asyncio.timeout(3):
                    while client.connected:
                        await asyncio.sleep(0.01)
                old_stream = client._main
                old_tasks = [client._reader_task, client._heartbeat_task]
                await client.login("demo", "demo")
                assert all(t is None or t.done() for t in old_tasks)  # no second heartbeat
                assert old_stream is not None and old_stream.writer.is_closing()
                srv.set_online("DEMO0001", False)
                push = await client.next_push(timeout=2)  # not the old connection's end
                assert push is not None and push.params == "DEMO0001:false"
            finally:
                await client.close()

    asyncio.run(main())

"""The asyncio forms, and the blocking facades used inside a running loop (as in Jupyter)."""

from __future__ import annotations

import asyncio

import pytest

from camprotool.net import AsyncClient, Client, EmulatorServer, LoginFailed, Proxy

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
            pushes = [m async for m in client.pushes(timeout=0.3)]
            assert [m.params for m in pushes] == ["DEMO0003:false"]

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

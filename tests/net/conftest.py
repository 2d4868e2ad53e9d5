"""Fixtures for the network tests: everything on 127.0.0.1, ports picked by the system."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from camprotool.net.testing import LoopbackPair


@pytest.fixture
def pair() -> Iterator[LoopbackPair]:
    with LoopbackPair() as p:
        yield p


@pytest.fixture
def demo(pair: LoopbackPair):
    """The pair's client, logged in as demo."""
    pair.client.login("demo", "demo")
    return pair.client


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A hung network test fails in 60 s, not the global 120 s. Generous on purpose: each
    test takes well under a second alone, but a loaded machine (two ``make test`` at
    once on two cores) can be many times slower; waits inside tests end on events."""
    for item in items:
        if "tests/net/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.timeout(60))


#: A DownloadSucess whose camera password holds ``|`` (``s3|cret``): unreadable, and a
#: message quoting it verbatim would show the password.
LEAKY_DOWNLOAD = b"SocketCommand.CaramCommand.DownloadSucess|CAM1|s3|cret|true|1|2\r\n"


@pytest.fixture
def leaky_server() -> Iterator[tuple[str, int]]:
    """A fake server (line dialect): logs anyone in, answers status queries, and hands out a
    data port that answers every request with :data:`LEAKY_DOWNLOAD`."""
    import asyncio

    from camprotool.net.loop import LoopThread
    from camprotool.protocol import encode

    async def on_data(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readline():
            writer.write(LEAKY_DOWNLOAD)
        writer.close()

    async def start() -> list[asyncio.Server]:
        data = await asyncio.start_server(on_data, "127.0.0.1", 0)
        data_port = data.sockets[0].getsockname()[1]

        async def on_main(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while line := await reader.readline():
                name = line.split(b"|")[0].rsplit(b".", 1)[-1].strip()
                if name == b"Login":
                    writer.write(encode("LoginOk", {"camera_count": 3, "last_login_time": "",
                                                    "last_login_ip": ""}))
                elif name == b"CreatDataSocket":
                    writer.write(encode("ReturnDataSocketPort", {"port": data_port}))
                elif name == b"CheckCaramerOnlineStatus":
                    writer.write(encode("ReturnCaramerOnlineStatus", "DEMO0001;true"))
            writer.close()

        main = await asyncio.start_server(on_main, "127.0.0.1", 0)
        return [main, data]

    thread = LoopThread("leaky-server")
    thread.start()
    servers = thread.run(start())
    try:
        yield "127.0.0.1", servers[0].sockets[0].getsockname()[1]
    finally:
        for srv in servers:
            thread.call(srv.close)
        thread.stop()

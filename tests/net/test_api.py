"""The public surface of camprotool.net, and the proxy's rewrite under any chunking."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

import camprotool.net as net
from camprotool.net.proxy import _MainContext
from camprotool.net.recording import MessageLog
from camprotool.protocol import Dialect, encode


def test_all_is_complete_and_importable() -> None:
    public = {n for n in dir(net) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(net.__all__)
    for name in net.__all__:
        assert getattr(net, name) is not None


class _StubProxy:
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    async def open_data_relay(self, real_port: int, client_host: str, local: str) -> int:
        return real_port + 10000

    def judge(self, conv, direction: str, data: bytes) -> list:
        return conv.feed_events(direction, data)


FRAMES = [("LoginOk", "3||"), ("ReturnDataSocketPort", "9001"),
          ("PrushCaramerAlarmInfo", "DEMO0001:motion"), ("ReturnDataSocketPort", ""),
          ("SocketCommand.Vendor.X", "a|b"), ("ReturnDataSocketPort", "9002")]


@settings(max_examples=60, deadline=None)
@given(dialect=st.sampled_from(["line", "lp32le", "lp32be:gbk"]),
       order=st.permutations(range(len(FRAMES))),
       cuts=st.lists(st.integers(1, 40), max_size=30))
def test_port_rewrite_is_independent_of_how_bytes_arrive(dialect: str, order: list[int],
                                                         cuts: list[int]) -> None:
    d = Dialect.parse(dialect)
    frames = [FRAMES[i] for i in order]
    stream = b"".join(encode(c, p, d) for c, p in frames)
    expected = b"".join(
        encode(c, str(int(p) + 10000) if c == "ReturnDataSocketPort" and p else p, d)
        for c, p in frames)
    log = MessageLog(d)
    ctx = _MainContext(_StubProxy(d), log.open("main", ("1.1.1.1", 1), ("2.2.2.2", 2)),
                       "1.1.1.1", "2.2.2.2")  # type: ignore[arg-type]

    async def run() -> bytes:
        out, pos = b"", 0
        for n in [*cuts, len(stream)]:
            chunk = stream[pos : pos + n]
            pos += len(chunk)
            if chunk:
                out += await ctx.s2c(chunk)
        return out + await ctx.s2c(b"", final=True)

    assert asyncio.run(run()) == expected
    # the log holds what the server sent, not the rewrite
    assert [(r.message.command, r.message.params) for r in log.rows()] == frames

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
    """Network tests must be quick: a hung socket fails in 10 s, not the global 120 s."""
    for item in items:
        if "tests/net/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.timeout(10))

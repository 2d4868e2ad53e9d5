"""Data-port specs and the pool's bookkeeping."""

from __future__ import annotations

import random

import pytest

from camprotool.net.addresses import format_endpoint, parse_endpoint
from camprotool.net.ports import DataPortPool, describe_ports, parse_data_ports


def test_parse_data_ports() -> None:
    assert parse_data_ports("9001-9003") == [9001, 9002, 9003]
    assert parse_data_ports("9001,9005-9006") == [9001, 9005, 9006]
    assert parse_data_ports("auto") == 20
    assert parse_data_ports("auto:3") == 3
    assert parse_data_ports(0) == 0
    assert parse_data_ports(range(5, 7)) == [5, 6]
    for bad in ("9003-9001", "x", "70000", "1,1", "auto:x"):
        with pytest.raises(ValueError, match="bad data ports"):
            parse_data_ports(bad)


def test_describe_ports() -> None:
    assert describe_ports(range(9001, 9021)) == "9001-9020"
    assert describe_ports([5, 1, 2, 3]) == "1-3,5"
    assert describe_ports([]) == "none"


def test_pool_reservations_are_single_use_and_bound_to_the_address() -> None:
    pool = DataPortPool([1, 2])
    a = pool.reserve("127.0.0.1", "demo", 0)
    b = pool.reserve("127.0.0.1", "demo", 0)
    assert {a.port, b.port} == {1, 2} and pool.reserve("127.0.0.1", "demo", 0) is None
    assert pool.claim(a.port, "127.0.0.2") is None  # wrong address: still reserved
    assert pool.claim(a.port, "::ffff:127.0.0.1") is not None  # same host, mapped form
    assert pool.claim(a.port, "127.0.0.1") is None  # once only
    assert pool.expire(b.port) and pool.free == 1
    assert pool.claim(b.port, "127.0.0.1") is None  # expired: refused
    pool.release(a.port)
    assert pool.claim(a.port, "127.0.0.1") is None  # used up: refused
    assert pool.refusals == {"wrong_address": 1, "in_use": 1, "unreserved": 2}


def test_ports_are_drawn_at_random_from_the_least_recently_used_half() -> None:
    ports = range(9001, 9021)
    draws = []
    for seed in range(200):
        pool = DataPortPool(ports, rng=random.Random(seed))
        draws.append(pool.reserve("h", "u", 0).port)
    assert set(draws) == set(range(9001, 9011))  # the LRU half, every port of it
    pool = DataPortPool(ports)  # system randomness by default
    for _ in range(20):
        res = pool.reserve("h", "u", 0)
        pool.claim(res.port, "h")
        pool.release(res.port)  # just used: goes to the back, not drawn next time
        assert res.port not in list(pool._free)[: pool.free // 2]


def test_endpoints() -> None:
    assert parse_endpoint("127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert parse_endpoint("[::1]:9000") == ("::1", 9000)
    assert parse_endpoint("localhost:0") == ("localhost", 0)
    assert parse_endpoint(":7", default_host="127.0.0.1") == ("127.0.0.1", 7)
    assert format_endpoint(("::1", 5)) == "[::1]:5"
    for bad in ("nohost", "h:99999", "::1:80", "h:x", "[::1]80"):
        with pytest.raises(ValueError, match="bad address"):
            parse_endpoint(bad)

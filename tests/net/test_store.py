"""The SQLite store: hashed passwords, login bookkeeping, bindings and their limit."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from camprotool.net import EmulatorServer
from camprotool.net.scenario import demo_scenario
from camprotool.net.store import BindOutcome, Store

FAST = {"scrypt_n": 1 << 10}


@pytest.fixture
def store() -> Store:
    return Store.from_scenario(None, **FAST)


def test_passwords_are_salted_scrypt_hashes(store: Store) -> None:
    rows = store._query("SELECT user, salt, pw_hash, kdf FROM accounts")
    assert len(rows) == 3
    for user, _salt, pw_hash, kdf in rows:
        assert user.encode() not in pw_hash and len(pw_hash) == 32
        assert kdf == "scrypt-lp:1024:8:1"
    assert len({salt for _, salt, _, _ in rows}) == 3
    assert store.check_password("demo", "demo")
    assert not store.check_password("demo", "Demo")
    assert not store.check_password("nobody", "demo")


def test_login_returns_the_previous_login(store: Store) -> None:
    first = store.login("demo", "demo", "10.0.0.1", when="2024-01-01 00:00:00")
    assert first is not None and (first.camera_count, first.last_login_time,
                                  first.last_login_ip) == (3, "", "")
    second = store.login("demo", "demo", "10.0.0.2")
    assert second is not None
    assert (second.last_login_time, second.last_login_ip) == ("2024-01-01 00:00:00", "10.0.0.1")
    assert store.login("demo", "wrong", "10.0.0.3") is None


def test_bind_outcomes(store: Store) -> None:
    assert store.bind("alice", "CAM00001", "1234")[0] is BindOutcome.BOUND
    assert store.bind("alice", "CAM00001", "1234")[0] is BindOutcome.ALREADY_BOUND
    assert store.bind("alice", "CAM00002", "nope")[0] is BindOutcome.MISMATCH
    assert store.bind("alice", "NOSUCH", "1234")[0] is BindOutcome.MISMATCH
    assert store.bind("alice", "DEMO0001", "1234")[0] is BindOutcome.FULL
    assert [c.id for c in store.cameras_of("alice")] == ["CAM00001"]
    assert store.owners("DEMO0001") == ["demo", "bob"]


def test_the_limit_holds_under_concurrent_binds(tmp_path) -> None:
    store = Store.from_scenario({"accounts": [{"user": f"u{i}", "password": "p"}
                                              for i in range(8)],
                                 "cameras": ["X"]}, tmp_path / "db.sqlite", **FAST)
    outcomes = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        barrier.wait()
        outcomes.append(store.bind(f"u{i}", "X", "1234")[0])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count(BindOutcome.BOUND) == 2
    assert outcomes.count(BindOutcome.FULL) == 6
    assert len(store.owners("X")) == 2


def test_a_file_database_keeps_bindings_and_is_not_reseeded(tmp_path) -> None:
    path = tmp_path / "emu.sqlite"
    with Store.from_scenario(None, path, **FAST) as s:
        s.bind("alice", "CAM00007", "1234")
    with Store(path, **FAST) as s:
        assert not s.is_empty()
        assert ("alice", "CAM00007") in s.bindings()
        s.load(demo_scenario())
        assert s.bindings().count(("alice", "CAM00007")) == 1  # loading is additive


def test_statuses_and_set_online(store: Store) -> None:
    assert store.statuses(["DEMO0001", "DEMO0002", "DEMO0003", "NOPE"]) == {
        "DEMO0001": True, "DEMO0002": False, "DEMO0003": None, "NOPE": None}
    assert store.set_online("DEMO0003", True) is True
    assert store.set_online("DEMO0003", True) is False
    with pytest.raises(KeyError):
        store.set_online("NOPE", True)


def test_bad_scrypt_cost() -> None:
    with pytest.raises(ValueError, match="power of two"):
        Store(scrypt_n=1000)


def foreign_database(path: Path) -> Path:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE accounts(name TEXT)")  # same table name, another schema
        db.commit()
    return path


def test_a_foreign_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = foreign_database(tmp_path / "other.sqlite")
    with pytest.raises(OSError, match=r"other\.sqlite: not a camprotool store \(.*user"):
        Store(path, **FAST)
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert tables == ["accounts"]  # nothing created in someone else's file


def camprotool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "camprotool", *args], capture_output=True,
                          text=True, timeout=8)


def test_serve_with_a_foreign_database_says_so_in_one_line(tmp_path: Path) -> None:
    path = foreign_database(tmp_path / "other.sqlite")
    done = camprotool("serve", "--port", "0", "--db", str(path))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "not a camprotool store" in done.stderr


@pytest.mark.parametrize("rate", ["inf", "nan", "-inf"])
def test_serve_refuses_a_non_finite_rate(rate: str) -> None:
    done = camprotool("serve", "--port", "0", "--simulate", rate)
    assert done.returncode != 0
    assert "--simulate" in done.stderr and "Traceback" not in done.stderr
    assert "listening" not in done.stdout


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_the_emulator_closes_its_own_file_store_on_stop(tmp_path: Path) -> None:
    path = tmp_path / "emu.sqlite"

    def open_fds() -> int:
        count = 0
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                count += str(path) in os.readlink(f"/proc/self/fd/{fd}")
        return count

    servers = []
    for _ in range(2):  # stop/start/stop: reopened on start, closed on each stop
        srv = EmulatorServer(db=path, **FAST)
        servers.append(srv)
        for _ in range(2):
            with srv, srv.client(heartbeat_interval=None, timeout=5) as client:
                client.login("alice", "alice")
                assert client.upload([("CAM00005", "1234")])[0].ok
            assert open_fds() == 0
    shared = Store(path, **FAST)  # a store passed in is the caller's: left open
    with EmulatorServer(store=shared):
        pass
    assert shared.bindings() == [*demo_bindings(), ("alice", "CAM00005")]
    shared.close()


def demo_bindings() -> list[tuple[str, str]]:
    return [(a.user, c) for a in demo_scenario().accounts for c in a.cameras]

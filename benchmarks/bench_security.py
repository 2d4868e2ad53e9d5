"""The figures of docs/security.md: what the emulator's defences hold, measured.

Run: ``.venv/bin/python benchmarks/bench_security.py [--guess-seconds 60]``.
Everything runs on loopback, the attacker on 127.0.0.2, the real user on
127.0.0.1, with the emulator's real password hashing (scrypt N=2**14):

* **connections held**: 1,000 idle sockets from the attacker's address (as
  many as ``max_connections``); how many the server keeps, and how long a
  login from the real user's address takes meanwhile;
* **guesses per second**: a guesser with 20 parallel connections trying
  passwords on ``demo`` for ``--guess-seconds``, without and with the brake
  (defaults), counting the passwords the server actually checked; and the
  real user's login time during the braked attack.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
import threading
import time

from camprotool.net import EmulatorServer
from camprotool.protocol import Decoder, Dialect, encode

ATTACKER = "127.0.0.2"
LINE = Dialect.parse("line")


def connect(address: tuple[str, int], source: str | None = None) -> socket.socket:
    return socket.create_connection(address, timeout=30,
                                    source_address=(source, 0) if source else None)


def login_seconds(address: tuple[str, int], user: str = "demo", password: str = "demo"
                  ) -> tuple[str, float]:
    """One login from 127.0.0.1: the answer's command and how long it took."""
    started = time.perf_counter()
    with connect(address) as s:
        s.sendall(encode("Login", f"{user}|{password}", LINE))
        dec = Decoder(LINE)
        while True:
            data = s.recv(4096)
            if not data:
                return "closed", time.perf_counter() - started
            msgs = dec.feed(data)
            if msgs:
                return msgs[0].command, time.perf_counter() - started


def connections_held(n: int = 1000) -> dict:
    with EmulatorServer() as srv:
        socks = []
        for _ in range(n):
            with contextlib.suppress(OSError):
                socks.append(connect(srv.address, ATTACKER))
        deadline = time.monotonic() + 30
        while (srv.stats["refused_per_address"] + 100 < n and time.monotonic() < deadline):
            time.sleep(0.05)
        answer, took = login_seconds(srv.address)
        held = len(socks) - srv.stats["refused_per_address"]
        result = {"opened": n, "held": held, "refused": srv.stats["refused_per_address"],
                  "login": answer, "login_s": round(took, 3)}
        for s in socks:
            s.close()
    return result


def guess(seconds: float, brake: bool, workers: int = 20) -> dict:
    """``workers`` threads guessing on ``demo`` from the attacker's address for ``seconds``."""
    with EmulatorServer(brake=brake) as srv:
        stop = threading.Event()
        sent = [0]

        def worker(k: int) -> None:
            dec = Decoder(LINE)
            n = 0
            while not stop.is_set():
                try:
                    with connect(srv.address, ATTACKER) as s:
                        s.settimeout(1.0)
                        while not stop.is_set():
                            s.sendall(encode("Login", f"demo|guess{k}-{n}", LINE))
                            n += 1
                            sent[0] += 1
                            got: list = []
                            while not got and not stop.is_set():
                                try:
                                    data = s.recv(4096)
                                except TimeoutError:
                                    continue
                                if not data:
                                    raise ConnectionError
                                got = dec.feed(data)
                except OSError:
                    dec = Decoder(LINE)
                    continue

        threads = [threading.Thread(target=worker, args=(k,), daemon=True)
                   for k in range(workers)]
        started = time.monotonic()
        for t in threads:
            t.start()
        logins = []
        while time.monotonic() - started < seconds:
            time.sleep(min(5.0, seconds / 4))
            logins.append(login_seconds(srv.address))
        stop.set()
        elapsed = time.monotonic() - started
        for t in threads:
            t.join(5)
        checked = srv.stats["logins_failed"] - srv.brake.stats["brake_refused"]
        return {"brake": brake, "seconds": round(elapsed, 1), "attempts": sent[0],
                "checked": checked, "checked_per_s": round(checked / elapsed, 2),
                "refused_unchecked": srv.brake.stats["brake_refused"],
                "lockouts": srv.brake.stats["brake_lockouts"],
                "real_user": sorted({a for a, _ in logins}),
                "real_user_login_s_max": round(max(t for _, t in logins), 3)}


def hash_cost(n: int = 20) -> dict:
    """CPU seconds of one password check (scrypt N=2**14), by ``time.process_time`` so a
    busy machine does not inflate it: what bounds guessing with two hashing workers."""
    from camprotool.net.scenario import load_scenario
    from camprotool.net.store import Store

    store = Store()
    store.load(load_scenario({"accounts": [{"user": "u", "password": "right"}]}))
    started = time.process_time()
    for _ in range(n):
        store.check_password("u", "wrong")
    cpu = (time.process_time() - started) / n
    store.close()
    return {"cpu_s_per_check": round(cpu, 4), "bound_per_s_with_2_workers": round(2 / cpu, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guess-seconds", type=float, default=60.0)
    parser.add_argument("--skip-held", action="store_true")
    args = parser.parse_args()
    logging.getLogger("camprotool").setLevel(logging.ERROR)
    print("password check cost:", hash_cost(), flush=True)
    if not args.skip_held:
        print("connections held:", connections_held(), flush=True)
    print("guessing, no brake:", guess(min(args.guess_seconds, 20.0), brake=False), flush=True)
    print("guessing, brake:   ", guess(args.guess_seconds, brake=True), flush=True)


if __name__ == "__main__":
    main()

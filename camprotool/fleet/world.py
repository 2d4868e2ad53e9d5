"""The deployment a fleet capture shows: servers with the emulator's store, and phones.

Why the emulator's :class:`~camprotool.net.store.Store`: whether an upload is
bound, refused for a wrong camera password, or refused because the camera is
already bound to its maximum of two accounts is the emulator's rule, kept in
one place; the generator asks the store as the emulator's handlers do and
answers with the emulator's own reason texts. Households share cameras, so
the third phone of a household that uploads a shared camera meets the
two-accounts limit, as in a real deployment.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field

from camprotool.net.store import Store

#: a cheap hash: these accounts exist only inside the generator (the emulator's
#: default cost is for passwords that matter)
SCRYPT_N = 2
MAX_ACCOUNTS = 2  # per camera, as the demo scenario (DESIGN.md)
MAIN_PORT = 9000
DATA_PORTS = range(9001, 9021)


@dataclass(slots=True)
class Phone:
    """One client app: its account, address and local camera list (id, password)."""

    user: str
    password: str
    ip: str
    cameras: list[tuple[str, str]]
    next_port: int
    sessions: int = 0

    def port(self) -> int:
        """The next ephemeral port (each connection takes one, as an OS would)."""
        port = self.next_port
        self.next_port = 40000 + (port - 40000 + 1) % 20000
        return port


@dataclass(slots=True)
class Server:
    """One cloud server: address, wire dialect, store, cameras and how noisy each is."""

    name: str
    ip: str
    dialect: str
    store: Store
    camera_ids: list[str]
    #: relative alarm/status event rate of each camera (a few cameras are very noisy)
    weight: dict[str, float] = field(default_factory=dict)
    phones: list[Phone] = field(default_factory=list)


def _camera_password(rng: random.Random) -> str:
    return "".join(rng.choice(string.digits) for _ in range(4))


def build_server(index: int, phones: int, rng: random.Random, dialect: str) -> Server:
    """Server ``index`` with ``phones`` accounts in households of one to four."""
    letter = string.ascii_lowercase[index % 26]
    store = Store(scrypt_n=SCRYPT_N)
    n_cams = max(8, phones * 5)
    ids = [f"{letter.upper()}{index // 26}{k:06d}" for k in range(1, n_cams + 1)]
    passwords = {cid: _camera_password(rng) for cid in ids}
    for cid in ids:
        store.add_camera(cid, passwords[cid], online=rng.random() < 0.8,
                         max_accounts=MAX_ACCOUNTS)
    server = Server(f"srv-{letter}", f"192.0.2.{10 + index}", dialect, store, ids,
                    {cid: rng.lognormvariate(0.0, 1.2) for cid in ids})
    pool = iter(rng.sample(ids, len(ids)))
    k = 0
    while k < phones:
        size = rng.choices([1, 2, 3, 4], weights=[40, 30, 20, 10])[0]
        shared = [next(pool, ids[0]) for _ in range(rng.randint(1, 5))] if size > 1 else []
        for _ in range(min(size, phones - k)):
            own = [next(pool, ids[-1]) for _ in range(rng.randint(0, 6))]
            local = []
            for cid in dict.fromkeys(shared + own):
                # a camera password mistyped into the app now and then
                pw = passwords[cid] if rng.random() > 0.04 else _camera_password(rng)
                local.append((cid, pw))
            user = f"{letter}{k:05d}"
            password = f"pw-{user}"
            store.add_account(user, password)
            ip = f"100.{64 + index}.{k // 250}.{k % 250 + 1}"
            server.phones.append(Phone(user, password, ip, local,
                                       40000 + rng.randrange(20000)))
            k += 1
    return server

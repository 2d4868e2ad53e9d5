"""The emulator's account/camera database: SQLite, in memory or in a file.

Why SQLite: it gives real transactions for free. A binding is committed
before the server answers ``UploadSucess``, inside ``BEGIN IMMEDIATE`` so two
accounts uploading the same camera at once cannot both squeeze past the
per-camera limit, and a file database runs in WAL mode with
``synchronous=FULL`` so an acknowledged binding survives a crash.

Account passwords are stored as ``hashlib.scrypt`` hashes with a per-account
random salt and compared with ``hmac.compare_digest``; a login for an unknown
user still pays for one hash so response time does not tell which accounts
exist. Camera passwords are stored as they are: the protocol itself hands
them back to owners in ``DownloadSucess``.

One :class:`Store` object may be used from several threads (the server's
event loop, a notebook cell inspecting it): every statement runs under one
lock. Hashing runs outside the lock, so the server can push it to a worker
thread without stalling other connections.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from camprotool.net.models import Camera
from camprotool.net.scenario import Scenario, load_scenario

SCRYPT_N = 1 << 14  # ~40 ms per hash on a laptop core, 16 MiB of memory
SCRYPT_R = 8
SCRYPT_P = 1
#: The hash of new passwords: scrypt of the length-prefixed UTF-8 password.
#: Plain ``scrypt`` (the first form, still verified) pads the key with zeros
#: (PBKDF2-HMAC), so ``demo`` and ``demo\x00`` hashed alike; a password
#: checked against a hash of that form is rehashed in the new one.
KDF = "scrypt-lp"
LEGACY_KDF = "scrypt"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    user            TEXT PRIMARY KEY,
    salt            BLOB NOT NULL,
    pw_hash         BLOB NOT NULL,
    kdf             TEXT NOT NULL,          -- 'scrypt:n:r:p', so costs can change later
    last_login_time TEXT NOT NULL DEFAULT '',
    last_login_ip   TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS cameras (
    id           TEXT PRIMARY KEY,
    password     TEXT NOT NULL,
    online       INTEGER,                   -- 1 online, 0 offline, NULL unknown
    max_accounts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS bindings (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,  -- download order = binding order
    user      TEXT NOT NULL REFERENCES accounts(user),
    camera_id TEXT NOT NULL REFERENCES cameras(id),
    bound_at  TEXT NOT NULL,
    UNIQUE (user, camera_id)
);
CREATE INDEX IF NOT EXISTS bindings_camera ON bindings(camera_id);
"""
#: The columns each table must have for a file to be taken for a store of ours.
_COLUMNS = {
    "accounts": ("user", "salt", "pw_hash", "kdf", "last_login_time", "last_login_ip"),
    "cameras": ("id", "password", "online", "max_accounts"),
    "bindings": ("seq", "user", "camera_id", "bound_at"),
}


class BindOutcome(enum.Enum):
    """What :meth:`Store.bind` did; the two refusals are the source's two reasons."""

    BOUND = "bound"
    ALREADY_BOUND = "already_bound"  # counts as success: the camera is this account's
    MISMATCH = "mismatch"  # unknown camera, or wrong camera password
    FULL = "full"  # bound to the maximum number of accounts

    @property
    def ok(self) -> bool:
        return self in (BindOutcome.BOUND, BindOutcome.ALREADY_BOUND)


@dataclass(frozen=True, slots=True)
class LoginInfo:
    """What ``LoginOk`` carries: the *previous* login, then the store records this one."""

    camera_count: int
    last_login_time: str
    last_login_ip: str


def _now() -> str:
    return datetime.now(UTC).strftime(TIME_FORMAT)


def _status(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _check_schema(db: sqlite3.Connection) -> None:
    """``sqlite3.Error`` unless ``db`` is empty or has our tables with our columns."""
    tables = {name for (name,) in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    if not tables:
        return  # a new file: the schema is created
    for table, columns in _COLUMNS.items():
        if table not in tables:
            raise sqlite3.OperationalError(f"no table {table}")
        db.execute(f"SELECT {', '.join(columns)} FROM {table} LIMIT 0")


class Store:
    """Accounts, cameras and bindings.

    ``path`` is ``":memory:"`` (the default: every server starts from its
    scenario) or a file, which keeps bindings across restarts. ``scrypt_n``
    trades login cost for hash strength; tests use a small one.

    A file holding other tables, or ours with other columns (another program's
    database, an old schema), is refused with ``OSError`` and left untouched.
    """

    def __init__(self, path: str | Path = ":memory:", *, scrypt_n: int = SCRYPT_N) -> None:
        if scrypt_n < 2 or scrypt_n & (scrypt_n - 1):
            raise ValueError(f"scrypt_n must be a power of two >= 2, got {scrypt_n}")
        self.path = str(path)
        self.scrypt_n = scrypt_n
        self._lock = threading.RLock()
        self._db = self._connect()
        self._closed = False
        self._dummy_salt = os.urandom(16)

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise OSError(f"cannot open database {self.path}: {exc}") from None
        try:
            _check_schema(db)
        except sqlite3.Error as exc:
            db.close()
            raise OSError(f"database {self.path}: not a camprotool store ({exc})") from None
        try:
            db.executescript(_SCHEMA)
            if self.path != ":memory:":
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            db.close()
            raise OSError(f"cannot open database {self.path}: {exc}") from None
        return db

    @classmethod
    def from_scenario(cls, scenario: Scenario | str | Path | dict | None = None,
                      path: str | Path = ":memory:", **kwargs: int) -> Store:
        store = cls(path, **kwargs)
        store.load(load_scenario(scenario))
        return store

    # ---------------------------------------------------------- plumbing
    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``: readers never see half a change."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: Iterable = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def reopen(self) -> None:
        """Open a closed file store again (what it holds is in the file); no-op when open.

        A closed ``:memory:`` store has lost its data, so it cannot be reopened.
        """
        with self._lock:
            if not self._closed:
                return
            if self.path == ":memory:":
                raise RuntimeError("a closed in-memory store cannot be reopened")
            self._db = self._connect()
            self._closed = False

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------- hashing
    def _hash(self, password: str, salt: bytes, n: int, r: int, p: int,
              kdf: str = KDF) -> bytes:
        key = password.encode("utf-8", "surrogatepass")
        if kdf != LEGACY_KDF:  # the length makes keys that differ only by NULs differ
            key = len(key).to_bytes(4, "big") + key
        return hashlib.scrypt(key, salt=salt, n=n, r=r, p=p,
                              maxmem=132 * n * r * p + (1 << 20), dklen=32)

    def _new_hash(self, password: str) -> tuple[bytes, bytes, str]:
        salt = os.urandom(16)
        kdf = f"{KDF}:{self.scrypt_n}:{SCRYPT_R}:{SCRYPT_P}"
        return salt, self._hash(password, salt, self.scrypt_n, SCRYPT_R, SCRYPT_P), kdf

    # ---------------------------------------------------------- loading
    def is_empty(self) -> bool:
        return not self._query("SELECT 1 FROM accounts LIMIT 1") and not self._query(
            "SELECT 1 FROM cameras LIMIT 1")

    def load(self, scenario: Scenario) -> None:
        """Add a scenario's accounts, cameras and bindings; what exists is kept.

        Additive (``INSERT OR IGNORE``) so loading into a file database that
        already holds users' bindings never drops one.
        """
        hashed = [(a, *self._new_hash(a.password)) for a in scenario.accounts]
        now = _now()
        with self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO cameras(id, password, online, max_accounts) "
                "VALUES (?, ?, ?, ?)",
                [(c.id, c.password, None if c.online is None else int(c.online),
                  c.max_accounts or scenario.max_accounts_per_camera)
                 for c in scenario.cameras],
            )
            db.executemany(
                "INSERT OR IGNORE INTO accounts(user, salt, pw_hash, kdf, last_login_time, "
                "last_login_ip) VALUES (?, ?, ?, ?, ?, ?)",
                [(a.user, salt, h, kdf, a.last_login_time, a.last_login_ip)
                 for a, salt, h, kdf in hashed],
            )
            db.executemany(
                "INSERT OR IGNORE INTO bindings(user, camera_id, bound_at) VALUES (?, ?, ?)",
                [(a.user, cid, now) for a in scenario.accounts for cid in a.cameras],
            )

    def add_account(self, user: str, password: str) -> None:
        salt, h, kdf = self._new_hash(password)
        with self._transaction() as db:
            db.execute("INSERT INTO accounts(user, salt, pw_hash, kdf) VALUES (?, ?, ?, ?)",
                       (user, salt, h, kdf))

    def add_camera(self, camera_id: str, password: str, online: bool | None = None,
                   max_accounts: int = 2) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO cameras(id, password, online, max_accounts) "
                       "VALUES (?, ?, ?, ?)",
                       (camera_id, password, None if online is None else int(online),
                        max_accounts))

    # ---------------------------------------------------------- accounts
    def check_password(self, user: str, password: str) -> bool:
        """Constant-work check: unknown users and refused passwords cost one hash too.

        A password holding NUL is refused (no account has one: the protocol's
        text cannot carry it usefully, and it is how zero-padding collisions
        are made). A right password stored in the legacy form is rehashed.
        """
        rows = self._query("SELECT salt, pw_hash, kdf FROM accounts WHERE user = ?", (user,))
        if not rows or "\x00" in password:
            self._hash(password, self._dummy_salt, self.scrypt_n, SCRYPT_R, SCRYPT_P)
            return False
        salt, stored, kdf = rows[0]
        name, n, r, p = kdf.split(":")
        ok = hmac.compare_digest(self._hash(password, salt, int(n), int(r), int(p), name),
                                 stored)
        if ok and name == LEGACY_KDF:
            self._upgrade(user, password, kdf)
        return ok

    def _upgrade(self, user: str, password: str, old_kdf: str) -> None:
        """Store ``password`` in the current form (unless another thread just did)."""
        salt, h, kdf = self._new_hash(password)
        with self._transaction() as db:
            db.execute("UPDATE accounts SET salt = ?, pw_hash = ?, kdf = ? "
                       "WHERE user = ? AND kdf = ?", (salt, h, kdf, user, old_kdf))

    def login(self, user: str, password: str, ip: str, when: str | None = None) -> LoginInfo | None:
        """Check the password; on success return the previous login and record this one."""
        if not self.check_password(user, password):
            return None
        with self._transaction() as db:
            last_time, last_ip = db.execute(
                "SELECT last_login_time, last_login_ip FROM accounts WHERE user = ?", (user,)
            ).fetchone()
            count = db.execute("SELECT COUNT(*) FROM bindings WHERE user = ?",
                               (user,)).fetchone()[0]
            db.execute("UPDATE accounts SET last_login_time = ?, last_login_ip = ? "
                       "WHERE user = ?", (when or _now(), ip, user))
        return LoginInfo(count, last_time, last_ip)

    def accounts(self) -> list[dict]:
        rows = self._query(
            "SELECT a.user, a.last_login_time, a.last_login_ip, COUNT(b.camera_id) "
            "FROM accounts a LEFT JOIN bindings b ON a.user = b.user GROUP BY a.user "
            "ORDER BY a.rowid")
        return [{"user": u, "last_login_time": t, "last_login_ip": ip, "cameras": n}
                for u, t, ip, n in rows]

    # ---------------------------------------------------------- cameras
    def camera(self, camera_id: str) -> Camera | None:
        rows = self._query("SELECT id, password, online FROM cameras WHERE id = ?", (camera_id,))
        return Camera(rows[0][0], rows[0][1], _status(rows[0][2])) if rows else None

    def cameras(self) -> list[Camera]:
        return [Camera(i, pw, _status(o)) for i, pw, o in
                self._query("SELECT id, password, online FROM cameras ORDER BY rowid")]

    def cameras_of(self, user: str) -> list[Camera]:
        """The account's cameras in binding order (the order downloads use)."""
        rows = self._query(
            "SELECT c.id, c.password, c.online FROM bindings b JOIN cameras c "
            "ON c.id = b.camera_id WHERE b.user = ? ORDER BY b.seq", (user,))
        return [Camera(i, pw, _status(o)) for i, pw, o in rows]

    def camera_count(self, user: str) -> int:
        return self._query("SELECT COUNT(*) FROM bindings WHERE user = ?", (user,))[0][0]

    def statuses(self, ids: Iterable[str]) -> dict[str, bool | None]:
        """Status of each id; unknown cameras are ``None`` (the protocol's ``null``)."""
        ids = list(ids)
        known: dict[str, bool | None] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            known.update(self._query(f"SELECT id, online FROM cameras WHERE id IN ({marks})",
                                     chunk))
        return {cid: _status(known.get(cid)) for cid in ids}

    def set_online(self, camera_id: str, online: bool | None) -> bool:
        """Set a camera's status; True if it changed. ``KeyError`` for an unknown camera."""
        value = None if online is None else int(bool(online))
        with self._transaction() as db:
            row = db.execute("SELECT online FROM cameras WHERE id = ?", (camera_id,)).fetchone()
            if row is None:
                raise KeyError(f"no camera {camera_id!r}")
            if row[0] == value:
                return False
            db.execute("UPDATE cameras SET online = ? WHERE id = ?", (value, camera_id))
            return True

    def owners(self, camera_id: str) -> list[str]:
        return [u for (u,) in self._query(
            "SELECT user FROM bindings WHERE camera_id = ? ORDER BY seq", (camera_id,))]

    # ---------------------------------------------------------- bindings
    def bind(self, user: str, camera_id: str, password: str) -> tuple[BindOutcome, Camera | None]:
        """Bind a camera to an account, committed before this returns."""
        with self._transaction() as db:
            row = db.execute("SELECT password, online, max_accounts FROM cameras WHERE id = ?",
                             (camera_id,)).fetchone()
            if row is None or not hmac.compare_digest(row[0].encode(), password.encode()):
                return BindOutcome.MISMATCH, None
            cam = Camera(camera_id, row[0], _status(row[1]))
            owners = [u for (u,) in db.execute(
                "SELECT user FROM bindings WHERE camera_id = ?", (camera_id,))]
            if user in owners:
                return BindOutcome.ALREADY_BOUND, cam
            if len(owners) >= row[2]:
                return BindOutcome.FULL, cam
            db.execute("INSERT INTO bindings(user, camera_id, bound_at) VALUES (?, ?, ?)",
                       (user, camera_id, _now()))
            return BindOutcome.BOUND, cam

    def unbind(self, user: str, camera_id: str) -> bool:
        with self._transaction() as db:
            return db.execute("DELETE FROM bindings WHERE user = ? AND camera_id = ?",
                              (user, camera_id)).rowcount > 0

    def bindings(self) -> list[tuple[str, str]]:
        """Every (user, camera_id) binding, in binding order."""
        return [(u, c) for u, c in self._query(
            "SELECT user, camera_id FROM bindings ORDER BY seq")]

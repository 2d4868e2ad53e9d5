"""Emulator scenarios: which accounts and cameras a fresh server knows.

A scenario is plain data (a JSON or TOML file, or a dict) so a test or a
notebook can describe exactly the world it needs::

    max_accounts_per_camera = 2          # default 2
    camera_password = "1234"             # default for cameras given as bare ids

    [[cameras]]
    id = "DEMO0001"
    password = "1234"
    online = true                        # true / false / omitted = unknown (null)

    [[accounts]]
    user = "demo"
    password = "demo"
    cameras = ["DEMO0001"]               # bound at load time (must exist or be listed)

``cameras`` may also list bare ids (``cameras = ["CAM1", "CAM2"]``). A
camera named only in an account's list is created with ``camera_password``.

The built-in :func:`demo_scenario` is part of the project's Contract (DESIGN.md)
and docs and examples rely on it, so it is spelled out here and not loaded
from a file that could drift.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MAX_ACCOUNTS = 2
DEFAULT_CAMERA_PASSWORD = "1234"
_FORBIDDEN = "|;:\r\n"


@dataclass(frozen=True, slots=True)
class CameraSpec:
    id: str
    password: str = DEFAULT_CAMERA_PASSWORD
    online: bool | None = None
    max_accounts: int | None = None  # None: the scenario's max_accounts_per_camera


@dataclass(frozen=True, slots=True)
class AccountSpec:
    user: str
    password: str
    cameras: tuple[str, ...] = ()
    last_login_time: str = ""
    last_login_ip: str = ""


@dataclass(frozen=True, slots=True)
class Scenario:
    accounts: tuple[AccountSpec, ...] = ()
    cameras: tuple[CameraSpec, ...] = ()
    max_accounts_per_camera: int = DEFAULT_MAX_ACCOUNTS
    name: str = field(default="custom", compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str = "custom") -> Scenario:
        """Validate and build; every error names the offending entry."""
        return _from_dict(data, name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_accounts_per_camera": self.max_accounts_per_camera,
            "cameras": [
                {k: v for k, v in (("id", c.id), ("password", c.password), ("online", c.online),
                                   ("max_accounts", c.max_accounts)) if v is not None}
                for c in self.cameras
            ],
            "accounts": [
                {"user": a.user, "password": a.password, "cameras": list(a.cameras)}
                for a in self.accounts
            ],
        }


def demo_scenario() -> Scenario:
    """The Contract's demo data.

    ``demo``/``demo`` owns DEMO0001-DEMO0003; ``bob``/``bob`` owns DEMO0001
    (so DEMO0001 is full at 2 accounts); ``alice``/``alice`` owns none;
    CAM00001-CAM00020 are unbound; every camera's password is ``1234``.

    Initial online status, chosen so a status query shows all three answers:
    DEMO0001 online (``true``), DEMO0002 offline (``false``), DEMO0003 unknown
    (``null``); the CAM cameras are unknown (never seen online).
    """
    demo = (
        CameraSpec("DEMO0001", online=True),
        CameraSpec("DEMO0002", online=False),
        CameraSpec("DEMO0003", online=None),
    )
    cams = tuple(CameraSpec(f"CAM{i:05d}") for i in range(1, 21))
    return Scenario(
        accounts=(
            AccountSpec("demo", "demo", ("DEMO0001", "DEMO0002", "DEMO0003")),
            AccountSpec("bob", "bob", ("DEMO0001",)),
            AccountSpec("alice", "alice", ()),
        ),
        cameras=demo + cams,
        max_accounts_per_camera=DEFAULT_MAX_ACCOUNTS,
        name="demo",
    )


def load_scenario(source: str | Path | Mapping[str, Any] | Scenario | None) -> Scenario:
    """A scenario from a ``.json``/``.toml`` file, a dict, or ``None`` (the demo)."""
    if source is None:
        return demo_scenario()
    if isinstance(source, Scenario):
        return source
    if isinstance(source, Mapping):
        return Scenario.from_dict(source)
    path = Path(source)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise OSError(f"cannot read scenario {path}: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(raw.decode("utf-8"))
        elif suffix == ".json":
            data = json.loads(raw.decode("utf-8"))
        else:
            raise ValueError(f"scenario {path}: expected a .json or .toml file")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"scenario {path}: not valid {suffix[1:].upper()}: {exc}") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"scenario {path}: the top level must be a table/object")
    try:
        return Scenario.from_dict(data, name=path.name)
    except ValueError as exc:
        raise ValueError(f"scenario {path}: {exc}") from None


# ------------------------------------------------------------------ parsing


def _text(value: Any, what: str, *, ident: bool = False) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    bad = [c for c in (_FORBIDDEN if ident else "|\r\n") if c in value]
    if bad:
        raise ValueError(f"{what} {value!r} contains {bad[0]!r}, which the protocol cannot carry")
    return value


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


def _status(value: Any, what: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "null", "none", ""):
        return {"true": True, "false": False}.get(value.lower())
    raise ValueError(f"{what} must be true, false or null, got {value!r}")


def _from_dict(data: Mapping[str, Any], name: str) -> Scenario:
    known = {"max_accounts_per_camera", "camera_password", "cameras", "accounts", "name"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (expected {', '.join(sorted(known))})")
    max_acc = _count(data.get("max_accounts_per_camera", DEFAULT_MAX_ACCOUNTS),
                     "max_accounts_per_camera")
    default_pw = _text(data.get("camera_password", DEFAULT_CAMERA_PASSWORD), "camera_password")
    cameras: dict[str, CameraSpec] = {}
    for i, item in enumerate(data.get("cameras", []) or []):
        where = f"cameras[{i}]"
        if isinstance(item, str):
            cam = CameraSpec(_text(item, where, ident=True), default_pw)
        elif isinstance(item, Mapping):
            extra = sorted(set(item) - {"id", "password", "online", "max_accounts"})
            if extra:
                raise ValueError(f"{where}: unknown key {extra[0]!r}")
            cam = CameraSpec(
                _text(item.get("id"), f"{where}.id", ident=True),
                _text(item.get("password", default_pw), f"{where}.password"),
                _status(item.get("online"), f"{where}.online"),
                None if item.get("max_accounts") is None
                else _count(item["max_accounts"], f"{where}.max_accounts"),
            )
        else:
            raise ValueError(f"{where} must be a camera id or a table, got {item!r}")
        if cam.id in cameras:
            raise ValueError(f"{where}: camera {cam.id!r} listed twice")
        cameras[cam.id] = cam
    accounts: dict[str, AccountSpec] = {}
    bound: dict[str, int] = {}
    for i, item in enumerate(data.get("accounts", []) or []):
        where = f"accounts[{i}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where} must be a table with user, password, cameras")
        extra = sorted(set(item) - {"user", "password", "cameras", "last_login_time",
                                    "last_login_ip"})
        if extra:
            raise ValueError(f"{where}: unknown key {extra[0]!r}")
        user = _text(item.get("user"), f"{where}.user")
        if user in accounts:
            raise ValueError(f"{where}: account {user!r} listed twice")
        cams = item.get("cameras", []) or []
        if not isinstance(cams, list):
            raise ValueError(f"{where}.cameras must be a list of camera ids")
        ids = tuple(dict.fromkeys(_text(c, f"{where}.cameras", ident=True) for c in cams))
        for cid in ids:
            if cid not in cameras:
                cameras[cid] = CameraSpec(cid, default_pw)
            bound[cid] = bound.get(cid, 0) + 1
        accounts[user] = AccountSpec(
            user,
            _text(item.get("password"), f"{where}.password"),
            ids,
            str(item.get("last_login_time", "") or ""),
            str(item.get("last_login_ip", "") or ""),
        )
    for cid, n in bound.items():
        limit = cameras[cid].max_accounts or max_acc
        if n > limit:
            raise ValueError(f"camera {cid!r} is bound to {n} accounts, more than its maximum "
                             f"of {limit}")
    return Scenario(tuple(accounts.values()), tuple(cameras.values()), max_acc,
                    name=str(data.get("name", name)))

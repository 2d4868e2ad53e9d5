"""Plain results the client returns and the store keeps: small frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Camera:
    """A camera as the protocol carries it: id, password, online (None = unknown)."""

    id: str
    password: str
    online: bool | None = None


@dataclass(frozen=True, slots=True)
class UploadResult:
    """The server's answer to one ``UploadCaramer``."""

    camera_id: str
    ok: bool
    online: bool | None = None  # from UploadSucess
    reason: str | None = None  # from UploadFail
    synced: int | None = None
    total: int | None = None


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What :meth:`Client.sync` decided and did.

    ``kind`` is ``"upload"`` (local list longer than the server's count),
    ``"download"`` (shorter) or ``"none"`` (equal: nothing to do, as the
    source document implies).
    """

    kind: str
    local_count: int
    server_count: int
    uploaded: list[UploadResult] = field(default_factory=list)
    cameras: list[Camera] = field(default_factory=list)

    @property
    def failed(self) -> list[UploadResult]:
        return [r for r in self.uploaded if not r.ok]


def as_camera(item: Any) -> Camera:
    """Accept ``(id, password)``, ``{"id"/"camera_id", "password"}`` or a Camera-like object."""
    if isinstance(item, Camera):
        return item
    if isinstance(item, tuple | list) and len(item) in (2, 3):
        return Camera(str(item[0]), str(item[1]), item[2] if len(item) == 3 else None)
    if isinstance(item, dict):
        cid = item.get("id", item.get("camera_id"))
        pw = item.get("password", item.get("camera_password"))
        if cid is not None and pw is not None:
            return Camera(str(cid), str(pw), item.get("online"))
    cid = getattr(item, "id", getattr(item, "camera_id", None))
    pw = getattr(item, "password", getattr(item, "camera_password", None))
    if cid is not None and pw is not None:
        return Camera(str(cid), str(pw), getattr(item, "online", None))
    raise ValueError(f"not a camera: {item!r} (expected (id, password))")

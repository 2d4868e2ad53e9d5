"""What the server says about each camera: the one camera-status model.

The protocol tells a client a camera's online status four ways (a status push,
a status answer, an upload or a download answer) and pushes alarms. Two
places need what that adds up to: ``Capture.status`` / ``Capture.alarms``
(a capture's whole history, :mod:`camprotool.analysis.tables`) and the
``ClientPanel``'s camera grid and alarm list (a live client). So the rule is
written once, here, without sockets, clocks or pandas: feed
:class:`StatusModel` messages in the order they happened and it returns what
each one said (:class:`Observation`, :class:`Alarm`) and keeps every
camera's current :class:`CameraState`. The capture table is built by a
vectorised twin (``tables.build_status``: a million messages in NumPy, not a
Python loop), held equal to this model by a property test
(``tests/analysis/test_status_twin.py``).

The rules (``docs/analysis.md``, ``cap.status`` and ``cap.alarms``):

* only server messages (``s2c``: answers and pushes) decoded without error
  count; ``UploadFail`` and ``DownloadFail`` carry no status;
* ``PrushCaramerOnlineStatus`` is a ``push``, each pair of a
  ``ReturnCaramerOnlineStatus`` a ``query`` (in the answer's order);
  ``UploadSucess`` / ``DownloadSucess`` are ``upload`` / ``download`` only on a
  data connection (where the protocol sends them);
* ``null`` (the server does not know) is a status of its own, so
  ``null -> true`` is a change; ``previous`` is None for a camera's first
  observation and after a ``null``;
* ``time_in_previous_ns`` runs from the first observation of the previous
  observation's run of equal statuses, so for an unchanged observation it is
  the time since the status last changed (None for the first);
* an alarm carries its camera's last observed status (None when never
  observed).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

from camprotool.protocol.message_base import Message
from camprotool.protocol.typed_messages import (
    DownloadSucess,
    PrushCaramerAlarmInfo,
    PrushCaramerOnlineStatus,
    ReturnCaramerOnlineStatus,
    UploadSucess,
)

#: ``Capture.status.source`` categories, in this order
SOURCES: tuple[str, ...] = ("push", "query", "upload", "download")
#: command -> (the source of its observations, whether only a data connection's count)
OBSERVING: dict[str, tuple[str, bool]] = {
    "PrushCaramerOnlineStatus": ("push", False),
    "ReturnCaramerOnlineStatus": ("query", False),
    "UploadSucess": ("upload", True),
    "DownloadSucess": ("download", True),
}
#: the command that pushes an alarm
ALARM = "PrushCaramerAlarmInfo"


class Observation(NamedTuple):
    """One thing the server said about one camera's status (a row of ``Capture.status``)."""

    ts_ns: int
    camera_id: str
    online: bool | None
    source: str  # one of SOURCES
    previous: bool | None  # the previous observed status; None: first, or it was null
    changed: bool  # differs from the previous observation (False for the first)
    time_in_previous_ns: int | None  # None for the camera's first observation
    message: int | None  # the caller's index of the message (a capture's message label)


class Alarm(NamedTuple):
    """One alarm push (a row of ``Capture.alarms``); ``ts_ns, camera_id, alarm_type``
    first, so it reads as the triple the panel's alarm plot takes."""

    ts_ns: int
    camera_id: str
    alarm_type: str
    online: bool | None  # the camera's last observed status; None: never observed
    message: int | None  # the caller's index of the message


Event = Observation | Alarm


@dataclass(slots=True)
class CameraState:
    """What is known about one camera now."""

    camera_id: str
    online: bool | None = None
    observed: bool = False  # any status observation yet (an alarm alone makes a state)
    source: str = ""  # where the last observation came from ("" before one)
    ts_ns: int = 0  # time of the last observation
    run_start_ns: int = 0  # first observation of the current run of equal statuses
    observations: int = 0
    alarms: int = 0
    last_alarm: str | None = None  # its alarm_type
    last_alarm_ns: int | None = None


class StatusModel:
    """Camera states and events from server messages fed in the order they happened.

    ``max_observations`` / ``max_alarms`` bound the history kept in
    :attr:`observations` / :attr:`alarms` (None: all; 0: none, when only the
    returned events or the current states matter). Not thread-safe: a caller
    feeding from one thread and reading from another holds its own lock.
    """

    __slots__ = ("alarms", "cameras", "observations")

    def __init__(self, *, max_observations: int | None = None,
                 max_alarms: int | None = None) -> None:
        self.cameras: dict[str, CameraState] = {}
        self.observations: deque[Observation] = deque(maxlen=max_observations)
        self.alarms: deque[Alarm] = deque(maxlen=max_alarms)

    def feed(self, message: Message, ts_ns: int, *, direction: str = "s2c",
             channel: str = "main", index: int | None = None) -> list[Event]:
        """What ``message`` (seen at ``ts_ns`` going ``direction`` on a ``channel``
        connection) says; the states are updated. ``index`` becomes the events'
        ``message`` (a capture's message label, a log position)."""
        if direction != "s2c" or message.error is not None:
            return []
        found: list[tuple[str | None, bool | None]]
        if isinstance(message, PrushCaramerOnlineStatus):
            found = [(message.camera_id, message.online)]
        elif isinstance(message, ReturnCaramerOnlineStatus):
            found = list(message.statuses or ())
        elif isinstance(message, UploadSucess | DownloadSucess):
            if channel != "data":
                return []
            found = [(message.camera_id, message.online)]
        elif isinstance(message, PrushCaramerAlarmInfo):
            alarm = self._alarm(ts_ns, message, index)
            return [] if alarm is None else [alarm]
        else:
            return []
        source = OBSERVING[message.command][0]
        return [self._observe(ts_ns, cid, online, source, index)
                for cid, online in found if cid is not None]

    def _observe(self, ts_ns: int, camera_id: str, online: bool | None, source: str,
                 index: int | None) -> Observation:
        cam = self._camera(camera_id)
        if cam.observed:
            previous, changed = cam.online, cam.online != online
            since: int | None = ts_ns - cam.run_start_ns
            if changed:
                cam.run_start_ns = ts_ns
        else:
            previous, changed, since = None, False, None
            cam.observed, cam.run_start_ns = True, ts_ns
        cam.online, cam.source, cam.ts_ns = online, source, ts_ns
        cam.observations += 1
        obs = Observation(ts_ns, camera_id, online, source, previous, changed, since, index)
        self.observations.append(obs)
        return obs

    def _alarm(self, ts_ns: int, message: PrushCaramerAlarmInfo, index: int | None
               ) -> Alarm | None:
        if message.camera_id is None:  # cannot happen without an error; typed as optional
            return None
        cam = self._camera(message.camera_id)
        kind = message.alarm_type or ""
        alarm = Alarm(ts_ns, cam.camera_id, kind, cam.online if cam.observed else None, index)
        cam.alarms += 1
        cam.last_alarm, cam.last_alarm_ns = kind, ts_ns
        self.alarms.append(alarm)
        return alarm

    def _camera(self, camera_id: str) -> CameraState:
        cam = self.cameras.get(camera_id)
        if cam is None:
            cam = self.cameras[camera_id] = CameraState(camera_id)
        return cam

    def clear(self) -> None:
        """Forget every camera and the history."""
        self.cameras.clear()
        self.observations.clear()
        self.alarms.clear()

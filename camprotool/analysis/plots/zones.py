"""Display zones: the tables stay in UTC, the axes show wall-clock time in a zone.

matplotlib's date axes draw naive datetimes, so every plot converts its UTC
times once, here, to naive wall-clock time in the zone the user asked for;
the zone's name then goes into the axis label.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd


def local_zone() -> dt.tzinfo:
    """The machine's zone: ``$TZ``, else ``/etc/localtime``'s name, else the current offset."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    try:
        target = str(Path("/etc/localtime").resolve())
        if "zoneinfo/" in target:
            return ZoneInfo(target.split("zoneinfo/", 1)[1])
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    return dt.datetime.now().astimezone().tzinfo or dt.UTC


def resolve_tz(tz: str | dt.tzinfo | None) -> dt.tzinfo:
    """A display zone from an IANA name, ``"UTC"``, ``"local"``, a tzinfo, or None (local).

    Raises ``ValueError`` naming the zone when it is unknown.
    """
    if tz is None:
        return local_zone()
    if isinstance(tz, dt.tzinfo):
        return tz
    if not isinstance(tz, str):
        raise TypeError(f"tz must be a zone name or a tzinfo, not {type(tz).__name__}")
    name = tz.strip()
    if name.lower() == "local":
        return local_zone()
    if name.upper() in ("UTC", "Z"):
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {tz!r}: use an IANA name such as 'Europe/Paris', "
                         "'Asia/Shanghai' or 'UTC'") from None


def zone_name(zone: dt.tzinfo) -> str:
    """The zone's IANA name when it has one (``Europe/Paris``), else its ``str``."""
    return getattr(zone, "key", None) or str(zone)


def wall(ts: pd.Series | pd.Index, zone: dt.tzinfo) -> np.ndarray:
    """UTC timestamps as naive wall-clock datetime64 in ``zone``: what the axes show."""
    ts = pd.to_datetime(pd.Series(ts), utc=True)
    return ts.dt.tz_convert(zone).dt.tz_localize(None).to_numpy("datetime64[ns]")


def wall_one(t: object, zone: dt.tzinfo) -> np.datetime64:
    """One UTC time as naive wall-clock datetime64 in ``zone``."""
    return wall(pd.Series([t]), zone)[0]

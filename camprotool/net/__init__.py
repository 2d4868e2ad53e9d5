"""Talk the protocol: emulated server, client and recording proxy.

All three work from a notebook cell without blocking the kernel's event loop
(each runs its own loop in a background thread) and from asyncio code
(:class:`AsyncClient`, ``async with EmulatorServer()``/``Proxy``).
"""

from camprotool.net.client import AsyncClient, Client
from camprotool.net.errors import (
    ConnectionLost,
    LoginFailed,
    NetError,
    NoDataPort,
    NotConnected,
    ReplyTimeout,
    SyncError,
)
from camprotool.net.handlers import REASONS
from camprotool.net.models import Camera, SyncResult, UploadResult
from camprotool.net.proxy import Proxy
from camprotool.net.recording import MessageLog, RecordingUnavailable
from camprotool.net.replay import ReplayResult, ReplayServer, replay_client
from camprotool.net.scenario import Scenario, demo_scenario, load_scenario
from camprotool.net.server import EmulatorServer
from camprotool.net.store import BindOutcome, Store

__all__ = [
    "REASONS",
    "AsyncClient",
    "BindOutcome",
    "Camera",
    "Client",
    "ConnectionLost",
    "EmulatorServer",
    "LoginFailed",
    "MessageLog",
    "NetError",
    "NoDataPort",
    "NotConnected",
    "Proxy",
    "RecordingUnavailable",
    "ReplayResult",
    "ReplayServer",
    "ReplyTimeout",
    "Scenario",
    "Store",
    "SyncError",
    "SyncResult",
    "UploadResult",
    "demo_scenario",
    "load_scenario",
    "replay_client",
]

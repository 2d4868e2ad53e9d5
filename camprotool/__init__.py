"""camprotool: decode, check, plot and talk the SocketCommand camera-sync protocol."""

from camprotool.analysis.capture import Capture, read_capture
from camprotool.net import AsyncClient, Client, EmulatorServer, Proxy
from camprotool.protocol import (
    COMMANDS,
    Decoder,
    Dialect,
    LocalProtocolError,
    Message,
    ProtocolError,
    UnknownMessage,
    decode_all,
    encode,
)

__version__ = "0.1.0"

__all__ = [
    "COMMANDS",
    "AsyncClient",
    "Capture",
    "Client",
    "Decoder",
    "Dialect",
    "EmulatorServer",
    "LocalProtocolError",
    "Message",
    "ProtocolError",
    "Proxy",
    "UnknownMessage",
    "__version__",
    "decode_all",
    "encode",
    "read_capture",
]

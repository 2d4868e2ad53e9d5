"""The sans-I/O protocol core: catalogue, dialects, codec, detection and session rules.

Nothing in this package touches sockets, files or clocks: capture decoding,
the client, the emulated server and the proxy all feed it bytes.
"""

from camprotool.protocol.catalogue import (
    BY_NAME,
    COMMANDS,
    FIELD_NAMES,
    MAX_STATUS_IDS,
    SECRET_FIELDS,
    Channel,
    CommandSpec,
    Direction,
    spec_for,
)
from camprotool.protocol.codec import Decoder, decode_all, encode, encode_message
from camprotool.protocol.dialect import LINE, Dialect
from camprotool.protocol.errors import LocalProtocolError, ProtocolError
from camprotool.protocol.fields import format_params, parse_params
from camprotool.protocol.messages import MESSAGE_TYPES, Message, UnknownMessage, build_message

__all__ = [
    "BY_NAME",
    "COMMANDS",
    "FIELD_NAMES",
    "LINE",
    "MAX_STATUS_IDS",
    "MESSAGE_TYPES",
    "SECRET_FIELDS",
    "Channel",
    "CommandSpec",
    "Decoder",
    "Dialect",
    "Direction",
    "LocalProtocolError",
    "Message",
    "ProtocolError",
    "UnknownMessage",
    "build_message",
    "decode_all",
    "encode",
    "encode_message",
    "format_params",
    "parse_params",
    "spec_for",
]

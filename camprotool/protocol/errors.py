"""One exception root for the protocol core.

Following h11: a *local* error means the caller misused the API (asked to
encode what a dialect cannot carry, named an unknown dialect) and is raised; a
*remote* mistake (the peer sent garbage) is never raised by decoders: it
becomes a message with ``error`` set, or a rule violation, both plain values.
"""


class ProtocolError(Exception):
    """Root of every exception camprotool's protocol core raises."""


class LocalProtocolError(ProtocolError, ValueError):
    """The caller asked for something the protocol or dialect cannot do."""

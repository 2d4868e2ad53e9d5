"""Errors the network layer raises: one root, under the protocol core's root.

Following the project's rule (STYLE.md): a *peer's* mistake seen by a server
or proxy is logged and closes that connection, it is never raised into the
caller; what reaches the caller of a :class:`~camprotool.net.client.Client`
method is a refusal the server sent (:class:`LoginFailed`, :class:`NoDataPort`)
or a broken conversation (:class:`ConnectionLost`, :class:`ReplyTimeout`).
"""

from __future__ import annotations

from camprotool.protocol.errors import ProtocolError


class NetError(ProtocolError):
    """Root of the errors the client, server and proxy raise."""


class LoginFailed(NetError):
    """The server answered ``LoginError``; ``reason`` is its text, verbatim."""

    def __init__(self, reason: str, command: str = "Login") -> None:
        self.reason = reason
        self.command = command
        super().__init__(f"{command} refused by the server: {reason}")


class NotConnected(NetError):
    """A method needs a connection (or a login) that is not there."""


class NoDataPort(NetError):
    """``ReturnDataSocketPort`` came back empty: the server has no free data port."""

    def __init__(self) -> None:
        super().__init__(
            "the server has no free data port (ReturnDataSocketPort was empty); try again later"
        )


class ConnectionLost(NetError, ConnectionError):
    """The peer closed the connection while we were waiting for an answer."""


class ReplyTimeout(NetError, TimeoutError):
    """No answer within the client's timeout."""


class SyncError(NetError):
    """A data-connection transfer broke off or got an answer it cannot use."""

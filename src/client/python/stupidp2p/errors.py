"""Exceptions raised by :class:`stupidp2p.Client`.

Everything derives from :class:`P2PError`.  A request the server refused
raises a :class:`RequestFailed` subclass chosen by the reason byte of the
reply (protocol v2); a v1 server only says "failure", which raises
:class:`RequestFailed` itself with ``status == 0``.
"""

from __future__ import annotations

from typing import Dict, Optional, Type

from . import protocol as P


class P2PError(Exception):
    """Base class of every error raised by this package."""


class ConnectError(P2PError, ConnectionError):
    """The server could not be reached, or did not complete the handshake."""


class NotConnectedError(P2PError, ConnectionError):
    """The client has no working connection now (it may be reconnecting)."""


class ConnectionLostError(NotConnectedError):
    """The connection dropped while the request waited for its reply."""


class ClientClosedError(P2PError):
    """The client was closed (by :meth:`Client.close` or by the server)."""


class ClosedByServer(ClientClosedError):
    """The client closed itself because reconnecting would only fight the
    server or another client: the server closed the connection without a
    word (EOF or reset), each time within ``stable_time`` of its making,
    ``max_quick_closes`` times in a row.  A v1 server does this to the
    previous holder of an id that another connection registers, so two
    clients holding one id would otherwise take it from each other forever.
    (A v2 server says BYE "taken over" instead: see :class:`IdTakenOver`.)

    Attributes:
        bye: the :class:`~stupidp2p.Bye` that ended it, or None.
        closes: the quick closes counted.
    """

    def __init__(self, message: str, bye: Optional[object] = None,
                 closes: int = 0) -> None:
        super().__init__(message)
        self.bye = bye
        self.closes = closes


class IdTakenOver(P2PError):
    """Why the client gave up its id: other connections took it over (v2:
    BYE "taken over") more than ``takeover_retries`` times in a row.  The
    client stays connected, without an id (:attr:`Client.id_lost`).

    Attributes:
        bye: the last :class:`~stupidp2p.Bye`.
        takeovers: the takeovers counted.
    """

    def __init__(self, message: str, bye: Optional[object] = None,
                 takeovers: int = 0) -> None:
        super().__init__(message)
        self.bye = bye
        self.takeovers = takeovers


class RequestTimeout(P2PError, TimeoutError):
    """No reply arrived within the client's timeout."""


class ProtocolError(P2PError):
    """The server sent something the protocol does not allow."""


class MessageTooLarge(P2PError, ValueError):
    """The frame would exceed the server's ``max_frame``."""


class RequestFailed(P2PError):
    """The server answered a request with a failure status.

    Attributes:
        command: the request's command byte (``protocol.CMD_*``).
        status: the status byte of the reply (0 generic; v2 reasons 2..7).
    """

    def __init__(self, command: int, status: int,
                 message: Optional[str] = None) -> None:
        self.command = command
        self.status = status
        name = P.COMMAND_NAMES.get(command, "0x%02x" % command)
        super().__init__(message or "%s failed: %s (status %d)"
                         % (name, self.reason_text(status), status))

    @staticmethod
    def reason_text(status: int) -> str:
        """A short description of a status byte."""
        return _REASON_TEXT.get(status, "unknown reason")


class NotRegistered(RequestFailed):
    """Status 2: the caller holds no id."""


class TargetOffline(RequestFailed):
    """Status 3: the target device is offline or unknown."""


class BadArgument(RequestFailed):
    """Status 4: empty or over-long id, own id, or a malformed request."""


class NotAuthorized(RequestFailed):
    """Status 5: not authorized (a REGISTER of an id only AUTH may claim, a
    device that does not let this one reach it, a SEND_TO to a v1 session
    that does not subscribe to this device)."""


class AuthError(NotAuthorized):
    """The server refused this client's AUTH (a wrong token, or an id the
    server does not protect), or withdrew the id it had authenticated (BYE
    "not authorized" after its auth file changed).  ``command`` is
    ``protocol.CMD_AUTH``."""


class Unsupported(RequestFailed):
    """Status 6: the server (or the negotiated session) lacks the command."""


class LimitReached(RequestFailed):
    """Status 7: a server limit was reached."""


_REASON_TEXT: Dict[int, str] = {
    P.STATUS_FAILURE: "failure",
    P.STATUS_NOT_REGISTERED: "not registered",
    P.STATUS_OFFLINE: "target offline or unknown",
    P.STATUS_BAD_ARGUMENT: "bad argument",
    P.STATUS_NOT_AUTHORIZED: "not authorized",
    P.STATUS_UNSUPPORTED: "unsupported command",
    P.STATUS_LIMIT: "limit reached",
}

_BY_STATUS: Dict[int, Type[RequestFailed]] = {
    P.STATUS_NOT_REGISTERED: NotRegistered,
    P.STATUS_OFFLINE: TargetOffline,
    P.STATUS_BAD_ARGUMENT: BadArgument,
    P.STATUS_NOT_AUTHORIZED: NotAuthorized,
    P.STATUS_UNSUPPORTED: Unsupported,
    P.STATUS_LIMIT: LimitReached,
}


def error_for_status(command: int, status: int,
                     message: Optional[str] = None) -> RequestFailed:
    """Return the exception for a failure reply ``[command|0x80, status]``."""
    return _BY_STATUS.get(status, RequestFailed)(command, status, message)

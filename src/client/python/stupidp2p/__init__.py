"""stupidp2p: a standard-library client for the stupidP2P relay server.

Two faces:

* :class:`Client` - the Pythonic API: typed exceptions, :class:`Message`
  objects with the sender id (protocol v2), callbacks, automatic reconnect
  that restores the id and subscriptions.
* :class:`stupidP2PClient` - the original client's API and return values,
  so programs written for the original run unchanged (also importable as
  ``from stupidP2P import stupidP2PClient``).

:mod:`stupidp2p.codec` encodes and parses every frame of the protocol
(:mod:`stupidp2p.protocol` holds its constants); :mod:`stupidp2p.auth`
holds AUTH's arithmetic and reads token files.  ``Client(..., token=...)``
claims the id with AUTH; ``tls=True`` or ``ssl_context=`` connect with TLS;
``slow_consumer="drop"`` asks the server to drop messages rather than
disconnect a client that falls behind, and to say how many (:class:`Gap`);
``direct=True`` makes direct paths to other devices for :meth:`Client.send_to`
(:mod:`stupidp2p.direct`, :meth:`Client.connect_direct`, :class:`Path`).
``python3 -m stupidp2p chat --server HOST:PORT --me ID --peer ID`` is a
terminal chat.
"""

from . import auth, codec, direct_proof, protocol
from .client import (SLOW_DISCONNECT, SLOW_DROP, Bye, Client, ConnectionState,
                     Gap, Message)
from .direct import (DIRECT_ACCEPT, DIRECT_AUTO, DIRECT_OFF, PATH_DIRECT,
                     PATH_RELAY, Path)
from .compat import stupidP2PClient
from .errors import (AuthError, BadArgument, ClientClosedError,
                     ClosedByServer, ConnectError, ConnectionLostError,
                     IdTakenOver, LimitReached, MessageTooLarge,
                     NotAuthorized, NotConnectedError, NotRegistered,
                     P2PError, ProtocolError, RequestFailed, RequestTimeout,
                     TargetOffline, Unsupported)

try:  # an installed copy: written by the build backend
    from ._version import __version__
except ImportError:  # the source tree: the project's one version file
    import os as _os

    with open(_os.path.join(_os.path.dirname(__file__), "..", "..", "..", "..", "VERSION"),
              encoding="ascii") as _f:
        __version__ = _f.read().strip()
    del _os, _f

__all__ = [
    "Client", "Message", "Gap", "Bye", "ConnectionState", "stupidP2PClient",
    "SLOW_DISCONNECT", "SLOW_DROP", "Path", "PATH_RELAY", "PATH_DIRECT",
    "DIRECT_OFF", "DIRECT_ACCEPT", "DIRECT_AUTO",
    "auth", "codec", "direct_proof", "protocol", "P2PError", "ConnectError", "NotConnectedError",
    "ConnectionLostError", "ClientClosedError", "ClosedByServer",
    "RequestTimeout", "ProtocolError", "MessageTooLarge", "RequestFailed",
    "NotRegistered", "TargetOffline", "BadArgument", "NotAuthorized", "Unsupported",
    "LimitReached", "AuthError", "IdTakenOver", "__version__",
]

"""The original stupidP2P Python API, on top of :class:`stupidp2p.Client`.

A program written for the original client runs unchanged with::

    from stupidp2p import stupidP2PClient     # or, unchanged:
    from stupidP2P import stupidP2PClient

Every command returns the original's status values: ``1`` success, ``0``
failure (whatever reason a v2 server gave, and also when the client is not
initialised or not connected), ``0xff`` no reply within the timeout.
:meth:`stupidP2PClient.recvData` returns a list of messages, each a list of
byte values, as the original did.

What is better than the original (same calls, same values): replies are
waited for on an event instead of a 10 ms poll; EOF is noticed at once;
reconnects back off with full jitter and restore the id and subscriptions by
themselves; frames are parsed by length; data is written whole, within the
timeout (0xff when it cannot be); the threads are daemons, so a program may
exit with a client open; nothing is printed.  Against a v2 server,
subscribing to an offline device succeeds (the subscription takes effect
when the device comes online), where the original protocol refused it.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Union

from .auth import AuthKeys
from .client import Client
from .errors import P2PError, RequestTimeout

__all__ = ["stupidP2PClient", "SUCCESS", "FAILURE", "NO_REPLY"]

SUCCESS = 0x1
FAILURE = 0x0
NO_REPLY = 0xFF


class stupidP2PClient:  # noqa: N801 - the original's name
    """Drop-in replacement for the original ``stupidP2PClient``.

    Args:
        serverIp, serverPort: the server.
        deviceId: optional; an early version of the original took the id
            here and ``registerDevice()`` without an argument.
        token: the device's token (str or bytes): ``registerDevice`` then
            claims the id with AUTH, and returns 0 when the server refuses
            it (or cannot authenticate).  Keyword only.
        **options: passed to :class:`stupidp2p.Client` (``heartbeat``,
            ``timeout``, ``queue_size``, ``version``, ``tls``,
            ``ssl_context``, ...).  The default queue holds 4096 messages,
            like the original's.

    Raises:
        ValueError: a token not of its form (before any connection).
    """

    def __init__(self, serverIp: str, serverPort: int,
                 deviceId: Optional[str] = None, *,
                 token: Optional[Union[str, bytes]] = None,
                 **options: Any) -> None:
        self.serverIp = serverIp
        self.serverPort = serverPort
        self.deviceId = deviceId
        if token is not None:
            # Checked now, and kept as the keys derived from it (every
            # initClient makes a Client with them), not as the token.
            options["token"] = AuthKeys.from_token(token)
        self._options = options
        self._client: Optional[Client] = None

    # ---- lifecycle ------------------------------------------------------

    def initClient(self) -> bool:
        """Connect to the server; True on success, False otherwise.

        Reconnecting (when the connection is later lost) starts only after
        a successful init, as in the original.
        """
        if self._client is not None and not self._client.closed:
            return True
        client = Client(self.serverIp, int(self.serverPort), connect=False,
                        **self._options)
        try:
            client.connect()
        except P2PError:
            client.close()
            return False
        self._client = client
        return True

    def deinitClient(self) -> None:
        """Close the connection and stop the threads.  Idempotent."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def restartClient(self) -> bool:
        """Close and connect again now; True on success.

        The original looped without a pause until it succeeded; this makes
        one attempt (the automatic reconnect already retries with backoff).
        The id and subscriptions are not carried over.
        """
        self.deinitClient()
        return self.initClient()

    @property
    def runningFlag(self) -> int:
        """1 while initialised (the original's attribute), else 0."""
        return 1 if self._client is not None and not self._client.closed \
            else 0

    @property
    def client(self) -> Optional[Client]:
        """The underlying :class:`stupidp2p.Client`, for new code."""
        return self._client

    # ---- commands -------------------------------------------------------

    def _status(self, fn: Callable[..., Any], *args: Any) -> int:
        if self._client is None:
            return FAILURE
        try:
            result = fn(*args)
        except RequestTimeout:
            return NO_REPLY
        except P2PError:
            return FAILURE
        if result is False:
            return FAILURE
        return SUCCESS

    def registerDevice(self, deviceId: Optional[str] = None) -> int:
        """Register this device's id; 1, 0 or 0xff."""
        if deviceId is not None:
            self.deviceId = deviceId
        if self._client is None or self.deviceId is None:
            return FAILURE
        return self._status(self._client.register, self.deviceId)

    def subscribeDevice(self, subscribeDeviceId: str) -> int:
        """Subscribe to a device; 1, 0 or 0xff."""
        c = self._client
        return self._status(c.subscribe, subscribeDeviceId) if c else FAILURE

    def sendData(self, data: Union[str, bytes]) -> int:
        """Send data (str or bytes) to this device's subscribers."""
        if len(data) == 0:
            return FAILURE
        c = self._client
        return self._status(c.send, data) if c else FAILURE

    def unregisterDevice(self) -> int:
        """Release this device's id (and its subscriptions); 1, 0 or 0xff."""
        c = self._client
        return self._status(c.unregister) if c else FAILURE

    def unsubscribeDevice(self, unsubscribeDeviceId: str) -> int:
        """Cancel a subscription; 1, 0 or 0xff."""
        c = self._client
        return self._status(c.unsubscribe, unsubscribeDeviceId) if c \
            else FAILURE

    def unscribeDevice(self, unscriveDeviceId: str) -> int:
        """The original's spelling of :meth:`unsubscribeDevice`."""
        return self.unsubscribeDevice(unscriveDeviceId)

    def checkDeviceAlive(self, checkDeviceId: str) -> int:
        """1 if the device is online, 0 if not, 0xff on no reply."""
        c = self._client
        return self._status(c.is_alive, checkDeviceId) if c else FAILURE

    def recvData(self) -> List[List[int]]:
        """Every message received since the last call, without waiting.

        Each message is a list of byte values (``bytes(m)`` gives it back
        as bytes), oldest first.
        """
        c = self._client
        if c is None:
            return []
        return [list(m.data) for m in c.recv_all()]

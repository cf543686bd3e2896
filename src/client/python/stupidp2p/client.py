"""The Pythonic stupidP2P client: :class:`Client` and :class:`Message`.

Design
------
One :class:`Client` owns at most one TCP connection at a time and two daemon
threads (daemon, so that a program may exit with a client still open):

* the **I/O thread** blocks in ``recv`` and hands every complete frame to
  the dispatcher: replies complete the oldest pending request, data goes to
  the bounded receive queue, presence and BYE go to the callbacks.  ``recv``
  returning ``b""`` is EOF: it is noticed at once, every waiting request
  fails with :class:`ConnectionLostError`, and the same thread reconnects
  (exponential backoff with full jitter) unless the client was closed.
* the **heartbeat thread** wakes every ``heartbeat`` seconds, sends a
  HEARTBEAT without waiting for it, and declares the connection dead when
  nothing at all has been received for ``max_missed`` heartbeat periods
  (a peer that vanished without a FIN).

Requests are pipelined: the protocol answers in request order, so each
connection keeps a FIFO of pending requests and the n-th reply completes the
n-th request.  A caller waits on its own :class:`threading.Event` with the
client's timeout; nothing polls.  A request that timed out stays in the FIFO
so that later replies still match.  Appending to the FIFO and writing the
frame happen under one lock, so FIFO order is wire order; frames are written
with ``sendall``.

Handshake: a new connection sends HELLO (version 2) and HEARTBEAT together,
followed by REGISTER and SUBSCRIBE for the id and subscriptions the client
held before, all in one write.  A v2 server answers HELLO first; an original
(v1-only) server ignores HELLO, so the HEARTBEAT reply comes first and the
session stays v1.  The connection is reported CONNECTED only after the id
and subscriptions are restored.

Callbacks run on the I/O thread: they must return quickly and must not wait
for replies (a request that would wait raises :class:`RuntimeError` there;
``send(..., wait=False)`` is allowed).
"""

from __future__ import annotations

import collections
import enum
import logging
import random
import socket
import threading
import time
from dataclasses import dataclass
from typing import (Callable, Deque, Dict, Iterator, List, Optional, Set,
                    Union)

from . import protocol as P
from .errors import (BadArgument, ClientClosedError, ConnectError,
                     ConnectionLostError, MessageTooLarge, NotConnectedError,
                     P2PError, ProtocolError, RequestFailed, RequestTimeout,
                     Unsupported, error_for_status)
from .frame import FrameDecoder, encode

__all__ = ["Client", "Message", "ConnectionState", "Bye", "DeviceId", "Data"]

log = logging.getLogger("stupidp2p")
# A library prints nothing unless the application configures logging.
log.addHandler(logging.NullHandler())

DeviceId = Union[str, bytes]
"""A device id: str (encoded as UTF-8) or bytes, 1 to 255 bytes."""

Data = Union[bytes, bytearray, memoryview, str]
"""Message data: bytes-like, or str (encoded as UTF-8)."""

# Received frames bigger than this are refused while the server's max_frame
# is unknown (a v1 server does not say it).
_V1_FRAME_CAP = 16 * 1024 * 1024
_RECV_CHUNK = 256 * 1024


def _id_bytes(device_id: DeviceId) -> bytes:
    """Encode an id; ids are arbitrary bytes, str is taken as UTF-8.

    ``surrogateescape`` makes ids received from the server (decoded the same
    way into :attr:`Message.sender`) round-trip exactly.
    """
    if isinstance(device_id, str):
        return device_id.encode("utf-8", "surrogateescape")
    if isinstance(device_id, (bytes, bytearray, memoryview)):
        return bytes(device_id)
    raise TypeError("device id must be str or bytes, not %s"
                    % type(device_id).__name__)


def _id_str(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _data_bytes(data: Data) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError("data must be bytes or str, not %s" % type(data).__name__)


class ConnectionState(enum.Enum):
    """Where a :class:`Client` stands; passed to the ``on_state`` callback."""

    CONNECTING = "connecting"
    """Before the first connection."""
    CONNECTED = "connected"
    """Connected, handshake done, id and subscriptions restored."""
    DISCONNECTED = "disconnected"
    """The connection was lost; reconnecting unless reconnect is off."""
    CLOSED = "closed"
    """Closed for good, by :meth:`Client.close` or by the server."""


@dataclass(frozen=True)
class Message:
    """One received message.

    Attributes:
        data: the bytes the sender sent, exactly.
        sender: the sender's device id (protocol v2), or None from a v1
            server, which does not say who sent a message.
    """

    data: bytes
    sender: Optional[str] = None

    def text(self, encoding: str = "utf-8", errors: str = "replace") -> str:
        """The data decoded as text."""
        return self.data.decode(encoding, errors)


@dataclass(frozen=True)
class Bye:
    """The server's last words before it closed a v2 connection."""

    reason: int
    """One of ``protocol.BYE_*``."""
    text: str
    """Human-readable text from the server."""

    @property
    def name(self) -> str:
        """The reason as words."""
        return P.BYE_NAMES.get(self.reason, "reason %d" % self.reason)


# BYE reasons after which reconnecting would only repeat the problem (or,
# for a takeover, take the id back from its new holder).
_FINAL_BYES = (P.BYE_TAKEN_OVER, P.BYE_NOT_AUTHORIZED)


class _Request:
    """A request waiting for its reply on one connection's FIFO."""

    __slots__ = ("command", "event", "status", "lost")

    def __init__(self, command: int, wait: bool) -> None:
        self.command = command
        self.event: Optional[threading.Event] = (
            threading.Event() if wait else None)
        self.status: Optional[int] = None
        self.lost = False


class _Connection:
    """One TCP connection and the state negotiated on it."""

    def __init__(self, sock: socket.socket, version: int, max_frame: int,
                 idle_timeout: int) -> None:
        self.sock = sock
        self.version = version
        self.max_frame = max_frame
        self.idle_timeout = idle_timeout
        self.pending: Deque[_Request] = collections.deque()
        self.dead = False
        self.last_rx = time.monotonic()
        self.bye: Optional[Bye] = None
        self.error: Optional[BaseException] = None
        self.decoder = FrameDecoder(
            max_frame + P.SERVER_FRAME_SLACK if version >= 2
            else _V1_FRAME_CAP)


StateCallback = Callable[[ConnectionState], None]
PresenceCallback = Callable[[str, bool], None]


class Client:
    """A stupidP2P client connection with automatic reconnect.

    Example::

        with Client("127.0.0.1", 4040) as c:
            c.register("me")
            c.subscribe("you")
            c.send("hello")
            msg = c.recv(timeout=5)

    Args:
        host, port: the server.
        heartbeat: seconds between heartbeats; the connection is declared
            dead after ``max_missed`` periods with nothing received.
        timeout: seconds to wait for each reply (and for the handshake).
        connect_timeout: seconds for the TCP connect (default ``timeout``).
        reconnect: reconnect by itself when the connection is lost.
        backoff_base, backoff_max: reconnect delays are drawn uniformly from
            ``[0, min(backoff_max, backoff_base * 2**attempt)]`` (full
            jitter).
        max_missed: heartbeat periods of silence that mean a dead peer.
        queue_size: bound of the receive queue; messages arriving when it is
            full are dropped and counted in :attr:`dropped`.
        version: highest protocol version to ask for (1 skips HELLO and
            speaks exactly the original protocol).
        on_state: ``f(state)`` on every :class:`ConnectionState` change.
        on_presence: ``f(device_id, online)`` for PRESENCE events (v2).
        on_bye: ``f(bye)`` when the server sends BYE (v2).
        connect: connect in the constructor (else call :meth:`connect`).

    Raises:
        ConnectError: when ``connect`` is true and the first connection
            fails (reconnecting starts only after a first success).
    """

    def __init__(self, host: str, port: int, *, heartbeat: float = 3.0,
                 timeout: float = 3.0, connect_timeout: Optional[float] = None,
                 reconnect: bool = True, backoff_base: float = 0.2,
                 backoff_max: float = 30.0, max_missed: int = 3,
                 queue_size: int = 4096, version: int = P.VERSION_MAX,
                 on_state: Optional[StateCallback] = None,
                 on_presence: Optional[PresenceCallback] = None,
                 on_bye: Optional[Callable[[Bye], None]] = None,
                 connect: bool = True) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if version not in (P.VERSION_1, P.VERSION_2):
            raise ValueError("version must be 1 or 2")
        self.host = host
        self.port = int(port)
        self.heartbeat = heartbeat
        self.timeout = timeout
        self.connect_timeout = timeout if connect_timeout is None \
            else connect_timeout
        self.reconnect = reconnect
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_missed = max_missed
        self.queue_size = queue_size
        self.version = version
        self.on_state = on_state
        self.on_presence = on_presence
        self.on_bye = on_bye

        self._state = ConnectionState.CONNECTING
        self._state_cond = threading.Condition()
        self._closed = threading.Event()
        self._conn: Optional[_Connection] = None
        # RLock: a failed sendall kills the connection while holding it.
        self._send_lock = threading.RLock()
        self._my_id: Optional[bytes] = None
        # Insertion-ordered; list(dict) is atomic under the GIL.
        self._subs: Dict[bytes, None] = {}
        # v1 only: restores that failed (device offline) and are retried.
        self._unrestored: Set[bytes] = set()
        self._queue: Deque[Message] = collections.deque()
        self._queue_cond = threading.Condition()
        self._overflowing = False
        self._io_thread: Optional[threading.Thread] = None
        self._hb_thread: Optional[threading.Thread] = None

        self.dropped = 0
        """Messages dropped because the receive queue was full."""
        self.send_failures = 0
        """Failure replies to requests sent with ``wait=False``."""
        self.reconnects = 0
        """Successful reconnections."""
        self.connect_attempts = 0
        """TCP connection attempts, the first included."""
        self.last_bye: Optional[Bye] = None
        """The last BYE received, if any."""
        self.last_error: Optional[BaseException] = None
        """Why the last connection was lost, if it was."""

        if connect:
            self.connect()

    # ---- lifecycle ------------------------------------------------------

    def connect(self) -> None:
        """Make the first connection and start the background threads.

        Does nothing when already started.

        Raises:
            ConnectError: the server could not be reached or did not answer
                the handshake.
            ClientClosedError: the client was closed.
        """
        if self._closed.is_set():
            raise ClientClosedError("client is closed")
        if self._io_thread is not None:
            return
        conn = self._open()
        self._conn = conn
        self._io_thread = threading.Thread(
            target=self._io_main, name="stupidp2p-io", daemon=True)
        self._hb_thread = threading.Thread(
            target=self._heartbeat_main, name="stupidp2p-heartbeat",
            daemon=True)
        self._set_state(ConnectionState.CONNECTED)
        self._io_thread.start()
        self._hb_thread.start()

    def close(self) -> None:
        """Close the connection and stop the threads.  Idempotent.

        Waiting requests fail with :class:`ClientClosedError`; a blocked
        :meth:`recv` raises :class:`ClientClosedError` once the queue is
        empty.  Messages already queued can still be read.
        """
        if self._closed.is_set():
            return
        self._closed.set()
        conn = self._conn
        if conn is not None:
            self._kill(conn, None)
        self._set_state(ConnectionState.CLOSED)
        with self._queue_cond:
            self._queue_cond.notify_all()
        me = threading.current_thread()
        for t in (self._io_thread, self._hb_thread):
            if t is not None and t is not me and t.is_alive():
                t.join(timeout=max(self.timeout, 1.0))

    def __repr__(self) -> str:
        return "<stupidp2p.Client %s:%d %s v%s id=%r>" % (
            self.host, self.port, self._state.value, self.protocol_version,
            self.device_id)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- properties -----------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """The current :class:`ConnectionState`."""
        return self._state

    @property
    def connected(self) -> bool:
        """True while a connection is up and usable."""
        return self._state is ConnectionState.CONNECTED

    @property
    def closed(self) -> bool:
        """True once the client is closed."""
        return self._closed.is_set()

    @property
    def protocol_version(self) -> Optional[int]:
        """Protocol version of the current connection (1 or 2), or None."""
        conn = self._conn
        return conn.version if conn is not None else None

    @property
    def max_frame(self) -> int:
        """Largest payload the server accepts (65536 if it did not say)."""
        conn = self._conn
        return conn.max_frame if conn is not None else P.DEFAULT_MAX_FRAME

    @property
    def server_idle_timeout(self) -> Optional[int]:
        """The server's idle timeout in seconds (v2), else None."""
        conn = self._conn
        return conn.idle_timeout if conn is not None and conn.version >= 2 \
            else None

    @property
    def device_id(self) -> Optional[str]:
        """The id this client holds (restored after a reconnect), or None."""
        return _id_str(self._my_id) if self._my_id is not None else None

    @property
    def subscriptions(self) -> List[str]:
        """The ids this client subscribes to (renewed after a reconnect)."""
        return [_id_str(s) for s in list(self._subs)]

    def wait_for_state(self, state: ConnectionState,
                       timeout: Optional[float] = None) -> bool:
        """Wait until :attr:`state` is ``state``; False if the time passed."""
        with self._state_cond:
            return self._state_cond.wait_for(
                lambda: self._state is state, timeout)

    # ---- commands -------------------------------------------------------

    # The wanted id and subscriptions are recorded *before* the request is
    # sent, so that a reconnect racing with the request restores them; a
    # refusal from the server takes them back out.  If the connection drops
    # while the request waits, the caller gets ConnectionLostError and the
    # new connection carries out the request anyway.

    def register(self, device_id: DeviceId) -> None:
        """Take ``device_id`` for this connection (1..255 bytes).

        A client holds one id: registering another releases the first.
        The id is registered again by itself after a reconnect.  If another
        connection holds the id, the server hands it over to this one.
        """
        raw = self._checked_id(device_id)
        previous, self._my_id = self._my_id, raw
        self._unrestored.discard(b"")
        try:
            self._check(self._call(P.CMD_REGISTER, raw), P.CMD_REGISTER)
        except ConnectionLostError:
            raise  # the next connection registers it
        except (RequestFailed, NotConnectedError, ClientClosedError):
            if self._my_id is raw:
                self._my_id = previous
            raise

    def unregister(self) -> None:
        """Release this client's id; the server also cancels its
        subscriptions, and so does the client."""
        self._my_id = None
        self._subs.clear()
        self._unrestored.clear()
        self._check(self._call(P.CMD_UNREGISTER), P.CMD_UNREGISTER)

    def subscribe(self, device_id: DeviceId) -> None:
        """Receive what ``device_id`` sends; renewed after a reconnect.

        A v2 server accepts an offline id and reports its presence; a v1
        server refuses one (:class:`RequestFailed`).
        """
        raw = self._checked_id(device_id)
        added = raw not in self._subs
        self._subs[raw] = None
        self._unrestored.discard(raw)
        try:
            self._check(self._call(P.CMD_SUBSCRIBE, raw), P.CMD_SUBSCRIBE)
        except ConnectionLostError:
            raise  # the next connection subscribes
        except (RequestFailed, NotConnectedError, ClientClosedError):
            if added:
                self._subs.pop(raw, None)
            raise

    def unsubscribe(self, device_id: DeviceId) -> None:
        """Stop receiving from ``device_id`` (idempotent)."""
        raw = self._checked_id(device_id)
        self._subs.pop(raw, None)
        self._unrestored.discard(raw)
        self._check(self._call(P.CMD_UNSUBSCRIBE, raw), P.CMD_UNSUBSCRIBE)

    def is_alive(self, device_id: DeviceId) -> bool:
        """True if ``device_id`` is online now."""
        raw = self._checked_id(device_id)
        status = self._call(P.CMD_CHECK_ALIVE, raw)
        if status in (P.STATUS_OK, P.STATUS_FAILURE):
            return status == P.STATUS_OK
        raise error_for_status(P.CMD_CHECK_ALIVE, status)

    def ping(self) -> None:
        """Send a HEARTBEAT and wait for its reply (a round trip)."""
        self._check(self._call(P.CMD_HEARTBEAT), P.CMD_HEARTBEAT)

    def send(self, data: Data, *, wait: bool = True) -> None:
        """Send ``data`` to every subscriber of this client's id.

        With ``wait=False`` the call returns once the frame is written; the
        reply is still consumed in order, and a failure only counts in
        :attr:`send_failures` (and is logged).  Delivery is not confirmed
        either way: the server drops data nobody subscribes to.

        Raises:
            NotRegistered: (v2; ``RequestFailed`` with status 0 on v1) this
                client holds no id.
            MessageTooLarge: the frame would exceed :attr:`max_frame`.
        """
        body = _data_bytes(data)
        if 1 + len(body) > self.max_frame:
            raise MessageTooLarge("%d data bytes exceed the server's limit "
                                  "of %d" % (len(body), self.max_frame - 1))
        self._check(self._call(P.CMD_SEND, body, wait=wait), P.CMD_SEND)

    def send_to(self, device_id: DeviceId, data: Data, *,
                wait: bool = True) -> None:
        """Send ``data`` to the one device ``device_id`` (protocol v2).

        Raises:
            TargetOffline: the device is not online.
            NotRegistered: this client holds no id.
            BadArgument: ``device_id`` is this client's own id.
            Unsupported: the server speaks only protocol v1.
        """
        raw = self._checked_id(device_id)
        body = _data_bytes(data)
        conn = self._conn
        if conn is not None and conn.version < 2:
            raise Unsupported(P.CMD_SEND_TO, P.STATUS_UNSUPPORTED,
                              "SEND_TO needs protocol v2; the server speaks "
                              "v1")
        size = 2 + len(raw) + len(body)
        if size > self.max_frame:
            raise MessageTooLarge("%d data bytes exceed the server's limit "
                                  "of %d" % (len(body),
                                             self.max_frame - 2 - len(raw)))
        self._check(self._call(P.CMD_SEND_TO, bytes((len(raw),)) + raw + body,
                               wait=wait), P.CMD_SEND_TO)

    # ---- receiving ------------------------------------------------------

    def recv(self, timeout: Optional[float] = None) -> Optional[Message]:
        """Return the next message, or None if ``timeout`` seconds pass.

        ``timeout=None`` waits as long as it takes; 0 does not wait.

        Raises:
            ClientClosedError: the client is closed and the queue is empty.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._queue_cond:
            while not self._queue:
                if self._closed.is_set():
                    raise ClientClosedError("client is closed")
                if deadline is None:
                    self._queue_cond.wait()
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    self._queue_cond.wait(left)
            return self._queue.popleft()

    def recv_all(self) -> List[Message]:
        """Return every message queued now, without waiting."""
        with self._queue_cond:
            out = list(self._queue)
            self._queue.clear()
            return out

    def pending(self) -> int:
        """Number of messages waiting in the receive queue."""
        return len(self._queue)

    def __iter__(self) -> Iterator[Message]:
        """Yield messages as they arrive, until the client is closed."""
        while True:
            try:
                msg = self.recv()
            except ClientClosedError:
                return
            if msg is not None:
                yield msg

    # ---- requests -------------------------------------------------------

    @staticmethod
    def _checked_id(device_id: DeviceId) -> bytes:
        raw = _id_bytes(device_id)
        if not 1 <= len(raw) <= P.ID_MAX:
            raise BadArgument(0, P.STATUS_BAD_ARGUMENT,
                              "device id must be 1 to %d bytes, not %d"
                              % (P.ID_MAX, len(raw)))
        return raw

    @staticmethod
    def _check(status: Optional[int], command: int) -> None:
        if status is not None and status != P.STATUS_OK:
            raise error_for_status(command, status)

    def _call(self, command: int, body: bytes = b"", *,
              wait: bool = True) -> Optional[int]:
        """Send one request; return its status (None when not waiting).

        Raises NotConnectedError, ConnectionLostError, RequestTimeout,
        ClientClosedError.
        """
        if wait and threading.current_thread() is self._io_thread:
            raise RuntimeError("a stupidp2p callback cannot wait for a reply "
                               "(it runs on the client's I/O thread); use "
                               "wait=False or hand the work to another thread")
        if self._closed.is_set():
            raise ClientClosedError("client is closed")
        conn = self._conn
        if conn is None or self._state is not ConnectionState.CONNECTED:
            raise NotConnectedError("not connected (state: %s)"
                                    % self._state.value)
        req = self._submit(conn, command, body, wait)
        if not wait:
            return None
        assert req.event is not None
        if not req.event.wait(self.timeout):
            raise RequestTimeout("no reply to %s within %.3g s" % (
                P.COMMAND_NAMES.get(command, command), self.timeout))
        if req.lost:
            if self._closed.is_set():
                raise ClientClosedError("client closed while waiting")
            raise ConnectionLostError("connection lost while waiting for "
                                      "the reply")
        return req.status

    def _submit(self, conn: _Connection, command: int, body: bytes,
                wait: bool) -> _Request:
        req = _Request(command, wait)
        frame = encode(command, body)
        with self._send_lock:
            if conn.dead:
                raise ConnectionLostError("connection lost")
            conn.pending.append(req)
            try:
                conn.sock.sendall(frame)
            except OSError as exc:
                self._kill(conn, exc)
                raise ConnectionLostError("send failed: %s" % exc) from exc
        return req

    # ---- connection setup -----------------------------------------------

    def _open(self) -> _Connection:
        """Connect, negotiate the version, restore id and subscriptions."""
        self.connect_attempts += 1
        try:
            sock = socket.create_connection((self.host, self.port),
                                            timeout=self.connect_timeout)
        except OSError as exc:
            raise ConnectError("cannot connect to %s:%d: %s"
                               % (self.host, self.port, exc)) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return self._handshake(sock)
        except BaseException:
            sock.close()
            raise

    def _handshake(self, sock: socket.socket) -> _Connection:
        my_id = self._my_id
        subs = list(self._subs)
        out = []
        if self.version >= 2:
            out.append(encode(P.CMD_HELLO, bytes((self.version, 0))))
        out.append(encode(P.CMD_HEARTBEAT))
        expect = [P.CMD_HEARTBEAT]
        if my_id is not None:
            out.append(encode(P.CMD_REGISTER, my_id))
            expect.append(P.CMD_REGISTER)
        for s in subs:
            out.append(encode(P.CMD_SUBSCRIBE, s))
            expect.append(P.CMD_SUBSCRIBE)
        deadline = time.monotonic() + self.timeout
        try:
            sock.settimeout(self.timeout)
            sock.sendall(b"".join(out))
            # Until HELLO is answered frames may be up to the v1 cap.
            conn = _Connection(sock, P.VERSION_1, P.DEFAULT_MAX_FRAME, 0)
            hello_pending = self.version >= 2
            statuses: List[int] = []
            while len(statuses) < len(expect):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout("handshake timed out")
                sock.settimeout(left)
                data = sock.recv(_RECV_CHUNK)
                if not data:
                    raise ConnectError("server closed the connection during "
                                       "the handshake")
                for payload in conn.decoder.feed(data):
                    cmd = payload[0]
                    if hello_pending and cmd == P.CMD_HELLO | P.REPLY_BIT:
                        hello_pending = False
                        self._apply_hello(conn, payload)
                        continue
                    if cmd & P.REPLY_BIT:
                        want = expect[len(statuses)] | P.REPLY_BIT
                        if cmd != want:
                            raise ProtocolError(
                                "handshake: reply 0x%02x where 0x%02x was "
                                "expected" % (cmd, want))
                        # An original server ignores HELLO: its first
                        # reply is the heartbeat's.
                        hello_pending = False
                        statuses.append(payload[1] if len(payload) > 1 else 0)
                    else:
                        self._dispatch_event(conn, payload)
            sock.settimeout(None)
        except (OSError, ProtocolError) as exc:
            if isinstance(exc, ConnectError):
                raise
            raise ConnectError("handshake with %s:%d failed: %s"
                               % (self.host, self.port, exc)) from exc
        # Restores that failed are retried by the heartbeat thread (a v1
        # server refuses to subscribe to an offline device).
        unrestored: Set[bytes] = set()
        i = 1
        if my_id is not None:
            if statuses[i] != P.STATUS_OK:
                log.warning("re-registering %r failed (status %d)", my_id,
                            statuses[i])
                unrestored.add(b"")
            i += 1
        for s in subs:
            if statuses[i] != P.STATUS_OK:
                unrestored.add(s)
            i += 1
        self._unrestored = unrestored
        conn.last_rx = time.monotonic()
        return conn

    @staticmethod
    def _apply_hello(conn: _Connection, payload: bytes) -> None:
        if len(payload) >= P.HELLO_REPLY_SIZE and payload[1] == P.STATUS_OK:
            version = payload[2]
            max_frame = int.from_bytes(payload[3:7], "big")
            idle = int.from_bytes(payload[7:11], "big")
            if version >= 2:
                conn.version = 2
                conn.max_frame = max_frame or P.DEFAULT_MAX_FRAME
                conn.idle_timeout = idle
                conn.decoder.max_payload = (conn.max_frame
                                            + P.SERVER_FRAME_SLACK)
            else:
                conn.max_frame = max_frame or P.DEFAULT_MAX_FRAME
        # 88 04 or a version-1 answer: the session stays v1.

    # ---- I/O thread -----------------------------------------------------

    def _io_main(self) -> None:
        conn = self._conn
        while conn is not None:
            self._read_loop(conn)
            conn = self._reconnect(conn)

    def _read_loop(self, conn: _Connection) -> None:
        sock = conn.sock
        error: Optional[BaseException] = None
        while True:
            try:
                data = sock.recv(_RECV_CHUNK)
            except OSError as exc:
                error = exc
                break
            if not data:
                error = ConnectionLostError("server closed the connection")
                break
            conn.last_rx = time.monotonic()
            try:
                for payload in conn.decoder.feed(data):
                    self._dispatch(conn, payload)
            except ProtocolError as exc:
                log.error("protocol error from %s:%d: %s", self.host,
                          self.port, exc)
                error = exc
                break
        self._kill(conn, error)

    def _dispatch(self, conn: _Connection, payload: bytes) -> None:
        cmd = payload[0]
        if cmd & P.REPLY_BIT:
            try:
                req = conn.pending.popleft()
            except IndexError:
                raise ProtocolError("unsolicited reply 0x%02x" % cmd) from None
            if cmd != req.command | P.REPLY_BIT:
                raise ProtocolError("reply 0x%02x to request 0x%02x"
                                    % (cmd, req.command))
            status = payload[1] if len(payload) > 1 else P.STATUS_FAILURE
            req.status = status
            if req.event is not None:
                req.event.set()
            elif status != P.STATUS_OK:
                self.send_failures += 1
                log.warning("%s failed: status %d",
                            P.COMMAND_NAMES.get(req.command, req.command),
                            status)
        else:
            self._dispatch_event(conn, payload)

    def _dispatch_event(self, conn: _Connection, payload: bytes) -> None:
        cmd = payload[0]
        if cmd == P.CMD_SEND:
            self._enqueue(Message(payload[1:], None))
        elif cmd == P.EVT_DELIVER:
            n = payload[1] if len(payload) > 1 else 0
            if n < 1 or len(payload) < 2 + n:
                raise ProtocolError("malformed DELIVER")
            self._enqueue(Message(payload[2 + n:], _id_str(payload[2:2 + n])))
        elif cmd == P.EVT_PRESENCE:
            if len(payload) < 3 or payload[2] < 1 \
                    or len(payload) != 3 + payload[2]:
                raise ProtocolError("malformed PRESENCE")
            who = _id_str(payload[3:])
            online = payload[1] == P.PRESENCE_ONLINE
            self._callback(self.on_presence, who, online)
        elif cmd == P.EVT_BYE:
            reason = payload[1] if len(payload) > 1 else 0
            bye = Bye(reason, payload[2:].decode("utf-8", "replace"))
            conn.bye = bye
            self.last_bye = bye
            log.info("server says bye: %s (%s)", bye.name, bye.text)
            self._callback(self.on_bye, bye)
        else:
            log.debug("ignoring frame with command 0x%02x", cmd)

    def _enqueue(self, msg: Message) -> None:
        with self._queue_cond:
            if len(self._queue) >= self.queue_size:
                self.dropped += 1
                if not self._overflowing:
                    self._overflowing = True
                    log.warning("receive queue full (%d): dropping messages",
                                self.queue_size)
                return
            if self._overflowing and len(self._queue) < self.queue_size // 2:
                self._overflowing = False
                log.warning("receive queue drained; %d messages dropped so "
                            "far", self.dropped)
            self._queue.append(msg)
            self._queue_cond.notify()

    def _callback(self, fn: Optional[Callable[..., None]], *args: object) \
            -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:
            log.exception("stupidp2p callback %r raised", fn)

    def _kill(self, conn: _Connection, error: Optional[BaseException]) \
            -> None:
        """Mark ``conn`` dead, close its socket, fail its waiting requests.

        May run on any thread, more than once.
        """
        if conn.dead:
            return
        # The first cause wins: a heartbeat loss also makes the reader see
        # EOF, which is not the news.
        if conn.error is None:
            conn.error = error
        # Shut down first: a sendall blocked under the send lock fails at
        # once instead of holding the lock.
        try:
            conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        with self._send_lock:
            if conn.dead:
                return
            conn.dead = True
            pending = list(conn.pending)
            conn.pending.clear()
        try:
            conn.sock.close()
        except OSError:
            pass
        if conn.error is not None and not self._closed.is_set():
            self.last_error = conn.error
            log.info("connection to %s:%d lost: %s", self.host, self.port,
                     conn.error)
        for req in pending:
            req.lost = True
            if req.event is not None:
                req.event.set()

    def _reconnect(self, old: _Connection) -> Optional[_Connection]:
        """After ``old`` died: reconnect with backoff, or finish."""
        if self._closed.is_set():
            return None
        if not self.reconnect or (old.bye is not None
                                  and old.bye.reason in _FINAL_BYES):
            self._closed.set()
            self._set_state(ConnectionState.CLOSED)
            with self._queue_cond:
                self._queue_cond.notify_all()
            return None
        self._set_state(ConnectionState.DISCONNECTED)
        attempt = 0
        while True:
            delay = random.uniform(
                0.0, min(self.backoff_max, self.backoff_base * (2 ** attempt)))
            attempt = min(attempt + 1, 62)
            if self._closed.wait(delay):
                return None
            try:
                conn = self._open()
            except ConnectError as exc:
                log.debug("reconnect attempt %d failed: %s", attempt, exc)
                continue
            with self._send_lock:
                if self._closed.is_set():
                    conn.sock.close()
                    return None
                self._conn = conn
            self.reconnects += 1
            log.info("reconnected to %s:%d (protocol v%d)", self.host,
                     self.port, conn.version)
            self._set_state(ConnectionState.CONNECTED)
            return conn

    def _set_state(self, state: ConnectionState) -> None:
        with self._state_cond:
            if self._state is state or self._state is ConnectionState.CLOSED:
                return
            self._state = state
            self._state_cond.notify_all()
        self._callback(self.on_state, state)

    # ---- heartbeat thread -----------------------------------------------

    def _heartbeat_main(self) -> None:
        while not self._closed.wait(self.heartbeat):
            conn = self._conn
            if conn is None or conn.dead or not self.connected:
                continue
            silent = time.monotonic() - conn.last_rx
            if silent > self.heartbeat * self.max_missed:
                self._kill(conn, ConnectionLostError(
                    "no data from the server for %.1f s" % silent))
                continue
            try:
                self._submit(conn, P.CMD_HEARTBEAT, b"", False)
                self._retry_restores(conn)
            except P2PError:
                pass

    def _retry_restores(self, conn: _Connection) -> None:
        """Retry a re-register or re-subscribe that the server refused."""
        for item in list(self._unrestored):
            if item == b"":
                if self._my_id is None:
                    self._unrestored.discard(item)
                    continue
                cmd, body = P.CMD_REGISTER, self._my_id
            elif item in self._subs:
                cmd, body = P.CMD_SUBSCRIBE, item
            else:
                self._unrestored.discard(item)
                continue
            req = self._submit(conn, cmd, body, True)
            assert req.event is not None
            if req.event.wait(self.timeout) and req.status == P.STATUS_OK:
                self._unrestored.discard(item)

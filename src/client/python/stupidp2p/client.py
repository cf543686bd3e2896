"""The Pythonic stupidP2P client: :class:`Client` and :class:`Message`.

Design
------
One :class:`Client` owns at most one TCP connection to the server at a time
(and, with direct paths, connections to other devices) and two daemon
threads (a third with direct paths; daemon, so that a program may exit with
a client still open):

* the **I/O thread** reads and hands every complete frame to the
  dispatcher: replies complete the oldest pending request, data goes to the
  receive queue (bounded in messages and in bytes), presence and BYE go to
  the callbacks.  EOF is noticed at once: every waiting request fails with
  :class:`ConnectionLostError`, and the same thread reconnects (exponential
  backoff with full jitter) unless the client was closed.
* the **heartbeat thread** wakes every ``heartbeat`` seconds and sends a
  HEARTBEAT without waiting for it.  Liveness comes from replies, not from
  bytes: when the oldest request still unanswered (a heartbeat, if nothing
  else) has waited ``max_missed`` heartbeat periods, the connection is
  declared dead.  A server that vanished without a FIN, that stopped
  reading, or that trickles bytes without ever completing a reply is all the
  same to it.

Requests are pipelined: the protocol answers in request order, so each
connection keeps a FIFO of pending requests and the n-th reply completes the
n-th request.  A caller waits on its own :class:`threading.Event`; nothing
polls.  A request that timed out stays in the FIFO so that later replies
still match.  Appending to the FIFO and writing the frame happen under one
lock, so FIFO order is wire order.

Every blocking step of a request is bounded by one deadline, ``timeout``
seconds after the call: taking the send lock, writing the frame (with
``MSG_DONTWAIT``, waiting in ``poll`` until the deadline when the kernel
takes no more), and waiting for the reply.  A frame that cannot be written
in time kills the connection, because a partial frame cannot be taken back;
the reconnect then starts afresh.

Handshake: a new connection sends HELLO (version 2) and HEARTBEAT together,
followed by REGISTER and SUBSCRIBE for the id and subscriptions the client
held before, all in one write.  A v2 server answers HELLO first; an original
(v1-only) server ignores HELLO, so the HEARTBEAT reply comes first and the
session stays v1.  With a token, the id is claimed with AUTH instead, which
needs the v2 answer first: HELLO and HEARTBEAT, then AUTH step 1, then step
2 with the SUBSCRIBEs pipelined after it (whether a device lets this one
reach it depends on the id held).  The connection is reported CONNECTED only
after the id and subscriptions are restored.

AUTH (``token=``): :meth:`Client.register` proves the token over fresh
nonces (:mod:`stupidp2p.auth`); the token never crosses the wire and the
client keeps only keys derived from it.  The server's signature is compared
with :func:`hmac.compare_digest`; a wrong one is a :class:`ProtocolError`
that drops the connection.  A refusal is never repeated by the client.

TLS (``tls=True`` / ``ssl_context=``): the socket stays a plain TCP socket,
driven exactly as without TLS (bounded non-blocking writes, a blocking
reader), and TLS runs in memory over it (:class:`ssl.SSLObject` on two
:class:`ssl.MemoryBIO`), under a lock of its own held only while bytes are
encrypted or decrypted: an SSL object must not be used by two threads at
once, and the reader and the writers are different threads.  The HELLO grant is checked (a version
not asked for, or a max_frame below 2, is a protocol error) and its
max_frame clamped to the client's ``max_frame_limit``, which also bounds
every frame the client accepts, so a server cannot make it buffer more than
that for one frame.

Reconnect backoff spans connections: the attempt counter restarts only after
a connection has stayed up for ``stable_time``.  A v1 server closes the
previous holder of an id without a word when another connection registers
it; two clients holding one id would take it from each other forever, so
after ``max_quick_closes`` such silent closes in a row the client gives up
(:class:`ClosedByServer`).  A v2 server says BYE "taken over": the client
takes the id back after a backoff, ``takeover_retries`` times in a row (1 by
default, as the C library), then gives the id up and stays connected
without it (:attr:`Client.id_lost`, ``on_id_lost``); so does it when the
server withdraws an authenticated id (BYE "not authorized"), or when the id
cannot be authenticated again after a reconnect.

Slow consumers (``slow_consumer="drop"``): the client asks the server, in
a second HELLO after the one that negotiates v2, to drop messages for it
rather than disconnect it when it falls behind (stupidp2p(7), SLOW
CONSUMERS); a server that does not know the flag refuses that HELLO (88
04) and the v2 session stays, an original one ignores both
(:attr:`Client.drop_in_force` says which).  The server's GAP events
become :class:`Gap` objects in the receive queue, where the missing
messages would have been, and calls of ``on_gap``.  So that what
:meth:`Client.recv` returns stays exactly accounted for, a message the
client itself cannot queue (the queue is full) is reported the same way:
the misses are tallied per publisher (16 named, the others together, as
the server does) and the tally goes into the queue as :class:`Gap` objects
as soon as there is room, before anything that arrived after.  A GAP on a
connection without the policy is a protocol error.

All wire layouts come from :mod:`stupidp2p.codec`.

Direct paths (``direct=``, :meth:`Client.connect_direct`) add a third
thread, started when they are first needed: :mod:`stupidp2p.direct`.

Callbacks run on the I/O thread (``on_path`` on the I/O thread or the
direct thread): they must return quickly and must not wait for replies (a
request that would wait raises :class:`RuntimeError` on the I/O thread;
``send(..., wait=False)`` is allowed).
"""

from __future__ import annotations

import collections
import enum
import errno
import logging
import math
import os
import random
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import (TYPE_CHECKING, Callable, Deque, Dict, Iterator, List,
                    Optional, Sequence, Set, Tuple, Union)

from . import protocol as P
from .auth import AuthKeys, auth_message, client_proof, signature_valid
from .codec import (ByeEvent, Delivery, Direct, FrameDecoder, GapEvent,
                    PresenceEvent, Reply, ServerMessage, encode_auth_proof,
                    encode_auth_start,
                    encode_hello, encode_id_command, encode_send_head,
                    encode_send_to_head, frame, parse_message)
from .direct import (DIRECT_ACCEPT, DIRECT_AUTO, DIRECT_OFF, KEEPALIVE_RANGE,
                     DirectPaths, Path)
from .direct import _LOST as _DIRECT_LOST
from .errors import (AuthError, BadArgument, ClientClosedError,
                     ClosedByServer, ConnectError, ConnectionLostError,
                     IdTakenOver, LimitReached, MessageTooLarge,
                     NotAuthorized, NotConnectedError, NotRegistered,
                     P2PError, ProtocolError, RequestFailed, RequestTimeout,
                     Unsupported, error_for_status)
from .escape import escape

if TYPE_CHECKING:  # ssl is imported when TLS is asked for
    import ssl

__all__ = ["Client", "Message", "Gap", "Received", "ConnectionState", "Bye",
           "DeviceId", "Data", "DEFAULT_MAX_FRAME_LIMIT",
           "DEFAULT_QUEUE_BYTES", "SLOW_DISCONNECT", "SLOW_DROP", "Path",
           "DIRECT_OFF", "DIRECT_ACCEPT", "DIRECT_AUTO"]

log = logging.getLogger("stupidp2p")
# A library prints nothing unless the application configures logging.
log.addHandler(logging.NullHandler())

DeviceId = Union[str, bytes]
"""A device id: str (encoded as UTF-8) or bytes, 1 to 255 bytes."""

Data = Union[bytes, bytearray, memoryview, str]
"""Message data: bytes-like, or str (encoded as UTF-8)."""

DEFAULT_MAX_FRAME_LIMIT = 16 * 1024 * 1024
"""Default ``max_frame_limit``: the largest ``--max-frame`` of p2pServer."""

DEFAULT_QUEUE_BYTES = 32 * 1024 * 1024
"""Default ``queue_bytes``: twice the default ``max_frame_limit``."""

SLOW_DISCONNECT = "disconnect"
"""``slow_consumer``: a client that falls behind is disconnected (BYE "slow
consumer") and reconnects; the messages in between are lost unreported."""

SLOW_DROP = "drop"
"""``slow_consumer``: a client that falls behind keeps its connection; the
server drops messages for it and says how many (:class:`Gap`)."""

# A server's max_frame below this leaves no room for any request with data:
# nonsense, as the C client judges it too.  Above max_frame_limit it is
# clamped.
_MIN_SERVER_MAX_FRAME = 2
# The range of max_frame_limit, as the C client's.
_FRAME_LIMIT_RANGE = (1 + P.ID_MAX, 1 << 30)

_RECV_CHUNK = 256 * 1024

_HEARTBEAT_FRAME = frame(encode_id_command(P.CMD_HEARTBEAT))
_UNREGISTER_FRAME = frame(encode_id_command(P.CMD_UNREGISTER))


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


def _auth_failure(status: int, raw: bytes) -> RequestFailed:
    """The exception for a failed AUTH step (status != 1)."""
    who = escape(raw)
    if status == P.STATUS_NOT_AUTHORIZED:
        return AuthError(P.CMD_AUTH, status,
                         "AUTH as %s refused: a wrong token, or an id the "
                         "server does not protect" % who)
    if status == P.STATUS_UNSUPPORTED:
        return Unsupported(P.CMD_AUTH, status,
                           "AUTH as %s: the server cannot authenticate (it "
                           "has no auth file); no REGISTER was sent in its "
                           "place" % who)
    return error_for_status(P.CMD_AUTH, status)


# ---- socket I/O with deadlines ---------------------------------------------
#
# The socket stays in blocking mode, so that the reader's recv() is one
# system call that a shutdown() wakes.  A write never blocks: it passes
# MSG_DONTWAIT, and when the kernel takes no more it waits in poll(2) (not
# select(), which fails on descriptors above 1023) until its deadline.


class _Stalled(Exception):
    """The socket was not ready before the deadline."""


def _wait_ready(sock: socket.socket, events: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``events`` (or an error or hang-up)
    on ``sock``; True if something happened."""
    fd = sock.fileno()
    if fd < 0:
        raise OSError(errno.EBADF, "socket closed")
    poller = select.poll()
    poller.register(fd, events)
    return bool(poller.poll(max(0, math.ceil(timeout * 1000))))


def _send_all(sock: socket.socket, data: bytes, deadline: float) -> None:
    """Write all of ``data`` before ``deadline`` (time.monotonic()).

    Raises:
        _Stalled: the deadline passed; part of ``data`` may have been
            written.
        OSError: the connection failed.
    """
    try:
        sent = sock.send(data, socket.MSG_DONTWAIT)
    except BlockingIOError:
        sent = 0
    if sent == len(data):
        return  # the usual case: the kernel took it all at once
    view = memoryview(data)[sent:]
    while view:
        left = deadline - time.monotonic()
        if left <= 0 or not _wait_ready(sock, select.POLLOUT, left):
            raise _Stalled("%d of %d bytes unsent" % (len(view), len(data)))
        try:
            view = view[sock.send(view, socket.MSG_DONTWAIT):]
        except BlockingIOError:
            pass


def _recv_before(sock: socket.socket, deadline: float) -> bytes:
    """Read what has arrived (``b""`` at EOF), waiting until ``deadline``.

    Raises:
        _Stalled: nothing arrived before the deadline.
        OSError: the connection failed.
    """
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not _wait_ready(sock, select.POLLIN, left):
            raise _Stalled("nothing received")
        try:
            return sock.recv(_RECV_CHUNK, socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass


def _connect_tcp(host: str, port: int, timeout: float) -> socket.socket:
    """socket.create_connection with SO_REUSEADDR set before the connect: a
    direct path dials from the relay connection's own port, and Linux lets
    a second socket bind a port in use only when both set it (socket(7))."""
    error: Optional[OSError] = None
    for family, kind, proto, _, addr in socket.getaddrinfo(
            host, port, 0, socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.settimeout(timeout)
            sock.connect(addr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error if error is not None else OSError("no address for %s" % host)


class _PlainIO:
    """A connection's bytes as they are: frames go to the socket, and what
    the socket gives is frames."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, data: bytes, deadline: float) -> None:
        """Write all of ``data`` before ``deadline`` (see :func:`_send_all`;
        the caller holds the client's send lock)."""
        _send_all(self.sock, data, deadline)

    def recv(self) -> bytes:
        """Block until data arrives; ``b""`` at EOF (the I/O thread)."""
        return self.sock.recv(_RECV_CHUNK)

    def recv_before(self, deadline: float) -> bytes:
        """Data that arrives before ``deadline`` (see :func:`_recv_before`);
        ``b""`` at EOF."""
        return _recv_before(self.sock, deadline)


class _TLSIO(_PlainIO):
    """TLS over the plain socket, in memory: writes encrypt and then go out
    as :class:`_PlainIO`'s do, reads decrypt what the socket gave.

    One lock guards the SSL object and its two buffers, held only while
    bytes are moved in memory, never across a system call.  Writes are
    encrypted and written under the client's send lock, so records reach
    the wire in the order they were made; whatever TLS itself has to say
    after a read (rare after the handshake) waits in the outgoing buffer
    and leaves with the next write.
    """

    def __init__(self, sock: socket.socket, context: "ssl.SSLContext",
                 server_hostname: str) -> None:
        import ssl
        super().__init__(sock)
        self._ssl = ssl
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._incoming, self._outgoing,
                                     server_side=False,
                                     server_hostname=server_hostname)
        self._lock = threading.Lock()
        self._eof = False

    def handshake(self, deadline: float) -> None:
        """The TLS handshake, certificate and host name checked as the
        context says, before ``deadline``.

        Raises:
            ssl.SSLError: the handshake failed (an OSError).
            _Stalled: the deadline passed.
        """
        while True:
            with self._lock:
                try:
                    self._obj.do_handshake()
                    done = True
                except self._ssl.SSLWantReadError:
                    done = False
                out = self._outgoing.read()
            if out:
                _send_all(self.sock, out, deadline)
            if done:
                return
            data = _recv_before(self.sock, deadline)
            if not data:
                raise ConnectionResetError(
                    "the server closed the connection during the TLS "
                    "handshake")
            with self._lock:
                self._incoming.write(data)

    def send(self, data: bytes, deadline: float) -> None:
        with self._lock:
            self._obj.write(data)
            out = self._outgoing.read()
        _send_all(self.sock, out, deadline)

    def _decrypt(self, data: bytes) -> bytes:
        """Feed what the socket gave (``b""``: its EOF) and return the
        plaintext it completes; sets ``_eof`` at the end of the stream."""
        ssl = self._ssl
        parts = []
        with self._lock:
            if data:
                self._incoming.write(data)
            else:
                self._incoming.write_eof()
            while True:
                try:
                    chunk = self._obj.read(_RECV_CHUNK)
                except ssl.SSLWantReadError:
                    break
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    self._eof = True  # close_notify, or a bare TCP close
                    break
                if not chunk:
                    self._eof = True
                    break
                parts.append(chunk)
            if not data:
                self._eof = True  # whatever TLS made of it
        return b"".join(parts)

    def recv(self) -> bytes:
        while not self._eof:
            plain = self._decrypt(self.sock.recv(_RECV_CHUNK))
            if plain:
                return plain
        return b""

    def recv_before(self, deadline: float) -> bytes:
        while not self._eof:
            plain = self._decrypt(_recv_before(self.sock, deadline))
            if plain:
                return plain
        return b""


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
class Gap:
    """Messages that did not reach this client (``slow_consumer="drop"``):
    it comes out of :meth:`Client.recv` where they would have been, so that
    every :class:`Message` before it was sent before them and every one
    after it after them.

    Attributes:
        publisher: the id of the device that sent them, or None for every
            device not named by the other Gaps of the same episode (at most
            16 are named).
        frames: how many messages.
        bytes: their data, in bytes.
    """

    publisher: Optional[str]
    frames: int
    bytes: int


Received = Union[Message, Gap]
"""What :meth:`Client.recv` returns: a :class:`Message`, or a :class:`Gap`
(only with ``slow_consumer="drop"``)."""


def _data_size(item: Received) -> int:
    """The bytes an item holds in the receive queue (a Gap none)."""
    return len(item.data) if isinstance(item, Message) else 0


class _Tally:
    """Messages missed per publisher, in the order of their first miss:
    at most ``GAP_NAMED_MAX`` publishers named, the rest together under
    None, as the server reports an episode."""

    def __init__(self) -> None:
        self._counts: Dict[Optional[str], List[int]] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def add(self, publisher: Optional[str], frames: int, nbytes: int) \
            -> None:
        named = len(self._counts) - (None in self._counts)
        if publisher not in self._counts and named >= P.GAP_NAMED_MAX:
            publisher = None
        counts = self._counts.setdefault(publisher, [0, 0])
        counts[0] += frames
        counts[1] += nbytes

    def take(self) -> List[Gap]:
        """The tally as Gaps (the others last), emptied."""
        gaps = [Gap(p, f, b) for p, (f, b) in self._counts.items()
                if p is not None]
        if None in self._counts:
            gaps.append(Gap(None, *self._counts[None]))
        self._counts.clear()
        return gaps


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


class _Request:
    """A request waiting for its reply on one connection's FIFO."""

    __slots__ = ("command", "event", "status", "reply", "lost", "sent_at",
                 "on_reply")

    def __init__(self, command: int, wait: bool,
                 on_reply: Optional[Callable[[Reply], None]] = None) -> None:
        self.command = command
        # Called with the reply on the I/O thread (a direct path's OFFER).
        self.on_reply = on_reply
        self.event: Optional[threading.Event] = (
            threading.Event() if wait else None)
        self.status: Optional[int] = None
        self.reply: Optional[Reply] = None
        self.lost = False
        self.sent_at = 0.0


class _ServerClosed(ConnectionLostError):
    """EOF: the server closed the connection."""


class _Connection:
    """One TCP connection and the state negotiated on it.

    Until HELLO is answered the session is v1 with the default max_frame,
    and frames of up to ``frame_limit`` (+ the DELIVER slack) are accepted.
    """

    def __init__(self, sock: socket.socket, io: _PlainIO,
                 frame_limit: int) -> None:
        self.sock = sock
        self.io = io
        self.version = P.VERSION_1
        self.max_frame = min(P.DEFAULT_MAX_FRAME, frame_limit)
        self.idle_timeout = 0
        # The server granted the DROP flag: it may send GAP events.
        self.drop = False
        self.pending: Deque[_Request] = collections.deque()
        self.dead = False
        self.established = time.monotonic()
        self.bye: Optional[Bye] = None
        self.error: Optional[BaseException] = None
        self.decoder = FrameDecoder(frame_limit + P.SERVER_FRAME_SLACK)
        # AUTH step 2s refused (8c 05) on this connection: at
        # AUTH_MAX_FAILURES a BYE "not authorized" is the server's count,
        # not a withdrawal of the id.
        self.auth_refusals = 0

    def count_reply(self, reply: Reply) -> None:
        """Note what a reply says about this connection (the thread that
        reads it)."""
        if reply.command == P.CMD_AUTH \
                and reply.status == P.STATUS_NOT_AUTHORIZED:
            self.auth_refusals += 1

    def unanswered_for(self, now: float) -> float:
        """Seconds the oldest request without a reply has waited (0 if none
        waits).  Any thread; the I/O thread may pop the request meanwhile."""
        try:
            return now - self.pending[0].sent_at
        except IndexError:
            return 0.0

    def closed_silently(self) -> bool:
        """True if the server closed it without a BYE: EOF or a reset (what
        a v1 server does to the previous holder of an id)."""
        return self.bye is None and isinstance(
            self.error, (_ServerClosed, ConnectionResetError))


StateCallback = Callable[[ConnectionState], None]
PresenceCallback = Callable[[str, bool], None]
GapCallback = Callable[[Gap], None]
IdLostCallback = Callable[[str, P2PError], None]
PathCallback = Callable[[str, Path], None]


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
        heartbeat: seconds between heartbeats.
        max_missed: the connection is declared dead when a request (a
            heartbeat, if nothing else) has waited this many heartbeat
            periods for its reply.
        timeout: seconds each request may take: sending it and waiting for
            its reply (and the handshake).  A frame that cannot be written
            within it drops the connection.
        connect_timeout: seconds for the TCP connect (default ``timeout``).
        reconnect: reconnect by itself when the connection is lost.
        backoff_base, backoff_max: reconnect delays are drawn uniformly from
            ``[0, min(backoff_max, backoff_base * 2**attempt)]`` (full
            jitter); ``attempt`` counts on across reconnects and restarts
            only after a connection stayed up for ``stable_time``.
        stable_time: seconds a connection must last to count as stable.
            Keep it above ``backoff_max``, so that a fought-over id never
            looks stable.
        max_quick_closes: give up (close the client, with
            :class:`ClosedByServer` in :attr:`close_reason`) when the server
            closed this many connections in a row without a word within
            ``stable_time`` (a v1 takeover); 0 never gives up.
        takeover_retries: times the id is taken back after other
            connections took it over (v2: BYE "taken over"), in a row,
            before it is given up (:class:`IdTakenOver` in
            :attr:`id_lost`); the count starts over when :meth:`register`
            is called or the id was held for ``stable_time``.  As the C
            library's option of the same name (default 1).
        token: the device's token (str or bytes, 1 to 256 bytes of
            printable ASCII without spaces), or the
            :class:`~stupidp2p.auth.AuthKeys` derived from it:
            :meth:`register` then claims the id with AUTH, also after every
            reconnect.  Only the keys are kept.
        tls: connect with TLS (standard library :mod:`ssl`, its default
            context: the server's certificate and host name are verified
            against the system's CAs).
        ssl_context: an :class:`ssl.SSLContext` of your own (a private CA,
            client certificates...); implies ``tls``.  The host name
            checked is ``host``.
        queue_size, queue_bytes: bounds of the receive queue, in messages
            and in data bytes; a message that does not fit is dropped and
            counted in :attr:`dropped` and :attr:`dropped_bytes` (and, with
            ``slow_consumer="drop"``, reported by a :class:`Gap`).
        slow_consumer: what the server is asked to do when this client
            reads slower than messages arrive for it: ``"disconnect"``
            (:data:`SLOW_DISCONNECT`, the default: BYE "slow consumer",
            then a reconnect) or ``"drop"`` (:data:`SLOW_DROP`: the server
            drops messages and says how many, as :class:`Gap` objects from
            :meth:`recv` and calls of ``on_gap``).  A server that does not
            know the policy refuses or ignores it: see
            :attr:`drop_in_force`.
        max_frame_limit: the largest payload this client sends or accepts,
            whatever max_frame the server advertises (a larger frame from the
            server is a protocol error and drops the connection).
        version: highest protocol version to ask for (1 skips HELLO and
            speaks exactly the original protocol).
        on_state: ``f(state)`` on every :class:`ConnectionState` change.
        on_presence: ``f(device_id, online)`` for PRESENCE events (v2).
        on_bye: ``f(bye)`` when the server sends BYE (v2).
        on_gap: ``f(gap)`` for every GAP event the server sends (with
            ``slow_consumer="drop"``), when it arrives; the same
            :class:`Gap` is queued for :meth:`recv` too.
        on_id_lost: ``f(device_id, reason)`` once, when the client gives
            up its id and stays connected without it (``reason`` as
            :attr:`id_lost`), right after the CONNECTED it comes with.
        direct: direct paths to other devices (stupidp2p(7), DIRECT
            PATHS; see :meth:`connect_direct`): ``False`` or
            :data:`DIRECT_OFF` (the default: offers from other devices are
            declined, and a path is made only to a peer named to
            :meth:`connect_direct`), :data:`DIRECT_ACCEPT` (offers are
            accepted), ``True`` or :data:`DIRECT_AUTO` (offers are
            accepted, and the first :meth:`send_to` to a peer starts an
            attempt to reach it directly), as the C library's option.
        direct_keepalive: seconds between the PINGs on a direct path,
            which is given up (fallback to the relay) when nothing came on
            it for three times as long: 0.1 to 25 (25, often enough to keep
            NAT mappings alive).
        on_path: ``f(device_id, path)`` when the path of this client's
            :meth:`send_to` messages to ``device_id`` changed to
            :attr:`Path.DIRECT` or back to :attr:`Path.RELAY`.
        connect: connect in the constructor (else call :meth:`connect`).

    Raises:
        ConnectError: when ``connect`` is true and the first connection
            fails (reconnecting starts only after a first success); with
            TLS, a certificate that does not verify fails so.
        ValueError: an option out of range, or a token not of its form.
    """

    def __init__(self, host: str, port: int, *, heartbeat: float = 3.0,
                 timeout: float = 3.0, connect_timeout: Optional[float] = None,
                 reconnect: bool = True, backoff_base: float = 0.2,
                 backoff_max: float = 30.0, stable_time: float = 60.0,
                 max_quick_closes: int = 8, max_missed: int = 3,
                 takeover_retries: int = 1,
                 queue_size: int = 4096,
                 queue_bytes: int = DEFAULT_QUEUE_BYTES,
                 max_frame_limit: int = DEFAULT_MAX_FRAME_LIMIT,
                 version: int = P.VERSION_MAX,
                 token: Optional[Union[str, bytes, AuthKeys]] = None,
                 tls: bool = False,
                 ssl_context: Optional["ssl.SSLContext"] = None,
                 on_state: Optional[StateCallback] = None,
                 on_presence: Optional[PresenceCallback] = None,
                 on_bye: Optional[Callable[[Bye], None]] = None,
                 on_id_lost: Optional[IdLostCallback] = None,
                 slow_consumer: str = SLOW_DISCONNECT,
                 on_gap: Optional[GapCallback] = None,
                 direct: Union[bool, str] = False,
                 direct_keepalive: float = KEEPALIVE_RANGE[1],
                 on_path: Optional[PathCallback] = None,
                 connect: bool = True) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if queue_bytes < 1:
            raise ValueError("queue_bytes must be at least 1")
        if not _FRAME_LIMIT_RANGE[0] <= max_frame_limit \
                <= _FRAME_LIMIT_RANGE[1]:
            raise ValueError("max_frame_limit must be %d to %d"
                             % _FRAME_LIMIT_RANGE)
        if max_quick_closes < 0:
            raise ValueError("max_quick_closes must be 0 or more")
        if takeover_retries < 0:
            raise ValueError("takeover_retries must be 0 or more")
        if version not in (P.VERSION_1, P.VERSION_2):
            raise ValueError("version must be 1 or 2")
        if slow_consumer not in (SLOW_DISCONNECT, SLOW_DROP):
            raise ValueError("slow_consumer must be %r or %r, not %r"
                             % (SLOW_DISCONNECT, SLOW_DROP, slow_consumer))
        if isinstance(direct, bool):
            direct = DIRECT_AUTO if direct else DIRECT_OFF
        if direct not in (DIRECT_OFF, DIRECT_ACCEPT, DIRECT_AUTO):
            raise ValueError("direct must be a bool, %r, %r or %r, not %r"
                             % (DIRECT_OFF, DIRECT_ACCEPT, DIRECT_AUTO,
                                direct))
        if not KEEPALIVE_RANGE[0] <= direct_keepalive <= KEEPALIVE_RANGE[1]:
            raise ValueError("direct_keepalive must be %g to %g seconds"
                             % KEEPALIVE_RANGE)
        self.host = host
        self.port = int(port)
        self.heartbeat = heartbeat
        self.timeout = timeout
        self.connect_timeout = timeout if connect_timeout is None \
            else connect_timeout
        self.reconnect = reconnect
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.stable_time = stable_time
        self.max_quick_closes = max_quick_closes
        self.takeover_retries = takeover_retries
        self.max_missed = max_missed
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self.max_frame_limit = max_frame_limit
        self.version = version
        self.on_state = on_state
        self.on_presence = on_presence
        self.on_bye = on_bye
        self.on_id_lost = on_id_lost
        self.slow_consumer = slow_consumer
        self.on_gap = on_gap
        self._keys: Optional[AuthKeys] = (
            token if isinstance(token, AuthKeys) or token is None
            else AuthKeys.from_token(token))
        if ssl_context is None and tls:
            import ssl
            ssl_context = ssl.create_default_context()
        self._ssl_context = ssl_context

        self._state = ConnectionState.CONNECTING
        self._state_cond = threading.Condition()
        self._closed = threading.Event()
        self._close_reason: Optional[ClosedByServer] = None
        self._conn: Optional[_Connection] = None
        # RLock: a failed send kills the connection while holding it.
        self._send_lock = threading.RLock()
        self._my_id: Optional[bytes] = None
        # Insertion-ordered; list(dict) is atomic under the GIL.
        self._subs: Dict[bytes, None] = {}
        # v1 only: restores that failed (device offline) and are retried
        # (b"" stands for the id), and the retries awaiting their replies.
        self._unrestored: Set[bytes] = set()
        self._restoring: Dict[bytes, _Request] = {}
        self._queue: Deque[Received] = collections.deque()
        self._queued_bytes = 0
        self._queue_cond = threading.Condition()
        self._overflowing = False
        # Drop mode: what could not be queued, for the next Gaps.
        self._tally = _Tally()
        # Reconnect backoff exponent, and silent closes of young connections
        # in a row; both restart after a stable connection.
        self._attempt = 0
        self._quick_closes = 0
        # Takeovers of the id in a row (v2 BYE 1), and the id given up and
        # not yet reported (on_id_lost, after the next CONNECTED).
        self._takeovers = 0
        self._id_loss: Optional[Tuple[str, P2PError]] = None
        self._id_lost: Optional[P2PError] = None
        self._io_thread: Optional[threading.Thread] = None
        self._hb_thread: Optional[threading.Thread] = None
        self._direct = DirectPaths(self, direct, direct_keepalive, on_path)

        self.dropped = 0
        """Messages dropped because the receive queue was full."""
        self.dropped_bytes = 0
        """Data bytes of the messages in :attr:`dropped`."""
        self.send_failures = 0
        """Failure replies to requests sent with ``wait=False``."""
        self.gap_events = 0
        """GAP events received from the server."""
        self.missed_messages = 0
        """Messages the server's GAP events reported dropped."""
        self.missed_bytes = 0
        """Data bytes of the messages in :attr:`missed_messages`."""
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
            raise self._closed_error()
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
        if self._direct.mode != DIRECT_OFF:
            self._direct.start()

    def close(self) -> None:
        """Close the connection and stop the threads.  Idempotent.

        Waiting requests fail with :class:`ClientClosedError`; a blocked
        :meth:`recv` raises :class:`ClientClosedError` once the queue is
        empty.  Messages already queued can still be read.
        """
        if self._closed.is_set():
            return
        # What went out on direct paths arrives: wait (within timeout) for
        # its acknowledgement, as the C library's deinit does.
        self._direct.wait_settled(time.monotonic() + self.timeout)
        self._closed.set()
        conn = self._conn
        if conn is not None:
            self._kill(conn, None)
        self._direct.stop()
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
        """Largest payload this client sends: the server's max_frame (65536
        if it did not say), at most ``max_frame_limit``."""
        conn = self._conn
        return conn.max_frame if conn is not None \
            else min(P.DEFAULT_MAX_FRAME, self.max_frame_limit)

    @property
    def server_idle_timeout(self) -> Optional[int]:
        """The server's idle timeout in seconds (v2), else None."""
        conn = self._conn
        return conn.idle_timeout if conn is not None and conn.version >= 2 \
            else None

    @property
    def drop_in_force(self) -> bool:
        """True while the current connection has the DROP policy: asked for
        (``slow_consumer="drop"``) and granted by the server.  False when
        not asked, not connected, or against a server that does not know
        the policy (an original, v1 or older v2 server), which then
        disconnects this client when it falls behind.  Negotiated anew at
        every connection (``on_state`` CONNECTED), and a warning is logged
        when it was asked for and not granted."""
        conn = self._conn
        return conn is not None and not conn.dead and conn.drop

    @property
    def device_id(self) -> Optional[str]:
        """The id this client holds (restored after a reconnect), or None."""
        return _id_str(self._my_id) if self._my_id is not None else None

    @property
    def subscriptions(self) -> List[str]:
        """The ids this client subscribes to (renewed after a reconnect)."""
        return [_id_str(s) for s in list(self._subs)]


    @property
    def id_lost(self) -> Optional[P2PError]:
        """Why the client last gave up the id it held while staying
        connected, or None: :class:`IdTakenOver` (taken over more than
        ``takeover_retries`` times in a row), :class:`AuthError` (the
        server refused to authenticate it again, or withdrew it),
        :class:`Unsupported` (after a reconnect the server could not
        authenticate: v1, or no auth file), :class:`NotAuthorized` (the
        server now refuses to REGISTER it).  Cleared by :meth:`register`."""
        return self._id_lost

    @property
    def tls(self) -> bool:
        """True when the client connects with TLS."""
        return self._ssl_context is not None

    @property
    def close_reason(self) -> Optional[ClosedByServer]:
        """Why the client closed itself (:class:`ClosedByServer`), or None
        while it is open or when :meth:`close` closed it."""
        return self._close_reason

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

        With a ``token`` the id is claimed with AUTH (two round trips; the
        token never crosses the wire) and the server's signature checked.

        Raises:
            AuthError: the server refused the AUTH (a wrong token, or an id
                it does not protect); the client does not try again.
            Unsupported: with a token, the server cannot authenticate: it
                speaks only v1 (nothing was sent), or has no auth file;
                no REGISTER is sent in the AUTH's place.
            ProtocolError: the server's AUTH signature is wrong: it is not
                the server it claims to be.  The connection is dropped
                (and made again).
            NotAuthorized: (without a token) only AUTH may claim the id.
        """
        raw = self._checked_id(device_id)
        self._unrestored.discard(b"")
        self._takeovers = 0
        self._id_lost = None
        if self._keys is not None:
            # Remembered once the server has said yes (or the answer was
            # lost with the connection): a reconnect racing with a refused
            # AUTH must not claim the refused id.
            try:
                self._authenticate(raw, self._keys)
            except ConnectionLostError:
                self._my_id = raw  # the next connection authenticates it
                raise
            self._my_id = raw
            return
        previous, self._my_id = self._my_id, raw
        try:
            self._do(encode_id_command(P.CMD_REGISTER, raw))
        except ConnectionLostError:
            raise  # the next connection registers it
        except (RequestFailed, NotConnectedError, ClientClosedError):
            if self._my_id is raw:
                self._my_id = previous
            raise

    def _authenticate(self, raw: bytes, keys: AuthKeys) -> None:
        """AUTH as ``raw`` on the current connection: both steps go to that
        one connection (a step 2 on another would answer no challenge)."""
        conn = self._usable_conn()
        if conn.version < P.VERSION_2:
            raise Unsupported(P.CMD_AUTH, P.STATUS_UNSUPPORTED,
                              "AUTH needs protocol v2 and the server speaks "
                              "v1; nothing was sent (never a REGISTER in "
                              "its place)")
        nonce = os.urandom(P.AUTH_NONCE_SIZE)
        answer = self._auth_step(conn, raw, encode_auth_start(raw, nonce),
                                 P.AUTH_STEP_START)
        message = auth_message(raw, nonce, answer)
        signature = self._auth_step(
            conn, raw, encode_auth_proof(client_proof(keys, message)),
            P.AUTH_STEP_PROOF)
        if not signature_valid(keys, message, signature):
            error = ProtocolError(
                "AUTH as %s: the server's signature is wrong: it does not "
                "know the id's verifier, so it is not the server it claims "
                "to be; connection dropped" % escape(raw))
            self._kill(conn, error)
            raise error
        log.info("authenticated as %s", escape(raw))

    def _auth_step(self, conn: _Connection, raw: bytes, payload: bytes,
                   step: int) -> bytes:
        """One AUTH step on ``conn``; returns the 32 bytes of its success
        reply (the server nonce, or its signature)."""
        reply = self._call_reply(payload, conn=conn)
        assert reply is not None
        if reply.status != P.STATUS_OK:
            raise _auth_failure(reply.status, raw)
        assert reply.auth is not None  # the codec checked the layout
        if reply.auth.step != step:
            error = ProtocolError("the server answered AUTH step %d as if it "
                                  "were step %d" % (step, reply.auth.step))
            self._kill(conn, error)
            raise error
        return reply.auth.value

    def unregister(self) -> None:
        """Release this client's id; the server also cancels its
        subscriptions, and so does the client."""
        self._my_id = None
        self._subs.clear()
        self._unrestored.clear()
        self._do(encode_id_command(P.CMD_UNREGISTER))

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
            self._do(encode_id_command(P.CMD_SUBSCRIBE, raw))
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
        self._do(encode_id_command(P.CMD_UNSUBSCRIBE, raw))

    def is_alive(self, device_id: DeviceId) -> bool:
        """True if ``device_id`` is online now."""
        raw = self._checked_id(device_id)
        status = self._call(encode_id_command(P.CMD_CHECK_ALIVE, raw))
        if status in (P.STATUS_OK, P.STATUS_FAILURE):
            return status == P.STATUS_OK
        raise error_for_status(P.CMD_CHECK_ALIVE, status)

    def ping(self) -> None:
        """Send a HEARTBEAT and wait for its reply (a round trip)."""
        self._do(encode_id_command(P.CMD_HEARTBEAT))

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
        self._do(encode_send_head(), body, wait=wait)

    def send_to(self, device_id: DeviceId, data: Data, *,
                wait: bool = True) -> None:
        """Send ``data`` to the one device ``device_id`` (protocol v2).

        While a direct path to the device exists (see :meth:`connect_direct`
        and ``direct``), the message goes on it instead: the call returns
        once it is written or queued there, whatever ``wait`` says, and a
        path that dies sends it again through the relay if the device has
        not acknowledged it.  It waits (within ``timeout``, then
        :class:`RequestTimeout`) while the path has 4 MiB unacknowledged.

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
        head = encode_send_to_head(raw)
        direct = self._direct
        if direct.mode == DIRECT_OFF and not direct.has_peers():
            self._do(head, body, wait=wait)
            return
        # On the direct path if there is one; else through the relay, the
        # request written under the paths' lock (ordered with the SWITCH
        # mark), its reply awaited outside it.
        deadline = time.monotonic() + self.timeout
        try:
            started = direct.send_to(
                raw, body, lambda: self._start_request(head, body, wait),
                deadline)
        except TimeoutError:
            raise RequestTimeout("the direct path to %s stayed full for "
                                 "%.3g s" % (escape(raw), self.timeout)) \
                from None
        if started is None:
            return  # on the direct path
        assert isinstance(started, tuple)
        reply = self._finish_request(*started)
        if reply is not None and reply.status != P.STATUS_OK:
            raise error_for_status(P.CMD_SEND_TO, reply.status)

    # ---- direct paths ---------------------------------------------------

    def connect_direct(self, device_id: DeviceId) -> None:
        """Offer a direct path to ``device_id`` and return once the server
        has answered the offer (within ``timeout``); a path that exists or
        is being made already returns at once.  The rest is reported by
        ``on_path`` and :meth:`path`.  A failed attempt, and a path that
        ends, are tried again later by themselves (after 1 to 2 seconds,
        doubling with each failure in a row, up to 5 minutes) until the
        peer declines.  See the README's "Direct paths".

        Raises:
            TargetOffline: the device is not online.
            NotAuthorized: the two may not reach each other both ways.
            Unsupported: a v1 connection or peer, or a server without
                direct paths.
            LimitReached: the server's limit of 8 offers in 10 seconds, or
                32 peers followed by this client already.
            NotRegistered: this client holds no id.
            BadArgument: ``device_id`` is this client's own id.
            RequestTimeout, NotConnectedError, ConnectionLostError,
            ClientClosedError.
        """
        raw = self._checked_id(device_id)
        if threading.current_thread() in (self._io_thread,
                                          self._direct.thread):
            raise RuntimeError("connect_direct cannot wait in a stupidp2p "
                               "callback")
        conn = self._usable_conn()
        if conn.version < P.VERSION_2:
            raise Unsupported(P.CMD_DIRECT_OFFER, P.STATUS_UNSUPPORTED,
                              "direct paths need protocol v2; the server "
                              "speaks v1")
        if self._my_id is None:
            raise NotRegistered(P.CMD_DIRECT_OFFER, P.STATUS_NOT_REGISTERED,
                                "a direct path needs an id of this client's")
        if raw == self._my_id:
            raise BadArgument(P.CMD_DIRECT_OFFER, P.STATUS_BAD_ARGUMENT,
                              "a direct path to this client's own id")
        try:
            status = self._direct.connect(
                raw, time.monotonic() + self.timeout)
        except LookupError as exc:
            raise LimitReached(P.CMD_DIRECT_OFFER, P.STATUS_LIMIT,
                               str(exc)) from None
        if status is None:
            if self._closed.is_set():
                raise self._closed_error()
            raise RequestTimeout("no answer to the DIRECT_OFFER within "
                                 "%.3g s" % self.timeout)
        if status == _DIRECT_LOST:
            raise ConnectionLostError("connection lost while offering a "
                                      "direct path")
        if status != P.STATUS_OK:
            raise error_for_status(P.CMD_DIRECT_OFFER, status)

    def path(self, device_id: DeviceId) -> Path:
        """The path of this client's :meth:`send_to` messages to
        ``device_id`` now: :attr:`Path.DIRECT` or :attr:`Path.RELAY`."""
        return self._direct.path(self._checked_id(device_id))

    def _direct_request(self, payload: bytes,
                        on_reply: Optional[Callable[[Reply], None]] = None) \
            -> bool:
        """A request of the direct paths' (DIRECT_*), written now and not
        waited for; False when it could not be (no usable v2
        connection)."""
        conn = self._conn
        if conn is None or conn.dead or conn.version < P.VERSION_2 \
                or self._state is not ConnectionState.CONNECTED:
            return False
        try:
            self._submit(conn, payload[0], frame(payload), False,
                         time.monotonic() + self.timeout, on_reply)
        except P2PError:
            return False
        return True

    def _direct_resend(self, raw: bytes, body: bytes) -> bool:
        """A message a dead path left unacknowledged, again through the
        relay as a SEND_TO (not waited for)."""
        conn = self._conn
        if conn is None or conn.dead:
            return False
        try:
            self._submit(conn, P.CMD_SEND_TO,
                         frame(encode_send_to_head(raw), body), False,
                         time.monotonic() + self.timeout)
        except P2PError:
            return False
        return True

    def _enqueue_direct(self, data: bytes, sender: str) -> bool:
        """Queue a message from a direct path if the receive queue has room
        for it now (and no tally of missed messages waits); False leaves
        it unqueued and unacknowledged (direct thread)."""
        with self._queue_cond:
            if self._tally or not self._has_room(1, len(data)):
                return False
            self._queue.append(Message(data, sender))
            self._queued_bytes += len(data)
            self._queue_cond.notify()
        return True

    # ---- receiving ------------------------------------------------------

    def recv(self, timeout: Optional[float] = None) -> Optional[Received]:
        """Return the next message, or None if ``timeout`` seconds pass.

        ``timeout=None`` waits as long as it takes; 0 does not wait.  With
        ``slow_consumer="drop"`` it may also return a :class:`Gap`, where
        messages are missing.

        Raises:
            ClientClosedError: the client is closed and the queue is empty.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._queue_cond:
            while not self._queue:
                if self._tally:
                    self._flush_tally()
                    break
                if self._closed.is_set():
                    raise self._closed_error()
                if deadline is None:
                    self._queue_cond.wait()
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    self._queue_cond.wait(left)
            msg = self._queue.popleft()
            self._queued_bytes -= _data_size(msg)
            if self._tally:
                self._flush_tally()
            self._direct.queue_drained()
            return msg

    def recv_all(self) -> List[Received]:
        """Return every message (and :class:`Gap`) queued now, without
        waiting."""
        with self._queue_cond:
            out = list(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
            out += self._tally.take()
            self._direct.queue_drained()
            return out

    def pending(self) -> int:
        """Number of messages (and :class:`Gap` objects) waiting in the
        receive queue."""
        return len(self._queue)

    @property
    def queued_bytes(self) -> int:
        """Data bytes of the messages waiting in the receive queue."""
        return self._queued_bytes

    def __iter__(self) -> Iterator[Received]:
        """Yield messages (and :class:`Gap` objects) as they arrive, until
        the client is closed."""
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

    def _closed_error(self) -> ClientClosedError:
        """The exception for a call on a closed client: it says why, when
        the client closed itself."""
        reason = self._close_reason
        if reason is None:
            return ClientClosedError("client is closed")
        return ClosedByServer("client is closed: %s" % reason, reason.bye,
                              reason.closes)

    def _do(self, payload: bytes, data: bytes = b"", *,
            wait: bool = True) -> None:
        """:meth:`_call`, raising the :class:`RequestFailed` subclass of a
        failure reply."""
        status = self._call(payload, data, wait=wait)
        if status is not None and status != P.STATUS_OK:
            raise error_for_status(payload[0], status)

    def _call(self, payload: bytes, data: bytes = b"", *,
              wait: bool = True) -> Optional[int]:
        """Send the request whose payload is ``payload`` followed by
        ``data``; return its status (None when not waiting).  Everything,
        the reply included, happens within ``timeout``.

        Raises NotConnectedError, ConnectionLostError, RequestTimeout,
        ClientClosedError.
        """
        reply = self._call_reply(payload, data, wait=wait)
        return None if reply is None else reply.status

    def _usable_conn(self) -> _Connection:
        """The current connection, if requests may go out on it."""
        if self._closed.is_set():
            raise self._closed_error()
        conn = self._conn
        if conn is None or self._state is not ConnectionState.CONNECTED:
            raise NotConnectedError("not connected (state: %s)"
                                    % self._state.value)
        return conn

    def _call_reply(self, payload: bytes, data: bytes = b"", *,
                    wait: bool = True,
                    conn: Optional[_Connection] = None) -> Optional[Reply]:
        """:meth:`_call`, returning the whole reply, on ``conn`` if given
        (else the current connection)."""
        return self._finish_request(*self._start_request(payload, data, wait,
                                                         conn))

    def _start_request(self, payload: bytes, data: bytes, wait: bool,
                       conn: Optional[_Connection] = None) \
            -> Tuple[_Request, float]:
        """The first half of :meth:`_call_reply`: the request written;
        returns it and its deadline."""
        command = payload[0]
        if wait and threading.current_thread() is self._io_thread:
            raise RuntimeError("a stupidp2p callback cannot wait for a reply "
                               "(it runs on the client's I/O thread); use "
                               "wait=False or hand the work to another thread")
        if conn is None:
            conn = self._usable_conn()
        elif self._closed.is_set():
            raise self._closed_error()
        deadline = time.monotonic() + self.timeout
        return self._submit(conn, command, frame(payload, data), wait,
                            deadline), deadline

    def _finish_request(self, req: _Request, deadline: float) \
            -> Optional[Reply]:
        """The second half: waits for the reply of a request that waits."""
        command = req.command
        if req.event is None:
            return None
        if not req.event.wait(max(0.0, deadline - time.monotonic())):
            raise RequestTimeout("no reply to %s within %.3g s" % (
                P.COMMAND_NAMES.get(command, command), self.timeout))
        if req.lost:
            if self._closed.is_set():
                raise self._closed_error()
            raise ConnectionLostError("connection lost while waiting for "
                                      "the reply")
        return req.reply

    def _submit(self, conn: _Connection, command: int, data: bytes,
                wait: bool, deadline: float,
                on_reply: Optional[Callable[[Reply], None]] = None) \
            -> _Request:
        """Queue a request on ``conn``'s FIFO and write its frame ``data``,
        both before ``deadline``."""
        lock = self._send_lock
        if not lock.acquire(blocking=False) and not lock.acquire(
                timeout=max(0.0, deadline - time.monotonic())):
            raise RequestTimeout("could not send %s within %.3g s: an "
                                 "earlier send is stuck"
                                 % (P.COMMAND_NAMES.get(command, command),
                                    self.timeout))
        try:
            if conn.dead:
                raise ConnectionLostError("connection lost")
            req = _Request(command, wait, on_reply)
            # When the caller asked: what liveness measures the wait from.
            req.sent_at = deadline - self.timeout
            conn.pending.append(req)
            try:
                conn.io.send(data, deadline)
            except _Stalled as exc:
                # Part of the frame may be out: the stream is unusable.
                self._kill(conn, ConnectionLostError(
                    "the server took no more data for %.3g s (%s); "
                    "dropping the connection" % (self.timeout, exc)))
                raise RequestTimeout(
                    "could not send %s within %.3g s; the connection was "
                    "dropped" % (P.COMMAND_NAMES.get(command, command),
                                 self.timeout)) from None
            except OSError as exc:
                self._kill(conn, exc)
                raise ConnectionLostError("send failed: %s" % exc) from exc
        finally:
            lock.release()
        return req

    # ---- connection setup -----------------------------------------------

    def _open(self) -> _Connection:
        """Connect (with TLS if asked), negotiate the version, restore id
        and subscriptions."""
        self.connect_attempts += 1
        try:
            sock = _connect_tcp(self.host, self.port, self.connect_timeout)
        except OSError as exc:
            raise ConnectError("cannot connect to %s:%d: %s"
                               % (self.host, self.port, exc)) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(None)  # blocking: see _send_all
            io = _PlainIO(sock)
            if self._ssl_context is not None:
                io = self._tls_handshake(sock)
            return self._handshake(_Connection(sock, io,
                                               self.max_frame_limit))
        except BaseException:
            sock.close()
            raise

    def _tls_handshake(self, sock: socket.socket) -> _TLSIO:
        assert self._ssl_context is not None
        try:
            io = _TLSIO(sock, self._ssl_context, self.host)
            io.handshake(time.monotonic() + self.timeout)
            return io
        except _Stalled:
            raise ConnectError("TLS handshake with %s:%d timed out after "
                               "%.3g s" % (self.host, self.port,
                                           self.timeout)) from None
        except OSError as exc:  # ssl.SSLError included
            raise ConnectError("TLS handshake with %s:%d failed: %s"
                               % (self.host, self.port, exc)) from exc

    def _exchange(self, conn: _Connection, frames: List[bytes],
                  expect: List[int], deadline: float,
                  hellos: Sequence[int] = ()) -> List[Reply]:
        """Send ``frames`` in one write and return the replies to the
        requests ``expect`` names, in order; events that come meanwhile are
        dispatched.  ``hellos``: the flags of the HELLOs the frames begin
        with, whose replies (which an original server never sends) are
        taken apart."""
        if not frames:
            return []
        conn.io.send(b"".join(frames), deadline)
        hello_flags = list(hellos)
        replies: List[Reply] = []
        while len(replies) < len(expect):
            data = conn.io.recv_before(deadline)
            if not data:
                raise ConnectError("server closed the connection during "
                                   "the handshake")
            for payload in conn.decoder.feed(data):
                msg = parse_message(payload)
                if not isinstance(msg, Reply):
                    self._dispatch_event(conn, msg)
                    continue
                if hello_flags and msg.command == P.CMD_HELLO:
                    self._apply_hello(conn, msg, hello_flags.pop(0))
                    continue
                if len(replies) == len(expect):
                    raise ProtocolError("handshake: unsolicited reply 0x%02x"
                                        % (msg.command | P.REPLY_BIT))
                want = expect[len(replies)]
                if msg.command != want:
                    raise ProtocolError(
                        "handshake: reply 0x%02x where 0x%02x was "
                        "expected" % (msg.command | P.REPLY_BIT,
                                      want | P.REPLY_BIT))
                # An original server ignores HELLO: its first reply is
                # the heartbeat's.
                hello_flags.clear()
                conn.count_reply(msg)
                replies.append(msg)
        return replies

    def _handshake(self, conn: _Connection) -> _Connection:
        my_id = self._my_id
        keys = self._keys
        subs = list(self._subs)
        sub_frames = [frame(encode_id_command(P.CMD_SUBSCRIBE, s))
                      for s in subs]
        auth = my_id is not None and keys is not None
        # v2 first, then the DROP flag, which an older v2 server refuses
        # (88 04) without leaving v2.
        hellos = [0] if self.version >= 2 else []
        if hellos and self.slow_consumer == SLOW_DROP:
            hellos.append(P.HELLO_FLAG_DROP)
        out = [frame(encode_hello(self.version, f)) for f in hellos]
        out.append(_HEARTBEAT_FRAME)
        expect = [P.CMD_HEARTBEAT]
        if my_id is not None and not auth:
            out.append(frame(encode_id_command(P.CMD_REGISTER, my_id)))
            expect.append(P.CMD_REGISTER)
        if not auth:
            out += sub_frames
            expect += [P.CMD_SUBSCRIBE] * len(subs)
        deadline = time.monotonic() + self.timeout
        try:
            replies = self._exchange(conn, out, expect, deadline,
                                     hellos)[1:]
            id_status: Optional[int] = None
            if my_id is not None and not auth:
                id_status = replies.pop(0).status
            if auth:
                assert my_id is not None and keys is not None
                replies = self._restore_auth(conn, my_id, keys, sub_frames,
                                             deadline)
        except _Stalled:
            raise ConnectError("handshake with %s:%d timed out after %.3g s"
                               % (self.host, self.port,
                                  self.timeout)) from None
        except (OSError, ProtocolError) as exc:
            if isinstance(exc, ConnectError):
                raise
            raise ConnectError("handshake with %s:%d failed: %s"
                               % (self.host, self.port, exc)) from exc
        self._unrestored = self._restored(conn, my_id, id_status, subs,
                                          replies)
        self._restoring = {}
        if self.slow_consumer == SLOW_DROP and not conn.drop:
            log.warning("%s:%d does not know the DROP policy (protocol v%d): "
                        "if this client falls behind, it is disconnected",
                        self.host, self.port, conn.version)
        conn.established = time.monotonic()
        return conn

    def _restore_auth(self, conn: _Connection, my_id: bytes, keys: AuthKeys,
                      sub_frames: List[bytes], deadline: float) \
            -> List[Reply]:
        """Claim ``my_id`` again with AUTH, then renew the subscriptions
        (pipelined after step 2).  Returns the subscriptions' replies; a
        refusal gives the id up.

        Raises:
            ProtocolError: the server's signature is wrong (the id is kept:
                the next attempt tries again).
        """
        expect_subs = [P.CMD_SUBSCRIBE] * len(sub_frames)
        if conn.version < P.VERSION_2:
            self._give_up_id(my_id, Unsupported(
                P.CMD_AUTH, P.STATUS_UNSUPPORTED,
                "%s cannot be authenticated again: the server speaks only "
                "protocol v1 (it was not REGISTERed instead)"
                % escape(my_id)))
            return self._exchange(conn, sub_frames, expect_subs, deadline)
        nonce = os.urandom(P.AUTH_NONCE_SIZE)
        (challenge,) = self._exchange(
            conn, [frame(encode_auth_start(my_id, nonce))], [P.CMD_AUTH],
            deadline)
        if challenge.status != P.STATUS_OK:
            self._give_up_id(my_id, _auth_failure(challenge.status, my_id))
            return self._exchange(conn, sub_frames, expect_subs, deadline)
        if challenge.auth is None or challenge.auth.step != P.AUTH_STEP_START:
            raise ProtocolError("AUTH step 1 answered as another step")
        message = auth_message(my_id, nonce, challenge.auth.value)
        replies = self._exchange(
            conn, [frame(encode_auth_proof(client_proof(keys, message)))]
            + sub_frames, [P.CMD_AUTH] + expect_subs, deadline)
        result = replies[0]
        if result.status != P.STATUS_OK:
            self._give_up_id(my_id, _auth_failure(result.status, my_id))
            return replies[1:]
        if result.auth is None or result.auth.step != P.AUTH_STEP_PROOF \
                or not signature_valid(keys, message, result.auth.value):
            raise ProtocolError("AUTH as %s: the server's signature is "
                                "wrong: it is not the server it claims to "
                                "be" % escape(my_id))
        log.info("authenticated as %s again", escape(my_id))
        return replies[1:]

    def _restored(self, conn: _Connection, my_id: Optional[bytes],
                  id_status: Optional[int], subs: List[bytes],
                  replies: List[Reply]) -> Set[bytes]:
        """Judge the replies to a restore (``id_status``: the REGISTER's,
        None when there was none): returns what a v1 server refused (an
        offline device), for the heartbeat thread to retry.  A v2 refusal
        is final, as in the C library: a subscription is dropped, and an
        id only AUTH may claim now is given up."""
        unrestored: Set[bytes] = set()
        if my_id is not None and id_status is not None:
            status = id_status
            if status == P.STATUS_NOT_AUTHORIZED and conn.version >= 2:
                self._give_up_id(my_id, NotAuthorized(
                    P.CMD_REGISTER, status, "the server now refuses to "
                    "REGISTER %s (only AUTH may claim it)" % escape(my_id)))
            elif status != P.STATUS_OK:
                log.warning("re-registering %s failed (status %d)",
                            escape(my_id), status)
                unrestored.add(b"")
        for sub, reply in zip(subs, replies):
            if reply.status == P.STATUS_OK:
                continue
            if conn.version >= 2:
                log.error("the server refused to renew the subscription to "
                          "%s (status %d): dropped", escape(sub),
                          reply.status)
                self._subs.pop(sub, None)
            else:
                unrestored.add(sub)
        return unrestored

    def _give_up_id(self, my_id: bytes, reason: P2PError) -> None:
        """Stop holding ``my_id``: it is not claimed again, and the loss is
        reported once, after the next CONNECTED (:attr:`id_lost`,
        ``on_id_lost``)."""
        if self._my_id is my_id:
            self._my_id = None
        self._takeovers = 0
        self._id_loss = (_id_str(my_id), reason)
        log.warning("%s:%d: the id %s is given up: %s", self.host, self.port,
                    escape(my_id), reason)

    def _apply_hello(self, conn: _Connection, reply: Reply,
                     flags: int) -> None:
        """Take what a HELLO reply grants, for a HELLO that asked for
        ``flags`` (of which DROP has an effect in v2 only); 88 04 leaves the
        session as it was (v1 at first).

        Raises:
            ProtocolError: a version this client did not ask for, or a
                max_frame too small for any request with data.
        """
        grant = reply.grant
        if reply.status != P.STATUS_OK or grant is None:
            return
        if not P.VERSION_1 <= grant.version <= self.version:
            raise ProtocolError("HELLO granted version %d; %d was asked for"
                                % (grant.version, self.version))
        if grant.max_frame < _MIN_SERVER_MAX_FRAME:
            raise ProtocolError("HELLO reply: max_frame %d leaves no room "
                                "for any request" % grant.max_frame)
        conn.max_frame = min(grant.max_frame, self.max_frame_limit)
        if conn.max_frame < grant.max_frame:
            log.info("server %s:%d allows frames of %d bytes; this client "
                     "sends and accepts at most %d (max_frame_limit)",
                     self.host, self.port, grant.max_frame, conn.max_frame)
        conn.decoder.max_payload = conn.max_frame + P.SERVER_FRAME_SLACK
        if grant.version >= P.VERSION_2:
            conn.version = P.VERSION_2
            conn.idle_timeout = grant.idle_timeout
        if flags & P.HELLO_FLAG_DROP:
            conn.drop = conn.version >= P.VERSION_2

    # ---- I/O thread -----------------------------------------------------

    def _io_main(self) -> None:
        conn = self._conn
        while conn is not None:
            self._read_loop(conn)
            conn = self._reconnect(conn)

    def _read_loop(self, conn: _Connection) -> None:
        error: Optional[BaseException] = None
        while True:
            try:
                data = conn.io.recv()
            except OSError as exc:
                error = exc
                break
            if not data:
                error = _ServerClosed("server closed the connection")
                break
            try:
                for payload in conn.decoder.feed(data):
                    self._dispatch(conn, payload)
            except ProtocolError as exc:
                log.error("protocol error from %s:%d: %s", self.host,
                          self.port, exc)
                error = exc
                break
        self._kill(conn, error)
        self._direct.relay_lost()

    def _dispatch(self, conn: _Connection, payload: bytes) -> None:
        msg = parse_message(payload)
        if not isinstance(msg, Reply):
            self._dispatch_event(conn, msg)
            return
        if conn.dead:
            return  # killed meanwhile (close): its requests were failed
        try:
            req = conn.pending.popleft()
        except IndexError:
            raise ProtocolError("unsolicited reply 0x%02x"
                                % (msg.command | P.REPLY_BIT)) from None
        if msg.command != req.command:
            raise ProtocolError("reply 0x%02x to request 0x%02x"
                                % (msg.command | P.REPLY_BIT, req.command))
        conn.count_reply(msg)
        req.reply = msg
        req.status = msg.status
        if req.event is not None:
            req.event.set()
        elif req.on_reply is not None:
            req.on_reply(msg)
        elif msg.status != P.STATUS_OK and P.CMD_DIRECT_OFFER <= req.command \
                <= P.CMD_DIRECT_RESULT:
            log.info("%s refused (status %d)", P.COMMAND_NAMES[req.command],
                     msg.status)
        elif msg.status != P.STATUS_OK:
            self.send_failures += 1
            log.warning("%s failed: status %d",
                        P.COMMAND_NAMES.get(req.command, req.command),
                        msg.status)

    def _dispatch_event(self, conn: _Connection, msg: ServerMessage) -> None:
        """An event (anything but a reply) from the server."""
        if isinstance(msg, Delivery):
            if self._direct.skip(msg.sender):
                return  # re-sent after a fallback; delivered from the path
            sender = None if msg.sender is None else _id_str(msg.sender)
            self._enqueue(Message(msg.data, sender))
        elif isinstance(msg, Direct):
            self._direct.on_event(msg)
        elif isinstance(msg, PresenceEvent):
            self._callback(self.on_presence, _id_str(msg.device),
                           msg.state == P.PRESENCE_ONLINE)
        elif isinstance(msg, ByeEvent):
            bye = Bye(msg.reason, msg.text.decode("utf-8", "replace"))
            conn.bye = bye
            self.last_bye = bye
            # The text comes from the server: escaped, it cannot forge log
            # lines or drive a terminal.
            log.info("server says bye: %s (%s)", bye.name, escape(msg.text))
            self._callback(self.on_bye, bye)
        elif isinstance(msg, GapEvent):
            self._on_gap(conn, msg)
        else:
            log.debug("ignoring frame %r", msg)

    def _on_gap(self, conn: _Connection, msg: GapEvent) -> None:
        """A GAP event: counted, queued where the missing messages would
        have been, and handed to ``on_gap``.

        Raises:
            ProtocolError: the connection does not have the DROP policy, so
                the server may not send GAP.
        """
        who = "other devices" if msg.publisher is None \
            else escape(msg.publisher)
        if not conn.drop:
            raise ProtocolError("a GAP event (from %s) on a connection "
                                "without the DROP policy" % who)
        gap = Gap(None if msg.publisher is None else _id_str(msg.publisher),
                  msg.frames, msg.bytes)
        self.gap_events += 1
        self.missed_messages += gap.frames
        self.missed_bytes += gap.bytes
        log.info("the server dropped %d message(s) (%d bytes) from %s",
                 gap.frames, gap.bytes, who)
        self._enqueue(gap)
        self._callback(self.on_gap, gap)

    def _has_room(self, count: int, size: int) -> bool:
        """True if ``count`` more items holding ``size`` bytes fit in the
        receive queue (``_queue_cond`` held)."""
        return len(self._queue) + count <= self.queue_size \
            and self._queued_bytes + size <= self.queue_bytes

    def _flush_tally(self) -> None:
        """Queue the tally of missed messages as Gaps, if they fit or the
        queue is empty (at most 17 of them beyond the bound, then);
        ``_queue_cond`` held."""
        if self._queue and not self._has_room(len(self._tally), 0):
            return
        self._queue.extend(self._tally.take())
        self._queue_cond.notify()

    def _enqueue(self, msg: Received) -> None:
        """Queue a message or a Gap, in stream order: while a tally of
        missed messages waits, it goes in first, or the new item joins it
        (drop mode); otherwise an item that does not fit is dropped."""
        size = _data_size(msg)
        drop_mode = self.slow_consumer == SLOW_DROP
        with self._queue_cond:
            tally = self._tally
            if tally and self._has_room(len(tally) + 1, size):
                self._queue.extend(tally.take())
            if tally or not self._has_room(1, size):
                if drop_mode:
                    if isinstance(msg, Gap):
                        tally.add(msg.publisher, msg.frames, msg.bytes)
                        return
                    tally.add(msg.sender, 1, size)
                self.dropped += 1
                self.dropped_bytes += size
                if not self._overflowing:
                    self._overflowing = True
                    log.warning("receive queue full (%d messages, %d bytes; "
                                "limits %d and %d): dropping messages until "
                                "it drains", len(self._queue),
                                self._queued_bytes, self.queue_size,
                                self.queue_bytes)
                return
            if self._overflowing and len(self._queue) < self.queue_size // 2 \
                    and self._queued_bytes < self.queue_bytes // 2:
                self._overflowing = False
                log.warning("receive queue drained; %d messages (%d bytes) "
                            "dropped so far", self.dropped,
                            self.dropped_bytes)
            self._queue.append(msg)
            self._queued_bytes += size
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
        # EOF, which is not the news.  It is published before the shutdown
        # wakes the reader, which may report the state change at once.
        if conn.error is None:
            conn.error = error
        if conn.error is not None and not self._closed.is_set():
            self.last_error = conn.error
        # Shut down first: a send waiting under the send lock, and the
        # reader, wake up at once.
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
            log.info("connection to %s:%d lost: %s", self.host, self.port,
                     conn.error)
        for req in pending:
            req.lost = True
            if req.event is not None:
                req.event.set()

    def _after_bye(self, old: _Connection) -> None:
        """What a BYE means for the id (v2): taken over, it is taken back
        up to ``takeover_retries`` times in a row, then given up; withdrawn
        by the server (not authorized, unless it was the server's count of
        this connection's failed AUTHs), it is given up at once."""
        bye, my_id = old.bye, self._my_id
        if bye is None or my_id is None:
            return
        if bye.reason == P.BYE_TAKEN_OVER:
            self._takeovers += 1
            # Takeovers in a row are a floor for the backoff.
            self._attempt = max(self._attempt, self._takeovers)
            if self._takeovers <= self.takeover_retries:
                log.warning("%s:%d: another connection took %s (%d time(s) "
                            "in a row): taking it back after a backoff",
                            self.host, self.port, escape(my_id),
                            self._takeovers)
                return
            self._give_up_id(my_id, IdTakenOver(
                "other connections took %s %d times in a row "
                "(takeover_retries %d)" % (escape(my_id), self._takeovers,
                                           self.takeover_retries),
                bye=bye, takeovers=self._takeovers))
        elif bye.reason == P.BYE_NOT_AUTHORIZED \
                and old.auth_refusals < P.AUTH_MAX_FAILURES:
            self._give_up_id(my_id, AuthError(
                P.CMD_AUTH, P.STATUS_NOT_AUTHORIZED,
                "the server withdrew %s (BYE \"not authorized\": its auth "
                "file no longer lets this device hold it)" % escape(my_id)))

    def _give_up_reason(self, old: _Connection) -> Optional[ClosedByServer]:
        """Count how ``old`` ended; return why not to reconnect, if so."""
        if time.monotonic() - old.established >= self.stable_time:
            self._attempt = 0
            self._quick_closes = 0
            self._takeovers = 0  # the id was held long: the fight is over
        elif old.closed_silently():
            self._quick_closes += 1
        self._after_bye(old)
        if self.max_quick_closes and \
                self._quick_closes >= self.max_quick_closes:
            return ClosedByServer(
                "the server closed the connection without a word within "
                "%.3g s of its making %d times in a row (v1 does that to a "
                "client whose id another connection takes over); giving up"
                % (self.stable_time, self._quick_closes),
                closes=self._quick_closes)
        return None

    def _reconnect(self, old: _Connection) -> Optional[_Connection]:
        """After ``old`` died: reconnect with backoff, or finish."""
        if self._closed.is_set():
            return None
        reason = self._give_up_reason(old)
        if reason is not None or not self.reconnect:
            if reason is not None:
                self._close_reason = reason
                log.warning("%s:%d: %s", self.host, self.port, reason)
            self._closed.set()
            self._set_state(ConnectionState.CLOSED)
            with self._queue_cond:
                self._queue_cond.notify_all()
            return None
        self._set_state(ConnectionState.DISCONNECTED)
        while True:
            delay = random.uniform(0.0, min(
                self.backoff_max, self.backoff_base * (2 ** self._attempt)))
            self._attempt = min(self._attempt + 1, 62)
            if self._closed.wait(delay):
                return None
            try:
                conn = self._open()
            except ConnectError as exc:
                log.debug("reconnect attempt %d failed: %s", self._attempt,
                          exc)
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
            self._report_id_loss()
            self._direct.connected()
            return conn

    def _report_id_loss(self) -> None:
        """Tell the application, once, that the id was given up."""
        loss, self._id_loss = self._id_loss, None
        if loss is None:
            return
        self._id_lost = loss[1]
        self._callback(self.on_id_lost, *loss)

    def _set_state(self, state: ConnectionState) -> None:
        with self._state_cond:
            if self._state is state or self._state is ConnectionState.CLOSED:
                return
            self._state = state
            self._state_cond.notify_all()
        self._callback(self.on_state, state)

    # ---- heartbeat thread -----------------------------------------------

    def _heartbeat_main(self) -> None:
        """Judge liveness, then send a heartbeat; never waits for a lock or
        a reply, so that a stuck writer cannot hide a dead server."""
        while not self._closed.wait(self.heartbeat):
            conn = self._conn
            if conn is None or conn.dead or not self.connected:
                continue
            now = time.monotonic()
            waited = conn.unanswered_for(now)
            if waited > self.heartbeat * self.max_missed:
                self._kill(conn, ConnectionLostError(
                    "no reply from the server for %.1f s" % waited))
                continue
            # A writer holding the lock is busy or stuck: its requests probe
            # the server as well, and its own deadline bounds it.
            if not self._send_lock.acquire(blocking=False):
                continue
            try:
                self._submit(conn, P.CMD_HEARTBEAT, _HEARTBEAT_FRAME, False,
                             now + self.timeout)
                self._retry_restores(conn, now + self.timeout)
            except P2PError:
                pass
            finally:
                self._send_lock.release()

    def _retry_restores(self, conn: _Connection, deadline: float) -> None:
        """Retry a re-register or re-subscribe that the server refused; the
        answer is looked at on the next heartbeat, not waited for."""
        for item in list(self._unrestored):
            req = self._restoring.get(item)
            if req is not None:
                assert req.event is not None
                if not req.event.is_set():
                    continue  # not answered yet
                del self._restoring[item]
                if req.status == P.STATUS_OK and not req.lost:
                    self._unrestored.discard(item)
                    continue
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
            self._restoring[item] = self._submit(
                conn, cmd, frame(encode_id_command(cmd, body)), True,
                deadline)

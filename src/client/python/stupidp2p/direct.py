"""Direct paths between two devices (stupidp2p(7), DIRECT PATHS): the
Python counterpart of the C library's ``sp_direct.h``, byte for byte on the
wire, so that a Python device and a C device make paths between them.

Two devices that may reach each other both ways have the relay introduce
them, connect over TCP (across their LAN, or through their NATs by TCP
simultaneous open from their relay connections' ports), and from then on
one's :meth:`~stupidp2p.Client.send_to` messages to the other travel on
that connection, and back through the relay when it dies.  Broadcasts
(SEND) always take the relay.

Threads.  Everything on the direct sockets runs on one more daemon thread
of the client, the **direct thread**: a ``poll(2)`` loop over the attempts'
listeners and connections and the paths, woken through a pipe, with its
timers derived from ``time.monotonic()`` once per round.  The relay's
DIRECT_* events come on the I/O thread and are handled there; a caller's
``send_to`` on a path writes its DATA frame itself.  One lock (``_mu``)
guards the peer table and every peer's fields; it is taken before the
client's send lock and the receive queue's condition, never after them.

The rendezvous, per peer::

    offerer: IDLE -> OFFERING -> AWAIT_ANSWER -> DIAL_WAIT -> DIALING -> DIRECT
    target:  IDLE ------------> AWAIT_SYNC ----------------> DIALING -> DIRECT

The offerer opens a listener (its LAN candidates), sends DIRECT_OFFER and
measures the round trip to the ANSWER; it sends DIRECT_SYNC and dials half a
round trip later, while the target dials when the SYNC arrives, so that both
SYNs leave at about the same moment.  Each candidate is dialed with a
non-blocking connect of its own deadline and dialed again after a random
pause until the attempt's window closes.  Every connection, dialed or
accepted, proves the attempt secret first (:mod:`stupidp2p.direct_proof`);
the offerer takes the first that proves and says USE, the target takes the
one on which USE comes.

Ordering, per direction (this device's send_to's to the peer):

* Switch: under ``_mu``, DIRECT_MARK SWITCH goes out on the relay after every
  SEND_TO relayed to the peer (a relayed send_to is written under ``_mu``
  too), and from then on send_to writes DATA frames numbered from 1.  The
  peer delivers DATA only once the mark came through the relay; until then
  the direct thread stops reading the path.
* Acknowledgement: the peer acknowledges what it delivered; the rest is kept
  and bounds the window (a send_to waits while more than
  :data:`WINDOW_BYTES` are unacknowledged).
* Fallback (the path failed, went quiet for three keepalive intervals, or
  the peer fell back): under ``_mu``, DIRECT_MARK FALLBACK with the last
  acknowledged number X goes out on the relay, then every unacknowledged
  message again as a SEND_TO, then whatever send_to is called next.  The
  receiver stops delivering DATA when the mark arrives; it delivered up to
  J >= X, and drops the first J - X relayed messages from the peer after
  the mark.  Delivering a DATA and counting it happen under ``_mu``, as the
  mark's handling does, so the count the mark reads is exact.

A DATA that the receive queue has no room for is neither queued nor
acknowledged: the path is not read until :meth:`Client.recv` makes room
(the sockets' buffers, and the sender's window, are the bound).

A lost relay connection ends the paths without marks (a fallback needs the
relay): what was not acknowledged on them is lost, as relayed messages
queued on the lost connection are.
"""

from __future__ import annotations

import enum
import errno
import fcntl
import logging
import os
import random
import select
import socket
import struct
import threading
import time
from collections import deque
from typing import (TYPE_CHECKING, Callable, Deque, Dict, List, Optional,
                    Tuple)

from . import protocol as P
from .codec import (LINK_DATA_HEAD_SIZE, LINK_PROOF_SIZE, Candidate, Direct,
                    FrameDecoder, Reply, encode_direct_answer,
                    encode_direct_mark, encode_direct_offer,
                    encode_direct_result, encode_direct_sync,
                    encode_link_ack, encode_link_data_head, encode_link_ping,
                    encode_link_proof, encode_link_use, frame, parse_link)
from .direct_proof import direct_mac, direct_mac_valid
from .errors import ProtocolError
from .escape import escape

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Path", "PATH_RELAY", "PATH_DIRECT", "DIRECT_OFF",
           "DIRECT_ACCEPT", "DIRECT_AUTO", "WINDOW_BYTES"]

log = logging.getLogger("stupidp2p")


class Path(enum.Enum):
    """The path of this device's send_to messages to a peer."""

    RELAY = "relay"
    """Through the server."""
    DIRECT = "direct"
    """On a direct connection to the peer."""


PATH_RELAY = Path.RELAY
PATH_DIRECT = Path.DIRECT

DIRECT_OFF = "off"
"""``direct``: offers are declined; paths only to peers named to
:meth:`Client.connect_direct` (as C's STUPID_P2P_DIRECT_OFF)."""
DIRECT_ACCEPT = "accept"
"""``direct``: offers are accepted (STUPID_P2P_DIRECT_ACCEPT)."""
DIRECT_AUTO = "auto"
"""``direct``: offers are accepted, and the first send_to to a peer starts
an attempt to reach it directly (STUPID_P2P_DIRECT_AUTO; ``direct=True``)."""

# The C library's figures (sp_direct.h), in seconds.
PEERS_MAX = 32
ACCEPTS_MAX = 4
STEP = 5.0            # for the ANSWER, for the SYNC
PUNCH = 6.0           # dialing, from the first SYN
TRY = 1.5             # one connect
JITTER = (0.020, 0.300)  # pause before a connect is retried
PROOF_TIME = 3.0      # a connection proves itself within
RETRY = 2.0           # the next attempt, doubling...
RETRY_MAX = 300.0     # ...up to
SETTLED = 60.0        # a path that lived this long resets the back-off
WINDOW_BYTES = 4 << 20
KEEPALIVE_RANGE = (0.1, 25.0)

_CHUNK = 256 * 1024
_SIOCGIFFLAGS = 0x8913
_SIOCGIFADDR = 0x8915
_IFF_UP = 0x1
_IFF_LOOPBACK = 0x8


class _Phase(enum.Enum):
    IDLE = 0
    OFFERING = 1      # offerer: OFFER sent, its reply awaited
    AWAIT_ANSWER = 2  # offerer: the target's ANSWER awaited
    AWAIT_SYNC = 3    # target: ANSWER sent, the SYNC awaited
    DIAL_WAIT = 4     # offerer: SYNC sent, dialing at dial_at
    DIALING = 5       # connections being made and proven
    DIRECT = 6        # the path carries our send_to's


# A connection's states: closed for good (no timer), a dial waiting to be
# retried at its deadline, connecting until it, our proof sent and the
# other's awaited, (target) the offerer proved and USE awaited.
_FREE, _WAIT, _CONNECTING, _PROVING, _PROVEN = range(5)
_LOST = -1  # offer_status: the relay connection was lost meanwhile


class _Conn:
    """One connection of an attempt: dialing candidate ``dial`` (an index
    of the peer's dials), or accepted (``dial`` -1)."""

    __slots__ = ("sock", "state", "deadline", "out", "inbuf", "dial")

    def __init__(self, dial: int) -> None:
        self.sock: Optional[socket.socket] = None
        self.state = _WAIT
        self.deadline = 0.0
        self.out = bytearray()
        self.inbuf = bytearray()
        self.dial = dial

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.state = _FREE
        self.out.clear()
        self.inbuf.clear()


class _Peer:
    """A device this one makes, has or follows direct paths with."""

    def __init__(self, raw: bytes) -> None:
        self.id = raw
        self.phase = _Phase.IDLE
        self.role = 0
        self.wanted = False       # try again after failures
        # Named to connect_direct: the peer's offers are accepted whatever
        # ``direct`` says.  Unlike ``wanted``, a decline does not clear
        # it: a peer that declined our offer (it had not asked yet) and
        # then offers itself is accepted, whichever of the decline and
        # its own connect_direct came first.
        self.asked = False
        self.offer_done = True    # connect_direct: the OFFER was answered
        self.offer_status = P.STATUS_OK
        self.attempt = 0
        self.secret = b""
        self.my_nonce = b""
        self.peer_nonce = b""
        self.dials: List[Tuple[Tuple[str, int], bool]] = []  # (addr, reflexive)
        self.conns: List[_Conn] = []
        self.listener: Optional[socket.socket] = None
        self.step_deadline = 0.0
        self.offer_sent = 0.0
        self.dial_at = 0.0
        self.punch_deadline = 0.0
        self.started = 0.0
        self.retry_at = 0.0
        self.failures = 0
        self.direct_since = 0.0
        self.last_rx = 0.0
        self.last_ping = 0.0
        # The path.
        self.path: Optional[socket.socket] = None
        self.broken = False       # a write failed: the thread falls back
        # Frames not yet written: our DATA (bounded by the window), our
        # proof or USE, and at most one ACK and one PING: an ACK is queued
        # only behind nothing (ACKs are cumulative: one owed is sent once
        # the rest is out), so a peer that does not read cannot make it
        # grow.
        self.pout = bytearray()
        self.ack_owed = False
        self.retx: Deque[Tuple[int, bytes, int]] = deque()  # (seq, data, frame size)
        self.unacked = 0
        self.next_seq = 1
        self.acked = 0
        self.decoder: Optional[FrameDecoder] = None
        self.pin: Deque[bytes] = deque()  # payloads read, not yet handled
        self.in_blocked = False   # a DATA waits (for the SWITCH, or room)
        # The peer's messages to us.
        self.in_attempt = 0       # the attempt of the current path
        self.in_switched = False  # its SWITCH mark came
        self.in_closed = False    # no more DATA delivered from it
        self.in_marked = False    # its FALLBACK mark came
        self.in_delivered = 0     # highest DATA delivered
        self.prev_attempt = 0     # the path before, until its FALLBACK mark
        self.prev_delivered = 0
        self.switch_seen = 0      # attempt of the last SWITCH mark seen
        self.skip = 0             # relayed messages still to drop (re-sent)

    @property
    def name(self) -> str:
        return escape(self.id)


def _now() -> float:
    return time.monotonic()


def _jitter(lo: float, hi: float) -> float:
    return random.uniform(lo, hi)


def _no_delay(s: socket.socket) -> None:
    """TCP_NODELAY: a message, an ACK or a PING is one small write that
    must leave at once (Nagle's algorithm would hold it until the peer's
    delayed ACK, some 40 ms)."""
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


def _interface_addresses(loopback: bool) -> List[bytes]:
    """The IPv4 addresses of the interfaces that are up (loopback ones only
    when ``loopback``), from SIOCGIFFLAGS and SIOCGIFADDR (netdevice(7)):
    the standard library has no getifaddrs."""
    out: List[bytes] = []
    try:
        names = [name for _, name in socket.if_nameindex()]
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        return out
    with probe:
        for name in names:
            req = struct.pack("16s16x", name.encode()[:15])
            try:
                flags = struct.unpack_from(
                    "H", fcntl.ioctl(probe.fileno(), _SIOCGIFFLAGS, req),
                    16)[0]
                if not flags & _IFF_UP or (flags & _IFF_LOOPBACK
                                           and not loopback):
                    continue
                addr = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, req)[20:24]
            except OSError:
                continue  # no IPv4 address
            if addr not in out:
                out.append(addr)
    return out


class DirectPaths:
    """The direct paths of one :class:`~stupidp2p.Client` (its ``_direct``).

    Not part of the public API: the client's :meth:`connect_direct`,
    :meth:`path`, ``direct``, ``direct_keepalive`` and ``on_path`` are.
    """

    def __init__(self, client: "Client", mode: str, keepalive: float,
                 on_path: Optional[Callable[[str, Path], None]]) -> None:
        self._client = client
        self.mode = mode
        self.keepalive = keepalive
        self.on_path = on_path
        self._mu = threading.Lock()
        self._cond = threading.Condition(self._mu)
        self._peers: Dict[bytes, _Peer] = {}
        self._thread: Optional[threading.Thread] = None
        self._stopping = False
        # The direct thread's wake-up pair, made with the thread (a client
        # without direct paths holds no more descriptors than before).
        # Socket objects, not bare numbers: a wake racing with stop() then
        # fails on the closed object instead of writing to whatever file
        # took the number.
        self._wake_r: Optional[socket.socket] = None
        self._wake_w: Optional[socket.socket] = None
        self._queue_blocked = False  # a DATA waits for room in the queue
        self.stranger_closes = 0
        """Connections closed because their proof failed."""

    # ---- lifecycle (any thread) --------------------------------------

    def start(self) -> None:
        """Start the direct thread, once."""
        with self._mu:
            self._start_locked()

    def _start_locked(self) -> None:
        if self._thread is not None or self._stopping:
            return
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread = threading.Thread(target=self._main,
                                        name="stupidp2p-direct", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close every direct socket.  Idempotent."""
        with self._mu:
            if self._stopping:
                return
            self._stopping = True
            thread = self._thread
            self._cond.notify_all()
        self.wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
        with self._mu:
            for p in self._peers.values():
                self._end_attempt(p)
                self._close_path(p)
            wake = (self._wake_r, self._wake_w)
        for w in wake:
            if w is not None:
                w.close()

    @property
    def thread(self) -> Optional[threading.Thread]:
        """The direct thread, once started."""
        return self._thread

    def has_peers(self) -> bool:
        """True once any peer is followed (a send_to must ask the table)."""
        return bool(self._peers)

    def wake(self) -> None:
        """Make the direct thread look at its state again (lock-free: the
        receive queue calls it with its own lock held)."""
        w = self._wake_w
        if w is None:
            return  # no thread to wake
        try:
            w.send(b"x")
        except OSError:
            pass  # full: a wake is pending already; closed: stopped

    def queue_drained(self) -> None:
        """The receive queue made room: a path waiting for it goes on."""
        if self._queue_blocked:
            self._queue_blocked = False
            self.wake()

    def unsettled(self) -> bool:
        """True while a message written to a path is not acknowledged."""
        with self._mu:
            return self._unsettled_locked()

    def _unsettled_locked(self) -> bool:
        return any(p.phase is _Phase.DIRECT and not p.broken and p.unacked
                   for p in self._peers.values())

    def wait_settled(self, deadline: float) -> None:
        """Wait until nothing written to a path is unacknowledged, at most
        until ``deadline`` (close: what was sent arrives).  Not on the
        direct thread, which is the one that takes the ACKs in."""
        if threading.current_thread() is self._thread:
            return
        with self._cond:
            while self._unsettled_locked():
                left = deadline - _now()
                if left <= 0 or not self._cond.wait(left):
                    return

    # ---- the callers' side -------------------------------------------

    def path(self, raw: bytes) -> Path:
        with self._mu:
            p = self._peers.get(raw)
            return Path.DIRECT if p is not None \
                and p.phase is _Phase.DIRECT else Path.RELAY

    def connect(self, raw: bytes, deadline: float) -> Optional[int]:
        """connect_direct: an attempt now, whatever the back-off said.
        Returns the OFFER's status once the server answered it (1 when a
        path exists or is being made already), :data:`_LOST` if the relay
        connection was lost meanwhile, None at the deadline; raises
        :class:`LookupError` when the peer table is full."""
        with self._cond:
            self._start_locked()
            p = self._peer_get(raw)
            if p is None:
                raise LookupError("%d peers followed already" % PEERS_MAX)
            p.wanted = p.asked = True
            if p.phase is not _Phase.IDLE:
                return P.STATUS_OK
            p.retry_at = 0.0
            p.offer_done = False
            self.wake()
            while not p.offer_done and not self._stopping:
                left = deadline - _now()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return p.offer_status if p.offer_done else None

    def send_to(self, raw: bytes, body: bytes,
                relay: Callable[[], object], deadline: float) -> object:
        """A send_to: on the path if the peer has one (returns None), else
        ``relay()``'s result (called under ``_mu``, so that it is ordered
        with the SWITCH mark).  Waits while the path's window is full, at
        most until ``deadline`` (then raises TimeoutError).  With the AUTO
        mode, a peer without a path is noted for an attempt."""
        client = self._client
        with self._cond:
            p = self._peers.get(raw)
            if p is None and self.mode == DIRECT_AUTO \
                    and client.protocol_version == P.VERSION_2:
                p = self._peer_get(raw)
                self._start_locked()
            if p is not None and self.mode == DIRECT_AUTO and not p.wanted:
                p.wanted = True
                self.wake()
            while p is not None and p.phase is _Phase.DIRECT \
                    and p.unacked > WINDOW_BYTES and not self._stopping:
                left = deadline - _now()
                if left <= 0:
                    raise TimeoutError("the direct path's window stayed "
                                       "full")
                self._cond.wait(left)
            if p is None or p.phase is not _Phase.DIRECT:
                return relay()
            # A broken path still takes the message, into retx only: the
            # fallback re-sends it after the mark and those before it.
            # Through the relay now, it would overtake them.
            whole = frame(encode_link_data_head(p.next_seq), body)
            p.retx.append((p.next_seq, body, len(whole)))
            p.next_seq += 1
            p.unacked += len(whole)
            if not p.broken:
                p.pout += whole
                self._flush(p)
            if p.pout or p.broken:
                self.wake()
            return None

    def skip(self, sender: Optional[bytes]) -> bool:
        """A relayed delivery from ``sender`` (I/O thread): True if it is a
        message re-sent after a fallback that was delivered already from
        the path."""
        if not sender or not self._peers:
            return False
        with self._mu:
            p = self._peers.get(sender)
            if p is None or p.skip == 0:
                return False
            p.skip -= 1
            return True

    # ---- the relay's side (I/O thread) -------------------------------

    def relay_lost(self) -> None:
        """The relay connection is gone: the paths go with it, without
        marks.  The peer's side of the numbering is kept: its FALLBACK
        mark may still reach us after a reconnect."""
        changed = []
        with self._cond:
            for p in self._peers.values():
                if p.phase is _Phase.DIRECT:
                    changed.append(p)
                    if p.unacked:
                        log.warning("relay lost: %d unacknowledged byte(s) "
                                    "on the direct path to %s are lost",
                                    p.unacked, p.name)
                    self._close_path(p)
                self._end_attempt(p)
                p.phase = _Phase.IDLE
                p.retry_at = _now() + RETRY
                if not p.offer_done:
                    p.offer_done = True
                    p.offer_status = _LOST
            self._cond.notify_all()
        for p in changed:
            self._path_changed(p, Path.RELAY)
        self.wake()

    def connected(self) -> None:
        """A (new) relay connection is up: wanted peers may try again."""
        self.wake()

    def on_event(self, d: Direct) -> None:
        """An OFFER, ANSWER, SYNC or MARK event from the relay."""
        again = False
        fell_back: Optional[_Peer] = None
        with self._cond:
            if d.command == P.EVT_DIRECT_OFFER:
                p = self._peer_get(d.id)
                if p is None:  # no room to follow another peer
                    self._request(encode_direct_answer(
                        P.CMD_DIRECT_ANSWER, d.id, d.attempt,
                        P.DIRECT_DECLINE))
                    return
            else:
                p = self._peers.get(d.id)
                if p is None:
                    return
            if d.command == P.EVT_DIRECT_OFFER:
                if p.phase is _Phase.DIRECT and self._accepts(p):
                    # The peer has given up this path already: fall back,
                    # then answer the offer as any other.
                    if self._fallback(p, "the peer offered a new path"):
                        fell_back = p
                    again = True
                else:
                    self._on_offer(p, d)
            elif d.command == P.EVT_DIRECT_ANSWER:
                self._on_answer(p, d)
            elif d.command == P.EVT_DIRECT_SYNC:
                if p.phase is _Phase.AWAIT_SYNC and p.attempt == d.attempt:
                    self._start_dialing(p, _now())
                    self.wake()
            elif d.mark == P.MARK_SWITCH:
                p.switch_seen = d.attempt
                if p.in_attempt == d.attempt and not p.in_closed:
                    p.in_switched = True
                    if p.in_blocked:
                        self.wake()  # the DATA held for the mark go now
            else:
                if self._on_fallback_mark(p, d):
                    fell_back = p
        if fell_back is not None:
            self.wake()  # its socket is closed: out of the poll set
            self._path_changed(fell_back, Path.RELAY)
        if again:
            self.on_event(d)

    def _on_offer(self, p: _Peer, d: Direct) -> None:
        accept = self._accepts(p)
        if accept and p.phase in (_Phase.OFFERING, _Phase.AWAIT_ANSWER) \
                and not self._yields(p):
            accept = False  # our own offer wins the crossing
        if not accept:
            self._answer(p, d.attempt, False)
            return
        self._end_attempt(p)
        p.phase = _Phase.IDLE
        p.secret = d.secret
        p.peer_nonce = d.nonce
        self._take_candidates(p, d)
        self._answer(p, d.attempt, True)
        if not p.offer_done:
            # Our own offer gave way to this one: a path is on its way.
            p.offer_done = True
            p.offer_status = P.STATUS_OK
            self._cond.notify_all()
        self._start_locked()

    def _on_answer(self, p: _Peer, d: Direct) -> None:
        if p.phase is not _Phase.AWAIT_ANSWER or p.attempt != d.attempt:
            return
        if d.accept != P.DIRECT_ACCEPT:
            # The peer does not want direct paths: no retries (``asked``
            # stays: an offer it makes once it asks is still taken).
            p.wanted = False
            self._attempt_failed(p, "declined by the peer", False)
            return
        p.peer_nonce = d.nonce
        self._take_candidates(p, d)
        if not self._request(encode_direct_sync(P.CMD_DIRECT_SYNC, p.id,
                                                p.attempt)):
            self._attempt_failed(p, "the relay connection is gone", False)
            return
        # The SYNC takes about half a round trip to the target.
        now = _now()
        p.phase = _Phase.DIAL_WAIT
        p.dial_at = now + (now - p.offer_sent) / 2
        self.wake()

    def _on_fallback_mark(self, p: _Peer, d: Direct) -> bool:
        """FALLBACK: the peer re-sends through the relay everything after
        d.seq; we drop what we delivered of it already.  Returns True if
        our own path to it ended here."""
        if d.attempt == p.in_attempt:
            delivered = p.in_delivered
            p.in_closed = p.in_marked = True
        elif d.attempt == p.prev_attempt:
            delivered = p.prev_delivered
        else:
            delivered = 0
        if d.attempt == p.prev_attempt:
            p.prev_attempt = 0
        if delivered > d.seq:
            p.skip += delivered - d.seq
        log.debug("%s fell back from attempt %d after %d acknowledged; %d "
                  "delivered: %d re-sent message(s) to drop", p.name,
                  d.attempt, d.seq, delivered, p.skip)
        if p.phase is _Phase.DIRECT and p.attempt == d.attempt:
            return self._fallback(p, "the peer fell back")
        return False

    def on_offer_reply(self, raw: bytes, reply: Optional[Reply]) -> None:
        """The server's reply to our DIRECT_OFFER (None: the connection was
        lost first; relay_lost handles that)."""
        if reply is None:
            return
        with self._cond:
            p = self._peers.get(raw)
            if p is None or p.phase is not _Phase.OFFERING:
                return  # abandoned meanwhile
            p.offer_done = True
            p.offer_status = reply.status
            self._cond.notify_all()
            if reply.status != P.STATUS_OK or reply.direct is None:
                # A refusal the server will repeat: no automatic retries.
                if reply.status in (P.STATUS_NOT_AUTHORIZED,
                                    P.STATUS_UNSUPPORTED):
                    p.wanted = False
                self._attempt_failed(p, "the server refused the offer "
                                     "(status %d)" % reply.status, False)
                return
            p.attempt = reply.direct.attempt
            p.secret = reply.direct.secret
            p.phase = _Phase.AWAIT_ANSWER

    # ---- helpers (_mu held) ------------------------------------------

    def _peer_get(self, raw: bytes) -> Optional[_Peer]:
        p = self._peers.get(raw)
        if p is None and len(self._peers) < PEERS_MAX:
            p = self._peers[raw] = _Peer(raw)
        return p

    def _accepts(self, p: _Peer) -> bool:
        """True when the peer's offers are taken: direct paths are not off,
        or this device asked for one to it (stupidp2p(3): a peer declines
        when its option is off and it has not asked for a path itself)."""
        return self.mode != DIRECT_OFF or p.asked

    def _yields(self, p: _Peer) -> bool:
        """True when our attempt gives way to the peer's offer that crossed
        it: the offer of the smaller id wins, on both sides alike."""
        mine = self._client._my_id or b""
        return mine > p.id

    def _request(self, payload: bytes,
                 on_reply: Optional[Callable[[Optional[Reply]], None]]
                 = None) -> bool:
        """A DIRECT_* request on the relay connection, not waited for."""
        return self._client._direct_request(payload, on_reply)

    def _relay_local(self) -> Optional[Tuple[str, int]]:
        conn = self._client._conn
        if conn is None or conn.dead:
            return None
        try:
            name = conn.sock.getsockname()
        except OSError:
            return None
        return (name[0], name[1]) if conn.sock.family == socket.AF_INET \
            else None

    def _lan_candidates(self, port: int) -> List[Candidate]:
        """The relay connection's own address, then the other IPv4
        addresses of interfaces that are up (loopback only when the relay
        is reached over it), each with the listener's port."""
        addrs: List[bytes] = []
        local = self._relay_local()
        if local is not None:
            addrs.append(socket.inet_aton(local[0]))
        loopback = bool(addrs) and addrs[0][0] == 127
        for a in _interface_addresses(loopback):
            if a not in addrs:
                addrs.append(a)
        return [Candidate(P.CANDIDATE_LAN, port, a)
                for a in addrs[:P.DIRECT_CANDIDATES_MAX]]

    def _prepare(self, p: _Peer) -> Tuple[List[Candidate], int]:
        """A fresh nonce, a listener, the candidates and the relay's local
        port for an OFFER or ANSWER."""
        p.my_nonce = os.urandom(P.DIRECT_NONCE_SIZE)
        cands: List[Candidate] = []
        if p.listener is None:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.setblocking(False)
                s.bind(("0.0.0.0", 0))
                s.listen(8)
                p.listener = s
            except OSError as exc:
                s.close()
                log.info("no listening socket for a direct path (%s): no "
                         "LAN candidates", exc)
        if p.listener is not None:
            cands = self._lan_candidates(p.listener.getsockname()[1])
        local = self._relay_local()
        return cands, 0 if local is None else local[1]

    def _end_attempt(self, p: _Peer) -> None:
        """Free what an attempt holds, the path excepted."""
        for c in p.conns:
            c.close()
        p.conns = []
        if p.listener is not None:
            p.listener.close()
            p.listener = None
        p.dials = []

    def _backoff(self, p: _Peer) -> None:
        env = min(RETRY * (2 ** min(p.failures, 20)), RETRY_MAX)
        p.failures = min(p.failures + 1, 64)
        p.retry_at = _now() + _jitter(env / 2, env)

    def _attempt_failed(self, p: _Peer, why: str, report: bool) -> None:
        log.info("direct path to %s not made: %s", p.name, why)
        if report:
            self._request(encode_direct_result(
                p.id, p.attempt, P.DIRECT_OUTCOME_FAILED,
                int((_now() - p.started) * 1000)))
        self._end_attempt(p)
        p.phase = _Phase.IDLE
        self._backoff(p)
        if not p.offer_done:
            p.offer_done = True
            p.offer_status = P.STATUS_FAILURE
            self._cond.notify_all()

    def _offer(self, p: _Peer) -> None:
        cands, local_port = self._prepare(p)
        p.role = P.ROLE_OFFERER
        p.peer_nonce = b""  # the ANSWER's
        log.info("offering a direct path to %s with %d LAN candidate(s), "
                 "port %d", p.name, len(cands), cands[0].port if cands else 0)
        p.started = p.offer_sent = _now()
        p.step_deadline = p.started + STEP
        p.phase = _Phase.OFFERING
        raw = p.id
        if not self._request(encode_direct_offer(p.id, p.my_nonce,
                                                 local_port, cands),
                             lambda r: self.on_offer_reply(raw, r)):
            self._attempt_failed(p, "the offer could not be sent", False)

    def _answer(self, p: _Peer, attempt: int, accept: bool) -> None:
        """Answer the peer's offer ``attempt``.  A decline leaves p's own
        attempt as it is (our offer may be the one that wins); an
        acceptance makes p the target of this attempt."""
        if not accept:
            self._request(encode_direct_answer(P.CMD_DIRECT_ANSWER, p.id,
                                               attempt, P.DIRECT_DECLINE))
            return
        cands, local_port = self._prepare(p)
        if not self._request(encode_direct_answer(
                P.CMD_DIRECT_ANSWER, p.id, attempt, P.DIRECT_ACCEPT,
                p.my_nonce, local_port, cands)):
            self._end_attempt(p)
            return
        p.role = P.ROLE_TARGET
        p.attempt = attempt
        p.phase = _Phase.AWAIT_SYNC
        p.started = _now()
        p.step_deadline = p.started + STEP

    def _take_candidates(self, p: _Peer, d: Direct) -> None:
        """Where to dial: the other side's LAN candidates first, then its
        reflexive address, and that address with its local port when a NAT
        changed the port."""
        p.dials = []
        for reflexive in (False, True):
            for c in d.candidates:
                if (c.kind == P.CANDIDATE_REFLEXIVE) != reflexive \
                        or len(c.addr) != 4:  # IPv4 only, as the C library
                    continue
                host = socket.inet_ntoa(c.addr)
                p.dials.append(((host, c.port), reflexive))
                if reflexive and d.local_port and d.local_port != c.port:
                    p.dials.append(((host, d.local_port), True))
        del p.dials[P.DIRECT_CANDIDATES_MAX + 2:]

    def _proof_ids(self, p: _Peer) -> Tuple[bytes, bytes, bytes, bytes]:
        """(offerer id, target id, offerer nonce, target nonce)."""
        me = self._client._my_id or b""
        if p.role == P.ROLE_OFFERER:
            return me, p.id, p.my_nonce, p.peer_nonce
        return p.id, me, p.peer_nonce, p.my_nonce

    def _send_proof(self, p: _Peer, c: _Conn) -> None:
        offerer, target, on, tn = self._proof_ids(p)
        mac = direct_mac(p.secret, p.role, p.attempt, offerer, target, on, tn)
        c.out += frame(encode_link_proof(p.role, p.attempt, mac))
        c.state = _PROVING
        c.deadline = _now() + PROOF_TIME
        self._flush_conn(c)

    def _proof_valid(self, p: _Peer, role: int, attempt: int,
                     mac: bytes) -> bool:
        other = P.ROLE_TARGET if p.role == P.ROLE_OFFERER else P.ROLE_OFFERER
        if role != other or attempt != p.attempt:
            return False
        offerer, target, on, tn = self._proof_ids(p)
        return direct_mac_valid(p.secret, other, p.attempt, offerer, target,
                                on, tn, mac)

    def _dial(self, p: _Peer, c: _Conn, now: float) -> None:
        """Start (or restart) the dial of ``c``."""
        c.close()
        addr, reflexive = p.dials[c.dial]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            _no_delay(s)
            s.setblocking(False)
            if reflexive:
                # From the relay connection's own address and port: the
                # mapping its NAT made for the relay is the one the server
                # saw.
                local = self._relay_local()
                if local is None:
                    raise OSError(errno.ENOTCONN, "no relay connection")
                s.bind(local)
            rc = s.connect_ex(addr)
            if rc not in (0, errno.EINPROGRESS):
                raise OSError(rc, os.strerror(rc))
        except OSError:
            s.close()
            c.state = _WAIT
            c.deadline = now + _jitter(*JITTER)
            return
        c.sock = s
        c.state = _CONNECTING
        c.deadline = now + TRY

    def _start_dialing(self, p: _Peer, now: float) -> None:
        p.phase = _Phase.DIALING
        p.punch_deadline = now + PUNCH
        p.conns = [c for c in p.conns if c.dial < 0]
        for i in range(len(p.dials)):
            c = _Conn(i)
            p.conns.append(c)
            self._dial(p, c, now)

    def _flush_conn(self, c: _Conn) -> None:
        if c.sock is None or not c.out:
            return
        try:
            n = c.sock.send(c.out)
        except BlockingIOError:
            return
        except OSError:
            c.close()
            return
        del c.out[:n]

    def _flush(self, p: _Peer) -> None:
        """Write what the path's socket takes, and the ACK owed once the
        rest is out; a failure marks the path broken (the thread falls
        back)."""
        for _ in range(2):
            if p.path is None:
                return
            if not p.pout and p.ack_owed:
                p.ack_owed = False
                p.pout += frame(encode_link_ack(p.in_delivered))
            if not p.pout:
                return
            try:
                n = p.path.send(p.pout, socket.MSG_NOSIGNAL)
            except BlockingIOError:
                return
            except OSError:
                p.broken = True
                self.wake()
                return
            del p.pout[:n]

    def _established(self, p: _Peer, c: _Conn) -> None:
        """``c`` won: it becomes the path; the others and the listener
        close; the SWITCH mark goes out through the relay after everything
        relayed so far, and our send_to's take the path from now on."""
        now = _now()
        p.path, c.sock = c.sock, None
        p.pout = bytearray(c.out)  # our proof or USE, if not written yet
        p.decoder = FrameDecoder(self._client.max_frame_limit
                                 + LINK_DATA_HEAD_SIZE)
        p.pin = deque()
        rest = bytes(c.inbuf)  # what followed the other's proof
        c.out.clear()
        c.inbuf.clear()
        p.conns.remove(c)
        self._end_attempt(p)
        p.retx.clear()
        p.unacked = 0
        p.next_seq = 1
        p.acked = 0
        p.broken = False
        p.ack_owed = False
        # The peer's side: a new numbering; the last path's count is kept
        # until its FALLBACK mark says what to skip.
        if p.in_attempt and not p.in_marked:
            p.prev_attempt = p.in_attempt
            p.prev_delivered = p.in_delivered
        p.in_marked = False
        p.in_attempt = p.attempt
        p.in_switched = p.switch_seen == p.attempt
        p.in_closed = False
        p.in_delivered = 0
        p.in_blocked = False
        p.last_rx = p.last_ping = p.direct_since = now
        p.phase = _Phase.DIRECT
        ok = self._request(encode_direct_mark(P.CMD_DIRECT_MARK, p.id,
                                              p.attempt, P.MARK_SWITCH, 1))
        ms = int((now - p.started) * 1000)
        if ok:
            self._request(encode_direct_result(p.id, p.attempt,
                                               P.DIRECT_OUTCOME_DIRECT, ms))
        if not p.offer_done:
            p.offer_done = True
            p.offer_status = P.STATUS_OK
        self._cond.notify_all()
        if not ok:
            p.broken = True  # without its mark the peer would never deliver
        else:
            try:
                where = "%s:%d" % p.path.getpeername()[:2]
            except OSError:
                where = "?"
            log.info("direct path to %s made in %d ms (attempt %d), over %s",
                     p.name, ms, p.attempt, where)
        if rest:
            try:
                p.pin.extend(p.decoder.feed(rest))
            except ProtocolError:
                p.broken = True
        self._flush(p)

    def _close_path(self, p: _Peer) -> None:
        """Close the path and forget what was queued on it: no more DATA
        from the peer is delivered from it."""
        if p.path is not None:
            p.path.close()
            p.path = None
        p.pout = bytearray()
        p.ack_owed = False
        p.retx.clear()
        p.pin = deque()
        p.decoder = None
        p.unacked = 0
        p.in_closed = True
        p.in_blocked = False
        p.broken = False

    def _fallback(self, p: _Peer, why: str) -> bool:
        """End the path: the FALLBACK mark and every unacknowledged message
        go through the relay, in that order, before anything else we send
        the peer.  Returns True if there was a path (the caller reports
        RELAY once ``_mu`` is released)."""
        if p.phase is not _Phase.DIRECT:
            return False
        ok = self._request(encode_direct_mark(P.CMD_DIRECT_MARK, p.id,
                                              p.attempt, P.MARK_FALLBACK,
                                              p.acked))
        resent = lost = 0
        for _, body, _ in p.retx:
            if ok and self._client._direct_resend(p.id, body):
                resent += 1
            else:
                ok = False
                lost += 1
        acked, nxt = p.acked, p.next_seq
        self._close_path(p)
        p.phase = _Phase.IDLE
        if _now() - p.direct_since >= SETTLED:
            p.failures = 0  # it served well: try again soon
        self._backoff(p)
        self._cond.notify_all()
        if lost:
            log.error("direct path to %s ended (%s): %d message(s) could not "
                      "be sent again", p.name, why, lost)
        else:
            log.info("direct path to %s ended (%s): %d message(s) sent again "
                     "through the relay", p.name, why, resent)
        log.debug("fallback from attempt %d: acknowledged %d, next %d",
                  p.attempt, acked, nxt)
        return True

    def _path_changed(self, p: _Peer, path: Path) -> None:
        """Tell the application (``_mu`` not held)."""
        log.info("path to %s: %s", p.name, path.value)
        self._client._callback(self.on_path, p.id.decode(
            "utf-8", "surrogateescape"), path)

    # ---- the direct thread -------------------------------------------

    def _main(self) -> None:
        poller = select.poll
        while True:
            with self._mu:
                if self._stopping:
                    return
            changed = self._tick(_now())
            for p, path in changed:
                self._path_changed(p, path)
            fds, timeout = self._poll_set(_now())
            pl = poller()
            for fd, events, _ in fds:
                pl.register(fd, events)
            try:
                ready = pl.poll(timeout)
            except InterruptedError:
                continue
            owners = {fd: owner for fd, _, owner in fds}
            for fd, revents in ready:
                if owners[fd] is None:  # woken: drain the pair
                    wake = self._wake_r
                    try:
                        while wake is not None and wake.recv(4096):
                            pass
                    except OSError:
                        pass
                    continue
                changed = self._on_ready(owners[fd], fd, revents)
                for p, path in changed:
                    self._path_changed(p, path)

    def _poll_set(self, now: float) -> Tuple[List[Tuple[int, int, object]],
                                              int]:
        """The sockets to poll, each with its owner, and the poll timeout
        in ms (until the next timer)."""
        assert self._wake_r is not None
        out: List[Tuple[int, int, object]] = [(self._wake_r.fileno(),
                                               select.POLLIN, None)]
        nxt: Optional[float] = None

        def due(t: float) -> None:
            nonlocal nxt
            nxt = t if nxt is None or t < nxt else nxt
        with self._mu:
            for p in self._peers.values():
                if p.listener is not None:
                    out.append((p.listener.fileno(), select.POLLIN,
                                (p, p.listener)))
                if p.path is not None:
                    ev = (0 if p.in_blocked else select.POLLIN) | (
                        select.POLLOUT if p.pout else 0)
                    out.append((p.path.fileno(), ev, (p, p.path)))
                for c in p.conns:
                    if c.sock is None:
                        continue
                    ev = select.POLLOUT if c.state == _CONNECTING else (
                        select.POLLIN | (select.POLLOUT if c.out else 0))
                    out.append((c.sock.fileno(), ev, (p, c)))
                due_at = self._next_timer(p, now)
                if due_at is not None:
                    due(due_at)
        if nxt is None:
            return out, -1
        return out, max(0, int((nxt - now) * 1000) + 1)

    def _next_timer(self, p: _Peer, now: float) -> Optional[float]:
        ka = self.keepalive
        if p.phase in (_Phase.OFFERING, _Phase.AWAIT_ANSWER,
                       _Phase.AWAIT_SYNC):
            return p.step_deadline
        if p.phase is _Phase.DIAL_WAIT:
            return p.dial_at
        if p.phase is _Phase.DIALING:
            return min([p.punch_deadline] + [c.deadline for c in p.conns
                                             if c.state != _FREE])
        if p.phase is _Phase.DIRECT:
            if self._resumable(p):
                return now  # the SWITCH came, or room: go on at once
            return min(p.last_ping + ka, p.last_rx + 3 * ka)
        if p.wanted:
            return max(p.retry_at, now + 0.001) if p.retry_at > now \
                else now + 1.0
        return None

    def _resumable(self, p: _Peer) -> bool:
        """A DATA held on the path may go on now: its SWITCH mark came (or
        the FALLBACK one), and the receive queue is not known full."""
        return p.in_blocked and bool(p.pin) and not self._queue_blocked \
            and (p.in_switched or p.in_closed)

    def _tick(self, now: float) -> List[Tuple[_Peer, Path]]:
        """The timers that are due; returns the path changes to report."""
        changed: List[Tuple[_Peer, Path]] = []
        client = self._client
        ka = self.keepalive
        with self._cond:
            can_offer = (client.connected and client._my_id is not None
                         and client.protocol_version == P.VERSION_2)
            for p in list(self._peers.values()):
                ph = p.phase
                if ph is _Phase.IDLE:
                    if p.wanted and can_offer and now >= p.retry_at:
                        self._offer(p)
                elif ph in (_Phase.OFFERING, _Phase.AWAIT_ANSWER,
                            _Phase.AWAIT_SYNC):
                    if now >= p.step_deadline:
                        self._attempt_failed(p, "the rendezvous timed out",
                                             ph is _Phase.AWAIT_SYNC)
                elif ph is _Phase.DIAL_WAIT:
                    if now >= p.dial_at:
                        self._start_dialing(p, now)
                elif ph is _Phase.DIALING:
                    if now >= p.punch_deadline:
                        self._attempt_failed(
                            p, "no connection passed its proof in time", True)
                        continue
                    for c in list(p.conns):
                        if c.state == _WAIT and c.sock is None \
                                and now >= c.deadline and c.dial >= 0:
                            self._dial(p, c, now)  # again, with a fresh SYN
                        elif c.sock is not None and now >= c.deadline:
                            if c.dial >= 0 and c.state == _CONNECTING:
                                self._dial(p, c, now)
                            else:  # did not prove itself in time
                                c.close()
                                if c.dial < 0:
                                    p.conns.remove(c)
                elif ph is _Phase.DIRECT:
                    why = None
                    if p.broken:
                        why = "a write failed"
                    elif now - p.last_rx >= 3 * ka:
                        why = "nothing came for three keepalive intervals"
                    elif self._resumable(p):
                        why = self._path_input(p, read=False)
                    if why is None and now - p.last_ping >= ka \
                            and p.phase is _Phase.DIRECT:
                        if not p.pout:  # else bytes are on their way
                            p.pout += frame(encode_link_ping())
                        p.last_ping = now
                        self._flush(p)
                    if why is not None and self._fallback(p, why):
                        changed.append((p, Path.RELAY))
        return changed

    def _on_ready(self, owner: object, fd: int, revents: int) \
            -> List[Tuple[_Peer, Path]]:
        """One ready direct socket.  A socket closed since the poll set was
        made (its number maybe reused) is left alone."""
        changed: List[Tuple[_Peer, Path]] = []
        assert isinstance(owner, tuple)
        p, what = owner
        with self._cond:
            if what is p.listener and p.listener is not None:
                self._accept(p)
                return changed
            if isinstance(what, socket.socket):
                if what is not p.path or p.path is None \
                        or p.path.fileno() != fd:
                    return changed
                if revents & select.POLLOUT:
                    self._flush(p)
                why = None
                if revents & (select.POLLIN | select.POLLERR | select.POLLHUP):
                    why = self._path_input(p, read=True)
                if why is None and p.broken:
                    why = "a write failed"
                if why is not None and self._fallback(p, why):
                    changed.append((p, Path.RELAY))
                return changed
            c = what
            assert isinstance(c, _Conn)
            if c not in p.conns or c.sock is None or c.sock.fileno() != fd:
                return changed
            was_direct = p.phase is _Phase.DIRECT
            if c.state == _CONNECTING:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    c.close()
                    c.state = _WAIT
                    c.deadline = _now() + _jitter(*JITTER)
                    return changed
                self._send_proof(p, c)
            elif revents & select.POLLOUT:
                self._flush_conn(c)
            if c.sock is not None and c.state >= _PROVING and revents & (
                    select.POLLIN | select.POLLERR | select.POLLHUP):
                self._conn_readable(p, c)
            if c.sock is None and c.dial < 0 and c in p.conns:
                p.conns.remove(c)
            made = not was_direct and p.phase is _Phase.DIRECT
            if made:
                why = self._path_input(p, read=False) if p.pin else None
                if why is not None:
                    self._fallback(p, why)
                else:
                    changed.append((p, Path.DIRECT))
        return changed

    def _accept(self, p: _Peer) -> None:
        """The listener is readable: take the waiting connections (those
        beyond the attempt's room, or outside an attempt, close at once)."""
        assert p.listener is not None
        for _ in range(8):
            try:
                s, _ = p.listener.accept()
            except OSError:
                return
            accepted = sum(1 for c in p.conns if c.dial < 0)
            if accepted >= ACCEPTS_MAX or p.phase not in (
                    _Phase.DIALING, _Phase.DIAL_WAIT, _Phase.AWAIT_SYNC,
                    _Phase.AWAIT_ANSWER) \
                    or len(p.peer_nonce) != P.DIRECT_NONCE_SIZE:
                # (Before the ANSWER no proof can be made or checked.)
                s.close()
                continue
            s.setblocking(False)
            _no_delay(s)
            c = _Conn(-1)
            c.sock = s
            p.conns.append(c)
            self._send_proof(p, c)

    def _conn_readable(self, p: _Peer, c: _Conn) -> None:
        """An attempt's connection is readable: the proof, and for the
        target the USE after it."""
        assert c.sock is not None
        try:
            data = c.sock.recv(_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            c.close()
            return
        c.inbuf += data
        buf = c.inbuf
        while len(buf) >= P.FRAME_HEADER_SIZE:
            (length,) = struct.unpack_from(">I", buf)
            if length == 0 or length > LINK_PROOF_SIZE:
                c.close()  # anything else before the choice is foreign
                return
            if len(buf) < P.FRAME_HEADER_SIZE + length:
                return
            payload = bytes(buf[P.FRAME_HEADER_SIZE:
                                P.FRAME_HEADER_SIZE + length])
            del buf[:P.FRAME_HEADER_SIZE + length]
            try:
                link = parse_link(payload)
            except ProtocolError:
                c.close()
                return
            if c.state == _PROVING and link.kind == P.LINK_PROOF:
                if not self._proof_valid(p, link.role, link.attempt,
                                         link.mac):
                    log.warning("a connection for a direct path to %s "
                                "failed its proof: closed (a stranger, or "
                                "a stale attempt)", p.name)
                    self.stranger_closes += 1
                    c.close()
                    return
                if p.role == P.ROLE_OFFERER:
                    c.out += frame(encode_link_use())
                    self._established(p, c)
                    return
                c.state = _PROVEN
                continue
            if c.state == _PROVEN and link.kind == P.LINK_USE:
                self._established(p, c)
                return
            c.close()  # anything else before the choice: broken or foreign
            return

    def _path_input(self, p: _Peer, read: bool) -> Optional[str]:
        """Read the path (unless a DATA waits) and handle its frames;
        returns why the path must end, or None."""
        ended = False
        if read and not p.in_blocked and p.path is not None:
            try:
                data = p.path.recv(_CHUNK)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            if data is not None:
                if not data:
                    ended = True
                else:
                    p.last_rx = _now()
                    assert p.decoder is not None
                    try:
                        p.pin.extend(p.decoder.feed(data))
                    except ProtocolError:
                        return "the peer sent a malformed frame"
        p.in_blocked = False
        before = p.in_delivered
        client = self._client
        sender = p.id.decode("utf-8", "surrogateescape")
        while p.pin:
            try:
                link = parse_link(p.pin[0])
            except ProtocolError:
                return "the peer sent a malformed frame"
            if link.kind == P.LINK_DATA:
                if not p.in_switched:
                    p.in_blocked = True  # until the SWITCH mark comes
                    break
                if p.in_closed:
                    p.pin.popleft()  # the peer fell back: re-sent by relay
                    continue
                if link.seq != p.in_delivered + 1:
                    return "the peer's messages are out of sequence"
                if not client._enqueue_direct(link.data, sender):
                    # No room: neither delivered nor acknowledged, until
                    # recv() makes room and wakes us (the flag is up before
                    # the second look, so that a recv() in between is seen
                    # either by the look or by recv()'s check of the flag).
                    self._queue_blocked = True
                    if not client._enqueue_direct(link.data, sender):
                        p.in_blocked = True
                        break
                    self._queue_blocked = False
                p.in_delivered = link.seq
            elif link.kind == P.LINK_ACK:
                self._acked(p, link.seq)
            p.pin.popleft()
        if ended:
            return "the connection closed"
        if p.in_delivered != before and p.path is not None:
            p.ack_owed = True
            self._flush(p)
        return None

    def _acked(self, p: _Peer, seq: int) -> None:
        """ACK: the peer delivered everything up to seq: forget it."""
        if seq <= p.acked or seq >= p.next_seq:
            return
        p.acked = seq
        while p.retx and p.retx[0][0] <= seq:
            p.unacked -= p.retx.popleft()[2]
        self._cond.notify_all()

"""Direct paths in the Python client (stupidp2p(7), DIRECT PATHS) on
127.0.0.1, against the real server, where two clients reach each other over
their LAN candidates (the relay connection's own address):

* OnLoopbackTest: connect_direct makes a path both ways; path() and
  on_path say DIRECT; send_to's in both directions arrive once and in
  order, and the relay delivers none of them (its ``deliveries`` counter,
  logged on SIGUSR1, does not move), while send() still goes through it;
  a client closed right after its last send_to on a path: the peer still
  gets every message (close waits for the acknowledgement).
* FullQueueTest: a full receive queue holds the path (nothing dropped,
  nothing acknowledged) until recv() makes room.
* CrossingTest: offers that cross (both ask at once) make one path, both
  ways; and so do two that do not quite cross: one declined because its
  target had not asked yet, then the target's own.
* SwitchTest: with ``direct=True`` the first send_to starts the attempt,
  and messages keep flowing while the path is made: every one arrives once,
  in order, across the switch; and with bob's relay stream held back (a
  seam), the path's DATA waits for the SWITCH mark and what preceded it.
* FallbackTest: the path's socket is shut down from the test mid-stream,
  with messages flowing both ways: both fall back to the relay by
  themselves, the path is made again later, and every message arrives
  exactly once and in order across both switches.
* RawPeerTest: the test is the target, made of raw frames: the client's
  offer and listener; a stranger with a wrong proof, and one sending the
  client's own proof back, are closed and the path stays RELAY; the right
  proof is answered with the client's proof and USE, and its SWITCH mark
  follows through the relay: the protocol byte for byte.  Then the test's
  DATA is delivered once its SWITCH mark came, and acknowledged; a DATA
  out of sequence makes the client fall back (its FALLBACK mark, the path
  closed, its next message through the relay).  A target that stops
  reading: the window bounds what waits for it, and send_to fails with
  RequestTimeout when it stays full.
* TimerTest, AckBoundTest: a closed attempt connection leaves the timers;
  ACKs a peer does not read do not pile up (one owed at most).
* DeclineTest: a peer with direct paths off declines: the path stays
  RELAY, nothing more is tried, and messages still arrive.
"""

import re
import signal
import socket
import threading
import time
import unittest
from typing import Dict, List

from p2p_support import Collector, ServerCase, read_payloads, wait_until
from stupidp2p import (DIRECT_ACCEPT, DIRECT_OFF, Path, RequestTimeout,
                       codec)
from stupidp2p.direct import WINDOW_BYTES, _Phase
from stupidp2p import protocol as P
from stupidp2p.codec import (Delivery, Direct, frame, parse_link,
                             parse_message)
from stupidp2p.direct_proof import direct_mac

WAIT = 15.0  # seconds any one condition may take


def counters(server) -> Dict[str, int]:
    """The server's counters, fresh: SIGUSR1 makes it log them."""
    before = server.output().count("counters:")
    server.proc.send_signal(signal.SIGUSR1)
    assert wait_until(lambda: server.output().count("counters:") > before,
                      WAIT), "the server logged no counters"
    line = [l for l in server.output().splitlines() if "counters:" in l][-1]
    return {k: int(v) for k, v in re.findall(r" ([a-z_]+(?:\{[^}]*\})?)=(\d+)",
                                              line)}


def wait_counter(server, name: str, value: int) -> None:
    assert wait_until(lambda: counters(server).get(name, -1) >= value, WAIT,
                      0.02), "counter %s never reached %d" % (name, value)


def recv_exact(s: socket.socket, n: int) -> bytes:
    """``n`` bytes from ``s`` (its timeout bounds each wait)."""
    out = b""
    while len(out) < n:
        data = s.recv(n - len(out))
        if not data:
            break
        out += data
    return out


def receive(client, count: int, sender: str) -> List[str]:
    """The texts of the next ``count`` messages (bounded in time)."""
    got = []
    deadline = time.monotonic() + WAIT * 2
    while len(got) < count and time.monotonic() < deadline:
        m = client.recv(timeout=1.0)
        if m is not None:
            assert m.sender == sender, m
            got.append(m.text())
    return got


class Sender(threading.Thread):
    """Sends "prefix K" for K in 0..count-1 to ``to``, retrying a send the
    client could not make (a reconnect); ``sent`` counts them."""

    def __init__(self, client, to: str, prefix: str, count: int,
                 pause=None) -> None:
        super().__init__(daemon=True)
        self.client, self.to, self.prefix, self.count = (client, to, prefix,
                                                         count)
        self.pause = pause
        self.sent = 0
        self.error = None

    def run(self) -> None:
        try:
            for k in range(self.count):
                self.client.send_to(self.to, "%s %d" % (self.prefix, k),
                                    wait=False)
                self.sent = k + 1
                if self.pause is not None:
                    self.pause(k)
        except Exception as exc:  # reported by the test
            self.error = exc


class DirectCase(ServerCase):
    def pair(self, mode_a=True, mode_b=DIRECT_ACCEPT):
        self.paths_a, self.paths_b = Collector(), Collector()
        a = self.client(direct=mode_a, direct_keepalive=0.3,
                        on_path=self.paths_a)
        b = self.client(direct=mode_b, direct_keepalive=0.3,
                        on_path=self.paths_b)
        self.ida, self.idb = self.uid("alice"), self.uid("bob")
        a.register(self.ida)
        b.register(self.idb)
        return a, b

    def wait_direct(self, a, b):
        self.assertTrue(wait_until(
            lambda: a.path(self.idb) is Path.DIRECT
            and b.path(self.ida) is Path.DIRECT, WAIT),
            "no direct path within %g s" % WAIT)


class OnLoopbackTest(DirectCase):
    def test_path_both_ways_and_relay_idle(self):
        a, b = self.pair(mode_a=DIRECT_OFF, mode_b=DIRECT_ACCEPT)
        self.assertIs(a.path(self.idb), Path.RELAY)
        marks = counters(self.server)["direct_marks"]
        a.connect_direct(self.idb)
        self.wait_direct(a, b)
        self.assertTrue(self.paths_a.wait_for((self.idb, Path.DIRECT)))
        self.assertTrue(self.paths_b.wait_for((self.ida, Path.DIRECT)))
        # Small writes leave at once on both ends, the dialed one and the
        # accepted one (Nagle held each echo ~40 ms behind a delayed ACK).
        for c, peer in ((a, self.idb), (b, self.ida)):
            path = c._direct._peers[peer.encode()].path
            self.assertTrue(path.getsockopt(socket.IPPROTO_TCP,
                                            socket.TCP_NODELAY))
        # Both SWITCH marks went through the relay before the count.
        wait_counter(self.server, "direct_marks", marks + 2)
        before = counters(self.server)["deliveries"]
        n = 300
        for k in range(n):
            a.send_to(self.idb, "a %d" % k, wait=(k % 50 == 0))
            b.send_to(self.ida, "b %d" % k, wait=(k % 50 == 0))
        self.assertEqual(receive(b, n, self.ida), ["a %d" % k
                                                   for k in range(n)])
        self.assertEqual(receive(a, n, self.idb), ["b %d" % k
                                                   for k in range(n)])
        self.assertEqual(counters(self.server)["deliveries"], before)
        # A broadcast keeps the relay.
        b.subscribe(self.ida)
        a.send("to all")
        m = b.recv(timeout=WAIT)
        self.assertEqual((m.sender, m.text()), (self.ida, "to all"))
        self.assertEqual(counters(self.server)["deliveries"], before + 1)
        self.assertEqual(self.paths_a.items, [(self.idb, Path.DIRECT)])


    def test_close_right_after_sending(self):
        """close() waits (within timeout) for what went out on a path to be
        acknowledged: the peer gets every message."""
        a, b = self.pair(mode_a=DIRECT_OFF, mode_b=DIRECT_ACCEPT)
        a.connect_direct(self.idb)
        self.wait_direct(a, b)
        # More than the sockets' buffers hold: part is still in the
        # client's own buffer when close() is called.
        pad = "." * 20000
        for k in range(300):
            a.send_to(self.idb, "last %d %s" % (k, pad), wait=False)
        a.close()
        self.assertEqual(receive(b, 300, self.ida),
                         ["last %d %s" % (k, pad) for k in range(300)])


class FullQueueTest(DirectCase):
    def test_full_queue_holds_the_path(self):
        """A receive queue that is full takes nothing from the path and
        acknowledges nothing: the messages wait (in the sockets, and in the
        sender's window) until recv() makes room; none is dropped."""
        self.ida, self.idb = self.uid("alice"), self.uid("bob")
        a = self.client(direct=DIRECT_OFF, direct_keepalive=10.0)
        b = self.client(direct=DIRECT_ACCEPT, direct_keepalive=10.0,
                        queue_size=50)
        a.register(self.ida)
        b.register(self.idb)
        a.connect_direct(self.idb)
        self.wait_direct(a, b)
        for k in range(300):
            a.send_to(self.idb, "m %d" % k, wait=False)
        peer = b._direct._peers[self.ida.encode()]
        self.assertTrue(wait_until(lambda: peer.in_blocked
                                   and b.pending() == 50, WAIT))
        self.assertTrue(a._direct.unsettled())  # not acknowledged
        self.assertEqual(receive(b, 300, self.ida),
                         ["m %d" % k for k in range(300)])
        self.assertEqual(b.dropped, 0)
        self.assertTrue(wait_until(lambda: not a._direct.unsettled(), WAIT))
        self.assertIs(b.path(self.ida), Path.DIRECT)


class CrossingTest(DirectCase):
    def test_offers_that_cross_make_one_path(self):
        """Both ask at once (direct off on both: only asked-for paths): the
        smaller id's offer wins on both sides, one path, both ways (or, if
        one offer came before the other side asked, the later one: see
        the next test)."""
        a, b = self.pair(mode_a=DIRECT_OFF, mode_b=DIRECT_OFF)
        errors = []

        def ask(c, peer):
            try:
                c.connect_direct(peer)
            except Exception as exc:  # reported below
                errors.append(exc)
        threads = [threading.Thread(target=ask, args=(a, self.idb)),
                   threading.Thread(target=ask, args=(b, self.ida))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        self.assertEqual(errors, [])
        self.wait_direct(a, b)
        pa = a._direct._peers[self.idb.encode()]
        pb = b._direct._peers[self.ida.encode()]
        self.assertEqual(pa.attempt, pb.attempt)
        self.assertEqual({pa.role, pb.role}, {P.ROLE_OFFERER, P.ROLE_TARGET})
        for k in range(100):
            a.send_to(self.idb, "a %d" % k, wait=False)
            b.send_to(self.ida, "b %d" % k, wait=False)
        self.assertEqual(receive(b, 100, self.ida), ["a %d" % k
                                                     for k in range(100)])
        self.assertEqual(receive(a, 100, self.idb), ["b %d" % k
                                                     for k in range(100)])
        self.assertEqual(self.paths_a.items, [(self.idb, Path.DIRECT)])

    def test_declined_before_the_peer_asked(self):
        """The interleaving that made the test above fail under load, in
        order: alice's offer reaches bob before his own connect_direct
        (his direct is off: he declines it), then bob asks.  Alice asked
        for a path herself, so she takes his offer: one path, bob's.
        Before, her wanted flag, cleared by his decline, made her decline
        it, and neither tried again."""
        a, b = self.pair(mode_a=DIRECT_OFF, mode_b=DIRECT_OFF)
        a.connect_direct(self.idb)
        pa = a._direct._peers[self.idb.encode()]
        # Bob's decline has come: alice's attempt is over, not retried.
        self.assertTrue(wait_until(lambda: pa.phase is _Phase.IDLE
                                   and not pa.wanted, WAIT))
        self.assertIs(a.path(self.idb), Path.RELAY)
        b.connect_direct(self.ida)
        self.wait_direct(a, b)
        pb = b._direct._peers[self.ida.encode()]
        self.assertEqual(pa.attempt, pb.attempt)
        self.assertEqual((pa.role, pb.role), (P.ROLE_TARGET, P.ROLE_OFFERER))
        a.send_to(self.idb, "to bob")
        b.send_to(self.ida, "to alice")
        self.assertEqual(receive(b, 1, self.ida), ["to bob"])
        self.assertEqual(receive(a, 1, self.idb), ["to alice"])


class SwitchTest(DirectCase):
    def test_order_across_the_switch(self):
        a, b = self.pair(mode_a=True, mode_b=True)
        n = 3000
        # The first send_to starts the attempt; the sender goes on while
        # the path is made (paced so that the switch falls in the middle).
        sender = Sender(a, self.idb, "m", n,
                        pause=lambda k: k % 100 == 99 and time.sleep(0.01))
        sender.start()
        got = receive(b, n, self.ida)
        sender.join(WAIT)
        self.assertIsNone(sender.error)
        self.assertEqual(got, ["m %d" % k for k in range(n)])
        self.wait_direct(a, b)
        self.assertEqual(self.paths_a.items[0], (self.idb, Path.DIRECT))

    def test_slow_relay_cannot_be_overtaken(self):
        """A seam on bob's relay stream holds alice's relayed messages and
        her SWITCH mark (the rendezvous events pass) until alice has sent
        200 messages on the path: those must still come after the relayed
        ones, held back until the mark."""
        a, b = self.pair(mode_a=True, mode_b=DIRECT_ACCEPT)
        gate = threading.Event()
        held: List[object] = []
        lock = threading.Lock()
        dispatch = b._dispatch_event

        def slow_relay(conn, msg):
            with lock:
                late = isinstance(msg, Delivery) or (
                    isinstance(msg, Direct) and msg.command
                    == P.EVT_DIRECT_MARK)
                if not gate.is_set():
                    if late:
                        held.append((conn, msg))
                        return
                else:
                    while held:
                        dispatch(*held.pop(0))
            dispatch(conn, msg)
        b._dispatch_event = slow_relay
        for k in range(50):
            a.send_to(self.idb, "m %d" % k)  # the first starts the attempt
        self.assertTrue(self.paths_a.wait_for((self.idb, Path.DIRECT), WAIT))
        for k in range(50, 250):
            a.send_to(self.idb, "m %d" % k)
        # Her DATA has reached bob: it waits there (or, were the mark not
        # waited for, it is queued).
        peer = b._direct._peers[self.ida.encode()]
        self.assertTrue(wait_until(lambda: peer.in_blocked or b.pending(),
                                   WAIT))
        self.assertEqual(b.pending(), 0, b.recv_all())  # nothing overtook
        gate.set()
        b.subscribe(self.ida)  # its PRESENCE event lets the held ones go
        self.assertEqual(receive(b, 250, self.ida),
                         ["m %d" % k for k in range(250)])


class FallbackTest(DirectCase):
    def test_cut_mid_stream_both_ways(self):
        a, b = self.pair(mode_a=DIRECT_OFF, mode_b=DIRECT_ACCEPT)
        a.connect_direct(self.idb)
        self.wait_direct(a, b)
        n = 4000

        def pace(k):
            if k % 100 == 99:
                time.sleep(0.01)
        sa = Sender(a, self.idb, "a", n, pace)
        sb = Sender(b, self.ida, "b", n, pace)
        sa.start()
        sb.start()
        self.assertTrue(wait_until(lambda: b.pending() > 100
                                   and a.pending() > 100, WAIT))
        # A seam: both stop taking ACKs in, as if the last ones were still
        # on the wire when the path dies, so that each has delivered more
        # than the other knows (J > X): the re-sent ones it has already
        # must be dropped.
        for c in (a, b):
            c._direct._acked = lambda p, seq: None
        pa, pb = a.pending(), b.pending()
        self.assertTrue(wait_until(lambda: b.pending() > pb + 200
                                   and a.pending() > pa + 200, WAIT))
        # The cut: alice's end of the path, shut down under the library.
        with a._direct._mu:
            a._direct._peers[self.idb.encode()].path.shutdown(
                socket.SHUT_RDWR)
        self.assertTrue(self.paths_a.wait_for((self.idb, Path.RELAY), WAIT))
        self.assertTrue(self.paths_b.wait_for((self.ida, Path.RELAY), WAIT))
        for c in (a, b):
            del c._direct._acked
        got_b = receive(b, n, self.ida)
        got_a = receive(a, n, self.idb)
        for s in (sa, sb):
            s.join(WAIT)
            self.assertIsNone(s.error)
        self.assertEqual(got_b, ["a %d" % k for k in range(n)])
        self.assertEqual(got_a, ["b %d" % k for k in range(n)])
        # Wanted still: the path is made again (after the back-off), and
        # the order holds across that switch too.
        self.assertTrue(wait_until(
            lambda: self.paths_a.items.count((self.idb, Path.DIRECT)) >= 2,
            WAIT))
        self.wait_direct(a, b)
        for k in range(100):
            a.send_to(self.idb, "again %d" % k, wait=False)
        self.assertEqual(receive(b, 100, self.ida),
                         ["again %d" % k for k in range(100)])
        self.assertEqual(b.pending(), 0)


class RawPeerTest(DirectCase):
    """The test plays bob, the target, with raw frames."""

    def raw_bob(self):
        s = socket.create_connection(("127.0.0.1", self.server.port))
        self.addCleanup(s.close)
        s.sendall(frame(codec.encode_hello(2))
                  + frame(codec.encode_id_command(P.CMD_REGISTER,
                                                  self.idb.encode())))
        s.settimeout(WAIT)
        return s, read_payloads(s)

    def next_event(self, stream, command):
        for payload in stream:
            if payload[0] == command:
                return parse_message(payload)
        self.fail("the relay connection ended")

    def closed_by_peer(self, s) -> bool:
        s.settimeout(WAIT)
        try:
            while True:
                data = s.recv(4096)
                if not data:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def rendezvous(self, a):
        """Bob's side of an attempt alice makes, up to her SYNC: returns
        bob's relay socket and its payloads, her offer, her listener's
        address and the proof's mac as a function of role and attempt."""
        s, stream = self.raw_bob()
        self.next_event(stream, P.CMD_REGISTER | P.REPLY_BIT)
        a.connect_direct(self.idb)
        offer = self.next_event(stream, P.EVT_DIRECT_OFFER)
        self.assertEqual(offer.id, self.ida.encode())
        # Her reflexive candidate first (her relay connection as the
        # server sees it), then her LAN ones: 127.0.0.1 among them.
        self.assertEqual(offer.candidates[0].kind, P.CANDIDATE_REFLEXIVE)
        self.assertEqual(offer.candidates[0].port, offer.local_port)
        lan = [c for c in offer.candidates if c.kind == P.CANDIDATE_LAN
               and c.addr == bytes((127, 0, 0, 1))]
        self.assertTrue(lan)
        listen = ("127.0.0.1", lan[0].port)
        nonce_b = bytes(range(0xc0, 0xe0))
        s.sendall(frame(codec.encode_direct_answer(
            P.CMD_DIRECT_ANSWER, self.ida.encode(), offer.attempt,
            P.DIRECT_ACCEPT, nonce_b, 1, [])))
        self.next_event(stream, P.CMD_DIRECT_ANSWER | P.REPLY_BIT)
        sync = self.next_event(stream, P.EVT_DIRECT_SYNC)
        self.assertEqual(sync.attempt, offer.attempt)

        def mac(role, attempt=offer.attempt):
            return direct_mac(offer.secret, role, attempt, self.ida.encode(),
                              self.idb.encode(), offer.nonce, nonce_b)
        return s, stream, offer, listen, mac

    def prove(self, listen, offer, mac):
        """The right proof on a new connection to her listener: her proof
        and USE come back.  Returns the connection."""
        st = socket.create_connection(listen, timeout=WAIT)
        self.addCleanup(st.close)
        st.sendall(frame(codec.encode_link_proof(P.ROLE_TARGET,
                                                 offer.attempt,
                                                 mac(P.ROLE_TARGET))))
        want = (frame(codec.encode_link_proof(P.ROLE_OFFERER, offer.attempt,
                                              mac(P.ROLE_OFFERER)))
                + frame(codec.encode_link_use()))
        self.assertEqual(recv_exact(st, len(want)), want)
        return st

    def test_strangers_closed_then_the_protocol(self):
        self.ida, self.idb = self.uid("alice"), self.uid("bob")
        paths = Collector()
        a = self.client(direct=DIRECT_OFF, on_path=paths)
        a.register(self.ida)
        s, stream, offer, listen, mac = self.rendezvous(a)
        closes = a._direct.stranger_closes
        # A stranger: a proof of another attempt.
        with socket.create_connection(listen, timeout=WAIT) as st:
            st.sendall(frame(codec.encode_link_proof(
                P.ROLE_TARGET, offer.attempt + 1,
                mac(P.ROLE_TARGET, offer.attempt + 1))))
            self.assertTrue(self.closed_by_peer(st))
        # Her own proof sent back to her: its role is not the target's.
        with socket.create_connection(listen, timeout=WAIT) as st:
            st.settimeout(WAIT)
            head = recv_exact(st, 4 + codec.LINK_PROOF_SIZE)
            proof = parse_link(head[4:])
            self.assertEqual(proof.mac, mac(P.ROLE_OFFERER))
            st.sendall(head)
            self.assertTrue(self.closed_by_peer(st))
        self.assertEqual(a._direct.stranger_closes, closes + 2)
        self.assertIs(a.path(self.idb), Path.RELAY)
        # The right proof: her proof and USE, then her SWITCH mark through
        # the relay.
        with self.prove(listen, offer, mac) as st:
            mark = self.next_event(stream, P.EVT_DIRECT_MARK)
            self.assertEqual((mark.id, mark.attempt, mark.mark, mark.seq),
                             (self.ida.encode(), offer.attempt,
                              P.MARK_SWITCH, 1))
            self.assertTrue(paths.wait_for((self.idb, Path.DIRECT)))
            # Her send_to's are DATA now, numbered from 1; our ACK frees
            # them.
            a.send_to(self.idb, "hi")
            data = codec.encode_link_data_head(1) + b"hi"
            self.assertEqual(recv_exact(st, 4 + len(data)),
                             frame(data))
            st.sendall(frame(codec.encode_link_ack(1)))
            self.assertTrue(wait_until(lambda: not a._direct.unsettled(),
                                       WAIT))
            # Our side: DATA waits for our SWITCH mark through the relay.
            st.sendall(frame(codec.encode_link_data_head(1) + b"yo"))
            s.sendall(frame(codec.encode_direct_mark(
                P.CMD_DIRECT_MARK, self.ida.encode(), offer.attempt,
                P.MARK_SWITCH, 1)))
            self.next_event(stream, P.CMD_DIRECT_MARK | P.REPLY_BIT)
            m = a.recv(timeout=WAIT)
            self.assertEqual((m.sender, m.data), (self.idb, b"yo"))
            link = read_payloads(st)
            self.assertEqual(next(p for p in link if p[0] != P.LINK_PING),
                             codec.encode_link_ack(1))
            # A DATA out of sequence: she gives the path up, says so
            # through the relay (her "hi" was acknowledged: 1), and closes
            # it; her next message takes the relay.
            st.sendall(frame(codec.encode_link_data_head(3) + b"?"))
            mark = self.next_event(stream, P.EVT_DIRECT_MARK)
            self.assertEqual((mark.attempt, mark.mark, mark.seq),
                             (offer.attempt, P.MARK_FALLBACK, 1))
            self.assertTrue(paths.wait_for((self.idb, Path.RELAY)))
            self.assertEqual([p for p in link if p[0] != P.LINK_PING], [])
            self.assertIsNone(a.recv(timeout=0))  # nor "?" nor "yo" again
            a.send_to(self.idb, "after")
            deliver = self.next_event(stream, P.EVT_DELIVER)
            self.assertEqual(deliver, Delivery(self.ida.encode(), b"after"))


    def test_peer_that_stops_reading(self):
        """A target that takes the path and then reads nothing: what waits
        for it is bounded by the window (4 MiB unacknowledged), and a
        send_to that finds the window full fails after ``timeout``."""
        self.ida, self.idb = self.uid("alice"), self.uid("bob")
        a = self.client(direct=DIRECT_OFF, timeout=1.0)
        a.register(self.ida)
        s, stream, offer, listen, mac = self.rendezvous(a)
        st = self.prove(listen, offer, mac)
        self.next_event(stream, P.EVT_DIRECT_MARK)
        self.assertIs(a.path(self.idb), Path.DIRECT)
        body = b"x" * 60000
        with self.assertRaises(RequestTimeout):
            for _ in range(200):  # 12 MB: more than window and buffers
                a.send_to(self.idb, body)
        peer = a._direct._peers[self.idb.encode()]
        with a._direct._mu:
            self.assertGreater(peer.unacked, WINDOW_BYTES)
            self.assertLessEqual(peer.unacked, WINDOW_BYTES + 2 * len(body))
            self.assertLessEqual(len(peer.pout), peer.unacked)
        self.assertIs(a.path(self.idb), Path.DIRECT)
        st.close()


class TimerTest(unittest.TestCase):
    def test_closed_connection_has_no_timer(self):
        """A connection of an attempt closed before its deadline (a failed
        proof) leaves the timers: the direct thread's poll waits for the
        attempt's window, not for a deadline already past (it spun)."""
        from stupidp2p.direct import (_PROVING, DirectPaths, _Conn, _Peer,
                                      _Phase)
        paths = DirectPaths(None, DIRECT_OFF, 25.0, None)
        p = _Peer(b"bob")
        now = time.monotonic()
        p.phase = _Phase.DIALING
        p.punch_deadline = now + 6
        p.dials = [(("127.0.0.1", 9), False)]
        c = _Conn(0)
        c.sock = socket.socket()
        c.state, c.deadline = _PROVING, now - 1  # and past its time
        p.conns.append(c)
        c.close()
        self.assertEqual(paths._next_timer(p, now), p.punch_deadline)


class AckBoundTest(unittest.TestCase):
    def test_peer_that_does_not_read_our_acks(self):
        """A peer that sends DATA and reads nothing: the ACKs that cannot
        be written do not pile up (ACKs are cumulative: one is owed, and
        at most one waits)."""
        from stupidp2p.direct import DirectPaths, _Peer, _Phase

        class Queue:  # the client's side: every message delivered
            max_frame_limit = 1 << 16
            delivered = 0

            def _enqueue_direct(self, data, sender):
                Queue.delivered += 1
                return True
        paths = DirectPaths(Queue(), DIRECT_OFF, 25.0, None)
        mine, theirs = socket.socketpair()
        self.addCleanup(mine.close)
        self.addCleanup(theirs.close)
        mine.setblocking(False)
        try:
            while True:  # their side reads nothing: fill the pipe
                mine.send(b"\0" * 65536)
        except BlockingIOError:
            pass
        p = _Peer(b"bob")
        p.phase, p.path, p.in_switched = _Phase.DIRECT, mine, True
        for k in range(1, 1001):
            p.pin.append(codec.encode_link_data_head(k) + b"m")
            self.assertIsNone(paths._path_input(p, read=False))
        self.assertEqual(Queue.delivered, 1000)
        self.assertLessEqual(len(p.pout),
                             len(frame(codec.encode_link_ack(1000))))
        self.assertTrue(p.ack_owed)


class DeclineTest(DirectCase):
    def test_declined_stays_relayed(self):
        a, b = self.pair(mode_a=True, mode_b=DIRECT_OFF)
        declines = counters(self.server)['direct_answers{answer="decline"}']
        a.connect_direct(self.idb)  # the offer went; bob declines it
        wait_counter(self.server, 'direct_answers{answer="decline"}',
                     declines + 1)
        offers = counters(self.server)['direct_offers{result="forwarded"}']
        for k in range(200):
            a.send_to(self.idb, "m %d" % k, wait=(k % 50 == 0))
            b.send_to(self.ida, "n %d" % k, wait=(k % 50 == 0))
        self.assertEqual(receive(b, 200, self.ida), ["m %d" % k
                                                     for k in range(200)])
        self.assertEqual(receive(a, 200, self.idb), ["n %d" % k
                                                     for k in range(200)])
        self.assertIs(a.path(self.idb), Path.RELAY)
        self.assertIs(b.path(self.ida), Path.RELAY)
        self.assertEqual(self.paths_a.items, [])
        # Declined: no new offer, even with send_to's in AUTO mode.
        self.assertEqual(
            counters(self.server)['direct_offers{result="forwarded"}'],
            offers)


if __name__ == "__main__":
    unittest.main()

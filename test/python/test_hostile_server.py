"""Servers that lie, stall or trickle, played by ScriptedServer.

* A HELLO grant is checked (nonsense is a protocol error) and its max_frame
  clamped to the client's max_frame_limit, which also bounds every frame the
  client accepts.
* A server that stops reading, or reads a byte every 100 ms, cannot hold a
  send (or the send lock) beyond the client's timeout.
* Liveness comes from replies: a server that trickles a byte every 100 ms
  and never completes a reply is declared dead, even while a send is stuck.
* BYE text is escaped before it is logged.
* A v2 server that closes every connection without a word right after the
  handshake is given up on after max_quick_closes.

Every wait is on a condition with a deadline; the scripts pace themselves
(a byte every 100 ms) but the tests never sleep to synchronise.
"""

import logging
import threading
import unittest

from p2p_support import (GRANT, ClientCase, ScriptedServer, answer_requests,
                         wait_until)
from stupidp2p import (Client, ClosedByServer, ConnectError,
                       ConnectionLostError, ConnectionState, MessageTooLarge,
                       ProtocolError, RequestTimeout, codec, protocol)

CLOSED = ConnectionState.CLOSED
HANDSHAKE = 2  # HELLO and HEARTBEAT, for a client that holds no id
CHUNK = 60000  # data bytes per send, under the default max_frame
MAX_SENDS = 2000  # 120 MB: far beyond any socket buffers on loopback


def grant(max_frame):
    return (protocol.VERSION_2, max_frame, GRANT[2])


class SendUntilStuck(threading.Thread):
    """Sends CHUNK-byte messages without waiting for replies until a send
    raises (or MAX_SENDS went through); ``error`` is what it raised."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client = client
        self.error = None
        self.sent = 0

    def run(self):
        try:
            for _ in range(MAX_SENDS):
                self.client.send(b"x" * CHUNK, wait=False)
                self.sent += 1
        except Exception as exc:  # examined by the test
            self.error = exc


def answer_until_eof(sock, grant=GRANT):
    """Answer every request, as :func:`answer_requests` does, until the
    client leaves."""
    while True:
        answer_requests(sock, 1, grant)


class MaxFrameTest(ClientCase):
    def test_a_nonsense_grant_is_a_protocol_error(self):
        # As the C client judges it: a max_frame leaving no room for any
        # request with data, a version that was not asked for, a success
        # without the grant.
        lies = [(b"max_frame %d" % m, codec.encode_hello_reply(2, m, 300))
                for m in (0, 1)]
        lies += [(b"version %d" % v, codec.encode_hello_reply(v, 65536, 300))
                 for v in (0, 3)]
        lies.append((b"without its grant", b"\x88\x01\x02"))
        for what, reply in lies:
            with self.subTest(lie=what), ScriptedServer(
                    lambda s, n, r=reply: self.answer_hello_with(s, r)) \
                    as srv:
                with self.assertRaises(ConnectError) as caught:
                    self.client(srv.port)
                self.assertIn(what.decode(), str(caught.exception))
                self.assertIsInstance(caught.exception.__cause__,
                                      ProtocolError)

    @staticmethod
    def answer_hello_with(sock, reply):
        """Answer the client's HELLO with ``reply`` and its HEARTBEAT with
        status 1, then wait for the client to leave."""
        answered = 0
        decoder = codec.FrameDecoder(1 << 20)
        while answered < HANDSHAKE:
            data = sock.recv(65536)
            if not data:
                return
            for p in decoder.feed(data):
                req = codec.parse_request(p)
                sock.sendall(codec.frame(
                    reply if req.command == protocol.CMD_HELLO else
                    codec.encode_reply(req.command, protocol.STATUS_OK)))
                answered += 1
        while sock.recv(65536):
            pass

    def test_extremes_that_make_sense_are_taken(self):
        for max_frame, want in ((2, 2), (0xFFFFFEFF, 16 * 1024 * 1024),
                                (0xFFFFFFFF, 16 * 1024 * 1024)):
            with self.subTest(max_frame=max_frame), ScriptedServer(
                    lambda s, n, m=max_frame: answer_until_eof(
                        s, grant(m))) as srv:
                c = self.client(srv.port)
                self.assertEqual(c.max_frame, want)
                c.ping()

    def test_a_huge_max_frame_is_clamped_and_a_huge_frame_refused(self):
        # The server says any frame up to 4 GiB goes, then starts a 300 MiB
        # frame: the client drops the connection at the header instead of
        # buffering it.
        got_header = threading.Event()

        def lie(sock, n):
            answer_requests(sock, HANDSHAKE + 1, grant(0xFFFFFEFF))
            sock.sendall((300 << 20).to_bytes(4, "big") + b"\x03"
                         + b"y" * 4096)
            got_header.set()
            while sock.recv(65536):
                pass  # until the client closes

        with ScriptedServer(lie) as srv:
            c = self.client(srv.port, reconnect=False, heartbeat=60)
            self.assertEqual(c.max_frame, 16 * 1024 * 1024)
            c.ping()
            self.assertTrue(c.wait_for_state(CLOSED, 10))
            self.assertTrue(got_header.is_set())
            self.assertIsInstance(c.last_error, ProtocolError)
            self.assertIn("exceeds the limit", str(c.last_error))

    def test_the_limit_is_an_option_and_bounds_sends(self):
        limit = 4096

        def serve(sock, n):
            answer_requests(sock, HANDSHAKE + 1, grant(1 << 20))  # + SEND
            sock.sendall(codec.frame(b"\x03" + b"z" * (limit + 1000)))
            while sock.recv(65536):
                pass

        with ScriptedServer(serve) as srv:
            c = self.client(srv.port, max_frame_limit=limit, reconnect=False,
                            heartbeat=60)
            self.assertEqual(c.max_frame, limit)
            with self.assertRaises(MessageTooLarge):
                c.send(b"x" * limit)
            c.send(b"x" * (limit - 1))
            # A frame above limit + 256 from the server: protocol error.
            self.assertTrue(c.wait_for_state(CLOSED, 10))
            self.assertIsInstance(c.last_error, ProtocolError)
        for bad in (255, (1 << 30) + 1):
            with self.assertRaises(ValueError):
                Client("127.0.0.1", 1, max_frame_limit=bad, connect=False)

    def test_v1_server_frames_are_bounded_by_the_limit_too(self):
        def v1(sock, n):
            # HELLO ignored, HEARTBEATs answered; after the second one, a
            # frame above the client's limit.
            decoder = codec.FrameDecoder(1 << 20)
            heartbeats = 0
            while heartbeats < 2:
                for p in decoder.feed(sock.recv(65536)):
                    if p[0] == protocol.CMD_HEARTBEAT:
                        heartbeats += 1
                        sock.sendall(codec.frame(codec.encode_reply(
                            protocol.CMD_HEARTBEAT, protocol.STATUS_OK)))
            sock.sendall((2 << 20).to_bytes(4, "big") + b"\x03")
            while sock.recv(65536):
                pass

        with ScriptedServer(v1) as srv:
            c = self.client(srv.port, max_frame_limit=1 << 20,
                            reconnect=False, heartbeat=60)
            self.assertEqual(c.protocol_version, 1)
            c.ping()
            self.assertTrue(c.wait_for_state(CLOSED, 10))
            self.assertIsInstance(c.last_error, ProtocolError)


class StuckServerTest(unittest.TestCase):
    """Servers that answer the handshake and then stop reading, read a byte
    every 100 ms, or send a byte every 100 ms and never finish a frame."""

    def start(self, after_handshake, **options):
        def script(sock, n):
            answer_requests(sock, HANDSHAKE)
            after_handshake(sock, srv)

        srv = ScriptedServer(script)
        self.addCleanup(srv.close)
        c = Client("127.0.0.1", srv.port, reconnect=False, **options)
        self.addCleanup(c.close)
        return c

    @staticmethod
    def stop_reading(sock, srv):
        srv.closed.wait()

    @staticmethod
    def read_a_byte_every_100ms(sock, srv):
        while not srv.closed.wait(0.1) and sock.recv(1):
            pass

    @staticmethod
    def send_a_byte_every_100ms(sock, srv):
        sock.sendall((60000).to_bytes(4, "big"))  # a frame that never ends
        while not srv.closed.wait(0.1):
            sock.sendall(b"\x03")

    def run_sender(self, c):
        sender = SendUntilStuck(c)
        sender.start()
        sender.join(60)
        self.assertFalse(sender.is_alive(),
                         "send() still blocked after 60 s (timeout %g s)"
                         % c.timeout)
        return sender

    def test_send_to_a_server_that_stops_reading_is_bounded(self):
        # A heartbeat far off: only the send's own bound can act.
        c = self.start(self.stop_reading, timeout=1.0, heartbeat=60)
        sender = self.run_sender(c)
        self.assertIsInstance(sender.error, RequestTimeout)
        self.assertGreater(sender.sent, 0)
        self.assertTrue(c.wait_for_state(CLOSED, 10))
        self.assertIn("took no more data", str(c.last_error))

    def test_send_to_a_server_that_reads_a_byte_every_100ms_is_bounded(self):
        c = self.start(self.read_a_byte_every_100ms, timeout=1.0,
                       heartbeat=60)
        sender = self.run_sender(c)
        self.assertIsInstance(sender.error, RequestTimeout)
        self.assertTrue(c.wait_for_state(CLOSED, 10))

    def test_heartbeat_finds_a_stuck_server_while_a_send_is_stuck(self):
        # The send may wait 30 s; the heartbeat must not wait behind it.
        c = self.start(self.stop_reading, timeout=30.0, heartbeat=0.5,
                       max_missed=3)
        sender = self.run_sender(c)
        self.assertIsInstance(sender.error, ConnectionLostError)
        self.assertTrue(c.wait_for_state(CLOSED, 10))
        self.assertIn("no reply from the server", str(c.last_error))

    def test_a_server_trickling_bytes_is_declared_dead(self):
        c = self.start(self.send_a_byte_every_100ms, timeout=1.0,
                       heartbeat=0.2, max_missed=3)
        self.assertTrue(c.wait_for_state(CLOSED, 20))
        self.assertIn("no reply from the server", str(c.last_error))


class ByeTextTest(unittest.TestCase):
    def test_bye_text_is_escaped_in_the_log(self):
        evil = b"bye\x1b[2J\x1b[31m\nWARNING forged line\x07\\x00\xff"

        def bye(sock, n):
            answer_requests(sock, HANDSHAKE)
            sock.sendall(codec.frame(codec.encode_bye(protocol.BYE_SHUTDOWN,
                                                      evil)))

        with ScriptedServer(bye) as srv, \
                self.assertLogs("stupidp2p", logging.INFO) as logs:
            c = Client("127.0.0.1", srv.port, reconnect=False)
            self.addCleanup(c.close)
            self.assertTrue(c.wait_for_state(CLOSED, 10))
        said = [r.getMessage() for r in logs.records
                if r.getMessage().startswith("server says bye")]
        self.assertEqual(len(said), 1)
        self.assertEqual(said[0], "server says bye: server shutting down "
                         "(bye\\x1b[2J\\x1b[31m\\x0aWARNING forged line"
                         "\\x07\\\\x00\\xff)")
        # The application still gets the text as sent.
        self.assertEqual(c.last_bye.text,
                         evil.decode("utf-8", "replace"))


class QuickCloseTest(unittest.TestCase):
    def test_v2_server_closing_every_connection_at_once_is_given_up(self):
        # What a v1 server does to the loser of a takeover, in a v2
        # session: the handshake succeeds, then EOF without a BYE.
        with ScriptedServer(lambda s, n: answer_requests(s, HANDSHAKE)) \
                as srv:
            states = []
            c = Client("127.0.0.1", srv.port, backoff_base=0.01,
                       backoff_max=0.05, stable_time=10, max_quick_closes=3,
                       heartbeat=60, on_state=states.append)
            self.addCleanup(c.close)
            self.assertTrue(c.wait_for_state(CLOSED, 20))
            self.assertIsInstance(c.close_reason, ClosedByServer)
            self.assertEqual(c.close_reason.closes, 3)
            self.assertIsNone(c.close_reason.bye)
            self.assertEqual(srv.connections, 3)
            self.assertEqual(c.reconnects, 2)
            self.assertEqual(states[-1], CLOSED)
            with self.assertRaises(ClosedByServer):
                c.ping()
            with self.assertRaises(ClosedByServer):
                c.recv(1)

    def test_a_stable_connection_restarts_the_count(self):
        # Closes that come later than stable_time are not counted.
        with ScriptedServer(lambda s, n: answer_requests(s, HANDSHAKE)) \
                as srv:
            c = Client("127.0.0.1", srv.port, backoff_base=0.01,
                       backoff_max=0.05, stable_time=0, max_quick_closes=1,
                       heartbeat=60)
            self.addCleanup(c.close)
            self.assertTrue(wait_until(lambda: c.reconnects >= 5, 20))
            self.assertFalse(c.closed)
            self.assertIsNone(c.close_reason)


if __name__ == "__main__":
    unittest.main()

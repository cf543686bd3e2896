"""Every method of the Pythonic face, against the real server (protocol v2).

A useful ordering fact: the server handles one connection's requests in
order and delivers to one subscriber in order, so when a marker sent after
some data arrives first, that data was not delivered.
"""

import threading
import time
import unittest

from p2p_support import Collector, ServerCase, free_port
from stupidp2p import (BadArgument, Client, ClientClosedError, ConnectError,
                       ConnectionState, Message, MessageTooLarge,
                       NotConnectedError, NotRegistered, RequestFailed,
                       TargetOffline, Unsupported, protocol)


class ClientApiTest(ServerCase):
    def pair(self, **options):
        """A publisher registered as 'pub' and a subscriber of it."""
        pub, sub = self.client(**options), self.client(**options)
        pub.register(self.uid("pub"))
        sub.register(self.uid("sub"))
        sub.subscribe(self.uid("pub"))
        return pub, sub

    def test_connect_negotiates_v2(self):
        c = self.client()
        self.assertEqual(c.state, ConnectionState.CONNECTED)
        self.assertTrue(c.connected)
        self.assertEqual(c.protocol_version, 2)
        self.assertEqual(c.max_frame, 65536)
        self.assertEqual(c.server_idle_timeout, 300)
        self.assertIsNone(c.device_id)
        self.assertEqual(c.subscriptions, [])
        self.assertIn("connected v2", repr(c))

    def test_connect_later_and_refused(self):
        c = Client("127.0.0.1", self.server.port, connect=False)
        self.addCleanup(c.close)
        self.assertEqual(c.state, ConnectionState.CONNECTING)
        with self.assertRaises(NotConnectedError):
            c.ping()
        c.connect()
        c.connect()  # idempotent
        c.ping()
        with self.assertRaises(ConnectError):
            Client("127.0.0.1", free_port(), timeout=2)

    def test_register(self):
        c, other = self.client(), self.client()
        c.register(self.uid("one"))
        self.assertEqual(c.device_id, self.uid("one"))
        self.assertTrue(other.is_alive(self.uid("one")))
        # A second id releases the first.
        c.register(self.uid("two"))
        self.assertEqual(c.device_id, self.uid("two"))
        self.assertFalse(other.is_alive(self.uid("one")))
        self.assertTrue(other.is_alive(self.uid("two")))

    def test_register_rejects_bad_ids(self):
        c = self.client()
        for bad in ("", b"", "x" * 256):
            with self.assertRaises(BadArgument):
                c.register(bad)
        with self.assertRaises(TypeError):
            c.register(42)
        c.register("x" * 255)

    def test_binary_ids_round_trip(self):
        raw = b"\x00\xff id \xc3"
        pub, sub = self.client(), self.client()
        pub.register(raw)
        sub.register(self.uid("sub"))
        sub.subscribe(raw)
        pub.send(b"bin")
        msg = sub.recv(5)
        self.assertEqual(msg.data, b"bin")
        # The sender id decodes with surrogateescape and encodes back exactly.
        self.assertTrue(sub.is_alive(msg.sender))
        sub.send_to(msg.sender, b"back")
        self.assertEqual(pub.recv(5), Message(b"back", self.uid("sub")))

    def test_unregister(self):
        pub, sub = self.pair()
        sub.unregister()
        self.assertIsNone(sub.device_id)
        self.assertEqual(sub.subscriptions, [])  # the server cancels them too
        self.assertFalse(pub.is_alive(self.uid("sub")))
        pub.send(b"lost")
        sub.register(self.uid("sub"))
        pub.send_to(self.uid("sub"), b"marker")
        self.assertEqual(sub.recv(5).data, b"marker")
        sub.unregister()  # also fine when not registered
        sub.unregister()

    def test_subscribe_and_unsubscribe(self):
        pub, sub = self.pair()
        self.assertEqual(sub.subscriptions, [self.uid("pub")])
        pub.send(b"one")
        self.assertEqual(sub.recv(5), Message(b"one", self.uid("pub")))
        sub.subscribe(self.uid("pub"))  # twice delivers once
        pub.send(b"two")
        pub.send_to(self.uid("sub"), b"marker")
        self.assertEqual([sub.recv(5).data for _ in range(2)],
                         [b"two", b"marker"])
        sub.unsubscribe(self.uid("pub"))
        self.assertEqual(sub.subscriptions, [])
        pub.send(b"three")
        pub.send_to(self.uid("sub"), b"marker2")
        self.assertEqual(sub.recv(5).data, b"marker2")
        sub.unsubscribe(self.uid("pub"))  # idempotent
        sub.unsubscribe(self.uid("never"))

    def test_subscribe_errors_and_offline(self):
        c = self.client()
        c.register(self.uid("me"))
        with self.assertRaises(BadArgument) as cm:
            c.subscribe(self.uid("me"))
        self.assertEqual(cm.exception.status, protocol.STATUS_BAD_ARGUMENT)
        self.assertEqual(cm.exception.command, protocol.CMD_SUBSCRIBE)
        # v2: an offline id may be subscribed to.
        c.subscribe(self.uid("later"))
        self.assertIn(self.uid("later"), c.subscriptions)
        with self.assertRaises(BadArgument):
            c.subscribe("")

    def test_is_alive(self):
        c, other = self.client(), self.client()
        self.assertFalse(c.is_alive(self.uid("x")))
        other.register(self.uid("x"))
        self.assertTrue(c.is_alive(self.uid("x")))
        self.assertIs(c.is_alive(self.uid("x")), True)
        other.close()
        self.assertFalse(c.is_alive(self.uid("x")))

    def test_ping(self):
        self.client().ping()

    def test_send_str_and_bytes(self):
        pub, sub = self.pair()
        pub.send("grüß")
        pub.send(bytearray(b"ba"))
        pub.send(memoryview(b"mv"))
        got = [sub.recv(5) for _ in range(3)]
        self.assertEqual([m.data for m in got],
                         ["grüß".encode(), b"ba", b"mv"])
        self.assertEqual(got[0].text(), "grüß")
        self.assertEqual(got[0].sender, self.uid("pub"))
        with self.assertRaises(TypeError):
            pub.send(123)

    def test_send_needs_an_id(self):
        c = self.client()
        with self.assertRaises(NotRegistered) as cm:
            c.send(b"x")
        self.assertEqual(cm.exception.status, protocol.STATUS_NOT_REGISTERED)
        self.assertIsInstance(cm.exception, RequestFailed)

    def test_send_without_waiting(self):
        pub, sub = self.pair()
        for i in range(100):
            pub.send(b"%d" % i, wait=False)
        self.assertEqual([sub.recv(5).data for _ in range(100)],
                         [b"%d" % i for i in range(100)])
        lone = self.client()
        lone.send(b"x", wait=False)  # fails: no id; counted, not raised
        lone.ping()  # replies come in order: the send's reply is in by now
        self.assertEqual(lone.send_failures, 1)

    def test_send_to(self):
        a, b = self.client(), self.client()
        with self.assertRaises(NotRegistered):
            a.send_to(self.uid("b"), b"x")
        a.register(self.uid("a"))
        with self.assertRaises(TargetOffline) as cm:
            a.send_to(self.uid("b"), b"x")
        self.assertEqual(cm.exception.status, protocol.STATUS_OFFLINE)
        b.register(self.uid("b"))
        a.send_to(self.uid("b"), "direct")
        self.assertEqual(b.recv(5), Message(b"direct", self.uid("a")))
        with self.assertRaises(BadArgument):
            a.send_to(self.uid("a"), b"self")
        a.send_to(self.uid("b"), b"nowait", wait=False)
        self.assertEqual(b.recv(5).data, b"nowait")

    def test_message_too_large(self):
        pub, sub = self.pair()
        with self.assertRaises(MessageTooLarge):
            pub.send(b"x" * 65536)
        with self.assertRaises(MessageTooLarge):
            pub.send_to(self.uid("sub"), b"x" * (65536 - 2 - 5))
        with self.assertRaises(ValueError):  # MessageTooLarge is one too
            pub.send(b"x" * 70000)
        pub.send(b"still connected")
        self.assertEqual(sub.recv(5).data, b"still connected")

    def test_recv_timeout(self):
        c = self.client()
        self.assertIsNone(c.recv(0))
        t0 = time.monotonic()
        self.assertIsNone(c.recv(0.2))
        self.assertGreaterEqual(time.monotonic() - t0, 0.19)

    def test_recv_all_and_pending(self):
        pub, sub = self.pair()
        for i in range(3):
            pub.send(b"%d" % i)
        pub.send_to(self.uid("sub"), b"end")
        # The last message in means all three are queued.
        self.assertTrue(self._wait_pending(sub, 4))
        self.assertEqual([m.data for m in sub.recv_all()],
                         [b"0", b"1", b"2", b"end"])
        self.assertEqual(sub.pending(), 0)
        self.assertEqual(sub.recv_all(), [])

    def _wait_pending(self, c, n):
        from p2p_support import wait_until
        return wait_until(lambda: c.pending() >= n, 5)

    def test_iteration_until_close(self):
        pub, sub = self.pair()
        for i in range(5):
            pub.send(b"%d" % i, wait=False)
        got = []
        for msg in sub:
            got.append(msg.data)
            if len(got) == 5:
                sub.close()
        self.assertEqual(got, [b"%d" % i for i in range(5)])

    def test_recv_blocked_is_woken_by_close(self):
        c = self.client()
        errors = []

        def reader():
            try:
                c.recv()
            except ClientClosedError as exc:
                errors.append(exc)

        t = threading.Thread(target=reader)
        t.start()
        c.ping()
        c.close()
        t.join(5)
        self.assertFalse(t.is_alive())
        self.assertEqual(len(errors), 1)

    def test_queue_overflow_is_counted(self):
        pub = self.client()
        sub = self.client(queue_size=5)
        pub.register(self.uid("pub"))
        sub.subscribe(self.uid("pub"))
        for i in range(20):
            pub.send(b"%d" % i, wait=False)
        pub.ping()
        from p2p_support import wait_until
        self.assertTrue(wait_until(
            lambda: sub.pending() + sub.dropped == 20, 5))
        self.assertEqual(sub.dropped, 15)
        # The oldest are kept; the newest were dropped.
        self.assertEqual([m.data for m in sub.recv_all()],
                         [b"0", b"1", b"2", b"3", b"4"])

    def test_close_and_context_manager(self):
        states = Collector()
        with Client("127.0.0.1", self.server.port, on_state=states) as c:
            c.register(self.uid("cm"))
        self.assertTrue(c.closed)
        self.assertEqual(c.state, ConnectionState.CLOSED)
        self.assertEqual(states.items, [ConnectionState.CONNECTED,
                                        ConnectionState.CLOSED])
        c.close()  # idempotent
        for call in (c.ping, lambda: c.send(b"x"), lambda: c.recv(0),
                     lambda: c.register("x"), c.connect):
            with self.assertRaises(ClientClosedError):
                call()
        self.assertFalse(self.client().is_alive(self.uid("cm")))

    def test_callbacks_cannot_wait_for_replies(self):
        errors = Collector()
        c = None

        def on_presence(device, online):
            try:
                c.is_alive(device)
            except RuntimeError as exc:
                errors(exc)
            c.send(b"no wait is fine", wait=False)

        c = self.client(on_presence=on_presence)
        c.register(self.uid("me"))
        c.subscribe(self.uid("other"))
        from p2p_support import wait_until
        self.assertTrue(wait_until(lambda: errors.items, 5))
        self.assertIsInstance(errors.items[0], RuntimeError)
        c.ping()

    def test_version_1_session_on_the_real_server(self):
        pub, sub = self.pair(version=1)
        self.assertEqual(pub.protocol_version, 1)
        self.assertIsNone(pub.server_idle_timeout)
        pub.send(b"v1")
        self.assertEqual(sub.recv(5), Message(b"v1", None))
        with self.assertRaises(Unsupported):
            pub.send_to(self.uid("sub"), b"x")
        # v1 failures carry no reason.
        with self.assertRaises(RequestFailed) as cm:
            sub.subscribe(self.uid("offline"))
        self.assertEqual(cm.exception.status, 0)
        self.assertEqual(type(cm.exception), RequestFailed)


if __name__ == "__main__":
    unittest.main()

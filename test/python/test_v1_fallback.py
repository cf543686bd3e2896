"""Against an original (v1-only) server, which ignores HELLO: the client
sees the heartbeat's reply first and stays in protocol v1."""

import unittest

from p2p_support import FakeV1Server, wait_until
from stupidp2p import (Client, Message, RequestFailed, Unsupported,
                       protocol, stupidP2PClient)


class V1FallbackTest(unittest.TestCase):
    def setUp(self):
        self.srv = FakeV1Server()
        self.addCleanup(self.srv.close)

    def client(self, **options):
        c = Client("127.0.0.1", self.srv.port, timeout=3, **options)
        self.addCleanup(c.close)
        return c

    def test_negotiation_falls_back(self):
        c = self.client()
        self.assertEqual(c.protocol_version, 1)
        self.assertEqual(c.max_frame, protocol.DEFAULT_MAX_FRAME)
        self.assertIsNone(c.server_idle_timeout)
        # What went on the wire: HELLO, then HEARTBEAT.
        self.assertEqual(self.srv.commands[:2],
                         [protocol.CMD_HELLO, protocol.CMD_HEARTBEAT])

    def test_version_1_sends_no_hello(self):
        self.client(version=1)
        self.assertEqual(self.srv.commands, [protocol.CMD_HEARTBEAT])

    def test_traffic(self):
        pub, sub = self.client(), self.client()
        pub.register("pub")
        sub.register("sub")
        with self.assertRaises(RequestFailed) as cm:
            sub.subscribe("offline")
        self.assertEqual(cm.exception.status, protocol.STATUS_FAILURE)
        self.assertEqual(sub.subscriptions, [])  # refused: not renewed later
        sub.subscribe("pub")
        self.assertEqual(sub.subscriptions, ["pub"])
        self.assertTrue(sub.is_alive("pub"))
        self.assertFalse(sub.is_alive("offline"))
        pub.send(b"x" * 65535)
        pub.send("text")
        self.assertEqual(sub.recv(5), Message(b"x" * 65535, None))
        self.assertEqual(sub.recv(5), Message(b"text", None))
        with self.assertRaises(Unsupported):
            pub.send_to("sub", b"x")
        self.assertNotIn(protocol.CMD_SEND_TO, self.srv.commands)
        sub.unsubscribe("pub")
        sub.unregister()
        pub.ping()

    def test_compat_face(self):
        pub = stupidP2PClient("127.0.0.1", self.srv.port)
        sub = stupidP2PClient("127.0.0.1", self.srv.port)
        self.addCleanup(pub.deinitClient)
        self.addCleanup(sub.deinitClient)
        self.assertTrue(pub.initClient() and sub.initClient())
        self.assertEqual(pub.registerDevice("pub"), 1)
        self.assertEqual(sub.subscribeDevice("nobody"), 0)
        self.assertEqual(sub.subscribeDevice("pub"), 1)
        self.assertEqual(pub.sendData("hi"), 1)
        got = []
        self.assertTrue(wait_until(lambda: got.extend(sub.recvData()) or got,
                                   5))
        self.assertEqual(got, [list(b"hi")])
        self.assertEqual(sub.sendData("x"), 0)  # not registered
        self.assertEqual(sub.checkDeviceAlive("pub"), 1)
        self.assertEqual(sub.unscribeDevice("pub"), 1)
        self.assertEqual(pub.unregisterDevice(), 1)


if __name__ == "__main__":
    unittest.main()

"""Large messages and many messages: 65535-byte payloads relayed exactly,
10,000 messages in order."""

import os
import threading
import unittest

from p2p_support import ServerCase, wait_until
from stupidp2p import stupidP2PClient

N = 10_000


class VolumeTest(ServerCase):
    def pair(self, **options):
        pub, sub = self.client(**options), self.client(**options)
        pub.register(self.uid("pub"))
        sub.register(self.uid("sub"))
        sub.subscribe(self.uid("pub"))
        return pub, sub

    def test_65535_bytes_v2(self):
        pub, sub = self.pair()
        for _ in range(3):
            data = os.urandom(65535)
            pub.send(data)
            msg = sub.recv(10)
            self.assertEqual(msg.data, data)
            self.assertEqual(msg.sender, self.uid("pub"))
        # SEND_TO: id_len and target id count against max_frame.
        data = os.urandom(65536 - 2 - len(self.uid("sub")))
        pub.send_to(self.uid("sub"), data)
        self.assertEqual(sub.recv(10).data, data)

    def test_65535_bytes_v1_session(self):
        pub, sub = self.pair(version=1)
        data = os.urandom(65535)
        pub.send(data)
        self.assertEqual(sub.recv(10).data, data)

    def test_65535_bytes_compat(self):
        pub = stupidP2PClient("127.0.0.1", self.server.port)
        sub = stupidP2PClient("127.0.0.1", self.server.port)
        self.addCleanup(pub.deinitClient)
        self.addCleanup(sub.deinitClient)
        self.assertTrue(pub.initClient() and sub.initClient())
        self.assertEqual(pub.registerDevice(self.uid("pub")), 1)
        self.assertEqual(sub.subscribeDevice(self.uid("pub")), 1)
        data = os.urandom(65535)
        self.assertEqual(pub.sendData(data), 1)
        got = []
        self.assertTrue(wait_until(lambda: got.extend(sub.recvData()) or got,
                                   10))
        self.assertEqual(bytes(got[0]), data)

    def test_10000_messages_in_order(self):
        pub, sub = self.pair(queue_size=N)
        for i in range(N):
            pub.send(b"%d" % i, wait=False)
        pub.ping()
        got = [sub.recv(10) for _ in range(N)]
        self.assertEqual([m.data for m in got], [b"%d" % i for i in range(N)])
        self.assertEqual(pub.send_failures, 0)
        self.assertEqual(sub.dropped, 0)

    def test_10000_waited_messages_with_a_concurrent_reader(self):
        pub, sub = self.pair(queue_size=N)
        got = []

        def reader():
            for msg in sub:
                got.append(msg.data)
                if len(got) == N:
                    return

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        for i in range(N):
            pub.send(b"%d" % i)
        t.join(30)
        self.assertFalse(t.is_alive())
        self.assertEqual(got, [b"%d" % i for i in range(N)])
        self.assertEqual(sub.dropped, 0)


if __name__ == "__main__":
    unittest.main()

"""The receive queue is bounded in messages and in bytes; what does not fit
is dropped, counted, and logged once per episode."""

import logging
import unittest

from p2p_support import ServerCase
from stupidp2p import Client
from stupidp2p.client import DEFAULT_QUEUE_BYTES


class QueueBytesTest(ServerCase):
    def pair(self, **options):
        pub = self.client()
        sub = self.client(**options)
        pub.register(self.uid("pub"))
        sub.subscribe(self.uid("pub"))
        return pub, sub

    @staticmethod
    def publish(pub, sub, messages):
        for m in messages:
            pub.send(m)
        # The server queued each delivery before the sender's reply, so
        # the reply to this heartbeat follows all of them: they have been
        # handled (queued or dropped) when it returns.
        sub.ping()

    def test_bounded_in_bytes_and_logged_once_per_episode(self):
        pub, sub = self.pair(queue_bytes=10000)
        first = [bytes((i,)) * 1000 for i in range(20)]
        with self.assertLogs("stupidp2p", logging.WARNING) as logs:
            self.publish(pub, sub, first)
            self.assertEqual(sub.pending(), 10)
            self.assertEqual(sub.queued_bytes, 10000)
            self.assertEqual((sub.dropped, sub.dropped_bytes), (10, 10000))
            self.assertEqual([m.data for m in sub.recv_all()], first[:10])
            self.assertEqual(sub.queued_bytes, 0)
            # A second episode.
            self.publish(pub, sub, first)
            self.assertEqual((sub.dropped, sub.dropped_bytes), (20, 20000))
            self.assertEqual(sub.recv(1).data, first[0])
            self.assertEqual(sub.queued_bytes, 9000)
        said = [r.getMessage() for r in logs.records]
        self.assertEqual(len([s for s in said if "queue full" in s]), 2,
                         said)
        self.assertEqual(len([s for s in said if "drained" in s]), 1, said)

    def test_a_message_above_the_byte_bound_is_dropped(self):
        pub, sub = self.pair(queue_bytes=1000)
        with self.assertLogs("stupidp2p", logging.WARNING):
            self.publish(pub, sub, [b"x" * 1001, b"y" * 1000])
        self.assertEqual([m.data for m in sub.recv_all()], [b"y" * 1000])
        self.assertEqual((sub.dropped, sub.dropped_bytes), (1, 1001))

    def test_the_count_bound_still_holds(self):
        pub, sub = self.pair(queue_size=3)
        with self.assertLogs("stupidp2p", logging.WARNING):
            self.publish(pub, sub, [b"%d" % i for i in range(5)])
        self.assertEqual([m.data for m in sub.recv_all()], [b"0", b"1", b"2"])
        self.assertEqual(sub.dropped, 2)

    def test_default_and_validation(self):
        c = Client("127.0.0.1", self.server.port, connect=False)
        self.assertEqual(c.queue_bytes, DEFAULT_QUEUE_BYTES)
        with self.assertRaises(ValueError):
            Client("127.0.0.1", self.server.port, queue_bytes=0,
                   connect=False)


if __name__ == "__main__":
    unittest.main()

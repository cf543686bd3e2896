"""Two clients holding one id: back off across takeovers, then give up.

A v1 server closes the previous holder of an id without a word when another
connection registers it.  Each client used to reconnect, register again and
take the id back, with a backoff that restarted after every successful
reconnect: 51 takeovers in 5 s, forever.  Now the backoff counts on across
reconnects until a connection proves stable, and after max_quick_closes
silent closes in a row the client gives up with ClosedByServer.  A v2
server says BYE "taken over", which closes the client at once.
"""

import collections
import threading
import unittest
from unittest import mock

from p2p_support import ServerCase, wait_until
from stupidp2p import ClosedByServer, ConnectionState, protocol

CONNECTED = ConnectionState.CONNECTED


class V1TakeoverTest(ServerCase):
    FIGHT = dict(version=1, backoff_base=0.01, backoff_max=0.2,
                 stable_time=10, max_quick_closes=3, heartbeat=60)

    def fight(self, **options):
        a, b = self.client(**options), self.client(**options)
        dup = self.uid("dup")
        a.register(dup)
        b.register(dup)  # a's connection is closed without a word
        self.assertTrue(wait_until(lambda: a.closed or b.closed, 60),
                        "still fighting after %d + %d reconnects"
                        % (a.reconnects, b.reconnects))
        return (a, b) if a.closed else (b, a)

    def test_two_v1_clients_stop_fighting_over_one_id(self):
        loser, winner = self.fight(**self.FIGHT)
        self.assertIsInstance(loser.close_reason, ClosedByServer)
        self.assertEqual(loser.close_reason.closes, 3)
        self.assertIn("3 times in a row", str(loser.close_reason))
        with self.assertRaises(ClosedByServer):
            loser.ping()
        # Every reconnect took the id once; the loser made two, the winner
        # at most as many.
        self.assertEqual(loser.reconnects, 2)
        self.assertLessEqual(winner.reconnects, 3)
        # The winner keeps the id, and the fight is over.
        self.assertTrue(winner.wait_for_state(CONNECTED, 10))
        winner.ping()
        self.assertTrue(winner.is_alive(self.uid("dup")))
        self.assertFalse(winner.closed)

    def test_backoff_grows_across_takeovers(self):
        # Record the bound each delay is drawn from, per client (each has
        # one I/O thread), and make every delay 0 so that the fight runs at
        # full speed.
        bounds = collections.defaultdict(list)

        def draw(low, high):
            bounds[threading.get_ident()].append(high)
            return 0.0

        options = dict(self.FIGHT, max_quick_closes=5, backoff_max=0.1)
        with mock.patch("random.uniform", side_effect=draw):
            self.fight(**options)
        self.assertTrue(bounds)
        longest = max(bounds.values(), key=len)
        self.assertGreaterEqual(len(longest), 4)
        for seq in bounds.values():
            self.assertEqual(seq, [min(0.1, 0.01 * 2 ** i)
                                   for i in range(len(seq))])


class V2TakeoverTest(ServerCase):
    def test_v2_takeover_closes_at_once_and_says_why(self):
        first = self.client()
        first.register(self.uid("dup"))
        second = self.client()
        second.register(self.uid("dup"))
        self.assertTrue(first.wait_for_state(ConnectionState.CLOSED, 10))
        reason = first.close_reason
        self.assertIsInstance(reason, ClosedByServer)
        self.assertEqual(reason.bye.reason, protocol.BYE_TAKEN_OVER)
        self.assertEqual(first.connect_attempts, 1)
        with self.assertRaises(ClosedByServer) as caught:
            first.ping()
        self.assertIn("taken over", str(caught.exception))
        self.assertIsNone(second.close_reason)
        self.assertTrue(second.is_alive(self.uid("dup")))


if __name__ == "__main__":
    unittest.main()

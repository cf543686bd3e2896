"""Two clients holding one id: back off across takeovers, then give up.

A v1 server closes the previous holder of an id without a word when another
connection registers it.  Each client used to reconnect, register again and
take the id back, with a backoff that restarted after every successful
reconnect: 51 takeovers in 5 s, forever.  Now the backoff counts on across
reconnects until a connection proves stable, and after max_quick_closes
silent closes in a row the client gives up with ClosedByServer.  A v2
server says BYE "taken over": the client takes the id back takeover_retries
times in a row, then gives it up (IdTakenOver), as the C library does.
"""

import collections
import threading
import unittest
from unittest import mock

from p2p_support import Collector, ServerCase, wait_until
from stupidp2p import (ClosedByServer, ConnectionState, IdTakenOver,
                       NotRegistered, protocol)

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
    """v2: BYE "taken over".  The client takes its id back
    ``takeover_retries`` times in a row (1, as the C library), then gives it
    up and stays connected without it, saying so once."""

    def takeovers_in_log(self, dup):
        return self.server.output().count('took over "%s"' % dup)

    def test_v2_takes_the_id_back_once_then_gives_it_up(self):
        lost = Collector()
        first = self.client(on_id_lost=lost, backoff_max=0.5)
        self.assertEqual(first.takeover_retries, 1)
        dup = self.uid("dup")
        first.register(dup)
        second = self.client(backoff_max=0.5)
        second.register(dup)  # 1: first takes it back, 2: second does
        self.assertTrue(wait_until(lambda: lost.items, 10))
        self.assertEqual(len(lost.items), 1)
        device, reason = lost.items[0]
        self.assertEqual(device, dup)
        self.assertIsInstance(reason, IdTakenOver)
        self.assertEqual(reason.takeovers, 2)
        self.assertEqual(reason.bye.reason, protocol.BYE_TAKEN_OVER)
        self.assertIs(first.id_lost, reason)
        self.assertIsNone(first.device_id)
        self.assertTrue(first.connected)
        first.ping()
        with self.assertRaises(NotRegistered):
            first.send("x")
        # The fight is over: second holds the id, after one retake.
        self.assertTrue(second.wait_for_state(CONNECTED, 10))
        second.ping()
        self.assertEqual(second.device_id, dup)
        self.assertIsNone(second.id_lost)
        self.assertTrue(second.is_alive(dup))
        self.assertEqual(self.takeovers_in_log(dup), 3)
        self.assertEqual(first.reconnects, 2)
        self.assertEqual(second.reconnects, 1)
        self.assertFalse(first.closed or second.closed)

    def test_no_retries_gives_the_id_up_at_once(self):
        lost = Collector()
        first = self.client(on_id_lost=lost, takeover_retries=0)
        dup = self.uid("dup")
        first.register(dup)
        second = self.client()
        second.register(dup)
        self.assertTrue(wait_until(lambda: lost.items, 10))
        self.assertEqual(lost.items[0][1].takeovers, 1)
        first.ping()
        self.assertEqual(self.takeovers_in_log(dup), 1)
        self.assertEqual(second.reconnects, 0)

    def test_register_starts_the_count_over(self):
        lost = Collector()
        first = self.client(on_id_lost=lost, takeover_retries=0)
        dup = self.uid("dup")
        first.register(dup)
        self.client().register(dup)
        self.assertTrue(wait_until(lambda: first.id_lost is not None, 10))
        first.register(dup)  # the application's own choice
        self.assertIsNone(first.id_lost)
        self.assertEqual(first.device_id, dup)
        first.ping()
        self.assertTrue(first.is_alive(dup))


if __name__ == "__main__":
    unittest.main()

"""Protocol v2 events: presence callbacks and BYE handling."""

import unittest

from p2p_support import Collector, ServerCase, wait_until
from stupidp2p import Client, ConnectionState, protocol


class PresenceTest(ServerCase):
    def test_presence_follows_the_device(self):
        seen = Collector()
        watcher = self.client(on_presence=seen)
        dev = self.uid("dev")

        def wait_events(n):
            self.assertTrue(wait_until(lambda: len(seen.items) >= n))

        watcher.subscribe(dev)  # offline: accepted, presence says so
        wait_events(1)
        c = self.client()
        c.register(dev)
        wait_events(2)
        c.unregister()
        wait_events(3)
        c.register(dev)
        wait_events(4)
        c.close()  # a disconnect is reported too
        wait_events(5)
        self.assertEqual(seen.items, [(dev, False), (dev, True), (dev, False),
                                      (dev, True), (dev, False)])

    def test_subscribe_reports_current_state(self):
        dev = self.uid("dev")
        self.client().register(dev)
        seen = Collector()
        self.client(on_presence=seen).subscribe(dev)
        self.assertTrue(seen.wait_for((dev, True)))


class ByeTest(ServerCase):
    def test_taken_over_is_reported_and_the_client_stays(self):
        byes, states = Collector(), Collector()
        first = self.client(on_bye=byes, on_state=states, takeover_retries=0)
        first.register(self.uid("dup"))
        second = self.client()
        second.register(self.uid("dup"))
        self.assertTrue(wait_until(lambda: first.id_lost is not None, 5))
        self.assertEqual(byes.items[0].reason, protocol.BYE_TAKEN_OVER)
        self.assertEqual(first.last_bye.name, "taken over")
        self.assertTrue(first.last_bye.text)
        # One reconnection, without the id: no ping-pong.
        self.assertEqual(first.connect_attempts, 2)
        self.assertEqual(states.items, [ConnectionState.CONNECTED,
                                        ConnectionState.DISCONNECTED,
                                        ConnectionState.CONNECTED])
        self.assertIsNone(first.device_id)
        first.ping()
        self.assertTrue(second.is_alive(self.uid("dup")))
        self.assertIsNone(second.id_lost)


class IdleByeTest(ServerCase):
    server_args = ("--idle-timeout", "1")

    def test_idle_timeout_bye_then_reconnect(self):
        byes = Collector()
        # Heartbeats slower than the server's idle timeout.
        c = self.client(heartbeat=30, on_bye=byes, backoff_max=0.5)
        c.register(self.uid("idle"))
        self.assertEqual(c.server_idle_timeout, 1)
        self.assertTrue(c.wait_for_state(ConnectionState.DISCONNECTED, 5))
        self.assertEqual(byes.items[0].reason, protocol.BYE_IDLE_TIMEOUT)
        self.assertTrue(c.wait_for_state(ConnectionState.CONNECTED, 5))
        self.assertEqual(c.device_id, self.uid("idle"))
        c.ping()

    def test_heartbeat_keeps_the_connection(self):
        states = Collector()
        c = Client("127.0.0.1", self.server.port, heartbeat=0.3,
                   on_state=states)
        self.addCleanup(c.close)
        # Two idle timeouts' worth of time with heartbeats going.
        self.assertIsNone(c.recv(2.0))
        self.assertEqual(states.items, [ConnectionState.CONNECTED])


if __name__ == "__main__":
    unittest.main()

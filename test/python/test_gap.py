"""The slow-consumer policy from the Python client's side (README, "Slow
consumers"; stupidp2p(7), GAP).

* Against the real server (``--max-output 131072``): a subscriber with
  ``slow_consumer="drop"`` stops reading (its I/O thread is held in a
  callback, as when it cannot keep up) while a publisher sends numbered
  16 KiB messages, until the server's log says it drops, and then some;
  then it reads again.  ``recv()`` must give every message up to the drop
  point in order, then :class:`Gap` objects whose counts make up exactly
  for the numbers that did not arrive, then the later messages in order,
  all on one connection (no BYE "slow consumer").  Without the option the
  old behaviour stays: BYE 3 and a reconnect.
* Messages the client's own queue cannot take are reported by Gaps too,
  in drop mode only, tallied like the server's (16 named, the rest
  together).
* Against scripted servers: Gaps in stream order and ``on_gap``; a
  malformed GAP, or a GAP on a connection without DROP, is a protocol
  error; a server that refuses the flag (88 04, an older v2 server) keeps
  the v2 session and the policy is reported as not in force, as with an
  original server.
"""

import logging
import threading
import unittest

from p2p_support import (ClientCase, Collector, FakeV1Server, ScriptedServer,
                         ServerCase, answer_then_send, wait_until)
from stupidp2p import (Client, ConnectionState, Gap, Message, ProtocolError,
                       codec, protocol)
from stupidp2p.client import _Tally

MSG_SIZE = 16384
FLOOD_MAX = 4000   # 64 MiB: far beyond the socket buffers and the cap
EXTRA = 20         # sent after the server said it drops: all dropped
LATER = 10         # sent after the subscriber has caught up
DROPPING = "dropping deliveries until it catches up"
CUT_OFF = "slow consumer: output would exceed"


def numbered(seq, size=MSG_SIZE):
    """Message ``seq``: its number in 4 bytes, then a letter."""
    return seq.to_bytes(4, "big") + bytes((97 + seq % 26,)) * (size - 4)


class Hold:
    """An ``on_presence`` callback that holds the client's I/O thread the
    first time ``device`` comes online, until released (at most 60 s):
    the client stops reading its socket."""

    def __init__(self, device):
        self.device = device
        self.entered = threading.Event()
        self.released = threading.Event()

    def __call__(self, device, online):
        if device == self.device and online and not self.entered.is_set():
            self.entered.set()
            self.released.wait(60)


def check_stream(test, items, total, publisher):
    """Messages numbered from 0 in order, each hole exactly the frames of
    the Gaps before the next message, up to ``total``; returns the Gaps."""
    expected = 0
    gaps = []
    for item in items:
        if isinstance(item, Gap):
            test.assertEqual(item.publisher, publisher)
            test.assertGreater(item.frames, 0)
            test.assertEqual(item.bytes, item.frames * MSG_SIZE)
            gaps.append(item)
            expected += item.frames
            continue
        test.assertEqual(item.data, numbered(expected),
                         "message %d expected" % expected)
        test.assertEqual(item.sender, publisher)
        expected += 1
    test.assertEqual(expected, total)
    return gaps


def accounted(items):
    return sum(i.frames if isinstance(i, Gap) else 1 for i in items)


class RealServerTest(ServerCase):
    server_args = ("--max-output", "131072")

    def pair(self, **options):
        """A subscriber held by :class:`Hold` and its publisher; the
        subscriber's I/O thread is held once the publisher is online."""
        pub_id = self.uid("pub")
        hold = Hold(pub_id)
        self.addCleanup(hold.released.set)
        # Heartbeats slow enough that the held thread is not judged dead.
        sub = self.client(heartbeat=10.0, on_presence=hold, **options)
        sub.subscribe(pub_id)
        pub = self.client()
        pub.register(pub_id)
        self.assertTrue(hold.entered.wait(10))
        return sub, pub, hold

    def flood(self, pub, needle):
        """Send numbered messages until the server's log says ``needle``
        (checked every 16), then EXTRA more; returns how many were sent."""
        sent = 0
        while needle not in self.server.output():
            self.assertLess(sent, FLOOD_MAX, "the server never said %r"
                            % needle)
            for _ in range(16):
                pub.send(numbered(sent))
                sent += 1
        for _ in range(EXTRA):
            pub.send(numbered(sent))
            sent += 1
        return sent

    @staticmethod
    def read(sub, items, total):
        """Receive until messages and Gaps account for ``total``."""
        while accounted(items) < total:
            item = sub.recv(timeout=15)
            if item is None:
                raise AssertionError("%d of %d messages accounted for"
                                     % (accounted(items), total))
            items.append(item)

    def test_drop_reports_exactly_what_was_missed(self):
        on_gap = Collector()
        sub, pub, hold = self.pair(slow_consumer="drop", on_gap=on_gap)
        self.assertTrue(sub.drop_in_force)
        sent = self.flood(pub, DROPPING)
        hold.released.set()
        items = []
        self.read(sub, items, sent)
        # Caught up: later messages arrive again, in order.
        for _ in range(LATER):
            pub.send(numbered(sent))
            sent += 1
        self.read(sub, items, sent)
        gaps = check_stream(self, items, sent, self.uid("pub"))
        missed = sum(g.frames for g in gaps)
        print("\n  %d messages sent: %d missed, reported by %d Gap(s)"
              % (sent, missed, len(gaps)))
        self.assertGreaterEqual(len(gaps), 1)
        self.assertGreaterEqual(missed, EXTRA)
        self.assertTrue(all(isinstance(i, Message) for i in items[-LATER:]))
        self.assertEqual(on_gap.items, gaps)
        self.assertEqual((sub.gap_events, sub.missed_messages,
                          sub.missed_bytes),
                         (len(gaps), missed, missed * MSG_SIZE))
        self.assertEqual((sub.dropped, sub.reconnects), (0, 0))
        self.assertIsNone(sub.last_bye)
        self.assertTrue(sub.connected and sub.drop_in_force)

    def test_without_drop_a_slow_consumer_is_disconnected(self):
        sub, pub, hold = self.pair()
        self.assertFalse(sub.drop_in_force)
        sent = self.flood(pub, CUT_OFF)
        hold.released.set()
        self.assertTrue(wait_until(lambda: sub.reconnects == 1
                                   and sub.connected, 15))
        self.assertEqual(sub.last_bye.reason, protocol.BYE_SLOW_CONSUMER)
        # What arrived before the BYE is in order, and nothing reports the
        # rest; the subscription came back with the connection.
        pub.send(b"after")
        items = []
        while not items or items[-1].data != b"after":
            item = sub.recv(timeout=15)
            self.assertIsNotNone(item)
            items.append(item)
        before = items[:-1]
        print("\n  %d messages sent; %d received before the BYE"
              % (sent, len(before)))
        self.assertLess(len(before), sent)
        self.assertEqual([m.data for m in before],
                         [numbered(i) for i in range(len(before))])
        self.assertEqual(sub.gap_events, 0)


class LocalQueueTest(ServerCase):
    """Messages the client's own queue cannot take."""

    def fill(self, **options):
        """30 messages to a subscriber whose queue holds 8."""
        sub = self.client(queue_size=8, **options)
        pub = self.client()
        sub.subscribe(self.uid("pub"))
        pub.register(self.uid("pub"))
        for i in range(30):
            pub.send(numbered(i, 100))
        sub.ping()  # the server answers it after queueing the deliveries
        return sub, pub

    def test_drop_mode_reports_them_in_place(self):
        sub, pub = self.fill(slow_consumer="drop")
        self.assertEqual((sub.dropped, sub.dropped_bytes), (22, 2200))
        self.assertEqual(sub.pending(), 8)
        first = sub.recv(0)
        # The room it made went to the Gap, behind what was queued.
        self.assertEqual(sub.pending(), 8)
        items = [first] + sub.recv_all()
        self.assertEqual([m.data for m in items[:8]],
                         [numbered(i, 100) for i in range(8)])
        self.assertEqual(items[8:], [Gap(self.uid("pub"), 22, 2200)])
        for i in range(30, 33):
            pub.send(numbered(i, 100))
        sub.ping()
        self.assertEqual([m.data for m in sub.recv_all()],
                         [numbered(i, 100) for i in range(30, 33)])
        self.assertEqual(sub.gap_events, 0)  # the server reported nothing

    def test_drop_mode_gap_after_recv_all(self):
        sub, pub = self.fill(slow_consumer="drop")
        items = sub.recv_all()  # what was queued, then the tally
        self.assertEqual(items[8:], [Gap(self.uid("pub"), 22, 2200)])
        pub.send(b"next")
        self.assertEqual(sub.recv(5), Message(b"next", self.uid("pub")))

    def test_disconnect_mode_keeps_the_old_behaviour(self):
        sub, _ = self.fill()
        self.assertEqual(sub.dropped, 22)
        items = sub.recv_all()
        self.assertEqual([m.data for m in items],
                         [numbered(i, 100) for i in range(8)])

    def test_the_tally_names_sixteen(self):
        tally = _Tally()
        for i in range(20):
            tally.add("p%d" % i, 1, 10)
        tally.add(None, 2, 5)
        tally.add("p0", 1, 10)
        tally.add("p19", 1, 10)
        gaps = tally.take()
        self.assertEqual(gaps[0], Gap("p0", 2, 20))
        self.assertEqual([g.publisher for g in gaps[:16]],
                         ["p%d" % i for i in range(16)])
        self.assertEqual(gaps[16], Gap(None, 2 + 4 + 1, 5 + 40 + 10))
        self.assertEqual(len(gaps), 17)
        self.assertEqual(len(tally), 0)


# ---- scripted servers ------------------------------------------------------

HANDSHAKE = 2  # HELLO, HEARTBEAT (with DROP, another HELLO between)


class ScriptedTest(ClientCase):
    def test_gaps_in_stream_order(self):
        events = [codec.encode_deliver_head(b"pub") + b"zero",
                  codec.encode_gap(b"pub", 2, 10),
                  codec.encode_gap(None, 1, 3) + b"\x01\x02",  # later fields
                  codec.encode_deliver_head(b"pub") + b"four"]
        on_gap = Collector()
        with ScriptedServer(answer_then_send(events)) as srv:
            c = self.client(srv.port, slow_consumer="drop", on_gap=on_gap)
            c.ping()
            items = [c.recv(5) for _ in range(4)]
        self.assertEqual(items, [Message(b"zero", "pub"), Gap("pub", 2, 10),
                                 Gap(None, 1, 3), Message(b"four", "pub")])
        self.assertEqual(on_gap.items, items[1:3])
        self.assertEqual((c.gap_events, c.missed_messages, c.missed_bytes),
                         (2, 3, 13))

    def assert_protocol_error(self, payload, **options):
        with ScriptedServer(answer_then_send([payload], **options.pop(
                "script", {}))) as srv:
            c = self.client(srv.port, **options)
            c.ping()
            self.assertTrue(wait_until(
                lambda: isinstance(c.last_error, ProtocolError), 10),
                "last_error: %r" % c.last_error)
            self.assertEqual(c.recv_all(), [])
            self.assertEqual(c.gap_events, 0)

    def test_malformed_gaps_are_protocol_errors(self):
        for bad in (b"\x0f", b"\x0f\x05alice", b"\x0f\x05al",
                    b"\x0f\x00" + bytes(11), b"\x0f\x03pub\x00\x00\x00\x03"):
            with self.subTest(gap=bad.hex(" ")):
                self.assert_protocol_error(bad, slow_consumer="drop")

    def test_a_gap_without_drop_is_a_protocol_error(self):
        self.assert_protocol_error(codec.encode_gap(b"pub", 1, 1),
                                   script={"after": HANDSHAKE + 1})

    def test_a_server_that_refuses_the_flag_keeps_v2(self):
        log = []
        with ScriptedServer(answer_then_send([], refuse_drop=True, log=log)) as srv, \
                self.assertLogs("stupidp2p", logging.WARNING) as logged:
            c = self.client(srv.port, slow_consumer="drop")
        self.assertEqual(c.protocol_version, 2)
        self.assertFalse(c.drop_in_force)
        self.assertEqual([(r.command, r.flags) for r in log[:3]],
                         [(protocol.CMD_HELLO, 0),
                          (protocol.CMD_HELLO, protocol.HELLO_FLAG_DROP),
                          (protocol.CMD_HEARTBEAT, 0)])
        self.assertIn("does not know the DROP policy (protocol v2)",
                      "\n".join(logged.output))

    def test_an_original_server_ignores_it(self):
        with FakeV1Server() as srv, \
                self.assertLogs("stupidp2p", logging.WARNING) as logged:
            c = self.client(srv.port, slow_consumer="drop")
            self.assertEqual(c.protocol_version, 1)
            self.assertFalse(c.drop_in_force)
            self.assertEqual(srv.commands[:3], [protocol.CMD_HELLO] * 2
                             + [protocol.CMD_HEARTBEAT])
        self.assertIn("does not know the DROP policy (protocol v1)",
                      "\n".join(logged.output))

    def test_the_option_is_checked(self):
        with self.assertRaises(ValueError):
            Client("127.0.0.1", 1, slow_consumer="skip", connect=False)
        self.assertFalse(Client("127.0.0.1", 1, connect=False).drop_in_force)
        self.assertEqual(ConnectionState.CONNECTING,
                         Client("127.0.0.1", 1, connect=False).state)


if __name__ == "__main__":
    unittest.main()

"""Direct paths between a Python client and a C device (test/natbed/natpeer,
on libstupidp2p), on 127.0.0.1 against the real server: the two
implementations of stupidp2p(7), DIRECT PATHS, make a path between them,
both as offerer and as target, and carry messages on it both ways.

* PythonOffersTest: Python connects to a C receiver; the path is DIRECT on
  both sides (path(), and natpeer's "path direct"); 500 numbered messages
  arrive at the C side once each and in order ("complete 500"), and the
  relay's deliveries counter does not move meanwhile.
  Then its path is cut mid-stream: the C side takes its FALLBACK mark and
  drops the re-sent messages it has; all 3000 arrive once, in order.
* COffersTest: the C device connects (connect_direct) to a Python client
  and times 50 round trips over the path; Python echoes each message back
  with send_to: both directions on the path, in order.
"""

import os
import socket
import subprocess
import tempfile
import unittest

from p2p_support import REPO, ServerCase, wait_until
from stupidp2p import DIRECT_ACCEPT, Path
from test_direct import WAIT, counters, receive, wait_counter

NATPEER = os.path.join(os.environ.get("P2P_BUILD")
                       or os.path.join(REPO, "build"),
                       "test", "natbed", "natpeer")


def require_natpeer() -> None:
    """Skip (standalone) or fail (under ``make test``, which builds it)."""
    if os.access(NATPEER, os.X_OK):
        return
    if os.environ.get("P2P_BUILD"):
        raise AssertionError("no natpeer at %s" % NATPEER)
    raise unittest.SkipTest("no natpeer at %s (run make tests)" % NATPEER)


class NatPeer:
    """natpeer in a subprocess, its standard output in a file."""

    def __init__(self, case: ServerCase, *args: str) -> None:
        self.out = tempfile.TemporaryFile()
        self.err = tempfile.TemporaryFile()
        case.addCleanup(self.out.close)
        case.addCleanup(self.err.close)
        self.proc = subprocess.Popen(
            [NATPEER, "--server", "127.0.0.1", "--port",
             str(case.server.port), "--keepalive", "300"] + list(args),
            stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err)
        case.addCleanup(self.stop)

    def text(self, f=None) -> str:
        f = f or self.out
        fd = f.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8",
                                                            "replace")

    def wait_line(self, needle: str, timeout: float = WAIT) -> bool:
        return wait_until(lambda: needle in self.text(), timeout, 0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def why(self) -> str:
        return "natpeer said:\n%s\n%s" % (self.text(), self.text(self.err))


class InteropCase(ServerCase):
    def setUp(self) -> None:
        require_natpeer()


class PythonOffersTest(InteropCase):
    def test_python_to_c(self):
        me, peer = self.uid("py"), self.uid("c")
        c = NatPeer(self, "--me", peer, "--peer", me, "--direct", "accept",
                    "--job", "receive", "--count", "500", "--seconds", "60")
        self.assertTrue(c.wait_line("registered"), c.why())
        a = self.client(direct=True, direct_keepalive=0.3)
        a.register(me)
        marks = counters(self.server)["direct_marks"]
        a.connect_direct(peer)
        self.assertTrue(wait_until(lambda: a.path(peer) is Path.DIRECT,
                                   WAIT), c.why())
        self.assertTrue(c.wait_line("path direct"), c.why())
        wait_counter(self.server, "direct_marks", marks + 2)
        before = counters(self.server)["deliveries"]
        for k in range(500):
            a.send_to(peer, "seq %d" % k, wait=(k % 100 == 0))
        self.assertTrue(c.wait_line("complete 500", WAIT * 2), c.why())
        self.assertNotIn("ERROR", c.text())
        self.assertEqual(counters(self.server)["deliveries"], before)
        self.assertIs(a.path(peer), Path.DIRECT)


    def test_python_falls_back_to_c(self):
        """The Python side's path is cut mid-stream, after it stopped taking
        the C side's ACKs in (a seam: the C side has delivered more than
        the Python side knows): its FALLBACK mark and re-sent messages
        reach the C receiver, which drops what it has: 3000 once each, in
        order."""
        me, peer = self.uid("py"), self.uid("c")
        c = NatPeer(self, "--me", peer, "--peer", me, "--direct", "accept",
                    "--job", "receive", "--count", "3000", "--seconds", "60")
        self.assertTrue(c.wait_line("registered"), c.why())
        a = self.client(direct=True, direct_keepalive=0.3)
        a.register(me)
        a.connect_direct(peer)
        self.assertTrue(wait_until(lambda: a.path(peer) is Path.DIRECT,
                                   WAIT), c.why())
        for k in range(3000):
            if k == 1000:
                a._direct._acked = lambda p, seq: None
            if k == 2000:
                with a._direct._mu:
                    a._direct._peers[peer.encode()].path.shutdown(
                        socket.SHUT_RDWR)
                del a._direct._acked
            a.send_to(peer, "seq %d" % k, wait=(k % 100 == 0))
        self.assertTrue(c.wait_line("complete 3000", WAIT * 2), c.why())
        self.assertNotIn("ERROR", c.text())
        self.assertIn("path relay", c.text())


class COffersTest(InteropCase):
    def test_c_to_python_and_back(self):
        me, peer = self.uid("py"), self.uid("c")
        b = self.client(direct=DIRECT_ACCEPT, direct_keepalive=0.3)
        b.register(me)
        c = NatPeer(self, "--me", peer, "--peer", me, "--direct", "auto",
                    "--connect", "--job", "rtt", "--count", "50",
                    "--wait-direct", str(int(WAIT * 1000)))
        self.assertTrue(c.wait_line("direct after"), c.why())
        self.assertTrue(wait_until(lambda: b.path(peer) is Path.DIRECT,
                                   WAIT), c.why())
        before = counters(self.server)["deliveries"]
        for k in range(50):  # echo each ping: it waits for the echo
            got = receive(b, 1, peer)
            self.assertEqual(got, ["ping %d" % k], c.why())
            b.send_to(peer, got[0])
        self.assertTrue(c.wait_line(" rtt "), c.why())
        self.assertNotIn("ERROR", c.text())
        self.assertEqual(counters(self.server)["deliveries"], before)


if __name__ == "__main__":
    unittest.main()

"""python3 -m stupidp2p chat, driven through pipes."""

import queue
import subprocess
import sys
import threading
import unittest

from p2p_support import FakeV1Server, ServerCase, free_port, python_env
from stupidp2p import Client, Message


class Chat:
    """The chat in a subprocess, its output lines readable with deadlines."""

    def __init__(self, port, me, peer, *extra):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stupidp2p", "chat", "--server",
             "127.0.0.1:%d" % port, "--me", me, "--peer", peer] + list(extra),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=python_env())
        self.out, self.err = queue.Queue(), queue.Queue()
        for stream, q in ((self.proc.stdout, self.out),
                          (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, q),
                             daemon=True).start()

    @staticmethod
    def _pump(stream, q):
        for line in stream:
            q.put(line.rstrip("\n"))
        q.put(None)

    @staticmethod
    def line(q, timeout=10):
        return q.get(timeout=timeout)

    def wait_err(self, prefix, timeout=10):
        """Read standard error up to a line starting with ``prefix``."""
        seen = []
        while True:
            try:
                line = self.line(self.err, timeout)
            except queue.Empty:
                raise AssertionError("no %r on stderr; saw %r"
                                     % (prefix, seen)) from None
            if line is None:
                raise AssertionError("chat ended; stderr: %r" % seen)
            seen.append(line)
            if line.startswith(prefix):
                return seen

    def send_line(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout=10):
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                try:
                    f.close()
                except OSError:
                    pass


class ChatTest(ServerCase):
    def test_chat_both_ways_then_quit(self):
        bob = self.client()
        bob.register(self.uid("bob"))
        bob.subscribe(self.uid("alice"))
        chat = Chat(self.server.port, self.uid("alice"), self.uid("bob"))
        try:
            chat.wait_err("chatting as")
            bob.send("hi alice")
            self.assertEqual(chat.line(chat.out), "recv data: hi alice")
            chat.send_line("hello bob")
            self.assertEqual(bob.recv(10),
                             Message(b"hello bob", self.uid("alice")))
            chat.send_line("quit")
        finally:
            rc = chat.finish()
        self.assertEqual(rc, 0)

    def test_waits_for_the_peer_and_exits_at_end_of_input(self):
        chat = Chat(self.server.port, self.uid("alice"), self.uid("bob"))
        try:
            chat.wait_err("waiting for %s" % self.uid("bob"))
            bob = self.client()
            bob.register(self.uid("bob"))
            chat.wait_err("chatting as")
            bob.subscribe(self.uid("alice"))
            chat.send_line("one")
            chat.send_line("two")
            chat.proc.stdin.close()
            self.assertEqual([bob.recv(10).data for _ in range(2)],
                             [b"one", b"two"])
        finally:
            rc = chat.finish()
        self.assertEqual(rc, 0)

    def test_original_server(self):
        with FakeV1Server() as srv:
            bob = Client("127.0.0.1", srv.port)
            self.addCleanup(bob.close)
            bob.register("bob")
            chat = Chat(srv.port, "alice", "bob")
            try:
                chat.wait_err("chatting as")
                bob.subscribe("alice")
                bob.send("from v1")
                self.assertEqual(chat.line(chat.out), "recv data: from v1")
                chat.send_line("back")
                self.assertEqual(bob.recv(10), Message(b"back", None))
                chat.send_line("quit")
            finally:
                rc = chat.finish()
        self.assertEqual(rc, 0)

    def test_errors(self):
        chat = Chat(free_port(), "a", "b")
        self.assertEqual(chat.finish(), 1)
        bad = subprocess.run(
            [sys.executable, "-m", "stupidp2p", "chat", "--server", "nope",
             "--me", "a", "--peer", "b"], capture_output=True, text=True,
            env=python_env(), timeout=30)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("HOST:PORT", bad.stderr)
        usage = subprocess.run([sys.executable, "-m", "stupidp2p"],
                               capture_output=True, text=True,
                               env=python_env(), timeout=30)
        self.assertEqual(usage.returncode, 2)
        self.assertIn("chat", usage.stdout)


if __name__ == "__main__":
    unittest.main()

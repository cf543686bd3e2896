"""python3 -m stupidp2p chat, driven through pipes."""

import contextlib
import queue
import subprocess
import sys
import threading
import unittest

from p2p_support import (FakeV1Server, ScriptedServer, ServerCase,
                         answer_then_send, free_port, python_env)
from stupidp2p import Client, Message, codec


class Chat:
    """The chat in a subprocess, its output lines readable with deadlines."""

    def __init__(self, port, me, peer, *extra):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stupidp2p", "chat", "--server",
             "127.0.0.1:%d" % port, "--me", me, "--peer", peer] + list(extra),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, encoding="utf-8",
            env=dict(python_env(), PYTHONIOENCODING="utf-8"))
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
    @contextlib.contextmanager
    def chat(self, *args, port=None, status=0):
        """Run the chat with ``args`` (--me, --peer, options) against our
        server (or ``port``); on leaving, wait for it to exit with
        ``status``."""
        chat = Chat(port or self.server.port, *args)
        try:
            yield chat
        finally:
            rc = chat.finish()
        self.assertEqual(rc, status)

    def test_chat_both_ways_then_quit(self):
        bob = self.client()
        bob.register(self.uid("bob"))
        bob.subscribe(self.uid("alice"))
        with self.chat(self.uid("alice"), self.uid("bob")) as chat:
            chat.wait_err("chatting as")
            bob.send("hi alice")
            self.assertEqual(chat.line(chat.out), "recv data: hi alice")
            chat.send_line("hello bob")
            self.assertEqual(bob.recv(10),
                             Message(b"hello bob", self.uid("alice")))
            chat.send_line("quit")

    def test_waits_for_the_peer_and_exits_at_end_of_input(self):
        with self.chat(self.uid("alice"), self.uid("bob")) as chat:
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

    def test_original_server(self):
        with FakeV1Server() as srv:
            bob = Client("127.0.0.1", srv.port)
            self.addCleanup(bob.close)
            bob.register("bob")
            with self.chat("alice", "bob", port=srv.port) as chat:
                chat.wait_err("chatting as")
                bob.subscribe("alice")
                bob.send("from v1")
                self.assertEqual(chat.line(chat.out), "recv data: from v1")
                chat.send_line("back")
                self.assertEqual(bob.recv(10), Message(b"back", None))
                chat.send_line("quit")

    def test_gives_up_waiting_with_status_4(self):
        # Standard input stays open: only --wait ends the wait.
        with self.chat(self.uid("alice"), self.uid("bob"), "--wait", "0.5",
                       status=4) as chat:
            chat.wait_err("p2pchat: %s did not come online within 0.5 s"
                          % self.uid("bob"))

    def test_end_of_input_while_waiting_ends_cleanly(self):
        with self.chat(self.uid("alice"), self.uid("bob")) as chat:
            chat.wait_err("waiting for %s" % self.uid("bob"))
            chat.proc.stdin.close()
            chat.wait_err("end of input while waiting for %s"
                          % self.uid("bob"))

    def test_quit_while_waiting_ends_cleanly(self):
        with self.chat(self.uid("alice"), self.uid("bob")) as chat:
            chat.wait_err("waiting for %s" % self.uid("bob"))
            chat.send_line("quit")

    def test_lines_read_while_waiting_are_sent_once_the_peer_is_online(self):
        # As in 'printf "hello\n" | chat': the input ends long before the
        # peer comes; what it held is still sent.
        bob = self.client()
        bob.subscribe(self.uid("alice"))
        with self.chat(self.uid("alice"), self.uid("bob")) as chat:
            chat.wait_err("waiting for %s" % self.uid("bob"))
            chat.send_line("early one")
            chat.send_line("early two")
            chat.proc.stdin.close()
            bob.register(self.uid("bob"))
            self.assertEqual([bob.recv(10).data for _ in range(2)],
                             [b"early one", b"early two"])

    def test_original_server_wait_and_end_of_input(self):
        with FakeV1Server() as srv:
            with self.chat("alice", "bob", "--wait", "1", port=srv.port,
                           status=4) as chat:
                chat.wait_err("p2pchat: bob did not come online within 1 s")
            with self.chat("alice", "bob", port=srv.port) as chat:
                chat.wait_err("waiting for bob")
                chat.proc.stdin.close()

    def test_received_bytes_are_printed_escaped(self):
        bob = self.client()
        bob.register(self.uid("bob"))
        bob.subscribe(self.uid("alice"))
        with self.chat(self.uid("alice"), self.uid("bob")) as chat:
            chat.wait_err("chatting as")
            bob.send(b"\x1b[2Jhi\nthere\x07\r\xc3\xa9\xff\\x41\xe2\x80\xae")
            bob.send(b"next")
            self.assertEqual(chat.line(chat.out),
                             "recv data: \\x1b[2Jhi\\x0athere\\x07\\x0d"
                             "\u00e9\\xff\\\\x41\\xe2\\x80\\xae")
            self.assertEqual(chat.line(chat.out), "recv data: next")
            chat.send_line("quit")

    def test_drop_prints_each_gap_in_place(self):
        # A v2 server that grants DROP, then, once the chat has checked
        # that the peer is online (HELLO, HELLO, HEARTBEAT, REGISTER,
        # SUBSCRIBE, CHECK_ALIVE), sends a message, two GAPs and another.
        peer = "bo\x1bb"  # ESC: printed escaped
        raw = peer.encode()
        events = [codec.encode_deliver_head(raw) + b"one",
                  codec.encode_gap(raw, 2, 10),
                  codec.encode_gap(None, 1, 3),
                  codec.encode_deliver_head(raw) + b"four"]
        with ScriptedServer(answer_then_send(events, after=6)) as srv, \
                self.chat("alice", peer, "--drop", port=srv.port) as chat:
            self.assertEqual([chat.line(chat.out) for _ in events],
                             ["recv data: one",
                              "missed 2 messages (10 bytes) from bo\\x1bb",
                              "missed 1 message (3 bytes) from other devices",
                              "recv data: four"])
            chat.send_line("quit")
            self.assertNotIn("does not support --drop",
                             "\n".join(chat.wait_err("chatting as")))

    def test_drop_not_in_force_is_said(self):
        with FakeV1Server() as srv, \
                self.chat("alice", "bob", "--drop", port=srv.port) as chat:
            chat.wait_err("p2pchat: this server does not support --drop: "
                          "if this client falls behind, it is disconnected")
            chat.proc.stdin.close()

    @staticmethod
    def run_module(*args):
        """``python3 -m stupidp2p ARGS`` to its end."""
        return subprocess.run([sys.executable, "-m", "stupidp2p"] + list(args),
                              capture_output=True, text=True,
                              env=python_env(), timeout=30)

    def test_errors(self):
        chat = Chat(free_port(), "a", "b")
        self.assertEqual(chat.finish(), 1)
        bad = self.run_module("chat", "--server", "nope", "--me", "a",
                              "--peer", "b")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("HOST:PORT", bad.stderr)
        for wait in ("-1", "86401", "soon"):
            bad = self.run_module("chat", "--server", "127.0.0.1:1", "--me",
                                  "a", "--peer", "b", "--wait", wait)
            self.assertEqual(bad.returncode, 2, wait)
            self.assertIn("--wait", bad.stderr)
        usage = self.run_module()
        self.assertEqual(usage.returncode, 2)
        self.assertIn("chat", usage.stdout)


if __name__ == "__main__":
    unittest.main()

"""Threads: two clients in two threads, and many threads on one client."""

import threading
import unittest

from p2p_support import ServerCase

N = 500


class ThreadsTest(ServerCase):
    def test_two_clients_in_threads(self):
        a, b = self.client(queue_size=N), self.client(queue_size=N)
        a.register(self.uid("a"))
        b.register(self.uid("b"))
        a.subscribe(self.uid("b"))
        b.subscribe(self.uid("a"))
        results = {}
        start = threading.Barrier(2, timeout=10)

        def talk(me, name, peer):
            start.wait()
            for i in range(N):
                me.send(b"%s%d" % (name, i))
            got = [me.recv(10) for _ in range(N)]
            results[name] = got

        threads = [threading.Thread(target=talk, args=(a, b"a", "b")),
                   threading.Thread(target=talk, args=(b, b"b", "a"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
            self.assertFalse(t.is_alive())
        self.assertEqual([m.data for m in results[b"a"]],
                         [b"b%d" % i for i in range(N)])
        self.assertEqual([m.data for m in results[b"b"]],
                         [b"a%d" % i for i in range(N)])
        self.assertEqual({m.sender for m in results[b"a"]}, {self.uid("b")})

    def test_many_threads_on_one_client(self):
        c = self.client()
        online = self.client()
        online.register(self.uid("on"))
        errors = []

        def worker(k):
            try:
                for i in range(200):
                    want = (i + k) % 2 == 0
                    name = self.uid("on") if want else self.uid("off")
                    if c.is_alive(name) is not want:
                        errors.append((k, i))
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(k,))
                   for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
            self.assertFalse(t.is_alive())
        self.assertEqual(errors, [])


if __name__ == "__main__":
    unittest.main()

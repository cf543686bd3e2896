"""A program may exit with a client still open: the client's threads are
daemons (the original's kept the interpreter alive)."""

import time
import unittest

from p2p_support import ServerCase, run_python

LEFT_OPEN = r'''
import sys
from stupidp2p import Client
from stupidP2P import stupidP2PClient

port = int(sys.argv[1])
c = Client("127.0.0.1", port)
c.register("exit-test-a")
c.subscribe("exit-test-b")
old = stupidP2PClient("127.0.0.1", port)
assert old.initClient()
assert old.registerDevice("exit-test-b") == 1
old.sendData("bye")
print("open", c.recv(5).data.decode())
# No close(), no deinitClient(): the interpreter must still exit.
'''

RECONNECTING = r'''
import sys
from stupidp2p import Client, ConnectionState
c = Client("127.0.0.1", int(sys.argv[1]), backoff_base=5.0)
print("connected", flush=True)
sys.stdin.readline()  # the test kills the server, then closes our stdin
assert c.wait_for_state(ConnectionState.DISCONNECTED, 5)
print("reconnecting")
'''


class ExitTest(ServerCase):
    def test_exit_with_clients_left_open(self):
        t0 = time.monotonic()
        result = run_python(LEFT_OPEN, str(self.server.port), timeout=20)
        elapsed = time.monotonic() - t0
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout, "open bye\n")
        self.assertLess(elapsed, 5.0)

    def test_exit_while_reconnecting(self):
        import subprocess
        import sys
        from p2p_support import python_env
        port = self.server.port
        proc = subprocess.Popen(
            [sys.executable, "-c", RECONNECTING, str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=python_env())
        try:
            self.assertEqual(proc.stdout.readline(), "connected\n")
            self.server.kill()
            t0 = time.monotonic()
            proc.stdin.close()
            proc.wait(20)  # its output is a few bytes: no pipe can fill
            self.assertLess(time.monotonic() - t0, 5.0)
            out, err = proc.stdout.read(), proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
            self.server.start(port)
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(out, "reconnecting\n")


if __name__ == "__main__":
    unittest.main()

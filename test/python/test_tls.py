"""The Python client over TLS, through stunnel in front of p2pServer.

stunnel (Debian: stunnel4; scripts/ensure-test-deps.sh installs it) accepts
TLS on an ephemeral loopback port with a self-signed certificate made here
by the ``openssl`` command, and forwards to p2pServer, which speaks plain
TCP.  A client with ``ssl_context`` trusting that certificate registers with
AUTH through the tunnel and talks with a plain-TCP client, both ways, and
authenticates again after the server restarts behind the tunnel.  A
certificate the client does not trust, the default context (the system's
CAs), and a host name the certificate does not name are refused.  Skipped,
with the reason, when stunnel or openssl is missing.
"""

import os
import shutil
import ssl
import subprocess
import tempfile
import unittest

from p2p_support import ServerProcess, can_connect, free_port, wait_until
from stupidp2p import Client, ConnectError, stupidP2PClient

from test_auth import TOKEN_A, TOKEN_B, alice_and_bob

STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")
OPENSSL = shutil.which("openssl")


def make_certificate(directory, name, san):
    """A self-signed certificate and its key (P-256), valid for two days,
    naming ``san`` (e.g. "IP:127.0.0.1"); returns (cert, key) paths."""
    cert = os.path.join(directory, name + ".pem")
    key = os.path.join(directory, name + ".key")
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj",
                    "/CN=stupidp2p test " + name, "-addext",
                    "subjectAltName=" + san],
                   check=True, capture_output=True, timeout=30)
    return cert, key


class Stunnel:
    """stunnel in the foreground: TLS on 127.0.0.1:port, forwarded to
    127.0.0.1:target."""

    def __init__(self, directory, cert, key, target):
        self.directory = directory
        self.log = os.path.join(directory, "stunnel.log")
        self.proc = None
        for _ in range(10):  # a free port may be taken before stunnel binds
            self.port = free_port()
            conf = os.path.join(directory, "stunnel.conf")
            with open(conf, "w") as f:
                f.write("foreground = yes\npid =\noutput = %s\ndebug = 5\n"
                        "[p2p]\naccept = 127.0.0.1:%d\n"
                        "connect = 127.0.0.1:%d\ncert = %s\nkey = %s\n"
                        % (self.log, self.port, target, cert, key))
            self.proc = subprocess.Popen([STUNNEL, conf],
                                         stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            if wait_until(lambda: self.proc.poll() is not None
                          or can_connect(self.port), 10) \
                    and self.proc.poll() is None:
                return
            self.stop()
        raise AssertionError("stunnel did not start:\n" + self.output())

    def output(self):
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@unittest.skipIf(STUNNEL is None, "stunnel is not installed (Debian: "
                 "apt-get install stunnel4; scripts/ensure-test-deps.sh "
                 "does it as root)")
@unittest.skipIf(OPENSSL is None, "the openssl command is not installed "
                 "(Debian: apt-get install openssl)")
class TLSTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        d = cls.dir.name
        cls.cert, key = make_certificate(d, "server", "IP:127.0.0.1")
        cls.other_cert, _ = make_certificate(d, "other", "IP:127.0.0.1")
        cls.auth_file = os.path.join(d, "auth")
        with open(cls.auth_file, "w") as f:
            f.write(alice_and_bob())
        os.chmod(cls.auth_file, 0o600)
        cls.server = ServerProcess("--auth-file", cls.auth_file).start()
        cls.tunnel = Stunnel(d, cls.cert, key, cls.server.port)

    @classmethod
    def tearDownClass(cls):
        cls.tunnel.stop()
        cls.server.stop()
        cls.server.release()
        cls.dir.cleanup()

    def client(self, host="127.0.0.1", **options):
        options.setdefault("timeout", 5.0)
        options.setdefault("backoff_max", 0.5)
        c = Client(host, self.tunnel.port, **options)
        self.addCleanup(c.close)
        return c

    def trusting(self, cert):
        return ssl.create_default_context(cafile=cert)

    def plain_bob(self):
        bob = Client("127.0.0.1", self.server.port, timeout=5.0,
                     token=TOKEN_B)
        self.addCleanup(bob.close)
        bob.register("bob")
        return bob

    def test_auth_and_messages_through_the_tunnel(self):
        alice = self.client(ssl_context=self.trusting(self.cert),
                            token=TOKEN_A)
        self.assertTrue(alice.tls)
        self.assertEqual(alice.protocol_version, 2)
        alice.register("alice")
        bob = self.plain_bob()
        alice.subscribe("bob")
        bob.subscribe("alice")
        alice.send("over TLS")
        msg = bob.recv(5)
        self.assertEqual((msg.sender, msg.data), ("alice", b"over TLS"))
        big = os.urandom(60000)  # several TLS records, both ways
        bob.send(big)
        bob.send_to("alice", b"to you")
        got = [alice.recv(5) for _ in range(2)]
        self.assertEqual([(m.sender, m.data) for m in got],
                         [("bob", big), ("bob", b"to you")])
        for i in range(200):
            alice.send(b"%d" % i, wait=False)
        alice.ping()
        self.assertEqual([bob.recv(5).data for _ in range(200)],
                         [b"%d" % i for i in range(200)])
        self.assertIn('authenticated as "alice"', self.server.output())

    def test_the_compat_face_through_the_tunnel(self):
        c = stupidP2PClient("127.0.0.1", self.tunnel.port, token=TOKEN_A,
                            ssl_context=self.trusting(self.cert))
        self.addCleanup(c.deinitClient)
        self.assertTrue(c.initClient())
        self.assertEqual(c.registerDevice("alice"), 1)
        self.assertEqual(c.checkDeviceAlive("alice"), 1)

    def test_authenticated_again_after_a_server_restart(self):
        alice = self.client(ssl_context=self.trusting(self.cert),
                            token=TOKEN_A)
        alice.register("alice")
        before = self.server.output().count('authenticated as "alice"')
        self.server.restart()
        self.assertTrue(wait_until(lambda: alice.reconnects >= 1
                                   and alice.connected, 15))
        self.assertEqual(self.server.output().count(
            'authenticated as "alice"'), before + 1)
        self.assertEqual(alice.device_id, "alice")
        bob = self.plain_bob()
        bob.subscribe("alice")
        alice.send("back")
        self.assertEqual(bob.recv(5).data, b"back")

    def test_a_certificate_not_trusted_is_refused(self):
        with self.assertRaises(ConnectError) as caught:
            self.client(ssl_context=self.trusting(self.other_cert))
        self.assertIsInstance(caught.exception.__cause__,
                              ssl.SSLCertVerificationError)
        self.assertIn("certificate verify failed", str(caught.exception))
        # tls=True: the system's CAs do not know a self-signed certificate.
        with self.assertRaises(ConnectError) as caught:
            self.client(tls=True)
        self.assertIsInstance(caught.exception.__cause__,
                              ssl.SSLCertVerificationError)

    def test_a_host_name_the_certificate_does_not_name_is_refused(self):
        # The certificate names 127.0.0.1, not localhost.
        with self.assertRaises(ConnectError) as caught:
            self.client("localhost", ssl_context=self.trusting(self.cert))
        self.assertIsInstance(caught.exception.__cause__,
                              ssl.SSLCertVerificationError)

    def test_plain_tcp_to_the_tunnel_is_not_a_session(self):
        # The other way round: a client without TLS gets no handshake.
        with self.assertRaises(ConnectError):
            self.client(timeout=1.0)


if __name__ == "__main__":
    unittest.main()

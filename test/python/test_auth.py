"""AUTH in the Python client: device tokens (stupidp2p(7), AUTH).

The arithmetic against the man page's worked example and against the
verifier ``p2pServer --hash-token`` prints; token files.  Then against the
real server with an auth file (verifiers from --hash-token): both faces
authenticate, again after a restart (the subscriptions renewed after step
2), a reload that keeps the device keeps the session and one that removes
it makes the client give the id up once; a wrong token raises AuthError
and is never repeated by the client (the server's log counts the
attempts); the server's third-refusal BYE keeps the held id.  Servers that
cannot authenticate (no auth file, v1, an original) give Unsupported and
never a REGISTER instead; a server with a wrong signature, a
ProtocolError.  The new status 5 answers are NotAuthorized.  The chat's
--token-file.  And no token ever reaches the log.
"""

import base64
import logging
import os
import re
import signal
import subprocess
import tempfile
import unittest

from p2p_support import (GRANT, REPO, SERVER, Collector, FakeV1Server,
                         ScriptedServer, ServerCase, ServerProcess,
                         read_payloads, require_server, wait_until)
from stupidp2p import (AuthError, Client, ConnectionLostError,
                       ConnectionState, NotAuthorized, NotRegistered,
                       ProtocolError, RequestFailed, Unsupported, codec,
                       protocol, stupidP2PClient)
from stupidp2p.auth import (AuthKeys, TokenFileError, auth_message,
                            client_proof, read_token_file, server_signature,
                            token_bytes)

from test_chat import Chat

TOKEN_A = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
TOKEN_B = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8"


def verifier_line(device, token, peers=None):
    """The auth file line for ``device``, from p2pServer --hash-token."""
    require_server()
    out = subprocess.run([SERVER, "--hash-token", device],
                         input=token + "\n", capture_output=True, text=True,
                         timeout=10, check=True).stdout.strip()
    return out + (" " + peers if peers else "") + "\n"


class TokenLeakCheck(logging.Handler):
    """Collects the stupidp2p logger's lines, to look for a token."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())

    def leaks(self):
        return [line for line in self.lines
                if TOKEN_A[:12] in line or TOKEN_B[:12] in line]


class LogCheckedCase(unittest.TestCase):
    """Every test's stupidp2p log (debug level) is searched for tokens."""

    def setUp(self):
        logger = logging.getLogger("stupidp2p")
        self.logged = TokenLeakCheck()
        old_level = logger.level
        logger.addHandler(self.logged)
        logger.setLevel(logging.DEBUG)

        def check():
            logger.removeHandler(self.logged)
            logger.setLevel(old_level)
            self.assertEqual(self.logged.leaks(), [])
        self.addCleanup(check)


# ---- the arithmetic -------------------------------------------------------


def man_page_example():
    """The values of the man page's worked example (stupidp2p(7),
    EXAMPLES, Authentication): label -> bytes."""
    with open(os.path.join(REPO, "man", "stupidp2p.7"), encoding="utf-8") as f:
        text = f.read()
    block = text[text.index("AUTH-EXAMPLE-BEGIN"):text.index("AUTH-EXAMPLE-END")]
    values, label = {}, None
    for line in block.splitlines():
        if line.startswith((".", "alice ")) or not line.strip():
            label = None
            continue
        head = re.match(r"(\w+)\s", line)
        if head and not re.fullmatch(r"[0-9a-f]{2}", head.group(1)):
            label = head.group(1)
            values[label] = b""
        if label is not None:
            values[label] += bytes(int(w, 16) for w in re.findall(
                r"(?<!\S)[0-9a-f]{2}(?!\S)", line))
    return values


class ArithmeticTest(unittest.TestCase):
    def test_the_man_page_example(self):
        ex = man_page_example()
        self.assertEqual(len(ex["ClientProof"]), 32)
        keys = AuthKeys.from_token(TOKEN_A)
        self.assertEqual(keys.client_key, ex["ClientKey"])
        self.assertEqual(keys.stored_key, ex["StoredKey"])
        self.assertEqual(keys.server_key, ex["ServerKey"])
        message = auth_message(b"alice", bytes(range(0xC0, 0xE0)),
                               bytes(range(0xE0, 0x100)))
        self.assertEqual(message, ex["AuthMessage"])
        self.assertEqual(client_proof(keys, message), ex["ClientProof"])
        self.assertEqual(server_signature(keys.server_key, message),
                         ex["ServerSignature"])

    def test_the_verifier_is_what_hash_token_prints(self):
        for token in (TOKEN_A, TOKEN_B, "!", "~" * 256):
            keys = AuthKeys.from_token(token)

            def b64(key):
                return base64.urlsafe_b64encode(key).rstrip(b"=").decode()
            self.assertEqual(verifier_line("dev", token),
                             "dev p2p-scram-sha256$%s$%s\n"
                             % (b64(keys.stored_key), b64(keys.server_key)))

    def test_token_form(self):
        self.assertEqual(token_bytes("!~"), b"!~")
        self.assertEqual(token_bytes(b"x" * 256), b"x" * 256)
        for bad in ("", "x" * 257, "with space", "tab\t", "caf\u00e9",
                    b"del\x7f", b"nul\x00"):
            with self.assertRaises(ValueError):
                token_bytes(bad)
        with self.assertRaises(TypeError):
            token_bytes(42)
        # Before any connection is tried.
        with self.assertRaises(ValueError):
            Client("127.0.0.1", 1, token="two words", connect=False)
        with self.assertRaises(ValueError):
            stupidP2PClient("127.0.0.1", 1, token="")
        self.assertEqual(repr(AuthKeys.from_token("t")), "AuthKeys(...)")


class TokenFileTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def file(self, content, mode=0o600):
        path = os.path.join(self.dir.name, "token%d" % len(os.listdir(
            self.dir.name)))
        with open(path, "wb") as f:
            f.write(content)
        os.chmod(path, mode)
        return path

    def test_first_line_without_its_line_end(self):
        for content in (b"tok\n", b"tok\r\n", b"tok", b"tok\nsecond\n"):
            self.assertEqual(read_token_file(self.file(content)),
                             (b"tok", None))
        self.assertEqual(read_token_file(self.file(b"x" * 256 + b"\r\n"))[0],
                         b"x" * 256)

    def test_a_file_others_may_read_is_a_warning(self):
        token, warning = read_token_file(self.file(b"tok\n", 0o644))
        self.assertEqual(token, b"tok")
        self.assertIn("readable by others", warning)
        _, warning = read_token_file(self.file(b"tok\n", 0o640))
        self.assertIn("readable by its group", warning)

    def test_files_that_hold_no_token(self):
        cases = [(os.path.join(self.dir.name, "missing"), "No such file"),
                 (self.file(b""), "is empty"),
                 (self.file(b"\nsecond\n"), "not a token"),
                 (self.file(b"two words\n"), "not a token"),
                 (self.file(b"x" * 257), "not a token")]
        for path, words in cases:
            with self.assertRaises(TokenFileError) as caught:
                read_token_file(path)
            self.assertIn(path, str(caught.exception))
            self.assertIn(words, str(caught.exception))
        with self.assertRaises(TokenFileError) as caught:
            read_token_file(self.file(b"secret words\n"))
        self.assertNotIn("secret", str(caught.exception))


# ---- against the real server ----------------------------------------------


def alice_and_bob(extra=""):
    """alice and bob may reach each other only; carol is unlisted."""
    return (verifier_line("alice", TOKEN_A, "bob")
            + verifier_line("bob", TOKEN_B, "alice") + extra)


class AuthServerCase(LogCheckedCase):
    """A server of its own for every test, with an auth file."""

    def setUp(self):
        super().setUp()
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.auth_file = os.path.join(self.dir.name, "auth")
        self.write_auth_file(alice_and_bob())
        self.server = ServerProcess("--auth-file", self.auth_file).start()
        self.addCleanup(self.server.release)
        self.addCleanup(self.server.stop)

    def write_auth_file(self, text):
        tmp = self.auth_file + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.rename(tmp, self.auth_file)

    def reload(self):
        """SIGHUP, and wait until the server has read the file again."""
        done = "subscriptions cancelled"
        before = self.server.output().count(done)
        self.server.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(
            lambda: self.server.output().count(done) > before, 10))

    def count(self, text):
        return self.server.output().count(text)

    def client(self, **options):
        options.setdefault("timeout", 5.0)
        options.setdefault("backoff_max", 0.5)
        c = Client("127.0.0.1", self.server.port, **options)
        self.addCleanup(c.close)
        return c


def authenticated(device):
    return 'authenticated as "%s"' % device


def auth_failed(device):
    return 'AUTH as "%s" failed' % device


class AuthEndToEndTest(AuthServerCase):
    def test_both_faces_authenticate(self):
        alice = self.client(token=TOKEN_A)
        alice.register("alice")
        bob = stupidP2PClient("127.0.0.1", self.server.port,
                              token=TOKEN_B.encode())
        self.addCleanup(bob.deinitClient)
        self.assertTrue(bob.initClient())
        self.assertEqual(bob.registerDevice("bob"), 1)
        self.assertEqual(self.count(authenticated("alice")), 1)
        self.assertEqual(self.count(authenticated("bob")), 1)
        self.assertEqual(bob.subscribeDevice("alice"), 1)
        alice.subscribe("bob")
        alice.send("hi bob")
        self.assertTrue(wait_until(lambda: bob.client.pending() > 0, 5))
        self.assertEqual(bob.recvData(), [list(b"hi bob")])
        self.assertEqual(bob.sendData("hi alice"), 1)
        msg = alice.recv(5)
        self.assertEqual((msg.sender, msg.data), ("bob", b"hi alice"))
        self.assertEqual(alice.device_id, "alice")
        self.assertTrue(self.logged.lines)

    def test_authenticated_again_after_a_restart(self):
        states = Collector()
        alice = self.client(token=TOKEN_A, on_state=states)
        alice.register("alice")
        alice.subscribe("bob")  # only alice may reach bob
        self.server.restart()
        self.assertTrue(wait_until(lambda: alice.reconnects >= 1, 10))
        self.assertEqual(self.count(authenticated("alice")), 2)
        self.assertEqual(self.count("AUTH as"), 0)
        bob = self.client(token=TOKEN_B)
        bob.register("bob")
        bob.send("after")
        msg = alice.recv(5)
        self.assertEqual((msg.sender, msg.data), ("bob", b"after"))
        self.assertIsNone(alice.id_lost)
        alice.send("x")

    def test_a_reload_that_keeps_the_device_keeps_the_session(self):
        states = Collector()
        alice = self.client(token=TOKEN_A, on_state=states)
        alice.register("alice")
        self.write_auth_file(alice_and_bob(verifier_line("carol", TOKEN_B)))
        self.reload()
        alice.ping()
        alice.send("still mine")
        self.assertEqual(alice.reconnects, 0)
        self.assertEqual(states.items, [ConnectionState.CONNECTED])

    def test_a_reload_that_removes_the_device_gives_the_id_up(self):
        lost = Collector()
        alice = self.client(token=TOKEN_A, on_id_lost=lost)
        alice.register("alice")
        alice.subscribe("carol")  # unlisted: anyone may
        self.write_auth_file(verifier_line("bob", TOKEN_B, "alice"))
        self.reload()
        self.assertTrue(wait_until(lambda: lost.items, 10))
        device, reason = lost.items[0]
        self.assertEqual(device, "alice")
        self.assertIsInstance(reason, AuthError)
        self.assertIs(alice.id_lost, reason)
        self.assertEqual(alice.last_bye.reason, protocol.BYE_NOT_AUTHORIZED)
        alice.ping()
        self.assertIsNone(alice.device_id)
        with self.assertRaises(NotRegistered):
            alice.send("x")
        # Neither AUTH again nor REGISTER (which an unlisted id would pass).
        self.assertEqual(self.count("AUTH as"), 0)
        self.assertEqual(self.count(authenticated("alice")), 1)
        self.assertFalse(alice.is_alive("alice"))
        self.assertEqual(len(lost.items), 1)
        carol = self.client()
        carol.register("carol")
        carol.send("c")
        self.assertEqual(alice.recv(5).data, b"c")


class AuthRefusalTest(AuthServerCase):
    def test_a_wrong_token_is_refused_once(self):
        c = self.client(token=TOKEN_B)
        with self.assertRaises(AuthError) as caught:
            c.register("alice")
        error = caught.exception
        self.assertIsInstance(error, NotAuthorized)
        self.assertIsInstance(error, RequestFailed)
        self.assertEqual((error.command, error.status),
                         (protocol.CMD_AUTH, protocol.STATUS_NOT_AUTHORIZED))
        self.assertEqual(self.count(auth_failed("alice")), 1)
        for _ in range(3):
            c.ping()  # time for a retry that must not come
        self.assertEqual(self.count(auth_failed("alice")), 1)
        self.assertIsNone(c.device_id)
        self.assertEqual(c.reconnects, 0)
        compat = stupidP2PClient("127.0.0.1", self.server.port, token=TOKEN_B)
        self.addCleanup(compat.deinitClient)
        self.assertTrue(compat.initClient())
        self.assertEqual(compat.registerDevice("alice"), 0)
        self.assertEqual(self.count(auth_failed("alice")), 2)

    def test_the_third_refusal_keeps_the_held_id(self):
        alice = self.client(token=TOKEN_A)
        alice.register("alice")
        for _ in range(protocol.AUTH_MAX_FAILURES):
            with self.assertRaises(AuthError):
                alice.register("bob")
        self.assertTrue(wait_until(lambda: alice.reconnects >= 1
                                   and alice.connected, 10))
        self.assertEqual(alice.last_bye.reason, protocol.BYE_NOT_AUTHORIZED)
        self.assertEqual(alice.device_id, "alice")
        self.assertIsNone(alice.id_lost)
        alice.send("x")
        self.assertEqual(self.count(authenticated("alice")), 2)
        self.assertEqual(self.count(auth_failed("bob")), 3)

    def test_status_5_is_not_authorized(self):
        eve = self.client()
        eve.register("eve")  # unlisted: REGISTER
        bob = self.client(token=TOKEN_B)
        bob.register("bob")
        with self.assertRaises(NotAuthorized):
            eve.subscribe("bob")
        with self.assertRaises(NotAuthorized):
            eve.send_to("bob", "x")
        self.assertFalse(eve.is_alive("bob"))
        with self.assertRaises(NotAuthorized):
            eve.register("alice")  # only AUTH may claim it
        self.assertEqual(eve.device_id, "eve")
        # A v1 session that does not subscribe to eve.
        old = self.client(version=1)
        old.register("old")
        with self.assertRaises(NotAuthorized):
            eve.send_to("old", "x")
        old.subscribe("eve")
        eve.send_to("old", "y")
        self.assertEqual(old.recv(5).data, b"y")

    def test_v1_session_with_a_token(self):
        c = self.client(token=TOKEN_A, version=1)
        with self.assertRaises(Unsupported):
            c.register("carol")
        self.assertFalse(c.is_alive("carol"))
        self.assertEqual(self.count("AUTH as"), 0)
        self.assertEqual(self.count(authenticated("carol")), 0)

    def test_a_restart_without_the_auth_file_gives_the_id_up(self):
        lost = Collector()
        alice = self.client(token=TOKEN_A, on_id_lost=lost)
        alice.register("alice")
        self.server.args = []
        self.server.restart()
        self.assertTrue(wait_until(lambda: lost.items, 10))
        self.assertIsInstance(lost.items[0][1], Unsupported)
        self.assertFalse(alice.is_alive("alice"))  # not REGISTERed instead
        self.assertIsNone(alice.device_id)


class NoAuthFileTest(LogCheckedCase, ServerCase):
    def test_register_with_a_token_is_unsupported(self):
        c = self.client(token=TOKEN_A)
        with self.assertRaises(Unsupported) as caught:
            c.register("alice")
        self.assertIn("no auth file", str(caught.exception))
        self.assertFalse(c.is_alive("alice"))  # no REGISTER instead
        self.assertIsNone(c.device_id)


class OriginalServerTest(LogCheckedCase):
    def test_register_with_a_token_sends_nothing(self):
        with FakeV1Server() as srv:
            c = Client("127.0.0.1", srv.port, token=TOKEN_A)
            self.addCleanup(c.close)
            self.assertEqual(c.protocol_version, 1)
            with self.assertRaises(Unsupported):
                c.register("alice")
            c.ping()
            self.assertNotIn(protocol.CMD_REGISTER, srv.commands)
            self.assertNotIn(protocol.CMD_AUTH, srv.commands)


# ---- a server that lies ----------------------------------------------------


def auth_script(bad_signature_on, seen, original_from=None):
    """A v2 server that knows alice's verifier (token A), with a wrong
    signature on the connections numbered in ``bad_signature_on``, and from
    connection ``original_from`` on an original one (HELLO and AUTH get no
    answer); CHECK_ALIVE "drop" hangs up.  ``seen`` gets (connection,
    command) for every request."""
    keys = AuthKeys.from_token(TOKEN_A)

    def script(sock, n):
        challenge = None
        original = original_from is not None and n >= original_from
        for payload in read_payloads(sock):
            req = codec.parse_request(payload)
            seen.append((n, req.command))
            if original and req.command in (protocol.CMD_HELLO,
                                            protocol.CMD_AUTH):
                continue
            if req.command == protocol.CMD_HELLO:
                reply = codec.encode_hello_reply(*GRANT)
            elif req.command == protocol.CMD_CHECK_ALIVE and req.id == b"drop":
                return
            elif req.command == protocol.CMD_AUTH and req.step == 1:
                challenge = (req.id, req.data, os.urandom(32))
                reply = codec.encode_auth_reply(1, challenge[2])
            elif req.command == protocol.CMD_AUTH:
                message = auth_message(*challenge)
                signature = server_signature(keys.server_key, message)
                if req.data != client_proof(keys, message):
                    reply = codec.encode_reply(protocol.CMD_AUTH, 5)
                else:
                    if n in bad_signature_on:
                        signature = bytes([signature[0] ^ 1]) + signature[1:]
                    reply = codec.encode_auth_reply(2, signature)
            else:
                reply = codec.encode_reply(req.command, protocol.STATUS_OK)
            sock.sendall(codec.frame(reply))
    return script


class LyingServerTest(LogCheckedCase):
    def start(self, bad_signature_on, **options):
        seen = []
        srv = ScriptedServer(auth_script(bad_signature_on, seen,
                                         options.pop("original_from", None)))
        self.addCleanup(srv.close)
        c = Client("127.0.0.1", srv.port, token=TOKEN_A, timeout=5,
                   backoff_max=0.3, **options)
        self.addCleanup(c.close)
        return srv, c, seen

    def test_an_original_server_after_a_reconnect_gets_no_register(self):
        lost = Collector()
        srv, c, seen = self.start((), original_from=1, on_id_lost=lost)
        c.register("alice")
        with self.assertRaises(ConnectionLostError):
            c.is_alive("drop")
        self.assertTrue(wait_until(lambda: lost.items, 10))
        self.assertEqual(c.protocol_version, 1)
        self.assertIsInstance(lost.items[0][1], Unsupported)
        self.assertIsNone(c.device_id)
        c.ping()
        later = [cmd for n, cmd in seen if n >= 1]
        self.assertNotIn(protocol.CMD_REGISTER, later)
        self.assertNotIn(protocol.CMD_AUTH, later)

    def test_a_wrong_signature_is_a_protocol_error(self):
        srv, c, seen = self.start({0})
        with self.assertRaises(ProtocolError) as caught:
            c.register("alice")
        self.assertIn("signature", str(caught.exception))
        self.assertTrue(wait_until(lambda: c.reconnects >= 1, 10))
        c.ping()
        self.assertIsNone(c.device_id)  # not claimed again
        self.assertEqual([cmd for n, cmd in seen if n >= 1].count(
            protocol.CMD_AUTH), 0)

    def test_a_wrong_signature_after_a_reconnect_is_tried_again(self):
        srv, c, seen = self.start({1})
        c.register("alice")
        with self.assertRaises(ConnectionLostError):
            c.is_alive("drop")
        self.assertTrue(wait_until(lambda: c.reconnects >= 1, 10))
        self.assertEqual(srv.connections, 3)
        for n in (1, 2):
            self.assertEqual(seen.count((n, protocol.CMD_AUTH)), 2)
        self.assertEqual(c.device_id, "alice")
        self.assertIsNone(c.id_lost)
        c.send("x")



# ---- the chat ---------------------------------------------------------------


class ChatTokenTest(AuthServerCase):
    def token_file(self, token, mode=0o600):
        path = os.path.join(self.dir.name, "token-%d" % len(os.listdir(
            self.dir.name)))
        with open(path, "w") as f:
            f.write(token + "\n")
        os.chmod(path, mode)
        return path

    def chat(self, *args):
        chat = Chat(self.server.port, *args)
        self.addCleanup(chat.finish)
        return chat

    def test_chat_with_a_token_file(self):
        bob = self.client(token=TOKEN_B)
        bob.register("bob")
        bob.subscribe("alice")
        chat = self.chat("alice", "bob", "--token-file",
                         self.token_file(TOKEN_A, 0o644))
        seen = chat.wait_err("chatting as")
        self.assertTrue(any("warning: token file" in line
                            and "readable by others" in line for line in seen))
        bob.send("hi alice")
        self.assertEqual(chat.line(chat.out), "recv data: hi alice")
        chat.send_line("hello bob")
        msg = bob.recv(10)
        self.assertEqual((msg.sender, msg.data), ("alice", b"hello bob"))
        chat.send_line("quit")
        self.assertEqual(chat.finish(), 0)
        self.assertEqual(self.count(authenticated("alice")), 1)
        self.assertFalse(any(TOKEN_A in line for line in seen))

    def test_a_wrong_token_exits_1(self):
        chat = self.chat("alice", "bob", "--token-file",
                         self.token_file(TOKEN_B))
        seen = chat.wait_err("p2pchat: ")
        self.assertIn("refused", seen[-1])
        self.assertEqual(chat.finish(), 1)
        self.assertEqual(self.count(auth_failed("alice")), 1)

    def test_token_files_that_cannot_be_used_exit_2(self):
        empty = os.path.join(self.dir.name, "empty")
        open(empty, "w").close()
        for path in (os.path.join(self.dir.name, "missing"), empty):
            chat = self.chat("alice", "bob", "--token-file", path)
            seen = chat.wait_err("python3 -m stupidp2p chat: error: ")
            self.assertIn("token file %s" % path, seen[-1])
            self.assertEqual(chat.finish(), 2)
        self.assertEqual(self.count("AUTH as"), 0)


if __name__ == "__main__":
    unittest.main()

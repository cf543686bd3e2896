"""p2pServer --log-format json: every line of the server's log is one JSON
object a shipper can read (checked with the standard json module), events
carry their fields (event, conn, peer, id, reason), and a device id made of
quotes, newlines, control bytes and invalid UTF-8 can forge neither a line
nor a field, in either format.
"""

import json
import socket
import struct
import unittest

from p2p_support import ServerProcess, wait_until

# An id that tries to end the line, open a new object and smuggle bytes.
EVIL_ID = b'x"}\n{"level":"error","event":"forged"}\x00\xff\\'


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def read_reply(sock: socket.socket) -> bytes:
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            raise AssertionError("closed")
        head += chunk
    (n,) = struct.unpack(">I", head)
    body = b""
    while len(body) < n:
        body += sock.recv(n - len(body))
    return body


class JsonLogTest(unittest.TestCase):
    def test_every_line_is_json_with_fields(self):
        with ServerProcess("--log-format", "json") as server:
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(frame(b"\x01" + EVIL_ID))
            self.assertEqual(read_reply(s), b"\x81\x01")
            s.close()
            wait_until(lambda: '"event":"closed"' in server.output())
            log = server.output()
        lines = [l for l in log.split("\n") if l]
        self.assertGreater(len(lines), 3)
        events = [json.loads(l) for l in lines]  # every line parses
        for e in events:
            self.assertIn(e["level"], ("error", "warn", "info", "debug"))
            self.assertRegex(e["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn("msg", e)
            self.assertNotEqual(e["event"], "forged")
        by_event = {e["event"]: e for e in events}
        reg = by_event["registered"]
        self.assertEqual(reg["conn"], by_event["connected"]["conn"])
        self.assertRegex(reg["peer"], r"^127\.0\.0\.1:\d+$")
        # The id as log_escape writes it: printable ASCII, the rest \xNN.
        self.assertEqual(
            reg["id"],
            'x\\x22}\\x0a{\\x22level\\x22:\\x22error\\x22,\\x22event\\x22:'
            '\\x22forged\\x22}\\x00\\xff\\x5c')
        self.assertEqual(by_event["closed"]["reason"], "peer_closed")
        self.assertTrue(any("listening on" in e["msg"] for e in events if e["event"] == "log"))

    def test_text_lines_cannot_be_forged_either(self):
        with ServerProcess() as server:
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(frame(b"\x01" + EVIL_ID))
            self.assertEqual(read_reply(s), b"\x81\x01")
            s.close()
            wait_until(lambda: "closed by peer" in server.output())
            log = server.output()
        for line in log.split("\n"):
            if line:
                # Every line starts with its own timestamp and level.
                self.assertRegex(line, r"^\d{4}-\d\d-\d\dT[\d:.]+Z (error|warn |info |debug) ")
        self.assertNotIn("forged\"}", log.replace("\\x22", ""))


if __name__ == "__main__":
    unittest.main()

"""Direct paths on the wire, byte for byte: the DIRECT_* requests and
events, the link frames and the proof (stupidp2p/codec.py,
stupidp2p/direct_proof.py), as test/unit/test_direct.c checks the C codec.

* ExampleTest: the worked example of man/stupidp2p.7 (DIRECT PATHS,
  Example), read from the page itself between its DIRECT-EXAMPLE markers:
  the frames the Python codec and proof make from the example's values are
  exactly the page's bytes; each DIRECT_* payload parses back to its fields
  and every prefix of it is refused; the proof's two macs.
* ProofTest: the proof binds role, attempt, ids (length-prefixed), nonces
  and secret.
* LayoutTest: a decline, RESULT, MARK kinds, ids, candidates (counts,
  kinds, ports, address lengths), the OFFER reply, the link frames.
"""

import os
import re
import unittest
from typing import List

from p2p_support import REPO
from stupidp2p import codec
from stupidp2p import protocol as P
from stupidp2p.codec import (BadRequest, Candidate, Direct, Link, OfferGrant,
                             Reply, frame, parse_direct, parse_link,
                             parse_message)
from stupidp2p.direct_proof import (direct_mac, direct_mac_valid,
                                    direct_message)
from stupidp2p.errors import ProtocolError

MAN_PAGE = os.path.join(REPO, "man", "stupidp2p.7")

# The example's values (stupidp2p(7), DIRECT PATHS, Example).
SECRET = bytes(range(0x00, 0x20))
NONCE_A = bytes(range(0xa0, 0xc0))
NONCE_B = bytes(range(0xc0, 0xe0))
LAN_A = Candidate(P.CANDIDATE_LAN, 50001, bytes((192, 168, 1, 10)))
LAN_B = Candidate(P.CANDIDATE_LAN, 50002, bytes((10, 0, 0, 5)))
REFL_A = Candidate(P.CANDIDATE_REFLEXIVE, 40001, bytes((198, 51, 100, 7)))
REFL_B = Candidate(P.CANDIDATE_REFLEXIVE, 40002, bytes((192, 0, 2, 9)))
MAC_OFFERER = bytes.fromhex(
    "594c5a28b96dbc975710072cc03834ab5d629156d5c0140fbdb8bda860fa437b")
MAC_TARGET = bytes.fromhex(
    "aeac9edaa2d2e13749a30667ea1e74887032ff5503814d99b1b6ec5086810942")


def example_payloads() -> List[bytes]:
    """The example's payloads, in the page's order, made by the codec."""
    mac_a = direct_mac(SECRET, P.ROLE_OFFERER, 7, b"alice", b"bob", NONCE_A,
                       NONCE_B)
    mac_b = direct_mac(SECRET, P.ROLE_TARGET, 7, b"alice", b"bob", NONCE_A,
                       NONCE_B)
    return [
        codec.encode_direct_offer(b"bob", NONCE_A, 40001, [LAN_A]),
        codec.encode_direct_offer_event(b"alice", 7, SECRET, NONCE_A, 40001,
                                        [REFL_A, LAN_A]),
        codec.encode_direct_offer_reply(7, SECRET),
        codec.encode_direct_answer(P.CMD_DIRECT_ANSWER, b"alice", 7,
                                   P.DIRECT_ACCEPT, NONCE_B, 40002, [LAN_B]),
        codec.encode_direct_answer(P.EVT_DIRECT_ANSWER, b"bob", 7,
                                   P.DIRECT_ACCEPT, NONCE_B, 40002,
                                   [REFL_B, LAN_B]),
        codec.encode_reply(P.CMD_DIRECT_ANSWER, P.STATUS_OK),
        codec.encode_direct_sync(P.CMD_DIRECT_SYNC, b"bob", 7),
        codec.encode_direct_sync(P.EVT_DIRECT_SYNC, b"alice", 7),
        codec.encode_reply(P.CMD_DIRECT_SYNC, P.STATUS_OK),
        codec.encode_link_proof(P.ROLE_OFFERER, 7, mac_a),
        codec.encode_link_proof(P.ROLE_TARGET, 7, mac_b),
        codec.encode_link_use(),
        codec.encode_direct_mark(P.CMD_DIRECT_MARK, b"bob", 7,
                                 P.MARK_SWITCH, 1),
        codec.encode_direct_mark(P.EVT_DIRECT_MARK, b"alice", 7,
                                 P.MARK_SWITCH, 1),
        codec.encode_reply(P.CMD_DIRECT_MARK, P.STATUS_OK),
        codec.encode_link_data_head(1) + b"hi",
        codec.encode_link_ack(1),
    ]


def man_example_bytes() -> bytes:
    """Every two-hex-digit word between the page's DIRECT-EXAMPLE markers
    (the comments beside the bytes hold none, as the page promises)."""
    with open(MAN_PAGE, encoding="utf-8") as f:
        text = f.read()
    block = text.split("DIRECT-EXAMPLE-BEGIN", 1)[1]
    block = block.split("DIRECT-EXAMPLE-END", 1)[0]
    out = bytearray()
    for line in block.splitlines():
        if line.startswith(".") or line.startswith("#"):
            continue
        out += bytes(int(w, 16) for w in re.findall(r"\b[0-9a-f]{2}\b", line))
    return bytes(out)


class ExampleTest(unittest.TestCase):
    def test_page_bytes_are_the_codecs(self):
        made = b"".join(frame(p) for p in example_payloads())
        self.assertEqual(man_example_bytes(), made)

    def test_proof_values(self):
        self.assertEqual(direct_mac(SECRET, P.ROLE_OFFERER, 7, b"alice",
                                    b"bob", NONCE_A, NONCE_B), MAC_OFFERER)
        self.assertEqual(direct_mac(SECRET, P.ROLE_TARGET, 7, b"alice",
                                    b"bob", NONCE_A, NONCE_B), MAC_TARGET)

    def test_parse_example_and_prefixes(self):
        payloads = example_payloads()
        direct = 0
        for p in payloads:
            cmd = p[0]
            request = P.CMD_DIRECT_OFFER <= cmd <= P.CMD_DIRECT_RESULT
            event = P.EVT_DIRECT_OFFER <= cmd <= P.EVT_DIRECT_MARK
            if not request and not event:
                continue
            direct += 1
            self.assertIsInstance(parse_direct(p), Direct)
            for cut in range(1, len(p)):
                with self.assertRaises(ProtocolError if event else BadRequest,
                                       msg="0x%02x cut at %d" % (cmd, cut)):
                    parse_direct(p[:cut])
                if event:
                    with self.assertRaises(ProtocolError):
                        parse_message(p[:cut])
        self.assertEqual(direct, 8)
        offer = parse_message(payloads[1])
        self.assertEqual(offer, Direct(
            P.EVT_DIRECT_OFFER, b"alice", 7, secret=SECRET, nonce=NONCE_A,
            local_port=40001, candidates=(REFL_A, LAN_A)))
        self.assertEqual(parse_direct(payloads[0]), Direct(
            P.CMD_DIRECT_OFFER, b"bob", nonce=NONCE_A, local_port=40001,
            candidates=(LAN_A,)))
        answer = parse_message(payloads[4])
        self.assertEqual((answer.accept, answer.nonce, answer.local_port,
                          answer.candidates),
                         (P.DIRECT_ACCEPT, NONCE_B, 40002, (REFL_B, LAN_B)))
        self.assertEqual(parse_message(payloads[7]),
                         Direct(P.EVT_DIRECT_SYNC, b"alice", 7))
        mark = parse_message(payloads[13])
        self.assertEqual((mark.command, mark.id, mark.attempt, mark.mark,
                          mark.seq),
                         (P.EVT_DIRECT_MARK, b"alice", 7, P.MARK_SWITCH, 1))
        # The OFFER reply: exactly 38 bytes; a refusal is two.
        self.assertEqual(parse_message(payloads[2]),
                         Reply(P.CMD_DIRECT_OFFER, P.STATUS_OK,
                               direct=OfferGrant(7, SECRET)))
        for bad in (payloads[2][:-1], payloads[2] + b"\x00"):
            with self.assertRaises(ProtocolError):
                parse_message(bad)
        self.assertEqual(parse_message(b"\x90\x05"),
                         Reply(P.CMD_DIRECT_OFFER, P.STATUS_NOT_AUTHORIZED))
        # The link frames.
        self.assertEqual(parse_link(payloads[9]),
                         Link(P.LINK_PROOF, role=1, attempt=7,
                              mac=MAC_OFFERER))
        self.assertEqual(parse_link(payloads[15]),
                         Link(P.LINK_DATA, seq=1, data=b"hi"))
        self.assertEqual(parse_link(payloads[16]), Link(P.LINK_ACK, seq=1))


class ProofTest(unittest.TestCase):
    def valid(self, role=P.ROLE_OFFERER, attempt=7, offerer=b"alice",
              target=b"bob", on=NONCE_A, tn=NONCE_B, secret=SECRET,
              mac=MAC_OFFERER):
        return direct_mac_valid(secret, role, attempt, offerer, target, on,
                                tn, mac)

    def test_binds_everything(self):
        self.assertTrue(self.valid())
        # Reflected: the target cannot send the offerer's proof back.
        self.assertFalse(self.valid(role=P.ROLE_TARGET))
        self.assertFalse(self.valid(attempt=8))
        self.assertFalse(self.valid(offerer=b"bob", target=b"alice"))
        self.assertFalse(self.valid(on=NONCE_B, tn=NONCE_A))
        # ids are length-prefixed: "alic"+"ebob" is not "alice"+"bob".
        self.assertFalse(self.valid(offerer=b"alic", target=b"ebob"))
        self.assertFalse(self.valid(secret=SECRET[:31] + b"\x1e"))
        self.assertFalse(self.valid(mac=MAC_OFFERER[:31] + b"\x00"))

    def test_message_layout(self):
        m = direct_message(2, 0x01020304, b"a", b"bc", NONCE_A, NONCE_B)
        self.assertEqual(m, b"stupidP2P DIRECT\x02\x01\x02\x03\x04\x01a\x02bc"
                         + NONCE_A + NONCE_B)
        for bad in ((b"", b"b", NONCE_A, NONCE_B),
                    (b"a", b"b" * 256, NONCE_A, NONCE_B),
                    (b"a", b"b", NONCE_A[:31], NONCE_B)):
            with self.assertRaises(ValueError):
                direct_message(1, 1, *bad)
        with self.assertRaises(ValueError):
            direct_mac(SECRET[:31], 1, 1, b"a", b"b", NONCE_A, NONCE_B)


class LayoutTest(unittest.TestCase):
    def test_decline(self):
        out = codec.encode_direct_answer(P.CMD_DIRECT_ANSWER, b"alice",
                                         0x01020304, P.DIRECT_DECLINE)
        self.assertEqual(out, b"\x11\x05alice\x01\x02\x03\x04\x00")
        d = parse_direct(out)
        self.assertEqual((d.accept, d.nonce), (P.DIRECT_DECLINE, b""))
        with self.assertRaises(BadRequest):
            parse_direct(out[:-1] + b"\x02")  # neither accept nor decline
        with self.assertRaises(BadRequest):
            parse_direct(out + b"\x00")  # a byte too many
        event = codec.encode_direct_answer(P.EVT_DIRECT_ANSWER, b"bob", 3,
                                           P.DIRECT_DECLINE)
        self.assertEqual(parse_message(event),
                         Direct(P.EVT_DIRECT_ANSWER, b"bob", 3))

    def test_result_and_mark(self):
        out = codec.encode_direct_result(b"bob", 7, P.DIRECT_OUTCOME_DIRECT,
                                         81)
        self.assertEqual(out, b"\x14\x03bob\x00\x00\x00\x07\x01\x00\x00\x00\x51")
        d = parse_direct(out)
        self.assertEqual((d.outcome, d.elapsed_ms), (1, 81))
        with self.assertRaises(BadRequest):
            parse_direct(out[:9] + b"\x03" + out[10:])
        out = codec.encode_direct_mark(P.CMD_DIRECT_MARK, b"bob", 7,
                                       P.MARK_FALLBACK, 5)
        self.assertEqual(out, b"\x13\x03bob\x00\x00\x00\x07\x02"
                         + (5).to_bytes(8, "big"))
        self.assertEqual(parse_direct(out).seq, 5)
        with self.assertRaises(BadRequest):
            parse_direct(out[:9] + b"\x00" + out[10:])
        event = codec.encode_direct_mark(P.EVT_DIRECT_MARK, b"bob", 7, 3, 5)
        with self.assertRaises(ProtocolError):
            parse_message(event)  # a kind that is neither
        with self.assertRaises(BadRequest):
            parse_direct(b"\x12\x00\x00\x00\x00\x07")  # id_len 0
        with self.assertRaises(BadRequest):
            parse_direct(b"\x15\x01a")  # not a DIRECT_* command

    def test_candidates(self):
        nonce = bytes(32)
        c = [Candidate(P.CANDIDATE_LAN, 1000 + i, bytes((10, 0, 0, i)))
             for i in range(9)]
        d = parse_direct(codec.encode_direct_offer(b"bob", nonce, 1, c[:8]))
        self.assertEqual(d.candidates, tuple(c[:8]))
        with self.assertRaises(ValueError):
            codec.encode_direct_offer(b"bob", nonce, 1, c)  # 9 offered
        # Made by hand: a request of 9, refused.
        nine = (codec.encode_direct_offer(b"bob", nonce, 1, c[:8])[:-8 * 8]
                .replace(b"\x00\x01\x08", b"\x00\x01\x09"))
        self.assertEqual(nine[-3:], b"\x00\x01\x09")
        with self.assertRaises(BadRequest):
            parse_direct(nine + b"".join(
                bytes((x.kind,)) + x.port.to_bytes(2, "big") + b"\x04"
                + x.addr for x in c))
        event = codec.encode_direct_offer_event(b"bob", 1, nonce, nonce, 1, c)
        self.assertEqual(len(parse_message(event).candidates), 9)
        refl = Candidate(P.CANDIDATE_REFLEXIVE, 9, bytes(4))
        with self.assertRaises(BadRequest):  # a client offers LAN ones only
            parse_direct(codec.encode_direct_offer(b"bob", nonce, 1, [refl]))
        v6 = Candidate(P.CANDIDATE_LAN, 9, bytes(range(16)))
        out = codec.encode_direct_offer(b"bob", nonce, 1, [v6])
        self.assertEqual(parse_direct(out).candidates, (v6,))
        with self.assertRaises(BadRequest):  # addr_len 6
            parse_direct(out[:-17] + b"\x06" + out[-16:])
        zero = out[:-19] + b"\x00\x00" + out[-17:]  # port 0
        with self.assertRaises(BadRequest):
            parse_direct(zero)
        with self.assertRaises(ValueError):
            codec.encode_direct_offer(b"bob", nonce, 1,
                                      [Candidate(P.CANDIDATE_LAN, 0, bytes(4))])

    def test_link_frames(self):
        mac = bytes(range(0x40, 0x60))
        out = codec.encode_link_proof(P.ROLE_TARGET, 9, mac)
        self.assertEqual(len(out), codec.LINK_PROOF_SIZE)
        self.assertEqual(parse_link(out), Link(P.LINK_PROOF, 2, 9, mac))
        for cut in range(1, len(out)):
            with self.assertRaises(ProtocolError):
                parse_link(out[:cut])
        with self.assertRaises(ProtocolError):
            parse_link(out[:1] + b"\x03" + out[2:])  # role 3
        head = codec.encode_link_data_head(0x0102030405060708)
        self.assertEqual(head, bytes((3, 1, 2, 3, 4, 5, 6, 7, 8)))
        self.assertEqual(parse_link(head),
                         Link(P.LINK_DATA, seq=0x0102030405060708))
        with self.assertRaises(ProtocolError):
            parse_link(head[:-1])
        ack = codec.encode_link_ack(3)
        self.assertEqual(parse_link(ack), Link(P.LINK_ACK, seq=3))
        with self.assertRaises(ProtocolError):
            parse_link(ack[:-1])
        self.assertEqual(codec.encode_link_ping(), b"\x05")
        self.assertEqual(codec.encode_link_use(), b"\x02")
        self.assertEqual(parse_link(b"\x05\x01"), Link(P.LINK_PING))
        self.assertEqual(parse_link(b"\x02\x01"), Link(P.LINK_USE))
        self.assertEqual(parse_link(b"\x7e\x01\x02"), Link(0x7e))  # ignored
        with self.assertRaises(ProtocolError):
            parse_link(b"")


if __name__ == "__main__":
    unittest.main()

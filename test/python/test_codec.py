"""The wire codec, stupidp2p/codec.py, byte for byte.

* FrameTest: the frame header and the stream decoder, fed whole, split at
  every offset and byte by byte.
* LayoutTest: every encoder against bytes written out by hand from
  stupidp2p(7), as test/unit/test_codec.c checks the C codec; every parser
  on whole payloads, on every prefix, and on what each encoder writes.
* ManPageExamplesTest: the frames of the EXAMPLES section of
  man/stupidp2p.7, read from the page itself: each one parses to what the
  page says it is and encodes back to the same bytes; each direction's
  stream is decoded whole, cut at every offset and byte by byte; every
  prefix of each payload is classified as the specification says.
* ManPageGapExampleTest: the same for the example of the GAP section (a
  subscriber with the DROP flag told what it missed from alice).
"""

import os
import re
import unittest
from typing import List, NamedTuple

from p2p_support import REPO
from stupidp2p import codec
from stupidp2p import protocol as P
from stupidp2p.codec import (AuthAnswer, BadRequest, ByeEvent, Delivery, FrameDecoder,
                             GapEvent, HelloGrant, PresenceEvent, Reply,
                             Request, UnknownFrame, frame, parse_message,
                             parse_request)
from stupidp2p.errors import ProtocolError

MAN_PAGE = os.path.join(REPO, "man", "stupidp2p.7")


def encode(command, body=b""):
    return frame(bytes((command,)), body)


class FrameTest(unittest.TestCase):
    def test_encode_layout(self):
        self.assertEqual(encode(0x01, b"ab"), b"\x00\x00\x00\x03\x01ab")
        self.assertEqual(encode(0x07), b"\x00\x00\x00\x01\x07")
        big = encode(0x03, b"x" * 65535)
        self.assertEqual(big[:5], b"\x00\x01\x00\x00\x03")
        self.assertEqual(len(big), 4 + 65536)

    def test_whole_and_many_per_feed(self):
        stream = encode(1, b"a") + encode(2, b"bc") + encode(3, b"")
        d = FrameDecoder(100)
        self.assertEqual(d.feed(stream), [b"\x01a", b"\x02bc", b"\x03"])
        self.assertEqual(d.buffered, 0)

    def test_split_at_every_offset(self):
        frames = [encode(0x81, b"\x01"), encode(0x03, bytes(range(256)) * 3),
                  encode(0x87, b"\x01")]
        stream = b"".join(frames)
        want = [f[4:] for f in frames]
        for cut in range(len(stream) + 1):
            d = FrameDecoder(1000)
            got = d.feed(stream[:cut]) + d.feed(stream[cut:])
            self.assertEqual(got, want, "cut at %d" % cut)

    def test_byte_by_byte(self):
        stream = encode(0x09, b"\x01s" + b"data" * 100) + encode(0x86, b"\x00")
        d = FrameDecoder(1000)
        got = []
        for i in range(len(stream)):
            got += d.feed(stream[i:i + 1])
        self.assertEqual(got, [stream[4:4 + 403], b"\x86\x00"])

    def test_empty_frames_are_skipped(self):
        d = FrameDecoder(10)
        self.assertEqual(d.feed(b"\x00\x00\x00\x00" + encode(7)), [b"\x07"])

    def test_maximum_and_oversize(self):
        d = FrameDecoder(5)
        self.assertEqual(d.feed(b"\x00\x00\x00\x05" + b"12345"), [b"12345"])
        with self.assertRaises(ProtocolError):
            FrameDecoder(5).feed(b"\x00\x00\x00\x06")



class LayoutTest(unittest.TestCase):
    def test_encode_requests(self):
        self.assertEqual(codec.encode_hello(2, P.HELLO_FLAG_QUIET),
                         b"\x08\x02\x01")
        self.assertEqual(codec.encode_id_command(P.CMD_REGISTER, b"bob"),
                         b"\x01bob")
        self.assertEqual(codec.encode_id_command(P.CMD_CHECK_ALIVE, b"caro"),
                         b"\x06caro")
        self.assertEqual(codec.encode_id_command(P.CMD_HEARTBEAT), b"\x07")
        self.assertEqual(codec.encode_id_command(P.CMD_UNREGISTER), b"\x04")
        self.assertEqual(codec.encode_send_to_head(b"alice"),
                         b"\x0a\x05alice")
        self.assertEqual(codec.encode_send_head(), b"\x03")
        longest = codec.encode_send_to_head(b"\xee" * P.ID_MAX)
        self.assertEqual(len(longest), codec.ID_HEAD_MAX)
        self.assertEqual(longest[1], 0xff)
        for bad in (b"", b"x" * (P.ID_MAX + 1)):
            with self.assertRaises(ValueError):
                codec.encode_send_to_head(bad)

    def test_encode_server_frames(self):
        self.assertEqual(codec.encode_reply(P.CMD_REGISTER, P.STATUS_OK),
                         b"\x81\x01")
        self.assertEqual(codec.encode_reply(P.CMD_SEND_TO, P.STATUS_OFFLINE),
                         b"\x8a\x03")
        self.assertEqual(codec.encode_hello_reply(2, 65536, 300),
                         bytes.fromhex("88 01 02 00 01 00 00 00 00 01 2c"))
        self.assertEqual(codec.encode_deliver_head(b"alice"),
                         b"\x09\x05alice")
        self.assertEqual(codec.encode_presence(P.PRESENCE_ONLINE, b"alice"),
                         b"\x0b\x01\x05alice")
        self.assertEqual(codec.encode_bye(4, b"server shutting down"),
                         b"\x0e\x04server shutting down")
        cut = codec.encode_bye(3, b"t" * 200)
        self.assertEqual(len(cut), codec.BYE_MAX)
        self.assertEqual(parse_message(cut), ByeEvent(3, b"t" * 127))
        with self.assertRaises(ValueError):
            codec.encode_presence(P.PRESENCE_ONLINE, b"")
        with self.assertRaises(ValueError):
            codec.encode_deliver_head(b"x" * (P.ID_MAX + 1))

    def test_frame_joins_parts(self):
        self.assertEqual(frame(b"\x0a\x01a", memoryview(b"data")),
                         b"\x00\x00\x00\x07\x0a\x01adata")
        self.assertEqual(frame(b""), b"\x00\x00\x00\x00")

    def test_parse_id_requests(self):
        for cmd in (P.CMD_REGISTER, P.CMD_SUBSCRIBE, P.CMD_UNSUBSCRIBE,
                    P.CMD_CHECK_ALIVE):
            with self.assertRaises(BadRequest) as caught:
                parse_request(bytes((cmd,)))  # empty id
            self.assertEqual(caught.exception.command, cmd)
            for n in (1, 128, P.ID_MAX):
                self.assertEqual(parse_request(bytes((cmd,)) + b"x" * n),
                                 Request(cmd, id=b"x" * n))
            with self.assertRaises(BadRequest):
                parse_request(bytes((cmd,)) + b"x" * (P.ID_MAX + 1))

    def test_parse_send_hello_and_the_rest(self):
        self.assertEqual(parse_request(b"\x03hi"), Request(3, data=b"hi"))
        self.assertEqual(parse_request(b"\x03"), Request(3))
        self.assertEqual(parse_request(b"\x08\x02\x01"),
                         Request(8, version=2, flags=1))
        for bad in (b"\x08", b"\x08\x02", b"\x08\x02\x00\x00"):
            with self.assertRaises(BadRequest):
                parse_request(bad)
        for simple in (P.CMD_HEARTBEAT, P.CMD_UNREGISTER, 0x55, 0x83):
            self.assertEqual(parse_request(bytes((simple,))),
                             Request(simple))
        with self.assertRaises(ValueError):
            parse_request(b"")

    def test_parse_send_to(self):
        st = b"\x0a\x05aliceyo"
        self.assertEqual(parse_request(st),
                         Request(P.CMD_SEND_TO, id=b"alice", data=b"yo"))
        # Complete from the end of the id on (empty data is allowed).
        for n in range(1, len(st)):
            if n >= 7:
                self.assertEqual(parse_request(st[:n]).data, st[7:n])
            else:
                with self.assertRaises(BadRequest):
                    parse_request(st[:n])
        with self.assertRaises(BadRequest):
            parse_request(b"\x0a\x00y")

    def test_parse_replies(self):
        self.assertEqual(parse_message(b"\x8a\x01"), Reply(P.CMD_SEND_TO, 1))
        with self.assertRaises(ProtocolError):
            parse_message(b"\x8a")
        grant = codec.encode_hello_reply(2, 65536, 300)
        self.assertEqual(parse_message(grant),
                         Reply(P.CMD_HELLO, 1, HelloGrant(2, 65536, 300)))
        # A successful HELLO reply without all of its grant is malformed.
        for n in range(2, len(grant)):
            with self.assertRaises(ProtocolError):
                parse_message(grant[:n])
        self.assertEqual(parse_message(b"\x88\x04"), Reply(P.CMD_HELLO, 4))
        # A later version may append fields; they are ignored.
        self.assertEqual(parse_message(grant + b"\xff").grant,
                         HelloGrant(2, 65536, 300))

    def test_parse_events(self):
        self.assertEqual(parse_message(b"\x03hi"), Delivery(None, b"hi"))
        self.assertEqual(parse_message(b"\x03"), Delivery(None, b""))
        self.assertEqual(parse_message(b"\x10\x01"), UnknownFrame(0x10))
        for malformed in (b"", b"\x09", b"\x09\x00", b"\x09\x03ab",
                          b"\x0b\x01", b"\x0b\x01\x00",
                          b"\x0b\x01\x02a", b"\x0e", b"\x0f",
                          b"\x0f\x01", b"\x0f\x00" + bytes(11),
                          b"\x0f\x03pub" + bytes(11), b"\x0f\x05pub"):
            with self.assertRaises(ProtocolError, msg=repr(malformed)):
                parse_message(malformed)
        self.assertEqual(parse_message(b"\x0e\x04"), ByeEvent(4, b""))

    def test_gap_layout(self):
        # stupidp2p(7), GAP: [0f][id_len][id][frames u32][bytes u64].
        self.assertEqual(codec.encode_gap(b"alice", 3, 300), bytes.fromhex(
            "0f 05 61 6c 69 63 65 00 00 00 03 00 00 00 00 00 00 01 2c"))
        others = codec.encode_gap(None, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
        self.assertEqual(others, b"\x0f\x00" + b"\xff" * 12)
        self.assertEqual(len(others), codec.GAP_FIXED)
        self.assertEqual(codec.encode_gap(b"", 1, 2), codec.encode_gap(None, 1, 2))
        self.assertEqual(parse_message(others),
                         GapEvent(None, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF))
        longest = codec.encode_gap(b"\xee" * P.ID_MAX, 1, 1)
        self.assertEqual(len(longest), codec.GAP_MAX)
        self.assertEqual(parse_message(longest).publisher, b"\xee" * P.ID_MAX)
        # Bytes after the counts are what a later version may add: ignored.
        self.assertEqual(parse_message(codec.encode_gap(b"a", 1, 2) + b"\x01\x02"),
                         GapEvent(b"a", 1, 2))
        # Every prefix is too short for its id and counts.
        whole = codec.encode_gap(b"alice", 3, 300)
        for n in range(1, len(whole)):
            with self.assertRaises(ProtocolError, msg=n):
                parse_message(whole[:n])
        for bad in ((b"x" * (P.ID_MAX + 1), 1, 1), (b"a", -1, 0),
                    (b"a", 1 << 32, 0), (b"a", 0, 1 << 64)):
            with self.assertRaises(ValueError, msg=repr(bad[1:])):
                codec.encode_gap(*bad)

    def test_round_trips(self):
        device = bytes((i * 7 + 1) & 0xff for i in range(P.ID_MAX))
        for n in range(1, P.ID_MAX + 1):
            d = device[:n]
            self.assertEqual(
                parse_message(codec.encode_deliver_head(d) + b"data"),
                Delivery(d, b"data"))
            self.assertEqual(
                parse_message(codec.encode_presence(P.PRESENCE_ONLINE, d)),
                PresenceEvent(P.PRESENCE_ONLINE, d))
            self.assertEqual(parse_request(codec.encode_send_to_head(d)),
                             Request(P.CMD_SEND_TO, id=d))
            self.assertEqual(
                parse_request(codec.encode_id_command(P.CMD_REGISTER, d)),
                Request(P.CMD_REGISTER, id=d))
            self.assertEqual(parse_message(codec.encode_gap(d, n, n * 7)),
                             GapEvent(d, n, n * 7))


# ---- the EXAMPLES section of stupidp2p(7) ---------------------------------


class Example(NamedTuple):
    who: str            # the device whose connection carries the frame
    direction: str      # "C": client to server; "S": server to client
    raw: bytes          # the whole frame, header included


# A frame's first line: who (in EXAMPLES; absent in a section's own
# example, which shows one connection), C or S, then hex bytes.
_FRAME_LINE = re.compile(r"^(?:(\w+)\s+)?([CS])\s+(.*)$")
_HEX_BYTE = re.compile(r"^[0-9a-f]{2}$")


def _complete(raw: bytearray) -> bool:
    return len(raw) >= 4 and len(raw) == 4 + int.from_bytes(raw[:4], "big")


def man_section(path: str, heading: str) -> str:
    """The text of the section (``.Sh``) or subsection (``.Ss``) whose
    heading line is ``heading``, up to the next one of the same level or
    above."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    body = text.split("\n%s\n" % heading, 1)[1]
    ends = ("\n.Sh ",) if heading.startswith(".Sh") else ("\n.Sh ", "\n.Ss ")
    for end in ends:
        body = body.split(end, 1)[0]
    return body


def example_frames(section: str) -> List[Example]:
    """The frames of the literal displays of a man page section, in the
    page's order.

    A frame is a line ``[WHO] C|S`` followed by hex bytes, continued on the
    next lines until it holds as many bytes as its header says; on each
    line, the hex bytes end at the first word that is not one, and the
    rest of the line is commentary (so is what follows a complete frame).
    """
    frames: List[Example] = []
    who = direction = ""
    raw = bytearray()
    literal = False
    for line in section.splitlines():
        if line.startswith(".Bd -literal"):
            literal = True
            continue
        if line.startswith(".Ed"):
            if raw:
                raise ValueError("frame %s left incomplete" % raw.hex(" "))
            literal = False
            continue
        if not literal:
            continue
        m = _FRAME_LINE.match(line)
        if m:
            if raw:
                raise ValueError("frame %s left incomplete" % raw.hex(" "))
            who, direction, rest = m.groups()
            who = who or ""
        elif raw:
            rest = line  # the frame goes on
        else:
            continue  # commentary
        for token in rest.split():
            if not _HEX_BYTE.match(token):
                break  # commentary; the frame may go on on the next line
            raw.append(int(token, 16))
            if _complete(raw):
                frames.append(Example(who, direction, bytes(raw)))
                raw = bytearray()
                break
    return frames


GRANT = HelloGrant(2, 65536, 300)

# What the page says each frame is, in its order.
MEANINGS = [
    ("bob", "C", Request(P.CMD_HELLO, version=2, flags=0)),
    ("bob", "S", Reply(P.CMD_HELLO, P.STATUS_OK, GRANT)),
    ("bob", "C", Request(P.CMD_REGISTER, id=b"bob")),
    ("bob", "S", Reply(P.CMD_REGISTER, P.STATUS_OK)),
    ("bob", "C", Request(P.CMD_SUBSCRIBE, id=b"alice")),
    ("bob", "S", Reply(P.CMD_SUBSCRIBE, P.STATUS_OK)),
    ("bob", "S", PresenceEvent(P.PRESENCE_OFFLINE, b"alice")),
    ("alice", "C", Request(P.CMD_HELLO, version=2, flags=P.HELLO_FLAG_QUIET)),
    ("alice", "S", Reply(P.CMD_HELLO, P.STATUS_OK, GRANT)),
    ("alice", "C", Request(P.CMD_REGISTER, id=b"alice")),
    ("alice", "S", Reply(P.CMD_REGISTER, P.STATUS_OK)),
    ("bob", "S", PresenceEvent(P.PRESENCE_ONLINE, b"alice")),
    ("alice", "C", Request(P.CMD_SEND, data=b"hi")),
    ("bob", "S", Delivery(b"alice", b"hi")),
    ("bob", "C", Request(P.CMD_SEND_TO, id=b"alice", data=b"yo")),
    ("alice", "S", Delivery(b"bob", b"yo")),
    ("bob", "S", Reply(P.CMD_SEND_TO, P.STATUS_OK)),
    ("bob", "C", Request(P.CMD_SEND_TO, id=b"caro", data=b"!")),
    ("bob", "S", Reply(P.CMD_SEND_TO, P.STATUS_OFFLINE)),
    ("bob", "C", Request(P.CMD_CHECK_ALIVE, id=b"caro")),
    ("bob", "S", Reply(P.CMD_CHECK_ALIVE, P.STATUS_FAILURE)),
    ("bob", "S", PresenceEvent(P.PRESENCE_OFFLINE, b"alice")),
    ("bob", "S", ByeEvent(P.BYE_SHUTDOWN, b"server shutting down")),
    ("bob", "C", Request(P.CMD_HELLO, version=2, flags=0)),
    ("bob", "C", Request(P.CMD_HEARTBEAT)),
    ("bob", "S", Reply(P.CMD_HEARTBEAT, P.STATUS_OK)),
    # AUTH's worked example (its proof and signature are checked against the
    # token by test/unit/test_auth_proof.c; here only the layouts).
    ("alice", "C", Request(P.CMD_AUTH, id=b"alice", data=bytes(range(0xc0, 0xe0)),
                           step=P.AUTH_STEP_START)),
    ("alice", "S", Reply(P.CMD_AUTH, P.STATUS_OK,
                         auth=AuthAnswer(P.AUTH_STEP_START, bytes(range(0xe0, 0x100))))),
    ("alice", "C", Request(P.CMD_AUTH, data=bytes.fromhex(
        "afe4b6512f86bceec896fdeeaccca282b7fac24790e080f5ad7756ddf906f7ca"),
        step=P.AUTH_STEP_PROOF)),
    ("alice", "S", Reply(P.CMD_AUTH, P.STATUS_OK, auth=AuthAnswer(
        P.AUTH_STEP_PROOF, bytes.fromhex(
            "fecedc8e212d3e52cbc8cea0b6fdd57c3a8d3a898a139f65ed4b39a2f4045aee")))),
]


def encode_request(r: Request) -> bytes:
    """The payload of a request, through the codec's encoders."""
    if r.command == P.CMD_HELLO:
        return codec.encode_hello(r.version, r.flags)
    if r.command == P.CMD_SEND:
        return codec.encode_send_head() + r.data
    if r.command == P.CMD_SEND_TO:
        return codec.encode_send_to_head(r.id) + r.data
    if r.command == P.CMD_AUTH:
        return (codec.encode_auth_start(r.id, r.data) if r.step == P.AUTH_STEP_START
                else codec.encode_auth_proof(r.data))
    return codec.encode_id_command(r.command, r.id)


def encode_message(m) -> bytes:
    """The payload of a server frame, through the codec's encoders."""
    if isinstance(m, Reply):
        if m.grant is not None:
            return codec.encode_hello_reply(*m.grant)
        if m.auth is not None:
            return codec.encode_auth_reply(*m.auth)
        return codec.encode_reply(m.command, m.status)
    if isinstance(m, Delivery):
        head = (codec.encode_send_head() if m.sender is None
                else codec.encode_deliver_head(m.sender))
        return head + m.data
    if isinstance(m, PresenceEvent):
        return codec.encode_presence(m.state, m.device)
    if isinstance(m, ByeEvent):
        return codec.encode_bye(m.reason, m.text)
    if isinstance(m, GapEvent):
        return codec.encode_gap(m.publisher, m.frames, m.bytes)
    raise AssertionError("no encoder for %r" % (m,))


class ManPageExamplesTest(unittest.TestCase):
    heading = ".Sh EXAMPLES"   # where the frames are
    meanings = MEANINGS        # what the page says they are

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(MAN_PAGE):
            raise unittest.SkipTest("no %s (not a source tree)" % MAN_PAGE)
        cls.frames = example_frames(man_section(MAN_PAGE, cls.heading))

    def test_the_page_has_the_frames_we_know(self):
        self.assertEqual([(f.who, f.direction) for f in self.frames],
                         [(who, d) for who, d, _ in self.meanings])

    def test_each_frame_parses_and_encodes_back(self):
        for f, (_, direction, meaning) in zip(self.frames, self.meanings):
            payload = f.raw[4:]
            with self.subTest(frame=f.raw.hex(" ")):
                if direction == "C":
                    self.assertEqual(parse_request(payload), meaning)
                    self.assertEqual(frame(encode_request(meaning)), f.raw)
                else:
                    self.assertEqual(parse_message(payload), meaning)
                    self.assertEqual(frame(encode_message(meaning)), f.raw)

    def streams(self):
        """Each connection direction's frames, concatenated as on the wire."""
        out = {}
        for f in self.frames:
            out.setdefault((f.who, f.direction), []).append(f.raw)
        return out

    def test_streams_whole_every_prefix_and_byte_by_byte(self):
        for key, frames in self.streams().items():
            stream = b"".join(frames)
            payloads = [f[4:] for f in frames]
            ends = [sum(len(f) for f in frames[:i + 1])
                    for i in range(len(frames))]
            largest = max(len(p) for p in payloads)
            with self.subTest(stream=key):
                self.assertEqual(FrameDecoder(largest).feed(stream),
                                 payloads)
                with self.assertRaises(ProtocolError):
                    FrameDecoder(largest - 1).feed(stream)
                for cut in range(len(stream) + 1):
                    d = FrameDecoder(largest)
                    first = d.feed(stream[:cut])
                    done = sum(1 for e in ends if e <= cut)
                    self.assertEqual(first, payloads[:done], cut)
                    self.assertEqual(d.buffered,
                                     cut - (ends[done - 1] if done else 0))
                    self.assertEqual(first + d.feed(stream[cut:]), payloads)
                d = FrameDecoder(largest)
                got = []
                for i in range(len(stream)):
                    got += d.feed(stream[i:i + 1])
                self.assertEqual(got, payloads)
                self.assertEqual(d.buffered, 0)

    def test_every_payload_prefix(self):
        for f, (_, direction, meaning) in zip(self.frames, self.meanings):
            payload = f.raw[4:]
            for n in range(1, len(payload)):
                with self.subTest(frame=f.raw.hex(" "), prefix=n):
                    if direction == "C":
                        self.check_request_prefix(payload, n, meaning)
                    else:
                        self.check_message_prefix(payload, n, meaning)

    def check_request_prefix(self, payload, n, whole):
        part = payload[:n]
        if whole.command == P.CMD_SEND:
            complete = True
        elif whole.command == P.CMD_SEND_TO:
            complete = n >= 2 + len(whole.id)
        elif whole.command in (P.CMD_HELLO, P.CMD_AUTH):
            complete = False  # exactly version and flags; AUTH's exact steps
        else:
            complete = n >= 2  # a bare id of at least one byte
        if not complete:
            with self.assertRaises(BadRequest):
                parse_request(part)
            return
        got = parse_request(part)
        self.assertEqual(got.command, whole.command)
        self.assertEqual(encode_request(got), part)

    def check_message_prefix(self, payload, n, whole):
        part = payload[:n]
        if isinstance(whole, Reply):
            # Command and status, or a HELLO grant, which is whole or
            # malformed: no prefix is a reply.
            complete = False
        elif isinstance(whole, Delivery):
            complete = n >= 2 + len(whole.sender)
        elif isinstance(whole, (PresenceEvent, GapEvent)):
            complete = False  # the id ends PRESENCE, the counts GAP
        else:
            complete = n >= 2  # BYE: reason, then any text
        if not complete:
            with self.assertRaises(ProtocolError):
                parse_message(part)
            return
        got = parse_message(part)
        self.assertIs(type(got), type(whole))
        self.assertEqual(encode_message(got), part)


# The example of the GAP section: one subscriber's connection.
GAP_MEANINGS = [
    ("", "C", Request(P.CMD_HELLO, version=2, flags=P.HELLO_FLAG_DROP)),
    ("", "S", GapEvent(b"alice", 3, 300)),
    ("", "S", Delivery(b"alice", b"hi")),
]


class ManPageGapExampleTest(ManPageExamplesTest):
    """Every check of ManPageExamplesTest, on the GAP section's example."""

    heading = ".Ss GAP (0x0F)"
    meanings = GAP_MEANINGS


if __name__ == "__main__":
    unittest.main()

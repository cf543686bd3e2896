"""The frame codec: fed whole, split at every offset, byte by byte."""

import unittest

import p2p_support  # noqa: F401  (puts the package on the path)
from stupidp2p.errors import ProtocolError
from stupidp2p.frame import FrameDecoder, encode


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


if __name__ == "__main__":
    unittest.main()

"""Frame codec: a 4-byte big-endian length, then that many payload bytes.

The decoder works on whole frames: it reads the length field once, waits
until the full payload is buffered, then slices it out in one piece.  It
never walks the stream a byte at a time (the original client did), so a
64 KiB frame costs one slice however it was split by TCP.
"""

from __future__ import annotations

import struct
from typing import List

from .errors import ProtocolError

_HEADER = struct.Struct(">I")


def encode(command: int, body: bytes = b"") -> bytes:
    """Return the frame carrying ``[command] + body``.

    ``body`` may be any bytes-like object; it is copied once into the result.
    """
    return b"".join((_HEADER.pack(len(body) + 1), bytes((command,)), body))


class FrameDecoder:
    """Incremental decoder: feed it received bytes, get whole payloads back.

    ``max_payload`` bounds the length field; a longer frame raises
    :class:`ProtocolError` (the stream cannot be trusted after that).
    Empty frames (length 0) are skipped, as the protocol says they are
    ignored.  Not thread-safe: one reader owns a decoder.
    """

    __slots__ = ("_buf", "max_payload")

    def __init__(self, max_payload: int) -> None:
        self._buf = bytearray()
        self.max_payload = max_payload

    def feed(self, data: bytes) -> List[bytes]:
        """Append ``data`` and return every payload now complete, in order."""
        buf = self._buf
        buf += data
        frames: List[bytes] = []
        pos = 0
        end_of_data = len(buf)
        unpack = _HEADER.unpack_from
        while end_of_data - pos >= 4:
            (length,) = unpack(buf, pos)
            if length > self.max_payload:
                raise ProtocolError(
                    "frame of %d bytes exceeds the limit of %d"
                    % (length, self.max_payload))
            end = pos + 4 + length
            if end > end_of_data:
                break
            if length:
                frames.append(bytes(buf[pos + 4:end]))
            pos = end
        if pos:
            del buf[:pos]
        return frames

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet make a whole frame."""
        return len(self._buf)

"""The stupidP2P wire codec: the frame header and the layout of every payload.

This is the Python counterpart of ``src/common/codec.{h,c}`` (which the
server, the C client library and the C test harness share): every request,
reply and event is encoded and parsed here and nowhere else in the package.
``man/stupidp2p.7`` is the specification, :mod:`stupidp2p.protocol` holds the
constants.  Nothing here does I/O or keeps state, except
:class:`FrameDecoder`, which buffers one stream's partial frame::

    frame   = length (u32, big-endian) + payload (length bytes)
    payload = command byte + data

Encoders return payload bytes; :func:`frame` puts the header in front.
Where a payload is a head followed by caller data (SEND, SEND_TO, DELIVER),
the codec encodes the head only (the ``_head`` functions) and :func:`frame`
joins head and data in one copy: ``frame(encode_send_to_head(b"bob"), data)``.

Parsers take one whole payload.  :func:`parse_request` (what a server reads)
raises :class:`BadRequest` where the server answers status 4;
:func:`parse_message` (what a client reads) raises
:class:`~stupidp2p.errors.ProtocolError` for a frame too short for its kind.
Both accept what a later version may append and ignore it, as the C codec
does.
"""

from __future__ import annotations

import struct
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

from . import protocol as P
from .errors import ProtocolError

__all__ = [
    "REPLY_SIZE", "HELLO_SIZE", "ID_COMMAND_MAX", "ID_HEAD_MAX",
    "PRESENCE_MAX", "BYE_MAX", "AUTH_START_MAX", "AUTH_PROOF_REQ_SIZE",
    "AUTH_REPLY_SIZE", "GAP_FIXED", "GAP_MAX",
    "frame", "FrameDecoder",
    "encode_reply", "encode_hello_reply", "encode_hello", "encode_id_command",
    "encode_send_head", "encode_send_to_head", "encode_deliver_head",
    "encode_presence", "encode_bye", "encode_auth_start", "encode_auth_proof",
    "encode_auth_reply", "encode_gap",
    "BadRequest", "Request", "parse_request",
    "HelloGrant", "AuthAnswer", "Reply", "Delivery", "PresenceEvent", "ByeEvent",
    "GapEvent", "UnknownFrame", "ServerMessage", "parse_message",
    "CANDIDATE_MAX_SIZE", "DIRECT_EVENT_CANDIDATES_MAX", "DIRECT_MAX",
    "DIRECT_OFFER_REPLY_SIZE", "LINK_PROOF_SIZE", "LINK_DATA_HEAD_SIZE",
    "LINK_ACK_SIZE",
    "Candidate", "OfferGrant", "Direct", "Link",
    "encode_direct_offer", "encode_direct_offer_event",
    "encode_direct_answer", "encode_direct_sync", "encode_direct_mark",
    "encode_direct_result", "encode_direct_offer_reply", "parse_direct",
    "encode_link_proof", "encode_link_use", "encode_link_data_head",
    "encode_link_ack", "encode_link_ping", "parse_link",
]

# Payload sizes, as in codec.h.
REPLY_SIZE = 2                        # [cmd|0x80][status]
HELLO_SIZE = 3                        # [08][version][flags]
ID_COMMAND_MAX = 1 + P.ID_MAX         # [cmd][id]
ID_HEAD_MAX = 2 + P.ID_MAX            # [cmd][id_len][id]
PRESENCE_MAX = 3 + P.ID_MAX           # [0b][state][id_len][id]
BYE_MAX = 2 + P.BYE_TEXT_MAX          # [0e][reason][text]
AUTH_START_MAX = 3 + P.ID_MAX + P.AUTH_NONCE_SIZE  # [0c][01][id_len][id][nonce]
AUTH_PROOF_REQ_SIZE = 2 + P.AUTH_PROOF_SIZE        # [0c][02][proof]
AUTH_REPLY_SIZE = 3 + P.AUTH_NONCE_SIZE            # [8c][01][step][nonce or signature]
GAP_FIXED = 14                        # GAP without its id
GAP_MAX = GAP_FIXED + P.ID_MAX        # [0f][id_len][id][frames u32][bytes u64]
# Direct paths (stupidp2p(7), DIRECT PATHS).
CANDIDATE_MAX_SIZE = 20               # [kind][port u16][addr_len][addr 16]
DIRECT_EVENT_CANDIDATES_MAX = P.DIRECT_CANDIDATES_MAX + 1  # and the reflexive one
DIRECT_MAX = 512                      # the largest DIRECT_* payload
DIRECT_OFFER_REPLY_SIZE = 6 + P.DIRECT_SECRET_SIZE  # [90][01][attempt u32][secret]
LINK_PROOF_SIZE = 6 + P.DIRECT_MAC_SIZE  # [01][role][attempt u32][mac]
LINK_DATA_HEAD_SIZE = 9               # [03][seq u64]
LINK_ACK_SIZE = 9                     # [04][seq u64]

_HEADER = struct.Struct(">I")
_HELLO_REPLY = struct.Struct(">BBBII")
_GRANT = struct.Struct(">BII")
_GAP_COUNTS = struct.Struct(">IQ")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

# ---- frames -------------------------------------------------------------


def frame(payload: bytes, data: bytes = b"") -> bytes:
    """The frame whose payload is ``payload`` followed by ``data`` (a head
    and the data after it), header included, in one copy.  Both may be any
    bytes-like objects."""
    return b"".join((_HEADER.pack(len(payload) + len(data)), payload, data))


class FrameDecoder:
    """Incremental decoder of one byte stream: feed it received bytes, get
    whole payloads back.

    It reads each length field once, waits until the whole payload is
    buffered, then slices it out in one piece (never a byte at a time), so a
    64 KiB frame costs one slice however TCP split it.  ``max_payload`` bounds
    the length field: a longer frame raises :class:`ProtocolError` as soon as
    its header is complete, before any of it is buffered (the stream cannot
    be trusted after that).  Empty frames (length 0) are skipped, as the
    protocol says they are ignored.  Not thread-safe: one reader owns it.
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
        while end_of_data - pos >= P.FRAME_HEADER_SIZE:
            (length,) = unpack(buf, pos)
            if length > self.max_payload:
                raise ProtocolError(
                    "frame of %d bytes exceeds the limit of %d"
                    % (length, self.max_payload))
            end = pos + P.FRAME_HEADER_SIZE + length
            if end > end_of_data:
                break
            if length:
                frames.append(bytes(buf[pos + P.FRAME_HEADER_SIZE:end]))
            pos = end
        if pos:
            del buf[:pos]
        return frames

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet make a whole frame."""
        return len(self._buf)


# ---- encoders (each returns a payload) ------------------------------------


def _id_length(device_id: bytes) -> bytes:
    n = len(device_id)
    if not 1 <= n <= P.ID_MAX:
        raise ValueError("an id is 1 to %d bytes, not %d" % (P.ID_MAX, n))
    return bytes((n,))


def encode_reply(command: int, status: int) -> bytes:
    """A reply: ``[command | 0x80][status]``."""
    return bytes((command | P.REPLY_BIT, status))


def encode_hello_reply(version: int, max_frame: int, idle_timeout: int) \
        -> bytes:
    """The HELLO success reply: ``[88][01][version][max_frame u32]
    [idle_timeout u32]``."""
    return _HELLO_REPLY.pack(P.CMD_HELLO | P.REPLY_BIT, P.STATUS_OK, version,
                             max_frame, idle_timeout)


def encode_hello(version: int, flags: int = 0) -> bytes:
    """HELLO: ``[08][version][flags]``."""
    return bytes((P.CMD_HELLO, version, flags))


def encode_id_command(command: int, device_id: bytes = b"") -> bytes:
    """A request whose data is one bare id (REGISTER, SUBSCRIBE, UNSUBSCRIBE,
    CHECK_ALIVE: ``[cmd][id]``) or nothing (UNREGISTER, HEARTBEAT)."""
    return bytes((command,)) + device_id


_SEND_HEAD = bytes((P.CMD_SEND,))


def encode_send_head() -> bytes:
    """The head of SEND, also that of a v1 delivery: ``[03]``; the data
    follows."""
    return _SEND_HEAD


def encode_send_to_head(target: bytes) -> bytes:
    """The head of SEND_TO: ``[0a][id_len][target id]``; the data follows.

    Raises:
        ValueError: the id is not 1 to 255 bytes.
    """
    return bytes((P.CMD_SEND_TO,)) + _id_length(target) + target


def encode_deliver_head(sender: bytes) -> bytes:
    """The head of DELIVER: ``[09][id_len][sender id]``; the data follows.

    Raises:
        ValueError: the id is not 1 to 255 bytes.
    """
    return bytes((P.EVT_DELIVER,)) + _id_length(sender) + sender


def encode_presence(state: int, device_id: bytes) -> bytes:
    """PRESENCE: ``[0b][state][id_len][id]``.

    Raises:
        ValueError: the id is not 1 to 255 bytes.
    """
    return bytes((P.EVT_PRESENCE, state)) + _id_length(device_id) + device_id


def encode_bye(reason: int, text: bytes) -> bytes:
    """BYE: ``[0e][reason][text]``, the text cut to 127 bytes."""
    return bytes((P.EVT_BYE, reason)) + text[:P.BYE_TEXT_MAX]


def encode_gap(publisher: Optional[bytes], frames: int, nbytes: int) \
        -> bytes:
    """GAP: ``[0f][id_len][id][frames u32][bytes u64]``; a ``publisher`` of
    None (or empty) is id_len 0, every publisher not named in the episode's
    other GAP events.

    Raises:
        ValueError: the id is over 255 bytes, or a count does not fit its
            field.
    """
    publisher = publisher or b""
    if len(publisher) > P.ID_MAX:
        raise ValueError("an id is at most %d bytes, not %d"
                         % (P.ID_MAX, len(publisher)))
    try:
        counts = _GAP_COUNTS.pack(frames, nbytes)
    except struct.error as exc:
        raise ValueError("GAP counts %r, %r: %s" % (frames, nbytes, exc)) \
            from None
    return bytes((P.EVT_GAP, len(publisher))) + publisher + counts


def encode_auth_start(device_id: bytes, client_nonce: bytes) -> bytes:
    """AUTH step 1: ``[0c][01][id_len][id][client nonce, 32 bytes]``."""
    if len(client_nonce) != P.AUTH_NONCE_SIZE:
        raise ValueError("a nonce is %d bytes" % P.AUTH_NONCE_SIZE)
    return (bytes((P.CMD_AUTH, P.AUTH_STEP_START)) + _id_length(device_id)
            + device_id + client_nonce)


def encode_auth_proof(proof: bytes) -> bytes:
    """AUTH step 2: ``[0c][02][ClientProof, 32 bytes]``."""
    if len(proof) != P.AUTH_PROOF_SIZE:
        raise ValueError("a proof is %d bytes" % P.AUTH_PROOF_SIZE)
    return bytes((P.CMD_AUTH, P.AUTH_STEP_PROOF)) + proof


def encode_auth_reply(step: int, value: bytes) -> bytes:
    """AUTH's success reply: ``[8c][01][step][32 bytes]``, the server nonce
    (step 1) or the server signature (step 2)."""
    if len(value) != P.AUTH_NONCE_SIZE:
        raise ValueError("an AUTH reply carries %d bytes" % P.AUTH_NONCE_SIZE)
    return bytes((P.CMD_AUTH | P.REPLY_BIT, P.STATUS_OK, step)) + value


# ---- direct paths (stupidp2p(7), DIRECT PATHS) ------------------------------
#
# The DIRECT_* requests (0x10..0x14) and events (0x18..0x1B) travel on the
# relay connection; the link frames (PROOF, USE, DATA, ACK, PING) on the
# direct connection between two devices, in the same framing.


class Candidate(NamedTuple):
    """An address at which a device may be reached: ``kind``
    (:data:`~stupidp2p.protocol.CANDIDATE_LAN` or ``_REFLEXIVE``), ``port``
    (never 0) and ``addr``, 4 (IPv4) or 16 (IPv6) bytes in network order."""

    kind: int
    port: int
    addr: bytes


class OfferGrant(NamedTuple):
    """What a successful DIRECT_OFFER reply carries."""

    attempt: int
    secret: bytes


class Direct(NamedTuple):
    """A DIRECT_* request or event, split; fields its layout lacks stay
    empty or zero.  ``id`` is the target (requests) or the sending device
    (events); ``candidates`` a tuple of :class:`Candidate`."""

    command: int
    id: bytes
    attempt: int = 0          # all but the OFFER request
    secret: bytes = b""       # OFFER event
    nonce: bytes = b""        # OFFER; ANSWER when accepted
    local_port: int = 0       # OFFER; ANSWER when accepted
    candidates: Tuple[Candidate, ...] = ()
    accept: int = 0           # ANSWER
    mark: int = 0             # MARK: P.MARK_SWITCH or P.MARK_FALLBACK
    seq: int = 0              # MARK
    outcome: int = 0          # RESULT
    elapsed_ms: int = 0       # RESULT


def _fixed(value: bytes, size: int, what: str) -> bytes:
    if len(value) != size:
        raise ValueError("%s is %d bytes, not %d" % (what, size, len(value)))
    return bytes(value)


def _encode_candidates(cands: Sequence[Candidate], limit: int) -> bytes:
    if len(cands) > limit:
        raise ValueError("at most %d candidates, not %d"
                         % (limit, len(cands)))
    out = bytearray((len(cands),))
    for c in cands:
        if c.port == 0 or len(c.addr) not in (4, 16):
            raise ValueError("a candidate has a port and 4 or 16 address "
                             "bytes: %r" % (c,))
        out += bytes((c.kind,)) + _U16.pack(c.port) + bytes((len(c.addr),))
        out += c.addr
    return bytes(out)


def _direct_head(command: int, device_id: bytes, attempt: int) -> bytes:
    return (bytes((command,)) + _id_length(device_id) + device_id
            + _U32.pack(attempt))


def encode_direct_offer(target: bytes, nonce: bytes, local_port: int,
                        cands: Sequence[Candidate]) -> bytes:
    """DIRECT_OFFER: ``[10][id_len][target][nonce 32][local_port u16]
    [count][LAN candidates]``.

    Raises:
        ValueError: an id, nonce or candidate not of its form, or more than
            8 candidates.
    """
    return (bytes((P.CMD_DIRECT_OFFER,)) + _id_length(target) + target
            + _fixed(nonce, P.DIRECT_NONCE_SIZE, "a nonce")
            + _U16.pack(local_port)
            + _encode_candidates(cands, P.DIRECT_CANDIDATES_MAX))


def encode_direct_offer_event(offerer: bytes, attempt: int, secret: bytes,
                              nonce: bytes, local_port: int,
                              cands: Sequence[Candidate]) -> bytes:
    """The DIRECT_OFFER event: ``[18][id_len][offerer][attempt u32]
    [secret 32][nonce 32][local_port u16][count][candidates]`` (up to 9:
    the reflexive one first)."""
    return (_direct_head(P.EVT_DIRECT_OFFER, offerer, attempt)
            + _fixed(secret, P.DIRECT_SECRET_SIZE, "a secret")
            + _fixed(nonce, P.DIRECT_NONCE_SIZE, "a nonce")
            + _U16.pack(local_port)
            + _encode_candidates(cands, DIRECT_EVENT_CANDIDATES_MAX))


def encode_direct_answer(command: int, device_id: bytes, attempt: int,
                         accept: int, nonce: bytes = b"", local_port: int = 0,
                         cands: Sequence[Candidate] = ()) -> bytes:
    """DIRECT_ANSWER (``command`` 0x11, ``device_id`` the offerer) or its
    event (0x19, the target): ``[cmd][id_len][id][attempt u32][accept]``,
    and when accepting ``[nonce 32][local_port u16][count][candidates]``;
    a decline is those 7 + id_len bytes only."""
    out = _direct_head(command, device_id, attempt) + bytes((accept,))
    if accept != P.DIRECT_ACCEPT:
        return out
    limit = (P.DIRECT_CANDIDATES_MAX if command == P.CMD_DIRECT_ANSWER
             else DIRECT_EVENT_CANDIDATES_MAX)
    return (out + _fixed(nonce, P.DIRECT_NONCE_SIZE, "a nonce")
            + _U16.pack(local_port) + _encode_candidates(cands, limit))


def encode_direct_sync(command: int, device_id: bytes, attempt: int) \
        -> bytes:
    """DIRECT_SYNC (0x12, the target) or its event (0x1A, the offerer):
    ``[cmd][id_len][id][attempt u32]``."""
    return _direct_head(command, device_id, attempt)


def encode_direct_mark(command: int, device_id: bytes, attempt: int,
                       kind: int, seq: int) -> bytes:
    """DIRECT_MARK (0x13, the peer) or its event (0x1B, the sender):
    ``[cmd][id_len][id][attempt u32][kind][seq u64]``."""
    return (_direct_head(command, device_id, attempt) + bytes((kind,))
            + _U64.pack(seq))


def encode_direct_result(peer: bytes, attempt: int, outcome: int,
                         elapsed_ms: int) -> bytes:
    """DIRECT_RESULT: ``[14][id_len][peer][attempt u32][outcome]
    [elapsed_ms u32]``."""
    return (_direct_head(P.CMD_DIRECT_RESULT, peer, attempt)
            + bytes((outcome,)) + _U32.pack(min(elapsed_ms, 0xFFFFFFFF)))


def encode_direct_offer_reply(attempt: int, secret: bytes) -> bytes:
    """DIRECT_OFFER's success reply: ``[90][01][attempt u32][secret 32]``."""
    return (bytes((P.CMD_DIRECT_OFFER | P.REPLY_BIT, P.STATUS_OK))
            + _U32.pack(attempt)
            + _fixed(secret, P.DIRECT_SECRET_SIZE, "a secret"))


class _Reader:
    """A cursor over a payload; a take past its end raises ValueError."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("the payload ends early")
        self.pos += n
        return bytes(self.data[self.pos - n:self.pos])

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(_U16.unpack(self.take(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])


def _take_candidates(r: _Reader, event: bool) -> Tuple[Candidate, ...]:
    n = r.u8()
    if n > (DIRECT_EVENT_CANDIDATES_MAX if event else P.DIRECT_CANDIDATES_MAX):
        raise ValueError("%d candidates" % n)
    out = []
    for _ in range(n):
        kind, port, addr_len = r.u8(), r.u16(), r.u8()
        if not (kind == P.CANDIDATE_LAN
                or (event and kind == P.CANDIDATE_REFLEXIVE)):
            raise ValueError("a candidate of kind %d" % kind)
        if port == 0 or addr_len not in (4, 16):
            raise ValueError("a candidate of port 0 or addr_len %d"
                             % addr_len)
        out.append(Candidate(kind, port, r.take(addr_len)))
    return tuple(out)


_DIRECT_REQUESTS = range(P.CMD_DIRECT_OFFER, P.CMD_DIRECT_RESULT + 1)
_DIRECT_EVENTS = range(P.EVT_DIRECT_OFFER, P.EVT_DIRECT_MARK + 1)


def parse_direct(payload: bytes) -> Direct:
    """Split a DIRECT_* request or event, which must have its layout exactly
    (as ``p2p_direct_parse`` checks it): an id of 1 to 255 bytes, at most 8
    candidates in a request (9 in an event), LAN ones only in a request, no
    port 0, addr_len 4 or 16, a known accept, mark kind or outcome, and no
    bytes left over.

    Raises:
        BadRequest: a request (0x10..0x14) not of its layout, or another
            command byte.
        ProtocolError: an event (0x18..0x1B) not of its layout.
    """
    cmd = payload[0] if payload else 0
    event = cmd in _DIRECT_EVENTS
    if not event and cmd not in _DIRECT_REQUESTS:
        raise BadRequest(cmd, "0x%02x is not a DIRECT_* command" % cmd)
    try:
        return _parse_direct(payload, cmd, event)
    except ValueError as exc:
        what = "malformed DIRECT_* %s 0x%02x: %s" % (
            "event" if event else "request", cmd, exc)
        if event:
            raise ProtocolError(what) from None
        raise BadRequest(cmd, what) from None


def _parse_direct(payload: bytes, cmd: int, event: bool) -> Direct:
    r = _Reader(payload, 1)
    id_len = r.u8()
    if id_len == 0:
        raise ValueError("an empty id")
    device_id = r.take(id_len)
    attempt = 0 if cmd == P.CMD_DIRECT_OFFER else r.u32()
    d = Direct(cmd, device_id, attempt)
    if cmd in (P.CMD_DIRECT_OFFER, P.EVT_DIRECT_OFFER):
        secret = r.take(P.DIRECT_SECRET_SIZE) if event else b""
        d = d._replace(secret=secret, nonce=r.take(P.DIRECT_NONCE_SIZE),
                       local_port=r.u16(),
                       candidates=_take_candidates(r, event))
    elif cmd in (P.CMD_DIRECT_ANSWER, P.EVT_DIRECT_ANSWER):
        accept = r.u8()
        if accept == P.DIRECT_ACCEPT:
            d = d._replace(accept=accept, nonce=r.take(P.DIRECT_NONCE_SIZE),
                           local_port=r.u16(),
                           candidates=_take_candidates(r, event))
        elif accept != P.DIRECT_DECLINE:
            raise ValueError("accept %d" % accept)
    elif cmd in (P.CMD_DIRECT_MARK, P.EVT_DIRECT_MARK):
        d = d._replace(mark=r.u8(), seq=r.u64())
        if d.mark not in (P.MARK_SWITCH, P.MARK_FALLBACK):
            raise ValueError("mark kind %d" % d.mark)
    elif cmd == P.CMD_DIRECT_RESULT:
        d = d._replace(outcome=r.u8(), elapsed_ms=r.u32())
        if d.outcome not in (P.DIRECT_OUTCOME_DIRECT,
                             P.DIRECT_OUTCOME_FAILED):
            raise ValueError("outcome %d" % d.outcome)
    if r.pos != len(payload):
        raise ValueError("%d bytes left over" % (len(payload) - r.pos))
    return d


class Link(NamedTuple):
    """A frame of a direct connection: ``kind`` its type byte (an unknown
    one is to be ignored); PROOF has ``role``, ``attempt`` and ``mac``,
    DATA ``seq`` and ``data``, ACK ``seq``."""

    kind: int
    role: int = 0
    attempt: int = 0
    mac: bytes = b""
    seq: int = 0
    data: bytes = b""


def encode_link_proof(role: int, attempt: int, mac: bytes) -> bytes:
    """PROOF: ``[01][role][attempt u32][mac 32]``."""
    return (bytes((P.LINK_PROOF, role)) + _U32.pack(attempt)
            + _fixed(mac, P.DIRECT_MAC_SIZE, "a mac"))


def encode_link_use() -> bytes:
    """USE: ``[02]``."""
    return bytes((P.LINK_USE,))


def encode_link_data_head(seq: int) -> bytes:
    """The head of DATA: ``[03][seq u64]``; the message follows."""
    return bytes((P.LINK_DATA,)) + _U64.pack(seq)


def encode_link_ack(seq: int) -> bytes:
    """ACK: ``[04][seq u64]``."""
    return bytes((P.LINK_ACK,)) + _U64.pack(seq)


def encode_link_ping() -> bytes:
    """PING: ``[05]``."""
    return bytes((P.LINK_PING,))


def parse_link(payload: bytes) -> Link:
    """Split a non-empty link payload (bytes after a USE or PING, and
    frames of unknown types, are ignored).

    Raises:
        ProtocolError: a PROOF that is not exactly its 38 bytes or names
            another role than 1 or 2, a DATA shorter than its head, an ACK
            that is not exactly 9 bytes, or an empty payload.
    """
    n = len(payload)
    if n == 0:
        raise ProtocolError("an empty link frame")
    kind = payload[0]
    if kind == P.LINK_PROOF:
        if n != LINK_PROOF_SIZE or payload[1] not in (P.ROLE_OFFERER,
                                                      P.ROLE_TARGET):
            raise ProtocolError("malformed PROOF of %d bytes" % n)
        return Link(kind, role=payload[1],
                    attempt=int(_U32.unpack_from(payload, 2)[0]),
                    mac=bytes(payload[6:]))
    if kind == P.LINK_DATA:
        if n < LINK_DATA_HEAD_SIZE:
            raise ProtocolError("DATA of %d bytes without its number" % n)
        return Link(kind, seq=int(_U64.unpack_from(payload, 1)[0]),
                    data=bytes(payload[LINK_DATA_HEAD_SIZE:]))
    if kind == P.LINK_ACK:
        if n != LINK_ACK_SIZE:
            raise ProtocolError("malformed ACK of %d bytes" % n)
        return Link(kind, seq=int(_U64.unpack_from(payload, 1)[0]))
    return Link(kind)


# ---- parsing requests (what a server reads) -------------------------------


class BadRequest(ValueError):
    """A request whose data does not fit its command's layout: an id of 0 or
    more than 255 bytes, a SEND_TO whose id overruns the payload, a HELLO
    that is not exactly version and flags.  A server answers it with status 4
    (bad argument); it is not a framing error."""

    def __init__(self, command: int, message: str) -> None:
        super().__init__(message)
        self.command = command


class Request(NamedTuple):
    """One request split into its fields; unused fields are empty/zero."""

    command: int
    id: bytes = b""     # REGISTER, SUBSCRIBE, UNSUBSCRIBE, CHECK_ALIVE; the
    #                     target of SEND_TO
    data: bytes = b""   # SEND; SEND_TO after the id; AUTH: the client
    #                     nonce (step 1) or the proof (step 2)
    version: int = 0    # HELLO
    flags: int = 0      # HELLO
    step: int = 0       # AUTH: P.AUTH_STEP_START or P.AUTH_STEP_PROOF


_ID_COMMANDS = frozenset((P.CMD_REGISTER, P.CMD_SUBSCRIBE, P.CMD_UNSUBSCRIBE,
                          P.CMD_CHECK_ALIVE))


def parse_request(payload: bytes) -> Request:
    """Split a non-empty request payload by its command byte.

    Unknown commands, and those without data, come back with only
    ``command`` set.

    Raises:
        BadRequest: the data does not fit the command's layout.
        ValueError: the payload is empty.
    """
    if not payload:
        raise ValueError("an empty payload has no command")
    cmd = payload[0]
    n = len(payload) - 1
    if cmd in _ID_COMMANDS:
        # The whole data is the id (v1 has no length byte).
        if not 1 <= n <= P.ID_MAX:
            raise BadRequest(cmd, "an id is 1 to %d bytes, not %d"
                             % (P.ID_MAX, n))
        return Request(cmd, id=bytes(payload[1:]))
    if cmd == P.CMD_SEND:
        return Request(cmd, data=bytes(payload[1:]))
    if cmd == P.CMD_SEND_TO:
        id_len = payload[1] if n >= 1 else 0
        if id_len == 0 or id_len > n - 1:
            raise BadRequest(cmd, "SEND_TO: no id of 1 to %d bytes inside "
                             "the payload" % P.ID_MAX)
        return Request(cmd, id=bytes(payload[2:2 + id_len]),
                       data=bytes(payload[2 + id_len:]))
    if cmd == P.CMD_HELLO:
        if n != 2:
            raise BadRequest(cmd, "HELLO carries version and flags, not %d "
                             "bytes" % n)
        return Request(cmd, version=payload[1], flags=payload[2])
    if cmd == P.CMD_AUTH:
        return _parse_auth(payload)
    return Request(cmd)


def _parse_auth(payload: bytes) -> Request:
    """AUTH step 1 ``[0c][01][id_len][id][nonce]`` or step 2
    ``[0c][02][proof]``, each exactly that long."""
    n = len(payload)
    step = payload[1] if n >= 2 else 0
    if step == P.AUTH_STEP_START:
        id_len = payload[2] if n >= 3 else 0
        if (not 1 <= id_len <= P.ID_MAX
                or n != 3 + id_len + P.AUTH_NONCE_SIZE):
            raise BadRequest(P.CMD_AUTH, "AUTH step 1: id and 32-byte nonce")
        return Request(P.CMD_AUTH, id=bytes(payload[3:3 + id_len]),
                       data=bytes(payload[3 + id_len:]), step=step)
    if step == P.AUTH_STEP_PROOF:
        if n != 2 + P.AUTH_PROOF_SIZE:
            raise BadRequest(P.CMD_AUTH, "AUTH step 2: a 32-byte proof")
        return Request(P.CMD_AUTH, data=bytes(payload[2:]), step=step)
    raise BadRequest(P.CMD_AUTH, "AUTH step %d" % step)


# ---- parsing server frames (what a client reads) --------------------------


class HelloGrant(NamedTuple):
    """What a successful HELLO reply grants."""

    version: int
    max_frame: int
    idle_timeout: int


class AuthAnswer(NamedTuple):
    """What a successful AUTH reply carries: the step it answers, and the
    32-byte server nonce (step 1) or server signature (step 2)."""

    step: int
    value: bytes


class Reply(NamedTuple):
    """``[cmd|0x80][status][...]``: ``command`` has bit 7 cleared; ``grant``
    is set for a HELLO reply with status 1, ``auth`` for an AUTH reply with
    status 1, ``direct`` for a DIRECT_OFFER reply with status 1."""

    command: int
    status: int
    grant: Optional[HelloGrant] = None
    auth: Optional[AuthAnswer] = None
    direct: Optional[OfferGrant] = None


class Delivery(NamedTuple):
    """Data for this client: a DELIVER (``[09][id_len][sender][data]``), or,
    with ``sender`` None, a v1 session's ``[03][data]``."""

    sender: Optional[bytes]
    data: bytes


class PresenceEvent(NamedTuple):
    """PRESENCE: ``[0b][state][id_len][id]``."""

    state: int
    device: bytes


class ByeEvent(NamedTuple):
    """BYE: ``[0e][reason][text]``; ``text`` is raw bytes from the server
    (at most 127), untrusted."""

    reason: int
    text: bytes


class GapEvent(NamedTuple):
    """GAP: ``[0f][id_len][id][frames u32][bytes u64]``: the server dropped
    ``frames`` messages of ``bytes`` data bytes from ``publisher``, or, with
    ``publisher`` None (id_len 0), from every publisher the episode's other
    GAP events do not name."""

    publisher: Optional[bytes]
    frames: int
    bytes: int


class UnknownFrame(NamedTuple):
    """Any other command byte: to be ignored."""

    command: int


ServerMessage = Union[Reply, Delivery, PresenceEvent, ByeEvent, GapEvent,
                      Direct, UnknownFrame]


def parse_message(payload: bytes) -> ServerMessage:
    """Classify and split a non-empty payload from the server.

    Raises:
        ProtocolError: a reply without its status, a successful HELLO reply
            shorter than its 11 bytes, a successful AUTH reply that is not
            exactly ``[8c][01][1 or 2][32 bytes]``, a DELIVER or PRESENCE whose id is
            empty or overruns the payload, a BYE without its reason, a GAP
            whose id or counts overrun the payload, a successful
            DIRECT_OFFER reply that is not exactly its 38 bytes, a
            DIRECT_* event not of its layout (:func:`parse_direct`), or an
            empty payload.
            (Bytes after a GAP's counts are ignored, as a later version may
            add fields there.)
    """
    n = len(payload)
    if n == 0:
        raise ProtocolError("empty payload")
    cmd = payload[0]
    if cmd & P.REPLY_BIT:
        cmd &= ~P.REPLY_BIT
        if n < REPLY_SIZE:
            raise ProtocolError("reply 0x%02x without a status"
                                % (cmd | P.REPLY_BIT))
        status = payload[1]
        if cmd == P.CMD_HELLO and status == P.STATUS_OK:
            # A successful HELLO reply carries the grant: all 11 bytes.
            if n < P.HELLO_REPLY_SIZE:
                raise ProtocolError("HELLO reply of %d bytes without its "
                                    "grant" % n)
            return Reply(cmd, status,
                         HelloGrant._make(_GRANT.unpack_from(payload, 2)))
        if cmd == P.CMD_AUTH and status == P.STATUS_OK:
            # Exactly [8c][01][1 or 2][32 bytes].
            if (n != AUTH_REPLY_SIZE
                    or payload[2] not in (P.AUTH_STEP_START, P.AUTH_STEP_PROOF)):
                raise ProtocolError("malformed AUTH reply of %d bytes" % n)
            return Reply(cmd, status,
                         auth=AuthAnswer(payload[2], bytes(payload[3:])))
        if cmd == P.CMD_DIRECT_OFFER and status == P.STATUS_OK:
            if n != DIRECT_OFFER_REPLY_SIZE:
                raise ProtocolError("malformed DIRECT_OFFER reply of %d "
                                    "bytes" % n)
            return Reply(cmd, status, direct=OfferGrant(
                int(_U32.unpack_from(payload, 2)[0]), bytes(payload[6:])))
        return Reply(cmd, status)
    if cmd == P.EVT_DELIVER:
        id_len = payload[1] if n >= 2 else 0
        if id_len == 0 or 2 + id_len > n:
            raise ProtocolError("malformed DELIVER")
        return Delivery(bytes(payload[2:2 + id_len]),
                        bytes(payload[2 + id_len:]))
    if cmd == P.CMD_SEND:
        return Delivery(None, bytes(payload[1:]))
    if cmd == P.EVT_PRESENCE:
        id_len = payload[2] if n >= 3 else 0
        if id_len == 0 or 3 + id_len > n:
            raise ProtocolError("malformed PRESENCE")
        return PresenceEvent(payload[1], bytes(payload[3:3 + id_len]))
    if cmd == P.EVT_BYE:
        if n < 2:
            raise ProtocolError("BYE without a reason")
        return ByeEvent(payload[1], bytes(payload[2:2 + P.BYE_TEXT_MAX]))
    if cmd == P.EVT_GAP:
        id_len = payload[1] if n >= 2 else 0
        if n < GAP_FIXED + id_len:
            raise ProtocolError("malformed GAP of %d bytes" % n)
        frames, nbytes = _GAP_COUNTS.unpack_from(payload, 2 + id_len)
        return GapEvent(bytes(payload[2:2 + id_len]) if id_len else None,
                        frames, nbytes)
    if cmd in _DIRECT_EVENTS:
        return parse_direct(payload)
    return UnknownFrame(cmd)

"""Wire constants of the stupidP2P protocol, v1 and v2.

This mirrors ``src/common/protocol.h`` (the C header shared by the server and
the C client); ``man/stupidp2p.7`` is the full specification.  Summary::

    frame   = length (u32, big-endian) + payload (length bytes)
    payload = command byte + data

Every request a server understands is answered by one frame whose payload is
``[command | REPLY_BIT, status, ...]``, in request order.
"""

from __future__ import annotations

# Requests (client -> server).  0x01..0x07 are the original protocol (v1).
CMD_REGISTER = 0x01
CMD_SUBSCRIBE = 0x02
CMD_SEND = 0x03  # also how a v1 session receives data: [0x03] + data
CMD_UNREGISTER = 0x04
CMD_UNSUBSCRIBE = 0x05
CMD_CHECK_ALIVE = 0x06
CMD_HEARTBEAT = 0x07
# v2 additions.
CMD_HELLO = 0x08  # version u8, flags u8
EVT_DELIVER = 0x09  # server -> v2 client: id_len u8, sender id, data
CMD_SEND_TO = 0x0A  # id_len u8, target id, data
EVT_PRESENCE = 0x0B  # server -> v2 client: state u8, id_len u8, id
CMD_AUTH = 0x0C  # step u8, then per step (see AUTH_* below)
EVT_BYE = 0x0E  # server -> v2 client: reason u8, text
EVT_GAP = 0x0F  # server -> v2 client (DROP): id_len u8, id, frames u32, bytes u64

REPLY_BIT = 0x80

# Status byte of a reply.  v1 sessions only ever see 0 and 1.
STATUS_FAILURE = 0
STATUS_OK = 1
STATUS_NOT_REGISTERED = 2
STATUS_OFFLINE = 3
STATUS_BAD_ARGUMENT = 4
STATUS_NOT_AUTHORIZED = 5
STATUS_UNSUPPORTED = 6
STATUS_LIMIT = 7

# Reason byte of a BYE.
BYE_TAKEN_OVER = 1
BYE_IDLE_TIMEOUT = 2
BYE_SLOW_CONSUMER = 3
BYE_SHUTDOWN = 4
BYE_PROTOCOL_ERROR = 5
BYE_NOT_AUTHORIZED = 6
BYE_LIMIT = 7

BYE_NAMES = {
    BYE_TAKEN_OVER: "taken over",
    BYE_IDLE_TIMEOUT: "idle timeout",
    BYE_SLOW_CONSUMER: "slow consumer",
    BYE_SHUTDOWN: "server shutting down",
    BYE_PROTOCOL_ERROR: "protocol error",
    BYE_NOT_AUTHORIZED: "not authorized",
    BYE_LIMIT: "limit reached",
}

PRESENCE_OFFLINE = 0
PRESENCE_ONLINE = 1

HELLO_FLAG_QUIET = 0x01
HELLO_FLAG_DROP = 0x02  # drop deliveries (reported by GAP), not the session
HELLO_FLAGS_KNOWN = HELLO_FLAG_QUIET | HELLO_FLAG_DROP
# GAP events after one episode of drops: this many publishers named, then
# one for all the others.
GAP_NAMED_MAX = 16

VERSION_1 = 1
VERSION_2 = 2
VERSION_MAX = VERSION_2

FRAME_HEADER_SIZE = 4
ID_MAX = 255
DEFAULT_MAX_FRAME = 65536
DEFAULT_PORT = 4040
# A DELIVER carries [0x09][id_len][id] before the data: frames from the
# server may exceed max_frame by up to this much.
SERVER_FRAME_SLACK = 256
BYE_TEXT_MAX = 127
HELLO_REPLY_SIZE = 11

# AUTH (stupidp2p(7), AUTH): two steps, 32-byte nonces and proofs.
AUTH_STEP_START = 1
AUTH_STEP_PROOF = 2
AUTH_NONCE_SIZE = 32
AUTH_PROOF_SIZE = 32
AUTH_MAX_FAILURES = 3

# Direct paths (stupidp2p(7), DIRECT PATHS; made by stupidp2p.direct).
CMD_DIRECT_OFFER = 0x10
CMD_DIRECT_ANSWER = 0x11
CMD_DIRECT_SYNC = 0x12
CMD_DIRECT_MARK = 0x13
CMD_DIRECT_RESULT = 0x14
EVT_DIRECT_OFFER = 0x18
EVT_DIRECT_ANSWER = 0x19
EVT_DIRECT_SYNC = 0x1A
EVT_DIRECT_MARK = 0x1B
DIRECT_SECRET_SIZE = 32
DIRECT_NONCE_SIZE = 32
DIRECT_MAC_SIZE = 32
DIRECT_CANDIDATES_MAX = 8
CANDIDATE_LAN = 1
CANDIDATE_REFLEXIVE = 2
DIRECT_DECLINE = 0
DIRECT_ACCEPT = 1
MARK_SWITCH = 1
MARK_FALLBACK = 2
DIRECT_OUTCOME_DIRECT = 1
DIRECT_OUTCOME_FAILED = 2
# Frames on a direct connection between two devices.
LINK_PROOF = 0x01
LINK_USE = 0x02
LINK_DATA = 0x03
LINK_ACK = 0x04
LINK_PING = 0x05
ROLE_OFFERER = 1
ROLE_TARGET = 2

COMMAND_NAMES = {
    CMD_REGISTER: "REGISTER",
    CMD_SUBSCRIBE: "SUBSCRIBE",
    CMD_SEND: "SEND",
    CMD_UNREGISTER: "UNREGISTER",
    CMD_UNSUBSCRIBE: "UNSUBSCRIBE",
    CMD_CHECK_ALIVE: "CHECK_ALIVE",
    CMD_HEARTBEAT: "HEARTBEAT",
    CMD_HELLO: "HELLO",
    CMD_SEND_TO: "SEND_TO",
    CMD_AUTH: "AUTH",
    CMD_DIRECT_OFFER: "DIRECT_OFFER",
    CMD_DIRECT_ANSWER: "DIRECT_ANSWER",
    CMD_DIRECT_SYNC: "DIRECT_SYNC",
    CMD_DIRECT_MARK: "DIRECT_MARK",
    CMD_DIRECT_RESULT: "DIRECT_RESULT",
}

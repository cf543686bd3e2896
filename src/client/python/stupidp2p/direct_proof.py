"""The proof of a direct connection (stupidp2p(7), DIRECT PATHS, "The
direct connection"): the counterpart of ``src/common/direct_proof.c``.

Each side's first frame on every connection of an attempt is a PROOF whose
mac is::

    DirectMessage = "stupidP2P DIRECT" || role || attempt ||
                    offerer_id_len || offerer id || target_id_len ||
                    target id || offerer nonce || target nonce
    mac           = HMAC-SHA-256(attempt secret, DirectMessage)

role is one byte (1 offerer, 2 target), attempt four bytes big-endian.  The
attempt secret comes from the server (it draws one per attempt); the nonces
from the two devices.  A proof is checked in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from . import protocol as P

__all__ = ["DIRECT_LABEL", "direct_message", "direct_mac",
           "direct_mac_valid"]

DIRECT_LABEL = b"stupidP2P DIRECT"


def direct_message(role: int, attempt: int, offerer: bytes, target: bytes,
                   offerer_nonce: bytes, target_nonce: bytes) -> bytes:
    """DirectMessage, the bytes the mac covers.

    Raises:
        ValueError: an id not of 1 to 255 bytes, or a nonce not of 32.
    """
    for device_id in (offerer, target):
        if not 1 <= len(device_id) <= P.ID_MAX:
            raise ValueError("an id is 1 to %d bytes" % P.ID_MAX)
    for nonce in (offerer_nonce, target_nonce):
        if len(nonce) != P.DIRECT_NONCE_SIZE:
            raise ValueError("a nonce is %d bytes" % P.DIRECT_NONCE_SIZE)
    return b"".join((DIRECT_LABEL, bytes((role,)), struct.pack(">I", attempt),
                     bytes((len(offerer),)), offerer,
                     bytes((len(target),)), target,
                     offerer_nonce, target_nonce))


def direct_mac(secret: bytes, role: int, attempt: int, offerer: bytes,
               target: bytes, offerer_nonce: bytes,
               target_nonce: bytes) -> bytes:
    """The 32-byte mac of the PROOF that ``role`` sends."""
    if len(secret) != P.DIRECT_SECRET_SIZE:
        raise ValueError("an attempt secret is %d bytes"
                         % P.DIRECT_SECRET_SIZE)
    return hmac.new(secret, direct_message(role, attempt, offerer, target,
                                           offerer_nonce, target_nonce),
                    hashlib.sha256).digest()


def direct_mac_valid(secret: bytes, role: int, attempt: int, offerer: bytes,
                     target: bytes, offerer_nonce: bytes,
                     target_nonce: bytes, mac: bytes) -> bool:
    """True if ``mac`` is the right one for ``role``'s PROOF (compared in
    constant time)."""
    want = direct_mac(secret, role, attempt, offerer, target, offerer_nonce,
                      target_nonce)
    return hmac.compare_digest(want, bytes(mac))

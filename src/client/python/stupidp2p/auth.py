"""AUTH's arithmetic and device tokens (``man/stupidp2p.7``, AUTH and
AUTHENTICATION), with :mod:`hashlib` and :mod:`hmac`.

The design is SCRAM's (RFC 5802) with SHA-256, without salt or
iterations::

    SaltedKey       = SHA-256(token)
    ClientKey       = HMAC(SaltedKey, "Client Key")
    StoredKey       = SHA-256(ClientKey)           (the server's verifier is
    ServerKey       = HMAC(SaltedKey, "Server Key")  StoredKey and ServerKey)
    AuthMessage     = "stupidP2P AUTH" || id_len || id || client nonce ||
                      server nonce
    ClientProof     = ClientKey XOR HMAC(StoredKey, AuthMessage)
    ServerSignature = HMAC(ServerKey, AuthMessage)

A :class:`~stupidp2p.Client` keeps the :class:`AuthKeys` derived from its
token, not the token.  (Python cannot wipe memory: the keys and the token
the application passed live until the garbage collector reuses them.)
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from typing import NamedTuple, Optional, Tuple, Union

from . import protocol as P

__all__ = ["TOKEN_MAX", "AuthKeys", "token_bytes", "auth_message",
           "client_proof", "server_signature", "signature_valid",
           "read_token_file", "TokenFileError"]

TOKEN_MAX = 256
"""Tokens are 1 to this many bytes."""

LABEL = b"stupidP2P AUTH"
"""The domain-separation label in front of AuthMessage (14 bytes)."""


def token_bytes(token: Union[str, bytes, bytearray]) -> bytes:
    """A token's bytes: 1 to 256 bytes of printable ASCII without spaces
    (0x21 to 0x7e), as written, without a line end.

    Raises:
        ValueError: the token is not of that form (the message does not
            quote it).
        TypeError: neither str nor bytes.
    """
    if isinstance(token, str):
        try:
            raw = token.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError("a token is printable ASCII") from None
    elif isinstance(token, (bytes, bytearray)):
        raw = bytes(token)
    else:
        raise TypeError("a token is str or bytes, not %s"
                        % type(token).__name__)
    if not 1 <= len(raw) <= TOKEN_MAX:
        raise ValueError("a token is 1 to %d bytes, not %d"
                         % (TOKEN_MAX, len(raw)))
    if any(b < 0x21 or b > 0x7E for b in raw):
        raise ValueError("a token is printable ASCII without spaces "
                         "(0x21 to 0x7e)")
    return raw


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


class AuthKeys(NamedTuple):
    """The keys derived from a token: the client's secret and the verifier
    the server keeps."""

    client_key: bytes
    stored_key: bytes
    server_key: bytes

    @classmethod
    def from_token(cls, token: Union[str, bytes, bytearray]) -> "AuthKeys":
        """Derive the keys from a token (checked by :func:`token_bytes`)."""
        salted = hashlib.sha256(token_bytes(token)).digest()
        client_key = _hmac(salted, b"Client Key")
        return cls(client_key, hashlib.sha256(client_key).digest(),
                   _hmac(salted, b"Server Key"))

    def __repr__(self) -> str:
        return "AuthKeys(...)"  # secrets stay out of logs and tracebacks


def auth_message(device_id: bytes, client_nonce: bytes,
                 server_nonce: bytes) -> bytes:
    """AuthMessage for an id (1..255 bytes) and the two 32-byte nonces."""
    if not 1 <= len(device_id) <= P.ID_MAX:
        raise ValueError("an id is 1 to %d bytes" % P.ID_MAX)
    if len(client_nonce) != P.AUTH_NONCE_SIZE \
            or len(server_nonce) != P.AUTH_NONCE_SIZE:
        raise ValueError("a nonce is %d bytes" % P.AUTH_NONCE_SIZE)
    return (LABEL + bytes((len(device_id),)) + device_id + client_nonce
            + server_nonce)


def client_proof(keys: AuthKeys, message: bytes) -> bytes:
    """ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage)."""
    signature = _hmac(keys.stored_key, message)
    return bytes(a ^ b for a, b in zip(keys.client_key, signature))


def server_signature(server_key: bytes, message: bytes) -> bytes:
    """ServerSignature = HMAC(ServerKey, AuthMessage)."""
    return _hmac(server_key, message)


def signature_valid(keys: AuthKeys, message: bytes, signature: bytes) \
        -> bool:
    """True if ``signature`` is the server's signature of ``message``,
    compared in constant time (:func:`hmac.compare_digest`)."""
    return hmac.compare_digest(server_signature(keys.server_key, message),
                               signature)


class TokenFileError(ValueError):
    """A token file that cannot be used: missing, unreadable, empty, or a
    first line that is not a token.  The message names the file, never the
    token."""


def read_token_file(path: str) -> Tuple[bytes, Optional[str]]:
    """Read a token from ``path``: its first line, without the LF or CR LF
    that ends it.

    Returns:
        (token, warning): the token's bytes, and a warning to show when
        group or others may read the file (else None).

    Raises:
        TokenFileError: the file is missing or unreadable, empty, or its
            first line is not a token.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise TokenFileError("token file %s: %s" % (path, exc.strerror)) \
            from None
    try:
        mode = os.fstat(fd).st_mode
        # A token and CR LF at most: a longer first line is not a token.
        data = b""
        while len(data) < TOKEN_MAX + 2 and b"\n" not in data:
            chunk = os.read(fd, TOKEN_MAX + 2 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise TokenFileError("token file %s: %s" % (path, exc.strerror)) \
            from None
    finally:
        os.close(fd)
    warning = None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        warning = ("token file %s is readable by %s; chmod 600 it"
                   % (path, "others" if mode & stat.S_IROTH
                      else "its group"))
    line, newline, _ = data.partition(b"\n")
    if newline and line.endswith(b"\r"):
        line = line[:-1]
    if not data:
        raise TokenFileError("token file %s is empty" % path)
    try:
        return token_bytes(line), warning
    except ValueError as exc:
        raise TokenFileError("token file %s: its first line is not a "
                             "token: %s" % (path, exc)) from None

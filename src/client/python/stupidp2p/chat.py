"""Terminal chat: ``python3 -m stupidp2p chat --server HOST:PORT --me ID
--peer ID [--wait SEC] [--token-file FILE] [--drop]``, the Python
equivalent of ``p2pClient``.

It registers ``--me``, waits up to ``--wait`` seconds (default 30) until
``--peer`` is online, subscribes to it, then sends every line read from
standard input (without its newline) and prints every message received as
``recv data: TEXT``.  A line ``quit``, or the end of input, exits with status
0, so it works in pipes and scripts: standard input is read from the start,
and lines read while waiting are sent once the peer is online; input that
ends while waiting with nothing left to send ends the chat at once.
Received bytes that are not printable text are shown escaped (``\\xNN``,
and a backslash as ``\\\\``), so a message cannot drive the terminal or
forge a line.  Status messages go to standard error; standard output
carries only the received data, one line per message.

With ``--token-file FILE`` the id is claimed with AUTH, with the token on
the file's first line (as ``p2pClient --token-file``): a file that group or
others may read is a warning; a missing or empty file, or a first line that
is not a token, is a usage error (status 2).  The token is never printed.

With ``--drop`` (as ``p2pClient --drop``) the server is asked to drop
messages rather than disconnect a chat that falls behind; every
:class:`~stupidp2p.Gap` is a line ``missed N messages (B bytes) from ID``
on standard output, where the missing messages would have been.  A server
that does not know the policy is said so on standard error, at every
connection.

Exit status, as ``p2pClient``'s where they meet: 0 normal exit, 1 the server
could not be reached or refused a command (an AUTH refused among them), 2
bad arguments, 4 the peer did not come online within ``--wait``.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import threading
import time
from typing import Deque, List, Optional, Sequence, TextIO, Tuple

from .auth import AuthKeys, TokenFileError, read_token_file
from .client import SLOW_DISCONNECT, SLOW_DROP, Client, ConnectionState, Gap, \
    Received
from .errors import ClientClosedError, P2PError
from .escape import escape

__all__ = ["main", "parse_server", "EXIT_WAIT"]

EXIT_WAIT = 4
"""Exit status when the peer did not come online in time (p2pClient's)."""

_WAIT_MAX = 86400.0  # p2pClient's bound on -w
_INPUT_BACKLOG = 1024  # lines read ahead of sending; then reading pauses


def parse_server(text: str) -> Tuple[str, int]:
    """Parse ``HOST:PORT`` (``[v6addr]:PORT`` for IPv6) into (host, port).

    Raises:
        ValueError: when the text is not of that form or the port is not
            1..65535.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError("expected HOST:PORT, got %r" % text)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError("port must be 1..65535, got %d" % port)
    return host, port


def _wait_seconds(text: str) -> float:
    """argparse type of ``--wait``: seconds, 0 to 86400."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= _WAIT_MAX:
        raise argparse.ArgumentTypeError(
            "expected 0 to %d seconds, got %r" % (_WAIT_MAX, text))
    return value


_say_lock = threading.Lock()


def _say(text: str) -> None:
    """One status line on standard error (whole, whichever thread says it)."""
    with _say_lock:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _printer(client: Client, out: TextIO) -> None:
    """Print received messages until the client is closed."""
    for msg in client:
        _print_message(msg, out)


def _print_message(msg: Received, out: TextIO) -> None:
    if isinstance(msg, Gap):
        who = "other devices" if msg.publisher is None else escape(
            msg.publisher.encode("utf-8", "surrogateescape"))
        out.write("missed %d message%s (%d bytes) from %s\n"
                  % (msg.frames, "" if msg.frames == 1 else "s", msg.bytes,
                     who))
    else:
        out.write("recv data: %s\n" % escape(msg.data))
    out.flush()


class _Inbox:
    """What the chat waits for, under one condition: lines of standard input
    (read by a thread of its own, so that waiting for the peer and for the
    input go together), the end of the input, and the peer's presence.

    The reader uses ``os.read`` on the descriptor, not ``sys.stdin``: a
    daemon thread blocked inside a buffered stream would hold its lock when
    the interpreter exits.
    """

    def __init__(self, fd: int) -> None:
        self.cond = threading.Condition()
        self.lines: Deque[bytes] = collections.deque()
        self.ended = False          # end of input, a read error, or "quit"
        self.peer_online = False
        self._fd = fd
        threading.Thread(target=self._read, name="p2pchat-input",
                         daemon=True).start()

    def _read(self) -> None:
        partial = b""
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError as exc:  # EBADF for fd -1: no standard input
                _say("p2pchat: reading standard input: %s" % exc)
                chunk = b""
            if not chunk:
                break
            *lines, partial = (partial + chunk).split(b"\n")
            for line in lines:
                if not self._put(line):
                    return
        if partial:
            self._put(partial)
        self._end()

    def _put(self, line: bytes) -> bool:
        """Queue one line; False once "quit" ended the input."""
        line = line.rstrip(b"\r")
        if line == b"quit":
            self._end()
            return False
        if line:
            with self.cond:
                self.cond.wait_for(
                    lambda: len(self.lines) < _INPUT_BACKLOG)
                self.lines.append(line)
                self.cond.notify_all()
        return True

    def _end(self) -> None:
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def poke(self) -> None:
        """Wake a waiter to look at the world again."""
        with self.cond:
            self.cond.notify_all()

    def set_peer(self, online: bool) -> None:
        with self.cond:
            self.peer_online = online
            self.cond.notify_all()

    def drained(self) -> bool:
        """True when the input has ended and every line was taken
        (call with ``cond`` held)."""
        return self.ended and not self.lines

    def next_line(self) -> Optional[bytes]:
        """The next line to send, or None at the end of the input."""
        with self.cond:
            self.cond.wait_for(lambda: self.lines or self.ended)
            if not self.lines:
                return None
            line = self.lines.popleft()
            self.cond.notify_all()
            return line


def _wait_for_peer(client: Client, peer: str, inbox: _Inbox,
                   wait: float) -> Optional[int]:
    """Wait until ``peer`` is online: None when it is, else the exit status
    (0: the input ended with nothing to send; 1: the client closed;
    EXIT_WAIT: ``wait`` seconds passed).  Lines read meanwhile stay queued
    in ``inbox`` for the chat to send."""
    deadline = time.monotonic() + wait
    v2 = (client.protocol_version or 1) >= 2
    announced = False
    while True:
        online = False
        if not v2:
            # A v1 server has no presence events: ask once a second.
            try:
                online = client.is_alive(peer)
            except ClientClosedError:
                return 1
            except P2PError:
                pass  # reconnecting: ask again
        left = deadline - time.monotonic()
        with inbox.cond:
            if online or (v2 and inbox.peer_online):
                return None
            if client.closed:
                return 1
            if inbox.drained():
                _say("end of input while waiting for %s; nothing to send"
                     % peer)
                return 0
            if left <= 0:
                _say("p2pchat: %s did not come online within %g s"
                     % (peer, wait))
                return EXIT_WAIT
            if not announced:
                _say("waiting for %s to come online..." % peer)
                announced = True
            inbox.cond.wait(left if v2 else min(left, 1.0))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the chat; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python3 -m stupidp2p chat",
        description="Chat with another device through a stupidP2P server: "
                    "lines typed are sent, messages received are printed "
                    "as 'recv data: ...'; 'quit' or end of input exits.",
        epilog="Exit status: 0 done, 1 the server could not be reached or "
               "refused a command, 2 usage error, 4 the peer did not come "
               "online within --wait.")
    parser.add_argument("--server", required=True, metavar="HOST:PORT",
                        help="the server, e.g. 127.0.0.1:4040")
    parser.add_argument("--me", required=True, metavar="ID",
                        help="this device's id")
    parser.add_argument("--peer", required=True, metavar="ID",
                        help="the id of the device to chat with")
    parser.add_argument("--wait", type=_wait_seconds, default=30.0,
                        metavar="SEC",
                        help="how long to wait for the peer to come online "
                             "(default 30; 0 checks once)")
    parser.add_argument("--timeout", type=float, default=3.0,
                        metavar="SEC", help="reply timeout (default 3)")
    parser.add_argument("--protocol", type=int, choices=(1, 2), default=2,
                        help="highest protocol version to ask for "
                             "(default 2)")
    parser.add_argument("--token-file", metavar="FILE",
                        help="claim --me with AUTH, with the token on the "
                             "file's first line (keep it private: chmod "
                             "600)")
    parser.add_argument("--drop", action="store_true",
                        help="when this chat falls behind, let the server "
                             "drop messages rather than disconnect it; each "
                             "gap is a line 'missed N messages (B bytes) "
                             "from ID' on standard output")
    args = parser.parse_args(argv)
    try:
        host, port = parse_server(args.server)
    except ValueError as exc:
        parser.error(str(exc))
    if args.me == args.peer:
        parser.error("--me and --peer must differ")
    keys: Optional[AuthKeys] = None
    if args.token_file is not None:
        try:
            token, warning = read_token_file(args.token_file)
        except TokenFileError as exc:
            parser.error(str(exc))
        if warning is not None:
            _say("p2pchat: warning: %s" % warning)
        keys = AuthKeys.from_token(token)
        del token

    # What the terminal's encoding cannot show is escaped, not an error.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")
    inbox = _Inbox(sys.stdin.fileno() if sys.stdin is not None else -1)

    def on_presence(device: str, online: bool) -> None:
        if device == args.peer:
            inbox.set_peer(online)
            _say("%s is %s" % (device, "online" if online else "offline"))

    chatting = threading.Event()
    client: Optional[Client] = None

    def check_drop() -> None:
        if args.drop and client is not None and not client.drop_in_force:
            _say("p2pchat: this server does not support --drop: if this "
                 "client falls behind, it is disconnected")

    def on_state(state: ConnectionState) -> None:
        inbox.poke()  # a wait for the peer ends if the client closed
        if not chatting.is_set():
            return
        if state is ConnectionState.DISCONNECTED:
            _say("connection lost, reconnecting...")
        elif state is ConnectionState.CONNECTED:
            _say("reconnected")
            check_drop()

    def on_id_lost(device: str, reason: P2PError) -> None:
        _say("p2pchat: %s is no longer registered: %s" % (device, reason))

    try:
        client = Client(host, port, timeout=args.timeout,
                        version=args.protocol, token=keys,
                        slow_consumer=SLOW_DROP if args.drop
                        else SLOW_DISCONNECT,
                        on_presence=on_presence, on_state=on_state,
                        on_id_lost=on_id_lost)
    except P2PError as exc:
        _say("p2pchat: %s" % exc)
        return 1
    check_drop()
    printer = threading.Thread(target=_printer, args=(client, sys.stdout),
                               name="p2pchat-printer", daemon=True)
    try:
        try:
            status = _meet(client, args.me, args.peer, inbox, args.wait)
        except P2PError as exc:
            _say("p2pchat: %s" % exc)
            return 1
        if status is not None:
            return status
        chatting.set()
        _say("chatting as %s with %s (protocol v%s); 'quit' exits"
             % (args.me, args.peer, client.protocol_version))
        printer.start()
        while True:
            line = inbox.next_line()
            if line is None:
                return 0
            try:
                client.send(line)
            except P2PError as exc:
                _say("send failed: %s" % exc)
    finally:
        # Stop the printer before the interpreter does: a daemon thread
        # inside sys.stdout at exit could hold its lock.
        client.close()
        if printer.is_alive():
            printer.join(max(args.timeout, 1.0))


def _meet(client: Client, me: str, peer: str, inbox: _Inbox,
          wait: float) -> Optional[int]:
    """Register ``me``, wait for ``peer`` and subscribe to it: None when
    the chat can start, else the exit status (see :func:`_wait_for_peer`).

    Raises:
        P2PError: the server refused a command or could not be reached.
    """
    client.register(me)
    if (client.protocol_version or 1) >= 2:
        # A v2 server accepts the subscription at once and tells when the
        # peer comes online.
        client.subscribe(peer)
        if client.is_alive(peer):
            inbox.set_peer(True)
    status = _wait_for_peer(client, peer, inbox, wait)
    if status is None and peer not in client.subscriptions:
        client.subscribe(peer)
    return status


def run(argv: List[str]) -> int:
    """Entry point used by ``python3 -m stupidp2p``."""
    return main(argv)

"""Terminal chat: ``python3 -m stupidp2p chat --server HOST:PORT --me ID
--peer ID``, the Python equivalent of ``p2pClient``.

It registers ``--me``, waits until ``--peer`` is online, subscribes to it,
then sends every line read from standard input (without its newline) and
prints every message received as ``recv data: TEXT``.  A line ``quit``, or
the end of input, exits with status 0 (so it works in pipes and scripts).
Status messages go to standard error; standard output carries only the
received data, one line each.

Exit status: 0 normal exit, 1 the server could not be reached or refused a
command, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import List, Optional, Sequence, TextIO, Tuple

from .client import Client, ConnectionState, Message
from .errors import P2PError

__all__ = ["main", "parse_server"]


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


def _print_message(msg: Message, out: TextIO) -> None:
    out.write("recv data: %s\n" % msg.text())
    out.flush()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the chat; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python3 -m stupidp2p chat",
        description="Chat with another device through a stupidP2P server: "
                    "lines typed are sent, messages received are printed "
                    "as 'recv data: ...'; 'quit' or end of input exits.")
    parser.add_argument("--server", required=True, metavar="HOST:PORT",
                        help="the server, e.g. 127.0.0.1:4040")
    parser.add_argument("--me", required=True, metavar="ID",
                        help="this device's id")
    parser.add_argument("--peer", required=True, metavar="ID",
                        help="the id of the device to chat with")
    parser.add_argument("--timeout", type=float, default=3.0,
                        metavar="SEC", help="reply timeout (default 3)")
    parser.add_argument("--protocol", type=int, choices=(1, 2), default=2,
                        help="highest protocol version to ask for "
                             "(default 2)")
    args = parser.parse_args(argv)
    try:
        host, port = parse_server(args.server)
    except ValueError as exc:
        parser.error(str(exc))
    if args.me == args.peer:
        parser.error("--me and --peer must differ")

    peer_online = threading.Event()

    def on_presence(device: str, online: bool) -> None:
        if device == args.peer:
            if online:
                peer_online.set()
            else:
                peer_online.clear()
            _say("%s is %s" % (device, "online" if online else "offline"))

    def on_state(state: ConnectionState) -> None:
        if state is ConnectionState.DISCONNECTED:
            _say("connection lost, reconnecting...")
        elif state is ConnectionState.CONNECTED:
            _say("reconnected")

    try:
        client = Client(host, port, timeout=args.timeout,
                        version=args.protocol, on_presence=on_presence)
    except P2PError as exc:
        _say("p2pchat: %s" % exc)
        return 1
    with client:
        try:
            client.register(args.me)
            if client.protocol_version and client.protocol_version >= 2:
                # A v2 server accepts the subscription at once and tells
                # when the peer comes online.
                client.subscribe(args.peer)
                if not peer_online.is_set():
                    _say("waiting for %s to come online..." % args.peer)
                    peer_online.wait()
            else:
                if not client.is_alive(args.peer):
                    _say("waiting for %s to come online..." % args.peer)
                    # A v1 server has no presence events: ask once a second.
                    while not client.is_alive(args.peer):
                        if client.closed:
                            return 1
                        threading.Event().wait(1.0)
                client.subscribe(args.peer)
        except P2PError as exc:
            _say("p2pchat: %s" % exc)
            return 1
        client.on_state = on_state
        _say("chatting as %s with %s (protocol v%s); 'quit' exits"
             % (args.me, args.peer, client.protocol_version))
        printer = threading.Thread(target=_printer, args=(client, sys.stdout),
                                   name="p2pchat-printer", daemon=True)
        printer.start()
        for line in sys.stdin:
            line = line.rstrip("\r\n")
            if line == "quit":
                break
            if not line:
                continue
            try:
                client.send(line)
            except P2PError as exc:
                _say("send failed: %s" % exc)
    return 0


def run(argv: List[str]) -> int:
    """Entry point used by ``python3 -m stupidp2p``."""
    return main(argv)

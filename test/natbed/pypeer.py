"""pypeer.py - natpeer.c's part in the NAT test bed, played by the Python
client (src/client/python), for the cases that put a Python device on one
side of a path (py_*.sh). It writes the same lines on standard output, for
the scripts to read (T_MS: the wall clock in milliseconds):

  T_MS registered ID
  T_MS path direct|relay     the path of our send_to's to the peer changed
  T_MS direct after MS       (send) the path was made that fast
  T_MS no direct path        ... or was not, within --wait-direct
  T_MS got N                 (receive) every 100th message received
  T_MS complete N            all N messages came, once each, in order
  T_MS ERROR ...             a message missing, twice or out of order
  T_MS sent N

and the client's log on standard error.

Jobs (--job): receive (take numbered messages "seq K" from the peer until
--count have come, checking each; runs until killed or --seconds pass) and
send (wait, bounded, for a direct path, then send --count numbered
messages, one every --interval-ms).

Options: --server IP --port P --me ID --peer ID [--direct off|accept|auto]
[--connect] [--keepalive MS] [--wait-direct MS] [--count N]
[--interval-ms MS] [--seconds S]
"""

import argparse
import logging
import sys
import threading
import time

from stupidp2p import Client, P2PError, Path


def say(text: str) -> None:
    print("%d %s" % (int(time.time() * 1000), text), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--me", required=True)
    ap.add_argument("--peer", required=True)
    ap.add_argument("--direct", default="auto",
                    choices=("off", "accept", "auto"))
    ap.add_argument("--connect", action="store_true")
    ap.add_argument("--keepalive", type=int, default=25000)
    ap.add_argument("--wait-direct", type=int, default=10000)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--interval-ms", type=int, default=0)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--job", default="receive", choices=("receive", "send"))
    o = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(created).3f lib: %(message)s")
    direct = threading.Event()

    def on_path(peer: str, path: Path) -> None:
        if path is Path.DIRECT:
            direct.set()
        else:
            direct.clear()
        say("path %s" % path.value)

    client = Client(o.server, o.port, direct=o.direct,
                    direct_keepalive=o.keepalive / 1000.0, on_path=on_path,
                    heartbeat=1.0, timeout=5.0)
    client.register(o.me)
    say("registered %s" % o.me)
    if o.job == "receive":
        expect, bad = 0, False
        end = time.monotonic() + o.seconds
        while time.monotonic() < end:
            m = client.recv(timeout=max(0.0, end - time.monotonic()))
            if m is None or not m.text().startswith("seq "):
                continue
            k = int(m.text()[4:])
            if k != expect and not bad:
                bad = True
                say("ERROR expected seq %d, got %d" % (expect, k))
            expect = k + 1
            if expect % 100 == 0:
                say("got %d" % expect)
            if expect == o.count and not bad:
                say("complete %d" % o.count)
        client.close()
        return 1 if bad else 0
    # send: the peer there, and a direct path if one can be made.
    for _ in range(100):
        if client.is_alive(o.peer):
            break
        time.sleep(0.1)
    start = time.monotonic()
    if o.connect:
        try:
            client.connect_direct(o.peer)
        except P2PError as exc:
            say("connect_direct: %s" % exc)
    elif o.direct == "auto":
        client.send_to(o.peer, "hello")  # a send_to starts the attempt
    if direct.wait(o.wait_direct / 1000.0):
        say("direct after %d" % int((time.monotonic() - start) * 1000))
    else:
        say("no direct path")
    for k in range(o.count):
        for _ in range(300):  # a relay reconnect takes a moment
            try:
                client.send_to(o.peer, "seq %d" % k)
                break
            except P2PError:
                time.sleep(0.01)
        else:
            say("ERROR send %d failed" % k)
            return 1
        if o.interval_ms:
            time.sleep(o.interval_ms / 1000.0)
    say("sent %d" % o.count)
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

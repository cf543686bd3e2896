#!/usr/bin/env python3
"""pybench.py - measure the Python client against a stupidP2P server.

Usage:
    scripts/pybench.py [--server HOST:PORT | --binary PATH] [--calls N]
                       [--messages N] [--size BYTES]

Without --server it starts the server binary (default ./p2pServer at the
repository root) on 127.0.0.1 and a free port, and stops it afterwards.

It prints:
  * the round trip of one check_alive call: median, 90th and 99th
    percentile over --calls calls, for the Pythonic face (Client.is_alive)
    and the compatibility face (stupidP2PClient.checkDeviceAlive);
  * messages per second from one Python client to one subscriber (another
    client in the same process), --messages messages of --size bytes:
    pipelined (send(wait=False)) and acknowledged one by one (send()).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Callable, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src", "client", "python"))

from stupidp2p import Client, stupidP2PClient  # noqa: E402
from stupidp2p.chat import parse_server  # noqa: E402


def start_server(binary: str) -> Tuple[subprocess.Popen, int]:
    """Start the server on a free loopback port; wait until it accepts."""
    for _ in range(20):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen([binary, "--bind", "127.0.0.1",
                                 "--log-level", "error", str(port)])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                return proc, port
            except OSError:
                time.sleep(0.01)
        proc.kill()
        proc.wait()
    sys.exit("pybench: cannot start %s" % binary)


def percentiles(samples: List[float]) -> str:
    samples = sorted(samples)
    def pick(q: float) -> float:
        return samples[min(len(samples) - 1, int(q * len(samples)))]
    return ("median %.1f us, p90 %.1f us, p99 %.1f us"
            % (statistics.median(samples) * 1e6, pick(0.9) * 1e6,
               pick(0.99) * 1e6))


def time_calls(call: Callable[[], object], n: int) -> List[float]:
    for _ in range(min(100, n)):  # warm up
        call()
    out = []
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        call()
        out.append(clock() - t0)
    return out


def throughput(host: str, port: int, n: int, size: int, wait: bool) -> float:
    """Messages per second from one client to one subscriber."""
    tag = "bench-%d-%d" % (os.getpid(), int(wait))
    with Client(host, port, queue_size=n + 1) as pub, \
            Client(host, port, queue_size=n + 1) as sub:
        pub.register(tag)
        sub.subscribe(tag)
        payload = b"x" * size
        done = threading.Event()
        count = [0]

        def reader() -> None:
            for _ in sub:
                count[0] += 1
                if count[0] == n:
                    done.set()
                    return

        threading.Thread(target=reader, daemon=True).start()
        t0 = time.perf_counter()
        for _ in range(n):
            pub.send(payload, wait=wait)
        if not done.wait(120):
            sys.exit("pybench: only %d of %d messages arrived" % (count[0], n))
        elapsed = time.perf_counter() - t0
        return n / elapsed


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", metavar="HOST:PORT")
    ap.add_argument("--binary", default=os.path.join(ROOT, "p2pServer"))
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args(argv)

    proc = None
    if args.server:
        host, port = parse_server(args.server)
    else:
        proc, port = start_server(args.binary)
        host = "127.0.0.1"
    try:
        print("python %s, server %s:%d" % (sys.version.split()[0], host, port))
        with Client(host, port) as c:
            c.register("bench-alive")
            samples = time_calls(lambda: c.is_alive("bench-alive"),
                                 args.calls)
            print("Client.is_alive round trip (v%d), %d calls: %s"
                  % (c.protocol_version, args.calls, percentiles(samples)))
        old = stupidP2PClient(host, port)
        if not old.initClient():
            sys.exit("pybench: cannot connect")
        try:
            samples = time_calls(lambda: old.checkDeviceAlive("bench-alive"),
                                 args.calls)
            print("stupidP2PClient.checkDeviceAlive round trip, %d calls: %s"
                  % (args.calls, percentiles(samples)))
        finally:
            old.deinitClient()
        rate = throughput(host, port, args.messages, args.size, wait=False)
        print("send(wait=False): %d messages of %d bytes: %.0f messages/s"
              % (args.messages, args.size, rate))
        n = max(1, args.messages // 10)
        rate = throughput(host, port, n, args.size, wait=True)
        print("send() acknowledged one by one: %d messages of %d bytes: "
              "%.0f messages/s" % (n, args.size, rate))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

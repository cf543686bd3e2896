"""Shared helpers of the Python client's tests (not a test module itself).

* :class:`ServerProcess` runs the real ``p2pServer`` (``$P2P_SERVER``,
  default ``<repo>/p2pServer``) on 127.0.0.1 and an ephemeral port, waits
  until it accepts connections, and can stop and restart it on the same port.
* :class:`FakeV1Server` is a small in-process server that speaks only the
  original protocol and ignores HELLO like the original server; it can also
  go mute (accept, read, never answer).
* :class:`ScriptedServer` runs a test's own function on every connection it
  accepts: the server that lies, stalls or trickles; :func:`answer_requests`
  plays a v2 server's part of a handshake for it, :func:`answer_then_send`
  a whole v2 server that sends frames of the test's at a given point.
* :func:`wait_until` waits for a condition with a deadline.
* :func:`run_python` runs a Python program in a subprocess with the client
  package on its path.

Every wait here has a deadline; nothing sleeps a fixed time to synchronise.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from typing import Callable, Dict, Iterator, List, Optional, Set

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PYTHON_SRC = os.path.join(REPO, "src", "client", "python")
SERVER = os.environ.get("P2P_SERVER") or os.path.join(REPO, "p2pServer")

if PYTHON_SRC not in sys.path:
    sys.path.insert(0, PYTHON_SRC)

from stupidp2p import codec, protocol  # noqa: E402  (needs the path above)


def require_server() -> None:
    """Skip (standalone) or fail (under ``make test``) without the binary."""
    if os.access(SERVER, os.X_OK):
        return
    if os.environ.get("P2P_SERVER"):
        raise AssertionError("P2P_SERVER=%s is not an executable" % SERVER)
    raise unittest.SkipTest("no server binary at %s (run make first)" % SERVER)


def reserve_port() -> socket.socket:
    """A socket bound to a free port on 127.0.0.1, with SO_REUSEADDR and not
    listening: it keeps other tests (their bind to port 0, their outgoing
    connections) off the port for as long as it stays open, while the server
    itself, which binds with SO_REUSEADDR, can still listen there. Holding it
    across a restart is what keeps another test's server from taking the
    port while ours is down."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0,
               interval: float = 0.005) -> bool:
    """Evaluate ``predicate`` until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def can_connect(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class ServerProcess:
    """The real server on 127.0.0.1, on an ephemeral port.

    Args:
        *args: extra options (e.g. ``"--idle-timeout", "2"``).
    """

    def __init__(self, *args: str) -> None:
        require_server()
        self.args = list(args)
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None
        self.log = tempfile.TemporaryFile()
        self.reservation: Optional[socket.socket] = None

    @property
    def address(self) -> str:
        return "127.0.0.1:%d" % self.port

    def start(self, port: Optional[int] = None, timeout: float = 10.0) \
            -> "ServerProcess":
        """Start the server (on ``port``, else on a fresh free port) and
        wait until it accepts connections."""
        deadline = time.monotonic() + timeout
        while True:
            if port is None:
                if self.reservation is not None:
                    self.reservation.close()
                self.reservation = reserve_port()
                self.port = self.reservation.getsockname()[1]
            else:
                self.port = port
            self.proc = subprocess.Popen(
                [SERVER, "--bind", "127.0.0.1", "--log-level", "debug"]
                + self.args + [str(self.port)],
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break  # exited at once: port taken; try again
                if can_connect(self.port):
                    return self
                time.sleep(0.005)
            if time.monotonic() >= deadline:
                self.kill()
                raise AssertionError("server did not start:\n" + self.output())
            # A restart on a fixed port may meet the old socket for a moment.

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the server and wait for it to exit; return its status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        return rc

    def kill(self) -> None:
        """SIGKILL: the kernel closes every connection, no BYE."""
        self.stop(signal.SIGKILL)

    def restart(self, sig: int = signal.SIGKILL) -> None:
        """Stop the server and start a new one on the same port."""
        port = self.port
        self.stop(sig)
        self.start(port)

    def output(self) -> str:
        """Everything the server logged so far (all its runs).  pread, not
        seek and read: the server writes through the same file offset, and
        moving it would make the server overwrite what it logged."""
        if self.log.closed:
            return ""
        fd = self.log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8",
                                                             "replace")

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.release()

    def release(self) -> None:
        """Give the port back (the server cannot be restarted on it after)."""
        if self.reservation is not None:
            self.reservation.close()
            self.reservation = None
        self.log.close()


def read_payloads(sock: socket.socket,
                  max_payload: int = 1 << 24) -> Iterator[bytes]:
    """The payloads of the frames ``sock`` receives, until EOF."""
    decoder = codec.FrameDecoder(max_payload)
    while True:
        data = sock.recv(65536)
        if not data:
            return
        yield from decoder.feed(data)


class ThreadedServer:
    """A listener on 127.0.0.1 and an ephemeral port; each connection it
    accepts runs :meth:`handle` in a thread of its own and is closed when
    that returns.

    Attributes:
        connections: connections accepted so far.
        closed: set by :meth:`close`.
    """

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._socks: List[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def handle(self, sock: socket.socket, n: int) -> None:
        """Serve connection number ``n`` (from 0)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop accepting and shut every connection down (handlers blocked
        on a socket wake up with an error or EOF)."""
        self.closed.set()
        # close() alone would not wake a thread blocked in accept(), and the
        # kernel would go on accepting; shutdown() does wake it (Linux).
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            self._drop(s)

    def _drop(self, s: socket.socket) -> None:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                s, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                n = self.connections
                self.connections += 1
                self._socks.append(s)
            threading.Thread(target=self._run, args=(s, n),
                             daemon=True).start()

    def _run(self, s: socket.socket, n: int) -> None:
        try:
            self.handle(s, n)
        except OSError:
            pass
        finally:
            self._drop(s)
            s.close()


class FakeV1Server(ThreadedServer):
    """An original (v1-only) server in a thread: HELLO and every other
    unknown command are ignored, as the original server did.

    Attributes:
        mute: while true, nothing is answered or delivered.
        commands: every command byte received, in order (all connections).
    """

    def __init__(self) -> None:
        self.mute = False
        self.commands: List[int] = []
        self._ids: Dict[bytes, socket.socket] = {}
        self._id_of: Dict[socket.socket, bytes] = {}
        self._subs: Dict[bytes, Set[socket.socket]] = {}
        super().__init__()

    @staticmethod
    def _send(s: socket.socket, payload: bytes) -> None:
        try:
            s.sendall(codec.frame(payload))
        except OSError:
            pass

    def _drop(self, s: socket.socket) -> None:
        with self._lock:
            dev = self._id_of.pop(s, None)
            if dev is not None and self._ids.get(dev) is s:
                del self._ids[dev]
            for subs in self._subs.values():
                subs.discard(s)
        super()._drop(s)

    def handle(self, s: socket.socket, n: int) -> None:
        for payload in read_payloads(s):
            self._handle(s, payload)

    def _handle(self, s: socket.socket, p: bytes) -> None:
        # The original parsed no layout: the data after the command byte is
        # the argument, whatever its length.
        cmd, arg = p[0], p[1:]
        with self._lock:
            self.commands.append(cmd)
            if self.mute:
                return
            reply: Optional[int] = None
            if cmd == protocol.CMD_REGISTER:
                reply = 0
                if arg:
                    old = self._ids.get(arg)
                    if old is not None and old is not s:
                        self._id_of.pop(old, None)
                    prev = self._id_of.get(s)
                    if prev is not None:
                        self._ids.pop(prev, None)
                    self._ids[arg] = s
                    self._id_of[s] = arg
                    reply = 1
            elif cmd == protocol.CMD_SUBSCRIBE:
                ok = arg in self._ids and self._id_of.get(s) != arg
                if ok:
                    self._subs.setdefault(arg, set()).add(s)
                reply = 1 if ok else 0
            elif cmd == protocol.CMD_SEND:
                dev = self._id_of.get(s)
                if dev is None:
                    reply = 0
                else:
                    for sub in list(self._subs.get(dev, ())):
                        self._send(sub, codec.encode_send_head() + arg)
                    reply = 1
            elif cmd == protocol.CMD_UNREGISTER:
                dev = self._id_of.pop(s, None)
                if dev is not None:
                    self._ids.pop(dev, None)
                for subs in self._subs.values():
                    subs.discard(s)
                reply = 1
            elif cmd == protocol.CMD_UNSUBSCRIBE:
                self._subs.get(arg, set()).discard(s)
                reply = 1
            elif cmd == protocol.CMD_CHECK_ALIVE:
                reply = 1 if arg in self._ids else 0
            elif cmd == protocol.CMD_HEARTBEAT:
                reply = 1
            # Anything else (HELLO included) is ignored, as the original did.
            if reply is not None:
                self._send(s, codec.encode_reply(cmd, reply))


class ScriptedServer(ThreadedServer):
    """A server that runs ``script(sock, n)`` on every connection it accepts
    (``n`` counts them from 0): the server that lies, stalls or trickles."""

    def __init__(self, script: Callable[[socket.socket, int], None]) -> None:
        self.script = script
        super().__init__()

    def handle(self, sock: socket.socket, n: int) -> None:
        self.script(sock, n)


GRANT = (protocol.VERSION_2, protocol.DEFAULT_MAX_FRAME, 300)
"""A HELLO reply's version, max_frame and idle timeout as p2pServer sends
them by default."""


def answer_requests(sock: socket.socket, count: int,
                    grant: tuple = GRANT) -> List[codec.Request]:
    """Read ``count`` requests from ``sock`` and answer each as a v2 server
    would that says yes to everything: HELLO with ``grant``, the rest with
    status 1.  Returns the requests.  A client's handshake is HELLO,
    HEARTBEAT, then one REGISTER or SUBSCRIBE per id it restores."""
    decoder = codec.FrameDecoder(1 << 24)
    requests: List[codec.Request] = []
    while len(requests) < count:
        data = sock.recv(65536)
        if not data:
            raise OSError("client left after %d requests" % len(requests))
        for payload in decoder.feed(data):
            req = codec.parse_request(payload)
            requests.append(req)
            if req.command == protocol.CMD_HELLO:
                reply = codec.encode_hello_reply(*grant)
            else:
                reply = codec.encode_reply(req.command, protocol.STATUS_OK)
            sock.sendall(codec.frame(reply))
    return requests


def answer_then_send(payloads: List[bytes], after: int = 4,
                     refuse_drop: bool = False,
                     log: Optional[List[codec.Request]] = None) \
        -> Callable[[socket.socket, int], None]:
    """A :class:`ScriptedServer` script: a v2 server that answers every
    request until the client leaves (HELLO with :data:`GRANT`, or with 88
    04 when it asks for the DROP flag and ``refuse_drop``: an older v2
    server), and on the first connection sends ``payloads``, a frame each,
    right after answering request number ``after`` (4: a handshake asking
    for DROP, HELLO, HELLO, HEARTBEAT, then one request of the test's).
    ``log`` collects the requests."""
    def script(sock: socket.socket, n: int) -> None:
        decoder = codec.FrameDecoder(1 << 24)
        answered = 0
        while True:
            data = sock.recv(65536)
            if not data:
                return
            for payload in decoder.feed(data):
                req = codec.parse_request(payload)
                if log is not None:
                    log.append(req)
                if req.command != protocol.CMD_HELLO:
                    reply = codec.encode_reply(req.command, protocol.STATUS_OK)
                elif refuse_drop and req.flags & protocol.HELLO_FLAG_DROP:
                    reply = codec.encode_reply(req.command,
                                               protocol.STATUS_BAD_ARGUMENT)
                else:
                    reply = codec.encode_hello_reply(*GRANT)
                sock.sendall(codec.frame(reply))
                answered += 1
                if n == 0 and answered == after:
                    sock.sendall(b"".join(codec.frame(p) for p in payloads))
    return script


def python_env() -> Dict[str, str]:
    """Environment for a child Python with the client package on its path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHON_SRC + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_python(code: str, *args: str, timeout: float = 30.0,
               cwd: Optional[str] = None) -> subprocess.CompletedProcess:
    """Run ``code`` as a program in a new interpreter; capture its output."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False,
                                     dir=cwd) as f:
        f.write(code)
        path = f.name
    try:
        return subprocess.run([sys.executable, path] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout, env=python_env(),
                              cwd=cwd)
    finally:
        os.unlink(path)


class Collector:
    """Records callback calls and lets a test wait for one."""

    def __init__(self) -> None:
        self.items: List[object] = []
        self._cond = threading.Condition()

    def __call__(self, *args: object) -> None:
        with self._cond:
            self.items.append(args[0] if len(args) == 1 else args)
            self._cond.notify_all()

    def wait_for(self, item: object, timeout: float = 5.0) -> bool:
        """Wait until ``item`` has been recorded."""
        with self._cond:
            return self._cond.wait_for(lambda: item in self.items, timeout)


class ClientCase(unittest.TestCase):
    """A test class whose clients connect to servers of its own making."""

    def client(self, port: int, **options: object):
        """A :class:`stupidp2p.Client` connected to 127.0.0.1:``port``,
        closed after the test."""
        from stupidp2p import Client
        options.setdefault("timeout", 5.0)
        c = Client("127.0.0.1", port, **options)
        self.addCleanup(c.close)
        return c


class ServerCase(unittest.TestCase):
    """A test class with its own real server, started once for the class."""

    server_args: tuple = ()
    server: ServerProcess

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = ServerProcess(*cls.server_args).start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()
        cls.server.release()
        cls.server.log.close()

    def client(self, **options: object):
        """A connected :class:`stupidp2p.Client`, closed after the test."""
        from stupidp2p import Client
        options.setdefault("timeout", 5.0)
        c = Client("127.0.0.1", self.server.port, **options)
        self.addCleanup(c.close)
        return c

    def uid(self, name: str) -> str:
        """A device id unique to this test."""
        return "%s.%s" % (self._testMethodName, name)

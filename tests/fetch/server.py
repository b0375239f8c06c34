"""A hostile image server on 127.0.0.1 for fetch tests: good images and many ways to fail.

Every accepted connection is counted, so a test can prove no request was made. Handlers that
wait (the slow and hostile ones) are bounded by HOSTILE_SECONDS and wake up when the fixture
shuts the server down, so no handler thread outlives it. A second listener (`stall_url`)
accepts TCP connections and never says a word: a TLS server that never answers the ClientHello.
"""

from __future__ import annotations

import io
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pyarrow as pa
from PIL import Image

# Failure kinds the issue lists, with the reject reason each must produce.
FAILURES = {
    "status404": "http_404",
    "status500": "http_500",
    "slow": "timeout",
    "loop": "redirect_loop",
    "html": "wrong_content_type",
    "truncated": "truncated",
    "huge": "too_large",
    "hugestream": "too_large",
}
# Servers that keep every socket read busy but never finish: only a wall-clock deadline stops
# them. Reasons are what the fetch stage must report (tests/fetch/test_deadline.py).
HOSTILE = {
    "dripheaders": "timeout",  # status line and headers, one byte per second
    "continue": "timeout",  # `HTTP/1.1 100 Continue` forever (http.client skips 1xx silently)
    "dripbody": "timeout",  # headers at once, then the body one byte per second
    "slowhops": "timeout",  # a chain of redirects, each hop quick enough alone
    "reset": "connection_error",  # half the body, then a TCP RST (SO_LINGER 0)
    "loop": "redirect_loop",  # redirects to itself
}
HOSTILE_SECONDS = 60.0  # no hostile handler runs longer than this (or past the fixture)
SLOW_SECONDS = 8.0  # longer than the tests' fetch.timeout_s
DELAY_SECONDS = 1.0  # "delay" URLs: slow but within the tests' timeouts
HUGE_BYTES = 3_000_000  # more than the tests' fetch.max_bytes


def image_bytes(index: int, size: tuple[int, int] = (96, 72), fmt: str = "PNG") -> bytes:
    """A distinct blocky colour image (sharp, mid exposure, its own perceptual hash)."""
    rng = np.random.default_rng(index)
    grid = rng.integers(30, 225, size=(9, 12, 3), dtype=np.uint8)
    image = Image.fromarray(grid).resize(size, Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()



def url_batch(urls: list[str]) -> pa.Table:
    """URL-list rows as the fetch stage receives them (one shard, no images yet)."""
    n = len(urls)
    return pa.table({"key": [f"k{i:03d}" for i in range(n)], "shard": ["part-000000"] * n,
                     "url": pa.array(urls, pa.string()), "image_bytes": pa.nulls(n, pa.binary())})

@dataclass
class ServerState:
    connections: int = 0
    paths: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Called with the PID of the process behind each connection, while it is connected (Linux);
    # what it returns goes to `clients`.
    probe: Callable[[int], object] | None = None
    clients: list = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)  # set when the fixture ends

    def wait(self, seconds: float) -> bool:
        """Pace a handler; True when the server is shutting down (the handler should return)."""
        return self.stop.wait(seconds)


def client_pid(port: int) -> int | None:
    """PID of the local process whose TCP socket has source port `port` (via /proc, Linux only)."""
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port:
                inode = fields[9]
                break
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == target for fd in os.listdir(f"/proc/{pid}/fd")):
                return int(pid)
        except OSError:
            continue
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: ServerState

    def setup(self):
        pid = client_pid(self.client_address[1]) if self.state.probe else None
        found = self.state.probe(pid) if pid is not None else None
        with self.state.lock:
            self.state.connections += 1
            if pid is not None:
                self.state.clients.append(found)
        super().setup()

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        with self.state.lock:
            self.state.paths.append(self.path)
        parts = self.path.strip("/").split("/")
        kind = parts[0]
        if kind == "img":
            index = int(parts[1].split(".")[0])
            return self._send(200, image_bytes(index), "image/png")
        if kind == "delay":  # a slow but good server: img/N after DELAY_SECONDS
            self.state.wait(DELAY_SECONDS)
            return self._send(200, image_bytes(int(parts[1])), "image/png")
        if kind == "jpeg":  # a lossy re-encode of img/N: a near duplicate
            return self._send(200, image_bytes(int(parts[1]), fmt="JPEG"), "image/jpeg")
        if kind == "status404":
            return self._send(404, b"not here", "text/plain")
        if kind == "flaky":  # fails the first request for each path, then serves an image
            with self.state.lock:
                first = self.state.paths.count(self.path) == 1
            if first:
                return self._send(503, b"try again", "text/plain")
            return self._send(200, image_bytes(int(parts[1])), "image/png")
        if kind == "status500":
            return self._send(500, b"broken", "text/plain")
        if kind in ("dripheaders", "continue", "dripbody", "slowhops", "reset"):
            return getattr(self, f"_hostile_{kind}")(parts)
        if kind == "slow":
            self.state.wait(SLOW_SECONDS)
            return self._send(200, image_bytes(0), "image/png")
        if kind == "drip":  # a byte every 0.1 s: each read is quick, the whole body is not
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "100")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    if self.state.wait(0.1):
                        break
            except (BrokenPipeError, ConnectionResetError):
                pass
            return None
        if kind == "loop":
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if kind == "html":
            return self._send(200, b"<html><body>not an image</body></html>", "text/html; charset=utf-8")
        if kind == "truncated":
            body = image_bytes(1)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body) + 5000))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return None
        if kind == "huge":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(HUGE_BYTES))
            self.end_headers()
            return self._stream(HUGE_BYTES)
        if kind == "hugestream":  # no Content-Length: only the body limit can stop it
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            return self._stream(HUGE_BYTES)
        return self._send(404, b"unknown", "text/plain")

    def _drip(self, pieces, interval: float) -> None:
        """Write `pieces` (bytes objects) one per `interval`, until done, the client leaves or the
        server stops."""
        deadline = time.monotonic() + HOSTILE_SECONDS
        try:
            for piece in pieces:
                self.wfile.write(piece)
                self.wfile.flush()
                if self.state.wait(interval) or time.monotonic() > deadline:
                    break
        except OSError:  # the client hung up: what the test wanted
            pass
        self.close_connection = True

    def _hostile_dripheaders(self, parts):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nX-Padding: " + b"x" * 200 + b"\r\n\r\n"
        self._drip((head[i : i + 1] for i in range(len(head))), 1.0)

    def _hostile_continue(self, parts):
        self._drip(iter(lambda: b"HTTP/1.1 100 Continue\r\n\r\n", None), 0.25)  # four a second, no end

    def _hostile_dripbody(self, parts):
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self._drip((b"\0" for _ in range(1000)), 1.0)

    def _hostile_slowhops(self, parts):  # each hop waits 0.5 s, then redirects to the next one
        hop = int(parts[1]) if len(parts) > 1 else 0
        if self.state.wait(0.5):
            return
        self.send_response(302)
        self.send_header("Location", f"/slowhops/{hop + 1}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _hostile_reset(self, parts):
        body = image_bytes(2)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.state.wait(0.2)  # let the client block on the rest
        # SO_LINGER 0: close() sends RST instead of FIN. rfile holds a reference to the socket,
        # so close it first or close() would not really close.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()
        self.close_connection = True

    def _send(self, code: int, body: bytes, kind: str):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, total: int):
        chunk = b"\0" * 65536
        try:
            for _ in range(0, total, len(chunk)):
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass


class _Server(ThreadingHTTPServer):
    request_queue_size = 512  # fetch opens many connections at once; the default 5 drops SYNs
    daemon_threads = True

    def handle_error(self, request, client_address):  # clients hang up on slow and huge bodies
        pass


class HostileServer:
    """Serves on 127.0.0.1 in a background thread; `url(path)` builds URLs to it."""

    def __init__(self, probe: Callable[[int], object] | None = None):
        self.state = ServerState(probe=probe)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        # The silent listener: accepts, holds the connection open, never sends a byte.
        self.silent = socket.create_server(("127.0.0.1", 0))
        self.silent.settimeout(0.2)
        self.held: list[socket.socket] = []
        self.silent_thread = threading.Thread(target=self._hold, daemon=True)

    def __enter__(self) -> HostileServer:
        self.thread.start()
        self.silent_thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.state.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)
        self.silent_thread.join(timeout=10)
        for conn in [*self.held, self.silent]:
            conn.close()

    def _hold(self) -> None:
        while not self.state.stop.is_set():
            try:
                conn, _ = self.silent.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.state.lock:
                self.state.connections += 1
            self.held.append(conn)

    def stall_url(self, path: str = "stall.png", scheme: str = "https") -> str:
        """A URL on the silent listener: for https, a TLS handshake that never gets an answer."""
        return f"{scheme}://127.0.0.1:{self.silent.getsockname()[1]}/{path.lstrip('/')}"

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/{path.lstrip('/')}"

    def url_list(self, n: int, failing_share: float = 0.1) -> tuple[list[str], dict[int, str]]:
        """n URLs, `failing_share` of them failing; returns (urls, {row: expected reason})."""
        failing = round(n * failing_share)
        kinds = list(FAILURES)
        rows = np.random.default_rng(7).choice(n, size=failing, replace=False)
        expected = {int(row): FAILURES[kinds[i % len(kinds)]] for i, row in enumerate(sorted(rows))}
        by_row = {int(row): kinds[i % len(kinds)] for i, row in enumerate(sorted(rows))}
        urls = [self.url(f"{by_row[i]}/{i}") if i in by_row else self.url(f"img/{i}.png") for i in range(n)]
        return urls, expected

"""A hostile image server on 127.0.0.1 for fetch tests: good images and many ways to fail.

Every accepted connection is counted, so a test can prove no request was made. Handlers that
wait (the slow ones) are bounded, and the server shuts down with the fixture.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
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


@dataclass
class ServerState:
    connections: int = 0
    paths: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Called with the PID of the process behind each connection, while it is connected (Linux);
    # what it returns goes to `clients`.
    probe: Callable[[int], object] | None = None
    clients: list = field(default_factory=list)


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
            time.sleep(DELAY_SECONDS)
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
        if kind == "slow":
            time.sleep(SLOW_SECONDS)
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
                    time.sleep(0.1)
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

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

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

"""One HTTP/1.1 POST under a wall-clock deadline and a response-size cap, both enforced at the socket.

A timeout on each socket read (what `requests`' `timeout=` is) never fires against a server that
sends one byte a second, in its headers, its body or as endless `100 Continue` lines: measured,
such a server held a caption worker forever. Here every read, write and connect waits at most
for the time left until the request's deadline, so the whole exchange (connect, TLS, sending the
body, status line, any number of 1xx, headers and body) ends by then. Bodies stop at a byte cap:
the answer is read whole into memory, and a server that floods must not fill it.

One connection per request (no keep-alive): a loopback connect measured ~1 ms (2 busy cores)
against 100 ms or more per caption, and a fresh socket never meets a half-closed idle one. HTTP proxies are not used
(inference endpoints are addressed directly). Name resolution is not bounded (getaddrinfo cannot
be interrupted); endpoints are usually IP addresses or cluster-local names.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from urllib.parse import urlsplit

_READ_CHUNK = 1 << 16


class DeadlineExceeded(TimeoutError):
    """The exchange did not complete before its deadline."""


class ResponseTooLarge(Exception):
    """The response body is over the cap."""


class _DeadlineMixin:
    """Re-arms the socket timeout to the time left before each blocking call."""

    deadline: float = float("inf")  # a time.monotonic() value

    def _arm(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded("deadline passed")
        self.settimeout(remaining)

    def recv_into(self, buffer, nbytes=0, flags=0):
        self._arm()
        return super().recv_into(buffer, nbytes, flags)

    def recv(self, bufsize, flags=0):
        self._arm()
        return super().recv(bufsize, flags)

    def sendall(self, data, flags=0):  # CPython bounds a whole sendall by the timeout
        self._arm()
        return super().sendall(data, flags)

    def send(self, data, flags=0):
        self._arm()
        return super().send(data, flags)


class _DeadlineSocket(_DeadlineMixin, socket.socket):
    pass


class _DeadlineSSLSocket(_DeadlineMixin, ssl.SSLSocket):
    pass


def _connect(address: tuple[str, int], deadline: float) -> _DeadlineSocket:
    host, port = address
    last: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, addr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = _DeadlineSocket(family, kind, proto)
        sock.deadline = deadline
        try:
            sock._arm()
            sock.connect(addr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
            if isinstance(exc, TimeoutError):
                break  # the deadline is spent: no time for the next address
    raise last


class _Connection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int | None, deadline: float):
        super().__init__(host, port)
        self._create_connection = lambda address, *_: _connect(address, deadline)


class _TLSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int | None, deadline: float):
        context = ssl.create_default_context()
        context.sslsocket_class = _DeadlineSSLSocket
        context.set_alpn_protocols(["http/1.1"])
        super().__init__(host, port, context=context)
        self.deadline = deadline
        self._create_connection = lambda address, *_: _connect(address, deadline)

    def connect(self) -> None:
        super().connect()  # the handshake runs under the plain socket's timeout: the time left
        self.sock.deadline = self.deadline


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float, max_bytes: int) -> tuple[int, bytes]:
    """POST `body` to `url`; (status, response body). Raises DeadlineExceeded after `timeout_s`
    seconds in all, ResponseTooLarge past `max_bytes`, OSError or http.client.HTTPException otherwise."""
    deadline = time.monotonic() + timeout_s
    parts = urlsplit(url)
    kind = _TLSConnection if parts.scheme == "https" else _Connection
    conn = kind(parts.hostname or "", parts.port, deadline)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("POST", path or "/", body=body, headers={"Content-Type": "application/json", **headers})
        response = conn.getresponse()
        return response.status, _read_capped(response, max_bytes)
    except TimeoutError as exc:  # a socket timeout is the deadline: each one was the time left
        raise DeadlineExceeded(f"no complete answer within {timeout_s:g} s") from exc
    finally:
        conn.close()


def _read_capped(response: http.client.HTTPResponse, max_bytes: int) -> bytes:
    declared = response.getheader("Content-Length")
    if declared and declared.strip().isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(f"declared {int(declared)} bytes")
    chunks, total = [], 0
    while chunk := response.read(min(_READ_CHUNK, max_bytes + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            raise ResponseTooLarge(f"over {max_bytes} bytes")
    return b"".join(chunks)

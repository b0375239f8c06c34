"""One wall-clock deadline per URL, enforced at the socket.

A socket timeout bounds one blocking call, not a request: a server that sends a header byte
every second, or `HTTP/1.1 100 Continue` forever (http.client skips 1xx responses in a loop),
never lets a single read time out. So every blocking step of a fetch (name lookup, connect,
TLS handshake, sending, each read of status line, headers and body) first sets the socket's
timeout to what is left of the URL's deadline (at most the per-read `fetch.timeout_s`), and
raises `DeadlineExceeded` once nothing is left. CPython applies a socket timeout to a whole
TLS handshake, a whole `sendall` and a whole TLS record read, so setting it before each call
bounds the sum.

One deadline covers a URL: the downloader opens it around each row (all of img2dataset's
retries) and the policy opener around each `open` (every redirect hop); an inner one never
extends an outer one. It travels in a ContextVar, so each download thread has its own.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from finecap.fetch.reasons import PolicyViolation

# A socket timeout may fire a hair before the deadline (millisecond rounding of poll()).
_SLACK = 0.05


@dataclass(frozen=True)
class Deadline:
    at: float  # time.monotonic() value
    seconds: float  # the configured bound, for messages

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds, seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= _SLACK

    def timeout(self, per_operation: float | None = None) -> float:
        """The timeout for the next blocking call: what is left, at most `per_operation`."""
        left = self.remaining()
        if left <= 0:
            raise DeadlineExceeded(self)
        return left if per_operation is None else min(per_operation, left)


class DeadlineExceeded(PolicyViolation):
    """The URL used up fetch.max_seconds; classified as the reject reason `timeout`."""

    def __init__(self, deadline: Deadline):
        super().__init__(
            "slow_response",
            f"the URL took over fetch.max_seconds={deadline.seconds:g} (lookup, connect, TLS, headers, "
            "body, redirects and retries together)",
        )


_CURRENT: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("finecap_fetch_deadline", default=None)


@contextlib.contextmanager
def bounded(seconds: float) -> Iterator[Deadline]:
    """Fetch under a deadline `seconds` from now, or under the enclosing one if that ends sooner."""
    deadline = Deadline.after(seconds)
    outer = _CURRENT.get()
    if outer is not None and outer.at <= deadline.at:
        deadline = outer
    token = _CURRENT.set(deadline)
    try:
        yield deadline
    finally:
        _CURRENT.reset(token)


def current(seconds: float) -> Deadline:
    """The deadline of the fetch in progress in this thread, or a fresh one of `seconds`."""
    return _CURRENT.get() or Deadline.after(seconds)


def resolve(host: str, port: int, deadline: Deadline) -> list:
    """getaddrinfo within the deadline. It has no timeout of its own, so it runs in a daemon
    thread that is waited on for what is left (a stuck resolver keeps only that thread)."""
    done: dict = {}

    def lookup() -> None:
        try:
            done["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            done["error"] = exc

    worker = threading.Thread(target=lookup, name="finecap-resolve", daemon=True)
    worker.start()
    worker.join(deadline.timeout())
    if worker.is_alive():
        raise DeadlineExceeded(deadline)
    if "error" in done:
        raise done["error"]
    return done["infos"]


class DeadlineReader(io.RawIOBase):
    """The raw stream under an HTTP response: each read first sets the socket's timeout to what
    is left of the deadline, so status line, any number of 1xx responses, headers and body
    together stay within it."""

    def __init__(self, sock: socket.socket, raw: io.RawIOBase, deadline: Deadline, per_read: float | None):
        super().__init__()
        self._sock, self._raw, self._deadline, self._per_read = sock, raw, deadline, per_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int | None:
        self._sock.settimeout(self._deadline.timeout(self._per_read))
        try:
            return self._raw.readinto(buffer)
        except TimeoutError:
            if self._deadline.expired():
                raise DeadlineExceeded(self._deadline) from None
            raise

    def close(self) -> None:
        if not self.closed:
            self._raw.close()  # the socket's makefile() stream: closing it releases the socket
        super().close()

"""URL policy: what FineCap may fetch, enforced before and during every request.

Checking the URL text is not enough: a public name can resolve to a private address (or be
re-pointed there between a check and the request), and a public server can redirect into a
private network. So the opener built here resolves every host itself, refuses disallowed
addresses before any connection, connects to exactly the address it checked, follows
redirects through the same checks, and bounds the body (bytes) and the whole URL (seconds,
finecap/fetch/deadline.py). It has handlers for http and https only, and ignores proxy
settings (a proxy would hide the real address).

IPv6 addresses that carry an IPv4 address are judged by the IPv4 inside, because a translator
or tunnel on the path delivers the packet there: IPv4-mapped `::ffff:0:0/96` and -translated
`::ffff:0:0:0/96`, NAT64 `64:ff9b::/96` (so NAT64 of a public IPv4 stays allowed: IPv6-only
clusters reach the internet that way), 6to4 `2002::/16` (bits 16-48) and Teredo `2001::/32`
(server and client, the client de-obfuscated; both must be public). Refused whatever they
carry: the deprecated IPv4-compatible `::/96` (`::7f00:1`), and local-use NAT64 `64:ff9b:1::/48`
unless it is the /96 `64:ff9b:1::a.b.c.d` form (a translator with a shorter prefix would find
the IPv4 at other bits, RFC 6052).
"""

from __future__ import annotations

import functools
import http.client
import io
import ipaddress
import socket
import ssl
import urllib.parse
import urllib.request
from dataclasses import dataclass

from finecap.config import FetchConfig
from finecap.fetch import deadline as deadlines
from finecap.fetch.reasons import PolicyViolation

_SCHEMES = ("http", "https")
# Generic binary types servers use for images; anything else named (text/html, ...) is refused.
_BINARY_TYPES = ("application/octet-stream", "binary/octet-stream", "application/binary")
_CHUNK = 1 << 16
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_NAT64_LOCAL_96 = ipaddress.ip_network("64:ff9b:1::/96")
_COMPATIBLE = ipaddress.ip_network("::/96")

@dataclass(frozen=True)
class UrlPolicy:
    allow_private: bool = False
    max_bytes: int = 50_000_000
    max_seconds: float = 60.0
    max_redirects: int = 5
    check_content_type: bool = True

    @classmethod
    def from_config(cls, cfg: FetchConfig) -> UrlPolicy:
        return cls(cfg.allow_private_addresses, cfg.max_bytes, cfg.max_seconds, cfg.max_redirects,
                   cfg.check_content_type)


def address_allowed(address: str) -> bool:
    """True for public unicast addresses; IPv6 that carries IPv4 is judged by the IPv4 inside."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    inner = embedded_ipv4(ip) if ip.version == 6 else None
    if inner is not None:
        return bool(inner) and all(_public(v4) for v4 in inner)
    return _public(ip)


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...] | None:
    """The IPv4 addresses a packet to `ip` is delivered to, for the forms that carry one (module
    docstring); None for plain IPv6, () for a form refused whatever it carries."""
    last32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return (ip.ipv4_mapped,)
    if ip in _TRANSLATED or ip in _NAT64:
        return (last32,)
    if ip in _NAT64_LOCAL:
        return (last32,) if ip in _NAT64_LOCAL_96 else ()
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    if ip.teredo is not None:
        return ip.teredo  # (server, client); ipaddress undoes the client's bitwise NOT
    if ip in _COMPATIBLE:  # includes :: and ::1
        return ()
    return None


def check_url(url: str | None, policy: UrlPolicy) -> None:
    """Refuse what is wrong from the text alone: scheme, missing host, private IP literals."""
    if not url or not isinstance(url, str):
        raise PolicyViolation("bad_url", "no URL")
    try:
        parts = urllib.parse.urlsplit(url.strip())
        host, _ = parts.hostname, parts.port  # .port raises on a bad port
    except ValueError as exc:
        raise PolicyViolation("bad_url", f"{url[:200]!r}: {exc}") from None
    if not parts.scheme:
        raise PolicyViolation("bad_url", f"{url[:200]!r} has no scheme")
    if parts.scheme.lower() not in _SCHEMES:
        raise PolicyViolation("url_policy", f"scheme {parts.scheme or '(none)'!r} is not allowed (http and https only)")
    if not host:
        raise PolicyViolation("bad_url", f"{url[:200]!r} has no host")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: checked when it is resolved, right before connecting
    _check_address(host, str(literal), policy)


def _check_address(host: str, address: str, policy: UrlPolicy) -> None:
    if not policy.allow_private and not address_allowed(address):
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        inner = embedded_ipv4(ip) if ip.version == 6 else None
        carries = ""
        if inner is not None:
            carries = f" (carrying IPv4 {', '.join(map(str, inner))})" if inner else " (a form refused whatever it carries)"
        name = host if host == address else f"{host} is {address}"
        raise PolicyViolation(
            "url_policy",
            f"{name}{carries}, a private, loopback, link-local, multicast or reserved address "
            "(set fetch.allow_private_addresses: true to allow it)",
        )


def _per_operation(timeout) -> float | None:
    return None if timeout is socket._GLOBAL_DEFAULT_TIMEOUT else timeout


def _connect_checked(policy: UrlPolicy, deadline: deadlines.Deadline, address: tuple, timeout,
                     source_address=None) -> socket.socket:
    """socket.create_connection, but every resolved address is vetted before any is tried, and
    lookup and connect stay within the URL's deadline."""
    host, port = address
    infos = deadlines.resolve(host, port, deadline)
    for *_, sockaddr in infos:
        _check_address(host, sockaddr[0], policy)
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(deadline.timeout(_per_operation(timeout)))
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            # What is left bounds the TLS handshake that comes next (one timeout covers it whole).
            sock.settimeout(deadline.timeout(_per_operation(timeout)))
            return sock
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    raise error or OSError(f"could not connect to {host}")


class _LimitedResponse(http.client.HTTPResponse):
    """A response read within the URL's deadline (every socket read, 1xx responses included),
    whose body read stops at `max_bytes` and notices truncation."""

    def __init__(self, sock, *args, policy: UrlPolicy, deadline: deadlines.Deadline, per_read: float | None,
                 **kwargs):
        super().__init__(sock, *args, **kwargs)
        self.policy = policy
        # The makefile() stream, kept: it holds the socket open after urllib closes the connection.
        self.fp = io.BufferedReader(deadlines.DeadlineReader(sock, self.fp.detach(), deadline, per_read))

    def read(self, amt: int | None = None) -> bytes:
        if amt is not None:
            return super().read(amt)
        chunks, total = [], 0
        while True:
            chunk = self.read1(_CHUNK)  # returns what has arrived, so the deadline is checked often
            if not chunk:
                break
            total += len(chunk)
            if total > self.policy.max_bytes:
                self.close()
                raise PolicyViolation("too_large", f"body is over fetch.max_bytes={self.policy.max_bytes}")
            chunks.append(chunk)
        if self.length:  # the server announced more than it sent (read(amt) does not raise this)
            raise http.client.IncompleteRead(b"".join(chunks), self.length)
        return b"".join(chunks)


class _GuardedMixin:
    """Policy and deadline for one connection (one redirect hop); the deadline is the URL's."""

    def _guard(self, policy: UrlPolicy) -> None:
        self._policy = policy
        self._deadline = deadlines.current(policy.max_seconds)
        self._per_operation = _per_operation(self.timeout)
        self._create_connection = functools.partial(_connect_checked, policy, self._deadline)
        self.response_class = functools.partial(
            _LimitedResponse, policy=policy, deadline=self._deadline, per_read=self._per_operation
        )

    def connect(self):
        try:
            super().connect()  # TCP connect, then (https) the TLS handshake
        except TimeoutError:
            if self._deadline.expired():
                raise deadlines.DeadlineExceeded(self._deadline) from None
            raise

    def send(self, data):
        if self.sock is None and self.auto_open:
            self.connect()
        if self.sock is not None:
            self.sock.settimeout(self._deadline.timeout(self._per_operation))
        return super().send(data)

    def getresponse(self):
        response = super().getresponse()
        if 200 <= response.status < 300:
            _check_headers(response, self._policy)
        return response


def _check_headers(response: http.client.HTTPResponse, policy: UrlPolicy) -> None:
    length = response.getheader("Content-Length")
    if length and length.strip().isdigit() and int(length) > policy.max_bytes:
        raise PolicyViolation("too_large", f"Content-Length {length} is over fetch.max_bytes={policy.max_bytes}")
    kind = (response.getheader("Content-Type") or "").split(";", 1)[0].strip().lower()
    if policy.check_content_type and kind and not (kind.startswith("image/") or kind in _BINARY_TYPES):
        raise PolicyViolation("wrong_content_type", f"Content-Type {kind!r} is not an image type")


class _GuardedHTTPConnection(_GuardedMixin, http.client.HTTPConnection):
    def __init__(self, *args, policy: UrlPolicy, **kwargs):
        super().__init__(*args, **kwargs)
        self._guard(policy)


class _GuardedHTTPSConnection(_GuardedMixin, http.client.HTTPSConnection):
    def __init__(self, *args, policy: UrlPolicy, **kwargs):
        super().__init__(*args, **kwargs)
        self._guard(policy)


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, policy: UrlPolicy):
        super().__init__()
        self.policy = policy

    def http_open(self, req):
        return self.do_open(functools.partial(_GuardedHTTPConnection, policy=self.policy), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, policy: UrlPolicy):
        super().__init__(context=ssl.create_default_context())
        self.policy = policy

    def https_open(self, req):
        connection = functools.partial(_GuardedHTTPSConnection, policy=self.policy)
        return self.do_open(connection, req, context=self._context)


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    def __init__(self, policy: UrlPolicy):
        super().__init__()
        self.policy = policy
        self.max_redirections = policy.max_redirects

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_url(urllib.parse.urljoin(req.full_url, newurl), self.policy)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _BoundedOpener(urllib.request.OpenerDirector):
    """Each `open` (with its redirects) runs under one deadline of policy.max_seconds; the
    response it returns keeps that deadline for reading the body."""

    def __init__(self, policy: UrlPolicy):
        super().__init__()
        self.policy = policy

    def open(self, fullurl, data=None, timeout=socket._GLOBAL_DEFAULT_TIMEOUT):
        with deadlines.bounded(self.policy.max_seconds):
            return super().open(fullurl, data, timeout)


def build_opener(policy: UrlPolicy) -> urllib.request.OpenerDirector:
    """An opener that fetches only what `policy` allows (no file:, ftp:, data: or proxies)."""
    opener = _BoundedOpener(policy)
    for handler in (
        _HTTPHandler(policy),
        _HTTPSHandler(policy),
        _RedirectHandler(policy),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        urllib.request.UnknownHandler(),
    ):
        opener.add_handler(handler)
    return opener

"""URL policy: what FineCap may fetch, enforced before and during every request.

Checking the URL text is not enough: a public name can resolve to a private address (or be
re-pointed there between a check and the request), and a public server can redirect into a
private network. So the opener built here resolves every host itself, refuses disallowed
addresses before any connection, connects to exactly the address it checked, follows
redirects through the same checks, and bounds the body (bytes and seconds). It has handlers
for http and https only, and ignores proxy settings (a proxy would hide the real address).
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
import ssl
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass

from finecap.config import FetchConfig

_SCHEMES = ("http", "https")
# Generic binary types servers use for images; anything else named (text/html, ...) is refused.
_BINARY_TYPES = ("application/octet-stream", "binary/octet-stream", "application/binary")
_CHUNK = 1 << 16


class PolicyViolation(Exception):
    """A request the policy refuses; str() starts with the reject reason (`url_policy: ...`)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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
    """True for public unicast addresses (IPv4-mapped IPv6 judged as the IPv4 inside)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


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
        raise PolicyViolation(
            "url_policy",
            f"{host} is {address}, a private, loopback, link-local, multicast or reserved address "
            "(set fetch.allow_private_addresses: true to allow it)",
        )


def _connect_checked(policy: UrlPolicy, address: tuple, timeout, source_address=None) -> socket.socket:
    """socket.create_connection, but every resolved address is vetted before any is tried."""
    host, port = address
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for *_, sockaddr in infos:
        _check_address(host, sockaddr[0], policy)
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"could not connect to {host}")


class _LimitedResponse(http.client.HTTPResponse):
    """A response whose body read stops at `max_bytes` and `max_seconds`, and notices truncation."""

    policy: UrlPolicy = UrlPolicy()
    started: float = 0.0

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
            if time.monotonic() - self.started > self.policy.max_seconds:
                self.close()
                raise PolicyViolation("slow_response", f"body took over fetch.max_seconds={self.policy.max_seconds}")
            chunks.append(chunk)
        if self.length:  # the server announced more than it sent (read(amt) does not raise this)
            raise http.client.IncompleteRead(b"".join(chunks), self.length)
        return b"".join(chunks)


class _GuardedMixin:
    def _guard(self, policy: UrlPolicy) -> None:
        self._policy = policy
        self._started = time.monotonic()
        self._create_connection = functools.partial(_connect_checked, policy)
        self.response_class = _LimitedResponse

    def getresponse(self):
        response = super().getresponse()
        response.policy, response.started = self._policy, self._started
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


def build_opener(policy: UrlPolicy) -> urllib.request.OpenerDirector:
    """An opener that fetches only what `policy` allows (no file:, ftp:, data: or proxies)."""
    opener = urllib.request.OpenerDirector()
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

import socket
import time
import urllib.error

import pytest

from finecap.fetch.policy import PolicyViolation, UrlPolicy, address_allowed, build_opener, check_url
from tests.fetch.server import HUGE_BYTES, HostileServer, image_bytes

OPEN = UrlPolicy(allow_private=True, max_bytes=1_000_000, max_seconds=5, max_redirects=5)
CLOSED = UrlPolicy(allow_private=False)


@pytest.fixture(scope="module")
def server():
    with HostileServer() as srv:
        yield srv


@pytest.mark.parametrize(
    "address, allowed",
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.9", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata endpoint (link-local)
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.251", False),  # multicast
        ("240.0.0.1", False),  # reserved
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("ff02::1", False),
    ],
)
def test_address_classes(address, allowed):
    assert address_allowed(address) is allowed


# IPv6 that carries IPv4 is judged by the IPv4 inside (finecap/fetch/policy.py docstring).
EMBEDDED = [
    ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254, the cloud metadata address
    ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
    ("64:ff9b::a00:5", False),  # NAT64 of 10.0.0.5
    ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8: how IPv6-only clusters reach the internet
    ("64:ff9b:1::c0a8:101", False),  # local-use NAT64 /96 of 192.168.1.1
    ("64:ff9b:1::808:808", True),  # local-use NAT64 /96 of 8.8.8.8
    ("64:ff9b:1:a00:5::808:808", False),  # local-use, not the /96 form: the IPv4 could be elsewhere
    ("2002:a00:5::1", False),  # 6to4 of 10.0.0.5 (bits 16-48)
    ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
    ("2002:808:808::1", True),  # 6to4 of 8.8.8.8
    ("::7f00:1", False),  # IPv4-compatible 127.0.0.1
    ("::808:808", False),  # IPv4-compatible is deprecated: refused whatever it carries
    ("::ffff:a9fe:a9fe", False),  # IPv4-mapped 169.254.169.254
    ("::ffff:808:808", True),  # IPv4-mapped 8.8.8.8
    ("::ffff:0:a00:5", False),  # IPv4-translated (SIIT) 10.0.0.5
    ("::ffff:0:808:808", True),  # IPv4-translated 8.8.8.8
    # Teredo: server 8.8.8.8, client obfuscated as NOT(...): 10.0.0.5 -> f5ff:fffa
    ("2001:0:808:808:0:0:f5ff:fffa", False),
    ("2001:0:a00:5:0:0:f7f7:f7f7", False),  # private Teredo server 10.0.0.5, client 8.8.8.8
    ("2001:0:808:808:0:0:f7f7:f7f7", True),  # both 8.8.8.8
]


@pytest.mark.parametrize("address, allowed", EMBEDDED)
def test_ipv4_inside_ipv6_is_judged_by_the_ipv4(address, allowed):
    assert address_allowed(address) is allowed


def test_teredo_client_is_deobfuscated():
    import ipaddress

    assert ipaddress.IPv6Address("2001:0:808:808:0:0:f5ff:fffa").teredo[1] == ipaddress.IPv4Address("10.0.0.5")


@pytest.mark.parametrize("url", ["http://[64:ff9b::a9fe:a9fe]/", "http://[2002:a00:5::1]/", "http://[::7f00:1]/",
                                 "http://[64:ff9b:1::a00:5]:8080/a.png", "http://[2001:0:808:808::f5ff:fffa]/"])
def test_private_ipv4_inside_ipv6_literals_are_refused(url):
    with pytest.raises(PolicyViolation, match=r"url_policy: .*\((carrying IPv4|a form refused)") as info:
        check_url(url, CLOSED)
    assert "fetch.allow_private_addresses" in info.value.detail
    check_url(url, OPEN)  # allowed when private addresses are


def test_resolved_addresses_carrying_private_ipv4_are_refused_before_connecting():
    """The opener vets what getaddrinfo returns (here the literal itself), before any socket."""
    opener = build_opener(CLOSED)
    for url in ("http://[64:ff9b::7f00:1]:9/x.png", "https://[2002:7f00:1::1]:9/x.png", "http://[::7f00:1]:9/"):
        with pytest.raises(PolicyViolation, match="url_policy"):
            opener.open(url, timeout=2)


@pytest.mark.parametrize(
    "url, reason",
    [
        ("ftp://example.com/a.jpg", "url_policy"),
        ("file:///etc/passwd", "url_policy"),
        ("data:image/png;base64,AAAA", "url_policy"),
        ("gopher://example.com/", "url_policy"),
        ("example.com/a.jpg", "bad_url"),
        ("http:///nohost.jpg", "bad_url"),
        ("http://example.com:99999/a.jpg", "bad_url"),
        ("", "bad_url"),
        (None, "bad_url"),
        ("http://127.0.0.1/a.jpg", "url_policy"),
        ("http://[::1]/a.jpg", "url_policy"),
        ("http://169.254.169.254/latest/meta-data", "url_policy"),
    ],
)
def test_check_url_refuses_from_the_text(url, reason):
    with pytest.raises(PolicyViolation) as info:
        check_url(url, CLOSED)
    assert info.value.reason == reason and str(info.value).startswith(reason)


def test_check_url_accepts_public_urls_and_private_literals_when_allowed():
    check_url("https://example.com/a.jpg?x=1", CLOSED)
    check_url("HTTP://93.184.216.34/a.png", CLOSED)
    check_url("http://127.0.0.1:8000/a.png", OPEN)


def test_no_connection_is_made_to_a_private_host():
    """A name that resolves to loopback is refused after resolution, before any connection."""
    opener = build_opener(CLOSED)
    with HostileServer() as server:
        for host in ("localhost", "127.0.0.1"):
            with pytest.raises(PolicyViolation, match="url_policy"):
                opener.open(server.url("img/1.png", host=host), timeout=5)
        assert server.state.connections == 0
        with build_opener(OPEN).open(server.url("img/1.png", host="localhost"), timeout=5) as response:
            assert response.read() == image_bytes(1)
        assert server.state.connections == 1  # the counter does count


def test_redirects_are_checked_too(server):
    policy = UrlPolicy(allow_private=True, max_redirects=5)
    handler = next(h for h in build_opener(policy).handlers if type(h).__name__ == "_RedirectHandler")
    strict = type(handler)(CLOSED)
    for target in ("http://10.0.0.7/internal", "file:///etc/passwd", "ftp://example.com/x"):
        with pytest.raises(PolicyViolation):
            strict.redirect_request(_Request("http://example.com/a"), None, 302, "Found", {}, target)


class _Request:
    def __init__(self, url):
        self.full_url = url


def test_opener_fetches_an_image_and_bounds_bodies(server):
    opener = build_opener(OPEN)
    with opener.open(server.url("img/4.png"), timeout=5) as response:
        assert response.read() == image_bytes(4)
    with pytest.raises(PolicyViolation, match="too_large: Content-Length"), opener.open(server.url("huge/1"), timeout=5):
        pass
    with opener.open(server.url("hugestream/1"), timeout=5) as response, pytest.raises(PolicyViolation, match="too_large"):
        response.read()
    assert HUGE_BYTES > OPEN.max_bytes
    with pytest.raises(PolicyViolation, match="wrong_content_type"), opener.open(server.url("html/1"), timeout=5):
        pass
    with opener.open(server.url("truncated/1"), timeout=5) as response, pytest.raises(Exception, match="IncompleteRead"):
        response.read()


def test_opener_handles_only_http_and_https():
    opener = build_opener(OPEN)
    for url in ("file:///etc/hostname", "ftp://127.0.0.1/x"):
        with pytest.raises(urllib.error.URLError, match="unknown url type"):
            opener.open(url, timeout=2)


def test_redirect_loops_stop(server):
    with pytest.raises(urllib.error.HTTPError, match="infinite loop"):
        build_opener(OPEN).open(server.url("loop/1"), timeout=5)


def test_silent_servers_time_out_and_slow_drips_hit_the_deadline(server):
    with pytest.raises((socket.timeout, TimeoutError, urllib.error.URLError)):
        build_opener(OPEN).open(server.url("slow/1"), timeout=0.5)
    policy = UrlPolicy(allow_private=True, max_seconds=0.5)
    started = time.monotonic()
    with build_opener(policy).open(server.url("drip/1"), timeout=2) as response:
        with pytest.raises(PolicyViolation, match="slow_response"):
            response.read()
    assert time.monotonic() - started < 3


def test_fetch_keys_are_checked_at_load(local_config):
    from finecap.config import ConfigError

    cfg = local_config("fetch.max_bytes=1000", "fetch.retries=3", "fetch.timeout_s=2.5").fetch
    assert (cfg.max_bytes, cfg.retries, cfg.timeout_s, cfg.allow_private_addresses) == (1000, 3, 2.5, False)
    assert UrlPolicy.from_config(cfg).max_bytes == 1000
    with pytest.raises(ConfigError, match=r"unknown key 'fetch.allow_private_address' \(did you mean "
                                          r"'fetch.allow_private_addresses'\?\)"):
        local_config("fetch.allow_private_address=true")
    with pytest.raises(ConfigError, match="fetch.allow_private_addresses: expected true or false"):
        local_config("fetch.allow_private_addresses=yes please")
    with pytest.raises(ConfigError, match="fetch.retries: must be >= 0"):
        local_config("fetch.retries=-1")

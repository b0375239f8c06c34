import pytest

from finecap.fetch.reasons import classify


@pytest.mark.parametrize(
    "status, message, reason",
    [
        ("failed_to_download", "HTTP Error 404: Not Found", "http_404"),
        ("failed_to_download", "HTTP Error 503: Service Unavailable", "http_503"),
        ("failed_to_download", "HTTP Error 302: The HTTP server returned a redirect error that would lead to an "
                               "infinite loop.", "redirect_loop"),
        ("failed_to_download", "timed out", "timeout"),
        ("failed_to_download", "<urlopen error timed out>", "timeout"),
        ("failed_to_download", "The read operation timed out", "timeout"),
        ("failed_to_download", "slow_response: body took over fetch.max_seconds=60", "timeout"),
        ("failed_to_download", "IncompleteRead(791 bytes read, 5000 more expected)", "truncated"),
        ("failed_to_download", "url_policy: localhost is 127.0.0.1, a private ...", "url_policy"),
        ("failed_to_download", "too_large: Content-Length 9 is over fetch.max_bytes=1", "too_large"),
        ("failed_to_download", "wrong_content_type: Content-Type 'text/html' is not an image type",
         "wrong_content_type"),
        ("failed_to_download", "<urlopen error [Errno -2] Name or service not known>", "dns_error"),
        ("failed_to_download", "<urlopen error [Errno 111] Connection refused>", "connection_error"),
        ("failed_to_download", "<urlopen error [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed>",
         "tls_error"),
        ("failed_to_download", "Use of image disallowed by X-Robots-Tag directive", "disallowed_by_robots_tag"),
        ("failed_to_download", "hash mismatch", "hash_mismatch"),
        ("failed_to_download", "<urlopen error unknown url type: ftp>", "bad_url"),
        ("failed_to_resize", "Image decoding error", "not_an_image"),
        ("failed_to_download", "something new", "download_error"),
        ("missing", None, "download_error"),
    ],
)
def test_reasons(status, message, reason):
    got, detail = classify(status, message)
    assert got == reason
    assert detail  # never an empty detail


def test_own_prefixes_are_not_repeated_in_the_detail():
    assert classify("failed_to_download", "url_policy: 10.0.0.1 is private") == ("url_policy", "10.0.0.1 is private")

"""Short reject reasons for download failures, from img2dataset's status and error message.

img2dataset records a failure as `status` ("failed_to_download", "failed_to_resize") and the
exception text in `error_message`; rejects need a small stable vocabulary instead, so reports
can count them. The full text stays in the reject's `detail`.
"""

from __future__ import annotations

import re


class PolicyViolation(Exception):
    """A request FineCap itself refuses; str() starts with the reason (`url_policy: ...`), which is
    what img2dataset records as the error message and `classify` reads back."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

# First match wins: specific messages before the generic HTTP status rule.
_RULES: tuple[tuple[str, re.Pattern], ...] = tuple(
    (reason, re.compile(pattern, re.IGNORECASE))
    for reason, pattern in (
        ("url_policy", r"^url_policy:"),
        ("bad_url", r"^bad_url:|unknown url type|no host given"),
        ("too_large", r"^too_large:"),
        ("wrong_content_type", r"^wrong_content_type:"),
        ("redirect_loop", r"infinite loop|maximum redirections|too many redirects"),
        ("disallowed_by_robots_tag", r"X-Robots-Tag"),
        ("truncated", r"IncompleteRead|incomplete read"),
        ("timeout", r"timed out|^slow_response:"),
        ("dns_error", r"Name or service not known|Temporary failure in name resolution|getaddrinfo|nodename nor servname"),
        ("tls_error", r"SSL|CERTIFICATE"),
        ("connection_error", r"Connection refused|Connection reset|Remote end closed|Broken pipe|EOF occurred"),
        ("hash_mismatch", r"hash mismatch"),
    )
)
_HTTP_STATUS = re.compile(r"HTTP Error (\d{3})")


def classify(status: str | None, error_message: str | None) -> tuple[str, str]:
    """(reason, detail) for a row img2dataset did not deliver."""
    message = (error_message or "").strip()
    for reason, pattern in _RULES:
        if pattern.search(message):
            prefix = message.split(":", 1)
            # Our own policy errors start with their reason; the detail need not repeat it.
            own = len(prefix) == 2 and prefix[0] in ("url_policy", "bad_url", "too_large", "wrong_content_type",
                                                     "slow_response")
            return reason, prefix[1].strip() if own else message
    match = _HTTP_STATUS.search(message)
    if match:
        return f"http_{match.group(1)}", message
    if status == "failed_to_resize":
        return "not_an_image", message or "img2dataset could not decode the body"
    return "download_error", message or f"img2dataset status {status!r}"

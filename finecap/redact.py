"""What may be published about a location or an error: never a credential.

The rule, applied at every place that publishes text (manifests, the dataset card and report,
reject rows, engine errors):
- Storage URIs (the build's own locations: `source.uri`, `output.uri`, `--from`) go through
  `public_uri`: no `user:password@`, and no query string or fragment on http(s) URIs, so a
  presigned object-store URI (`?X-Amz-Signature=...`) is published as the bare location. On other
  schemes a `?` is a glob character, and only a query of `name=value` pairs (e.g.
  `s3://b/k?versionId=3`) is dropped; local paths are kept as they are.
- Free text (reject details, error messages) goes through `redact_text`: the values of
  credential-looking query parameters in any URL in it, userinfo passwords, and the values of
  the secret environment variables (`SECRET_ENV`) become `REDACTED`.
- The `url` column of rows and rejects is the dataset's content, what the user listed: kept as
  given. A URL list of presigned URLs publishes them; sign with a short expiry or strip first.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

MASK = "REDACTED"
# Variables whose values are credentials: never logged, never in a runtime env (ray_session.py).
SECRET_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "FSSPEC_S3_KEY",
    "FSSPEC_S3_SECRET",
)
# Query parameters that carry signatures or keys (S3/GCS presigned URLs, Azure SAS, API keys).
SECRET_PARAMS = (
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "x-goog-signature",
    "x-goog-credential", "signature", "sig", "token", "access_token", "key", "api_key", "apikey",
    "password", "secret", "client_secret",
)
_NAMES = "|".join(map(re.escape, SECRET_PARAMS))
_PARAM = re.compile(rf"(?i)([?&;](?:{_NAMES})=)[^&#\s'\"<>]*")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s@:]*):[^/\s@]*@")
_QUERY = re.compile(r"[\w.~-]+=[^/]*(?:&[\w.~-]+=[^/]*)*")  # name=value pairs, no path after them
_MIN_SECRET_CHARS = 8  # shorter values would mask ordinary words


def public_uri(uri: str | None) -> str | None:
    """`uri` as it may be published: without credentials or a query string (see the module rule)."""
    if not uri or "://" not in uri:
        return uri  # a local path: nothing secret in it, and `?` is a glob character
    parts = urlsplit(uri)
    netloc = parts.netloc.rpartition("@")[2]
    if parts.scheme.lower() in ("http", "https") or _QUERY.fullmatch(parts.query):
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    rest = uri.partition("://")[2].partition(parts.netloc)[2]  # path, a glob's `?`, a `#` in a name
    return f"{parts.scheme}://{netloc}{rest}"


def redact_text(text: str | None, secret_names: tuple[str, ...] = ()) -> str | None:
    """`text` with credential-looking query values, userinfo passwords and secret variables' values masked."""
    if not text:
        return text
    text = _USERINFO.sub(rf"\1:{MASK}@", _PARAM.sub(rf"\1{MASK}", text))
    for name in SECRET_ENV + secret_names:
        value = os.environ.get(name, "")
        if len(value) >= _MIN_SECRET_CHARS and value in text:
            text = text.replace(value, MASK)
    return text

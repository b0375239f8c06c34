"""The environment an embedded Ray starts in to stay private: loopback only, token authentication on.

What Ray 2.60 does (ray/_private/worker.py `init`, services.py `resolve_ip_for_localhost`,
ray_constants.py, authentication/authentication_token_setup.py, and the strings of _raylet.so):
- `_node_ip_address="127.0.0.1"` alone changes nothing: `resolve_ip_for_localhost` replaces a
  loopback address with the machine's routable one, and then gcs_server, raylet and the workers
  listened on `::` and the agents on the host's address (measured with psutil). With
  `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` (read at import into `ray_constants.ENABLE_RAY_CLUSTER`)
  the node address is the loopback one, and every listening socket of every Ray process was on
  127.0.0.1 (measured). The driver's flag is set for the session; its children read the variable.
- Token authentication: `RAY_AUTH_MODE=token`; the token comes from `RAY_AUTH_TOKEN`, else the
  file named by `RAY_AUTH_TOKEN_PATH`, else `~/.ray/auth_token` (which `ray.init` creates when it
  finds none). It works without a dashboard; Ray's processes inherit the variables, so workers
  authenticate too. The mode is cached in the process's C++ config and the token in
  `AuthenticationTokenLoader`: both are refreshed on the way in and out (as Ray's own
  `_enable_token_auth` does), so a later Ray in the same process sees its own settings.
Here: a fresh 256-bit token per session in a 0600 file inside the session's temp dir (removed with
it), named by RAY_AUTH_TOKEN_PATH, never in an environment value or a log, never in the home dir.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TOKEN_FILE = "auth_token"
_SET = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
# Would win over our token file, or send ray.init to some other cluster.
_UNSET = ("RAY_AUTH_TOKEN", "RAY_ADDRESS")


@contextmanager
def private_ray_env(temp_dir: str) -> Iterator[Path]:
    """Set the variables (and Ray's cached view of them) for one embedded session; yield the token file."""
    import ray._private.ray_constants as ray_constants

    token_path = write_token(Path(temp_dir))
    saved = {k: os.environ.get(k) for k in _SET + _UNSET}
    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path),
                       "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
    for key in _UNSET:
        os.environ.pop(key, None)
    ray_constants.ENABLE_RAY_CLUSTER = False
    _refresh_ray_config()
    try:
        yield token_path
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        _refresh_ray_config()


def write_token(directory: Path) -> Path:
    """A fresh random token in `directory/auth_token`, readable by this user only (created 0600)."""
    path = directory / TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))  # 256 bits, as Ray's own generator
    return path


def _refresh_ray_config() -> None:
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
